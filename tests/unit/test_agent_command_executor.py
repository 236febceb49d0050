"""The command executor as a runner: a fake containerizer and recorded reports, no processes."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Coroutine, Iterable
from pathlib import Path

import pytest

from mesos_agent.command_executor import CommandExecutor
from mesos_agent.container_configs import ContainerConfigs
from mesos_agent.containerizer import (
    ContainerConfig,
    ContainerLaunchError,
    ContainerProcess,
    Termination,
)
from mesos_agent.group_commit import GroupCommitter
from mesos_agent.paths import AgentPaths
from mesos_agent.runners import RunnerContext
from mesos_agent.task_book import Task
from mesos_values.resources import Resources
from protos import mesos_pb2

_Reason = mesos_pb2.TaskStatus.Reason


class FakeContainerizer:
    """Containers that end when told to (`exit`) or on any signal (killed by it)."""

    def __init__(self, *, fail_launch: bool = False) -> None:
        self.fail_launch = fail_launch
        self.configs: list[ContainerConfig] = []
        self.signals: list[int] = []
        self.forgotten: list[str] = []
        self._ends: dict[str, asyncio.Future[Termination]] = {}

    def exit(self, container_id: str, code: int) -> None:
        self._ends[container_id].set_result(Termination(code, None))

    async def launch(self, config: ContainerConfig) -> ContainerProcess:
        if self.fail_launch:
            raise ContainerLaunchError("no such program")
        self.configs.append(config)
        self._ends[config.container_id] = asyncio.get_running_loop().create_future()
        return ContainerProcess(config.container_id, 4242, 1.0, config.sandbox)

    async def wait(self, container_id: str) -> Termination:
        return await asyncio.shield(self._ends[container_id])

    async def kill(self, container_id: str, sig: int) -> None:
        self.signals.append(sig)
        end = self._ends[container_id]
        if not end.done():
            end.set_result(Termination(None, sig))

    async def update(self, container_id: str, resources: Resources) -> None:
        pass

    async def destroy(self, container_id: str) -> Termination:
        return await self.wait(container_id)

    def forget(self, container_id: str) -> None:
        self.forgotten.append(container_id)

    async def recover(self, containers: Iterable[ContainerProcess]) -> set[str]:
        return set()


class Reports:
    """Records what the runner reports, as the task book would receive it."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.reasons: list[int] = []

    def update(
        self, task: Task, state: mesos_pb2.TaskState.ValueType, message: str = "",
        reason: mesos_pb2.TaskStatus.Reason.ValueType = _Reason.REASON_UNSPECIFIED, *,
        source: mesos_pb2.TaskStatus.Source.ValueType = mesos_pb2.TaskStatus.SOURCE_EXECUTOR,
    ) -> None:
        task.state = state
        self.events.append(mesos_pb2.TaskState.Name(state))
        self.reasons.append(reason)

    def launched(self, task: Task, container: ContainerProcess) -> None:
        task.container = container
        self.update(task, mesos_pb2.TASK_RUNNING)

    def killing(self, task: Task) -> None:
        self.events.append("killing")

    def finished(self, task: Task) -> None:
        self.events.append("finished")


class Harness:
    def __init__(self, tmp_path: Path, containerizer: FakeContainerizer,
                 launches_per_turn: int = 64) -> None:
        self.containerizer = containerizer
        self.reports = Reports()
        self.spawned: list[asyncio.Task[None]] = []
        agent_info = mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value="agent-1"))
        configs = ContainerConfigs(agent_info, AgentPaths(tmp_path), base_environment={},
                                   hostname="h", recovery_timeout=60.0)
        context = RunnerContext(containerizer, GroupCommitter(on_durable=lambda ticket: None),
                                configs, self._spawn, agent_info)
        self.runner = CommandExecutor(self.reports, context, default_kill_grace_period=3.0,
                                      launches_per_turn=launches_per_turn)

    def _spawn(self, coro: Coroutine[object, object, None]) -> None:
        self.spawned.append(asyncio.create_task(coro))

    async def settle(self) -> None:
        for _ in range(10):
            await asyncio.sleep(0)

    async def done(self) -> None:
        await asyncio.wait_for(asyncio.gather(*self.spawned), timeout=5)


def command_task(task_id: str = "t1") -> Task:
    info = mesos_pb2.TaskInfo(name=task_id, task_id=mesos_pb2.TaskID(value=task_id),
                              command=mesos_pb2.CommandInfo(value="sleep 10"))
    return Task("fw-1", info, task_id, custom_executor=False)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path, FakeContainerizer())


async def test_a_task_that_exits_zero_finishes(harness: Harness) -> None:
    task = command_task()
    harness.runner.launch(task)
    await harness.settle()
    (config,) = harness.containerizer.configs
    assert config.argv[-1] == "sleep 10" and config.direct_argv == ("sleep", "10")
    harness.containerizer.exit(config.container_id, 0)
    await harness.done()

    assert harness.reports.events == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED",
                                      "finished"]
    assert harness.containerizer.forgotten == [config.container_id]


async def test_a_burst_of_tasks_is_launched_a_turn_at_a_time(tmp_path: Path) -> None:
    harness = Harness(tmp_path, FakeContainerizer(), launches_per_turn=2)
    for index in range(5):
        harness.runner.launch(command_task(f"t{index}"))
    launched = [0]
    while len(harness.containerizer.configs) < 5:
        await asyncio.sleep(0)  # one iteration of the loop
        launched.append(len(harness.containerizer.configs))
    assert max(after - before for before, after in itertools.pairwise(launched)) == 2
    assert harness.reports.events.count("TASK_RUNNING") == 5


async def test_a_kill_sends_sigterm_and_reports_killing_then_killed(harness: Harness) -> None:
    task = command_task()
    harness.runner.launch(task)
    await harness.settle()
    harness.runner.kill(task, None)
    await harness.done()

    assert harness.reports.events == ["TASK_STARTING", "TASK_RUNNING", "killing", "TASK_KILLED",
                                      "finished"]
    assert harness.containerizer.signals[0] == signal.SIGTERM


async def test_a_kill_before_the_launch_forks_nothing(harness: Harness) -> None:
    task = command_task()
    harness.runner.launch(task)
    harness.runner.stop_framework("fw-1")
    await harness.done()

    assert harness.reports.events == ["TASK_STARTING", "TASK_KILLED", "finished"]
    assert harness.reports.reasons[-1] == _Reason.REASON_TASK_KILLED_DURING_LAUNCH
    assert harness.containerizer.configs == []


async def test_a_launch_failure_fails_the_task(tmp_path: Path) -> None:
    harness = Harness(tmp_path, FakeContainerizer(fail_launch=True))
    harness.runner.launch(command_task())
    await harness.done()

    assert harness.reports.events == ["TASK_STARTING", "TASK_FAILED", "finished"]
    assert harness.reports.reasons[-1] == _Reason.REASON_CONTAINER_LAUNCH_FAILED


async def test_a_recovered_task_whose_container_is_gone_fails(harness: Harness) -> None:
    task = command_task()
    task.container = ContainerProcess("c1", 1, 1.0, Path("/s"))
    harness.runner.resume(task, alive=False)
    await harness.done()

    assert harness.reports.events == ["TASK_FAILED", "finished"]
    assert harness.reports.reasons[-1] == _Reason.REASON_AGENT_RESTARTED
