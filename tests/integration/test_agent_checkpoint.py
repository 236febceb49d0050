"""Checkpoint files, group-commit batches and the task log on a real file system."""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mesos_agent import task_log
from mesos_agent.checkpoint import Checkpointer
from mesos_agent.containers import ContainerProcess
from mesos_agent.group_commit import (
    SYNCFS,
    Append,
    GroupCommitter,
    Remove,
    Replace,
    apply_batch,
)
from mesos_agent.paths import AgentPaths
from mesos_agent.recovered import ExecutorCheckpoint
from mesos_agent.status_updates import AckRecord, ContainerRecord, UpdateRecord
from mesos_agent.task_log import encode_line, parse_task_log
from protos import mesos_pb2

pytestmark = pytest.mark.integration


def status(state: mesos_pb2.TaskState.ValueType, task_id: str = "t/1") -> mesos_pb2.TaskStatus:
    return mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value=task_id), state=state, uuid=uuid.uuid4().bytes
    )


def tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` (dot files included) by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
async def committer() -> AsyncIterator[GroupCommitter]:
    committer = GroupCommitter()
    syncer = asyncio.create_task(committer.run())
    try:
        yield committer
    finally:
        syncer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await syncer


Sync = dict[str, Any]


@pytest.fixture(params=["fsync", "syncfs"])
def sync(request: pytest.FixtureRequest) -> Sync:
    """`apply_batch` arguments for both ways a batch is made durable: fsync of each file and
    directory, or syncfs (here from the first fsync on)."""
    if request.param == "fsync":
        return {"syncfs": None}
    assert SYNCFS is not None, "this kernel has syncfs (see the test below)"
    return {"syncfs": SYNCFS, "syncfs_from": 1}


def test_syncfs_is_used_where_the_kernel_reports_its_errors() -> None:
    release = tuple(int(part) for part in platform.release().split(".")[:2])
    assert (SYNCFS is not None) == (sys.platform == "linux" and release >= (5, 8))


def test_a_batch_costs_one_syncfs_and_one_more_when_it_renames(tmp_path: Path) -> None:
    calls: list[int] = []
    log, target = tmp_path / "t" / "updates.log", tmp_path / "t" / "task.json"
    apply_batch([Append(log, b"a\n"), Append(log, b"b\n")], calls.append, syncfs_from=1)
    assert len(calls) == 1
    apply_batch([Replace(target, b"task"), Append(log, b"c\n")], calls.append, syncfs_from=1)
    assert len(calls) == 3
    apply_batch([Append(log, b"ack\n", sync=False)], calls.append, syncfs_from=1)
    assert len(calls) == 3  # nothing to make durable
    assert tree(tmp_path) == {"t/updates.log": b"a\nb\nc\nack\n", "t/task.json": b"task"}


def test_only_a_batch_that_would_need_many_fsyncs_uses_syncfs(tmp_path: Path) -> None:
    calls: list[int] = []
    few = [Append(tmp_path / "t1" / "updates.log", b"a\n")]  # the file and two directories
    apply_batch(few, calls.append, syncfs_from=8)
    assert calls == []
    many = [Append(tmp_path / f"t{i}" / "updates.log", b"a\n") for i in range(2, 6)]
    apply_batch(many, calls.append, syncfs_from=8)  # four files, four new directories, root
    assert len(calls) == 1
    assert len(tree(tmp_path)) == 5


async def test_task_log_survives_a_torn_append_and_keeps_appending(
    tmp_path: Path, committer: GroupCommitter
) -> None:
    paths = AgentPaths(tmp_path)
    checkpointer = Checkpointer(paths, committer)
    task = mesos_pb2.TaskInfo(task_id=mesos_pb2.TaskID(value="t/1"), name="t")
    running, finished = status(mesos_pb2.TASK_RUNNING), status(mesos_pb2.TASK_FINISHED)
    checkpointer.save_agent(mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value="agent-1")))
    checkpointer.save_framework(mesos_pb2.FrameworkInfo(id=mesos_pb2.FrameworkID(value="fw")))
    checkpointer.save_task("fw", task, "t/1")
    checkpointer.append("fw", "t/1", UpdateRecord(running))
    await committer.wait(checkpointer.append("fw", "t/1", AckRecord(running.uuid)))
    with paths.task_log("fw").open("ab") as handle:  # a crash in the middle of the next append
        handle.write(encode_line("t/1", UpdateRecord(finished))[:20])

    restarted = Checkpointer(paths, committer)
    [recovered] = restarted.load().tasks  # strict: a torn tail is not corruption
    assert recovered.updates == [UpdateRecord(running), AckRecord(running.uuid)]
    await committer.wait(restarted.append("fw", "t/1", UpdateRecord(finished)))
    [recovered] = Checkpointer(paths, committer).load().tasks
    assert recovered.updates == [
        UpdateRecord(running), AckRecord(running.uuid), UpdateRecord(finished)]
    assert not parse_task_log(paths.task_log("fw").read_bytes()).torn_tail


def test_replacements_are_whole_files_and_leave_no_temp_files(tmp_path: Path, sync: Sync) -> None:
    target = tmp_path / "dir" / "sub" / "file.json"
    apply_batch([Replace(target, b"one"), Replace(target, b"two")], **sync)  # the last one wins
    assert tree(tmp_path) == {"dir/sub/file.json": b"two"}
    apply_batch([Replace(target, b"three")], **sync)
    assert tree(tmp_path) == {"dir/sub/file.json": b"three"}


def test_a_batch_applies_its_operations_in_request_order(tmp_path: Path, sync: Sync) -> None:
    task_dir = tmp_path / "tasks" / "t1"
    apply_batch([
        Replace(task_dir / "task.json", b"old task"),
        Append(task_dir / "updates.log", b"old update\n"),
        Remove(task_dir),  # the task ended: nothing of it may come back from this batch
        Append(task_dir / "updates.log", b"new update\n"),  # a new task with the same id
        Replace(tmp_path / "agent.json", b"agent"),
        Remove(tmp_path / "agent.json"),
        Remove(tmp_path / "never-written"),
    ], **sync)
    assert tree(tmp_path) == {"tasks/t1/updates.log": b"new update\n"}


async def test_checkpointed_state_loads_back(
    tmp_path: Path, committer: GroupCommitter
) -> None:
    checkpointer = Checkpointer(AgentPaths(tmp_path), committer)
    assert checkpointer.load().agent_info is None
    agent = mesos_pb2.AgentInfo(hostname="h", id=mesos_pb2.AgentID(value="agent-1"))
    framework = mesos_pb2.FrameworkInfo(id=mesos_pb2.FrameworkID(value="fw/1"), name="f")
    task = mesos_pb2.TaskInfo(task_id=mesos_pb2.TaskID(value="t/1"), name="t")
    container = ContainerProcess("c1", 4242, 1234.5, tmp_path / "sandbox")
    executor = mesos_pb2.ExecutorInfo(executor_id=mesos_pb2.ExecutorID(value="e1"))
    starting, running = status(mesos_pb2.TASK_STARTING), status(mesos_pb2.TASK_RUNNING)

    checkpointer.save_agent(agent)
    checkpointer.save_framework(framework)
    checkpointer.save_task("fw/1", task, "t/1")
    checkpointer.save_executor(ExecutorCheckpoint("fw/1", executor, None, "tok"))
    checkpointer.append("fw/1", "t/1", UpdateRecord(starting))
    checkpointer.append("fw/1", "t/1", ContainerRecord(container))
    await committer.wait(checkpointer.append("fw/1", "t/1", UpdateRecord(running)))

    state = checkpointer.load()
    assert state.agent_info == agent
    assert state.frameworks == {"fw/1": framework}
    assert [(t.task, t.executor_id, t.container, t.updates) for t in state.tasks] == [(
        task, "t/1", container, [UpdateRecord(starting), UpdateRecord(running)],
    )]
    assert [(e.framework_id, e.executor, e.token) for e in state.executors] == [
        ("fw/1", executor, "tok")]
    assert not [name for name in tree(tmp_path) if "/." in f"/{name}"], "temp files left"
    modes = {name: (tmp_path / name).stat().st_mode & 0o777 for name in tree(tmp_path)
             if (tmp_path / name).is_file()}
    assert modes and set(modes.values()) == {0o600}, modes  # tokens, task environments

    await committer.wait(checkpointer.remove_task("fw/1", "t/1"))
    assert checkpointer.load().tasks == []
    await committer.wait(checkpointer.clear())
    assert checkpointer.load().agent_info is None


async def test_an_executor_checkpoint_of_an_older_agent_loads_without_a_token(
    tmp_path: Path, committer: GroupCommitter
) -> None:
    checkpointer = Checkpointer(AgentPaths(tmp_path), committer)
    checkpointer.save_agent(mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value="agent-1")))
    checkpointer.save_framework(mesos_pb2.FrameworkInfo(id=mesos_pb2.FrameworkID(value="fw")))
    await committer.wait(checkpointer.save_executor(ExecutorCheckpoint(
        "fw", mesos_pb2.ExecutorInfo(executor_id=mesos_pb2.ExecutorID(value="e1")))))
    path = checkpointer.paths.executor_file("fw", "e1")
    older = json.loads(path.read_text())
    del older["token"]
    path.write_text(json.dumps(older))
    assert [e.token for e in checkpointer.load().executors] == [""]
    older["token"] = 7
    path.write_text(json.dumps(older))
    state = checkpointer.load(strict=False)  # corrupt: set aside
    assert state.executors == [] and [s.path for s in state.skipped] == [path]


async def test_a_task_log_is_compacted_to_its_live_tasks(
    tmp_path: Path, committer: GroupCommitter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_log, "COMPACT_MIN_BYTES", 4096)
    paths = AgentPaths(tmp_path)
    checkpointer = Checkpointer(paths, committer)
    checkpointer.save_agent(mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value="agent-1")))
    checkpointer.save_framework(mesos_pb2.FrameworkInfo(id=mesos_pb2.FrameworkID(value="fw")))
    sizes = []
    for index in range(200):  # tasks that start and finish, one long-running task among them
        task_id = "long" if index == 3 else f"t{index}"
        checkpointer.save_task("fw", mesos_pb2.TaskInfo(
            task_id=mesos_pb2.TaskID(value=task_id), name="x" * 100), task_id)
        for state in (mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_FINISHED):
            if task_id == "long" and state == mesos_pb2.TASK_FINISHED:
                break
            update = status(state, task_id)
            checkpointer.append("fw", task_id, UpdateRecord(update))
            ticket = checkpointer.append("fw", task_id, AckRecord(update.uuid))
        if task_id != "long":
            ticket = checkpointer.remove_task("fw", task_id)
        await committer.wait(ticket)
        sizes.append(paths.task_log("fw").stat().st_size)
    # Without compaction the log would hold every line ever written (> 100 kB).
    assert max(sizes) <= 4 * 4096 and sizes.index(max(sizes)) < len(sizes) - 1
    [long] = checkpointer.load().tasks
    assert long.task.task_id.value == "long"
    [running, ack] = long.updates  # the newest acknowledged update and its acknowledgement
    assert isinstance(running, UpdateRecord) and running.status.state == mesos_pb2.TASK_RUNNING
    assert ack == AckRecord(running.status.uuid)


def test_appends_after_a_replacement_in_one_batch_add_to_it(tmp_path: Path) -> None:
    log = tmp_path / "tasks.log"
    apply_batch([Append(log, b"old\n"), Replace(log, b"compacted\n"), Append(log, b"new\n")])
    assert tree(tmp_path) == {"tasks.log": b"compacted\nnew\n"}


async def test_stopping_the_syncer_commits_what_was_requested(tmp_path: Path) -> None:
    committer = GroupCommitter()
    first = [committer.replace(tmp_path / f"a{index}", b"a") for index in range(50)]
    syncer = asyncio.create_task(committer.run())
    await asyncio.sleep(0)  # the syncer took the first batch and is writing it
    second = [committer.replace(tmp_path / f"b{index}", b"b") for index in range(50)]
    assert set(first) == {1} and set(second) == {2}
    syncer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await syncer
    assert committer.is_durable(2)
    assert tree(tmp_path) == {
        **{f"a{index}": b"a" for index in range(50)}, **{f"b{index}": b"b" for index in range(50)}
    }


def test_corrupt_checkpoint_is_reported(tmp_path: Path) -> None:
    paths = AgentPaths(tmp_path)
    paths.meta_dir.mkdir()
    paths.agent_file.write_text("{not json")
    with pytest.raises(ValueError, match="corrupt checkpoint"):
        Checkpointer(paths, GroupCommitter()).load()
