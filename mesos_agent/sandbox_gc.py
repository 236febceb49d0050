"""Which sandboxes of finished containers are due for deletion (a pure core).

A run directory (`.../executors/<executor_id>/runs/<container_id>`, see `mesos_agent.paths`)
whose container is not live is deleted once it is older than the age allowed now, counted from
its mtime (the containerizer touches a sandbox when its container ends, so the age survives an
agent restart). The age allowed follows Mesos' `--gc_delay` and `--gc_disk_headroom`:

    allowed age = gc_delay * max(0, 1 - gc_disk_headroom - disk usage)

where disk usage is the used fraction of the work directory's file system. On an empty disk
with the default headroom (0.1) that is 0.9 * gc_delay; it shrinks as the disk fills, and once
less than `gc_disk_headroom` of it is free every finished sandbox is due at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["RunDirectory", "allowed_age", "due_for_deletion"]


@dataclass(frozen=True, slots=True)
class RunDirectory:
    """A sandbox on disk: its path, the container it belongs to and its mtime."""

    path: Path
    container_id: str
    modified: float


def allowed_age(gc_delay: float, headroom: float, usage: float) -> float:
    """How old a finished sandbox may get with `usage` (0..1) of the disk used."""
    return gc_delay * max(0.0, 1.0 - headroom - usage)


def due_for_deletion(
    runs: Iterable[RunDirectory],
    *,
    live: Collection[str],
    now: float,
    gc_delay: float,
    headroom: float,
    usage: float,
) -> list[RunDirectory]:
    """The run directories to delete now, oldest first; never one of a `live` container."""
    age = allowed_age(gc_delay, headroom, usage)
    due = [run for run in runs
           if run.container_id not in live and now - run.modified >= age]
    return sorted(due, key=lambda run: run.modified)
