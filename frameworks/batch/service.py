"""The batch framework process: `BatchCore` hosted by `frameworks.service_host.ServiceHost`
(election, terms, the store, the scheduler driver, the tick loop); the REST API
(`frameworks.batch.api`) works on the leader's core.

    BatchService.run()  (ServiceHost.run)
      term: Recovered.decode(entries) ─▶ BatchCore(recovered, DriverActions(driver), wall clock)
      not leading: `core` is None; the API forwards to the leader or answers 503

The driver's callbacks run in this loop and call the core; runs changed by status updates are
written `FLUSH_DELAY_SECONDS` after the first change (`BatchCore.flush`), so a stream of updates
costs one encoding and one write per run that often, not one per update.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from frameworks.actions import SchedulerActions
from frameworks.batch.core import KINDS, BatchCore, Recovered
from frameworks.service_host import CoreScheduler, ServiceConfig, ServiceHost, TermCore
from mesos_coordination.store import Sink
from mesos_runtime.clock import Clock, WallClock, WarpedWallClock

__all__ = ["FLUSH_DELAY_SECONDS", "VERSION", "BatchConfig", "BatchService"]

log = structlog.get_logger("frameworks.batch")

VERSION = "0.6.0-pymesos"
FLUSH_DELAY_SECONDS = 0.05
"""How long runs changed by status updates wait to be written, gathering further changes."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchConfig(ServiceConfig):
    """Flags of the `mesos-batch` command."""

    http_port: int = 9000
    framework_name: str = "batch"
    clock_warp: tuple[float, float] | None = None
    """(anchor, factor) of a `WarpedWallClock` for tests and demos; None: the real wall clock."""
    gpu_scheduling_behavior: str | None = None
    """`restricted` or `unrestricted` (see `BatchCore`); None: no offers with GPUs."""


class BatchScheduler(CoreScheduler[BatchCore]):
    """Writes the runs that status updates changed `FLUSH_DELAY_SECONDS` after the first."""

    settle_delay = FLUSH_DELAY_SECONDS

    def settle(self, core: BatchCore) -> None:
        core.flush()


class BatchService(ServiceHost[BatchConfig, BatchCore, Recovered]):
    """Runs the batch framework until cancelled; `core` is the leader's (None on a standby)."""

    def __init__(self, config: BatchConfig) -> None:
        super().__init__(config, version=VERSION, kinds=KINDS, recover=Recovered.decode,
                         scheduler=BatchScheduler, log=log)

    def start_term(
        self, recovered: Recovered, actions: SchedulerActions, sink: Sink
    ) -> TermCore[BatchCore]:
        core = BatchCore(wall=self._wall_clock(), actions=actions, sink=sink, recovered=recovered,
                         gpu_scheduling=self.config.gpu_scheduling_behavior)
        log.info("recovered", jobs=len(core.jobs), active_runs=len(core.runs))
        return TermCore(core)

    def _wall_clock(self) -> Clock:
        """The core reads time only through this clock; its `tick()` runs every real
        `tick_interval` and decides every due time up to the clock's now, so a warped clock
        needs no timer of its own."""
        if self.config.clock_warp is None:
            return WallClock()
        return WarpedWallClock(*self.config.clock_warp)
