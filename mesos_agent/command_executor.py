"""The built-in command executor: each command task runs as one container, watched until it
ends or is killed, and what becomes of it is reported to the task book.

    TaskBook --launch/resume/kill/stop_framework--> CommandExecutor --launch/wait/kill/destroy-->
        ^                                                  |                      Containerizer
        +--- TaskReports: TASK_STARTING, launched --------+
             (TASK_RUNNING), killing, TASK_FINISHED/FAILED/KILLED, finished

One coroutine per task runs in the agent's TaskGroup (`spawn`). Which containerizer runs the
container, and how it is isolated, is the containerizer's business: this runner only asks for
the task's container (`ContainerConfigs.for_task`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from mesos_agent.containerizer import (
    ContainerLaunchError,
    Termination,
    stop_container,
)
from mesos_agent.environment import command_argv
from mesos_agent.health_checks import (
    HealthDecision,
    HealthPolicy,
    probe_http,
    probe_tcp,
    run_health_checks,
)
from mesos_agent.runners import RunnerContext
from mesos_agent.task_book import Task, TaskKey, TaskReports
from mesos_runtime.turns import Turns
from protos import mesos_pb2

__all__ = ["CommandExecutor"]

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("mesos_agent")

_Reason = mesos_pb2.TaskStatus.Reason
_Source = mesos_pb2.TaskStatus.Source

LAUNCHES_PER_TURN = 64
"""Launches started per iteration of the agent's loop. A burst's tasks become launchable
together (their arrivals share a checkpoint batch); started all at once, the loop ran all of
their launch steps before anything else: the burst's TASK_STARTINGs left after 500 launch
requests, and the spawn server's first answers, hence the first TASK_RUNNINGs, were read
after them. In turns the loop writes the TASK_STARTINGs first and reads answers between
turns; a turn is the spawn server's window of unanswered children (ADR 0019), so it is kept
as busy (16 a turn starved it when the loop itself got little CPU; docs/benchmarks.md,
"Marathon", issue 22)."""


def _new_signal() -> asyncio.Future[None]:
    return asyncio.get_running_loop().create_future()


def _raise_signal(signal: asyncio.Future[None]) -> None:
    if not signal.done():
        signal.set_result(None)


@dataclass(slots=True)
class _Run:
    """A command task's run: whether, and how, it is to be killed. Its signals are futures
    done once raised (`_raise_signal`), awaited as they are: an `asyncio.Event` would need a
    task per wait, two per running task."""

    kill_requested: asyncio.Future[None] = field(default_factory=_new_signal)
    kill_policy: mesos_pb2.KillPolicy | None = None
    killed_again: asyncio.Future[None] = field(default_factory=_new_signal)
    """A second kill came: the SIGTERM is not delayed any longer."""
    unhealthy: bool = False
    """Killed because its health check failed too often."""


class CommandExecutor:
    """Runs command tasks in containers (the agent hands it the tasks without an executor)."""

    def __init__(
        self,
        reports: TaskReports,
        context: RunnerContext,
        *,
        default_kill_grace_period: float,
        launches_per_turn: int = LAUNCHES_PER_TURN,
    ) -> None:
        self._reports = reports
        self._context = context
        self._default_grace_period = default_kill_grace_period
        self._runs: dict[TaskKey, _Run] = {}
        self._turns = Turns(launches_per_turn)
        # Resolved now, once logging is configured: binding a task's logger skips structlog's
        # lazy proxy.
        self._log: structlog.typing.FilteringBoundLogger = log.bind()

    def launch(self, task: Task) -> None:
        """Start a new task: TASK_STARTING, then its container once that is durable.

        TASK_STARTING is logged right behind the task's arrival, so that of a burst of
        tasks the first ones are durable, and forked, before the later ones have arrived."""
        run = self._runs[task.key] = _Run()
        self._reports.update(task, mesos_pb2.TASK_STARTING)
        durable = self._context.committer.last_ticket
        self._context.spawn(self._run(task, run, recovered_alive=None, durable=durable))

    def resume(self, task: Task, alive: bool) -> None:
        """Take back a recovered task: watch its container if `alive`, else report it failed."""
        run = self._runs[task.key] = _Run()
        self._context.spawn(self._run(task, run, recovered_alive=alive))

    def kill(self, task: Task, policy: mesos_pb2.KillPolicy | None) -> None:
        """Kill the task: its process group gets SIGTERM, then SIGKILL after the grace period."""
        run = self._runs.get(task.key)
        if run is not None:
            if run.kill_requested.done():
                _raise_signal(run.killed_again)
                return
            run.kill_policy = policy
            _raise_signal(run.kill_requested)

    def stop_framework(self, framework_id: str) -> None:
        """Kill every task of the framework (with each task's own grace period)."""
        for (run_framework_id, _), run in self._runs.items():
            if run_framework_id == framework_id:
                _raise_signal(run.kill_requested)

    async def _run(self, task: Task, run: _Run, *, recovered_alive: bool | None,
                   durable: int = 0) -> None:
        """The built-in command executor for one task (ADR 0012); a new task (not
        `recovered_alive`) starts once batch `durable` is."""
        tlog = self._log.bind(framework_id=task.framework_id,
                              agent_id=self._context.agent_info.id.value, task_id=task.id)
        try:
            if recovered_alive is None:
                started = await self._start(task, run, durable, tlog)
            else:
                started = recovered_alive or self._lost_while_down(task)
            if started:
                await self._watch(task, run, tlog)
        finally:
            del self._runs[task.key]
        self._reports.finished(task)

    async def _start(
        self, task: Task, run: _Run, durable: int, tlog: structlog.typing.FilteringBoundLogger
    ) -> bool:
        """Launch the task's container; False when it did not start."""
        # Fork only once recovery would know the task: its arrival and TASK_STARTING durable.
        await self._context.committer.wait(durable)
        await self._turns.wait()
        if run.kill_requested.done():
            self._reports.update(task, mesos_pb2.TASK_KILLED, "Task killed before it was launched",
                                 _Reason.REASON_TASK_KILLED_DURING_LAUNCH)
            return False
        try:
            config = self._context.configs.for_task(task)
            container = await self._context.containerizer.launch(config)
        except ContainerLaunchError as exc:
            tlog.warning("task launch failed", error=str(exc))
            self._reports.update(task, mesos_pb2.TASK_FAILED, f"Failed to launch the task: {exc}",
                                 exc.reason)
            return False
        except ValueError as exc:
            tlog.warning("task launch failed", error=str(exc))
            self._reports.update(task, mesos_pb2.TASK_FAILED, f"Failed to launch the task: {exc}",
                                 _Reason.REASON_CONTAINER_LAUNCH_FAILED)
            return False
        tlog.info("task process started", pid=container.pid, sandbox=str(container.sandbox))
        self._reports.launched(task, container)
        return True

    def _lost_while_down(self, task: Task) -> bool:
        message = (
            "The agent restarted while launching the task" if task.container is None
            else "The task's process ended while the agent was down"
        )
        self._reports.update(task, mesos_pb2.TASK_FAILED, message, _Reason.REASON_AGENT_RESTARTED,
                             source=_Source.SOURCE_AGENT)
        return False

    async def _watch(
        self, task: Task, run: _Run, tlog: structlog.typing.FilteringBoundLogger
    ) -> None:
        """Wait for the container to end or the task to be killed, and report which."""
        assert task.container is not None
        container_id = task.container.container_id
        waiting = asyncio.ensure_future(self._context.containerizer.wait(container_id))
        checking = (asyncio.ensure_future(self._check_health(task, run, container_id, tlog))
                    if task.info.HasField("health_check") else None)
        try:
            ended: set[asyncio.Future[Any]] = {waiting, run.kill_requested}
            await asyncio.wait(ended, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if checking is not None:
                checking.cancel()
            if not waiting.done():
                waiting.cancel()
            await asyncio.gather(waiting, *filter(None, [checking]), return_exceptions=True)
        if waiting.done() and not waiting.cancelled():
            termination = await self._context.containerizer.destroy(container_id)
            self._report_exit(task, termination)
        else:
            self._reports.killing(task)
            delay = 0.0 if run.unhealthy else self._sigterm_delay(task, run)
            if delay > 0:
                tlog.info("announced TASK_KILLING; SIGTERM follows", sigterm_delay=delay)
                await self._until_ended_or(container_id, run.killed_again, delay)
            grace = self._grace_period(task, run)
            tlog.info("sending SIGTERM to the task's process group", grace_period=grace)
            termination = await stop_container(self._context.containerizer, container_id, grace)
            if run.unhealthy:
                self._reports.update(
                    task, mesos_pb2.TASK_KILLED,
                    f"Task killed after failing its health check: {termination.describe()}",
                    _Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, healthy=False)
            else:
                self._reports.update(task, mesos_pb2.TASK_KILLED, termination.describe())
        self._context.containerizer.forget(container_id)

    async def _check_health(self, task: Task, run: _Run, container_id: str,
                            tlog: structlog.typing.FilteringBoundLogger) -> None:
        """Run the task's health check (`health_checks`): report every change of health as
        a TASK_RUNNING update, and kill the task once it failed too often."""
        check = task.info.health_check
        containerizer = self._context.containerizer

        async def probe() -> bool:
            if check.type == mesos_pb2.HealthCheck.COMMAND:
                return await containerizer.run_check(container_id, command_argv(check.command))
            if check.type == mesos_pb2.HealthCheck.HTTP:
                return await probe_http(check.http)
            return await probe_tcp(check.tcp.port)

        def decided(decision: HealthDecision) -> None:
            if decision.report is not None:
                tlog.info("health changed", healthy=decision.report)
                self._reports.update(
                    task, mesos_pb2.TASK_RUNNING,
                    "" if decision.report else "Health check failed",
                    _Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED, healthy=decision.report)
            if decision.kill:
                tlog.warning("killing the task: its health check failed too often")
                run.unhealthy = True
                _raise_signal(run.kill_requested)

        if check.type not in (mesos_pb2.HealthCheck.COMMAND, mesos_pb2.HealthCheck.HTTP,
                              mesos_pb2.HealthCheck.TCP):
            tlog.warning("health check of an unknown type ignored")
            return
        await run_health_checks(HealthPolicy.of(check), probe, decided,
                                started_at=time.monotonic())

    def _report_exit(self, task: Task, termination: Termination) -> None:
        if termination.limitation is not None:
            self._reports.update(task, mesos_pb2.TASK_FAILED, termination.limitation.message,
                                 termination.limitation.reason, source=_Source.SOURCE_AGENT)
        elif termination.succeeded:
            self._reports.update(task, mesos_pb2.TASK_FINISHED, termination.describe())
        elif termination.exit_code is None and termination.signal is None:
            self._reports.update(task, mesos_pb2.TASK_FAILED, termination.describe(),
                                 _Reason.REASON_AGENT_RESTARTED, source=_Source.SOURCE_AGENT)
        else:
            self._reports.update(task, mesos_pb2.TASK_FAILED, termination.describe(),
                                 _Reason.REASON_COMMAND_EXECUTOR_FAILED)

    async def _until_ended_or(self, container_id: str, signal: asyncio.Future[None],
                              seconds: float) -> None:
        """Wait up to `seconds`, until the container ends by itself or `signal` is raised."""
        waiting = asyncio.ensure_future(self._context.containerizer.wait(container_id))
        try:
            ended: set[asyncio.Future[Any]] = {waiting, signal}
            await asyncio.wait(ended, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()
            await asyncio.gather(waiting, return_exceptions=True)

    def _grace_period(self, task: Task, run: _Run) -> float:
        grace = _policy_seconds(task, run, "grace_period")
        return self._default_grace_period if grace is None else grace

    @staticmethod
    def _sigterm_delay(task: Task, run: _Run) -> float:
        return _policy_seconds(task, run, "sigterm_delay") or 0.0


def _policy_seconds(task: Task, run: _Run, name: Literal["grace_period", "sigterm_delay"],
                    ) -> float | None:
    """A duration of the kill's own policy, else of the task's policy; None when neither
    sets it."""
    task_policy = task.info.kill_policy if task.info.HasField("kill_policy") else None
    for policy in (run.kill_policy, task_policy):
        if policy is not None and policy.HasField(name):
            return float(getattr(policy, name).nanoseconds) / 1e9
    return None
