"""The task log: one append-only file per framework that checkpoints all its tasks on an agent.

Each line is a JSON record naming its task; in order of a task's life::

    {"task": ID, "info": B64, "executor": ID}   the task arrived (TaskInfo, binary in base64)
    {"task": ID, "update": B64}                 a status update (TaskStatus)
    {"task": ID, "ack": HEX}                    the acknowledgement of the update with that uuid
    {"task": ID, "container": {...}}            its command container, once forked
    {"task": ID, "gone": true}                  forgotten (terminal update acknowledged)

One file instead of a directory with two files per task: on a file system without a journal
the inode allocator scans past every recently freed inode, so each inode created and deleted
per task makes the next launches slower (docs/benchmarks.md, "Task launch").

`LiveTasks` is the pure bookkeeping of compaction: it keeps, per live task, the lines a
recovery needs (the arrival, the newest container, the newest acknowledged update with its
acknowledgement, the updates not yet acknowledged) and says when the file has grown to many
times that, so that the checkpointer replaces it by those lines alone. `parse_task_log` reads
a log back; a torn last line (a crash in the middle of an append) is ignored, a corrupt
complete line is reported with its offset, never raised.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError

from mesos_agent.containers import ContainerProcess
from mesos_agent.status_updates import (
    AckRecord,
    ContainerRecord,
    LogRecord,
    UpdateRecord,
    container_from_json,
)
from protos import mesos_pb2

# Compact when the file holds more than this many times the live lines, and at least this much.
COMPACT_FACTOR = 4
COMPACT_MIN_BYTES = 1 << 20


@dataclass(frozen=True, slots=True)
class TaskArrived:
    """The task as it arrived, and the executor that runs it (its own id for command tasks)."""

    task: mesos_pb2.TaskInfo
    executor_id: str


@dataclass(frozen=True, slots=True)
class TaskGone:
    """The agent forgot the task (its terminal update was acknowledged)."""


TaskLogRecord = TaskArrived | TaskGone | LogRecord


def encode_line(task_id: str, record: TaskLogRecord) -> bytes:
    """One line of the log (with its newline): what `json.dumps` of its body (compact
    separators) gives, byte for byte, formatted directly. Up to six lines per task: `dumps`
    with non-default separators builds a new encoder on every call, most of a line's cost."""
    task = _json_string(task_id)
    if isinstance(record, UpdateRecord):
        body = f'"update":"{_base64(record.status.SerializeToString())}"'
    elif isinstance(record, AckRecord):
        body = f'"ack":"{record.uuid.hex()}"'
    elif isinstance(record, ContainerRecord):
        body = '"container":' + _container_json(record.container)
    elif isinstance(record, TaskArrived):
        info = _base64(record.task.SerializeToString())
        body = f'"info":"{info}","executor":{_json_string(record.executor_id)}'
    else:
        body = '"gone":true'
    return f'{{"task":{task},{body}}}\n'.encode()


_COMPACT = json.JSONEncoder(separators=(",", ":"))
_json_string = _COMPACT.encode  # a str alone: quoted and escaped as inside a body


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _container_json(container: ContainerProcess) -> str:
    """`container_to_json(container)` as compact JSON (the same keys, in the same order)."""
    start_time = container.start_time
    started = repr(start_time) if math.isfinite(start_time) else _COMPACT.encode(start_time)
    return (f'{{"container_id":{_json_string(container.container_id)},"pid":{container.pid:d},'
            f'"start_time":{started},"sandbox":{_json_string(str(container.sandbox))}}}')


def decode_line(line: bytes) -> tuple[str, TaskLogRecord]:
    """The task id and record of one line (without its newline).

    Raises ValueError, KeyError or TypeError when the line is not a record."""
    try:
        return _decode(json.loads(line))
    except DecodeError as exc:
        raise ValueError(f"undecodable protobuf: {exc}") from exc


def _decode(body: Any) -> tuple[str, TaskLogRecord]:
    task_id = body["task"]
    if not isinstance(task_id, str):
        raise TypeError(f"task id {task_id!r} is not a string")
    record: TaskLogRecord
    if "update" in body:
        status = mesos_pb2.TaskStatus()
        status.ParseFromString(base64.b64decode(body["update"], validate=True))
        record = UpdateRecord(status)
    elif "ack" in body:
        record = AckRecord(bytes.fromhex(body["ack"]))
    elif "container" in body:
        record = ContainerRecord(container_from_json(body["container"]))
    elif "info" in body:
        task = mesos_pb2.TaskInfo()
        task.ParseFromString(base64.b64decode(body["info"], validate=True))
        record = TaskArrived(task, str(body["executor"]))
    elif body.get("gone") is True:
        record = TaskGone()
    else:
        raise ValueError(f"unknown record {sorted(body)}")
    return task_id, record


@dataclass(frozen=True, slots=True)
class CorruptLine:
    """A complete line that is not a record: where it starts, why, and the task it names
    (None when even that cannot be read)."""

    offset: int
    problem: str
    task_id: str | None


@dataclass(slots=True)
class ParsedTaskLog:
    """A task log read back: its records in order, and what could not be read."""

    records: list[tuple[str, TaskLogRecord, bytes]] = field(default_factory=list)
    corrupt: list[CorruptLine] = field(default_factory=list)
    torn_tail: bool = False


def parse_task_log(data: bytes) -> ParsedTaskLog:
    """Every record of a log (each with its line), its corrupt lines, and whether its last
    line is torn (no newline: ignored)."""
    parsed = ParsedTaskLog()
    for offset, line in _lines(data):
        if offset + len(line) == len(data):
            parsed.torn_tail = bool(line)
            break
        try:
            task_id, record = decode_line(line)
        except (ValueError, KeyError, TypeError) as exc:
            parsed.corrupt.append(CorruptLine(offset, describe_error(exc), _task_named(line)))
            continue
        parsed.records.append((task_id, record, line + b"\n"))
    return parsed


def _lines(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(offset, line without newline); the last one is what follows the last newline."""
    start = 0
    while (end := data.find(b"\n", start)) != -1:
        yield start, data[start:end]
        start = end + 1
    yield start, data[start:]


def describe_error(exc: BaseException) -> str:
    """One line saying what is wrong with a record or checkpoint (a KeyError names its key)."""
    lines = str(exc).splitlines()
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text}" if isinstance(exc, KeyError) or not text else text


def _task_named(line: bytes) -> str | None:
    try:
        task_id = json.loads(line).get("task")
    except (ValueError, AttributeError):
        return None
    return task_id if isinstance(task_id, str) else None


@dataclass(slots=True)
class _LiveTask:
    arrived: bytes
    container: bytes = b""
    acked: bytes = b""  # the newest acknowledged update's line and its acknowledgement's
    pending: list[tuple[bytes, bytes]] = field(default_factory=list)  # (uuid, line)
    size: int = 0
    """The length of `lines()`, kept as lines come (not summed again for each)."""

    def lines(self) -> bytes:
        return self.arrived + self.acked + b"".join(line for _, line in self.pending) + (
            self.container)


class LiveTasks:
    """What a compacted task log keeps of each live task, and how large the file has grown.

    `record` every line as it is appended; `needs_compaction` says when the file is due to be
    replaced by `compacted()`. Replaying the compacted lines gives each task's arrival, its
    container, its newest acknowledged update and its unacknowledged ones in order, which is
    all a recovery uses.
    """

    def __init__(self) -> None:
        self._tasks: dict[str, _LiveTask] = {}
        self.file_bytes = 0
        self.live_bytes = 0

    def __len__(self) -> int:
        return len(self._tasks)

    def record(self, task_id: str, record: TaskLogRecord, line: bytes) -> None:
        """Account for `line`, which records `record` of task `task_id`."""
        self.file_bytes += len(line)
        task = self._tasks.get(task_id)
        if isinstance(record, TaskArrived):
            if task is not None:
                self.live_bytes -= task.size
            self._tasks[task_id] = _LiveTask(line, size=len(line))
            self.live_bytes += len(line)
            return
        if task is None:
            return  # a record of a task not (or no longer) known: nothing to keep
        before = task.size
        if isinstance(record, TaskGone):
            del self._tasks[task_id]
            self.live_bytes -= before
            return
        if isinstance(record, ContainerRecord):
            task.size += len(line) - len(task.container)
            task.container = line
        elif isinstance(record, UpdateRecord):
            task.pending.append((record.status.uuid, line))
            task.size += len(line)
        else:
            index = next((i for i, (uuid, _) in enumerate(task.pending) if uuid == record.uuid),
                         None)
            if index is None:
                return
            dropped = sum(len(pending) for _, pending in task.pending[: index + 1])
            acked = task.pending[index][1] + line
            task.size += len(acked) - len(task.acked) - dropped
            task.acked = acked
            del task.pending[: index + 1]
        self.live_bytes += task.size - before

    def needs_compaction(self) -> bool:
        return self.file_bytes > max(COMPACT_MIN_BYTES, COMPACT_FACTOR * self.live_bytes)

    def compacted(self) -> bytes:
        """The live lines alone; from now on the file is counted as holding just them."""
        data = b"".join(task.lines() for task in self._tasks.values())
        self.file_bytes = len(data)
        return data
