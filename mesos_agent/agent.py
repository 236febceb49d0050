"""The agent: task and executor bookkeeping between the master link, containers and executors.

    master --RunTask/KillTask/Ack/...--> Agent --launch/kill--> Containerizer (command tasks)
                                           |  \\--LAUNCH/KILL/MESSAGE/SHUTDOWN--> custom executors
                                           v
                        StatusUpdateManager + task log --retry--> master
                                           |
                        Checkpointer -> GroupCommitter (batched fsyncs off the loop)

Every piece of state here is touched only from the event loop; long-lived work (one runner per
command task, one supervisor per custom executor, the status update sender, the checkpoint
syncer, the master link and the executor server) runs in the agent's TaskGroup, which owns and
awaits it. Checkpoint writes never block the loop: whatever depends on one being durable waits
for its group-commit ticket (see `mesos_agent.group_commit` for the exact guarantee).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import grpc
import structlog

from mesos_agent.checkpoint import Checkpointer, ExecutorCheckpoint, RecoveredState
from mesos_agent.completed import CompletedWork
from mesos_agent.config import AgentConfig
from mesos_agent.containerizer import (
    ContainerConfig,
    Containerizer,
    ContainerLaunchError,
    ContainerProcess,
    PosixContainerizer,
    Termination,
    stop_container,
)
from mesos_agent.environment import (
    ContainerIds,
    argv_without_shell,
    command_argv,
    executor_environment,
    inherited_environment,
    task_environment,
)
from mesos_agent.executor_link import ExecutorLinkServicer, Outbox
from mesos_agent.group_commit import DurabilityError, GroupCommitter
from mesos_agent.master_link import MasterLink, forward_status_updates, send_status_update
from mesos_agent.orphans import kill_orphans
from mesos_agent.paths import AgentPaths
from mesos_agent.status_updates import (
    AckRecord,
    AckResult,
    AddResult,
    ContainerRecord,
    StatusUpdateManager,
    UpdateRecord,
    is_terminal,
)
from mesos_agent.views import AgentView, ExecutorView, TaskView
from mesos_coordination.detector import MasterDetector
from mesos_runtime.clock import Clock, SystemClock
from mesos_values.resources import Resources
from protos import agent_pb2, executor_pb2, executor_pb2_grpc, mesos_pb2

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("mesos_agent")

TaskKey = tuple[str, str]  # (framework id, task id)
ExecutorKey = tuple[str, str]  # (framework id, executor id)

_Reason = mesos_pb2.TaskStatus.Reason
_Source = mesos_pb2.TaskStatus.Source


def agent_version() -> str:
    try:
        return metadata.version("pymesos-cluster")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@dataclass(slots=True)
class _Framework:
    info: mesos_pb2.FrameworkInfo
    shutting_down: bool = False

    def has_capability(self, capability: mesos_pb2.FrameworkInfo.Capability.Type.ValueType) -> bool:
        return any(c.type == capability for c in self.info.capabilities)


@dataclass(slots=True)
class _Task:
    framework_id: str
    info: mesos_pb2.TaskInfo
    executor_id: str
    custom_executor: bool
    state: mesos_pb2.TaskState.ValueType = mesos_pb2.TASK_STAGING
    container: ContainerProcess | None = None
    kill_requested: asyncio.Event = field(default_factory=asyncio.Event)
    kill_policy: mesos_pb2.KillPolicy | None = None

    @property
    def id(self) -> str:
        return self.info.task_id.value

    @property
    def key(self) -> TaskKey:
        return (self.framework_id, self.id)


@dataclass(slots=True)
class _Executor:
    framework_id: str
    info: mesos_pb2.ExecutorInfo
    container: ContainerProcess | None = None
    # Tasks waiting for the executor to subscribe, or for their checkpoint's ticket.
    queued: list[tuple[mesos_pb2.TaskInfo, int]] = field(default_factory=list)
    outbox: Outbox | None = None
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    shutdown_requested: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def id(self) -> str:
        return self.info.executor_id.value

    def send(self, event: executor_pb2.Event) -> bool:
        if self.outbox is None:
            return False
        self.outbox.put_nowait(event)
        return True


class Agent:
    """One agent process's state and behaviour; `run()` serves until cancelled."""

    def __init__(
        self,
        config: AgentConfig,
        detector: MasterDetector,
        *,
        containerizer: Containerizer | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.config = config
        self._detector = detector
        self._containerizer: Containerizer = containerizer or PosixContainerizer()
        self._clock = clock or SystemClock()
        self._paths = AgentPaths(config.work_dir)
        self._committer = GroupCommitter(on_durable=self._synced)
        self._checkpointer = Checkpointer(self._paths, self._committer)
        self._updates = StatusUpdateManager(
            self._clock,
            initial_backoff=config.status_update_retry_interval,
            max_backoff=config.status_update_max_retry_interval,
        )
        self._updates_wake = asyncio.Event()
        self._agent_info = mesos_pb2.AgentInfo(
            hostname=config.hostname,
            address=config.ip,
            resources=config.resources.to_proto(),
            attributes=config.attributes,
        )
        self._frameworks: dict[str, _Framework] = {}
        self._tasks: dict[TaskKey, _Task] = {}
        self._executors: dict[ExecutorKey, _Executor] = {}
        self._base_environment = inherited_environment(os.environ)
        self._link = MasterLink(
            detector, self, self._hello, max_backoff=config.registration_max_backoff
        )
        self._group: asyncio.TaskGroup | None = None
        self._terminal_tasks: Counter[mesos_pb2.TaskState.ValueType] = Counter()
        self._completed = CompletedWork()
        self.endpoint: str | None = None
        self.ready = asyncio.Event()

    @property
    def agent_id(self) -> str:
        return self._agent_info.id.value

    def set_http_port(self, port: int) -> None:
        """Where this agent's HTTP endpoints listen; told to the master on (re-)registration."""
        self._agent_info.http_port = port

    def view(self) -> AgentView:
        """What the HTTP endpoints show: info, frameworks, tasks, executors and counts."""
        tasks = [self._task_view(task) for task in self._tasks.values()]
        executors = tuple(self._executor_view(e) for e in self._executors.values())
        return AgentView(
            info=self._agent_info,
            master=self._link.leader,
            registered=self._link.connected,
            frameworks={fid: framework.info for fid, framework in self._frameworks.items()},
            tasks=tuple(tasks),
            executors=executors,
            terminal_tasks=dict(self._terminal_tasks),
            sandboxes_root=self._paths.work_dir / "slaves",
            completed_tasks=self._completed.tasks,
            completed_executors=self._completed.executors,
            completed_frameworks=self._completed.frameworks,
        )

    def _task_view(self, task: _Task) -> TaskView:
        sandbox = task.container.sandbox if task.container is not None else None
        if task.custom_executor:
            executor = self._executors.get((task.framework_id, task.executor_id))
            if executor is None:  # it ended: its sandbox is the latest run's
                sandbox = self._completed.executor_sandbox(task.framework_id, task.executor_id)
            else:
                sandbox = executor.container.sandbox if executor.container is not None else None
        return TaskView(self._task_record(task), task.executor_id, task.custom_executor, sandbox)

    def _executor_view(self, executor: _Executor) -> ExecutorView:
        container = executor.container
        return ExecutorView(
            executor.framework_id, executor.info,
            container.container_id if container is not None else "",
            container.sandbox if container is not None else None,
            executor.subscribed.is_set(),
        )

    def _forget_task(self, task: _Task) -> None:
        """Drop a task from the live ones; /state keeps showing it among the completed."""
        self._tasks.pop(task.key, None)
        framework = self._frameworks.get(task.framework_id)
        self._completed.add_task(self._task_view(task),
                                 framework.info if framework is not None else None)

    # ---------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Recover checkpointed state, serve executors, and stay connected to the master.

        Raises CorruptCheckpoint, before serving anything, when `--strict` and a checkpoint
        is corrupt (see `mesos_agent.checkpoint`).
        """
        state = self._checkpointer.load(strict=self.config.strict)
        server = grpc.aio.server()
        executor_pb2_grpc.add_ExecutorLinkServicer_to_server(
            ExecutorLinkServicer(self), server
        )
        address = f"{self.config.ip}:{self.config.port}"
        try:
            port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self.endpoint = f"{self.config.ip}:{port}"
        self._agent_info.port = port
        log.info("agent serving executors", endpoint=self.endpoint,
                 work_dir=str(self.config.work_dir))
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self._committer.run())
                await self._recover(state)
                group.create_task(forward_status_updates(
                    self._link, self._updates, self._updates_wake, self._clock))
                group.create_task(self._link.run())
                self.ready.set()
        except* DurabilityError as failed:
            log.error("cannot make checkpoints durable; stopping", agent_id=self.agent_id,
                      error=str(failed.exceptions[0]))
            raise failed.exceptions[0] from None
        finally:
            self._group = None
            await server.stop(grace=None)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        assert self._group is not None, "the agent is not running"
        self._group.create_task(self._contained(coro))

    async def _contained(self, coro: Coroutine[object, object, None]) -> None:
        """Run one task's or executor's supervision; a bug there must not stop the agent."""
        try:
            await coro
        except DurabilityError:
            raise  # the agent stops (see run)
        except Exception:
            log.exception("task supervision crashed", agent_id=self.agent_id)

    async def _recover(self, state: RecoveredState) -> None:
        for skipped in state.skipped:
            log.warning("skipped a corrupt checkpoint (--strict=false)", file=str(skipped.path),
                        problem=skipped.problem, consequence=skipped.consequence,
                        set_aside_at=str(skipped.set_aside_at))
        if state.agent_info is None:
            await self._kill_orphans([])
            return
        self._agent_info.id.CopyFrom(state.agent_info.id)
        log.info("recovering checkpointed state", agent_id=self.agent_id,
                 tasks=len(state.tasks), executors=len(state.executors))
        for framework_id, info in state.frameworks.items():
            self._frameworks[framework_id] = _Framework(info)
        await self._recover_tasks(state)

    async def _recover_tasks(self, state: RecoveredState) -> None:
        containers = [t.container for t in state.tasks if t.container is not None] + [
            e.container for e in state.executors if e.container is not None
        ]
        alive = await self._containerizer.recover(containers)
        await self._kill_orphans([c.sandbox for c in containers if c.container_id in alive])
        for executor_checkpoint in state.executors:
            executor = _Executor(
                executor_checkpoint.framework_id,
                executor_checkpoint.executor,
                executor_checkpoint.container,
            )
            self._executors[(executor.framework_id, executor.id)] = executor
        for checkpoint in state.tasks:
            task = _Task(
                checkpoint.framework_id,
                checkpoint.task,
                checkpoint.executor_id,
                custom_executor=checkpoint.task.HasField("executor"),
                container=checkpoint.container,
            )
            recovered = self._updates.recover(task.framework_id, task.id, checkpoint.updates)
            if not recovered and checkpoint.updates:  # terminal update acked before the crash
                self._checkpointer.remove_task(task.framework_id, task.id)
                continue
            latest = self._updates.latest(task.framework_id, task.id)
            if latest is not None:
                task.state = latest.state
            self._tasks[task.key] = task
            if task.custom_executor or is_terminal(task.state):
                continue
            if checkpoint.updates_lost and task.container is None:
                self._emit(task, mesos_pb2.TASK_FAILED,
                           "The agent lost the task's process record to a corrupt checkpoint "
                           "and killed the process", _Reason.REASON_AGENT_RESTARTED,
                           source=_Source.SOURCE_AGENT)
                continue
            container_alive = task.container is not None and task.container.container_id in alive
            if container_alive and task.state == mesos_pb2.TASK_STARTING:
                self._emit(task, mesos_pb2.TASK_RUNNING)  # its record did not become durable
            self._spawn(self._run_command_task(task, recovered_alive=container_alive))
        for executor in self._executors.values():
            alive_executor = (
                executor.container is not None and executor.container.container_id in alive
            )
            self._spawn(self._supervise_executor(executor, recovered_alive=alive_executor))

    async def _kill_orphans(self, owned_sandboxes: list[Path]) -> None:
        """Kill processes in this agent's sandboxes that no live container owns."""
        sandboxes_root = self._paths.work_dir / "slaves"  # see the layout in mesos_agent.paths
        for orphan in await asyncio.to_thread(kill_orphans, sandboxes_root, owned_sandboxes):
            log.warning("killed a process that no recovered container owns",
                        agent_id=self.agent_id, pid=orphan.pid, cwd=orphan.cwd,
                        cmdline=" ".join(orphan.cmdline))

    # ---------------------------------------------------------------- master link callbacks

    def _hello(self) -> agent_pb2.AgentMessage:
        version = agent_version()
        if not self.agent_id:
            return agent_pb2.AgentMessage(
                register=agent_pb2.AgentMessage.Register(
                    agent_info=self._agent_info, version=version
                )
            )
        framework_ids = {t.framework_id for t in self._tasks.values()} | {
            e.framework_id for e in self._executors.values()
        }
        return agent_pb2.AgentMessage(
            reregister=agent_pb2.AgentMessage.Reregister(
                agent_info=self._agent_info,
                tasks=[self._task_record(t) for t in self._tasks.values()],
                executors=[e.info for e in self._executors.values()],
                frameworks=[
                    self._frameworks[f].info for f in sorted(framework_ids) if f in self._frameworks
                ],
                version=version,
            )
        )

    def _task_record(self, task: _Task) -> mesos_pb2.Task:
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

    def registered(self, message: agent_pb2.MasterMessage) -> None:
        answer = message.registered if message.HasField("registered") else message.reregistered
        if answer.agent_id.value != self.agent_id:
            self._agent_info.id.CopyFrom(answer.agent_id)
            self._checkpointer.save_agent(self._agent_info)
        for pending in self._updates.resend_all():
            send_status_update(self._link, pending)
        self._updates_wake.set()

    def disconnected(self) -> None:
        log.warning("disconnected from master", agent_id=self.agent_id)

    async def refused(self, reason: str, *, reregistering: bool) -> None:
        if not reregistering:
            return
        log.error(
            "master refused re-registration; killing all tasks and registering as a new agent",
            agent_id=self.agent_id,
            reason=reason,
        )
        for framework_id in list(self._frameworks):
            self._shutdown_framework(framework_id)
        containers = [t.container for t in self._tasks.values() if t.container] + [
            e.container for e in self._executors.values() if e.container
        ]
        for container in containers:
            with contextlib.suppress(KeyError):
                await self._containerizer.destroy(container.container_id)
        for key in self._updates.streams():
            self._updates.forget(*key)
        self._checkpointer.clear()
        self._agent_info.ClearField("id")

    def received(self, message: agent_pb2.MasterMessage) -> None:
        kind = message.WhichOneof("message")
        if kind == "run_task":
            self._run_task(message.run_task.framework_info, message.run_task.task)
        elif kind == "kill_task":
            kill = message.kill_task
            policy = kill.kill_policy if kill.HasField("kill_policy") else None
            self._kill_task(kill.framework_id.value, kill.task_id.value, policy)
        elif kind == "status_update_acknowledgement":
            ack = message.status_update_acknowledgement
            self._acknowledge(ack.framework_id.value, ack.task_id.value, ack.uuid)
        elif kind == "framework_to_executor":
            self._framework_to_executor(message.framework_to_executor)
        elif kind == "shutdown_framework":
            self._shutdown_framework(message.shutdown_framework.framework_id.value)
        elif kind == "shutdown_executor":
            shutdown = message.shutdown_executor
            executor = self._executors.get(
                (shutdown.framework_id.value, shutdown.executor_id.value)
            )
            if executor is not None:
                executor.shutdown_requested.set()
        else:
            log.warning("ignoring unexpected message from master", kind=kind)

    # ---------------------------------------------------------------- tasks

    def _task_log(self, framework_id: str, task_id: str) -> structlog.typing.FilteringBoundLogger:
        return log.bind(framework_id=framework_id, agent_id=self.agent_id, task_id=task_id)

    def _run_task(self, framework_info: mesos_pb2.FrameworkInfo, info: mesos_pb2.TaskInfo) -> None:
        framework_id = framework_info.id.value
        tlog = self._task_log(framework_id, info.task_id.value)
        if (framework_id, info.task_id.value) in self._tasks:
            tlog.warning("ignoring RunTask for a task the agent already has")
            return
        framework = self._frameworks.get(framework_id)
        if framework is None or framework.info != framework_info:
            framework = self._frameworks[framework_id] = _Framework(framework_info)
            self._checkpointer.save_framework(framework_info)
        custom = info.HasField("executor")
        executor_id = info.executor.executor_id.value if custom else info.task_id.value
        task = _Task(framework_id, info, executor_id, custom_executor=custom)
        self._tasks[task.key] = task
        ticket = self._checkpointer.save_task(framework_id, info, executor_id)
        tlog.debug("task received", executor_id=executor_id, custom_executor=custom)
        if not custom:
            self._spawn(self._run_command_task(task))
            return
        executor = self._executors.get((framework_id, executor_id))
        if executor is not None and executor.shutdown_requested.is_set():
            self._emit(task, mesos_pb2.TASK_FAILED, "Executor is shutting down",
                       _Reason.REASON_EXECUTOR_TERMINATED, source=_Source.SOURCE_AGENT)
            return
        if executor is None:
            executor_info = mesos_pb2.ExecutorInfo()
            executor_info.CopyFrom(info.executor)
            executor_info.framework_id.value = framework_id
            executor = _Executor(framework_id, executor_info)
            self._executors[(framework_id, executor_id)] = executor
            ticket = self._checkpointer.save_executor(
                ExecutorCheckpoint(framework_id, executor_info)
            )
            self._spawn(self._supervise_executor(executor))
        executor.queued.append((info, ticket))
        self._committer.when_durable(ticket, lambda: self._deliver_queued(executor))

    def _deliver_queued(self, executor: _Executor) -> None:
        """LAUNCH the queued tasks whose checkpoints are durable, once the executor subscribed."""
        if not executor.subscribed.is_set() or executor.outbox is None:
            return
        waiting: list[tuple[mesos_pb2.TaskInfo, int]] = []
        for info, ticket in executor.queued:
            if self._committer.is_durable(ticket):
                executor.send(_launch_event(info))
            else:
                waiting.append((info, ticket))
        executor.queued = waiting

    def _kill_task(
        self, framework_id: str, task_id: str, policy: mesos_pb2.KillPolicy | None
    ) -> None:
        tlog = self._task_log(framework_id, task_id)
        task = self._tasks.get((framework_id, task_id))
        if task is None:
            tlog.warning("kill requested for an unknown task; reporting TASK_LOST")
            self._emit_unknown(framework_id, task_id, "Task is unknown to the agent",
                               _Reason.REASON_TASK_UNKNOWN)
            return
        if is_terminal(task.state):
            tlog.info("kill requested for a terminated task; its terminal update is pending")
            return
        tlog.info("killing task")
        if not task.custom_executor:
            task.kill_policy = policy
            task.kill_requested.set()
            return
        executor = self._executors.get((framework_id, task.executor_id))
        if executor is None:
            return
        queued = next((q for q in executor.queued if q[0].task_id.value == task_id), None)
        if queued is not None:
            executor.queued.remove(queued)
            self._emit(task, mesos_pb2.TASK_KILLED, "Task killed before its executor subscribed",
                       _Reason.REASON_TASK_KILLED_DURING_LAUNCH, source=_Source.SOURCE_AGENT)
            return
        kill = executor_pb2.Event.Kill(task_id=task.info.task_id)
        if policy is not None:
            kill.kill_policy.CopyFrom(policy)
        executor.send(executor_pb2.Event(type=executor_pb2.Event.KILL, kill=kill))

    def _grace_period(self, task: _Task) -> float:
        task_policy = task.info.kill_policy if task.info.HasField("kill_policy") else None
        for policy in (task.kill_policy, task_policy):
            if policy is not None and policy.HasField("grace_period"):
                return policy.grace_period.nanoseconds / 1e9
        return self.config.default_kill_grace_period

    async def _run_command_task(self, task: _Task, *, recovered_alive: bool | None = None) -> None:
        """The built-in command executor for one task (DESIGN decision 6)."""
        tlog = self._task_log(task.framework_id, task.id)
        if recovered_alive is None:
            self._emit(task, mesos_pb2.TASK_STARTING)
            # Fork only once recovery would know the task: its arrival and TASK_STARTING durable.
            await self._committer.wait(self._committer.last_ticket)
            if task.kill_requested.is_set():
                self._emit(task, mesos_pb2.TASK_KILLED, "Task killed before it was launched",
                           _Reason.REASON_TASK_KILLED_DURING_LAUNCH)
                return self._task_runner_done(task)
            try:
                task.container = await self._containerizer.launch(self._command_config(task))
            except (ContainerLaunchError, ValueError) as exc:
                tlog.warning("task launch failed", error=str(exc))
                self._emit(task, mesos_pb2.TASK_FAILED, f"Failed to launch the task: {exc}",
                           _Reason.REASON_CONTAINER_LAUNCH_FAILED)
                return self._task_runner_done(task)
            # The container goes to the task log in the same batch as TASK_RUNNING.
            self._checkpointer.append(task.framework_id, task.id, ContainerRecord(task.container))
            tlog.info("task process started", pid=task.container.pid,
                      sandbox=str(task.container.sandbox))
            self._emit(task, mesos_pb2.TASK_RUNNING)
        elif not recovered_alive:
            message = (
                "The agent restarted while launching the task" if task.container is None
                else "The task's process ended while the agent was down"
            )
            self._emit(task, mesos_pb2.TASK_FAILED, message, _Reason.REASON_AGENT_RESTARTED,
                       source=_Source.SOURCE_AGENT)
            return self._task_runner_done(task)
        assert task.container is not None
        container_id = task.container.container_id
        waiting = asyncio.ensure_future(self._containerizer.wait(container_id))
        killing = asyncio.ensure_future(task.kill_requested.wait())
        try:
            await asyncio.wait({waiting, killing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            killing.cancel()
            if not waiting.done():
                waiting.cancel()
            await asyncio.gather(waiting, killing, return_exceptions=True)
        if waiting.done() and not waiting.cancelled():
            termination = await self._containerizer.destroy(container_id)
            self._report_exit(task, termination)
        else:
            framework = self._frameworks.get(task.framework_id)
            if framework is not None and framework.has_capability(
                mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE
            ):
                self._emit(task, mesos_pb2.TASK_KILLING)
            grace = self._grace_period(task)
            tlog.info("sending SIGTERM to the task's process group", grace_period=grace)
            termination = await stop_container(self._containerizer, container_id, grace)
            self._emit(task, mesos_pb2.TASK_KILLED, termination.describe())
        self._containerizer.forget(container_id)
        self._task_runner_done(task)

    def _report_exit(self, task: _Task, termination: Termination) -> None:
        if termination.succeeded:
            self._emit(task, mesos_pb2.TASK_FINISHED, termination.describe())
        elif termination.exit_code is None and termination.signal is None:
            self._emit(task, mesos_pb2.TASK_FAILED, termination.describe(),
                       _Reason.REASON_AGENT_RESTARTED, source=_Source.SOURCE_AGENT)
        else:
            self._emit(task, mesos_pb2.TASK_FAILED, termination.describe(),
                       _Reason.REASON_COMMAND_EXECUTOR_FAILED)

    def _task_runner_done(self, task: _Task) -> None:
        framework = self._frameworks.get(task.framework_id)
        if framework is not None and framework.shutting_down:
            self._remove_task(task)

    def _command_config(self, task: _Task) -> ContainerConfig:
        container_id = str(uuid.uuid4())
        sandbox = self._paths.sandbox(
            self.agent_id, task.framework_id, task.executor_id, container_id
        )
        resources = Resources.from_proto(task.info.resources)
        environment = task_environment(
            base=self._base_environment,
            ids=ContainerIds(self.agent_id, task.framework_id, task.executor_id, sandbox),
            task_id=task.id,
            hostname=self.config.hostname,
            resources=resources,
            command=task.info.command,
        )
        command = task.info.command
        return ContainerConfig(container_id, command_argv(command), environment, sandbox,
                               resources, argv_without_shell(command))

    def _remove_task(self, task: _Task) -> None:
        self._forget_task(task)
        self._updates.forget(*task.key)
        self._checkpointer.remove_task(*task.key)
        self._maybe_forget_framework(task.framework_id)

    def _maybe_forget_framework(self, framework_id: str) -> None:
        framework = self._frameworks.get(framework_id)
        if framework is None or not framework.shutting_down:
            return
        if any(t.framework_id == framework_id for t in self._tasks.values()):
            return
        if any(e.framework_id == framework_id for e in self._executors.values()):
            return
        del self._frameworks[framework_id]
        self._checkpointer.remove_framework(framework_id)
        log.info("framework removed from the agent", framework_id=framework_id,
                 agent_id=self.agent_id)

    def _shutdown_framework(self, framework_id: str) -> None:
        framework = self._frameworks.get(framework_id)
        if framework is None:
            return
        log.info("shutting down framework", framework_id=framework_id, agent_id=self.agent_id)
        framework.shutting_down = True
        for task in [t for t in self._tasks.values() if t.framework_id == framework_id]:
            self._updates.forget(*task.key)
            if task.custom_executor or is_terminal(task.state):
                if is_terminal(task.state):
                    self._remove_task(task)
                continue
            task.kill_requested.set()
        for executor in self._executors.values():
            if executor.framework_id == framework_id:
                executor.shutdown_requested.set()
        self._maybe_forget_framework(framework_id)

    # ---------------------------------------------------------------- status updates

    def _new_status(
        self,
        task_id: str,
        executor_id: str,
        state: mesos_pb2.TaskState.ValueType,
        message: str,
        reason: mesos_pb2.TaskStatus.Reason.ValueType,
        source: mesos_pb2.TaskStatus.Source.ValueType,
    ) -> mesos_pb2.TaskStatus:
        status = mesos_pb2.TaskStatus(
            task_id=mesos_pb2.TaskID(value=task_id),
            state=state,
            message=message,
            source=source,
            reason=reason,
            agent_id=self._agent_info.id,
            executor_id=mesos_pb2.ExecutorID(value=executor_id),
            timestamp=time.time(),
            uuid=uuid.uuid4().bytes,
        )
        return status

    def _emit(
        self,
        task: _Task,
        state: mesos_pb2.TaskState.ValueType,
        message: str = "",
        reason: mesos_pb2.TaskStatus.Reason.ValueType = _Reason.REASON_UNSPECIFIED,
        *,
        source: mesos_pb2.TaskStatus.Source.ValueType = _Source.SOURCE_EXECUTOR,
    ) -> None:
        status = self._new_status(task.id, task.executor_id, state, message, reason, source)
        self._accept_update(task.framework_id, status)

    def _emit_unknown(
        self, framework_id: str, task_id: str, message: str,
        reason: mesos_pb2.TaskStatus.Reason.ValueType,
    ) -> None:
        status = self._new_status(task_id, "", mesos_pb2.TASK_LOST, message, reason,
                                  _Source.SOURCE_AGENT)
        status.ClearField("executor_id")
        self._accept_update(framework_id, status)

    def _accept_update(self, framework_id: str, status: mesos_pb2.TaskStatus) -> AddResult:
        """Persist then queue an update for the master (the one path for every update)."""
        task_id = status.task_id.value
        tlog = self._task_log(framework_id, task_id)
        task = self._tasks.get((framework_id, task_id))
        framework = self._frameworks.get(framework_id)
        if framework is not None and framework.shutting_down:
            if task is not None:
                task.state = status.state
            tlog.debug("dropping status update of a framework being shut down",
                       state=mesos_pb2.TaskState.Name(status.state))
            return AddResult.ACCEPTED
        ticket = self._committer.next_ticket
        result = self._updates.update(framework_id, status, ticket)
        if result is not AddResult.ACCEPTED:
            tlog.info("dropping status update", result=result.value,
                      state=mesos_pb2.TaskState.Name(status.state), uuid=status.uuid.hex())
            return result
        logged = self._checkpointer.append(framework_id, task_id, UpdateRecord(status))
        assert logged == ticket, "the update and its log record are in different batches"
        if task is not None:
            task.state = status.state
        if is_terminal(status.state):
            self._terminal_tasks[status.state] += 1
        (tlog.info if is_terminal(status.state) else tlog.debug)(
            "status update", state=mesos_pb2.TaskState.Name(status.state),
            reason=mesos_pb2.TaskStatus.Reason.Name(status.reason),
            message=status.message, uuid=status.uuid.hex(),
        )
        return result

    def _synced(self, ticket: int) -> None:
        """A group-commit batch is durable: the updates it logged may go to the master."""
        self._updates.synced(ticket)
        self._updates_wake.set()

    def _acknowledge(self, framework_id: str, task_id: str, status_uuid: bytes) -> None:
        tlog = self._task_log(framework_id, task_id)
        result = self._updates.acknowledge(framework_id, task_id, status_uuid)
        if result is AckResult.UNKNOWN:
            tlog.info("ignoring acknowledgement of an unknown update", uuid=status_uuid.hex())
            return
        tlog.debug("status update acknowledged", uuid=status_uuid.hex())
        self._updates_wake.set()
        if result is AckResult.ACKNOWLEDGED:
            self._checkpointer.append(framework_id, task_id, AckRecord(status_uuid))
            return
        task = self._tasks.get((framework_id, task_id))
        self._checkpointer.remove_task(framework_id, task_id)
        if task is not None:
            self._forget_task(task)
            tlog.debug("task finished and acknowledged; forgetting it")

    # ---------------------------------------------------------------- custom executors

    def _executor_log(self, executor: _Executor) -> structlog.typing.FilteringBoundLogger:
        return log.bind(framework_id=executor.framework_id, agent_id=self.agent_id,
                        executor_id=executor.id)

    def _executor_config(self, executor: _Executor) -> ContainerConfig:
        container_id = str(uuid.uuid4())
        sandbox = self._paths.sandbox(self.agent_id, executor.framework_id, executor.id,
                                      container_id)
        assert self.endpoint is not None
        environment = executor_environment(
            base=self._base_environment,
            ids=ContainerIds(self.agent_id, executor.framework_id, executor.id, sandbox),
            agent_endpoint=self.endpoint,
            hostname=self.config.hostname,
            recovery_timeout=self.config.recovery_timeout,
            command=executor.info.command,
        )
        command = executor.info.command
        return ContainerConfig(container_id, command_argv(command), environment, sandbox,
                               Resources.from_proto(executor.info.resources),
                               argv_without_shell(command))

    async def _supervise_executor(
        self, executor: _Executor, *, recovered_alive: bool | None = None
    ) -> None:
        """Launch a custom executor, wait for it to subscribe, and handle its end."""
        elog = self._executor_log(executor)
        if recovered_alive is None:
            await self._committer.wait(self._committer.last_ticket)  # its checkpoint, durable
            try:
                executor.container = await self._containerizer.launch(
                    self._executor_config(executor)
                )
            except (ContainerLaunchError, ValueError) as exc:
                elog.warning("executor launch failed", error=str(exc))
                self._executor_gone(executor, _Reason.REASON_CONTAINER_LAUNCH_FAILED,
                                    f"Failed to launch the executor: {exc}", exit_status=-1)
                return
            self._checkpointer.save_executor(
                ExecutorCheckpoint(executor.framework_id, executor.info, executor.container)
            )
            elog.info("executor process started", pid=executor.container.pid,
                      sandbox=str(executor.container.sandbox))
        elif not recovered_alive:
            self._executor_gone(executor, _Reason.REASON_EXECUTOR_TERMINATED,
                                "The executor ended while the agent was down", exit_status=-1)
            return
        assert executor.container is not None
        container_id = executor.container.container_id
        exited = asyncio.ensure_future(self._containerizer.wait(container_id))
        subscribed = asyncio.ensure_future(executor.subscribed.wait())
        shutdown = asyncio.ensure_future(executor.shutdown_requested.wait())
        reason = _Reason.REASON_EXECUTOR_TERMINATED
        message = "Executor terminated"
        try:
            await asyncio.wait(
                {exited, subscribed, shutdown},
                timeout=self.config.executor_registration_timeout,
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not (exited.done() or subscribed.done() or shutdown.done()):
                elog.warning("executor did not subscribe in time; killing it",
                             timeout=self.config.executor_registration_timeout)
                reason = _Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT
                message = "Executor did not subscribe within the registration timeout"
            else:
                await asyncio.wait({exited, shutdown}, return_when=asyncio.FIRST_COMPLETED)
                if shutdown.done() and not exited.done():
                    elog.info("shutting down executor")
                    executor.send(executor_pb2.Event(
                        type=executor_pb2.Event.SHUTDOWN,
                        shutdown=executor_pb2.Event.Shutdown(
                            grace_period_seconds=self.config.executor_shutdown_grace_period
                        ),
                    ))
                    await asyncio.wait({exited},
                                       timeout=self.config.executor_shutdown_grace_period)
        finally:
            for future in (subscribed, shutdown):
                future.cancel()
            if not exited.done():
                exited.cancel()
            await asyncio.gather(exited, subscribed, shutdown, return_exceptions=True)
        termination = await stop_container(self._containerizer, container_id, grace_period=1.0)
        self._containerizer.forget(container_id)
        elog.info("executor exited", status=termination.describe())
        status = termination.exit_code if termination.exit_code is not None else -(
            termination.signal or 0
        )
        self._executor_gone(executor, reason, message, exit_status=status)

    def _executor_gone(
        self, executor: _Executor, reason: mesos_pb2.TaskStatus.Reason.ValueType,
        message: str, *, exit_status: int,
    ) -> None:
        if executor.outbox is not None:
            executor.outbox.put_nowait(None)
        self._executors.pop((executor.framework_id, executor.id), None)
        framework = self._frameworks.get(executor.framework_id)
        self._completed.add_executor(self._executor_view(executor),
                                     framework.info if framework is not None else None)
        self._checkpointer.remove_executor(executor.framework_id, executor.id)
        for task in [t for t in self._tasks.values()
                     if t.framework_id == executor.framework_id and t.executor_id == executor.id
                     and t.custom_executor and not is_terminal(t.state)]:
            self._emit(task, mesos_pb2.TASK_FAILED, message, reason, source=_Source.SOURCE_AGENT)
            self._task_runner_done(task)
        self._link.send(agent_pb2.AgentMessage(
            executor_exited=agent_pb2.AgentMessage.ExecutorExited(
                framework_id=mesos_pb2.FrameworkID(value=executor.framework_id),
                executor_id=executor.info.executor_id,
                status=exit_status,
            )
        ))
        self._maybe_forget_framework(executor.framework_id)

    def _framework_to_executor(self, message: agent_pb2.MasterMessage.FrameworkToExecutor) -> None:
        executor = self._executors.get((message.framework_id.value, message.executor_id.value))
        if executor is None or not executor.send(
            executor_pb2.Event(type=executor_pb2.Event.MESSAGE,
                               message=executor_pb2.Event.Message(data=message.data))
        ):
            log.warning("dropping framework message for an executor that is not subscribed",
                        framework_id=message.framework_id.value, agent_id=self.agent_id,
                        executor_id=message.executor_id.value)

    def executor_subscribed(
        self, call: executor_pb2.Call, outbox: Outbox
    ) -> str | None:
        """An executor subscribed; returns an error message when it is refused."""
        key = (call.framework_id.value, call.executor_id.value)
        executor = self._executors.get(key)
        if executor is None:
            return f"unknown executor {key[1]!r} of framework {key[0]!r}"
        framework = self._frameworks.get(executor.framework_id)
        elog = self._executor_log(executor)
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
                framework_info=framework.info if framework else None,
                agent_info=self._agent_info,
            ),
        ))
        for status in call.subscribe.unacknowledged_updates:
            self.executor_update(executor.framework_id, executor.id, status)
        self._deliver_queued(executor)
        return None

    def executor_disconnected(
        self, framework_id: str, executor_id: str,
        outbox: Outbox,
    ) -> None:
        executor = self._executors.get((framework_id, executor_id))
        if executor is not None and executor.outbox is outbox:
            executor.outbox = None
            self._executor_log(executor).info("executor disconnected")

    def executor_update(
        self, framework_id: str, executor_id: str, status: mesos_pb2.TaskStatus
    ) -> None:
        """A status update from a custom executor: persist, then ACKNOWLEDGED to the executor."""
        executor = self._executors.get((framework_id, executor_id))
        task = self._tasks.get((framework_id, status.task_id.value))
        tlog = self._task_log(framework_id, status.task_id.value)
        if executor is None:
            return
        if task is None or task.executor_id != executor_id or not status.uuid:
            tlog.warning("dropping executor update for a task it does not run (or without uuid)",
                         executor_id=executor_id)
            return
        update = mesos_pb2.TaskStatus()
        update.CopyFrom(status)
        update.source = _Source.SOURCE_EXECUTOR
        update.agent_id.CopyFrom(self._agent_info.id)
        update.executor_id.value = executor_id
        if not update.timestamp:
            update.timestamp = time.time()
        self._accept_update(framework_id, update)
        acknowledged = executor_pb2.Event(
            type=executor_pb2.Event.ACKNOWLEDGED,
            acknowledged=executor_pb2.Event.Acknowledged(task_id=status.task_id, uuid=status.uuid),
        )

        def acknowledge() -> None:
            executor.send(acknowledged)

        # The executor forgets the update on ACKNOWLEDGED: only once the agent's copy is durable.
        self._committer.when_durable(self._committer.last_ticket, acknowledge)

    def executor_message(self, framework_id: str, executor_id: str, data: bytes) -> None:
        """Executor -> framework message, best effort like Mesos."""
        if not self._link.send(agent_pb2.AgentMessage(
            executor_to_framework=agent_pb2.AgentMessage.ExecutorToFramework(
                framework_id=mesos_pb2.FrameworkID(value=framework_id),
                executor_id=mesos_pb2.ExecutorID(value=executor_id),
                data=data,
            )
        )):
            log.warning("dropping executor message: not connected to a master",
                        framework_id=framework_id, agent_id=self.agent_id,
                        executor_id=executor_id)


def _launch_event(info: mesos_pb2.TaskInfo) -> executor_pb2.Event:
    return executor_pb2.Event(type=executor_pb2.Event.LAUNCH,
                              launch=executor_pb2.Event.Launch(task=info))
