"""Agent recovery from corrupt checkpoints, as `--strict` says (see `mesos_agent.checkpoint`).

Checkpoints are made by a real agent running real `sleep` tasks against the scripted master of
`test_agent_tasks`; then a file is damaged and the agent restarted: the `mesos-agent` program
for the strict refusals, an in-process agent for what a non-strict recovery keeps and drops,
and a real master for what the framework is told about a dropped task.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import grpc
import psutil
import pytest

from mesos_agent.checkpoint import Checkpointer, CorruptCheckpoint
from mesos_agent.group_commit import GroupCommitter
from mesos_agent.paths import AgentPaths
from mesos_agent.status_updates import AckRecord, ContainerRecord
from mesos_agent.task_log import (
    TaskArrived,
    TaskGone,
    TaskLogRecord,
    encode_line,
    parse_task_log,
)
from protos import agent_pb2_grpc, mesos_pb2
from tests.integration.cluster import Cluster, free_port, running_cluster, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.recording import RecordingScheduler
from tests.integration.test_agent_tasks import (
    FRAMEWORK,
    AgentMessage,
    MasterMessage,
    Reason,
    RunningAgent,
    ScriptedMaster,
    command_task,
    eventually,
    executor_task,
    run_task,
)
from tests.integration.test_end_to_end import PARTITION_AWARE, launch_once, running, sleep_pids

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


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


@pytest.fixture
def reaped() -> Iterator[list[int]]:
    """Pids of task processes a test started; whatever is left of them is killed at the end."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.killpg(pid, 9)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def task_records(paths: AgentPaths, task_id: str, framework_id: str = "fw-1"
                 ) -> list[TaskLogRecord]:
    """A task's records in its framework's task log as it is now, from its arrival on ([]: not
    in the log, or forgotten)."""
    path = paths.task_log(framework_id)
    records: list[TaskLogRecord] = []
    for logged_id, record, _ in parse_task_log(path.read_bytes() if path.exists() else b"").records:
        if logged_id != task_id:
            continue
        if isinstance(record, TaskArrived):
            records = []
        records = [] if isinstance(record, TaskGone) else [*records, record]
    return records


async def run_sleeps(
    scripted: ScriptedMaster, port: int, work_dir: Path, *task_ids: str
) -> dict[str, int]:
    """Run `sleep 300` tasks on an agent, stop it once every update is acknowledged in the
    tasks' logs (the tasks keep running), and return their root pids."""
    paths = AgentPaths(work_dir)
    async with RunningAgent(port, work_dir):
        await scripted.expect("register")
        for task_id in task_ids:
            scripted.send(run_task(command_task(task_id, "sleep 300")))
            await scripted.update_acked(mesos_pb2.TASK_STARTING)
            await scripted.update_acked(mesos_pb2.TASK_RUNNING)
        await eventually(lambda: all(
            sum(isinstance(r, AckRecord) for r in task_records(paths, t)) == 2
            for t in task_ids))
    return {t: container_record(paths, t).container.pid for t in task_ids}


def container_record(paths: AgentPaths, task_id: str, framework_id: str = "fw-1"
                     ) -> ContainerRecord:
    [record] = [r for r in task_records(paths, task_id, framework_id)
                if isinstance(r, ContainerRecord)]
    return record


def sleep_pid_of(work_dir: Path, task_id: str) -> int | None:
    """The pid of the `sleep` a command task runs: found by its sandbox, the working
    directory, or (in an image container, whose working directory is in its own root
    filesystem) by the memory cgroup named after its container."""
    # The sandboxes' own layout (AgentPaths), not `**`: a walk of the whole work dir can race
    # an image container's overlay work directory as it changes.
    containers = {run.name for run in
                  (work_dir / "slaves").glob(f"*/frameworks/*/executors/{task_id}/runs/*")}
    for process in psutil.process_iter(["cwd", "cmdline"]):
        cwd, cmdline = process.info["cwd"] or "", process.info["cmdline"] or [""]
        if cmdline[0] not in ("sleep", "/bin/sleep"):
            continue
        if cwd.startswith(str(work_dir)) and f"/executors/{task_id}/runs/" in cwd:
            return int(process.pid)
        if _memory_cgroup(process.pid).rsplit("/", 1)[-1] in containers:
            return int(process.pid)
    return None


def _memory_cgroup(pid: int) -> str:
    try:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
    except OSError:
        return ""
    return next((line.split(":", 2)[2] for line in lines
                 if line.split(":", 2)[1] == "memory"), "")


def damage_line(path: Path, marker: bytes) -> None:
    """Replace the log's line containing `marker` by garbage (a complete line)."""
    lines = path.read_bytes().splitlines(keepends=True)
    [index] = [i for i, line in enumerate(lines) if marker in line]
    lines[index] = b"{this is not a record}\n"
    path.write_bytes(b"".join(lines))


def set_aside(work_dir: Path) -> Path:
    """The one directory a non-strict recovery set corrupt checkpoints aside in."""
    [stamp] = list((work_dir / "meta.corrupt").iterdir())
    return stamp


def replace_by_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


def run_agent_program(work_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `mesos-agent` (strict by default) until it exits."""
    return subprocess.run(
        [sys.executable, "-m", "mesos_agent", "--master", f"127.0.0.1:{free_port()}",
         "--work_dir", str(work_dir), "--port", "0", "--resources", "cpus:1;mem:64"],
        capture_output=True, text=True, timeout=30, cwd=REPO,
        env={k: v for k, v in os.environ.items() if k != "MESOS_STRICT"},
    )


def reregistered_tasks(hello: AgentMessage) -> dict[str, str]:
    return {t.task_id.value: mesos_pb2.TaskState.Name(t.state) for t in hello.reregister.tasks}


# ---------------------------------------------------------------- strict (the default)


async def test_strict_agent_refuses_to_start_on_any_corrupt_checkpoint(
    master: tuple[ScriptedMaster, int], tmp_path: Path, reaped: list[int]
) -> None:
    scripted, port = master
    work_dir = tmp_path / "agent"
    pids = await run_sleeps(scripted, port, work_dir, "t1")
    reaped.extend(pids.values())
    paths = AgentPaths(work_dir)
    executor_file = paths.executor_file("fw-1", "ex-1")
    executor_file.parent.mkdir(parents=True)
    executor_file.write_text(json.dumps({"executor_info": {}, "container": None}))
    log = paths.task_log("fw-1")
    damages: dict[str, tuple[Path, Callable[[Path], object]]] = {
        "agent.json": (paths.agent_file, lambda f: f.write_text("{not json")),
        "framework.json": (paths.framework_file("fw-1"),
                           lambda f: f.write_text('{"framework_info": {"id": 7}}')),
        "executor": (executor_file, lambda f: f.write_text("[]")),
        "task log, arrival": (log, lambda f: damage_line(f, b'"info"')),
        "task log, middle line": (log, lambda f: damage_line(f, b'"container"')),
        "task log, zeroed": (log, lambda f: f.write_bytes(b"\0" * 40 + b"\n")),
        "task log is a directory": (log, replace_by_directory),
        "tasks of an older agent": (paths.legacy_tasks_dir("fw-1"), lambda d: d.mkdir()),
    }
    for name, (damaged, damage) in damages.items():
        original = damaged.read_bytes() if damaged.is_file() else None
        damage(damaged)
        agent = await asyncio.to_thread(run_agent_program, work_dir)
        assert agent.returncode == 1, (name, agent.stderr)
        assert "Traceback" not in agent.stderr, (name, agent.stderr)
        [error] = [line for line in agent.stderr.splitlines() if line.startswith("mesos-agent:")]
        assert error.startswith("mesos-agent: error: cannot recover: corrupt checkpoint "), name
        assert str(damaged) in error and str(paths.meta_dir) in error, (name, error)
        assert "--strict=false" in error, name
        assert alive(pids["t1"]), f"{name}: a refusing agent must not touch its tasks"
        assert not (work_dir / "meta.corrupt").exists(), name
        if damaged.is_dir():
            damaged.rmdir()
        if original is not None:
            damaged.write_bytes(original)


async def test_strict_agent_recovers_past_a_torn_log_tail(
    master: tuple[ScriptedMaster, int], tmp_path: Path, reaped: list[int]
) -> None:
    scripted, port = master
    pids = await run_sleeps(scripted, port, tmp_path, "t1")
    reaped.extend(pids.values())
    with AgentPaths(tmp_path).task_log("fw-1").open("ab") as log:
        log.write(b'{"task":"t1","update":"CAES')  # a crash in the middle of an append
    async with RunningAgent(port, tmp_path):
        hello = await scripted.expect("reregister")
        assert reregistered_tasks(hello) == {"t1": "TASK_RUNNING"}
        assert alive(pids["t1"])


# ---------------------------------------------------------------- non-strict


async def test_non_strict_recovery_drops_what_it_cannot_read_and_kills_its_processes(
    master: tuple[ScriptedMaster, int], tmp_path: Path, reaped: list[int]
) -> None:
    scripted, port = master
    pids = await run_sleeps(scripted, port, tmp_path, "kept", "no-info", "no-record")
    reaped.extend(pids.values())
    paths = AgentPaths(tmp_path)
    log = paths.task_log("fw-1")
    damage_line(log, b'"task":"no-info","info"')
    damage_line(log, b'"task":"no-record","container"')

    async with RunningAgent(port, tmp_path, strict=False):
        hello = await scripted.expect("reregister")
        # The task without its arrival is left out (the master reports it lost); the one that
        # lost its container record has failed.
        assert reregistered_tasks(hello) == {"kept": "TASK_RUNNING", "no-record": "TASK_FAILED"}
        failed = (await scripted.expect("status_update")).status_update.status
        scripted.ack("fw-1", failed)
        assert mesos_pb2.TaskState.Name(failed.state) == "TASK_FAILED"
        assert failed.task_id.value == "no-record"
        assert failed.reason == Reason.REASON_AGENT_RESTARTED
        assert failed.source == mesos_pb2.TaskStatus.SOURCE_AGENT
        assert "corrupt checkpoint" in failed.message
        await eventually(lambda: not alive(pids["no-info"]) and not alive(pids["no-record"]))
        assert alive(pids["kept"])

        # Rewritten without the corrupt lines (and the dropped task); the original set aside.
        await eventually(lambda: b"{this is not a record}" not in log.read_bytes())
        rewritten = parse_task_log(log.read_bytes())
        assert not rewritten.corrupt and not rewritten.torn_tail
        assert {t for t, _, _ in rewritten.records} == {"kept", "no-record"}
        assert (set_aside(tmp_path) / "frameworks/fw-1/tasks.log").read_bytes().count(
            b"{this is not a record}") == 2

        scripted.send(MasterMessage(kill_task=MasterMessage.KillTask(
            framework_id=FRAMEWORK.id, task_id=mesos_pb2.TaskID(value="kept"))))
        await scripted.update_acked(mesos_pb2.TASK_KILLED)  # still supervised


async def test_non_strict_recovery_of_a_corrupt_agent_file_registers_a_new_agent(
    master: tuple[ScriptedMaster, int], tmp_path: Path, reaped: list[int]
) -> None:
    scripted, port = master
    pids = await run_sleeps(scripted, port, tmp_path, "t1")
    reaped.extend(pids.values())
    paths = AgentPaths(tmp_path)
    paths.agent_file.write_text('{"agent_info": {"id": {"value": ')

    async with RunningAgent(port, tmp_path, strict=False):
        await scripted.expect("register")  # not reregister: a new agent
        await eventually(lambda: not alive(pids["t1"]))  # the old agent's task is an orphan
        aside = set_aside(tmp_path)
        assert (aside / "agent.json").read_text() == '{"agent_info": {"id": {"value": '
        assert (aside / "frameworks/fw-1/tasks.log").exists()
        await eventually(paths.agent_file.exists)
        assert not paths.frameworks_dir.exists()


async def test_non_strict_recovery_keeps_the_tasks_of_a_corrupt_framework_file(
    master: tuple[ScriptedMaster, int], tmp_path: Path, reaped: list[int]
) -> None:
    scripted, port = master
    pids = await run_sleeps(scripted, port, tmp_path, "t1")
    reaped.extend(pids.values())
    framework_file = AgentPaths(tmp_path).framework_file("fw-1")
    framework_file.write_text('{"framework_info": ')

    async with RunningAgent(port, tmp_path, strict=False):
        hello = await scripted.expect("reregister")
        assert reregistered_tasks(hello) == {"t1": "TASK_RUNNING"}
        assert alive(pids["t1"])
        # Rewritten with what is known, so that the next recovery reads it.
        await eventually(lambda: framework_file.read_text() != '{"framework_info": ')
        assert json.loads(framework_file.read_text()) == {
            "framework_info": {"id": {"value": "fw-1"}}}
        copied = set_aside(tmp_path) / "frameworks/fw-1/framework.json"
        assert copied.read_text() == '{"framework_info": '


async def test_a_corrupt_executor_checkpoint_drops_the_executor_and_its_tasks(
    tmp_path: Path
) -> None:
    paths = AgentPaths(tmp_path)
    committer = GroupCommitter()
    checkpointer = Checkpointer(paths, committer)
    agent = mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value="agent-1"))
    paths.meta_dir.mkdir()
    paths.agent_file.write_text(json.dumps({"agent_info": {"id": {"value": "agent-1"}}}))
    paths.framework_file("fw-1").parent.mkdir(parents=True)
    paths.framework_file("fw-1").write_text(json.dumps(
        {"framework_info": {"id": {"value": "fw-1"}}}))
    lines = b""
    for task in (executor_task("custom", {}, "run-executor"), command_task("plain", "sleep 1")):
        executor_id = task.executor.executor_id.value or task.task_id.value
        lines += encode_line(task.task_id.value, TaskArrived(task, executor_id))
    paths.task_log("fw-1").write_bytes(lines)
    paths.executors_dir("fw-1").mkdir()
    paths.executor_file("fw-1", "ex-1").write_text('{"executor_info": {"executor_id": 1}}')

    with pytest.raises(CorruptCheckpoint) as refused:
        checkpointer.load()
    assert refused.value.path == paths.executor_file("fw-1", "ex-1")

    state = checkpointer.load(strict=False)
    assert state.agent_info == agent
    assert state.executors == []
    assert [t.task.task_id.value for t in state.tasks] == ["plain"]
    assert [(s.path, s.consequence) for s in state.skipped] == [
        (paths.executor_file("fw-1", "ex-1"),
         "executor 'ex-1' and its tasks are dropped; their processes are killed"),
        (paths.executor_file("fw-1", "ex-1"),
         "task 'custom' is dropped: its process is killed and the master reports it lost"),
    ]
    syncer = asyncio.create_task(committer.run())  # the task log is rewritten without it
    try:
        await committer.wait(committer.last_ticket)
    finally:
        syncer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await syncer
    assert checkpointer.load().tasks == state.tasks  # nothing corrupt is left behind


# ---------------------------------------------------------------- with a real master


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with running_cluster(tmp_path, FAST_MASTER_FLAGS) as started:
        yield started


def test_framework_is_told_a_dropped_task_is_gone(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    agent_dir, agent_port = cluster.work_dir / "agent", free_port()
    agent = cluster.start_agent(work_dir=agent_dir, port=agent_port, hostname="kept")
    scheduler = RecordingScheduler(on_offers=launch_once(
        ("kept", "sleep 600"), ("broken", "sleep 600")))
    with running(cluster, scheduler, "aware", capabilities=[PARTITION_AWARE]) as driver:
        for task_id in ("kept", "broken"):
            scheduler.wait_for_state(task_id, "TASK_RUNNING")
        assert scheduler.framework_id is not None
        broken_pid = wait_for(lambda: sleep_pid_of(agent_dir, "broken"), "broken's sleep to run")
        kept_pid = wait_for(lambda: sleep_pid_of(agent_dir, "kept"), "kept's sleep to run")
        agent.kill9()
        broken_file = AgentPaths(agent_dir).task_log(scheduler.framework_id)
        damage_line(broken_file, b'"task":"broken","info"')

        monkeypatch.setenv("MESOS_STRICT", "false")
        restarted = cluster.start_agent(work_dir=agent_dir, port=agent_port, hostname="kept")
        gone = scheduler.wait_for_state("broken", "TASK_GONE")
        assert gone.reason == mesos_pb2.TaskStatus.REASON_AGENT_RESTARTED
        assert "not known" in gone.message
        wait_for(lambda: not alive(broken_pid), "the dropped task's process to be killed")
        restarted.wait_for_log("skipped a corrupt checkpoint")
        assert str(broken_file) in restarted.log()

        driver.reconcile_tasks(["kept"])
        wait_for(lambda: any(u.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION
                             and u.state == mesos_pb2.TASK_RUNNING
                             for u in scheduler.updates if u.task_id.value == "kept"),
                 "reconciliation to report the kept task running")
        assert sleep_pids(agent_dir) == {kept_pid}
