"""The task log's lines and its compaction bookkeeping (pure: no files)."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path

import pytest

from mesos_agent import task_log
from mesos_agent.containers import ContainerProcess
from mesos_agent.status_updates import (
    AckRecord,
    ContainerRecord,
    UpdateRecord,
    container_to_json,
)
from mesos_agent.task_log import (
    LiveTasks,
    TaskArrived,
    TaskGone,
    TaskLogRecord,
    decode_line,
    encode_line,
    parse_task_log,
)
from protos import mesos_pb2


def status(task_id: str, state: mesos_pb2.TaskState.ValueType) -> mesos_pb2.TaskStatus:
    return mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value=task_id), state=state, uuid=uuid.uuid4().bytes
    )


def arrived(task_id: str) -> TaskArrived:
    task = mesos_pb2.TaskInfo(task_id=mesos_pb2.TaskID(value=task_id), name="n")
    task.command.value = "sleep 300"
    return TaskArrived(task, task_id)


def replay(data: bytes) -> dict[str, list[TaskLogRecord]]:
    """Each live task's records after replaying a log (as recovery groups them)."""
    tasks: dict[str, list[TaskLogRecord]] = {}
    for task_id, record, _ in parse_task_log(data).records:
        if isinstance(record, TaskArrived):
            tasks[task_id] = [record]
        elif isinstance(record, TaskGone):
            tasks.pop(task_id, None)
        elif task_id in tasks:
            tasks[task_id].append(record)
    return tasks


def test_every_record_round_trips_through_one_line() -> None:
    running = status("t/1", mesos_pb2.TASK_RUNNING)
    container = ContainerProcess("c1", 4242, 1234.5, Path("/sandbox"))
    records: list[TaskLogRecord] = [
        arrived("t/1"), UpdateRecord(running), AckRecord(running.uuid),
        ContainerRecord(container), TaskGone(),
    ]
    for record in records:
        line = encode_line("t/1", record)
        assert line.endswith(b"\n") and line.count(b"\n") == 1
        assert decode_line(line[:-1]) == ("t/1", record)



def test_a_line_is_its_body_as_compact_json() -> None:
    """Formatted directly, a line is still what `json.dumps` makes of its body: same keys,
    order and escaping (ids with quotes, backslashes, controls and non-ASCII included)."""
    task_id = 'tä"\\sk\n\u2028/1'
    task = arrived(task_id).task
    running = status(task_id, mesos_pb2.TASK_RUNNING)
    encoded = base64.b64encode
    cases: list[tuple[TaskLogRecord, dict[str, object]]] = [
        (TaskArrived(task, 'ex"é'), {"info": encoded(task.SerializeToString()).decode(),
                                     "executor": 'ex"é'}),
        (UpdateRecord(running), {"update": encoded(running.SerializeToString()).decode()}),
        (AckRecord(running.uuid), {"ack": running.uuid.hex()}),
        (TaskGone(), {"gone": True}),
    ]
    for container in (ContainerProcess('c"1', 4242, 1765000000.123456, Path("/sand box/é")),
                      ContainerProcess("c2", 1, 0, Path("/s")),
                      ContainerProcess("c3", 1, float("inf"), Path("/s"))):
        cases.append((ContainerRecord(container), {"container": container_to_json(container)}))
    for record, body in cases:
        expected = json.dumps({"task": task_id, **body}, separators=(",", ":")) + "\n"
        assert encode_line(task_id, record) == expected.encode()

def test_a_torn_last_line_is_ignored_and_reported() -> None:
    running = status("t1", mesos_pb2.TASK_RUNNING)
    good = encode_line("t1", arrived("t1")) + encode_line("t1", UpdateRecord(running))
    parsed = parse_task_log(good + encode_line("t1", AckRecord(running.uuid))[:-9])
    assert [(t, r) for t, r, _ in parsed.records] == [
        ("t1", arrived("t1")), ("t1", UpdateRecord(running))]
    assert b"".join(line for _, _, line in parsed.records) == good
    assert parsed.torn_tail and not parsed.corrupt
    assert not parse_task_log(good).torn_tail
    assert parse_task_log(b"") == task_log.ParsedTaskLog()


def test_corrupt_lines_are_reported_with_the_task_they_name() -> None:
    first = encode_line("t1", arrived("t1"))
    named = b'{"task":"t2","update":"not base64!"}\n'
    data = first + b"garbage\n" + named + encode_line("t3", arrived("t3"))
    parsed = parse_task_log(data)
    assert [t for t, _, _ in parsed.records] == ["t1", "t3"]
    assert [(c.offset, c.task_id) for c in parsed.corrupt] == [
        (len(first), None), (len(first) + 8, "t2")]
    assert all(c.problem for c in parsed.corrupt)


@pytest.mark.parametrize("line", [
    b'{"task":7,"gone":true}', b'{"gone":true}', b'{"task":"t","gone":false}',
    b'{"task":"t","what":1}', b'{"task":"t","ack":"xyz"}', b'[1,2]',
    b'{"task":"t","container":{"pid":1}}', b'{"task":"t","info":"AAAA"}',
])
def test_a_line_that_is_not_a_record_is_an_error(line: bytes) -> None:
    with pytest.raises((ValueError, KeyError, TypeError)):
        decode_line(line)


def feed(live: LiveTasks, task_id: str, record: TaskLogRecord) -> bytes:
    line = encode_line(task_id, record)
    live.record(task_id, record, line)
    return line


def test_compacted_lines_keep_what_recovery_needs() -> None:
    live = LiveTasks()
    written = b""
    starting, running = status("t1", mesos_pb2.TASK_STARTING), status("t1", mesos_pb2.TASK_RUNNING)
    healthy = status("t1", mesos_pb2.TASK_RUNNING)
    container = ContainerRecord(ContainerProcess("c1", 1, 2.0, Path("/s")))
    steps: list[tuple[str, TaskLogRecord]] = [
        ("t1", arrived("t1")), ("t1", UpdateRecord(starting)), ("t1", AckRecord(starting.uuid)),
        ("t1", container), ("t1", UpdateRecord(running)), ("t1", AckRecord(running.uuid)),
        ("t1", UpdateRecord(healthy)),  # not acknowledged yet
        ("t2", arrived("t2")), ("t2", TaskGone()),  # forgotten
        ("t3", UpdateRecord(running)),  # a task never seen: nothing to keep
    ]
    for task_id, record in steps:
        written += feed(live, task_id, record)
    assert live.file_bytes == len(written) and len(live) == 1
    compacted = live.compacted()
    assert len(compacted) == live.live_bytes == live.file_bytes < len(written)
    assert replay(compacted) == {"t1": [
        arrived("t1"), UpdateRecord(running), AckRecord(running.uuid), UpdateRecord(healthy),
        container,
    ]}
    # The full log has the same arrival, container and unacknowledged update, and more.
    full = replay(written)["t1"]
    assert (full[0], full[-1]) == (arrived("t1"), UpdateRecord(healthy)) and container in full
    assert len(full) == 7


def test_a_task_id_used_again_starts_afresh() -> None:
    live = LiveTasks()
    old = status("t1", mesos_pb2.TASK_FINISHED)
    feed(live, "t1", arrived("t1"))
    feed(live, "t1", UpdateRecord(old))
    feed(live, "t1", AckRecord(old.uuid))
    feed(live, "t1", TaskGone())
    assert live.live_bytes == 0
    again = feed(live, "t1", arrived("t1"))
    assert live.live_bytes == len(again)
    assert live.compacted() == again


def test_compaction_is_due_once_the_file_is_many_times_its_live_lines(
    monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_log, "COMPACT_MIN_BYTES", 1000)
    live = LiveTasks()
    feed(live, "kept", arrived("kept"))
    index = 0
    while True:
        before = live.file_bytes
        feed(live, f"t{index // 2}", TaskGone() if index % 2 else arrived(f"t{index // 2}"))
        index += 1
        if live.needs_compaction():
            break
    limit = max(1000, task_log.COMPACT_FACTOR * live.live_bytes)
    assert before <= limit < live.file_bytes  # due exactly when the file crossed the limit
    last = f"t{(index - 1) // 2}"  # crossed on its arrival
    assert replay(live.compacted()) == {"kept": [arrived("kept")], last: [arrived(last)]}
    assert not live.needs_compaction()


def test_the_live_size_follows_every_kind_of_line() -> None:
    """The live size is kept as lines come: after any sequence it is the compacted size."""
    first, second, third = (status("t1", mesos_pb2.TASK_RUNNING) for _ in range(3))
    steps: list[tuple[str, TaskLogRecord]] = [
        ("t1", arrived("t1")), ("t2", arrived("t2")), ("t1", UpdateRecord(first)),
        ("t1", UpdateRecord(second)), ("t1", AckRecord(b"unknown uuid")),
        ("t1", ContainerRecord(ContainerProcess("c1", 1, 2.0, Path("/s")))),
        ("t1", ContainerRecord(ContainerProcess("c1", 12345, 2.5, Path("/sandbox")))),
        ("t1", AckRecord(second.uuid)), ("t1", UpdateRecord(third)), ("t2", TaskGone()),
        ("t1", arrived("t1")),  # the id used again: the task starts afresh
    ]
    for done in range(1, len(steps) + 1):
        live = LiveTasks()
        for task_id, record in steps[:done]:
            feed(live, task_id, record)
        size = live.live_bytes
        assert size == len(live.compacted())
