/*
 * mesos-launch: starts one container's root process as the agent's isolators ask (ADR 0014).
 *
 *   mesos-launch [-c CGROUP_PROCS]... [-m] [-b SOURCE TARGET]... [-O OPTIONS TARGET] [-p]
 *                [-u UID -g GID -G GID,GID,...] -- COMMAND [ARG]...
 *
 *   -c  write this process's pid into a cgroup.procs file (before anything else: nothing the
 *       command starts escapes the cgroup)
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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_GROUPS 256
#define SETUP_FAILED 125

static void fail(const char *what, const char *detail) {
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

int main(int argc, char **argv) {
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
        else if (!strcmp(option, "-c")) {
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
        if (unshare(CLONE_NEWNS | (pid_ns ? CLONE_NEWPID : 0)))
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
            } else if (strcmp(argv[j], "-m") && strcmp(argv[j], "-p") && strcmp(argv[j], "-i")) {
                j++; /* the value of -c, -u, -g or -G */
            }
        }
    }

    sigset_t all;
    sigfillset(&all);
    if (init_only) {
        sigprocmask(SIG_BLOCK, &all, NULL);
        be_init(command, &who, &all, 0);
    }
    if (!pid_ns) run_command(command, &who, &all);

    sigprocmask(SIG_BLOCK, &all, NULL);
    pid_t init = fork(); /* the first child after unshare(CLONE_NEWPID) is the namespace's pid 1 */
    if (init < 0) fail("cannot fork", "the namespace's init");
    if (init == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* this process killed: the whole namespace goes */
        be_init(command, &who, &all, 1);
    }
    /* Outside the namespace, signals stay blocked: the agent signals the process group,
     * which init shares, and init forwards them. */
    int status;
    while (waitpid(init, &status, 0) < 0)
        if (errno != EINTR) fail("cannot wait for", "the namespace's init");
    _exit(status_code(status));
}
