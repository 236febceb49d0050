"""The kernel's control groups, v1 (one hierarchy per controller, e.g. /sys/fs/cgroup/memory)
and v2 (one unified hierarchy): finding them, and making, limiting, reading and removing a
container's cgroups (ADR 0014).

A container's cgroup is `<hierarchy>/<cgroups_root>/<container_id>` in each hierarchy it uses.
`Cgroups` hides the version: the isolators (`mesos_agent.containerizer.isolators`) ask for
controllers ("cpu", "cpuacct", "memory", "pids") and values, never for file names. With a
`CgroupPool` (`mesos_agent.containerizer.cgroup_pool`, v1 only) a container's cgroup is an
empty one made ahead of time and renamed, not made at launch.

An isolated launch only *plans* its cgroups on the agent's event loop (`reserve`: a path and
a premade cgroup's name, no system call); the container's own process makes them, writes its
limits and joins them (`mesos-launch -k/-w/-c`), else `make_cgroups` does it in the agent
(ADR 0014, decision 9).
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

__all__ = [
    "Cgroups",
    "CgroupsUnavailable",
    "Mounts",
    "default_isolation",
    "make_cgroup",
    "make_cgroups",
    "mounts_under",
    "parse_mounts",
    "stat_fields",
]

_KILL_ROUNDS = 50
_KILL_PAUSE = 0.02


class CgroupsUnavailable(Exception):
    """This machine cannot provide a cgroup controller; the message says why."""


class PremadeCgroups(Protocol):
    """Empty cgroups made ahead of launches (`cgroup_pool.CgroupPool`)."""

    def take_name(self, base: str) -> str:
        """The name of a ready cgroup under `base` (a hierarchy's `<mount>/<root>`), no
        longer the pool's: whoever makes the container's cgroup renames it; "" when none."""
        ...


@dataclass(frozen=True, slots=True)
class Mounts:
    """Where the cgroup file systems are mounted: v1 controller -> mount point, and the v2
    unified hierarchy (None if none is mounted)."""

    v1: Mapping[str, Path]
    v2: Path | None


def parse_mounts(text: str) -> Mounts:
    """The cgroup mounts in `/proc/self/mounts` text."""
    v1: dict[str, Path] = {}
    v2: Path | None = None
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        kind, target, options = fields[2], Path(_unescape(fields[1])), fields[3].split(",")
        if kind == "cgroup2" and v2 is None:
            v2 = target
        elif kind == "cgroup":
            for option in options:
                if option in _V1_CONTROLLERS:
                    v1.setdefault(option, target)
    return Mounts(v1, v2)


_V1_CONTROLLERS = frozenset(
    {"cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "hugetlb",
     "net_cls", "net_prio", "perf_event", "rdma", "misc"})


def _unescape(field: str) -> str:
    """/proc/mounts escapes blanks as octal (`\\040`)."""
    return field.replace("\\040", " ").replace("\\011", "\t").replace("\\134", "\\")


def _read_mounts() -> Mounts:
    try:
        return parse_mounts(Path("/proc/self/mounts").read_text())
    except OSError:
        return Mounts({}, None)


class Cgroups:
    """Containers' cgroups under `root` (`--cgroups_root`), on either cgroup version.

    v1 is used for every controller mounted as a v1 hierarchy; the unified hierarchy serves
    controllers listed in its `cgroup.controllers` (on a v2-only machine: all of them).
    """

    def __init__(self, mounts: Mounts, root: str) -> None:
        self._mounts = mounts
        self._root = root.strip("/")
        self._v2_controllers: frozenset[str] = frozenset()
        if mounts.v2 is not None:
            with contextlib.suppress(OSError):
                self._v2_controllers = frozenset(
                    (mounts.v2 / "cgroup.controllers").read_text().split())
        self._bases: dict[str, str] = {}  # controller -> "<hierarchy>/<root>", as a string
        self.premade: PremadeCgroups | None = None
        """Where `create` takes a v1 cgroup from before making one (set by the owner)."""

    @property
    def root(self) -> str:
        return self._root

    def version(self, controller: str) -> int:
        """1 or 2: which hierarchy serves `controller`; raises CgroupsUnavailable."""
        if controller in self._mounts.v1:
            return 1
        v2_name = "cpu" if controller == "cpuacct" else controller
        if v2_name in self._v2_controllers:
            return 2
        mounted = ", ".join(sorted(self._mounts.v1)) or "none"
        unified = (f"the unified hierarchy at {self._mounts.v2} offers "
                   f"{', '.join(sorted(self._v2_controllers)) or 'none'}"
                   if self._mounts.v2 is not None else "no unified hierarchy is mounted")
        raise CgroupsUnavailable(
            f"the {controller!r} cgroup controller is not available: v1 hierarchies mounted: "
            f"{mounted}; {unified}")

    def hierarchy(self, controller: str) -> Path:
        """The mount point serving `controller`."""
        if self.version(controller) == 1:
            return self._mounts.v1[controller]
        assert self._mounts.v2 is not None
        return self._mounts.v2

    def check(self, controller: str) -> None:
        """Raise CgroupsUnavailable unless containers' cgroups can be made for `controller`."""
        base = self.hierarchy(controller) / self._root
        try:
            base.mkdir(parents=True, exist_ok=True)
            if self.version(controller) == 2:
                self._enable_v2(controller)
        except OSError as exc:
            raise CgroupsUnavailable(
                f"cannot make cgroups under {base}: {exc.strerror or exc} (the agent must run "
                "as root with the cgroup file system writable)") from exc

    def base(self, controller: str) -> str:
        """`<hierarchy>/<root>` of `controller`, where its containers' cgroups are."""
        base = self._bases.get(controller)
        if base is None:
            base = self._bases[controller] = str(self.hierarchy(controller) / self._root)
        return base

    def path(self, controller: str, container_id: str) -> Path:
        """The container's cgroup in the hierarchy serving `controller`."""
        return self.hierarchy(controller) / self._root / container_id

    def reserve(self, controller: str, container_id: str) -> tuple[str, str]:
        """The container's cgroup to make, as (path, premade): v1 names a premade cgroup of the
        pool to rename to it if there is one ("" if not); v2 enables the controller under the
        root first. No cgroup is made here (`make_cgroup` or `mesos-launch -k` makes it)."""
        base = self.base(controller)
        premade = ""
        if self.version(controller) == 2:
            self._enable_v2(controller)
        elif self.premade is not None:
            premade = self.premade.take_name(base)
        return f"{base}/{container_id}", premade

    def create(self, controller: str, container_id: str) -> str:
        """Make the container's cgroup now (v1: from a premade one if there is one); its path.
        Blocking, but short: a rename, or a mkdir (a memory cgroup's takes ~50 us)."""
        path, premade = self.reserve(controller, container_id)
        make_cgroup(path, premade)
        return path

    def _enable_v2(self, controller: str) -> None:
        """Let the cgroups under the root use `controller` (v2 enables controllers top-down)."""
        assert self._mounts.v2 is not None
        name = "cpu" if controller == "cpuacct" else controller
        level = self._mounts.v2
        for part in ("", *self._root.split("/")):
            if part:
                level = level / part
                level.mkdir(exist_ok=True)
            control = level / "cgroup.subtree_control"
            if name not in control.read_text().split():
                control.write_text(f"+{name}")

    def exists(self, controller: str, container_id: str) -> bool:
        return self.path(controller, container_id).is_dir()

    def containers(self, controller: str) -> set[str]:
        """The container ids with a cgroup under the root in `controller`'s hierarchy."""
        base = self.hierarchy(controller) / self._root
        try:
            return {entry.name for entry in base.iterdir() if entry.is_dir()}
        except OSError:
            return set()

    def procs_file(self, controller: str, container_id: str) -> str:
        return f"{self.base(controller)}/{container_id}/cgroup.procs"

    def read(self, controller: str, container_id: str, name: str) -> str:
        """A control file's content (`name` in the file naming of the serving version)."""
        return (self.path(controller, container_id) / name).read_text()

    def control_file(self, controller: str, container_id: str, name: str) -> str:
        """The path of the container's control file `name` in `controller`'s hierarchy."""
        return f"{self.base(controller)}/{container_id}/{name}"

    def write(self, controller: str, container_id: str, name: str, value: str) -> None:
        write_control(self.control_file(controller, container_id, name), value)

    def pids(self, controller: str, container_id: str) -> list[int]:
        try:
            return [int(p) for p in self.read(controller, container_id, "cgroup.procs").split()]
        except (OSError, ValueError):
            return []

    def destroy(self, controller: str, container_id: str) -> None:
        """Kill every process in the container's cgroup and remove it (blocking; a cgroup
        that is already gone is fine)."""
        path = self.path(controller, container_id)
        if not path.is_dir():
            return
        for _ in range(_KILL_ROUNDS):
            pids = self.pids(controller, container_id)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(_KILL_PAUSE)
        for _ in range(_KILL_ROUNDS):
            try:
                path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise
                time.sleep(_KILL_PAUSE)  # the last processes are still exiting


def make_cgroup(path: str, premade: str) -> None:
    """Make the cgroup `path`: rename the premade empty cgroup `premade` (a name in the same
    parent; "" for none) to it, else mkdir it (and its parents). A premade cgroup that cannot
    take the name is removed, not leaked. What `mesos-launch -k` does (ADR 0014)."""
    if premade:
        parent = path.rpartition("/")[0]
        try:
            os.rename(f"{parent}/{premade}", path)
            return
        except FileNotFoundError:
            pass  # removed behind the pool's back
        except OSError:
            with contextlib.suppress(OSError):
                os.rmdir(f"{parent}/{premade}")
    try:
        os.mkdir(path)
    except FileExistsError:
        pass
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


def make_cgroups(cgroups: Sequence[tuple[str, str]], writes: Sequence[tuple[str, str]]) -> None:
    """Make `cgroups` ((path, premade) pairs, `make_cgroup`) and write their control files
    (`writes`: (file, value)), as `mesos-launch -k ... -w ...` does in a container's process
    (blocking). For launches without `mesos-launch`, and for image containers, whose runtime
    joins cgroups that exist."""
    for path, premade in cgroups:
        make_cgroup(path, premade)
    for file, value in writes:
        write_control(file, value)


def write_control(file: str, value: str) -> None:
    """Write `value` into the control file `file` (created if missing: only a test's plain
    file tree lacks it)."""
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def stat_fields(text: str) -> dict[str, int]:
    """`key value` lines (cpu.stat, memory.stat, memory.events) as a dict."""
    result: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            result[key] = int(value)
    return result


def default_isolation(hierarchy: Path) -> tuple[str, ...]:
    """`--isolation`'s default: cgroups/cpu,cgroups/mem where the agent is root and the
    machine has cpu and memory cgroups under `hierarchy` that it may write (not, e.g., the
    read-only /sys/fs/cgroup of an unprivileged container), else posix/cpu,posix/mem."""
    cgroups = Cgroups(mounts_under(hierarchy), "")
    usable = os.geteuid() == 0 and all(
        _served(cgroups, c) and os.access(cgroups.hierarchy(c), os.W_OK)
        for c in ("cpu", "memory"))
    return ("cgroups/cpu", "cgroups/mem") if usable else ("posix/cpu", "posix/mem")


def _served(cgroups: Cgroups, controller: str) -> bool:
    try:
        cgroups.version(controller)
    except CgroupsUnavailable:
        return False
    return True


def mounts_under(hierarchy: Path) -> Mounts:
    """The cgroup mounts at or below `hierarchy` (`--cgroups_hierarchy`)."""
    mounts = _read_mounts()
    return Mounts({c: p for c, p in mounts.v1.items() if p.is_relative_to(hierarchy)},
                  mounts.v2 if mounts.v2 is not None and mounts.v2.is_relative_to(hierarchy)
                  else None)

