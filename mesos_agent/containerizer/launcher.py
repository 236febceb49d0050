"""How a container's root process starts: what the isolators asked for (`LaunchInfo`) and the
user it runs as, turned into an argv and the steps its forked child takes before exec.

    agent --fork--> child: join cgroups, [private mount namespace, bind mounts], [user] --exec-->
        command                                                  (no pid namespace)
        unshare --pid --fork --mount-proc -> tini -g -> setpriv (user) -> command
                                                                 (pid namespace, ADR 0014)

Joining the cgroups in the child, before exec, means nothing the command starts escapes them.
A pid namespace needs a fork after `unshare(CLONE_NEWPID)` and an init that forwards signals
and reaps orphans: util-linux' `unshare` and `tini` (Debian's `tini`) do that, so no Python runs
in the container and a launch costs two small execs more. `tini` reports a child killed by
signal N as exit status 128 + N; `Launch.exit_signal` undoes that.
"""

from __future__ import annotations

import ctypes
import grp
import os
import pwd
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mesos_agent.containers import LaunchInfo

__all__ = [
    "Launch",
    "LaunchTools",
    "UserIdentity",
    "find_launch_tools",
    "plan_launch",
    "resolve_user",
]

_CLONE_NEWNS = 0x00020000
_MS_BIND = 4096
_MS_REC = 16384
_MS_PRIVATE = 1 << 18
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


def group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


@dataclass(frozen=True, slots=True)
class LaunchTools:
    """The programs a pid namespace needs (absolute paths)."""

    unshare: str
    tini: str
    setpriv: str


def find_launch_tools() -> LaunchTools | None:
    """`unshare`, `tini` and `setpriv` on PATH (or in /usr/bin), None if one is missing."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/bin", "/usr/sbin", "/bin"])
    found = [shutil.which(name, path=search) for name in ("unshare", "tini", "setpriv")]
    if any(path is None for path in found):
        return None
    unshare, tini, setpriv = found
    assert unshare and tini and setpriv
    return LaunchTools(unshare, tini, setpriv)


@dataclass(frozen=True, slots=True)
class Launch:
    """How to start one container's root process."""

    argv: tuple[str, ...]
    environment: dict[str, str]
    in_child: Callable[[], None] | None
    """Run in the forked child before exec (`preexec_fn`); None when nothing is needed."""
    user: UserIdentity | None
    """Who `subprocess` itself switches to (when `in_child` does not)."""
    through_init: bool
    """The command runs under `tini`: an exit status 128 + N means signal N."""

    def exit_signal(self, exit_code: int) -> int | None:
        """The signal that ended the command, if `exit_code` is tini's report of one."""
        if self.through_init and _TINI_SIGNAL_BASE < exit_code <= _TINI_SIGNAL_BASE + 64:
            return exit_code - _TINI_SIGNAL_BASE
        return None


def plan_launch(
    argv: Sequence[str],
    environment: dict[str, str],
    info: LaunchInfo,
    user: UserIdentity | None,
    tools: LaunchTools | None,
) -> Launch:
    """The launch of `argv` with `info` applied, as `user` (None: the agent's own user).

    Raises ValueError when a pid namespace is asked for without `tools`."""
    environment = {**environment, **info.environment}
    if user is not None:
        environment = {**user.environment(), **environment}
    if info.pid_namespace:
        if tools is None:
            raise ValueError("a pid namespace needs unshare, tini and setpriv on the agent")
        prefix = [tools.unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "--",
                  tools.tini, "-g", "--"]
        if user is not None:
            groups = ",".join(str(g) for g in user.groups)
            prefix += [tools.setpriv, f"--reuid={user.uid}", f"--regid={user.gid}",
                       f"--groups={groups}" if groups else "--clear-groups", "--"]
        in_child = _child_setup(info, None)
        return Launch((*prefix, *argv), environment, in_child, None, through_init=True)
    in_child = _child_setup(info, user)
    return Launch(tuple(argv), environment, in_child, None if in_child else user,
                  through_init=False)


def _child_setup(info: LaunchInfo, user: UserIdentity | None) -> Callable[[], None] | None:
    """The steps the forked child takes before exec, None if there are none (the launch then
    keeps `subprocess`' fast vfork path)."""
    procs = [path.encode() for path in info.cgroup_procs]
    mounts = [(source.encode(), target.encode()) for source, target in info.bind_mounts]
    private_mounts = info.mount_namespace or bool(mounts)
    if not procs and not private_mounts:
        return None

    def in_child() -> None:
        pid = str(os.getpid()).encode()
        for path in procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)
        if private_mounts:
            _unshare_mounts(mounts)
        if user is not None:
            os.setgroups(list(user.groups))
            os.setgid(user.gid)
            os.setuid(user.uid)

    return in_child


_libc = ctypes.CDLL(None, use_errno=True)


def _unshare_mounts(mounts: Sequence[tuple[bytes, bytes]]) -> None:
    """A private mount namespace, with `mounts` bound inside it (in the forked child)."""
    _check(_libc.unshare(_CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    _check(_libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None), "making / private")
    for source, target in mounts:
        _check(_libc.mount(source, target, None, _MS_BIND | _MS_REC, None),
               f"binding {source.decode()} to {target.decode()}")


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
