/*
 * mesos-launch: starts one container's root process as the agent's isolators ask (ADR 0014).
 *
 *   mesos-launch [-k CGROUP PREMADE]... [-w FILE VALUE]... [-c CGROUP_PROCS]... [-m]
 *                [-b SOURCE TARGET]... [-O OPTIONS TARGET] [-p]
 *                [-u UID -g GID -G GID,GID,...] -- COMMAND [ARG]...
 *
 *   -k  make the container's cgroup CGROUP (a directory of a cgroup hierarchy): rename the
 *       premade empty cgroup PREMADE (a name beside it; "" for none) to it, else mkdir it
 *       (v1 renames a cgroup within its parent; ADR 0014, decision 8)
 *   -w  write VALUE into the control file FILE (a container's limit)
 *   -c  write this process's pid into a cgroup.procs file (before anything the command does:
 *       nothing the command starts escapes the cgroup)
 *
 *   The options act in the order given; the agent puts -k and -w before -c, so a container's
 *   cgroups are made and limited by its own process before it joins them, and the agent's
 *   event loop makes no cgroup system call (ADR 0014, decision 9).
 *   -m  a private mount namespace (mounts made in it do not propagate back)
 *   -b  bind SOURCE over TARGET in that namespace (implies -m)
 *   -O  mount an overlay with OPTIONS (lowerdir=...,upperdir=...,workdir=...) at TARGET in
 *       that namespace (implies -m): an image container's root filesystem, which then exists
 *       only in the namespace of its runtime and goes away with it (no mount of the host's
 *       grows with the number of containers, and no mount outlives its container)
 *   -p  a pid namespace with its own /proc (implies -m): this process stays outside and exits
 *       with the container's status, a forked copy is the namespace's init (pid 1), which
 *       forwards every signal to the command's process group, reaps orphans, and exits when
 *       the command does: with its exit status, or 128 + N when signal N ended it (as tini)
 *   -i  be the init of the pid namespace this process already is pid 1 of (a container an OCI
 *       runtime made; the program is bound into it): start the command, forward signals,
 *       reap orphans, exit with the command's status, as -p's init does
 *   -u/-g/-G  run the command as this user, primary group and supplementary groups
 *
 * The agent forks with vfork and execs this program, so no Python runs between fork and exec;
 * one small static program replaces the chain of sh, unshare, tini and setpriv the launch
 * would otherwise need (three execs fewer per container). A failure before the command runs
 * exits 125 with a line on stderr (the sandbox's stderr); a command that cannot be executed
 * exits 127 (not found) or 126, as a shell does.
 *
 *   mesos-launch --serve FD
 *
 * is the agent's spawn server (ADR 0019): it reads spawn requests from the SOCK_SEQPACKET
 * socket FD, forks a child per request that does what the options above ask (in-process: no
 * exec of this program) and execs the command, answers each request with the child's pid once
 * it leads its session (or has exec'd, when the request asks for exec errors), or with the
 * errno that stopped it, and reports every child's wait status when it ends. It forks further
 * requests while earlier children are still on their way, and answers them as they get there.
 * A child whose request asks for -p is cloned into a new pid namespace and is its init itself
 * (it makes its mount namespace, mounts /proc, forks the command and forwards signals to it):
 * two processes per container, not three.
 * It exits when the agent closes the socket; its children then run on, as the agent's own
 * children would. The agent's event loop so never waits for a fork and exec. The wire format
 * is `spawn_server.py`'s.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_GROUPS 256
#define SETUP_FAILED 125
#define REQUEST_MAX (256 * 1024)
/* u64 id, u32 flags, u32 argument count, u32 environment count, i32 uid, i32 gid */
#define REQUEST_HEADER 28
#define REPORT_EXEC_ERRORS 1 /* answer once the command is exec'd, or with the errno */
#define MAKE_SANDBOX 2 /* the child makes its cwd (mode 0750, owned by uid:gid unless -1) and
                        * opens stdout and stderr there; no descriptors come with the request */
#define PWD_FROM_CWD 4 /* the child sets the request's PWD variable, if it has one, to its
                        * physical working directory, as a shell would (the agent need not
                        * resolve the sandbox's path) */
#define SANDBOX_MODE 0750
#define OUTPUT_MODE 0644

/* The spawn server's child writes the errno that stopped it here when the request asks for
 * exec errors (-1: none asked; closed at exec, so end-of-file means the command runs). */
static int report_fd = -1;

/* Set in a spawn server's child cloned into a new pid namespace (`fork_child`): it is the
 * namespace's init (pid 1) already, so `-p` only makes its mount namespace and mounts /proc,
 * and neither unshares a pid namespace nor forks an init (ADR 0019, session 17). */
static int cloned_init;

static void report(int error) {
    if (report_fd >= 0) {
        ssize_t ignored = write(report_fd, &error, sizeof error);
        (void)ignored;
    }
}

static void report(int error);

static void fail(const char *what, const char *detail) {
    report(errno ? errno : EINVAL);
    fprintf(stderr, "mesos-launch: %s%s%s: %s\n", what, *detail ? " " : "", detail,
            strerror(errno));
    _exit(SETUP_FAILED);
}

static void usage(const char *why) {
    fprintf(stderr, "mesos-launch: %s\n", why);
    _exit(SETUP_FAILED);
}

static long number(const char *text) {
    char *end;
    errno = 0;
    long value = strtol(text, &end, 10);
    if (errno || end == text || *end) usage("a user or group id must be a number");
    return value;
}

static int status_code(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

struct identity {
    int set;
    uid_t uid;
    gid_t gid;
    gid_t groups[MAX_GROUPS];
    size_t ngroups;
};

static void parse_groups(char *list, struct identity *who) {
    for (char *item = strtok(list, ","); item; item = strtok(NULL, ",")) {
        if (who->ngroups == MAX_GROUPS) usage("too many groups");
        who->groups[who->ngroups++] = (gid_t)number(item);
    }
}

static void run_command(char **command, const struct identity *who, const sigset_t *mask) {
    if (who->set) {
        if (setgroups(who->ngroups, who->groups)) fail("cannot set the supplementary groups", "");
        if (setgid(who->gid)) fail("cannot switch to the group", "");
        if (setuid(who->uid)) fail("cannot switch to the user", "");
    }
    sigprocmask(SIG_UNBLOCK, mask, NULL);
    execvp(command[0], command);
    int code = errno == ENOENT ? 127 : 126;
    if (report_fd >= 0) {
        report(errno);
        _exit(code);
    }
    fprintf(stderr, "mesos-launch: cannot run %s: %s\n", command[0], strerror(errno));
    _exit(code);
}

/* pid 1 of the container's namespace: start the command, forward signals, reap, and exit
 * with the command's status. Every signal is blocked (so none is lost before this loop
 * runs, and none kills init by default) and taken with sigwaitinfo. */
static void be_init(char **command, const struct identity *who, const sigset_t *all,
                    int mount_proc) {
    if (mount_proc && mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL))
        fail("cannot mount", "/proc");
    pid_t child = fork();
    if (child < 0) fail("cannot fork", "the command");
    if (child == 0) {
        setpgid(0, 0);
        run_command(command, who, all);
    }
    setpgid(child, child); /* also here: a signal may come before the child ran setpgid */
    for (;;) {
        siginfo_t info;
        int sig = sigwaitinfo(all, &info);
        if (sig < 0) continue;
        if (sig != SIGCHLD) {
            kill(-child, sig);
            continue;
        }
        int status;
        pid_t ended;
        while ((ended = waitpid(-1, &status, WNOHANG)) > 0)
            if (ended == child) _exit(status_code(status));
    }
}

/* The container's cgroup at `path`: the premade cgroup `premade` (a name in the same parent,
 * "" for none) renamed to it, else made. A premade one that is gone is passed over; one that
 * cannot take the name (the container's cgroup exists already) is removed, not leaked. */
static void make_cgroup(const char *path, const char *premade) {
    if (*premade) {
        const char *slash = strrchr(path, '/');
        char from[4096];
        int length = slash ? (int)(slash - path) : 0;
        if (!slash || snprintf(from, sizeof from, "%.*s/%s", length, path, premade)
                          >= (int)sizeof from) {
            errno = ENAMETOOLONG;
            fail("cannot make the cgroup", path);
        }
        if (!rename(from, path)) return;
        if (errno != ENOENT) rmdir(from);
    }
    if (mkdir(path, 0755) && errno != EEXIST) fail("cannot make the cgroup", path);
}

/* Write `value` into the control file `file`. */
static void write_control(const char *file, const char *value) {
    int fd = open(file, O_WRONLY | O_CLOEXEC);
    size_t length = strlen(value);
    if (fd < 0 || write(fd, value, length) != (ssize_t)length) fail("cannot write", file);
    close(fd);
}

/* Start the command as the options ask (see the top of this file); never returns. */
static void launch(int argc, char **argv) {
    struct identity who = {0};
    int mount_ns = 0, pid_ns = 0, init_only = 0, i;
    char pid_text[32];
    int pid_length = snprintf(pid_text, sizeof pid_text, "%d", (int)getpid());

    for (i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *option = argv[i];
        if (!strcmp(option, "-m")) mount_ns = 1;
        else if (!strcmp(option, "-p")) mount_ns = pid_ns = 1;
        else if (!strcmp(option, "-i")) init_only = 1;
        else if (i + 1 >= argc) usage("an option is missing its value");
        else if (!strcmp(option, "-k")) {
            if (i + 2 >= argc) usage("-k needs two values");
            make_cgroup(argv[i + 1], argv[i + 2]);
            i += 2;
        } else if (!strcmp(option, "-w")) {
            if (i + 2 >= argc) usage("-w needs two values");
            write_control(argv[i + 1], argv[i + 2]);
            i += 2;
        } else if (!strcmp(option, "-c")) {
            const char *procs = argv[++i];
            int fd = open(procs, O_WRONLY | O_CLOEXEC);
            if (fd < 0 || write(fd, pid_text, pid_length) != pid_length)
                fail("cannot join the cgroup of", procs);
            close(fd);
        } else if (!strcmp(option, "-b") || !strcmp(option, "-O")) {
            if (i + 2 >= argc) usage("-b and -O need two values");
            i += 2; /* mounted below, once the mount namespace exists */
            mount_ns = 1;
        } else if (!strcmp(option, "-u")) who.set = 1, who.uid = (uid_t)number(argv[++i]);
        else if (!strcmp(option, "-g")) who.set = 1, who.gid = (gid_t)number(argv[++i]);
        else if (!strcmp(option, "-G")) who.set = 1, parse_groups(argv[++i], &who);
        else usage("unknown option");
    }
    if (i + 1 >= argc) usage("no command after --");
    char **command = argv + i + 1;

    if (mount_ns) {
        if (unshare(CLONE_NEWNS | (pid_ns && !cloned_init ? CLONE_NEWPID : 0)))
            fail("cannot create", pid_ns ? "a pid and mount namespace" : "a mount namespace");
        if (mount("none", "/", NULL, MS_REC | MS_PRIVATE, NULL))
            fail("cannot make private", "/");
        for (int j = 1; j < i; j++) {
            if (!strcmp(argv[j], "-b")) {
                if (mount(argv[j + 1], argv[j + 2], NULL, MS_BIND | MS_REC, NULL))
                    fail("cannot bind", argv[j + 1]);
                j += 2;
            } else if (!strcmp(argv[j], "-O")) {
                if (mount("overlay", argv[j + 2], "overlay", 0, argv[j + 1]))
                    fail("cannot mount the overlay at", argv[j + 2]);
                j += 2;
            } else if (!strcmp(argv[j], "-k") || !strcmp(argv[j], "-w")) {
                j += 2;
            } else if (strcmp(argv[j], "-m") && strcmp(argv[j], "-p") && strcmp(argv[j], "-i")) {
                j++; /* the value of -c, -u, -g or -G */
            }
        }
    }

    sigset_t all;
    sigfillset(&all);
    if (init_only) {
        if (report_fd >= 0) close(report_fd);
        report_fd = -1;
        sigprocmask(SIG_BLOCK, &all, NULL);
        be_init(command, &who, &all, 0);
    }
    if (!pid_ns) run_command(command, &who, &all);

    if (report_fd >= 0) close(report_fd); /* inits and their commands report by exit status */
    report_fd = -1;
    sigprocmask(SIG_BLOCK, &all, NULL);
    if (cloned_init) be_init(command, &who, &all, 1); /* pid 1 already: no process outside */
    pid_t init = fork(); /* the first child after unshare(CLONE_NEWPID) is the namespace's pid 1 */
    if (init < 0) fail("cannot fork", "the namespace's init");
    if (init == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* this process killed: the whole namespace goes */
        be_init(command, &who, &all, 1);
    }
    /* Outside the namespace, signals stay blocked: the agent signals the process group,
     * which init shares, and init forwards them. One that came before init existed is
     * pending here (a fork does not inherit it): passed on, it is not lost. */
    sigset_t waiting;
    if (!sigpending(&waiting))
        for (int sig = 1; sig < NSIG; sig++)
            if (sig != SIGCHLD && sigismember(&waiting, sig) == 1) kill(init, sig);
    int status;
    while (waitpid(init, &status, 0) < 0)
        if (errno != EINTR) fail("cannot wait for", "the namespace's init");
    _exit(status_code(status));
}

extern char **environ;

/* A reply: kind ('S' started: a = request id, b = pid, c = its start time in clock ticks
 * after boot, as /proc/PID/stat says, -1 if unknown; 'E' failed: a = request id, b = errno;
 * 'X' exited: a = pid, b = wait status), native byte order. */
static void reply3(int sock, char kind, int64_t a, int64_t b, int64_t c) {
    char message[32] = {0};
    message[0] = kind;
    memcpy(message + 8, &a, sizeof a);
    memcpy(message + 16, &b, sizeof b);
    memcpy(message + 24, &c, sizeof c);
    while (send(sock, message, sizeof message, MSG_NOSIGNAL) < 0)
        if (errno != EINTR) _exit(0); /* the agent is gone */
}

static void reply(int sock, char kind, int64_t a, int64_t b) { reply3(sock, kind, a, b, -1); }

/* Field 22 of /proc/PID/stat (the fields after the command's closing parenthesis start at 3). */
static int64_t start_ticks(pid_t pid) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t length = read(fd, text, sizeof text - 1);
    close(fd);
    if (length <= 0) return -1;
    text[length] = 0;
    char *at = strrchr(text, ')');
    for (int field = 2; at && field < 22; field++) at = strchr(at + 1, ' ');
    return at ? strtoll(at + 1, NULL, 10) : -1;
}

/* Children forked but not answered for yet (their session or exec still to come). */
#define MAX_PENDING 64
struct pending {
    uint64_t id;
    pid_t pid;
    int pipe;
};
static struct pending pending[MAX_PENDING];
static int npending;

static void settle(int sock, int i);

static void reap(int sock) {
    int status;
    pid_t ended;
    while ((ended = waitpid(-1, &status, WNOHANG)) > 0) {
        for (int i = 0; i < npending; i++)
            if (pending[i].pid == ended) settle(sock, i); /* its answer goes before its end */
        reply(sock, 'X', ended, status);
    }
}

/* mkdir -p `path` (its parents with the default mode); 0 or -1 with errno. */
static int make_dirs(char *path) {
    if (!mkdir(path, 0777) || errno == EEXIST) return 0;
    if (errno != ENOENT) return -1;
    char *slash = strrchr(path, '/');
    if (!slash || slash == path) return -1;
    *slash = 0;
    int made = make_dirs(path);
    *slash = '/';
    if (made) return -1;
    return mkdir(path, 0777) && errno != EEXIST ? -1 : 0;
}

/* The sandbox at `cwd` and its output files, opened for appending into `fds`. */
static void make_sandbox(char *cwd, uid_t uid, gid_t gid, int *fds) {
    static const char *names[2] = {"stdout", "stderr"};
    char path[4096];
    if (make_dirs(cwd) || chmod(cwd, SANDBOX_MODE)) fail("cannot create the sandbox", cwd);
    if (uid != (uid_t)-1 && chown(cwd, uid, gid)) fail("cannot give the sandbox to its user", cwd);
    for (int i = 0; i < 2; i++) {
        if (snprintf(path, sizeof path, "%s/%s", cwd, names[i]) >= (int)sizeof path) {
            errno = ENAMETOOLONG;
            fail("cannot create", cwd);
        }
        fds[i] = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, OUTPUT_MODE);
        if (fds[i] < 0) fail("cannot create", path);
        if (uid != (uid_t)-1 && fchown(fds[i], uid, gid)) fail("cannot give to its user", path);
    }
}

/* The PWD variable of `env`, if there is one, set to the physical working directory. */
static void set_pwd(char **env) {
    static char pwd[4 + 4096] = "PWD=";
    if (!getcwd(pwd + 4, sizeof pwd - 4)) fail("cannot read", "the working directory");
    for (; *env; env++)
        if (!strncmp(*env, "PWD=", 4)) *env = pwd;
}

/* The forked child of one request: its own session (made before the server answers, so that
 * a signal sent to the container's process group right after finds it; every signal stays
 * blocked until the command is exec'd or an init takes them, as in an exec'd mesos-launch),
 * the sandbox as working directory, the given output files, the given environment, then the
 * launch its arguments ask for. */
static void start_child(char *cwd, char **args, int argc, char **env, int *fds, int devnull,
                        int report, uint32_t flags, uid_t uid, gid_t gid) {
    report_fd = report;
    if (setsid() < 0) fail("cannot start", "a session");
    if (flags & MAKE_SANDBOX) make_sandbox(cwd, uid, gid, fds);
    if (!(flags & REPORT_EXEC_ERRORS)) {
        close(report_fd); /* the server answers now; the cgroups are made and joined next */
        report_fd = -1;
    }
    if (dup2(devnull, 0) < 0 || dup2(fds[0], 1) < 0 || dup2(fds[1], 2) < 0)
        fail("cannot set up", "the standard files");
    if (fds[0] > 2) close(fds[0]);
    if (fds[1] > 2 && fds[1] != fds[0]) close(fds[1]);
    if (chdir(cwd)) fail("cannot change to", cwd);
    if (flags & PWD_FROM_CWD) set_pwd(env);
    environ = env;
    launch(argc, args);
}

/* Whether a request's options (`argv[1]`.. up to "--") ask for a pid namespace (-p). */
static int asks_pid_namespace(int argc, char **argv) {
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        const char *option = argv[i];
        if (!strcmp(option, "-p")) return 1;
        if (!strcmp(option, "-k") || !strcmp(option, "-w") || !strcmp(option, "-b") ||
            !strcmp(option, "-O"))
            i += 2;
        else if (strcmp(option, "-m") && strcmp(option, "-i"))
            i += 1; /* the value of -c, -u, -g or -G */
    }
    return 0;
}

/* The child of a request. One that asks for a pid namespace is cloned into a new one
 * (CLONE_NEWPID only: its mount namespace, which copies every mount, is made by the child,
 * not by this serial loop), so it is the namespace's init itself: one fork, one process and
 * the copy of the page tables that fork makes fewer per container (ADR 0019, session 17).
 * Where the clone is refused (no privilege), forked: its unshare then fails as it would. */
static pid_t fork_child(int pid_ns, int *cloned) {
    *cloned = 0;
    if (pid_ns) {
        pid_t child = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
        if (child >= 0) {
            *cloned = 1;
            return child;
        }
    }
    return fork();
}

static void spawn(int sock, int sigfd, int devnull, char *request, size_t length, int *fds) {
    uint64_t id;
    uint32_t flags, argc, envc;
    int32_t uid, gid;
    memcpy(&id, request, 8);
    memcpy(&flags, request + 8, 4);
    memcpy(&argc, request + 12, 4);
    memcpy(&envc, request + 16, 4);
    memcpy(&uid, request + 20, 4);
    memcpy(&gid, request + 24, 4);
    if (!(flags & MAKE_SANDBOX) && (fds[0] < 0 || fds[1] < 0)) {
        reply(sock, 'E', (int64_t)id, EBADF);
        return;
    }
    if (argc == 0 || argc > length || envc > length) {
        reply(sock, 'E', (int64_t)id, EINVAL);
        return;
    }
    /* args[0] names the program for launch(), which parses from args[1] */
    char **strings = calloc((size_t)argc + envc + 4, sizeof(char *));
    if (!strings) {
        reply(sock, 'E', (int64_t)id, ENOMEM);
        return;
    }
    char *at = request + REQUEST_HEADER, *end = request + length;
    size_t count = 1 + (size_t)argc + envc, i;
    for (i = 0; i < count && at < end; i++) {
        char *nul = memchr(at, 0, (size_t)(end - at));
        if (!nul) break;
        strings[i] = at;
        at = nul + 1;
    }
    if (i < count) {
        free(strings);
        reply(sock, 'E', (int64_t)id, EINVAL);
        return;
    }
    /* strings: cwd, argc arguments, envc variables; the arguments get a program name in
     * front of them (the cwd's slot) and a NULL after them (the first variable's slot is
     * moved to the end) */
    char *cwd = strings[0];
    char **env = strings + 1 + argc;
    char **args = strings;
    args[0] = "mesos-launch";
    memmove(env + 1, env, envc * sizeof(char *));
    env[0] = NULL;
    env += 1;
    env[envc] = NULL;

    /* The child closes its end of the pipe once its session exists (or, reporting exec
     * errors, at exec), or writes the errno that stopped it. */
    int pipes[2];
    if (pipe2(pipes, O_CLOEXEC)) {
        free(strings);
        reply(sock, 'E', (int64_t)id, errno);
        return;
    }
    sigset_t all, mask;
    sigfillset(&all);
    sigprocmask(SIG_BLOCK, &all, &mask);
    int cloned;
    pid_t child = fork_child(asks_pid_namespace((int)argc + 1, args), &cloned);
    if (child == 0) {
        cloned_init = cloned;
        close(sock);
        close(sigfd);
        close(pipes[0]);
        start_child(cwd, args, (int)argc + 1, env, fds, devnull, pipes[1], flags, (uid_t)uid,
                    (gid_t)gid);
    }
    int error = errno;
    sigprocmask(SIG_SETMASK, &mask, NULL);
    free(strings);
    close(pipes[1]);
    if (child < 0) {
        close(pipes[0]);
        reply(sock, 'E', (int64_t)id, error);
        return;
    }
    /* answered once its pipe says so (`settle`): meanwhile the server forks the next ones */
    pending[npending++] = (struct pending){id, child, pipes[0]};
}

/* Answer the request of pending child `i`, whose pipe is readable (or which has ended). */
static void settle(int sock, int i) {
    struct pending done = pending[i];
    pending[i] = pending[--npending];
    int error = 0;
    ssize_t got;
    do got = read(done.pipe, &error, sizeof error); while (got < 0 && errno == EINTR);
    close(done.pipe);
    if (got == sizeof error) reply(sock, 'E', (int64_t)done.id, error); /* its exit: ignored */
    else reply3(sock, 'S', (int64_t)done.id, done.pid, start_ticks(done.pid));
}

static int serve(int sock) {
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (sigfd < 0 || devnull < 0 || fcntl(sock, F_SETFD, FD_CLOEXEC)) {
        perror("mesos-launch --serve");
        return 1;
    }
    static char request[REQUEST_MAX];
    for (;;) {
        struct pollfd polled[2 + MAX_PENDING] = {{sigfd, POLLIN, 0},
                                                 {npending < MAX_PENDING ? sock : -1, POLLIN, 0}};
        int count = npending;
        for (int i = 0; i < count; i++) polled[2 + i] = (struct pollfd){pending[i].pipe, POLLIN, 0};
        if (poll(polled, 2 + (nfds_t)count, -1) < 0) {
            if (errno == EINTR) continue;
            return 1;
        }
        for (int i = count - 1; i >= 0; i--) /* from the end: `settle` moves the last into i */
            if (polled[2 + i].revents) settle(sock, i);
        if (polled[0].revents & POLLIN) {
            struct signalfd_siginfo info;
            while (read(sigfd, &info, sizeof info) > 0) {}
            reap(sock);
        }
        if (!(polled[1].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        union {
            struct cmsghdr header;
            char space[CMSG_SPACE(2 * sizeof(int))];
        } control;
        struct iovec vector = {request, sizeof request};
        struct msghdr message = {0};
        message.msg_iov = &vector;
        message.msg_iovlen = 1;
        message.msg_control = control.space;
        message.msg_controllen = sizeof control.space;
        ssize_t length = recvmsg(sock, &message, MSG_CMSG_CLOEXEC);
        if (length == 0) return 0; /* the agent closed its end */
        if (length < 0) {
            if (errno == EINTR || errno == EAGAIN) continue;
            return 1;
        }
        int fds[2] = {-1, -1};
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        if (header && header->cmsg_level == SOL_SOCKET && header->cmsg_type == SCM_RIGHTS &&
            header->cmsg_len == CMSG_LEN(2 * sizeof(int)))
            memcpy(fds, CMSG_DATA(header), sizeof fds);
        if (length < REQUEST_HEADER || (message.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
            uint64_t id = 0;
            if (length >= 8) memcpy(&id, request, 8);
            if (fds[0] >= 0) close(fds[0]);
            if (fds[1] >= 0) close(fds[1]);
            reply(sock, 'E', (int64_t)id, EINVAL);
            continue;
        }
        request[length < REQUEST_MAX ? length : REQUEST_MAX - 1] = 0;
        spawn(sock, sigfd, devnull, request, (size_t)length, fds);
        if (fds[0] >= 0) close(fds[0]);
        if (fds[1] >= 0) close(fds[1]);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--serve")) return serve(atoi(argv[2]));
    launch(argc, argv);
    return SETUP_FAILED;
}
