"""Empty cgroups made ahead of launches (cgroup v1; ADR 0014).

Making a container's cgroups is the dearest part of an isolated launch the agent does itself
(a memory cgroup's mkdir takes the kernel ~50 us, cpu and cpuacct ~20 us each), and a burst
of launches pays it hundreds of times in a row. The pool keeps up to `size` empty cgroups per
v1 hierarchy, named `pool-<owner>-<n>` under `<hierarchy>/<cgroups_root>`; a launch takes one
and renames it to its container id (v1 renames a cgroup within its parent: ~10 us, and the
cgroup was never used), in the container's own process (`mesos-launch -k`) where it can.
The pool is refilled in a worker thread once no launch has taken from it for `idle` seconds
and none is `busy` (containers still being started: their processes make and join cgroups,
which the refill's mkdirs would hold up), so a burst is not slowed by its own refill.

    launch --take_name(base)--> pool-<owner>-n --(container's process) rename to id--> its cgroup
    keep() --idle?--> worker thread: mkdir pool-<owner>-m ... --> ready (touched by the loop only)

`<owner>` is the agent process (`<pid>.<start time in clock ticks>`). The pool's cgroups are
never containers: recovery looks only at cgroups named by container ids. `keep` removes what
it holds when it ends (the agent stopping) and, when it starts, the pool cgroups of owners
that no longer run (an agent killed with `kill -9`, this one's earlier run or another's on the
same `--cgroups_root`); a live agent's pool is left alone. A cgroup v2 hierarchy cannot rename
cgroups: there is no pool there (containers' cgroups are made at launch).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable

import structlog

__all__ = ["CgroupPool", "process_identity"]

_log = structlog.get_logger("mesos_agent")

_PREFIX = "pool-"
_CHUNK = 32
"""Cgroups made per hierarchy per worker-thread round (a round takes ~3 ms)."""


def process_identity(pid: int) -> str | None:
    """`<pid>.<start time>` of a running process (its start time in clock ticks after boot,
    from /proc/PID/stat: a reused pid gets another), None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
    except OSError:
        return None
    return f"{pid}.{int(fields[19])}" if len(fields) > 19 else None


def _owner_alive(owner: str) -> bool:
    """Whether the process `owner` (`<pid>.<start time>`) runs; True if it cannot be told."""
    pid, dot, _ = owner.partition(".")
    if not dot or not pid.isdigit():
        return True
    return process_identity(int(pid)) == owner


class CgroupPool:
    """Up to `size` ready cgroups under each of `bases` (`<v1 hierarchy>/<cgroups_root>`),
    owned by `owner` (default: this process), refilled when `busy()` is false. `take_name`
    is called from the event loop; `keep` runs as long as the agent does."""

    def __init__(self, bases: Iterable[str], size: int, *, idle: float = 0.5,
                 owner: str | None = None, busy: Callable[[], bool] = lambda: False) -> None:
        self._bases = tuple(dict.fromkeys(bases))
        owner = owner or process_identity(os.getpid()) or str(os.getpid())
        self._owner = owner
        self._prefix = f"{_PREFIX}{owner}-"
        self._size = size
        self._idle = idle
        self._busy = busy
        self._ready: dict[str, list[str]] = {base: [] for base in self._bases}
        self._made = 0
        self._taken_at = -float("inf")
        self._low = asyncio.Event()
        self._low.set()

    def ready(self, base: str) -> int:
        """How many cgroups are ready under `base`."""
        return len(self._ready.get(base, ()))

    def take_name(self, base: str) -> str:
        """The name of a ready cgroup under `base`, handed over: the taker renames it to a
        container's id (`cgroups.make_cgroup`, or the container's own process with
        `mesos-launch -k`) or removes it; "" when none is ready there. No system call."""
        ready = self._ready.get(base)
        self._taken_at = time.monotonic()
        self._low.set()
        return ready.pop() if ready else ""

    async def keep(self) -> None:
        """Remove the pool cgroups of owners that no longer run, then keep the pool full,
        refilling it once launches pause; on the way out (cancelled), remove every ready
        cgroup."""
        refill: asyncio.Future[dict[str, list[str]]] | None = None
        try:
            await asyncio.to_thread(self._remove_stale)
            while True:
                await self._low.wait()
                while (quiet := time.monotonic() - self._taken_at) < self._idle or self._busy():  # noqa: ASYNC110 (a pause, not a condition)
                    await asyncio.sleep(max(self._idle - quiet, self._idle / 4))
                wanted = {base: min(_CHUNK, self._size - len(self._ready[base]))
                          for base in self._bases}
                if not any(count > 0 for count in wanted.values()):
                    self._low.clear()
                    continue
                names = {base: [self._name() for _ in range(count)]
                         for base, count in wanted.items()}
                refill = asyncio.ensure_future(asyncio.to_thread(_make, names))
                made = await asyncio.shield(refill)
                refill = None
                for base, ready in made.items():
                    self._ready[base].extend(ready)
                if not any(made.values()):
                    self._low.clear()  # cannot make any (logged): tried again after a take
        finally:
            if refill is not None:  # cancelled while the thread makes cgroups: wait for them
                with contextlib.suppress(BaseException):
                    for base, ready in (await refill).items():
                        self._ready[base].extend(ready)
            self.close()

    def close(self) -> None:
        """Remove every ready cgroup (blocking: a few ms)."""
        for base, ready in self._ready.items():
            while ready:
                with contextlib.suppress(OSError):
                    os.rmdir(f"{base}/{ready.pop()}")

    def _name(self) -> str:
        self._made += 1
        return f"{self._prefix}{self._made}"

    def _remove_stale(self) -> None:
        """Remove the pool cgroups whose owner process no longer runs (blocking)."""
        for base in self._bases:
            try:
                names = os.listdir(base)
            except OSError:
                continue
            for name in names:
                if not name.startswith(_PREFIX):
                    continue
                owner = name[len(_PREFIX):].rpartition("-")[0]
                if owner == self._owner or _owner_alive(owner):
                    continue
                try:
                    os.rmdir(f"{base}/{name}")
                except OSError as exc:
                    _log.warning("cannot remove a stale pool cgroup", cgroup=f"{base}/{name}",
                                 error=str(exc))


def _make(names: dict[str, list[str]]) -> dict[str, list[str]]:
    """Make the named cgroups (blocking); those made, per base."""
    made: dict[str, list[str]] = {}
    for base, wanted in names.items():
        made[base] = []
        for name in wanted:
            try:
                os.mkdir(f"{base}/{name}")
            except OSError as exc:
                _log.warning("cannot make a pool cgroup", cgroup=f"{base}/{name}",
                             error=str(exc))
                break
            made[base].append(name)
    return made
