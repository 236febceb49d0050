"""`disk/du`: each container's sandbox measured with `du -k -s` every
`--container_disk_watch_interval`; with `--enforce_container_disk_quota`, a container whose
sandbox outgrows its `disk` resource is destroyed and ends with
REASON_CONTAINER_LIMITATION_DISK (Mesos' `disk/du` isolator).

The measuring loop of a container is its `watch`, which the containerizer runs from the start
of the container until it is destroyed: so at most one `du` runs per container, as a
subprocess the loop only waits for. A container without a `disk` resource is measured but not
limited. After an agent restart the quota of a recovered container is not known (the
checkpoint holds its process, not its resources): it is measured, and limited again once
`update` gives its resources (the agent does so for its command tasks as it recovers them).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from mesos_agent.containerizer.base import Limitation, NoopIsolator
from mesos_agent.containers import ContainerConfig, ContainerProcess, LaunchInfo
from mesos_values.resources import Resources
from protos import mesos_pb2

__all__ = ["DiskDuIsolator", "disk_limitation", "format_bytes", "parse_du", "quota_bytes"]

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("mesos_agent")

_MB = 1024 * 1024
_KB = 1024


def quota_bytes(resources: Resources) -> int | None:
    """The `disk` of `resources` in bytes; None when there is none (nothing to enforce)."""
    disk = float(resources.scalar("disk"))
    return int(disk * _MB) if disk > 0 else None


def parse_du(output: str) -> int | None:
    """The bytes `du -k -s` reports (its first field is KiB); None if it reports nothing."""
    fields = output.split()
    try:
        return int(fields[0]) * _KB if fields else None
    except ValueError:
        return None


def format_bytes(size: int) -> str:
    """Sizes as Mesos words them: in the largest unit that divides them ("10MB", "12800KB")."""
    for unit, factor in (("GB", 1024 * _MB), ("MB", _MB), ("KB", _KB)):
        if size >= factor and size % factor == 0:
            return f"{size // factor}{unit}"
    return f"{size}B"


def disk_limitation(used: int, quota: int | None) -> Limitation | None:
    """The limitation of a sandbox using `used` bytes under `quota` (None: no limit)."""
    if quota is None or used <= quota:
        return None
    return Limitation(
        mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION_DISK,
        f"Disk usage ({format_bytes(used)}) exceeds quota ({format_bytes(quota)})",
    )


@dataclass(slots=True)
class _Measured:
    sandbox: Path
    quota: int | None
    used: int | None = None


class DiskDuIsolator(NoopIsolator):
    """`disk/du`: sandbox usage from `du`, the `disk` quota enforced when `enforce`."""

    name = "disk/du"
    enforces_limits = True  # `watch` also measures when the quota is not enforced

    def __init__(self, *, enforce: bool, interval: float) -> None:
        self._enforce = enforce
        self._interval = interval
        self._containers: dict[str, _Measured] = {}

    async def recover(
        self, containers: Sequence[ContainerProcess], orphans: Collection[str]
    ) -> None:
        for container in containers:
            self._containers[container.container_id] = _Measured(container.sandbox, None)

    async def prepare(self, config: ContainerConfig) -> LaunchInfo | None:
        self._containers[config.container_id] = _Measured(
            config.sandbox, quota_bytes(config.resources))
        return None

    async def update(self, container_id: str, resources: Resources) -> None:
        measured = self._containers.get(container_id)
        if measured is not None:
            measured.quota = quota_bytes(resources)

    async def watch(self, container_id: str) -> Limitation:
        """Measure the sandbox every interval; resolves once it is over its quota (never when
        the quota is not enforced)."""
        while True:
            measured = self._containers.get(container_id)
            if measured is not None:
                used = await _du(measured.sandbox)
                if used is not None:
                    measured.used = used
                    limitation = disk_limitation(used, measured.quota)
                    if limitation is not None and self._enforce:
                        return limitation
            await asyncio.sleep(self._interval)

    async def limitation(self, container_id: str) -> Limitation | None:
        """A quota the last measurement found exceeded (the root ended before `watch` saw it)."""
        measured = self._containers.get(container_id)
        if not self._enforce or measured is None or measured.used is None:
            return None
        return disk_limitation(measured.used, measured.quota)

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        statistics = mesos_pb2.ResourceStatistics()
        measured = self._containers.get(container_id)
        if measured is None:
            return statistics
        if measured.used is not None:
            statistics.disk_used_bytes = measured.used
        if measured.quota is not None:
            statistics.disk_limit_bytes = measured.quota
        return statistics

    async def cleanup(self, container_id: str) -> None:
        self._containers.pop(container_id, None)


async def _du(sandbox: Path) -> int | None:
    """`du -k -s sandbox` in bytes; None when it cannot say (the sandbox is gone, du failed)."""
    try:
        process = await asyncio.create_subprocess_exec(
            "du", "-k", "-s", str(sandbox),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except OSError as exc:
        log.warning("cannot run du", sandbox=str(sandbox), error=str(exc))
        return None
    try:
        output, errors = await process.communicate()
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        # du still reports a total when some entries vanished while it ran; trust it if so.
        log.debug("du reported errors", sandbox=str(sandbox), returncode=process.returncode,
                  errors=errors.decode(errors="replace")[-500:])
    return parse_du(output.decode(errors="replace"))
