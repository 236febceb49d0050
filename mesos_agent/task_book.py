"""The task book: an agent's frameworks and tasks, their status updates and what is
checkpointed of them. A pure core: no I/O, no asyncio; runners do the work and report back.

    master --RunTask/KillTask/Ack/ShutdownFramework--> TaskBook --launch/kill/stop--> TaskRunner
                                                         ^  |        (command executor, custom
                                                         |  |         executors, hollow timers)
              update, launched, killing, finished -------+  |                  |
              (TaskReports) <-------------------------------|------------------+
                                                            v
                        TaskJournal (the task log) + StatusUpdateManager --sent once durable-->

Every update goes through `accept_update`: queued for the master under the journal batch that
logs it, and sent once that batch is durable (`synced`). A journal whose tickets are 0 keeps
nothing (hollow agents): its updates may go at once.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeAlias

import structlog

from mesos_agent.completed import CompletedWork
from mesos_agent.containers import ContainerProcess
from mesos_agent.ids import random_uuid
from mesos_agent.recovered import TaskCheckpoint
from mesos_agent.status_updates import (
    AckRecord,
    AckResult,
    AddResult,
    ContainerRecord,
    LogRecord,
    PendingUpdate,
    StatusUpdateManager,
    UpdateRecord,
    is_terminal,
)
from mesos_agent.views import TaskView
from mesos_runtime.clock import Clock
from mesos_values.users import own_user
from protos import agent_pb2, mesos_pb2

__all__ = [
    "NoJournal", "Spawn", "Task", "TaskBook", "TaskJournal", "TaskKey", "TaskReports", "TaskRunner",
]

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("mesos_agent")

TaskKey = tuple[str, str]  # (framework id, task id)
Spawn = Callable[[Coroutine[object, object, None]], None]
"""How a runner starts its long-lived work (into the agent's TaskGroup)."""
TaskState: TypeAlias = "mesos_pb2.TaskState.ValueType"
Reason: TypeAlias = "mesos_pb2.TaskStatus.Reason.ValueType"
Source: TypeAlias = "mesos_pb2.TaskStatus.Source.ValueType"

_Reason = mesos_pb2.TaskStatus.Reason
_Source = mesos_pb2.TaskStatus.Source


@dataclass(slots=True)
class Task:
    """One task of the agent: as it arrived, its state and (command tasks) its container."""

    framework_id: str
    info: mesos_pb2.TaskInfo
    executor_id: str
    custom_executor: bool
    state: TaskState = mesos_pb2.TASK_STAGING
    container: ContainerProcess | None = None
    id: str = field(init=False)
    """`info.task_id.value` (read once: asked several times per update)."""
    key: TaskKey = field(init=False)
    """(framework id, task id)."""

    def __post_init__(self) -> None:
        self.id = self.info.task_id.value
        self.key = (self.framework_id, self.id)


@dataclass(slots=True)
class _Framework:
    info: mesos_pb2.FrameworkInfo
    shutting_down: bool = False

    def has_capability(self, capability: mesos_pb2.FrameworkInfo.Capability.Type.ValueType) -> bool:
        return any(c.type == capability for c in self.info.capabilities)


class TaskJournal(Protocol):
    """Where the book checkpoints (the agent's `Checkpointer`); each write returns the
    group-commit ticket that makes it durable (0: durable already)."""

    @property
    def next_ticket(self) -> int:
        """The ticket the next write gets."""
        ...

    def save_framework(self, framework_info: mesos_pb2.FrameworkInfo) -> int: ...

    def remove_framework(self, framework_id: str) -> int: ...

    def save_task(self, framework_id: str, task: mesos_pb2.TaskInfo, executor_id: str) -> int: ...

    def append(self, framework_id: str, task_id: str, record: LogRecord) -> int: ...

    def remove_task(self, framework_id: str, task_id: str) -> int: ...


class NoJournal:
    """A journal that keeps nothing (hollow agents, tests): every write is durable at once."""

    next_ticket = 0

    def save_framework(self, framework_info: mesos_pb2.FrameworkInfo) -> int:
        return 0

    def remove_framework(self, framework_id: str) -> int:
        return 0

    def save_task(self, framework_id: str, task: mesos_pb2.TaskInfo, executor_id: str) -> int:
        return 0

    def append(self, framework_id: str, task_id: str, record: LogRecord) -> int:
        return 0

    def remove_task(self, framework_id: str, task_id: str) -> int:
        return 0


class TaskRunner(Protocol):
    """What runs the book's tasks; it tells the book what became of them (`TaskReports`)."""

    def launch(self, task: Task, ticket: int) -> None:
        """Start a new task; its arrival is durable with `ticket`."""
        ...

    def kill(self, task: Task, policy: mesos_pb2.KillPolicy | None) -> None:
        """Kill a task that is not terminal (`policy`: the KillTask's, if it has one)."""
        ...

    def stop_framework(self, framework_id: str) -> None:
        """The framework is shutting down: stop its running tasks and executors."""
        ...

    def holds_framework(self, framework_id: str) -> bool:
        """Whether a custom executor of the framework is still here."""
        ...

    def executor_sandbox(self, framework_id: str, executor_id: str) -> Path | None:
        """The sandbox of a custom executor's current (else latest) run."""
        ...


class TaskReports(Protocol):
    """How a runner tells the book what became of a task (`TaskBook` implements it)."""

    def update(
        self, task: Task, state: TaskState, message: str = "",
        reason: Reason = _Reason.REASON_UNSPECIFIED, *, source: Source = _Source.SOURCE_EXECUTOR,
        healthy: bool | None = None,
    ) -> None:
        """The task reached `state` (`healthy`: what its health check says, if it has one)."""
        ...

    def launched(self, task: Task, container: ContainerProcess) -> None:
        """The task's container started: it is recorded and the task is TASK_RUNNING."""
        ...

    def killing(self, task: Task) -> None:
        """The task is being killed (TASK_KILLING, for frameworks that want it)."""
        ...

    def finished(self, task: Task) -> None:
        """The runner is done with the task."""
        ...


class TaskBook:
    """The tasks and frameworks of one agent; see the module docstring."""

    def __init__(
        self,
        agent_info: mesos_pb2.AgentInfo,
        updates: StatusUpdateManager,
        journal: TaskJournal,
        runner: TaskRunner,
        *,
        wake: Callable[[], None],
        wall_clock: Clock,
        completed: CompletedWork | None = None,
    ) -> None:
        """`agent_info` is the agent's (its id may change); `wake` tells the update sender
        that updates may be due; `wall_clock` stamps the agent's own updates; `completed` keeps
        forgotten tasks (None: nothing is kept)."""
        self._agent_info = agent_info
        self._updates = updates
        self._journal = journal
        self._runner = runner
        self._wake = wake
        self._wall_clock = wall_clock
        self._completed = completed
        # Resolved now, once logging is configured: calls skip structlog's lazy proxy.
        self._log: structlog.typing.FilteringBoundLogger = log.bind()
        self._frameworks: dict[str, _Framework] = {}
        self._tasks: dict[TaskKey, Task] = {}
        self._changes = 0  # moves whenever what `hello` reports of tasks and frameworks may move
        self.terminal_tasks: Counter[TaskState] = Counter()
        """Terminal updates accepted since the start, by state."""

    @property
    def agent_id(self) -> str:
        return self._agent_info.id.value

    @property
    def report_version(self) -> tuple[int, str]:
        """Names what `hello` reports, but for its `executors` and the AgentInfo's other fields:
        unchanged while the tasks, their statuses, the frameworks and the agent id are. Every
        method of the book that changes them moves it (cheap: no report is built)."""
        return (self._changes, self.agent_id)

    def task(self, framework_id: str, task_id: str) -> Task | None:
        return self._tasks.get((framework_id, task_id))

    def tasks(self) -> list[Task]:
        return list(self._tasks.values())

    def framework_info(self, framework_id: str) -> mesos_pb2.FrameworkInfo | None:
        framework = self._frameworks.get(framework_id)
        return framework.info if framework is not None else None

    def framework_infos(self) -> dict[str, mesos_pb2.FrameworkInfo]:
        return {framework_id: f.info for framework_id, f in self._frameworks.items()}

    def containers(self) -> list[ContainerProcess]:
        """The containers of the command tasks."""
        return [t.container for t in self._tasks.values() if t.container is not None]

    def views(self) -> tuple[TaskView, ...]:
        return tuple(self._view(task) for task in self._tasks.values())

    def _view(self, task: Task) -> TaskView:
        if task.custom_executor:
            sandbox = self._runner.executor_sandbox(task.framework_id, task.executor_id)
        else:
            sandbox = task.container.sandbox if task.container is not None else None
        return TaskView(self._record(task), task.executor_id, task.custom_executor, sandbox,
                        own_user(task.info))

    def _record(self, task: Task) -> mesos_pb2.Task:
        record = mesos_pb2.Task(
            name=task.info.name,
            task_id=task.info.task_id,
            framework_id=mesos_pb2.FrameworkID(value=task.framework_id),
            agent_id=self._agent_info.id,
            state=task.state,
            resources=task.info.resources,
            labels=task.info.labels,
        )
        if task.custom_executor:
            record.executor_id.value = task.executor_id
        latest = self._updates.latest(task.framework_id, task.id)
        if latest is not None:
            record.statuses.append(latest)
        return record

    def hello(
        self, version: str, executors: Sequence[mesos_pb2.ExecutorInfo]
    ) -> agent_pb2.AgentMessage:
        """Register (no id yet), else Reregister with the tasks, `executors` and frameworks."""
        if not self.agent_id:
            return agent_pb2.AgentMessage(
                register=agent_pb2.AgentMessage.Register(
                    agent_info=self._agent_info, version=version
                )
            )
        framework_ids = {t.framework_id for t in self._tasks.values()} | {
            e.framework_id.value for e in executors
        }
        return agent_pb2.AgentMessage(
            reregister=agent_pb2.AgentMessage.Reregister(
                agent_info=self._agent_info,
                tasks=[self._record(t) for t in self._tasks.values()],
                executors=executors,
                frameworks=[
                    self._frameworks[f].info for f in sorted(framework_ids) if f in self._frameworks
                ],
                version=version,
            )
        )

    # ---------------------------------------------------------------- recovery

    def recover(
        self,
        frameworks: Mapping[str, mesos_pb2.FrameworkInfo],
        checkpoints: Iterable[TaskCheckpoint],
        alive: set[str],
    ) -> list[tuple[Task, bool]]:
        """Take back checkpointed tasks (`alive`: the ids of the containers still running);
        returns the command tasks to resume, each with whether its container is alive."""
        self._changes += 1
        for framework_id, info in frameworks.items():
            self._frameworks[framework_id] = _Framework(info)
        resume: list[tuple[Task, bool]] = []
        for checkpoint in checkpoints:
            task = Task(checkpoint.framework_id, checkpoint.task, checkpoint.executor_id,
                        custom_executor=checkpoint.task.HasField("executor"),
                        container=checkpoint.container)
            recovered = self._updates.recover(task.framework_id, task.id, checkpoint.updates)
            if not recovered and checkpoint.updates:  # terminal update acked before the crash
                self._journal.remove_task(task.framework_id, task.id)
                continue
            latest = self._updates.latest(task.framework_id, task.id)
            if latest is not None:
                task.state = latest.state
            self._tasks[task.key] = task
            if task.custom_executor or is_terminal(task.state):
                continue
            if checkpoint.updates_lost and task.container is None:
                self.update(task, mesos_pb2.TASK_FAILED,
                            "The agent lost the task's process record to a corrupt checkpoint "
                            "and killed the process", _Reason.REASON_AGENT_RESTARTED,
                            source=_Source.SOURCE_AGENT)
                continue
            container_alive = task.container is not None and task.container.container_id in alive
            if container_alive and task.state == mesos_pb2.TASK_STARTING:
                self.update(task, mesos_pb2.TASK_RUNNING)  # its record did not become durable
            resume.append((task, container_alive))
        return resume

    # ---------------------------------------------------------------- from the master

    def receive(self, message: agent_pb2.MasterMessage) -> bool:
        """Take a message of the master's about tasks (run, kill, acknowledge, shut a framework
        down); False for any other kind, which the caller handles."""
        kind = message.WhichOneof("message")
        if kind == "run_task":
            self.run_task(message.run_task.framework_info, message.run_task.task)
        elif kind == "kill_task":
            kill = message.kill_task
            policy = kill.kill_policy if kill.HasField("kill_policy") else None
            self.kill_task(kill.framework_id.value, kill.task_id.value, policy)
        elif kind == "status_update_acknowledgement":
            ack = message.status_update_acknowledgement
            self.acknowledge(ack.framework_id.value, ack.task_id.value, ack.uuid)
        elif kind == "shutdown_framework":
            self.shutdown_framework(message.shutdown_framework.framework_id.value)
        else:
            return False
        return True

    def run_task(self, framework_info: mesos_pb2.FrameworkInfo, info: mesos_pb2.TaskInfo) -> None:
        """RunTask: record the task (and its framework), then hand it to the runner."""
        framework_id = framework_info.id.value
        if (framework_id, info.task_id.value) in self._tasks:
            self._log.warning("ignoring RunTask for a task the agent already has",
                              **self._log_ids(framework_id, info.task_id.value))
            return
        framework = self._frameworks.get(framework_id)
        if framework is None or framework.info != framework_info:
            self._frameworks[framework_id] = _Framework(framework_info)
            self._journal.save_framework(framework_info)
        custom = info.HasField("executor")
        executor_id = info.executor.executor_id.value if custom else info.task_id.value
        task = Task(framework_id, info, executor_id, custom_executor=custom)
        self._tasks[task.key] = task
        self._changes += 1
        ticket = self._journal.save_task(framework_id, info, executor_id)
        if self._log.is_enabled_for(logging.DEBUG):  # one per task: skip building the line
            self._log.debug("task received", executor_id=executor_id, custom_executor=custom,
                            **self._log_ids(framework_id, task.id))
        self._runner.launch(task, ticket)

    def kill_task(
        self, framework_id: str, task_id: str, policy: mesos_pb2.KillPolicy | None
    ) -> None:
        """KillTask: an unknown task is reported TASK_LOST, a terminal one is left alone."""
        ids = self._log_ids(framework_id, task_id)
        task = self._tasks.get((framework_id, task_id))
        if task is None:
            self._log.warning("kill requested for an unknown task; reporting TASK_LOST", **ids)
            status = self._new_status(task_id, "", mesos_pb2.TASK_LOST,
                                      "Task is unknown to the agent",
                                      _Reason.REASON_TASK_UNKNOWN, _Source.SOURCE_AGENT)
            self.accept_update(framework_id, status)
            return
        if is_terminal(task.state):
            self._log.info("kill requested for a terminated task; its terminal update is pending",
                           **ids)
            return
        self._log.info("killing task", **ids)
        self._runner.kill(task, policy)

    def acknowledge(self, framework_id: str, task_id: str, status_uuid: bytes) -> None:
        """The master acknowledged an update; the terminal one's ack forgets the task."""
        result = self._updates.acknowledge(framework_id, task_id, status_uuid)
        if result is AckResult.UNKNOWN:
            self._log.info("ignoring acknowledgement of an unknown update",
                           uuid=status_uuid.hex(), **self._log_ids(framework_id, task_id))
            return
        if self._log.is_enabled_for(logging.DEBUG):  # two per task: skip building the line
            self._log.debug("status update acknowledged", uuid=status_uuid.hex(),
                            **self._log_ids(framework_id, task_id))
        self._changes += 1
        self._wake()
        if result is AckResult.ACKNOWLEDGED:
            self._journal.append(framework_id, task_id, AckRecord(status_uuid))
            return
        task = self._tasks.get((framework_id, task_id))
        self._journal.remove_task(framework_id, task_id)
        if task is not None:
            self._forget(task)
            self._log.debug("task finished and acknowledged; forgetting it",
                            **self._log_ids(framework_id, task_id))

    def shutdown_framework(self, framework_id: str) -> None:
        """ShutdownFramework: drop its updates, stop its tasks and executors, then forget it."""
        framework = self._frameworks.get(framework_id)
        if framework is None:
            return
        self._log.info("shutting down framework", framework_id=framework_id, agent_id=self.agent_id)
        framework.shutting_down = True
        self._changes += 1
        for task in [t for t in self._tasks.values() if t.framework_id == framework_id]:
            self._updates.forget(*task.key)
            if is_terminal(task.state):
                self._remove(task)
        self._runner.stop_framework(framework_id)
        self.forget_framework_if_done(framework_id)

    def shutdown_frameworks(self) -> None:
        """Shut every framework down (the master refused this agent's id)."""
        for framework_id in list(self._frameworks):
            self.shutdown_framework(framework_id)

    def forget_updates(self) -> None:
        """Drop every update stream, unacknowledged or not."""
        self._changes += 1
        for key in self._updates.streams():
            self._updates.forget(*key)

    def reconnected(self) -> list[PendingUpdate]:
        """(Re)registered: the unacknowledged updates to send again now (none: nothing to do,
        the update sender is not woken)."""
        pending = self._updates.resend_all()
        if pending:
            self._wake()
        return pending

    def synced(self, ticket: int) -> None:
        """A journal batch is durable: the updates it logged may go to the master."""
        self._updates.synced(ticket)
        self._wake()

    # ---------------------------------------------------------------- TaskReports

    def update(
        self, task: Task, state: TaskState, message: str = "",
        reason: Reason = _Reason.REASON_UNSPECIFIED, *, source: Source = _Source.SOURCE_EXECUTOR,
        healthy: bool | None = None,
    ) -> None:
        """A new status of `task`, made by the agent (see `TaskReports`)."""
        status = self._new_status(task.id, task.executor_id, state, message, reason, source)
        if healthy is not None:
            status.healthy = healthy
        self.accept_update(task.framework_id, status)

    def launched(self, task: Task, container: ContainerProcess) -> None:
        """The container goes to the task log in the same batch as TASK_RUNNING."""
        task.container = container
        self._journal.append(task.framework_id, task.id, ContainerRecord(container))
        self.update(task, mesos_pb2.TASK_RUNNING)

    def killing(self, task: Task) -> None:
        """TASK_KILLING, when the task's framework has the TASK_KILLING_STATE capability."""
        framework = self._frameworks.get(task.framework_id)
        if framework is not None and framework.has_capability(
            mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE
        ):
            self.update(task, mesos_pb2.TASK_KILLING)

    def finished(self, task: Task) -> None:
        """The runner is done: a task of a framework being shut down is forgotten now."""
        framework = self._frameworks.get(task.framework_id)
        if framework is not None and framework.shutting_down:
            self._remove(task)

    # ---------------------------------------------------------------- status updates

    def _new_status(
        self, task_id: str, executor_id: str, state: TaskState, message: str, reason: Reason,
        source: Source,
    ) -> mesos_pb2.TaskStatus:
        status = mesos_pb2.TaskStatus(
            task_id=mesos_pb2.TaskID(value=task_id),
            state=state,
            message=message,
            source=source,
            reason=reason,
            agent_id=self._agent_info.id,
            timestamp=self._wall_clock.now(),
            uuid=random_uuid(),
        )
        if executor_id:
            status.executor_id.value = executor_id
        return status

    def accept_update(self, framework_id: str, status: mesos_pb2.TaskStatus) -> AddResult:
        """Log then queue an update for the master (the one path for every update)."""
        task_id = status.task_id.value
        task = self._tasks.get((framework_id, task_id))
        framework = self._frameworks.get(framework_id)
        self._changes += 1
        if framework is not None and framework.shutting_down:
            if task is not None:
                task.state = status.state
            self._log.debug("dropping status update of a framework being shut down",
                            state=mesos_pb2.TaskState.Name(status.state),
                            **self._log_ids(framework_id, task_id))
            return AddResult.ACCEPTED
        ticket = self._journal.next_ticket
        result = self._updates.update(framework_id, status, ticket)
        if result is not AddResult.ACCEPTED:
            self._log.info("dropping status update", result=result.value,
                           state=mesos_pb2.TaskState.Name(status.state),
                           uuid=status.uuid.hex(), **self._log_ids(framework_id, task_id))
            return result
        logged = self._journal.append(framework_id, task_id, UpdateRecord(status))
        assert logged == ticket, "the update and its log record are in different batches"
        if not ticket:  # a journal that keeps nothing: the update may go at once
            self._wake()
        if task is not None:
            task.state = status.state
        level = logging.DEBUG
        if is_terminal(status.state):
            self.terminal_tasks[status.state] += 1
            level = logging.INFO
        if self._log.is_enabled_for(level):  # one line per update: skip building it for nothing
            self._log.log(
                level, "status update", state=mesos_pb2.TaskState.Name(status.state),
                reason=mesos_pb2.TaskStatus.Reason.Name(status.reason), message=status.message,
                uuid=status.uuid.hex(), **self._log_ids(framework_id, task_id),
            )
        return result

    # ---------------------------------------------------------------- forgetting

    def _forget(self, task: Task) -> None:
        """Drop a task from the live ones; the completed work keeps showing it."""
        self._tasks.pop(task.key, None)
        self._changes += 1
        if self._completed is not None:
            self._completed.add_task(self._view(task), self.framework_info(task.framework_id))

    def _remove(self, task: Task) -> None:
        self._forget(task)
        self._updates.forget(*task.key)
        self._journal.remove_task(*task.key)
        self.forget_framework_if_done(task.framework_id)

    def forget_framework_if_done(self, framework_id: str) -> None:
        """Forget a framework being shut down once none of its tasks and executors is left."""
        framework = self._frameworks.get(framework_id)
        if framework is None or not framework.shutting_down:
            return
        if any(t.framework_id == framework_id for t in self._tasks.values()):
            return
        if self._runner.holds_framework(framework_id):
            return
        del self._frameworks[framework_id]
        self._changes += 1
        self._journal.remove_framework(framework_id)
        self._log.info("framework removed from the agent", framework_id=framework_id,
                       agent_id=self.agent_id)

    def _log_ids(self, framework_id: str, task_id: str) -> dict[str, str]:
        """A task's log fields (passed to each call: cheaper than binding a logger)."""
        return {"framework_id": framework_id, "agent_id": self.agent_id, "task_id": task_id}
