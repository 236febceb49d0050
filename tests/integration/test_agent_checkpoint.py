"""Checkpoint files and the per-task status update log on a real file system."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mesos_agent.checkpoint import Checkpointer, ExecutorCheckpoint, TaskCheckpoint, atomic_write
from mesos_agent.containerizer import ContainerProcess
from mesos_agent.paths import AgentPaths
from mesos_agent.status_updates import AckRecord, StatusUpdateLog, UpdateRecord, encode_record
from protos import mesos_pb2

pytestmark = pytest.mark.integration


def status(state: mesos_pb2.TaskState.ValueType) -> mesos_pb2.TaskStatus:
    return mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value="t/1"), state=state, uuid=uuid.uuid4().bytes
    )


def test_update_log_survives_a_torn_append_and_keeps_appending(tmp_path: Path) -> None:
    log = StatusUpdateLog(tmp_path / "updates.log")
    running, finished = status(mesos_pb2.TASK_RUNNING), status(mesos_pb2.TASK_FINISHED)
    log.append(UpdateRecord(running))
    log.append(AckRecord(running.uuid))
    with log.path.open("ab") as handle:  # a crash in the middle of the next append
        handle.write(encode_record(UpdateRecord(finished))[:20])
    assert log.read() == [UpdateRecord(running), AckRecord(running.uuid)]
    log.append(UpdateRecord(finished))
    assert log.read() == [UpdateRecord(running), AckRecord(running.uuid), UpdateRecord(finished)]


def test_atomic_write_replaces_whole_files_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "dir" / "file.json"
    atomic_write(target, b"one")
    atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["file.json"]


def test_checkpointed_state_loads_back(tmp_path: Path) -> None:
    checkpointer = Checkpointer(AgentPaths(tmp_path))
    assert checkpointer.load().agent_info is None
    agent = mesos_pb2.AgentInfo(hostname="h", id=mesos_pb2.AgentID(value="agent-1"))
    framework = mesos_pb2.FrameworkInfo(id=mesos_pb2.FrameworkID(value="fw/1"), name="f")
    task = mesos_pb2.TaskInfo(task_id=mesos_pb2.TaskID(value="t/1"), name="t")
    container = ContainerProcess("c1", 4242, 1234.5, tmp_path / "sandbox")
    executor = mesos_pb2.ExecutorInfo(executor_id=mesos_pb2.ExecutorID(value="e1"))
    running = status(mesos_pb2.TASK_RUNNING)

    checkpointer.save_agent(agent)
    checkpointer.save_framework(framework)
    checkpointer.save_task(TaskCheckpoint("fw/1", task, "t/1", container))
    checkpointer.save_executor(ExecutorCheckpoint("fw/1", executor, None))
    checkpointer.update_log("fw/1", "t/1").append(UpdateRecord(running))

    state = checkpointer.load()
    assert state.agent_info == agent
    assert state.frameworks == {"fw/1": framework}
    assert [(t.task, t.executor_id, t.container, t.updates) for t in state.tasks] == [
        (task, "t/1", container, [UpdateRecord(running)])]
    assert [(e.framework_id, e.executor) for e in state.executors] == [("fw/1", executor)]

    checkpointer.remove_task("fw/1", "t/1")
    assert checkpointer.load().tasks == []
    checkpointer.clear()
    assert checkpointer.load().agent_info is None


def test_corrupt_checkpoint_is_reported(tmp_path: Path) -> None:
    paths = AgentPaths(tmp_path)
    paths.meta_dir.mkdir()
    paths.agent_file.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        Checkpointer(paths).load()
