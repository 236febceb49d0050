"""The Marathon process: `MarathonCore` hosted by `frameworks.service_host.ServiceHost`
(election, terms, the store, the scheduler driver, the tick loop, abdication), with the health
and readiness checkers beside it; the REST API (`marathon.api`) reads and changes state through it.

    MarathonService.run()  (ServiceHost.run)
      term: Recovered.decode(entries) ─▶ MarathonCore(recovered, DriverActions(driver))
        beside the core: HealthChecker.run(), ReadinessChecker.run()
      not leading: `core` is None; the API forwards to the leader or answers 503

The driver's callbacks run in this loop and call the core directly (`MarathonScheduler` drives
deployments once per burst of status updates). Events go to the `EventBus` that `/v2/events`
streams from.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog

from frameworks.actions import SchedulerActions
from frameworks.service_host import CoreScheduler, ServiceConfig, ServiceHost, TermCore
from marathon.app_definition import AppDefinition
from marathon.app_rules import AppRules
from marathon.core import MarathonCore
from marathon.event_bus import EventBus
from marathon.groups import SERVICE_PORTS
from marathon.health import HealthChecker, HealthTracker, KillDecision
from marathon.readiness import ReadinessChecker, ReadinessTracker
from marathon.state import KINDS, Instance, Recovered
from mesos_coordination.store import Sink
from mesos_runtime.clock import SystemClock, WallClock
from protos import mesos_pb2

log = structlog.get_logger("marathon")

VERSION = "1.9.0-pymesos"


@dataclass(frozen=True, slots=True, kw_only=True)
class MarathonConfig(ServiceConfig):
    """Flags of the `marathon` command."""

    http_port: int = 8080
    framework_name: str = "marathon"
    features: frozenset[str] = frozenset()
    """`--enable_features`: the optional features turned on (`gpu_resources`)."""
    service_ports: range = SERVICE_PORTS
    """`--local_port_min` to `--local_port_max`: where apps' service ports are picked."""
    sigterm_delay: float = 1.0
    """`--sigterm_delay`: how long an instance being killed stays up after TASK_KILLING."""
    task_killing_state: bool = True


class MarathonScheduler(CoreScheduler[MarathonCore]):
    """Applies status updates at once and drives deployments once per burst of them."""

    def apply_status(self, core: MarathonCore, status: mesos_pb2.TaskStatus) -> None:
        core.status_update(status, advance=False)

    def settle(self, core: MarathonCore) -> None:
        if core.advance_wanted:
            core.advance()


class CheckObserver:
    """Starts and stops health and readiness checks as the core's instances run and go."""

    def __init__(self, health: HealthChecker, readiness: ReadinessChecker) -> None:
        self.health = health
        self.readiness = readiness

    def running(self, app: AppDefinition, instance: Instance) -> None:
        if app.health_checks:
            self.health.add_instance(
                app, instance.instance_id, instance.task_id, instance.host, instance.ports,
                instance.started_at, agent_id=instance.agent_id,
            )
        if not instance.ready:
            self.readiness.add(app, instance.instance_id, instance.task_id,
                               address=instance.host, host_ports=instance.ports)

    def gone(self, instance_id: str) -> None:
        self.health.remove_instance(instance_id)
        self.readiness.remove(instance_id)

    def agent_health(self, instance_id: str, task_id: str, healthy: bool) -> None:
        self.health.agent_result(instance_id, task_id, healthy)


class MarathonService(ServiceHost[MarathonConfig, MarathonCore, Recovered]):
    """Runs Marathon until cancelled; `core` is the leader's core (None on a standby)."""

    def __init__(self, config: MarathonConfig) -> None:
        super().__init__(config, version=VERSION, kinds=KINDS, recover=Recovered.decode,
                         scheduler=MarathonScheduler, log=log)
        self.bus = EventBus()
        self.health: HealthTracker | None = None
        self.readiness: ReadinessTracker | None = None

    def start_term(
        self, recovered: Recovered, actions: SchedulerActions, sink: Sink
    ) -> TermCore[MarathonCore]:
        tracker = HealthTracker(WallClock())
        checker = HealthChecker(
            tracker, self._unhealthy, self.bus.publish, on_health_changed=self._health_changed,
        )
        readiness = ReadinessChecker(ReadinessTracker(WallClock()), self._ready)
        core = MarathonCore(
            clock=SystemClock(), wall=WallClock(), actions=actions, sink=sink,
            publish=self.bus.publish, recovered=recovered,
            observer=CheckObserver(checker, readiness),
            rules=AppRules(mesos_role=self.config.role, features=self.config.features,
                           service_ports=self.config.service_ports),
            sigterm_delay=self.config.sigterm_delay,
        )
        core.watch_running_instances()  # a new leader checks the instances it recovered
        self.health, self.readiness = tracker, readiness.tracker
        return TermCore(core, tasks=(checker.run, readiness.run))

    def term_ended(self) -> None:
        self.health = self.readiness = None

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
