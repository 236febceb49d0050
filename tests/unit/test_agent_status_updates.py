"""The status update manager core: ordering, retries on a fake clock, duplicates, acks, recovery."""

from __future__ import annotations

import uuid

import pytest

from mesos_agent.status_updates import (
    AckRecord,
    AckResult,
    AddResult,
    LogRecord,
    StatusUpdateManager,
    UpdateRecord,
)
from mesos_runtime.clock import FakeClock
from protos import mesos_pb2

FW = "fw-1"


def status(task: str, state: mesos_pb2.TaskState.ValueType) -> mesos_pb2.TaskStatus:
    return mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value=task), state=state, uuid=uuid.uuid4().bytes
    )


def sent_states(manager: StatusUpdateManager) -> list[tuple[str, int]]:
    return [(p.status.task_id.value, p.status.state) for p in manager.due()]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def manager(clock: FakeClock) -> StatusUpdateManager:
    return StatusUpdateManager(clock, initial_backoff=1.0, max_backoff=10.0)


def test_only_the_oldest_unacknowledged_update_of_a_task_is_in_flight(
    manager: StatusUpdateManager,
) -> None:
    running, finished = status("t1", mesos_pb2.TASK_RUNNING), status("t1", mesos_pb2.TASK_FINISHED)
    assert manager.update(FW, running) is AddResult.ACCEPTED
    assert manager.update(FW, finished) is AddResult.ACCEPTED

    assert sent_states(manager) == [("t1", mesos_pb2.TASK_RUNNING)]
    assert sent_states(manager) == []  # in flight, retry not due yet

    assert manager.acknowledge(FW, "t1", running.uuid) is AckResult.ACKNOWLEDGED
    assert sent_states(manager) == [("t1", mesos_pb2.TASK_FINISHED)]


def test_streams_of_different_tasks_are_independent(manager: StatusUpdateManager) -> None:
    manager.update(FW, status("a", mesos_pb2.TASK_RUNNING))
    manager.update(FW, status("b", mesos_pb2.TASK_RUNNING))
    assert sorted(sent_states(manager)) == [("a", 1), ("b", 1)]


def test_retries_back_off_exponentially_up_to_the_cap(
    manager: StatusUpdateManager, clock: FakeClock
) -> None:
    manager.update(FW, status("t1", mesos_pb2.TASK_RUNNING))
    start = clock.now()
    assert len(manager.due()) == 1
    resend_times = []
    while clock.now() - start < 60:
        clock.advance(0.25)
        if manager.due():
            resend_times.append(clock.now() - start)
    gaps = [b - a for a, b in zip([0.0, *resend_times], resend_times, strict=False)]
    # 1, 2, 4, 8, then capped at 10
    assert gaps[:6] == pytest.approx([1.0, 2.0, 4.0, 8.0, 10.0, 10.0])
    assert manager.next_retry_at() == pytest.approx(start + resend_times[-1] + 10.0)


def test_resend_all_after_reconnect_restarts_the_backoff(
    manager: StatusUpdateManager, clock: FakeClock
) -> None:
    manager.update(FW, status("t1", mesos_pb2.TASK_RUNNING))
    manager.due()
    clock.advance(1.0)
    manager.due()  # backoff now 2 s
    assert [p.status.task_id.value for p in manager.resend_all()] == ["t1"]
    assert manager.next_retry_at() == pytest.approx(clock.now() + 1.0)


def test_duplicate_uuid_is_dropped(manager: StatusUpdateManager) -> None:
    running = status("t1", mesos_pb2.TASK_RUNNING)
    assert manager.update(FW, running) is AddResult.ACCEPTED
    again = mesos_pb2.TaskStatus()
    again.CopyFrom(running)
    assert manager.update(FW, again) is AddResult.DUPLICATE
    assert manager.unacknowledged(FW, "t1") == [running]


def test_updates_after_a_terminal_one_are_dropped(manager: StatusUpdateManager) -> None:
    manager.update(FW, status("t1", mesos_pb2.TASK_FINISHED))
    assert manager.update(FW, status("t1", mesos_pb2.TASK_KILLED)) is AddResult.AFTER_TERMINAL


def test_unknown_acknowledgements_are_ignored(manager: StatusUpdateManager) -> None:
    running, finished = status("t1", mesos_pb2.TASK_RUNNING), status("t1", mesos_pb2.TASK_FINISHED)
    manager.update(FW, running)
    manager.update(FW, finished)
    manager.due()
    assert manager.acknowledge(FW, "t1", b"nope") is AckResult.UNKNOWN
    assert manager.acknowledge(FW, "t1", finished.uuid) is AckResult.UNKNOWN  # not in flight
    assert manager.acknowledge(FW, "other", running.uuid) is AckResult.UNKNOWN
    assert manager.unacknowledged(FW, "t1") == [running, finished]


def test_acknowledging_the_terminal_update_finishes_the_stream(
    manager: StatusUpdateManager,
) -> None:
    running, finished = status("t1", mesos_pb2.TASK_RUNNING), status("t1", mesos_pb2.TASK_FINISHED)
    manager.update(FW, running)
    manager.update(FW, finished)
    assert manager.acknowledge(FW, "t1", running.uuid) is AckResult.ACKNOWLEDGED
    assert manager.acknowledge(FW, "t1", finished.uuid) is AckResult.STREAM_FINISHED
    assert not manager.has_stream(FW, "t1")
    assert manager.next_retry_at() is None


def test_update_without_uuid_is_rejected(manager: StatusUpdateManager) -> None:
    with pytest.raises(ValueError, match="uuid"):
        manager.update(FW, mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value="t")))


def test_recovery_replays_updates_and_acks(manager: StatusUpdateManager) -> None:
    running, finished = status("t1", mesos_pb2.TASK_RUNNING), status("t1", mesos_pb2.TASK_FINISHED)
    records: list[LogRecord] = [
        UpdateRecord(running), UpdateRecord(finished), AckRecord(running.uuid)
    ]
    assert manager.recover(FW, "t1", records) is True
    assert manager.unacknowledged(FW, "t1") == [finished]
    assert manager.latest(FW, "t1") == finished
    assert sent_states(manager) == [("t1", mesos_pb2.TASK_FINISHED)]


def test_recovery_of_a_finished_stream_leaves_nothing(manager: StatusUpdateManager) -> None:
    finished = status("t1", mesos_pb2.TASK_FINISHED)
    assert manager.recover(FW, "t1", [UpdateRecord(finished), AckRecord(finished.uuid)]) is False


def test_each_stream_retries_on_its_own_schedule(
    manager: StatusUpdateManager, clock: FakeClock
) -> None:
    start = clock.now()
    a, b, c = (status(task, mesos_pb2.TASK_RUNNING) for task in "abc")
    manager.update(FW, a)
    assert sent_states(manager) == [("a", mesos_pb2.TASK_RUNNING)]  # retry at start + 1
    clock.advance(0.5)
    manager.update(FW, b)
    manager.update(FW, c)
    assert sorted(sent_states(manager)) == [("b", 1), ("c", 1)]  # retries at start + 1.5
    assert manager.acknowledge(FW, "c", c.uuid) is AckResult.ACKNOWLEDGED  # c: nothing left
    assert manager.next_retry_at() == pytest.approx(start + 1.0)

    clock.advance(0.5)
    assert sent_states(manager) == [("a", mesos_pb2.TASK_RUNNING)]  # next retry: 2 s later
    manager.forget(FW, "b")
    assert manager.next_retry_at() == pytest.approx(start + 3.0)  # b and c no longer count
    clock.advance(1.0)
    assert sent_states(manager) == []
