"""The master's bookkeeping records: agents, frameworks, tasks and outstanding offers."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from mesos_values.resources import Resources
from mesos_values.task_states import TERMINAL_STATES
from protos import agent_pb2, mesos_pb2, registry_pb2, scheduler_pb2

MessageT_contra = TypeVar("MessageT_contra", contravariant=True)

# Terminal tasks kept per framework once forgotten (Mesos' --max_completed_tasks_per_framework)
MAX_COMPLETED_TASKS_PER_FRAMEWORK = 1000
EARLIER_STATES_KEPT = 8
"""States a task went through before its latest status, kept for `/state`'s `statuses`."""


class Outbox(Protocol[MessageT_contra]):
    """The sending end of one open stream (to an agent or a scheduler); never blocks."""

    def send(self, message: MessageT_contra) -> None:
        """Queue `message` for the peer."""
        ...

    def close(self) -> None:
        """End the stream once the queued messages are sent."""
        ...


@dataclass(slots=True)
class TaskRecord:
    """A task the master launched or learnt about from a re-registering agent."""

    info: mesos_pb2.TaskInfo
    framework_id: str
    agent_id: str
    resources: Resources
    role: str  # the role its resources are allocated to
    state: mesos_pb2.TaskState.ValueType = mesos_pb2.TASK_STAGING
    latest_status: mesos_pb2.TaskStatus | None = None
    # uuid -> state of updates forwarded to the scheduler and not yet acknowledged
    unacknowledged: dict[bytes, mesos_pb2.TaskState.ValueType] = field(default_factory=dict)
    # (state, timestamp) of the earlier states, oldest first (None until there is one)
    earlier_states: list[tuple[mesos_pb2.TaskState.ValueType, float]] | None = None

    @property
    def task_id(self) -> str:
        return self.info.task_id.value

    @property
    def executor_id(self) -> str:
        return self.info.executor.executor_id.value if self.info.HasField("executor") else ""

    def record_status(self, status: mesos_pb2.TaskStatus) -> None:
        """`status` becomes the latest; the one before is kept as an earlier state when the
        state changed (health updates repeat TASK_RUNNING), at most `EARLIER_STATES_KEPT`."""
        latest = self.latest_status
        if latest is not None and latest.state != status.state:
            earlier = self.earlier_states if self.earlier_states is not None else []
            earlier.append((latest.state, latest.timestamp))
            del earlier[:-EARLIER_STATES_KEPT]
            self.earlier_states = earlier
        self.latest_status = status

    def to_proto(self) -> mesos_pb2.Task:
        task = mesos_pb2.Task(
            name=self.info.name,
            task_id=self.info.task_id,
            framework_id=mesos_pb2.FrameworkID(value=self.framework_id),
            agent_id=mesos_pb2.AgentID(value=self.agent_id),
            state=self.state,
            resources=self.info.resources,
            labels=self.info.labels,
        )
        if self.executor_id:
            task.executor_id.value = self.executor_id
        for state, timestamp in self.earlier_states or ():
            task.statuses.add(state=state, timestamp=timestamp)
        if self.latest_status is not None:
            task.statuses.append(self.latest_status)
        return task


@dataclass(slots=True)
class ExecutorRecord:
    """A custom executor running on an agent; its resources are held by its framework."""

    info: mesos_pb2.ExecutorInfo
    framework_id: str
    agent_id: str
    resources: Resources
    role: str


@dataclass(slots=True)
class OfferRecord:
    """An outstanding offer."""

    offer_id: str
    framework_id: str
    agent_id: str
    resources: Resources
    created_at: float
    role: str


@dataclass(slots=True)
class AgentRecord:
    """An admitted agent."""

    agent_id: str
    info: mesos_pb2.AgentInfo
    total: Resources
    outbox: Outbox[agent_pb2.MasterMessage] | None
    last_seen: float
    registered_at: float
    reachable: bool = True
    # False from a first registration until its registry entry is durable (no offers until then)
    admitted: bool = True
    # Recovered from the registry by a new leader and not re-registered yet
    awaiting_reregistration: bool = False
    tasks: dict[tuple[str, str], TaskRecord] = field(default_factory=dict)  # (framework, task)
    executors: dict[tuple[str, str], ExecutorRecord] = field(default_factory=dict)
    offers: set[str] = field(default_factory=set)
    # Operator maintenance (kept in the registry): no offers while deactivated or draining
    deactivated: bool = False
    drain: registry_pb2.DrainInfo | None = None
    # The principal it registered as; its id is bound to it (and to its hostname: ADR 0013)
    principal: str = ""
    _offer_template: tuple[mesos_pb2.AgentInfo, bytes] | None = None

    def offer_template(self) -> bytes:
        """An encoded `Offer` holding what every offer of this agent says about it (agent id,
        hostname, attributes, image providers), to merge into new offers; re-encoded when
        `info` is replaced."""
        cached = self._offer_template
        if cached is None or cached[0] is not self.info:
            encoded = mesos_pb2.Offer(
                agent_id=self.info.id, hostname=self.info.hostname,
                attributes=self.info.attributes, image_providers=self.info.image_providers,
            ).SerializeToString()
            cached = self._offer_template = (self.info, encoded)
        return cached[1]

    @property
    def connected(self) -> bool:
        return self.outbox is not None

    @property
    def draining(self) -> bool:
        return self.drain is not None and self.drain.state == registry_pb2.DrainInfo.DRAINING

    def used_by_framework(self) -> dict[str, dict[str, Resources]]:
        """Resources held by non-terminal tasks and executors, per framework and role."""
        used: dict[str, dict[str, Resources]] = {}
        holders: list[TaskRecord | ExecutorRecord] = [
            task for task in self.tasks.values() if task.state not in TERMINAL_STATES
        ]
        holders.extend(self.executors.values())
        for holder in holders:
            by_role = used.setdefault(holder.framework_id, {})
            by_role[holder.role] = by_role.get(holder.role, Resources.EMPTY) + holder.resources
        return used

    def used_per_framework(self) -> dict[str, Resources]:
        """Resources held by non-terminal tasks and executors, per framework (all roles)."""
        used: dict[str, Resources] = {}
        for framework_id, by_role in self.used_by_framework().items():
            for resources in by_role.values():
                used[framework_id] = used.get(framework_id, Resources.EMPTY) + resources
        return used


@dataclass(slots=True)
class FrameworkRecord:
    """A subscribed (or failing-over) framework."""

    framework_id: str
    info: mesos_pb2.FrameworkInfo
    stream_id: str
    outbox: Outbox[scheduler_pb2.Event] | None
    registered_at: float
    disconnected_at: float | None = None
    suppressed_roles: set[str] = field(default_factory=set)
    offers: set[str] = field(default_factory=set)
    tasks: dict[str, TaskRecord] = field(default_factory=dict)
    # terminal tasks the master no longer tracks, newest last (for /state)
    completed_tasks: deque[TaskRecord] = field(
        default_factory=lambda: deque(maxlen=MAX_COMPLETED_TASKS_PER_FRAMEWORK)
    )

    @property
    def connected(self) -> bool:
        return self.outbox is not None

    def has_capability(self, capability: int) -> bool:
        return any(c.type == capability for c in self.info.capabilities)

    @property
    def partition_aware(self) -> bool:
        return self.has_capability(mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)


@dataclass(slots=True)
class MasterCounters:
    """Events counted since this core was created, for Mesos' counter metrics (like Mesos'
    metrics they start from zero on every newly elected master)."""

    # tasks that reached each terminal state, including launches refused by the master
    terminal_tasks: Counter[mesos_pb2.TaskState.ValueType] = field(default_factory=Counter)
    valid_status_updates: int = 0
    invalid_status_updates: int = 0  # for tasks or agents the master does not know
    agent_registrations: int = 0
    agent_reregistrations: int = 0
    agents_marked_unreachable: int = 0
