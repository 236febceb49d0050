"""The master's bookkeeping records: agents, frameworks, tasks and outstanding offers."""

from __future__ import annotations

import struct
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias, TypeVar

from mesos_values.resources import Resources
from mesos_values.task_states import TERMINAL_STATES
from protos import agent_pb2, mesos_pb2, registry_pb2, scheduler_pb2

MessageT_contra = TypeVar("MessageT_contra", contravariant=True)
TaskState: TypeAlias = "mesos_pb2.TaskState.ValueType"

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


class TaskRecord:
    """A task the master launched or learnt about from a re-registering agent.

    A master holds hundreds of thousands of these, so a record keeps its TaskInfo and its
    latest status encoded (a parsed protobuf message holds about 1 KiB, its bytes a tenth of
    that: docs/benchmarks.md, "Master memory") and decodes them when asked (`info`,
    `latest_status`); what the master reads on every update (ids, resources, role, state)
    stays at hand.
    """

    __slots__ = (
        "_earlier",
        "_info",
        "_latest",
        "agent_id",
        "executor_id",
        "framework_id",
        "resources",
        "role",
        "state",
        "task_id",
        "unacknowledged",
    )

    def __init__(
        self,
        info: mesos_pb2.TaskInfo | bytes,
        framework_id: str,
        agent_id: str,
        resources: Resources,
        role: str,  # the role its resources are allocated to
        state: TaskState = mesos_pb2.TASK_STAGING,
        *,
        ids: tuple[str, str] | None = None,
    ) -> None:
        """`info` as a message, or encoded with `ids`: its task id and the id of the executor
        it names ("" for none), read from it already (a standby reads them: ADR 0018)."""
        if isinstance(info, bytes):
            if ids is None:
                raise TypeError("an encoded TaskInfo needs its ids")
            self._info = info
            self.task_id, self.executor_id = ids
        else:
            self._info = info.SerializeToString()
            self.task_id = info.task_id.value
            self.executor_id = (
                info.executor.executor_id.value if info.HasField("executor") else "")
        self.framework_id = framework_id
        self.agent_id = agent_id
        self.resources = resources
        self.role = role
        self.state = state
        self._latest: bytes | None = None  # the latest status, encoded
        self._earlier = b""  # the earlier states, oldest first, packed by _EARLIER_STATE
        # uuid -> state of updates forwarded to the scheduler and not yet acknowledged
        self.unacknowledged: dict[bytes, TaskState] | None = None

    @property
    def info(self) -> mesos_pb2.TaskInfo:
        """The task's TaskInfo (decoded on each call: a copy), naming the record's agent (the
        TaskInfo given may leave its `agent_id` out: it is kept once, in the record)."""
        info = mesos_pb2.TaskInfo.FromString(self._info)
        info.agent_id.value = self.agent_id
        return info

    @property
    def latest_status(self) -> mesos_pb2.TaskStatus | None:
        """The latest status (decoded on each call: a copy); None before the first."""
        return None if self._latest is None else mesos_pb2.TaskStatus.FromString(self._latest)

    @property
    def earlier_states(self) -> list[tuple[TaskState, float]]:
        """(state, timestamp) of the states before the latest status, oldest first."""
        return [(_task_state(state), timestamp)
                for state, timestamp in _EARLIER_STATE.iter_unpack(self._earlier)]

    def record_status(self, status: mesos_pb2.TaskStatus) -> None:
        """`status` becomes the latest; the one before is kept as an earlier state when the
        state changed (health updates repeat TASK_RUNNING), at most `EARLIER_STATES_KEPT`."""
        self.record_encoded_status(status.SerializeToString(), status.state)

    def record_encoded_status(self, encoded: bytes, state: TaskState) -> None:
        """`record_status` of a status given encoded, with its state."""
        latest = self.latest_status
        if latest is not None and latest.state != state:
            earlier = self._earlier + _EARLIER_STATE.pack(latest.state, latest.timestamp)
            self._earlier = earlier[-EARLIER_STATES_KEPT * _EARLIER_STATE.size:]
        self._latest = encoded

    def expect_acknowledgement(self, uuid: bytes, state: TaskState) -> None:
        """An update of `state` with `uuid` went to the scheduler."""
        if self.unacknowledged is None:
            self.unacknowledged = {}
        self.unacknowledged[uuid] = state

    def acknowledged(self, uuid: bytes) -> TaskState | None:
        """The state of the update the scheduler acknowledged (None: not awaited)."""
        if self.unacknowledged is None:
            return None
        state = self.unacknowledged.pop(uuid, None)
        if not self.unacknowledged:
            self.unacknowledged = None  # an emptied dict keeps its table
        return state

    def to_proto(self, *, with_resources: bool = True) -> mesos_pb2.Task:
        """The task as Mesos' `Task`; without its resources when the caller has them in
        another form (`/state` renders `resources` from the record's)."""
        info = mesos_pb2.TaskInfo.FromString(self._info)
        task = mesos_pb2.Task(
            name=info.name,
            task_id=info.task_id,
            framework_id=mesos_pb2.FrameworkID(value=self.framework_id),
            agent_id=mesos_pb2.AgentID(value=self.agent_id),
            state=self.state,
            resources=info.resources if with_resources else (),
            labels=info.labels,
        )
        if self.executor_id:
            task.executor_id.value = self.executor_id
        for state, timestamp in self.earlier_states:
            task.statuses.add(state=state, timestamp=timestamp)
        latest = self.latest_status
        if latest is not None:
            task.statuses.append(latest)
        return task


_EARLIER_STATE = struct.Struct("<id")  # (state, timestamp)


def _task_state(value: int) -> TaskState:
    return mesos_pb2.TaskState.ValueType(value)


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
    encoded_info: bytes  # its AgentInfo (`info`), encoded: a tenth of the parsed message's size
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
    _offer_template: tuple[bytes, bytes] | None = None

    @property
    def info(self) -> mesos_pb2.AgentInfo:
        """The agent's AgentInfo (decoded on each call: a copy; assign to replace it)."""
        return mesos_pb2.AgentInfo.FromString(self.encoded_info)

    @info.setter
    def info(self, info: mesos_pb2.AgentInfo) -> None:
        self.encoded_info = info.SerializeToString()

    def offer_template(self) -> bytes:
        """An encoded `Offer` holding what every offer of this agent says about it (agent id,
        hostname, attributes, image providers), to merge into new offers; re-encoded when
        `info` is replaced."""
        cached = self._offer_template
        if cached is None or cached[0] is not self.encoded_info:
            info = self.info
            encoded = mesos_pb2.Offer(
                agent_id=info.id, hostname=info.hostname,
                attributes=info.attributes, image_providers=info.image_providers,
            ).SerializeToString()
            cached = self._offer_template = (self.encoded_info, encoded)
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
        if self.executors:
            holders.extend(self.executors.values())
        for holder in holders:
            by_role = used.get(holder.framework_id)
            if by_role is None:  # (EMPTY + resources is resources)
                used[holder.framework_id] = {holder.role: holder.resources}
            else:
                held = by_role.get(holder.role)
                by_role[holder.role] = (
                    holder.resources if held is None else held + holder.resources)
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
