"""Empty cgroups made ahead of launches (cgroup v1; ADR 0014).

Making a container's cgroups is the dearest part of an isolated launch the agent does itself
(a memory cgroup's mkdir takes the kernel ~50 us, cpu and cpuacct ~20 us each), and a burst
of launches pays it hundreds of times in a row. The pool keeps up to `size` empty cgroups per
v1 hierarchy, named `pool-<owner>-<incarnation>-<n>` under `<hierarchy>/<cgroups_root>`; a
launch takes one by renaming it to its container id (v1 renames a cgroup within its parent:
~10 us, and the cgroup was never used). The pool is refilled in a worker thread once no
launch has taken from it for `idle` seconds, so a burst is not slowed by its own refill.

    launch --take(base, id): rename pool-...-n -> id------> the container's cgroup
    keep() --idle?--> worker thread: mkdir pool-...-m ... --> ready (touched by the loop only)

`<owner>` names the agent (a hash of its work directory): agents sharing a host and a
`--cgroups_root` never take or remove each other's. The pool's cgroups are never containers:
recovery looks only at cgroups named by container ids, and `keep` first removes what an
earlier incarnation of the same agent left (killed, it could not), and, when it ends, what it
holds. A cgroup v2 hierarchy cannot rename cgroups: there is no pool (containers' cgroups are
made at launch).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import structlog

__all__ = ["CgroupPool", "owner_token"]

_log = structlog.get_logger("mesos_agent")

_PREFIX = "pool-"
_CHUNK = 32
"""Cgroups made per hierarchy per worker-thread round (a round takes ~3 ms)."""


def owner_token(work_dir: Path) -> str:
    """Who a pool belongs to: the same for every incarnation of the agent of `work_dir`."""
    return hashlib.sha256(os.fsencode(os.path.abspath(work_dir))).hexdigest()[:12]


class CgroupPool:
    """Up to `size` ready cgroups under each of `bases` (`<v1 hierarchy>/<cgroups_root>`),
    owned by `owner`. `take` is called from the event loop; `keep` runs as long as the
    agent does."""

    def __init__(self, bases: Iterable[str], owner: str, size: int, *,
                 idle: float = 0.5) -> None:
        self._bases = tuple(dict.fromkeys(bases))
        self._owner = f"{_PREFIX}{owner}-"
        self._prefix = f"{self._owner}{uuid.uuid4().hex[:8]}-"
        self._size = size
        self._idle = idle
        self._ready: dict[str, list[str]] = {base: [] for base in self._bases}
        self._made = 0
        self._taken_at = -float("inf")
        self._low = asyncio.Event()
        self._low.set()

    def ready(self, base: str) -> int:
        """How many cgroups are ready under `base`."""
        return len(self._ready.get(base, ()))

    def take(self, base: str, name: str) -> bool:
        """Rename a ready cgroup under `base` to `name`; False when none is ready there."""
        ready = self._ready.get(base)
        self._taken_at = time.monotonic()
        self._low.set()
        while ready:
            try:
                os.rename(f"{base}/{ready.pop()}", f"{base}/{name}")
                return True
            except FileNotFoundError:
                continue  # removed behind the pool's back: try the next
            except OSError:
                return False  # e.g. `name` exists: the caller makes it as without a pool
        return False

    async def keep(self) -> None:
        """Remove what earlier incarnations left, then keep the pool full, refilling it once
        launches pause; on the way out (cancelled), remove every ready cgroup."""
        refill: asyncio.Future[dict[str, list[str]]] | None = None
        try:
            await asyncio.to_thread(self._remove_stale)
            while True:
                await self._low.wait()
                while (quiet := time.monotonic() - self._taken_at) < self._idle:  # noqa: ASYNC110 (a pause, not a condition)
                    await asyncio.sleep(self._idle - quiet)
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
        """Remove this owner's pool cgroups that are not ready here: an earlier
        incarnation's (blocking)."""
        for base in self._bases:
            ours = set(self._ready[base])
            try:
                names = os.listdir(base)
            except OSError:
                continue
            for name in names:
                if name.startswith(self._owner) and name not in ours:
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
