"""The cluster's tasks as the master knows them: launching tasks, following their state and
the status updates the master generates for them, adopting the tasks a re-registering agent
reports, and relaying messages between schedulers and their executors.

Flow::

    Master.accept ── each task of a LAUNCH ──▶ ClusterTasks.launch ── RunTask ──▶ agent outbox
                                                  └─ invalid: TASK_ERROR ─▶ scheduler outbox
    Master.status_update ──▶ ClusterTasks.update_state ── ended: resources ──▶ Allocator
    shell: KILL, ACKNOWLEDGE ──▶ ClusterTasks ── KillTask, acknowledgement ──▶ agent outbox
    shell: RECONCILE ──▶ ClusterTasks ── latest known states ──▶ scheduler outbox
    shell: executor exited ──▶ ClusterTasks ── resources ──▶ Allocator; FAILURE ─▶ scheduler
    shell: MESSAGE, SHUTDOWN ──▶ ClusterTasks ── FrameworkToExecutor, ShutdownExecutor ─▶ agent
    shell: executor's message ──▶ ClusterTasks ── MESSAGE ──▶ scheduler outbox
    Master: agent re-registered ──▶ ClusterTasks.adopt_report ── lost tasks ──▶ scheduler outbox
    Master: agent unreachable or gone ──▶ ClusterTasks ── UNREACHABLE/GONE/LOST ─▶ scheduler
    Master: framework removed ──▶ ClusterTasks ── ShutdownFramework ──▶ agent outbox

The book is the only writer of task and executor records (`AgentRecord.tasks`,
`AgentRecord.executors`, `FrameworkRecord.tasks` and `completed_tasks`); it reads the master's
agents and frameworks, and the Master creates frameworks an agent's report reveals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import structlog

from mesos_master.allocator import Allocator
from mesos_master.errors import ErrorCode, MasterError
from mesos_master.observers import MasterObserver, Observers
from mesos_master.records import (
    AgentRecord,
    ExecutorRecord,
    FrameworkRecord,
    MasterCounters,
    Outbox,
    TaskRecord,
)
from mesos_master.registry import Registry
from mesos_master.validation import DEFAULT_ROLE, validate_task
from mesos_security.acls import Acls
from mesos_values.interning import Interner
from mesos_values.resources import Resources
from mesos_values.task_states import TERMINAL_STATES
from mesos_values.users import task_user
from protos import agent_pb2, mesos_pb2, scheduler_pb2

log = structlog.get_logger("mesos_master")

Reason = mesos_pb2.TaskStatus.Reason
TaskState: TypeAlias = "mesos_pb2.TaskState.ValueType"
ReasonCode: TypeAlias = "mesos_pb2.TaskStatus.Reason.ValueType"
RecoverFramework = Callable[[str, "mesos_pb2.FrameworkInfo | None"], FrameworkRecord]
"""`recover_framework(framework_id, info)`: the record of a framework known only from an
agent's report (`info` if the agent sent one)."""


class ClusterTasks:
    """Tasks and executors on agents, as the master knows them."""

    def __init__(
        self,
        agents: Mapping[str, AgentRecord],
        frameworks: Mapping[str, FrameworkRecord],
        allocator: Allocator,
        registry: Registry,
        counters: MasterCounters,
        wall_clock: Callable[[], float],
        acls: Acls | None = None,
        observer: MasterObserver | None = None,
    ) -> None:
        """`agents`, `frameworks` and `counters` are the master's own; `wall_clock` stamps the
        statuses the master makes up; `acls` decide which Unix users tasks may run as;
        `observer` hears of every task added or changed."""
        self._acls = acls or Acls()
        self._observer: MasterObserver = observer if observer is not None else Observers()
        self._agents, self._frameworks, self._counters = agents, frameworks, counters
        self._wall_clock = wall_clock
        self._allocator = allocator
        self._registry = registry
        self._shared: Interner[Resources] = Interner()  # tasks mostly ask for the same

    @property
    def recovering(self) -> bool:
        """Whether some recovered agent has not re-registered yet (nor timed out): the book may
        lack its tasks, so reconciliation of tasks on unknown agents waits."""
        return any(agent.awaiting_reregistration for agent in self._agents.values())

    def launch(
        self,
        framework: FrameworkRecord,
        agent: AgentRecord,
        role: str,
        task_info: mesos_pb2.TaskInfo,
        remaining: Resources,
        launched_ids: set[str],
    ) -> Resources:
        """Validate and launch one task of an ACCEPT of offers of `agent` to `role`; returns
        the resources left in the offers. `launched_ids` holds the call's launched task ids."""
        task_id = task_info.task_id.value
        executor = None
        if task_info.HasField("executor"):
            executor = agent.executors.get(
                (framework.framework_id, task_info.executor.executor_id.value)
            )
        problem, needed = validate_task(
            task_info,
            framework_id=framework.framework_id,
            agent_id=agent.agent_id,
            remaining=remaining,
            task_id_in_use=task_id in launched_ids or task_id in framework.tasks,
            running_executor=executor.info if executor is not None else None,
        )
        reason = Reason.REASON_TASK_INVALID
        if problem is None:
            decision = self._acls.authorize("run_tasks", framework.info.principal or None,
                                            task_user(task_info, framework.info))
            if not decision:
                problem, reason = decision.reason, Reason.REASON_TASK_UNAUTHORIZED
        if problem is not None:
            self._counters.terminal_tasks[mesos_pb2.TASK_ERROR] += 1
            self.send_master_update(
                framework,
                task_id,
                mesos_pb2.TASK_ERROR,
                reason,
                problem,
                agent_id=agent.agent_id,
            )
            return remaining
        launched_ids.add(task_id)
        task = mesos_pb2.TaskInfo()
        task.CopyFrom(task_info)
        task.ClearField("agent_id")  # the record keeps it once, as its `agent_id`
        for resource in task.resources:
            resource.allocation_info.role = role
        if task.HasField("executor"):
            task.executor.framework_id.value = framework.framework_id
            if executor is None:
                for resource in task.executor.resources:
                    resource.allocation_info.role = role
                executor_resources = Resources.from_proto(task.executor.resources)
                agent.executors[(framework.framework_id, task.executor.executor_id.value)] = (
                    ExecutorRecord(
                        task.executor,
                        framework.framework_id,
                        agent.agent_id,
                        executor_resources,
                        role,
                    )
                )
        # Without an executor the task needs just its own resources, read once (allocation
        # roles are no part of a `Resources`).
        own = needed if not task.HasField("executor") else Resources.from_proto(task.resources)
        record = TaskRecord(task, framework.framework_id, agent.agent_id, self._shared(own), role)
        task.agent_id.value = agent.agent_id
        agent.tasks[(framework.framework_id, record.task_id)] = record
        framework.tasks[record.task_id] = record
        self._observer.task_added(record)
        assert agent.outbox is not None  # offers exist only for connected agents
        message = agent_pb2.MasterMessage()  # filled in place: one copy of each, not two
        message.run_task.framework_info.CopyFrom(framework.info)
        message.run_task.task.CopyFrom(task)
        agent.outbox.send(message)
        return remaining - needed  # logged per ACCEPT by the caller

    def update_state(
        self, task: TaskRecord, status: mesos_pb2.TaskStatus, *, recover: bool = True
    ) -> None:
        """Record the task's new status (until acknowledged, if it has a uuid); a task that
        just ended gives its resources back to the allocator (when `recover`, its framework is
        known and its agent connected)."""
        was_terminal = task.state in TERMINAL_STATES
        task.state = status.state
        task.record_status(status)
        if not was_terminal and task.state in TERMINAL_STATES:
            self._counters.terminal_tasks[task.state] += 1
        agent = self._agents.get(task.agent_id)
        if (
            recover
            and not was_terminal
            and task.state in TERMINAL_STATES
            and task.framework_id in self._frameworks
            and agent is not None
            and agent.reachable
            and agent.connected
        ):
            self._allocator.recover_resources(
                task.framework_id, task.role, task.agent_id, task.resources
            )
        if status.uuid:
            task.expect_acknowledgement(status.uuid, status.state)
        self._observer.task_updated(task)

    def forget(self, task: TaskRecord) -> None:
        """Stop tracking an ended task; its framework keeps it among its completed tasks."""
        agent = self._agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.pop((task.framework_id, task.task_id), None)
        framework = self._frameworks.get(task.framework_id)
        if framework is not None and framework.tasks.get(task.task_id) is task:
            del framework.tasks[task.task_id]
            framework.completed_tasks.append(task)

    def kill(
        self,
        framework: FrameworkRecord,
        task_id: str,
        kill_policy: mesos_pb2.KillPolicy | None,
    ) -> None:
        """Ask the task's agent to kill it; an unknown task is answered with TASK_LOST/UNKNOWN."""
        task = framework.tasks.get(task_id)
        if task is None:
            state = mesos_pb2.TASK_UNKNOWN if framework.partition_aware else mesos_pb2.TASK_LOST
            self.send_master_update(
                framework,
                task_id,
                state,
                Reason.REASON_RECONCILIATION,
                "cannot kill a task the master does not know",
            )
            return
        agent = self._agents.get(task.agent_id)
        if agent is None or agent.outbox is None:
            log.info(
                "kill deferred: agent not connected",
                framework_id=framework.framework_id,
                agent_id=task.agent_id,
                task_id=task_id,
            )
            return
        kill = agent_pb2.MasterMessage.KillTask(
            framework_id=mesos_pb2.FrameworkID(value=framework.framework_id),
            task_id=mesos_pb2.TaskID(value=task_id),
        )
        if kill_policy is not None:
            kill.kill_policy.CopyFrom(kill_policy)
        agent.outbox.send(agent_pb2.MasterMessage(kill_task=kill))

    def acknowledge(
        self, framework: FrameworkRecord, agent_id: str, task_id: str, uuid_: bytes
    ) -> None:
        """Forward an acknowledgement to the agent; forget acknowledged terminal tasks."""
        if not uuid_:
            raise MasterError(ErrorCode.INVALID_ARGUMENT, "ACKNOWLEDGE needs the update's uuid")
        agent = self._agents.get(agent_id)
        if agent is None:
            raise MasterError(ErrorCode.NOT_FOUND, f"unknown agent {agent_id!r}")
        if agent.outbox is not None:
            agent.outbox.send(ack_message(framework.framework_id, task_id, uuid_))
        task = agent.tasks.get((framework.framework_id, task_id))
        if task is not None:
            state = task.acknowledged(uuid_)
            if state in TERMINAL_STATES and task.state in TERMINAL_STATES:
                self.forget(task)

    def acknowledge_all(
        self, framework: FrameworkRecord, acknowledgements: Iterable[tuple[str, str, bytes]]
    ) -> None:
        """`acknowledge` each (agent id, task id, uuid) in order, as if sent alone: a refused
        one does not stop the others; the first refusal is raised once all are applied."""
        refusal: MasterError | None = None
        for agent_id, task_id, uuid_ in acknowledgements:
            try:
                self.acknowledge(framework, agent_id, task_id, uuid_)
            except MasterError as error:
                refusal = refusal or error
        if refusal is not None:
            raise refusal

    def reconcile(self, framework: FrameworkRecord, tasks: Sequence[tuple[str, str]]) -> None:
        """Answer with the latest known state of the given (task id, agent id) pairs, or of all."""
        if not tasks:
            for task in list(framework.tasks.values()):
                self._send_reconciliation(framework, task)
            return
        for task_id, agent_id in tasks:
            known = framework.tasks.get(task_id)
            if known is not None:
                self._send_reconciliation(framework, known)
                continue
            agent = self._agents.get(agent_id) if agent_id else None
            if (agent is not None and agent.awaiting_reregistration) or (
                agent is None and not agent_id and self.recovering
            ):
                log.debug(
                    "reconciliation waits for agents to re-register",
                    framework_id=framework.framework_id,
                    task_id=task_id,
                )
                continue
            if agent is not None and agent.reachable:
                state = mesos_pb2.TASK_GONE if framework.partition_aware else mesos_pb2.TASK_LOST
                message = "task is unknown to its agent"
            elif agent is not None:
                state = (
                    mesos_pb2.TASK_UNREACHABLE if framework.partition_aware else mesos_pb2.TASK_LOST
                )
                message = "task's agent is unreachable"
            else:
                state = mesos_pb2.TASK_UNKNOWN if framework.partition_aware else mesos_pb2.TASK_LOST
                message = "task is unknown to the master"
            self.send_master_update(
                framework, task_id, state, Reason.REASON_RECONCILIATION, message, agent_id=agent_id
            )

    def executor_exited(
        self, agent_id: str, message: agent_pb2.AgentMessage.ExecutorExited
    ) -> None:
        """Release an exited executor's resources and tell its scheduler."""
        agent = self._agents.get(agent_id)
        framework_id = message.framework_id.value
        if agent is None:
            return
        executor = agent.executors.pop((framework_id, message.executor_id.value), None)
        if executor is not None and framework_id in self._frameworks:
            self._allocator.recover_resources(
                framework_id, executor.role, agent_id, executor.resources
            )
        failure = scheduler_pb2.Event.Failure(
            agent_id=mesos_pb2.AgentID(value=agent_id), executor_id=message.executor_id,
            status=message.status,
        )
        self._to_scheduler(
            framework_id, scheduler_pb2.Event(type=scheduler_pb2.Event.FAILURE, failure=failure)
        )

    def executor_to_framework(
        self, agent_id: str, message: agent_pb2.AgentMessage.ExecutorToFramework
    ) -> None:
        """Relay an executor's message to its scheduler."""
        relayed = scheduler_pb2.Event.Message(
            agent_id=mesos_pb2.AgentID(value=agent_id), executor_id=message.executor_id,
            data=message.data,
        )
        self._to_scheduler(
            message.framework_id.value,
            scheduler_pb2.Event(type=scheduler_pb2.Event.MESSAGE, message=relayed),
        )

    def framework_message(
        self, framework: FrameworkRecord, agent_id: str, executor_id: str, data: bytes
    ) -> None:
        """Relay a scheduler's message to an executor."""
        outbox = self._agent_outbox(agent_id)
        relayed = agent_pb2.MasterMessage.FrameworkToExecutor(
            framework_id=mesos_pb2.FrameworkID(value=framework.framework_id),
            executor_id=mesos_pb2.ExecutorID(value=executor_id),
            data=data,
        )
        outbox.send(agent_pb2.MasterMessage(framework_to_executor=relayed))

    def shutdown_executor(
        self, framework: FrameworkRecord, agent_id: str, executor_id: str
    ) -> None:
        """Ask an agent to stop one of the framework's executors."""
        outbox = self._agent_outbox(agent_id)
        shutdown = agent_pb2.MasterMessage.ShutdownExecutor(
            framework_id=mesos_pb2.FrameworkID(value=framework.framework_id),
            executor_id=mesos_pb2.ExecutorID(value=executor_id),
        )
        outbox.send(agent_pb2.MasterMessage(shutdown_executor=shutdown))

    def adopt_report(
        self,
        agent: AgentRecord,
        report: agent_pb2.AgentMessage.Reregister,
        recover_framework: RecoverFramework,
        read: ReadReport | None = None,
    ) -> int:
        """Take the executors and tasks a re-registering agent reports as the truth: tasks of
        removed frameworks are shut down, tasks the agent no longer knows end (they were lost
        in transit). Returns how many tasks the agent runs for known frameworks.
        `read`: what the adoption needs of the report's tasks and frameworks, read from it
        already (a standby reads it when the snapshot arrives: ADR 0018)."""
        if read is None:
            read = ReadReport.of(report)
        for executor_info in report.executors:
            self._adopt_executor(agent, executor_info)
        reported = self._adopt_tasks(agent, read.tasks, read.frameworks, recover_framework)
        if len(reported) != len(agent.tasks):  # else every task it has is reported
            self._drop_unreported(agent, reported)
        return len(reported)

    def agent_unreachable(self, agent: AgentRecord) -> None:
        """Tell frameworks that the running tasks of `agent` are unreachable (lost to those
        that are not partition-aware)."""
        for task in list(agent.tasks.values()):
            if task.state in TERMINAL_STATES:
                continue
            task.state = mesos_pb2.TASK_UNREACHABLE
            self._observer.task_updated(task)
            framework = self._frameworks.get(task.framework_id)
            if framework is None:
                continue
            state = mesos_pb2.TASK_UNREACHABLE if framework.partition_aware else mesos_pb2.TASK_LOST
            self.send_master_update(
                framework,
                task.task_id,
                state,
                Reason.REASON_AGENT_REMOVED,
                f"agent {agent.agent_id} ({agent.info.hostname}) is unreachable",
                agent_id=agent.agent_id,
            )

    def agent_gone(self, agent: AgentRecord) -> None:
        """End the running tasks of an agent an operator marked gone: TASK_GONE_BY_OPERATOR
        (TASK_LOST to frameworks that are not partition-aware)."""
        for task in list(agent.tasks.values()):
            if task.state in TERMINAL_STATES:
                continue
            framework = self._frameworks.get(task.framework_id)
            aware = framework is not None and framework.partition_aware
            self._end(
                task,
                framework,
                mesos_pb2.TASK_GONE_BY_OPERATOR if aware else mesos_pb2.TASK_LOST,
                Reason.REASON_AGENT_REMOVED,
                f"agent {agent.agent_id} ({agent.info.hostname}) was marked gone by an operator",
            )

    def remove_framework(self, framework: FrameworkRecord) -> None:
        """Forget the framework's tasks and executors; agents holding any shut it down."""
        framework_id = framework.framework_id
        holders = {task.agent_id for task in framework.tasks.values()} | {
            agent.agent_id
            for agent in self._agents.values()
            if any(key[0] == framework_id for key in agent.executors)
        }
        for agent_id in holders:
            agent = self._agents.get(agent_id)
            if agent is None:
                continue
            if agent.outbox is not None:
                agent.outbox.send(_shutdown_framework(framework_id))
            for key in [k for k in agent.tasks if k[0] == framework_id]:
                del agent.tasks[key]
            for key in [k for k in agent.executors if k[0] == framework_id]:
                del agent.executors[key]
        now = self._wall_clock()
        for task in framework.tasks.values():  # kept among its completed tasks, as in Mesos
            if task.state not in TERMINAL_STATES:
                task.state = mesos_pb2.TASK_KILLED
                task.record_status(_master_status(
                    task.task_id, mesos_pb2.TASK_KILLED, Reason.REASON_FRAMEWORK_REMOVED,
                    "Framework removed", now, task.agent_id))
            framework.completed_tasks.append(task)
        framework.tasks.clear()

    def send_master_update(
        self,
        framework: FrameworkRecord,
        task_id: str,
        state: TaskState,
        reason: ReasonCode,
        message: str,
        *,
        agent_id: str = "",
    ) -> None:
        """Send the framework a status update of the master's own (no acknowledgement expected)."""
        log.info(
            "master-generated update",
            framework_id=framework.framework_id,
            agent_id=agent_id,
            task_id=task_id,
            state=mesos_pb2.TaskState.Name(state),
            message=message,
        )
        if framework.outbox is not None:
            status = _master_status(
                task_id, state, reason, message, self._wall_clock(), agent_id
            )
            framework.outbox.send(update_event(status))


    def _send_reconciliation(
        self,
        framework: FrameworkRecord,
        task: TaskRecord,
        *,
        reason: ReasonCode = Reason.REASON_RECONCILIATION,
        message: str = "reconciliation",
    ) -> None:
        """Send the framework the latest known state of `task`."""
        state = task.state
        if state == mesos_pb2.TASK_UNREACHABLE and not framework.partition_aware:
            state = mesos_pb2.TASK_LOST
        status = mesos_pb2.TaskStatus()
        if task.latest_status is not None:
            status.CopyFrom(task.latest_status)
        status.task_id.value = task.task_id
        status.agent_id.value = task.agent_id
        status.state = state
        status.source = mesos_pb2.TaskStatus.SOURCE_MASTER
        status.reason = reason
        status.message = message
        status.timestamp = self._wall_clock()
        status.uuid = b""
        if framework.outbox is not None:
            framework.outbox.send(update_event(status))

    def _to_scheduler(self, framework_id: str, event: scheduler_pb2.Event) -> None:
        framework = self._frameworks.get(framework_id)
        if framework is not None and framework.outbox is not None:
            framework.outbox.send(event)

    def _agent_outbox(self, agent_id: str) -> Outbox[agent_pb2.MasterMessage]:
        """The stream to a connected agent; NOT_FOUND for any other."""
        agent = self._agents.get(agent_id)
        if agent is None or agent.outbox is None:
            raise MasterError(ErrorCode.NOT_FOUND, f"agent {agent_id!r} is not connected")
        return agent.outbox

    def _end(
        self,
        task: TaskRecord,
        framework: FrameworkRecord | None,
        state: TaskState,
        reason: ReasonCode,
        message: str,
        *,
        recover: bool = True,
    ) -> None:
        """End a task on the master's word: record, tell its framework, forget it."""
        status = _master_status(
            task.task_id, state, reason, message, self._wall_clock(), task.agent_id
        )
        self.update_state(task, status, recover=recover)
        if framework is not None and framework.outbox is not None:
            framework.outbox.send(update_event(status))
        self.forget(task)

    def _role_of(self, framework_id: str, allocated_to: str) -> str:
        """The role resources reported by an agent are allocated to: their allocation info's
        (`allocated_to`, `allocation_role`), else (from before roles were recorded) the
        framework's first role."""
        if allocated_to:
            return allocated_to
        framework = self._frameworks.get(framework_id)
        return framework.info.roles[0] if framework is not None else DEFAULT_ROLE

    def _adopt_executor(self, agent: AgentRecord, info: mesos_pb2.ExecutorInfo) -> None:
        key = (info.framework_id.value, info.executor_id.value)
        try:
            resources = Resources.from_proto(info.resources)
        except ValueError:
            resources = Resources.EMPTY
        own = mesos_pb2.ExecutorInfo()
        own.CopyFrom(info)  # a part of the agent's report would keep all of it alive
        agent.executors[key] = ExecutorRecord(
            own, key[0], agent.agent_id, resources,
            self._role_of(key[0], allocation_role(info.resources)),
        )

    def _adopt_tasks(
        self,
        agent: AgentRecord,
        tasks: Iterable[ReportedTask],
        frameworks: Mapping[str, mesos_pb2.FrameworkInfo],
        recover_framework: RecoverFramework,
    ) -> set[tuple[str, str]]:
        reported: set[tuple[str, str]] = set()
        shut_down: set[str] = set()
        for task in tasks:
            key = task.key
            if self._registry.is_removed(key[0]):
                if key[0] not in shut_down and agent.outbox is not None:
                    shut_down.add(key[0])
                    agent.outbox.send(_shutdown_framework(key[0]))
                    log.info("agent runs tasks of a removed framework; shutting it down",
                             agent_id=agent.agent_id, framework_id=key[0])
                continue
            reported.add(key)
            record = agent.tasks.get(key)
            added = record is None
            if record is None:
                record = self._task_from_report(agent, task)
                agent.tasks[key] = record
            previous = record.state
            record.state = task.state
            if task.latest_status is not None:
                record.record_encoded_status(task.latest_status, task.latest_state)
            framework = self._frameworks.get(key[0])
            if framework is None:
                framework = recover_framework(key[0], frameworks.get(key[0]))
            framework.tasks[key[1]] = record
            if added:
                self._observer.task_added(record)
            elif record.state != previous:
                self._observer.task_updated(record)
            if previous == mesos_pb2.TASK_UNREACHABLE and record.state != previous:
                self._send_reconciliation(
                    framework,
                    record,
                    reason=Reason.REASON_UNSPECIFIED,
                    message="agent re-registered",
                )
        return reported

    def _drop_unreported(self, agent: AgentRecord, reported: set[tuple[str, str]]) -> None:
        """Tasks the master sent but the agent does not know were lost in transit."""
        for key, task in list(agent.tasks.items()):
            if key in reported or task.state in TERMINAL_STATES:
                continue
            framework = self._frameworks.get(task.framework_id)
            state = mesos_pb2.TASK_LOST
            if framework is not None and framework.partition_aware:
                state = (
                    mesos_pb2.TASK_DROPPED
                    if task.state == mesos_pb2.TASK_STAGING
                    else mesos_pb2.TASK_GONE
                )
            self._end(
                task,
                framework,
                state,
                Reason.REASON_AGENT_RESTARTED,
                "task is not known to its re-registered agent",
                recover=False,
            )

    def _task_from_report(self, agent: AgentRecord, task: ReportedTask) -> TaskRecord:
        framework_id = task.key[0]
        info, executor_id = task.info, ""
        executor = agent.executors.get((framework_id, task.executor_id))
        if executor is not None:
            with_executor = mesos_pb2.TaskInfo.FromString(info)
            with_executor.executor.CopyFrom(executor.info)
            info, executor_id = with_executor.SerializeToString(), task.executor_id
        return TaskRecord(
            info, framework_id, agent.agent_id, self._shared(task.resources),
            self._role_of(framework_id, task.allocated_to), task.state,
            ids=(task.key[1], executor_id),
        )


def _as_is(resources: Resources) -> Resources:
    return resources


Share: TypeAlias = Callable[[Resources], Resources]


@dataclass(frozen=True, slots=True)
class ReportedTask:
    """What the adoption of one task of an agent's report needs, read from the report."""

    key: tuple[str, str]
    """(framework id, task id)."""
    executor_id: str
    """The executor the task names ("" for none)."""
    state: TaskState
    resources: Resources
    """Its resources (none when they do not parse), hashed already (they are interned)."""
    allocated_to: str
    """The role its resources' allocation info names ("" for none: `allocation_role`)."""
    info: bytes
    """Its TaskInfo as the master's record keeps it, encoded, without the executor's info."""
    latest_status: bytes | None
    """Its latest status, encoded (None without statuses)."""
    latest_state: TaskState
    """That status's state."""

    @classmethod
    def of(cls, task: mesos_pb2.Task, shared: Share = _as_is) -> ReportedTask:
        """`shared` hands out one instance of equal resources (an `Interner`)."""
        resources = shared(task_resources(task))
        hash(resources)  # computed once, here: interning the resources hashes them
        info = mesos_pb2.TaskInfo(
            name=task.name, task_id=task.task_id, resources=task.resources, labels=task.labels)
        latest = task.statuses[-1] if task.statuses else None
        return cls(
            (task.framework_id.value, task.task_id.value), task.executor_id.value, task.state,
            resources, allocation_role(task.resources), info.SerializeToString(),
            None if latest is None else latest.SerializeToString(),
            mesos_pb2.TASK_STAGING if latest is None else latest.state,
        )


@dataclass(frozen=True, slots=True)
class ReadReport:
    """What `ClusterTasks.adopt_report` needs of a `Reregister`'s tasks and frameworks, read
    from it once (ADR 0018: a standby reads a snapshot when it arrives, off the failover path)."""

    tasks: tuple[ReportedTask, ...]
    """The reported tasks, in the report's order."""
    frameworks: Mapping[str, mesos_pb2.FrameworkInfo]
    """The frameworks' infos the agent sent, by framework id."""

    @classmethod
    def of(cls, report: agent_pb2.AgentMessage.Reregister, shared: Share = _as_is,
           ) -> ReadReport:
        """`shared` hands out one instance of equal resources (an `Interner`)."""
        return cls(tuple(ReportedTask.of(task, shared) for task in report.tasks),
                   {f.id.value: f for f in report.frameworks if f.id.value})


def allocation_role(resources: Iterable[mesos_pb2.Resource]) -> str:
    """The role the first of `resources` that records one is allocated to ("" for none)."""
    for resource in resources:
        if resource.allocation_info.role:
            return resource.allocation_info.role
    return ""


def task_resources(task: mesos_pb2.Task) -> Resources:
    """A reported task's resources (none when they do not parse)."""
    try:
        return Resources.from_proto(task.resources)
    except ValueError:
        return Resources.EMPTY


def _master_status(
    task_id: str,
    state: TaskState,
    reason: ReasonCode,
    message: str,
    timestamp: float,
    agent_id: str = "",
) -> mesos_pb2.TaskStatus:
    """A status of the master's own for a task."""
    status = mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value=task_id),
        state=state,
        source=mesos_pb2.TaskStatus.SOURCE_MASTER,
        reason=reason,
        message=message,
        timestamp=timestamp,
    )
    if agent_id:
        status.agent_id.value = agent_id
    return status


def update_event(status: mesos_pb2.TaskStatus) -> scheduler_pb2.Event:
    """The UPDATE event carrying `status` to a scheduler."""
    return scheduler_pb2.Event(
        type=scheduler_pb2.Event.UPDATE, update=scheduler_pb2.Event.Update(status=status)
    )


def ack_message(framework_id: str, task_id: str, uuid_: bytes) -> agent_pb2.MasterMessage:
    """The acknowledgement of a status update, for the agent that sent it."""
    return agent_pb2.MasterMessage(
        status_update_acknowledgement=agent_pb2.MasterMessage.StatusUpdateAcknowledgement(
            framework_id=mesos_pb2.FrameworkID(value=framework_id),
            task_id=mesos_pb2.TaskID(value=task_id),
            uuid=uuid_,
        )
    )


def _shutdown_framework(framework_id: str) -> agent_pb2.MasterMessage:
    """Tell an agent to shut down a framework's executors and tasks."""
    return agent_pb2.MasterMessage(
        shutdown_framework=agent_pb2.MasterMessage.ShutdownFramework(
            framework_id=mesos_pb2.FrameworkID(value=framework_id)
        )
    )
