"""The agent process: wires the task book to its runners, the master link and the executor server.

    master --RunTask/KillTask/Ack/...--> MasterLink --> Agent --> TaskBook (pure core)
                                                                    | launch/kill/stop
                  +-------------------------------------------------+----------+
                  v                                                            v
        CommandExecutor (command tasks)          ExecutorSupervisor (custom executors)
                  |                                    |          ^ SUBSCRIBE, UPDATE, MESSAGE
                  +-----------> Containerizer <--------+          | (ExecutorLinkServicer)
    TaskBook --> StatusUpdateManager + task log --sent once durable, retried--> master
                 Checkpointer -> GroupCommitter (batched fsyncs off the loop)

The Agent itself is the book's `TaskRunner`: it hands each task to the command executor or to
its custom executor.

Every piece of state is touched only from the event loop; long-lived work (one runner per
command task, one supervisor per custom executor, the status update sender, the checkpoint
syncer, the master link and the executor server) runs in the agent's TaskGroup, which owns and
awaits it. Checkpoint writes never block the loop: whatever depends on one being durable waits
for its group-commit ticket (see `mesos_agent.group_commit` for the exact guarantee).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import Coroutine, Iterable
from importlib import metadata
from pathlib import Path

import grpc
import structlog

from mesos_agent.checkpoint import Checkpointer
from mesos_agent.command_executor import CommandExecutor
from mesos_agent.completed import CompletedWork
from mesos_agent.config import AgentConfig
from mesos_agent.container_configs import ContainerConfigs
from mesos_agent.containerizer import Containerizer
from mesos_agent.containerizer.create import create_containerizer
from mesos_agent.containers import ContainerProcess
from mesos_agent.environment import executor_tls_environment, inherited_environment
from mesos_agent.executor_link import ExecutorLinkServicer
from mesos_agent.executors import ExecutorSupervisor
from mesos_agent.group_commit import DurabilityError, GroupCommitter
from mesos_agent.master_link import MasterLink, forward_status_updates, send_status_update
from mesos_agent.orphans import kill_orphans
from mesos_agent.paths import AgentPaths, sandbox_container_ids
from mesos_agent.recovered import RecoveredState
from mesos_agent.runners import RunnerContext
from mesos_agent.sandbox_collector import SandboxCollector
from mesos_agent.status_updates import StatusUpdateManager
from mesos_agent.task_book import Task, TaskBook
from mesos_agent.views import AgentSnapshot
from mesos_coordination.detector import MasterDetector
from mesos_runtime.clock import Clock, SystemClock, WallClock
from mesos_security.tls import add_listener
from mesos_values.resources import Resources
from protos import agent_pb2, executor_pb2_grpc, mesos_pb2

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("mesos_agent")

USAGE_BATCH = 64
"""Containers measured at once by `Agent.usage` (each measure reads a few cgroup files)."""


def agent_version() -> str:
    try:
        return metadata.version("pymesos-cluster")
    except metadata.PackageNotFoundError:
        return "0.0.0"


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
        self._containerizer: Containerizer = containerizer or create_containerizer(
            config.isolation, config.work_dir)
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
            image_providers=config.isolation.image_providers,
        )
        self._link = MasterLink(
            detector, self, self._hello, max_backoff=config.registration_max_backoff,
            tls=config.tls, credential=config.credential,
        )
        self._group: asyncio.TaskGroup | None = None
        self._completed = CompletedWork()
        self._book = TaskBook(self._agent_info, self._updates, self._checkpointer, self,
                              wake=self._updates_wake.set, wall_clock=WallClock(),
                              completed=self._completed)
        self._configs = ContainerConfigs(
            self._agent_info, self._paths, base_environment=inherited_environment(os.environ),
            hostname=config.hostname, recovery_timeout=config.recovery_timeout,
            executor_transport=executor_tls_environment(tls=config.tls.serves_tls,
                                                        ca_file=config.tls.ca_file),
            framework_info=self._book.framework_info,
        )
        runners = RunnerContext(
            self._containerizer, self._committer, self._configs, self._spawn, self._agent_info
        )
        self._commands = CommandExecutor(
            self._book, runners, default_kill_grace_period=config.default_kill_grace_period
        )
        self._executors = ExecutorSupervisor(
            self._book, runners, self._checkpointer, self._link.send, config=config,
            completed=self._completed,
        )
        self._sandbox_collector = SandboxCollector(
            config.work_dir, self._containerizer.live_ids,
            gc_delay=config.isolation.gc_delay, headroom=config.isolation.gc_disk_headroom,
            agent_id=lambda: self.agent_id, reclaim=self._containerizer.reclaim_disk,
            watch_interval=config.isolation.disk_watch_interval)
        self.endpoint: str | None = None
        self.ready = asyncio.Event()

    @property
    def agent_id(self) -> str:
        return self._agent_info.id.value

    def set_http_port(self, port: int) -> None:
        """Where this agent's HTTP endpoints listen; told to the master on (re-)registration."""
        self._agent_info.http_port = port

    def view(self) -> AgentSnapshot:
        """What the HTTP endpoints show: info, frameworks, tasks, executors and counts."""
        standbys = self._link.standbys
        return AgentSnapshot(
            info=self._agent_info,
            master=self._link.leader,
            registered=self._link.connected,
            frameworks=self._book.framework_infos(),
            tasks=self._book.views(),
            executors=self._executors.views(),
            terminal_tasks=dict(self._book.terminal_tasks),
            sandboxes_root=self._paths.work_dir / "slaves",
            completed_tasks=self._completed.tasks,
            completed_executors=self._completed.executors,
            completed_frameworks=self._completed.frameworks,
            standby_masters=len(standbys.masters) if standbys is not None else 0,
            standby_masters_current=standbys.current() if standbys is not None else 0,
        )

    def containers(self) -> list[ContainerProcess]:
        """The containers the containerizer knows (alive or not yet destroyed)."""
        return self._containerizer.containers()

    async def usage(self, container_ids: Iterable[str]) -> dict[str, mesos_pb2.ResourceStatistics]:
        """The usage of each container that can be measured, by id (ones gone meanwhile are
        left out). Asked `USAGE_BATCH` containers at a time, so that with thousands of them
        the loop serves other work between batches."""
        measured: dict[str, mesos_pb2.ResourceStatistics] = {}
        ids = list(container_ids)
        for start in range(0, len(ids), USAGE_BATCH):
            batch = ids[start:start + USAGE_BATCH]
            answers = await asyncio.gather(
                *(self._containerizer.usage(container_id) for container_id in batch),
                return_exceptions=True)
            for container_id, answer in zip(batch, answers, strict=True):
                if isinstance(answer, mesos_pb2.ResourceStatistics):
                    measured[container_id] = answer
                elif not isinstance(answer, KeyError):
                    log.warning("cannot measure a container's usage", agent_id=self.agent_id,
                                container_id=container_id, error=repr(answer))
        return measured

    # ---------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Recover checkpointed state, serve executors, and stay connected to the master.

        Raises CorruptCheckpoint, before serving anything, when `--strict` and a checkpoint
        is corrupt (see `mesos_agent.checkpoint`).
        """
        state = self._checkpointer.load(strict=self.config.strict)
        server = grpc.aio.server()
        executor_pb2_grpc.add_ExecutorLinkServicer_to_server(
            ExecutorLinkServicer(self._executors, self.ready), server
        )
        address = f"{self.config.ip}:{self.config.port}"
        try:
            # Executors hold no key of their own: TLS, but no client certificate required.
            port = add_listener(server, address,
                                dataclasses.replace(self.config.tls, require_client_cert=False))
        except RuntimeError as exc:
            raise OSError(f"cannot listen on {address}: {exc}") from exc
        if port == 0:
            raise OSError(f"cannot listen on {address}")
        await server.start()
        self.endpoint = self._configs.agent_endpoint = f"{self.config.ip}:{port}"
        self._agent_info.port = port
        log.info("agent serving executors", endpoint=self.endpoint,
                 work_dir=str(self.config.work_dir))
        try:
            async with asyncio.TaskGroup() as group:
                self._group = group
                group.create_task(self._committer.run())
                await self._recover(state)
                group.create_task(self._containerizer.run())
                group.create_task(self._sandbox_collector.run())  # once containers are known
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

    def _synced(self, ticket: int) -> None:
        self._book.synced(ticket)

    async def _recover(self, state: RecoveredState) -> None:
        for skipped in state.skipped:
            log.warning("skipped a corrupt checkpoint (--strict=false)", file=str(skipped.path),
                        problem=skipped.problem, consequence=skipped.consequence,
                        set_aside_at=str(skipped.set_aside_at))
        if state.agent_info is None:
            owned = await asyncio.to_thread(sandbox_container_ids, self._paths.work_dir)
            await self._containerizer.recover([], owned)  # a wiped checkpoint: all are orphans
            await self._kill_orphans([])
            return
        self._agent_info.id.CopyFrom(state.agent_info.id)
        log.info("recovering checkpointed state", agent_id=self.agent_id,
                 tasks=len(state.tasks), executors=len(state.executors))
        containers = [t.container for t in state.tasks if t.container is not None] + [
            e.container for e in state.executors if e.container is not None
        ]
        owned = await asyncio.to_thread(sandbox_container_ids, self._paths.work_dir)
        alive = await self._containerizer.recover(containers, owned)
        await self._kill_orphans([c.sandbox for c in containers if c.container_id in alive])
        self._executors.recover(state.executors)
        recovered = list(self._book.recover(state.frameworks, state.tasks, alive))
        for task, container_alive in recovered:
            if container_alive and task.container is not None:
                await self._restore_limits(task.container.container_id,
                                           Resources.from_proto(task.info.resources))
        for task, container_alive in recovered:
            self._commands.resume(task, container_alive)
        self._executors.resume(alive, self._book.tasks())

    async def _restore_limits(self, container_id: str, resources: Resources) -> None:
        """Tell the isolators a recovered command task's resources again: the checkpoint
        holds its process, not its resources (e.g. `disk/du` learns its quota back)."""
        try:
            await self._containerizer.update(container_id, resources)
        except (OSError, KeyError) as exc:
            log.warning("cannot restore a recovered container's limits", agent_id=self.agent_id,
                        container_id=container_id, error=str(exc))

    async def _kill_orphans(self, owned_sandboxes: list[Path]) -> None:
        """Kill processes in this agent's sandboxes that no live container owns."""
        sandboxes_root = self._paths.work_dir / "slaves"  # see the layout in mesos_agent.paths
        for orphan in await asyncio.to_thread(kill_orphans, sandboxes_root, owned_sandboxes):
            log.warning("killed a process that no recovered container owns",
                        agent_id=self.agent_id, pid=orphan.pid, cwd=orphan.cwd,
                        cmdline=" ".join(orphan.cmdline))

    # ---------------------------------------------------------------- TaskRunner (the book's)

    def launch(self, task: Task, ticket: int) -> None:
        """Command tasks go to the command executor, the others to their custom executor."""
        if task.custom_executor:
            self._executors.launch(task, ticket)
        else:
            self._commands.launch(task)

    def kill(self, task: Task, policy: mesos_pb2.KillPolicy | None) -> None:
        """A command task's process group is stopped here; a custom executor is sent KILL."""
        if task.custom_executor:
            self._executors.kill(task, policy)
        else:
            self._commands.kill(task, policy)

    def stop_framework(self, framework_id: str) -> None:
        """Kill the framework's command tasks and shut down its custom executors."""
        self._commands.stop_framework(framework_id)
        self._executors.stop_framework(framework_id)

    def holds_framework(self, framework_id: str) -> bool:
        """Whether a custom executor of the framework is still here."""
        return self._executors.holds_framework(framework_id)

    def executor_sandbox(self, framework_id: str, executor_id: str) -> Path | None:
        """The sandbox of a custom executor's current (else latest) run."""
        return self._executors.sandbox(framework_id, executor_id)

    # ---------------------------------------------------------------- master link callbacks

    def _hello(self) -> agent_pb2.AgentMessage:
        return self._book.hello(agent_version(), self._executors.infos())

    def registered(self, message: agent_pb2.MasterMessage) -> None:
        answer = message.registered if message.HasField("registered") else message.reregistered
        if answer.agent_id.value != self.agent_id:
            self._agent_info.id.CopyFrom(answer.agent_id)
            self._checkpointer.save_agent(self._agent_info)
        for pending in self._book.reconnected():
            send_status_update(self._link, pending)

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
        self._book.shutdown_frameworks()
        for container in self._book.containers() + self._executors.containers():
            with contextlib.suppress(KeyError):
                await self._containerizer.destroy(container.container_id)
        self._book.forget_updates()
        self._checkpointer.clear()
        self._agent_info.ClearField("id")

    def received(self, message: agent_pb2.MasterMessage) -> None:
        if self._book.receive(message):
            return
        kind = message.WhichOneof("message")
        if kind == "framework_to_executor":
            self._executors.deliver_message(message.framework_to_executor)
        elif kind == "shutdown_executor":
            shutdown = message.shutdown_executor
            self._executors.shutdown(shutdown.framework_id.value, shutdown.executor_id.value)
        else:
            log.warning("ignoring unexpected message from master", kind=kind)
