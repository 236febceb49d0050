"""The sandbox garbage collector's shell: every few seconds it lists the run directories under
`<work_dir>/slaves` and the file system's usage (in a worker thread), asks
`mesos_agent.sandbox_gc` which are due, and deletes those (in a worker thread).

Which containers are live is asked right after the listing and again just before deleting, so
a sandbox whose container is being launched (the containerizer counts it live from before the
sandbox is made) is never deleted. It runs only after the agent recovered its containers.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Awaitable, Callable, Collection
from pathlib import Path

import structlog

from mesos_agent.paths import from_path_component
from mesos_agent.sandbox_gc import RunDirectory, due_for_deletion

__all__ = ["SandboxCollector", "disk_usage", "run_directories"]

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("mesos_agent")

_MIN_INTERVAL = 0.5  # the shortest interval gc_delay / 2 makes


def run_directories(work_dir: Path) -> list[RunDirectory]:
    """Every sandbox under `work_dir` with its container id and mtime (blocking)."""
    runs = []
    for run in (work_dir / "slaves").glob("*/frameworks/*/executors/*/runs/*"):
        if run.name == "latest" or run.is_symlink():
            continue
        try:
            modified = run.stat().st_mtime
        except FileNotFoundError:
            continue
        runs.append(RunDirectory(run, from_path_component(run.name), modified))
    return runs


def disk_usage(path: Path) -> float:
    """The used fraction (0..1) of the file system holding `path` (blocking)."""
    stats = os.statvfs(path)
    if stats.f_blocks == 0:
        return 0.0
    return (stats.f_blocks - stats.f_bfree) / stats.f_blocks


class SandboxCollector:
    """Deletes sandboxes of finished containers after `gc_delay`, sooner as the disk fills
    (see `mesos_agent.sandbox_gc`). `live` names the containers whose sandboxes are kept;
    `reclaim` frees other disk (unused images) whenever less than `headroom` is free. It looks
    every `watch_interval` (`--disk_watch_interval`), or every `gc_delay / 2` when shorter."""

    def __init__(
        self,
        work_dir: Path,
        live: Callable[[], Collection[str]],
        *,
        gc_delay: float,
        headroom: float,
        agent_id: Callable[[], str],
        reclaim: Callable[[], Awaitable[None]] | None = None,
        watch_interval: float = 5.0,
    ) -> None:
        self._work_dir = work_dir
        self._reclaim = reclaim
        self._live = live
        self._gc_delay = gc_delay
        self._headroom = headroom
        self._agent_id = agent_id
        self.interval = min(watch_interval, max(_MIN_INTERVAL, gc_delay / 2))

    async def run(self) -> None:
        """Collect every `interval` until cancelled."""
        while True:
            try:
                await self.collect()
            except OSError as exc:
                log.warning("sandbox GC pass failed", agent_id=self._agent_id(), error=str(exc))
            await asyncio.sleep(self.interval)

    async def collect(self) -> list[Path]:
        """One pass: delete what is due; returns the sandboxes deleted."""
        runs, usage = await asyncio.to_thread(self._scan)
        if self._reclaim is not None and usage > 1.0 - self._headroom:
            await self._reclaim()  # e.g. unused image layers, before any sandbox goes early
        due = due_for_deletion(runs, live=set(self._live()), now=time.time(),
                               gc_delay=self._gc_delay, headroom=self._headroom, usage=usage)
        if not due:
            return []
        live = set(self._live())
        doomed = [run for run in due if run.container_id not in live]
        await asyncio.to_thread(_delete, [run.path for run in doomed])
        for run in doomed:
            log.info("deleted the sandbox of a finished container", agent_id=self._agent_id(),
                     container_id=run.container_id, sandbox=str(run.path),
                     age_seconds=round(time.time() - run.modified, 1),
                     disk_usage=round(usage, 3))
        return [run.path for run in doomed]

    def _scan(self) -> tuple[list[RunDirectory], float]:
        return run_directories(self._work_dir), disk_usage(self._work_dir)


def _delete(paths: list[Path]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
