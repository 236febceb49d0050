"""The batch framework process: leader election, the store, the scheduler driver and the timer
around `BatchCore`; the REST API (`frameworks.batch.api`) works on the leader's core.

    BatchService.run()
      contender (ZooKeeper with --zk, standalone otherwise) ──serve_terms──▶ term:
        open_term_store() ─▶ Store.recover() ─▶ BatchCore(Recovered.decode(...))
        SchedulerDriver (in this loop, failover with the stored framework id)
        TaskGroup { BatchWriter.run(), tick loop, driver watch }
      not leading: `core` is None; the API answers 503 naming the leader

The driver's callbacks run in this loop and call the core; runs changed by status updates are
written `FLUSH_DELAY_SECONDS` after the first change (`BatchCore.flush`), so a stream of updates
costs one encoding and one write per run that often, not one per update.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import structlog

from frameworks import DriverActions, Scheduler, SchedulerDriver, service_framework_info
from frameworks.batch.core import KINDS, BatchCore, Recovered
from mesos_coordination.election import Contender, Leadership, create_contender, serve_terms
from mesos_coordination.store import BatchWriter
from mesos_coordination.term_store import term_state
from mesos_http.http_forward import advertised_address, forward_url
from mesos_runtime.clock import Clock, WallClock, WarpedWallClock
from protos import mesos_pb2

__all__ = ["FLUSH_DELAY_SECONDS", "VERSION", "BatchConfig", "BatchService"]

log = structlog.get_logger("frameworks.batch")

VERSION = "0.6.0-pymesos"
FLUSH_DELAY_SECONDS = 0.05
"""How long runs changed by status updates wait to be written, gathering further changes."""


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """Flags of the `mesos-batch` command."""

    master: str = "127.0.0.1:5050"
    zk: str | None = None
    http_address: str = "127.0.0.1"
    http_port: int = 9000
    hostname: str | None = None
    framework_name: str = "batch"
    role: str = "*"
    user: str | None = None
    failover_timeout: float = 604800.0
    work_dir: Path | None = None
    zk_session_timeout: float = 10.0
    tick_interval: float = 1.0
    clock_warp: tuple[float, float] | None = None
    """(anchor, factor) of a `WarpedWallClock` for tests and demos; None: the real wall clock."""


class BatchScheduler(Scheduler):
    """Hands the driver's callbacks to the core and flushes its run writes shortly after."""

    def __init__(self) -> None:
        self._core: BatchCore | None = None
        self._flush_pending = False

    @property
    def core(self) -> BatchCore:
        if self._core is None:
            raise RuntimeError("the core is set before the driver starts")
        return self._core

    @core.setter
    def core(self, core: BatchCore) -> None:
        self._core = core

    def registered(
        self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
        master_info: mesos_pb2.MasterInfo,
    ) -> None:
        log.info("registered with the master", framework_id=framework_id.value)
        self.core.registered(framework_id.value)

    def reregistered(self, driver: SchedulerDriver, master_info: mesos_pb2.MasterInfo) -> None:
        if self.core.framework_id is not None:
            self.core.registered(self.core.framework_id)

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        self.core.resource_offers(offers)

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        self.core.status_update(status)
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_later(FLUSH_DELAY_SECONDS, self._flush)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        log.error("the master reported an error", message=message)

    def _flush(self) -> None:
        self._flush_pending = False
        self.core.flush()


class BatchService:
    """Runs the batch framework until cancelled; `core` is the leader's (None on a standby)."""

    def __init__(self, config: BatchConfig) -> None:
        self.config = config
        self.core: BatchCore | None = None
        self.leader: mesos_pb2.MasterInfo | None = None
        self.hostname = config.hostname or socket.gethostname()
        self.info = mesos_pb2.MasterInfo(
            id=str(uuid.uuid4()), hostname=self.hostname, address=config.http_address,
            port=config.http_port, version=VERSION,
        )
        self._writer: BatchWriter | None = None

    @property
    def leader_address(self) -> str | None:
        """`host:port` of the leading process's HTTP API, when known."""
        return advertised_address(self.leader)

    @property
    def leader_url(self) -> str | None:
        """Where a standby forwards requests (None while this process leads)."""
        return forward_url(self.leader, self.info.id)

    async def durable(self) -> None:
        """Wait until every write queued so far is durable (the API answers after this)."""
        if self._writer is not None:
            await self._writer.drain()

    async def run(self, http_port: int | None = None) -> None:
        """Contend for leadership and lead while elected, until cancelled. Raises
        LeadershipLost when the ZooKeeper session (or the store) is lost for good."""
        if http_port is not None:
            self.info.port = http_port
        contender = create_contender(
            self.config.zk, self.info, session_timeout=self.config.zk_session_timeout
        )
        await contender.start()
        try:
            await serve_terms(contender, functools.partial(self._lead, contender),
                              self._leadership_changed)
        finally:
            await contender.close()

    def _leadership_changed(self, state: Leadership, leading: bool) -> None:
        self.leader = state.leader
        if state.leading and not leading:
            log.info("elected leader", epoch=state.epoch)
        elif not state.leading and leading:
            log.warning("no longer the leader")
            self.core = None  # stop serving at once; the term winds down behind it

    async def _lead(self, contender: Contender, state: Leadership) -> None:
        async with term_state(contender, state, KINDS, self.config.work_dir) as term:
            recovered = Recovered.decode(term.entries)
            scheduler = BatchScheduler()
            driver = SchedulerDriver(
                scheduler,
                service_framework_info(
                    self.config.framework_name, role=self.config.role, user=self.config.user,
                    failover_timeout=self.config.failover_timeout, hostname=self.hostname,
                    webui_url=f"http://{self.hostname}:{self.info.port}",
                    framework_id=recovered.framework_id,
                ),
                self.config.master,
            )
            core = BatchCore(wall=self._wall_clock(), actions=DriverActions(driver), sink=term.sink,
                             recovered=recovered)
            scheduler.core = self.core = core
            self._writer = term.writer
            log.info("recovered", jobs=len(core.jobs), active_runs=len(core.runs))
            try:
                async with asyncio.TaskGroup() as tasks:
                    if term.writer is not None:
                        tasks.create_task(term.writer.run())
                    tasks.create_task(self._tick(core))
                    tasks.create_task(driver.serve())
            finally:
                self.core = None
                self._writer = None

    def _wall_clock(self) -> Clock:
        """The core reads time only through this clock; its `tick()` runs every real
        `tick_interval` and decides every due time up to the clock's now, so a warped clock
        needs no timer of its own."""
        if self.config.clock_warp is None:
            return WallClock()
        return WarpedWallClock(*self.config.clock_warp)

    async def _tick(self, core: BatchCore) -> None:
        while True:
            core.tick()
            await asyncio.sleep(self.config.tick_interval)
