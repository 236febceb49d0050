"""The Marathon process: leader election, the store, the scheduler driver and the timers
around `MarathonCore`; the REST API (`marathon.api`) reads and changes state through it.

    MarathonService.run()
      contender (ZooKeeper with --zk, standalone otherwise) ──leading──▶ term:
        Store.recover() ─▶ MarathonCore(recovered) ─▶ SchedulerDriver (in this loop)
        TaskGroup { BatchWriter.run(), tick loop, driver }
      not leading: `core` is None; the API answers 503 naming the leader

The driver's callbacks run in this loop and call the core directly; the core's `Actions` are
the driver's calls. Events go to the `EventBus` that `/v2/events` streams from.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import structlog

from frameworks import DriverActions, Scheduler, SchedulerDriver, service_framework_info
from marathon.app_definition import AppDefinition
from marathon.core import KINDS, Instance, MarathonCore, Recovered
from marathon.events import EventBus
from marathon.health import HealthChecker, HealthTracker, KillDecision
from marathon.launch_queue import task_environment
from marathon.readiness import ReadinessChecker, ReadinessTracker
from mesos_coordination.election import Contender, Leadership, create_contender, serve_terms
from mesos_coordination.term_store import term_state
from mesos_http.http_forward import advertised_address, forward_url
from mesos_runtime.clock import SystemClock, WallClock
from protos import mesos_pb2

log = structlog.get_logger("marathon")

VERSION = "1.9.0-pymesos"


@dataclass(frozen=True, slots=True)
class MarathonConfig:
    """Flags of the `marathon` command."""

    master: str = "127.0.0.1:5050"
    zk: str | None = None
    http_address: str = "127.0.0.1"
    http_port: int = 8080
    hostname: str | None = None
    framework_name: str = "marathon"
    mesos_role: str = "*"
    mesos_user: str | None = None
    failover_timeout: float = 604800.0
    work_dir: Path | None = None
    zk_session_timeout: float = 10.0
    tick_interval: float = 1.0


class MarathonScheduler(Scheduler):
    """Hands the driver's callbacks to the core (set before the driver starts)."""

    def __init__(self) -> None:
        self._core: MarathonCore | None = None
        self._advance_scheduled = False

    @property
    def core(self) -> MarathonCore:
        assert self._core is not None, "the core is set before the driver starts"
        return self._core

    @core.setter
    def core(self, core: MarathonCore) -> None:
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
        core = self.core
        core.status_update(status, advance=False)
        if not self._advance_scheduled:  # one pass for a burst of updates
            self._advance_scheduled = True
            asyncio.get_running_loop().call_soon(self._advance)

    def _advance(self) -> None:
        self._advance_scheduled = False
        if self.core.advance_wanted:
            self.core.advance()

    def error(self, driver: SchedulerDriver, message: str) -> None:
        log.error("the master reported an error", message=message)


class CheckObserver:
    """Starts and stops health and readiness checks as the core's instances run and go."""

    def __init__(self, health: HealthChecker, readiness: ReadinessChecker) -> None:
        self.health = health
        self.readiness = readiness

    def running(self, app: AppDefinition, instance: Instance) -> None:
        if app.health_checks:
            env = task_environment(app, task_id=instance.task_id, host=instance.host,
                                   host_ports=instance.ports)
            self.health.add_instance(
                app, instance.instance_id, instance.task_id, instance.host, instance.ports,
                instance.started_at, agent_id=instance.agent_id, env=env,
            )
        if not instance.ready:
            self.readiness.add(app, instance.instance_id, instance.task_id,
                               address=instance.host, host_ports=instance.ports)

    def gone(self, instance_id: str) -> None:
        self.health.remove_instance(instance_id)
        self.readiness.remove(instance_id)


class MarathonService:
    """Runs Marathon until cancelled; `core` is the leader's core (None on a standby)."""

    def __init__(self, config: MarathonConfig) -> None:
        self.config = config
        self.bus = EventBus()
        self.core: MarathonCore | None = None
        self.health: HealthTracker | None = None
        self.readiness: ReadinessTracker | None = None
        self.leader: mesos_pb2.MasterInfo | None = None
        self.hostname = config.hostname or socket.gethostname()
        self.info = mesos_pb2.MasterInfo(
            id=str(uuid.uuid4()), hostname=self.hostname, address=config.http_address,
            port=config.http_port, version=VERSION,
        )
        self.started_at = time.time()
        self._abdication = asyncio.Event()

    @property
    def leader_address(self) -> str | None:
        """`host:port` of the leading Marathon's HTTP API, when known."""
        return advertised_address(self.leader)

    @property
    def leader_url(self) -> str | None:
        """Where a standby forwards requests (None while this process leads)."""
        return forward_url(self.leader, self.info.id)

    async def run(self, http_port: int | None = None) -> None:
        """Contend for leadership and lead while elected, until cancelled; after `abdicate()`
        leave the election and contend again. Raises LeadershipLost when the ZooKeeper session
        (or the store) is lost for good."""
        if http_port is not None:
            self.info.port = http_port
        while True:
            self._abdication = asyncio.Event()
            contender = create_contender(
                self.config.zk, self.info, session_timeout=self.config.zk_session_timeout
            )
            await contender.start()
            terms = asyncio.create_task(serve_terms(
                contender, functools.partial(self._lead, contender), self._leadership_changed
            ))
            abdicated = asyncio.create_task(self._abdication.wait())
            try:
                await asyncio.wait({terms, abdicated}, return_when=asyncio.FIRST_COMPLETED)
                if abdicated.done():
                    await contender.close()  # ends the term; serve_terms returns
                await terms
            finally:
                for task in (abdicated, terms):
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                await contender.close()
            if not self._abdication.is_set():
                return
            log.info("abdicated; contending again")

    def abdicate(self) -> bool:
        """Give up leadership (DELETE /v2/leader); False when not leading."""
        if self.core is None:
            return False
        self.core = None  # no longer answers as leader, from now on
        self._abdication.set()
        return True

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
            scheduler = MarathonScheduler()
            driver = SchedulerDriver(
                scheduler,
                service_framework_info(
                    self.config.framework_name, role=self.config.mesos_role,
                    user=self.config.mesos_user, failover_timeout=self.config.failover_timeout,
                    hostname=self.hostname, webui_url=f"http://{self.hostname}:{self.info.port}",
                    framework_id=recovered.framework_id,
                ),
                self.config.master,
            )
            tracker = HealthTracker(WallClock())
            checker = HealthChecker(
                tracker, self._unhealthy, self.bus.publish,
                on_health_changed=self._health_changed,
            )
            readiness = ReadinessChecker(ReadinessTracker(WallClock()), self._ready)
            core = MarathonCore(
                clock=SystemClock(), wall=WallClock(), actions=DriverActions(driver),
                sink=term.sink, publish=self.bus.publish, recovered=recovered,
                observer=CheckObserver(checker, readiness),
            )
            scheduler.core = core
            self.core, self.health, self.readiness = core, tracker, readiness.tracker
            try:
                async with asyncio.TaskGroup() as tasks:
                    if term.writer is not None:
                        tasks.create_task(term.writer.run())
                    tasks.create_task(self._tick(core))
                    tasks.create_task(checker.run())
                    tasks.create_task(readiness.run())
                    tasks.create_task(driver.serve())
            finally:
                self.core = self.health = self.readiness = None

    def _unhealthy(self, decision: KillDecision) -> None:
        if self.core is not None:
            log.warning("killing an unhealthy instance", app_id=decision.app_id,
                        task_id=decision.task_id, reason=decision.reason)
            self.core.kill_instance(decision.instance_id)

    def _ready(self, instance_id: str) -> None:
        if self.core is not None:
            self.core.instance_ready(instance_id)

    def _health_changed(self, instance_id: str, healthy: bool) -> None:
        if self.core is not None:
            self.core.health_changed(instance_id, healthy)

    async def _tick(self, core: MarathonCore) -> None:
        while True:
            await asyncio.sleep(self.config.tick_interval)
            core.tick()
