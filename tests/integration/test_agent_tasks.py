"""The agent against a scripted master endpoint: real gRPC stream, real task processes.

The scripted master speaks protos/agent.proto: it registers the agent, records what the agent
sends, and lets each test send RunTask/KillTask/acknowledgements and close the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import pytest

from mesos_agent.agent import Agent
from mesos_agent.config import AgentConfig
from mesos_agent.containerizer.posix import process_start_time
from mesos_agent.containers import ContainerProcess
from mesos_agent.group_commit import Append, FileOp, Replace, apply_batch
from mesos_agent.paths import AgentPaths
from mesos_agent.status_updates import AckRecord, ContainerRecord, UpdateRecord
from mesos_agent.task_log import TaskArrived, TaskLogRecord, encode_line, parse_task_log
from mesos_agent.usage import monitored_containers
from mesos_coordination.detector import StandaloneDetector
from mesos_values.addresses import HostPort
from mesos_values.resources import Resources
from protos import agent_pb2, agent_pb2_grpc, executor_pb2, executor_pb2_grpc, mesos_pb2
from tests.integration.cluster import free_port

pytestmark = pytest.mark.integration

AgentMessage = agent_pb2.AgentMessage
MasterMessage = agent_pb2.MasterMessage
Reason = mesos_pb2.TaskStatus.Reason
TIMEOUT = 20.0
REPO = Path(__file__).resolve().parents[2]


class ScriptedMaster(agent_pb2_grpc.AgentLinkServicer):
    """Registers every agent as `agent-1` and records everything but heartbeats."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[AgentMessage] = asyncio.Queue()
        self.heartbeats = 0
        self._unclaimed: list[AgentMessage] = []
        self.connections = 0
        self.acknowledged: set[bytes] = set()
        self._outbox: asyncio.Queue[MasterMessage | None] | None = None

    async def Connect(
        self, request_iterator: AsyncIterator[AgentMessage], context: grpc.aio.ServicerContext[
            AgentMessage, MasterMessage]
    ) -> AsyncIterator[MasterMessage]:
        messages = request_iterator.__aiter__()
        hello = await anext(messages)
        self.connections += 1
        outbox: asyncio.Queue[MasterMessage | None] = asyncio.Queue()
        self._outbox = outbox
        self.received.put_nowait(hello)
        answer = {"agent_id": mesos_pb2.AgentID(value="agent-1"), "heartbeat_interval_seconds": 0.2}
        if hello.HasField("register"):
            yield MasterMessage(registered=MasterMessage.Registered(**answer))  # type: ignore[arg-type]
        else:
            yield MasterMessage(reregistered=MasterMessage.Reregistered(**answer))  # type: ignore[arg-type]
        reader = asyncio.create_task(self._read(messages, outbox))
        try:
            while (message := await outbox.get()) is not None:
                yield message
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _read(self, messages: AsyncIterator[AgentMessage], outbox: asyncio.Queue[
            MasterMessage | None]) -> None:
        try:
            async for message in messages:
                batch = message.batch.messages if message.HasField("batch") else [message]
                for inner in batch:
                    if inner.HasField("heartbeat"):
                        self.heartbeats += 1
                    else:
                        self.received.put_nowait(inner)
        finally:
            outbox.put_nowait(None)

    def send(self, message: MasterMessage) -> None:
        assert self._outbox is not None, "no agent connected"
        self._outbox.put_nowait(message)

    def close_stream(self) -> None:
        assert self._outbox is not None
        self._outbox.put_nowait(None)
        self._outbox = None

    async def expect(
        self, kind: str, where: Callable[[AgentMessage], bool] = lambda m: True
    ) -> AgentMessage:
        """The oldest unclaimed message of `kind` matching `where` (others stay unclaimed)."""
        async with asyncio.timeout(TIMEOUT):
            while True:
                for message in self._unclaimed:
                    if message.WhichOneof("message") == kind and where(message):
                        self._unclaimed.remove(message)
                        return message
                self._unclaimed.append(await self.received.get())

    async def update(self, state: mesos_pb2.TaskState.ValueType) -> mesos_pb2.TaskStatus:
        """The next status update, which must be in `state`."""
        message = await self.expect("status_update")
        status = message.status_update.status
        assert mesos_pb2.TaskState.Name(status.state) == mesos_pb2.TaskState.Name(state), status
        return status

    def ack(self, framework_id: str, status: mesos_pb2.TaskStatus) -> None:
        self.send(MasterMessage(status_update_acknowledgement=(
            MasterMessage.StatusUpdateAcknowledgement(
                framework_id=mesos_pb2.FrameworkID(value=framework_id),
                task_id=status.task_id, uuid=status.uuid,
            )
        )))

    async def update_acked(self, state: mesos_pb2.TaskState.ValueType) -> mesos_pb2.TaskStatus:
        """The next new update (retries of acknowledged ones that crossed the acknowledgement
        on a slow machine are skipped), which must be in `state`; acknowledged."""
        while True:
            message = await self.expect("status_update")
            status = message.status_update.status
            if status.uuid not in self.acknowledged:
                break
        assert mesos_pb2.TaskState.Name(status.state) == mesos_pb2.TaskState.Name(state), status
        self.ack("fw-1", status)
        self.acknowledged.add(status.uuid)
        return status


@pytest.fixture
async def master() -> AsyncIterator[tuple[ScriptedMaster, int]]:
    servicer = ScriptedMaster()
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentLinkServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, port
    finally:
        await server.stop(grace=None)


class RunningAgent:
    def __init__(self, master_port: int, work_dir: Path, **overrides: float) -> None:
        self.config = AgentConfig(
            master=f"127.0.0.1:{master_port}", work_dir=work_dir,
            resources=Resources.parse("cpus:2;mem:512;ports:[31000-31010]"),
            port=int(overrides.pop("port", 0)), hostname="agent-host",
            status_update_retry_interval=0.2,
            registration_max_backoff=0.2, **overrides,  # type: ignore[arg-type]
        )
        self.agent = Agent(self.config, StandaloneDetector(HostPort("127.0.0.1", master_port)))
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Agent:
        self.task = asyncio.create_task(self.agent.run())
        return self.agent

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        _LEFT_RUNNING.extend(self.agent.containers())  # they outlive the agent (a restart)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


_LEFT_RUNNING: list[ContainerProcess] = []


@pytest.fixture(autouse=True)
def _kill_containers_left_running() -> Iterator[None]:
    """Containers outlive their agent (so a restarted one recovers them); not the test."""
    yield
    for container in _LEFT_RUNNING:
        if process_start_time(container.pid) == container.start_time:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(container.pid, signal.SIGKILL)
    _LEFT_RUNNING.clear()


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll state outside this process (files, pids) until `condition` holds, bounded."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():  # noqa: ASYNC110 (no event to wait on for external state)
            await asyncio.sleep(0.02)


FRAMEWORK = mesos_pb2.FrameworkInfo(
    id=mesos_pb2.FrameworkID(value="fw-1"), name="test", user="root",
)


def run_task(task: mesos_pb2.TaskInfo, framework: mesos_pb2.FrameworkInfo = FRAMEWORK
             ) -> MasterMessage:
    return MasterMessage(run_task=MasterMessage.RunTask(framework_info=framework, task=task))


def command_task(task_id: str, script: str, resources: str = "cpus:0.1",
                 grace: float | None = None) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(
        name=task_id, task_id=mesos_pb2.TaskID(value=task_id),
        agent_id=mesos_pb2.AgentID(value="agent-1"),
        resources=Resources.parse(resources).to_proto(),
        command=mesos_pb2.CommandInfo(value=script),
    )
    if grace is not None:
        task.kill_policy.grace_period.nanoseconds = int(grace * 1e9)
    return task


def sandbox_of(work_dir: Path, task_id: str) -> Path:
    executors = work_dir / "slaves/agent-1/frameworks/fw-1/executors"
    runs = list((executors / task_id / "runs").iterdir())
    assert len(runs) == 1
    return runs[0]


async def test_command_task_runs_to_finished_with_its_environment(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path):
        hello = await scripted.expect("register")
        info = hello.register.agent_info
        assert info.hostname == "agent-host" and info.port > 0
        assert Resources.from_proto(info.resources) == Resources.parse(
            "cpus:2;mem:512;ports:[31000-31010]")

        scripted.send(run_task(command_task(
            "t1", 'echo "$MESOS_TASK_ID $PORT0 $PORT1 $PORTS $HOST"; pwd',
            "cpus:0.1;ports:[31002-31003]",
        )))
        starting = await scripted.update_acked(mesos_pb2.TASK_STARTING)
        assert starting.agent_id.value == "agent-1"
        assert starting.executor_id.value == "t1"
        assert starting.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        assert len(starting.uuid) == 16 and starting.timestamp > 0
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        finished = await scripted.update_acked(mesos_pb2.TASK_FINISHED)
        assert finished.message == "Command exited with status 0"

        sandbox = sandbox_of(tmp_path, "t1")
        assert (sandbox / "stdout").read_text() == (
            f"t1 31002 31003 31002,31003 agent-host\n{sandbox}\n"
        )
        task_meta = tmp_path / "meta/frameworks/fw-1/tasks/t1"
        await eventually(lambda: not task_meta.exists())  # forgotten once acknowledged
        await eventually(lambda: scripted.heartbeats > 0)


async def test_failing_and_unlaunchable_tasks_fail(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path):
        await scripted.expect("register")
        scripted.send(run_task(command_task("t1", "exit 3")))
        await scripted.update_acked(mesos_pb2.TASK_STARTING)
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        failed = await scripted.update_acked(mesos_pb2.TASK_FAILED)
        assert failed.message == "Command exited with status 3"

        bad = command_task("t2", "")
        bad.command.CopyFrom(mesos_pb2.CommandInfo(value="/no/such/program", shell=False))
        scripted.send(run_task(bad))
        await scripted.update_acked(mesos_pb2.TASK_STARTING)
        failed = await scripted.update_acked(mesos_pb2.TASK_FAILED)
        assert failed.reason == Reason.REASON_CONTAINER_LAUNCH_FAILED
        assert "/no/such/program" in failed.message


async def test_unacknowledged_update_is_retried_with_the_same_uuid_and_nothing_overtakes_it(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path):
        await scripted.expect("register")
        scripted.send(run_task(command_task("t1", "exit 0")))
        first = await scripted.update(mesos_pb2.TASK_STARTING)
        again = await scripted.update(mesos_pb2.TASK_STARTING)
        assert again.uuid == first.uuid
        scripted.ack("fw-1", first)
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        await scripted.update_acked(mesos_pb2.TASK_FINISHED)


async def test_kill_sends_killing_then_killed_and_escalates(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    framework = mesos_pb2.FrameworkInfo()
    framework.CopyFrom(FRAMEWORK)
    framework.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE)
    async with RunningAgent(port, tmp_path):
        await scripted.expect("register")
        scripted.send(run_task(command_task("t1", 'trap "" TERM; sleep 300 & wait; wait',
                                            grace=0.3), framework))
        await scripted.update_acked(mesos_pb2.TASK_STARTING)
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        scripted.send(MasterMessage(kill_task=MasterMessage.KillTask(
            framework_id=FRAMEWORK.id, task_id=mesos_pb2.TaskID(value="t1"))))
        await scripted.update_acked(mesos_pb2.TASK_KILLING)
        killed = await scripted.update_acked(mesos_pb2.TASK_KILLED)
        assert killed.message == "Command terminated by signal SIGKILL"


async def test_a_sigterm_delay_keeps_the_task_running_after_killing_until_it_passes(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    """With `sigterm_delay`, TASK_KILLING comes first and the task gets no SIGTERM until the
    delay passes (here: until a second kill ends the wait early)."""
    scripted, port = master
    framework = mesos_pb2.FrameworkInfo()
    framework.CopyFrom(FRAMEWORK)
    framework.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE)
    task = command_task("t1", 'trap "echo got-term > term; exit 0" TERM; '
                        "echo up > up; sleep 300 & wait", grace=30)
    task.kill_policy.sigterm_delay.nanoseconds = 600 * 10**9
    kill = MasterMessage(kill_task=MasterMessage.KillTask(
        framework_id=FRAMEWORK.id, task_id=mesos_pb2.TaskID(value="t1")))
    async with RunningAgent(port, tmp_path):
        await scripted.expect("register")
        scripted.send(run_task(task, framework))
        await scripted.update_acked(mesos_pb2.TASK_STARTING)
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        sandbox = sandbox_of(tmp_path, "t1")
        await eventually(lambda: (sandbox / "up").exists())
        scripted.send(kill)
        await scripted.update_acked(mesos_pb2.TASK_KILLING)
        # Another task starting and running takes longer than the trap would need.
        scripted.send(run_task(command_task("t2", "sleep 300"), framework))
        await scripted.update_acked(mesos_pb2.TASK_STARTING)
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        assert not (sandbox / "term").exists(), "SIGTERM came with TASK_KILLING"
        scripted.send(kill)  # a second kill: SIGTERM now
        killed = await scripted.update_acked(mesos_pb2.TASK_KILLED)
        assert (sandbox / "term").read_text() == "got-term\n", killed.message


async def test_kill_of_an_unknown_task_reports_it_lost(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path):
        await scripted.expect("register")
        scripted.send(MasterMessage(kill_task=MasterMessage.KillTask(
            framework_id=FRAMEWORK.id, task_id=mesos_pb2.TaskID(value="ghost"))))
        lost = await scripted.update_acked(mesos_pb2.TASK_LOST)
        assert lost.reason == Reason.REASON_TASK_UNKNOWN
        assert lost.source == mesos_pb2.TaskStatus.SOURCE_AGENT


async def test_reconnect_reregisters_with_tasks_and_resends_pending_updates(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path):
        await scripted.expect("register")
        scripted.send(run_task(command_task("t1", "sleep 300", grace=0.2)))
        await scripted.update_acked(mesos_pb2.TASK_STARTING)
        running = await scripted.update(mesos_pb2.TASK_RUNNING)  # not acknowledged

        scripted.close_stream()
        hello = await scripted.expect("reregister")
        assert hello.reregister.agent_info.id.value == "agent-1"
        assert [(t.task_id.value, t.state) for t in hello.reregister.tasks] == [
            ("t1", mesos_pb2.TASK_RUNNING)]
        assert [f.id.value for f in hello.reregister.frameworks] == ["fw-1"]
        resent = await scripted.update(mesos_pb2.TASK_RUNNING)
        assert resent.uuid == running.uuid
        scripted.ack("fw-1", resent)

        scripted.send(MasterMessage(shutdown_framework=MasterMessage.ShutdownFramework(
            framework_id=FRAMEWORK.id)))
        framework_meta = tmp_path / "meta/frameworks/fw-1"
        await eventually(lambda: not framework_meta.exists())


async def test_restarted_agent_recovers_a_live_task_and_can_kill_it(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path):
        await scripted.expect("register")
        scripted.send(run_task(command_task("t1", "sleep 300", grace=0.2)))
        await scripted.update_acked(mesos_pb2.TASK_STARTING)
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
    records = parse_task_log((tmp_path / "meta/frameworks/fw-1/tasks.log").read_bytes()).records
    [pid] = [r.container.pid for _, r, _ in records if isinstance(r, ContainerRecord)]
    os.kill(pid, 0)  # the task outlived its agent

    async with RunningAgent(port, tmp_path):
        hello = await scripted.expect("reregister")
        assert [(t.task_id.value, t.state) for t in hello.reregister.tasks] == [
            ("t1", mesos_pb2.TASK_RUNNING)]
        scripted.send(MasterMessage(kill_task=MasterMessage.KillTask(
            framework_id=FRAMEWORK.id, task_id=mesos_pb2.TaskID(value="t1"))))
        # RUNNING comes again first if its acknowledgement did not reach the first agent
        while (status := (await scripted.expect("status_update")).status_update.status
               ).state == mesos_pb2.TASK_RUNNING:
            scripted.ack("fw-1", status)
        assert status.state == mesos_pb2.TASK_KILLED
        assert "unknown status" in status.message  # the task is no longer the agent's child
        scripted.ack("fw-1", status)
        await eventually(lambda: not _alive(pid))


def _crashed_mid_launch(work_dir: Path, *, forked: bool) -> subprocess.Popen[bytes] | None:
    """Checkpoint files as a crash right after a launch leaves them: the arrival and a durable
    TASK_STARTING, plus (if `forked`) the container record of a live process but no
    TASK_RUNNING. Returns that process (a child of this test, which must reap it)."""
    paths = AgentPaths(work_dir)
    ops: list[FileOp] = [
        Replace(paths.agent_file, json.dumps({"agent_info": {"id": {"value": "agent-1"}}}
                                             ).encode()),
        Replace(paths.framework_file("fw-1"), json.dumps(
            {"framework_info": {"id": {"value": "fw-1"}, "name": "test", "user": "root"}}
        ).encode()),
    ]
    starting = mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value="t1"),
                                    state=mesos_pb2.TASK_STARTING, uuid=b"s" * 16)
    records: list[TaskLogRecord] = [
        TaskArrived(command_task("t1", "sleep 300"), "t1"), UpdateRecord(starting),
        AckRecord(starting.uuid),
    ]
    process = None
    if forked:
        sandbox = work_dir / "sandbox"
        sandbox.mkdir()
        process = subprocess.Popen(["sleep", "300"], start_new_session=True, cwd=sandbox)
        start_time = process_start_time(process.pid)
        assert start_time is not None
        records.append(ContainerRecord(ContainerProcess("c1", process.pid, start_time, sandbox)))
    ops += [Append(paths.task_log("fw-1"), encode_line("t1", r)) for r in records]
    apply_batch(ops)
    return process


async def test_recovery_reports_running_again_when_only_the_container_record_survived(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    process = _crashed_mid_launch(tmp_path, forked=True)
    assert process is not None
    reaped = asyncio.create_task(asyncio.to_thread(process.wait))  # the agent cannot reap it
    try:
        async with RunningAgent(port, tmp_path):
            hello = await scripted.expect("reregister")
            assert [t.task_id.value for t in hello.reregister.tasks] == ["t1"]
            running = await scripted.update_acked(mesos_pb2.TASK_RUNNING)
            assert running.task_id.value == "t1"
            scripted.send(MasterMessage(kill_task=MasterMessage.KillTask(
                framework_id=FRAMEWORK.id, task_id=mesos_pb2.TaskID(value="t1"))))
            await scripted.update_acked(mesos_pb2.TASK_KILLED)
            assert await reaped == -15
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)
        await reaped


async def test_recovery_fails_a_task_whose_launch_was_interrupted(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    _crashed_mid_launch(tmp_path, forked=False)
    async with RunningAgent(port, tmp_path):
        await scripted.expect("reregister")
        failed = await scripted.update_acked(mesos_pb2.TASK_FAILED)
        assert failed.reason == Reason.REASON_AGENT_RESTARTED
        assert failed.message == "The agent restarted while launching the task"
        task_meta = tmp_path / "meta/frameworks/fw-1/tasks/t1"
        await eventually(lambda: not task_meta.exists())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def executor_task(task_id: str, data: dict[str, object], command: str,
                  executor_id: str = "ex-1") -> mesos_pb2.TaskInfo:
    task = command_task(task_id, "")
    task.ClearField("command")
    task.data = json.dumps(data).encode()
    task.executor.CopyFrom(mesos_pb2.ExecutorInfo(
        type=mesos_pb2.ExecutorInfo.CUSTOM,
        executor_id=mesos_pb2.ExecutorID(value=executor_id),
        command=mesos_pb2.CommandInfo(
            value=command,
            environment=mesos_pb2.Environment(variables=[
                mesos_pb2.Environment.Variable(name="PYTHONPATH", value=str(REPO))]),
        ),
    ))
    return task


EXAMPLE_EXECUTOR = f"{sys.executable} -m frameworks.examples.custom_executor"


async def test_custom_executor_runs_tasks_and_echoes_messages(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path):
        await scripted.expect("register")
        scripted.send(run_task(executor_task("t1", {"echo": "hello"}, EXAMPLE_EXECUTOR)))
        running = await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        assert running.executor_id.value == "ex-1"
        assert running.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        finished = await scripted.update_acked(mesos_pb2.TASK_FINISHED)
        assert finished.data == b"hello"

        scripted.send(run_task(executor_task("t2", {"sleep": 300}, EXAMPLE_EXECUTOR)))
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        scripted.send(MasterMessage(kill_task=MasterMessage.KillTask(
            framework_id=FRAMEWORK.id, task_id=mesos_pb2.TaskID(value="t2"))))
        await scripted.update_acked(mesos_pb2.TASK_KILLED)

        scripted.send(MasterMessage(framework_to_executor=MasterMessage.FrameworkToExecutor(
            framework_id=FRAMEWORK.id, executor_id=mesos_pb2.ExecutorID(value="ex-1"),
            data=b"ping")))
        echoed = await scripted.expect("executor_to_framework")
        assert echoed.executor_to_framework.data == b"ping"

        scripted.send(MasterMessage(shutdown_executor=MasterMessage.ShutdownExecutor(
            framework_id=FRAMEWORK.id, executor_id=mesos_pb2.ExecutorID(value="ex-1"))))
        exited = await scripted.expect("executor_exited")
        assert exited.executor_exited.status == 0  # it stopped by itself after SHUTDOWN


async def test_a_custom_executors_container_is_monitored_under_its_own_id(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path) as agent:
        await scripted.expect("register")
        scripted.send(run_task(executor_task("t1", {"sleep": 300}, EXAMPLE_EXECUTOR)))
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        [monitored] = monitored_containers(agent.view(), agent.containers())
        [executor] = agent.view().executors
        assert (monitored.executor_id, monitored.source, monitored.task_id) == ("ex-1", "ex-1", "")
        assert monitored.container_id == executor.container_id
        usage = await agent.usage([monitored.container_id, "no-such-container"])
        assert list(usage) == [monitored.container_id]
        assert usage[monitored.container_id].cpus_limit == pytest.approx(0.1)
        assert usage[monitored.container_id].mem_rss_bytes > 0


async def test_executor_that_never_subscribes_is_killed_and_its_tasks_fail(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path, executor_registration_timeout=0.5):
        await scripted.expect("register")
        scripted.send(run_task(executor_task("t1", {}, "sleep 300")))
        failed = await scripted.update_acked(mesos_pb2.TASK_FAILED)
        assert failed.reason == Reason.REASON_EXECUTOR_REGISTRATION_TIMEOUT
        exited = await scripted.expect("executor_exited")
        assert exited.executor_exited.executor_id.value == "ex-1"


async def test_executor_exit_fails_its_running_tasks(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path):
        await scripted.expect("register")
        scripted.send(run_task(executor_task("t1", {"sleep": 300}, EXAMPLE_EXECUTOR)))
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        meta = json.loads((tmp_path / "meta/frameworks/fw-1/executors/ex-1.json").read_text())
        os.kill(meta["container"]["pid"], 9)
        failed = await scripted.update_acked(mesos_pb2.TASK_FAILED)
        assert failed.reason == Reason.REASON_EXECUTOR_TERMINATED
        exited = await scripted.expect("executor_exited")
        assert exited.executor_exited.status == -9


def executor_token(work_dir: Path, executor_id: str) -> str:
    """The token the agent checkpointed for one of fw-1's executors."""
    path = work_dir / f"meta/frameworks/fw-1/executors/{executor_id}.json"
    token = json.loads(path.read_text())["token"]
    assert isinstance(token, str) and token
    return token


async def forged_subscription(
    endpoint: str, executor_id: str, token: str | None
) -> grpc.StatusCode:
    """Subscribe as fw-1's `executor_id`, re-sending a forged TASK_FINISHED of t1 the way a
    reconnecting executor re-sends its unacknowledged updates; how the agent ends the call."""
    forged = mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value="t1"),
                                  state=mesos_pb2.TASK_FINISHED, uuid=os.urandom(16))
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else ()
    async with grpc.aio.insecure_channel(endpoint) as channel:
        call = executor_pb2_grpc.ExecutorLinkStub(channel).Subscribe(metadata=metadata)
        await call.write(executor_pb2.Call(
            type=executor_pb2.Call.SUBSCRIBE, framework_id=FRAMEWORK.id,
            executor_id=mesos_pb2.ExecutorID(value=executor_id),
            subscribe=executor_pb2.Call.Subscribe(unacknowledged_updates=[forged]),
        ))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            async with asyncio.timeout(TIMEOUT):
                while await call.read() is not grpc.aio.EOF:
                    pass
        return refused.value.code()


async def shut_down_executors(scripted: ScriptedMaster, *executor_ids: str) -> None:
    for executor_id in executor_ids:
        scripted.send(MasterMessage(shutdown_executor=MasterMessage.ShutdownExecutor(
            framework_id=FRAMEWORK.id, executor_id=mesos_pb2.ExecutorID(value=executor_id))))
        await scripted.expect("executor_exited", lambda m, e=executor_id: (
            m.executor_exited.executor_id.value == e))


async def test_forged_executor_subscriptions_are_refused(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    async with RunningAgent(port, tmp_path) as agent:
        await scripted.expect("register")
        scripted.send(run_task(executor_task("t1", {"sleep": 300}, EXAMPLE_EXECUTOR)))
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        scripted.send(run_task(executor_task("t2", {"sleep": 300}, EXAMPLE_EXECUTOR, "ex-2")))
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        assert agent.endpoint is not None
        assert executor_token(tmp_path, "ex-1") != executor_token(tmp_path, "ex-2")

        assert await forged_subscription(agent.endpoint, "ex-1", None) == (
            grpc.StatusCode.UNAUTHENTICATED)
        assert await forged_subscription(agent.endpoint, "ex-1", "guessed") == (
            grpc.StatusCode.PERMISSION_DENIED)
        assert await forged_subscription(
            agent.endpoint, "ex-1", executor_token(tmp_path, "ex-2")
        ) == grpc.StatusCode.PERMISSION_DENIED

        # The real executor kept its stream: it gets the kill, and the forged TASK_FINISHED
        # never came before its TASK_KILLED.
        scripted.send(MasterMessage(kill_task=MasterMessage.KillTask(
            framework_id=FRAMEWORK.id, task_id=mesos_pb2.TaskID(value="t1"))))
        killed = await scripted.update_acked(mesos_pb2.TASK_KILLED)
        assert killed.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        assert all(e.subscribed for e in agent.view().executors)
        await shut_down_executors(scripted, "ex-1", "ex-2")


async def test_custom_executor_resubscribes_with_its_token_after_an_agent_restart(
    master: tuple[ScriptedMaster, int], tmp_path: Path
) -> None:
    scripted, port = master
    agent_port = free_port()
    async with RunningAgent(port, tmp_path, port=agent_port):
        await scripted.expect("register")
        scripted.send(run_task(executor_task("t1", {"sleep": 300}, EXAMPLE_EXECUTOR)))
        await scripted.update_acked(mesos_pb2.TASK_RUNNING)
    token = executor_token(tmp_path, "ex-1")

    async with RunningAgent(port, tmp_path, port=agent_port) as agent:
        await scripted.expect("reregister")
        await eventually(lambda: [e.subscribed for e in agent.view().executors] == [True])
        assert executor_token(tmp_path, "ex-1") == token  # the same executor, the same token
        # Its container is sized for the recovered task too once a second one arrives.
        scripted.send(run_task(executor_task("t2", {"sleep": 300}, EXAMPLE_EXECUTOR)))
        await eventually(lambda: any(
            t.task.task_id.value == "t2" and t.task.state == mesos_pb2.TASK_RUNNING
            for t in agent.view().tasks))
        [executor] = agent.view().executors
        usage = await agent.usage([executor.container_id])
        assert usage[executor.container_id].cpus_limit == pytest.approx(0.2)  # t1 + t2
        scripted.send(MasterMessage(kill_task=MasterMessage.KillTask(
            framework_id=FRAMEWORK.id, task_id=mesos_pb2.TaskID(value="t1"))))
        while (status := (await scripted.expect("status_update")).status_update.status
               ).state == mesos_pb2.TASK_RUNNING:  # again if its ack missed the first agent
            scripted.ack("fw-1", status)
        assert status.state == mesos_pb2.TASK_KILLED
        assert status.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        scripted.ack("fw-1", status)
        await shut_down_executors(scripted, "ex-1")
