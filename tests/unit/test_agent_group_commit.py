"""Group commit core: tickets and batches, and the status update sender gated on durability.

The syncer runs with a fake `apply` (no file I/O) that the tests hold and release, so each test
decides when a batch "reaches the disk" or fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import threading
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import astuple
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_agent.group_commit import (
    Append,
    CommitQueue,
    DurabilityError,
    FileOp,
    GroupCommitter,
    OutOfSpace,
    Remove,
    apply_batch,
    coalesce,
)
from mesos_agent.status_updates import StatusUpdateManager
from mesos_runtime.clock import FakeClock
from protos import mesos_pb2

FW = "fw-1"
LOG = Path("/meta/updates.log")


def status(task: str, state: mesos_pb2.TaskState.ValueType) -> mesos_pb2.TaskStatus:
    return mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value=task), state=state, uuid=uuid.uuid4().bytes
    )


def sent(manager: StatusUpdateManager) -> list[tuple[str, str]]:
    return [(p.status.task_id.value, mesos_pb2.TaskState.Name(p.status.state))
            for p in manager.due()]


# ------------------------------------------------------------------ CommitQueue


def test_operations_share_the_ticket_of_the_batch_being_collected() -> None:
    queue = CommitQueue()
    assert queue.last_ticket == 0 and queue.is_durable(0)
    assert [queue.add(Remove(LOG)) for _ in range(3)] == [1, 1, 1]
    assert queue.take() == (1, [Remove(LOG)] * 3)
    assert queue.last_ticket == 1  # nothing new: the batch in flight covers everything
    assert queue.add(Append(LOG, b"x")) == 2
    assert queue.take() is None  # one batch in flight at a time
    assert not queue.is_durable(1)
    queue.synced(1)
    assert queue.is_durable(1) and not queue.is_durable(2)
    assert queue.take() == (2, [Append(LOG, b"x")])
    assert queue.take() is None


def test_a_full_batch_is_closed_and_later_operations_get_the_next_ticket() -> None:
    queue = CommitQueue(max_batch=2)
    tickets = []
    for _ in range(5):
        expected = queue.next_ticket
        tickets.append(queue.add(Remove(LOG)))
        assert tickets[-1] == expected
    assert tickets == [1, 1, 2, 2, 3]
    assert queue.last_ticket == 3
    assert queue.take() == (1, [Remove(LOG)] * 2)
    queue.synced(1)
    assert queue.take() == (2, [Remove(LOG)] * 2)
    assert queue.add(Remove(LOG)) == 3  # batch 3 is still collecting
    queue.synced(2)
    assert queue.take() == (3, [Remove(LOG)] * 2)
    assert queue.take() is None


def test_callbacks_run_when_their_batch_is_durable_in_order() -> None:
    queue = CommitQueue()
    calls: list[str] = []
    queue.add(Remove(LOG))
    queue.when_durable(1, lambda: calls.append("first"))
    assert queue.take() is not None
    queue.add(Remove(LOG))
    queue.when_durable(2, lambda: calls.append("later batch"))
    queue.when_durable(1, lambda: calls.append("second"))
    assert calls == []
    for callback in queue.synced(1):
        callback()
    assert calls == ["first", "second"]
    queue.when_durable(1, lambda: calls.append("already durable"))
    assert calls == ["first", "second", "already durable"]


def test_a_failed_batch_is_never_durable_and_nothing_more_is_accepted() -> None:
    queue = CommitQueue()
    calls: list[str] = []
    queue.add(Remove(LOG))
    queue.when_durable(1, lambda: calls.append("durable"))
    assert queue.take() is not None
    queue.add(Remove(LOG))
    error = DurabilityError("fsync failed")
    queue.failed(1, error)
    assert queue.error is error and not queue.is_durable(1)
    assert queue.take() is None
    with pytest.raises(DurabilityError):
        queue.add(Remove(LOG))
    queue.when_durable(2, lambda: calls.append("durable"))
    assert calls == []
    with pytest.raises(ValueError, match="not in flight"):
        queue.synced(1)


A, B = Path("/meta/a.log"), Path("/meta/b.log")
appends = st.builds(Append, st.sampled_from([A, B]), st.binary(max_size=8), st.booleans())
file_ops = st.lists(st.one_of(appends, st.builds(Remove, st.sampled_from([A, B]))), max_size=30)


@given(file_ops)
def test_coalesced_appends_write_the_same_bytes_in_the_same_order(ops: list[FileOp]) -> None:
    merged = coalesce(ops)
    assert len(merged) <= len(ops)
    for before, after in itertools.pairwise(merged):  # no run left unmerged
        assert not (isinstance(before, Append) and isinstance(after, Append)
                    and before.path == after.path)

    def effect(operations: list[FileOp]) -> list[tuple[str, Path, bytes]]:
        """What reaches each file between removals, and which bytes must be fsynced: the
        same bytes appended, in the same order, synced at least where they were."""
        out: list[tuple[str, Path, bytes]] = []
        for op in operations:
            if isinstance(op, Append):
                out.extend(("synced" if op.sync else "written", op.path, bytes([b]))
                           for b in op.data)
            else:
                out.append(("removed", op.path, b""))
        return out

    original, result = effect(ops), effect(merged)
    assert [(path, data) for _, path, data in original] == [
        (path, data) for _, path, data in result]
    assert all(kind == "synced" or was != "synced"
               for (was, _, _), (kind, _, _) in zip(original, result, strict=True))


@settings(max_examples=50, deadline=None)
@given(file_ops)
def test_an_applied_batch_leaves_the_files_as_its_operations_in_order(
    tmp_path_factory: pytest.TempPathFactory, ops: list[FileOp],
) -> None:
    root = tmp_path_factory.mktemp("batch")
    on_disk = [type(op)(root / op.path.name, *astuple(op)[1:]) for op in ops]
    expected: dict[Path, bytes] = {}
    for op in on_disk:
        if isinstance(op, Append):
            expected[op.path] = expected.get(op.path, b"") + op.data
        else:
            expected.pop(op.path, None)
    apply_batch(on_disk, syncfs=None)
    assert {path: path.read_bytes() for path in (root / A.name, root / B.name)
            if path.exists()} == expected


# ------------------------------------------------------------------ the manager's gate


def test_an_update_is_not_sent_before_its_batch_is_durable() -> None:
    manager = StatusUpdateManager(FakeClock())
    starting, running = status("t1", mesos_pb2.TASK_STARTING), status("t1", mesos_pb2.TASK_RUNNING)
    manager.update(FW, starting, ticket=1)
    manager.update(FW, status("t2", mesos_pb2.TASK_STARTING), ticket=2)
    manager.update(FW, running, ticket=2)
    assert sent(manager) == []
    assert manager.next_retry_at() is None  # nothing to retry: the sender sleeps until synced

    manager.synced(1)
    assert sent(manager) == [("t1", "TASK_STARTING")]  # t2's batch is still not durable
    manager.acknowledge(FW, "t1", starting.uuid)
    assert sent(manager) == []  # RUNNING waits for batch 2, behind nothing but its own batch

    manager.synced(2)
    assert sorted(sent(manager)) == [("t1", "TASK_RUNNING"), ("t2", "TASK_STARTING")]


def test_updates_stay_held_until_their_own_batch_is_durable() -> None:
    manager = StatusUpdateManager(FakeClock())
    starting, running = status("t1", mesos_pb2.TASK_STARTING), status("t1", mesos_pb2.TASK_RUNNING)
    manager.update(FW, starting, ticket=3)
    manager.update(FW, running, ticket=3)
    manager.synced(2)
    assert sent(manager) == []
    manager.synced(3)
    assert sent(manager) == [("t1", "TASK_STARTING")]  # only the head is in flight
    manager.acknowledge(FW, "t1", starting.uuid)
    assert sent(manager) == [("t1", "TASK_RUNNING")]


# ------------------------------------------------------------------ the syncer


class HeldDisk:
    """A fake `apply` that records batches and blocks each until released (or failed)."""

    def __init__(self) -> None:
        self.batches: list[list[FileOp]] = []
        self.started = threading.Semaphore(0)
        self._release = threading.Semaphore(0)
        self.fail_next = False

    def __call__(self, ops: Sequence[FileOp]) -> None:
        self.batches.append(list(ops))
        self.started.release()
        self._release.acquire()
        if self.fail_next:
            raise OSError(5, "Input/output error (fsync)")

    async def wait_started(self) -> None:
        assert await asyncio.to_thread(self.started.acquire, True, 5.0), "no batch started"

    def release(self) -> None:
        self._release.release()


class Sender:
    """The agent's wiring: durable batches release updates; `forward` takes what is due."""

    def __init__(self) -> None:
        self.manager = StatusUpdateManager(FakeClock())
        self.disk = HeldDisk()
        self.durable: list[int] = []
        self.committer = GroupCommitter(apply=self.disk, on_durable=self._synced)

    def _synced(self, ticket: int) -> None:
        self.durable.append(ticket)
        self.manager.synced(ticket)

    def accept(self, update: mesos_pb2.TaskStatus) -> int:
        ticket = self.committer.next_ticket
        self.manager.update(FW, update, ticket)
        assert self.committer.append(LOG, update.SerializeToString()) == ticket
        return ticket


@pytest.fixture
async def sender() -> AsyncIterator[tuple[Sender, asyncio.Task[None]]]:
    wiring = Sender()
    syncer = asyncio.create_task(wiring.committer.run())
    try:
        yield wiring, syncer
    finally:
        syncer.cancel()
        for _ in range(5):
            wiring.disk.release()  # let a held batch end so that cancellation completes
        with contextlib.suppress(asyncio.CancelledError, DurabilityError):
            await syncer


async def test_the_sender_forwards_an_update_only_after_its_batch_synced(
    sender: tuple[Sender, asyncio.Task[None]],
) -> None:
    wiring, _ = sender
    first = wiring.accept(status("t1", mesos_pb2.TASK_STARTING))
    await wiring.disk.wait_started()  # batch 1 is being written
    second = wiring.accept(status("t2", mesos_pb2.TASK_STARTING))
    third = wiring.accept(status("t3", mesos_pb2.TASK_STARTING))
    assert (first, second, third) == (1, 2, 2)
    assert sent(wiring.manager) == []

    waiting = asyncio.create_task(wiring.committer.wait(first))
    wiring.disk.release()
    await waiting
    assert wiring.durable == [1]
    assert sent(wiring.manager) == [("t1", "TASK_STARTING")]

    await wiring.disk.wait_started()  # batch 2 took both later updates at once
    assert [len(batch) for batch in wiring.disk.batches] == [1, 2]
    assert sent(wiring.manager) == []
    wiring.disk.release()
    await wiring.committer.wait(second)
    assert sorted(sent(wiring.manager)) == [("t2", "TASK_STARTING"), ("t3", "TASK_STARTING")]


async def test_stopping_commits_what_was_requested_first() -> None:
    disk, durable = HeldDisk(), []
    committer = GroupCommitter(apply=disk, on_durable=durable.append)
    syncer = asyncio.create_task(committer.run())
    first = committer.append(LOG, b"first")
    await disk.wait_started()  # batch 1 is being written
    second = committer.append(LOG, b"second")  # batch 2 waits for batch 1's report
    syncer.cancel()
    disk.release()
    disk.release()
    with pytest.raises(asyncio.CancelledError):
        await syncer
    assert (first, second) == (1, 2) and durable == [1, 2]
    assert disk.batches == [[Append(LOG, b"first")], [Append(LOG, b"second")]]
    assert committer.is_durable(second)


async def test_a_failed_fsync_surfaces_as_an_error_and_nothing_is_sent(
    sender: tuple[Sender, asyncio.Task[None]],
) -> None:
    wiring, syncer = sender
    ticket = wiring.accept(status("t1", mesos_pb2.TASK_RUNNING))
    waiting = asyncio.create_task(wiring.committer.wait(ticket))
    acknowledged: list[int] = []
    wiring.committer.when_durable(ticket, lambda: acknowledged.append(ticket))
    await wiring.disk.wait_started()
    wiring.disk.fail_next = True
    wiring.disk.release()

    with pytest.raises(DurabilityError, match=r"could not be made durable: .*Input/output"):
        await syncer
    with pytest.raises(DurabilityError):
        await waiting
    with pytest.raises(DurabilityError):
        await wiring.committer.wait(ticket)
    assert wiring.durable == [] and acknowledged == []
    assert not wiring.committer.is_durable(ticket)
    assert sent(wiring.manager) == []
    with pytest.raises(DurabilityError):
        wiring.accept(status("t2", mesos_pb2.TASK_RUNNING))


class FullDisk:
    """A fake `apply` that raises OutOfSpace (as `apply_batch` does, having undone the batch)
    until `space` is set; records every attempt."""

    def __init__(self) -> None:
        self.attempts: list[list[FileOp]] = []
        self.space = threading.Event()

    def __call__(self, ops: Sequence[FileOp]) -> None:
        self.attempts.append(list(ops))
        if not self.space.is_set():
            raise OutOfSpace(errno.ENOSPC, "No space left on device (writing /meta/x)")


async def attempted(disk: FullDisk, count: int) -> None:
    async with asyncio.timeout(10):
        while len(disk.attempts) < count:  # noqa: ASYNC110 (the fake disk is polled)
            await asyncio.sleep(0.005)


async def test_a_batch_that_does_not_fit_is_tried_again_and_later_ones_wait_behind_it() -> None:
    disk, durable = FullDisk(), []
    committer = GroupCommitter(apply=disk, on_durable=durable.append, retry_interval=0.001,
                               max_retry_interval=0.002)
    syncer = asyncio.create_task(committer.run())
    try:
        first = committer.append(LOG, b"first")
        waiting = asyncio.create_task(committer.wait(first))
        await attempted(disk, 3)
        second = committer.append(LOG, b"second")
        assert (first, second) == (1, 2)
        assert not waiting.done() and durable == [] and not committer.is_durable(first)
        assert committer.out_of_space is not None

        disk.space.set()
        await waiting
        await committer.wait(second)
        assert durable == [1, 2] and committer.out_of_space is None
        assert all(attempt == [Append(LOG, b"first")] for attempt in disk.attempts[:-1])
        assert disk.attempts[-1] == [Append(LOG, b"second")]
        assert not syncer.done()
    finally:
        syncer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await syncer


async def test_stopping_while_out_of_space_fails_the_waiters_but_not_the_syncer() -> None:
    disk = FullDisk()
    committer = GroupCommitter(apply=disk, retry_interval=0.001, max_retry_interval=0.002)
    syncer = asyncio.create_task(committer.run())
    waiting = asyncio.create_task(committer.wait(committer.append(LOG, b"first")))
    await attempted(disk, 2)
    syncer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await syncer
    with pytest.raises(DurabilityError, match="No space left"):
        await waiting
