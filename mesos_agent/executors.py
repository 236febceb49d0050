"""Custom executors: launched in containers, supervised, and served over `ExecutorLink`.

    TaskBook --launch/kill/stop_framework--> ExecutorSupervisor --launch/wait/stop--> Containerizer
        ^                                        |  |       ^
        +--- accept_update, update, finished ----+  |       | SUBSCRIBE, UPDATE, MESSAGE
                                                    |       |   (ExecutorLinkServicer)
                 LAUNCH, KILL, MESSAGE, SHUTDOWN    +---> executor process
    master <--- ExecutorExited, ExecutorToFramework

A task for a custom executor waits in its executor's queue until the executor subscribed and
the task's checkpoint is durable. An executor that ends (or never subscribes in time) fails
its tasks that are not terminal. One supervision coroutine per executor runs in the agent's
TaskGroup (`spawn`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from mesos_agent.checkpoint import Checkpointer
from mesos_agent.completed import CompletedWork
from mesos_agent.config import AgentConfig
from mesos_agent.containerizer import (
    ContainerLaunchError,
    ContainerProcess,
    stop_container,
)
from mesos_agent.executor_link import Outbox
from mesos_agent.recovered import ExecutorCheckpoint
from mesos_agent.runners import RunnerContext
from mesos_agent.status_updates import is_terminal
from mesos_agent.task_book import Task, TaskBook
from mesos_agent.views import ExecutorView
from mesos_values.resources import Resources
from protos import agent_pb2, executor_pb2, mesos_pb2

__all__ = ["ExecutorSupervisor"]

_Reason = mesos_pb2.TaskStatus.Reason
_Source = mesos_pb2.TaskStatus.Source

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("mesos_agent")

ExecutorKey = tuple[str, str]  # (framework id, executor id)


@dataclass(slots=True)
class _Executor:
    """One custom executor: its container, its stream and the tasks it is yet to be sent."""

    framework_id: str
    info: mesos_pb2.ExecutorInfo
    container: ContainerProcess | None = None
    # The secret it subscribes with ("" for one recovered from an agent that gave none).
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    # Tasks waiting for the executor to subscribe, or for their checkpoint's ticket.
    queued: list[tuple[mesos_pb2.TaskInfo, int]] = field(default_factory=list)
    outbox: Outbox | None = None
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    shutdown_requested: asyncio.Event = field(default_factory=asyncio.Event)
    # Its live tasks' resources: its container is limited to its own plus these, as in Mesos.
    task_resources: dict[str, Resources] = field(default_factory=dict)

    def container_resources(self) -> Resources:
        total = Resources.from_proto(self.info.resources)
        for resources in self.task_resources.values():
            total = total + resources
        return total

    @property
    def id(self) -> str:
        return self.info.executor_id.value

    def send(self, event: executor_pb2.Event) -> bool:
        if self.outbox is None:
            return False
        self.outbox.put_nowait(event)
        return True

    def view(self) -> ExecutorView:
        container = self.container
        return ExecutorView(
            self.framework_id, self.info,
            container.container_id if container is not None else "",
            container.sandbox if container is not None else None,
            self.subscribed.is_set(),
        )


class ExecutorSupervisor:
    """The agent's custom executors (the `ExecutorRegistry` of its `ExecutorLinkServicer`)."""

    def __init__(
        self,
        book: TaskBook,
        context: RunnerContext,
        checkpointer: Checkpointer,
        send_to_master: Callable[[agent_pb2.AgentMessage], bool],
        *,
        config: AgentConfig,
        completed: CompletedWork,
    ) -> None:
        self._book = book
        self._context = context
        self._checkpointer = checkpointer
        self._send_to_master = send_to_master
        self._config = config
        self._completed = completed
        self._executors: dict[ExecutorKey, _Executor] = {}

    def infos(self) -> list[mesos_pb2.ExecutorInfo]:
        return [e.info for e in self._executors.values()]

    def containers(self) -> list[ContainerProcess]:
        return [e.container for e in self._executors.values() if e.container is not None]

    def views(self) -> tuple[ExecutorView, ...]:
        return tuple(e.view() for e in self._executors.values())

    def holds_framework(self, framework_id: str) -> bool:
        return any(e.framework_id == framework_id for e in self._executors.values())

    def sandbox(self, framework_id: str, executor_id: str) -> Path | None:
        """The sandbox of the executor's current run, else of its latest finished one."""
        executor = self._executors.get((framework_id, executor_id))
        if executor is None:
            return self._completed.executor_sandbox(framework_id, executor_id)
        return executor.container.sandbox if executor.container is not None else None

    # ---------------------------------------------------------------- recovery

    def recover(self, checkpoints: Iterable[ExecutorCheckpoint]) -> None:
        """Take back the checkpointed executors (supervised from `resume`)."""
        for checkpoint in checkpoints:
            executor = _Executor(checkpoint.framework_id, checkpoint.executor,
                                 checkpoint.container, token=checkpoint.token)
            self._executors[(executor.framework_id, executor.id)] = executor

    def resume(self, alive: set[str], tasks: Iterable[Task] = ()) -> None:
        """Supervise the recovered executors (`alive`: ids of the containers still running),
        their containers limited again to their own resources plus their live `tasks`'."""
        for task in tasks:
            executor = self._executors.get((task.framework_id, task.executor_id))
            if executor is not None and task.custom_executor and not is_terminal(task.state):
                executor.task_resources[task.id] = Resources.from_proto(task.info.resources)
        for executor in self._executors.values():
            container_alive = (
                executor.container is not None and executor.container.container_id in alive
            )
            if container_alive:
                self._resize(executor)
            self._context.spawn(self._supervise(executor, recovered_alive=container_alive))

    # ---------------------------------------------------------------- tasks

    def launch(self, task: Task, ticket: int) -> None:
        """Queue the task for its executor (launched when it is new), LAUNCHed once the
        executor subscribed and `ticket` is durable."""
        key = (task.framework_id, task.executor_id)
        executor = self._executors.get(key)
        if executor is not None and executor.shutdown_requested.is_set():
            self._book.update(task, mesos_pb2.TASK_FAILED, "Executor is shutting down",
                              _Reason.REASON_EXECUTOR_TERMINATED, source=_Source.SOURCE_AGENT)
            return
        if executor is None:
            executor_info = mesos_pb2.ExecutorInfo()
            executor_info.CopyFrom(task.info.executor)
            executor_info.framework_id.value = task.framework_id
            executor = self._executors[key] = _Executor(task.framework_id, executor_info)
            ticket = self._checkpointer.save_executor(
                ExecutorCheckpoint(task.framework_id, executor_info, token=executor.token)
            )
            self._context.spawn(self._supervise(executor))
        executor.queued.append((task.info, ticket))
        executor.task_resources[task.id] = Resources.from_proto(task.info.resources)
        self._resize(executor)
        self._context.committer.when_durable(ticket, lambda: self._deliver_queued(executor))

    def _resize(self, executor: _Executor) -> None:
        """Set the executor's container's limits to its own resources plus its live tasks'."""
        if executor.container is None:
            return  # launched with them (see `_supervise`)
        container_id, resources = executor.container.container_id, executor.container_resources()

        async def resize() -> None:
            with contextlib.suppress(KeyError):  # the container is gone already
                await self._context.containerizer.update(container_id, resources)

        self._context.spawn(resize())

    def _deliver_queued(self, executor: _Executor) -> None:
        """LAUNCH the queued tasks whose checkpoints are durable, once the executor subscribed."""
        if not executor.subscribed.is_set() or executor.outbox is None:
            return
        waiting: list[tuple[mesos_pb2.TaskInfo, int]] = []
        for info, ticket in executor.queued:
            if self._context.committer.is_durable(ticket):
                executor.send(executor_pb2.Event(type=executor_pb2.Event.LAUNCH,
                                                 launch=executor_pb2.Event.Launch(task=info)))
            else:
                waiting.append((info, ticket))
        executor.queued = waiting

    def kill(self, task: Task, policy: mesos_pb2.KillPolicy | None) -> None:
        """A queued task is killed here; a launched one by its executor (KILL)."""
        executor = self._executors.get((task.framework_id, task.executor_id))
        if executor is None:
            return
        queued = next((q for q in executor.queued if q[0].task_id.value == task.id), None)
        if queued is not None:
            executor.queued.remove(queued)
            self._book.update(task, mesos_pb2.TASK_KILLED,
                              "Task killed before its executor subscribed",
                              _Reason.REASON_TASK_KILLED_DURING_LAUNCH,
                              source=_Source.SOURCE_AGENT)
            return
        kill = executor_pb2.Event.Kill(task_id=task.info.task_id)
        if policy is not None:
            kill.kill_policy.CopyFrom(policy)
        executor.send(executor_pb2.Event(type=executor_pb2.Event.KILL, kill=kill))

    def stop_framework(self, framework_id: str) -> None:
        """Shut down every executor of the framework."""
        for executor in self._executors.values():
            if executor.framework_id == framework_id:
                executor.shutdown_requested.set()

    def shutdown(self, framework_id: str, executor_id: str) -> None:
        """The master's ShutdownExecutor."""
        executor = self._executors.get((framework_id, executor_id))
        if executor is not None:
            executor.shutdown_requested.set()

    def deliver_message(self, message: agent_pb2.MasterMessage.FrameworkToExecutor) -> None:
        """Framework -> executor message, dropped unless the executor is subscribed."""
        executor = self._executors.get((message.framework_id.value, message.executor_id.value))
        if executor is None or not executor.send(
            executor_pb2.Event(type=executor_pb2.Event.MESSAGE,
                               message=executor_pb2.Event.Message(data=message.data))
        ):
            log.warning("dropping framework message for an executor that is not subscribed",
                        framework_id=message.framework_id.value, agent_id=self._agent_id,
                        executor_id=message.executor_id.value)

    # ---------------------------------------------------------------- supervision

    @property
    def _agent_id(self) -> str:
        return self._context.agent_info.id.value

    def _log(self, executor: _Executor) -> structlog.typing.FilteringBoundLogger:
        return log.bind(framework_id=executor.framework_id, agent_id=self._agent_id,
                        executor_id=executor.id)

    async def _supervise(self, executor: _Executor, *, recovered_alive: bool | None = None) -> None:
        """Launch a custom executor, wait for it to subscribe, and handle its end."""
        elog = self._log(executor)
        if recovered_alive is None:
            committer = self._context.committer
            await committer.wait(committer.last_ticket)  # its checkpoint, durable
            try:
                executor.container = await self._context.containerizer.launch(
                    self._context.configs.for_executor(
                        executor.framework_id, executor.info, token=executor.token,
                        resources=executor.container_resources())
                )
            except (ContainerLaunchError, ValueError) as exc:
                elog.warning("executor launch failed", error=str(exc))
                reason = (exc.reason if isinstance(exc, ContainerLaunchError)
                          else _Reason.REASON_CONTAINER_LAUNCH_FAILED)
                self._gone(executor, reason, f"Failed to launch the executor: {exc}",
                           exit_status=-1)
                return
            self._checkpointer.save_executor(
                ExecutorCheckpoint(executor.framework_id, executor.info, executor.container,
                                   executor.token)
            )
            elog.info("executor process started", pid=executor.container.pid,
                      sandbox=str(executor.container.sandbox))
        elif not recovered_alive:
            self._gone(executor, _Reason.REASON_EXECUTOR_TERMINATED,
                       "The executor ended while the agent was down", exit_status=-1)
            return
        assert executor.container is not None
        container_id = executor.container.container_id
        exited = asyncio.ensure_future(self._context.containerizer.wait(container_id))
        subscribed = asyncio.ensure_future(executor.subscribed.wait())
        shutdown = asyncio.ensure_future(executor.shutdown_requested.wait())
        reason = _Reason.REASON_EXECUTOR_TERMINATED
        message = "Executor terminated"
        grace_period = self._config.executor_shutdown_grace_period
        try:
            await asyncio.wait(
                {exited, subscribed, shutdown},
                timeout=self._config.executor_registration_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not (exited.done() or subscribed.done() or shutdown.done()):
                elog.warning("executor did not subscribe in time; killing it",
                             timeout=self._config.executor_registration_timeout)
                reason = _Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT
                message = "Executor did not subscribe within the registration timeout"
            else:
                await asyncio.wait({exited, shutdown}, return_when=asyncio.FIRST_COMPLETED)
                if shutdown.done() and not exited.done():
                    elog.info("shutting down executor")
                    executor.send(executor_pb2.Event(
                        type=executor_pb2.Event.SHUTDOWN,
                        shutdown=executor_pb2.Event.Shutdown(grace_period_seconds=grace_period),
                    ))
                    await asyncio.wait({exited}, timeout=grace_period)
        finally:
            for future in (subscribed, shutdown):
                future.cancel()
            if not exited.done():
                exited.cancel()
            await asyncio.gather(exited, subscribed, shutdown, return_exceptions=True)
        termination = await stop_container(
            self._context.containerizer, container_id, grace_period=1.0
        )
        self._context.containerizer.forget(container_id)
        elog.info("executor exited", status=termination.describe())
        if termination.limitation is not None:
            reason, message = termination.limitation.reason, termination.limitation.message
        status = termination.exit_code if termination.exit_code is not None else -(
            termination.signal or 0
        )
        self._gone(executor, reason, message, exit_status=status)

    def _gone(
        self, executor: _Executor, reason: mesos_pb2.TaskStatus.Reason.ValueType,
        message: str, *, exit_status: int,
    ) -> None:
        """The executor ended: its tasks that are not terminal fail, the master is told."""
        if executor.outbox is not None:
            executor.outbox.put_nowait(None)
        self._executors.pop((executor.framework_id, executor.id), None)
        self._completed.add_executor(executor.view(),
                                     self._book.framework_info(executor.framework_id))
        self._checkpointer.remove_executor(executor.framework_id, executor.id)
        for task in self._book.tasks():
            if (task.framework_id == executor.framework_id and task.executor_id == executor.id
                    and task.custom_executor and not is_terminal(task.state)):
                self._book.update(task, mesos_pb2.TASK_FAILED, message, reason,
                                  source=_Source.SOURCE_AGENT)
                self._book.finished(task)
        self._send_to_master(agent_pb2.AgentMessage(
            executor_exited=agent_pb2.AgentMessage.ExecutorExited(
                framework_id=mesos_pb2.FrameworkID(value=executor.framework_id),
                executor_id=executor.info.executor_id,
                status=exit_status,
            )
        ))
        self._book.forget_framework_if_done(executor.framework_id)

    # ---------------------------------------------------------------- ExecutorRegistry

    def executor_token(self, framework_id: str, executor_id: str) -> str | None:
        """The token the executor must present; None for an unknown executor, "" for one
        launched by an agent version that gave executors no token."""
        executor = self._executors.get((framework_id, executor_id))
        return None if executor is None else executor.token

    def executor_subscribed(self, call: executor_pb2.Call, outbox: Outbox) -> str | None:
        """An executor subscribed; returns an error message when it is refused."""
        key = (call.framework_id.value, call.executor_id.value)
        executor = self._executors.get(key)
        if executor is None:
            return f"unknown executor {key[1]!r} of framework {key[0]!r}"
        elog = self._log(executor)
        if executor.outbox is not None:
            executor.outbox.put_nowait(None)
        executor.outbox = outbox
        resubscribed = executor.subscribed.is_set()
        executor.subscribed.set()
        elog.info("executor subscribed", resubscribed=resubscribed)
        outbox.put_nowait(executor_pb2.Event(
            type=executor_pb2.Event.SUBSCRIBED,
            subscribed=executor_pb2.Event.Subscribed(
                executor_info=executor.info,
                framework_info=self._book.framework_info(executor.framework_id),
                agent_info=self._context.agent_info,
            ),
        ))
        for status in call.subscribe.unacknowledged_updates:
            self.executor_update(executor.framework_id, executor.id, status)
        self._deliver_queued(executor)
        return None

    def executor_disconnected(self, framework_id: str, executor_id: str, outbox: Outbox) -> None:
        executor = self._executors.get((framework_id, executor_id))
        if executor is not None and executor.outbox is outbox:
            executor.outbox = None
            self._log(executor).info("executor disconnected")

    def executor_update(
        self, framework_id: str, executor_id: str, status: mesos_pb2.TaskStatus
    ) -> None:
        """A status update from a custom executor: persist, then ACKNOWLEDGED to the executor."""
        executor = self._executors.get((framework_id, executor_id))
        if executor is None:
            return
        task = self._book.task(framework_id, status.task_id.value)
        if task is None or task.executor_id != executor_id or not status.uuid:
            log.warning("dropping executor update for a task it does not run (or without uuid)",
                        framework_id=framework_id, agent_id=self._agent_id,
                        task_id=status.task_id.value, executor_id=executor_id)
            return
        update = mesos_pb2.TaskStatus()
        update.CopyFrom(status)
        update.source = _Source.SOURCE_EXECUTOR
        update.agent_id.CopyFrom(self._context.agent_info.id)
        update.executor_id.value = executor_id
        if not update.timestamp:
            update.timestamp = time.time()
        self._book.accept_update(framework_id, update)
        if is_terminal(update.state) and executor.task_resources.pop(task.id, None) is not None:
            self._resize(executor)
        acknowledged = executor_pb2.Event(
            type=executor_pb2.Event.ACKNOWLEDGED,
            acknowledged=executor_pb2.Event.Acknowledged(task_id=status.task_id, uuid=status.uuid),
        )

        def acknowledge() -> None:
            executor.send(acknowledged)

        # The executor forgets the update on ACKNOWLEDGED: only once the agent's copy is durable.
        self._context.committer.when_durable(self._context.committer.last_ticket, acknowledge)

    def executor_message(self, framework_id: str, executor_id: str, data: bytes) -> None:
        """Executor -> framework message, best effort like Mesos."""
        if not self._send_to_master(agent_pb2.AgentMessage(
            executor_to_framework=agent_pb2.AgentMessage.ExecutorToFramework(
                framework_id=mesos_pb2.FrameworkID(value=framework_id),
                executor_id=mesos_pb2.ExecutorID(value=executor_id),
                data=data,
            )
        )):
            log.warning("dropping executor message: not connected to a master",
                        framework_id=framework_id, agent_id=self._agent_id,
                        executor_id=executor_id)
