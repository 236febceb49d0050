"""How a container's root process starts: what the isolators asked for (`LaunchInfo`) and the
user it runs as, turned into an argv and the steps its forked child takes before exec.

    agent --vfork+exec--> mesos-launch (joins the cgroups, makes the namespaces, binds mounts,
        is the pid namespace's init, switches user) -> command

where `mesos-launch` (`launch_helper`) could be built; else the same from Debian's programs:

    agent --vfork+exec--> sh (joins the cgroups) -> unshare --mount + sh (bind mounts)
        -> unshare --pid --fork --mount-proc -> tini -g -> setpriv (user) -> command

each step only where the isolators or the user ask for it (ADR 0014). Joining the cgroups
before the command starts means nothing it starts escapes them. A pid namespace needs a fork
after `unshare(CLONE_NEWPID)` and an init that forwards signals and reaps orphans, so no
Python runs between the agent's fork and the command. Both inits report a child killed by
signal N as exit status 128 + N; `Launch.exit_signal` undoes that. `mesos-launch` loses no
signal sent while it starts; `tini` ignores one sent before it has installed its handlers (the
first milliseconds), as any pid 1 does: a kill's grace period then ends in SIGKILL.
"""

from __future__ import annotations

import os
import pwd
import shutil
from collections.abc import Sequence
from dataclasses import dataclass

from mesos_agent.containerizer.launch_helper import launch_helper
from mesos_agent.containers import LaunchInfo

__all__ = [
    "Launch",
    "LaunchTools",
    "UserIdentity",
    "find_launch_tools",
    "plan_launch",
    "resolve_user",
]

_TINI_SIGNAL_BASE = 128


@dataclass(frozen=True, slots=True)
class UserIdentity:
    """A Unix user as a container runs as it: ids, supplementary groups and home."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def environment(self) -> dict[str, str]:
        """What a login would set for this user."""
        return {"USER": self.name, "LOGNAME": self.name, "HOME": self.home}


def resolve_user(name: str) -> UserIdentity:
    """The user `name` (a name or a numeric uid) of this machine; raises LookupError saying
    so when there is none."""
    try:
        entry = pwd.getpwuid(int(name)) if name.isascii() and name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError, ValueError):
        raise LookupError(f"user {name!r} does not exist on this agent") from None
    groups = tuple(os.getgrouplist(entry.pw_name, entry.pw_gid))
    return UserIdentity(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)



@dataclass(frozen=True, slots=True)
class LaunchTools:
    """The programs a launch may wrap a command in (absolute paths; None: not installed).
    `helper` (`mesos-launch`) does what all the others do, with fewer execs."""

    helper: str | None = None
    shell: str = "/bin/sh"
    unshare: str | None = None
    tini: str | None = None
    setpriv: str | None = None
    mount: str | None = None


def find_launch_tools(*, helper: bool = True) -> LaunchTools:
    """`mesos-launch` (built on first use, unless not `helper`), and `sh`, `unshare`, `tini`,
    `setpriv` and `mount` on PATH (or in /usr/bin, /bin)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/usr/sbin", "/bin"])
    found = {name: shutil.which(name, path=search)
             for name in ("sh", "unshare", "tini", "setpriv", "mount")}
    return LaunchTools(launch_helper() if helper else None, found["sh"] or "/bin/sh",
                       found["unshare"], found["tini"], found["setpriv"], found["mount"])


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one container's root process."""

    argv: tuple[str, ...]
    environment: dict[str, str]
    user: UserIdentity | None
    """Who `subprocess` itself switches to (only where `setpriv` is missing)."""
    wrapped: bool
    """The command runs under wrappers (so its argv is given as is, never shortened)."""
    through_init: bool
    """The command runs under `tini`: an exit status 128 + N means signal N."""

    def exit_signal(self, exit_code: int) -> int | None:
        """The signal that ended the command, if `exit_code` is tini's report of one."""
        if self.through_init and _TINI_SIGNAL_BASE < exit_code <= _TINI_SIGNAL_BASE + 64:
            return exit_code - _TINI_SIGNAL_BASE
        return None


# `sh -c JOIN join PROCS... -- COMMAND...`: the shell writes its own pid into each cgroup.procs
# file (so the command, exec'd in its place, starts inside them), then execs the command.
_JOIN_CGROUPS = (
    'p=$$; while [ "$1" != -- ]; do '
    'echo "$p" > "$1" || { echo "cannot join the cgroup of $1" >&2; exit 125; }; shift; done; '
    'shift; exec "$@"'
)
# `sh -c BIND bind MOUNT SOURCE TARGET ... -- COMMAND...`, in a new mount namespace.
_BIND_MOUNTS = (
    'm=$1; shift; while [ "$1" != -- ]; do '
    '"$m" --bind "$1" "$2" || { echo "cannot bind $1 to $2" >&2; exit 125; }; shift 2; done; '
    'shift; exec "$@"'
)


def plan_launch(
    argv: Sequence[str],
    environment: dict[str, str],
    info: LaunchInfo,
    user: UserIdentity | None,
    tools: LaunchTools,
) -> Launch:
    """The launch of `argv` with `info` applied, as `user` (None: the agent's own user).

    With `tools.helper`, `mesos-launch` does it all (`_helper_launch`), the cgroups' making and
    limits included. Else the caller makes `info.cgroups` with their limits first
    (`cgroups.make_cgroups`) and the command is wrapped, innermost first, in `setpriv` (the
    user), `unshare` + `tini` (a pid namespace), `unshare` + a shell binding mounts (a mount
    namespace) and a shell joining the cgroups; each wrapper execs the next, so the
    container's root stays one process (two with a pid namespace: `unshare` waits for
    `tini`). No Python runs between fork and exec, so the agent forks with vfork. Raises
    ValueError when a wrapper's program is missing.
    """
    environment = {**environment, **info.environment}
    if user is not None:
        environment = {**user.environment(), **environment}
    if tools.helper is not None:
        return _helper_launch(argv, environment, info, user, tools.helper)
    command = list(argv)
    popen_user = None
    if user is not None:
        if tools.setpriv is not None:
            groups = ",".join(str(g) for g in user.groups)
            command = [tools.setpriv, f"--reuid={user.uid}", f"--regid={user.gid}",
                       f"--groups={groups}" if groups else "--clear-groups", "--", *command]
        elif info.pid_namespace or info.cgroup_procs or info.bind_mounts:
            raise ValueError("running as another user in isolation needs util-linux' setpriv")
        else:
            popen_user = user
    if info.pid_namespace:
        if tools.unshare is None or tools.tini is None:
            raise ValueError("a pid namespace needs util-linux' unshare and tini on the agent")
        command = [tools.unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "--",
                   tools.tini, "-g", "--", *command]
    if info.mount_namespace or info.bind_mounts:
        if tools.unshare is None or tools.mount is None:
            raise ValueError("a mount namespace needs util-linux' unshare and mount")
        pairs = [path for pair in info.bind_mounts for path in pair]
        command = [tools.unshare, "--mount", "--propagation", "private", "--",
                   tools.shell, "-c", _BIND_MOUNTS, "bind", tools.mount, *pairs, "--", *command]
    if info.cgroup_procs:
        command = [tools.shell, "-c", _JOIN_CGROUPS, "join", *info.cgroup_procs, "--",
                   *command]
    return Launch(tuple(command), environment, popen_user, wrapped=len(command) != len(argv),
                  through_init=info.pid_namespace)


def _helper_launch(
    argv: Sequence[str],
    environment: dict[str, str],
    info: LaunchInfo,
    user: UserIdentity | None,
    helper: str,
) -> Launch:
    """`argv` under `mesos-launch` with the options `info` and `user` ask for (none: as is)."""
    options: list[str] = []
    for path, premade in info.cgroups:  # made, limited, then joined: in this order
        options += ["-k", path, premade]
    for file, value in info.cgroup_writes:
        options += ["-w", file, value]
    for procs in info.cgroup_procs:
        options += ["-c", procs]
    if info.mount_namespace:
        options.append("-m")
    for source, target in info.bind_mounts:
        options += ["-b", source, target]
    if info.pid_namespace:
        options.append("-p")
    if user is not None:
        options += ["-u", str(user.uid), "-g", str(user.gid),
                    "-G", ",".join(str(group) for group in user.groups)]
    if not options:
        return Launch(tuple(argv), environment, None, wrapped=False, through_init=False)
    return Launch((helper, *options, "--", *argv), environment, None, wrapped=True,
                  through_init=info.pid_namespace)
