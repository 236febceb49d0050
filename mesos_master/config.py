"""The master core's configuration: the timing and policy flags of `mesos-master`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from mesos_master.allocator import DEFAULT_MIN_ALLOCATABLE
from mesos_security.acls import Acls
from mesos_values.resources import Resources


@dataclass(frozen=True, slots=True)
class MasterConfig:
    """Timing and policy knobs (flags of `mesos-master`)."""

    agent_ping_timeout: float = 15.0
    max_agent_ping_timeouts: int = 5
    offer_timeout: float | None = None
    scheduler_heartbeat_interval: float = 15.0
    role_weights: Mapping[str, float] | None = None
    agent_reregister_timeout: float = 600.0
    role_sorter: str = "drf"
    framework_sorter: str = "drf"
    min_allocatable_resources: tuple[Resources, ...] = DEFAULT_MIN_ALLOCATABLE
    fair_sharing_excluded_resource_names: frozenset[str] = frozenset()
    acls: Acls = field(default_factory=Acls)  # --acls (ADR 0013); default: allow all
    max_frameworks_per_principal: int | None = None  # new frameworks beyond it are refused
    max_frameworks: int | None = None  # frameworks the master keeps at most (None: no cap)
    max_completed_frameworks: int = 50  # removed frameworks kept for /state, oldest dropped
    max_completed_tasks_per_framework: int = 1000  # ended tasks kept per framework

    @property
    def agent_heartbeat_interval(self) -> float:
        return self.agent_ping_timeout

    @property
    def agent_unreachable_after(self) -> float:
        return self.agent_ping_timeout * self.max_agent_ping_timeouts
