"""Reliable status updates (DESIGN decision 7): persisted first, retried until acknowledged.

Flow for one task (one *stream* per framework id + task id)::

    executor/agent --update--> StatusUpdateManager.update()   (drops duplicate uuids)
                               StatusUpdateLog.append()        (fsync) ... then
    master <--send-- due() / resend_all()    (only the oldest unacked update is in flight)
    master --ack(uuid)--> acknowledge()  -> next update of the stream goes out
                                          -> terminal update acked: the stream is finished

`StatusUpdateManager` is the pure core: no I/O, time from an injected clock. `StatusUpdateLog`
is the durable per-task log (JSON lines; updates are fsynced, acknowledgements are not);
`parse_log` is its pure reader, which ignores a torn last line left by a crash in the middle of
an append.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import json
import os
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from mesos_common.clock import Clock
from mesos_common.task_states import TERMINAL_STATES
from protos import mesos_pb2


def is_terminal(state: mesos_pb2.TaskState.ValueType) -> bool:
    """Whether a task in `state` will never change state again."""
    return state in TERMINAL_STATES


StreamKey = tuple[str, str]
"""(framework id, task id)."""


@dataclass(frozen=True, slots=True)
class PendingUpdate:
    """An update to send to the master."""

    framework_id: str
    status: mesos_pb2.TaskStatus


class AddResult(Enum):
    """What `StatusUpdateManager.update` did with an update."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    AFTER_TERMINAL = "after_terminal"


class AckResult(Enum):
    """What `StatusUpdateManager.acknowledge` did with an acknowledgement."""

    ACKNOWLEDGED = "acknowledged"
    STREAM_FINISHED = "stream_finished"  # the terminal update was acknowledged
    UNKNOWN = "unknown"


@dataclass(slots=True)
class _Stream:
    framework_id: str
    task_id: str
    pending: deque[mesos_pb2.TaskStatus] = field(default_factory=deque)
    seen_uuids: set[bytes] = field(default_factory=set)
    latest: mesos_pb2.TaskStatus | None = None
    terminal_received: bool = False
    next_send_at: float | None = None  # None: the head has not been sent on this connection
    backoff: float = 0.0


class StatusUpdateManager:
    """Per-task ordered streams of unacknowledged updates with retry scheduling."""

    def __init__(
        self, clock: Clock, *, initial_backoff: float = 1.0, max_backoff: float = 10.0
    ) -> None:
        if initial_backoff <= 0 or max_backoff < initial_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        self._clock = clock
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._streams: dict[StreamKey, _Stream] = {}
        # Streams whose head has not been sent on this connection (an ordered set), and a
        # heap of (retry time, sequence, stream) for heads in flight. Heap entries are not
        # removed when a head is acknowledged or rescheduled; `_retry_is_current` skips them.
        # Both keep `due()` and `next_retry_at()` proportional to the work due, not to the
        # number of streams.
        self._unsent: dict[StreamKey, None] = {}
        self._retries: list[tuple[float, int, StreamKey]] = []
        self._sequence = itertools.count()

    def update(self, framework_id: str, status: mesos_pb2.TaskStatus) -> AddResult:
        """Queue `status` (which must carry a uuid) behind the stream's unacknowledged ones."""
        if not status.uuid:
            raise ValueError("a reliable status update needs a uuid")
        key = (framework_id, status.task_id.value)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(framework_id, status.task_id.value)
        if status.uuid in stream.seen_uuids:
            return AddResult.DUPLICATE
        if stream.terminal_received:
            return AddResult.AFTER_TERMINAL
        stream.seen_uuids.add(status.uuid)
        if not stream.pending:
            self._unsent[key] = None
        stream.pending.append(status)
        stream.latest = status
        stream.terminal_received = is_terminal(status.state)
        return AddResult.ACCEPTED

    def acknowledge(self, framework_id: str, task_id: str, uuid: bytes) -> AckResult:
        """Drop the in-flight update with `uuid`; the next one becomes due at once."""
        stream = self._streams.get((framework_id, task_id))
        if stream is None or not stream.pending or stream.pending[0].uuid != uuid:
            return AckResult.UNKNOWN
        acked = stream.pending.popleft()
        stream.next_send_at = None
        stream.backoff = 0.0
        if is_terminal(acked.state):
            del self._streams[(framework_id, task_id)]
            return AckResult.STREAM_FINISHED
        if stream.pending:
            self._unsent[(framework_id, task_id)] = None
        return AckResult.ACKNOWLEDGED

    def due(self) -> list[PendingUpdate]:
        """Heads of streams that were never sent or whose retry time has come.

        Each returned update is considered sent now; its next retry is scheduled with
        exponential backoff (initial, doubled each time, capped at the maximum).
        """
        now = self._clock.now()
        keys = list(self._unsent)
        self._unsent.clear()
        while self._retries and self._retries[0][0] <= now:
            at, _, key = heapq.heappop(self._retries)
            if self._retry_is_current(at, key):
                keys.append(key)
        out: list[PendingUpdate] = []
        for key in keys:
            stream = self._streams.get(key)
            if stream is None or not stream.pending:
                continue
            stream.backoff = (
                self._initial_backoff
                if stream.next_send_at is None
                else min(stream.backoff * 2, self._max_backoff)
            )
            stream.next_send_at = now + stream.backoff
            heapq.heappush(self._retries, (stream.next_send_at, next(self._sequence), key))
            out.append(PendingUpdate(stream.framework_id, stream.pending[0]))
        return out

    def resend_all(self) -> list[PendingUpdate]:
        """After a (re)connect: every in-flight update goes out again, backoff restarted."""
        self._retries.clear()
        for key, stream in self._streams.items():
            stream.next_send_at = None
            if stream.pending:
                self._unsent[key] = None
        return self.due()

    def next_retry_at(self) -> float | None:
        """When `due()` will next have something to send (None: nothing pending)."""
        if any(self._streams.get(key) for key in self._unsent):
            return self._clock.now()
        while self._retries:
            at, _, key = self._retries[0]
            if self._retry_is_current(at, key):
                return at
            heapq.heappop(self._retries)
        return None

    def _retry_is_current(self, at: float, key: StreamKey) -> bool:
        stream = self._streams.get(key)
        return stream is not None and bool(stream.pending) and stream.next_send_at == at

    def latest(self, framework_id: str, task_id: str) -> mesos_pb2.TaskStatus | None:
        """The newest update received for the task, acknowledged or not."""
        stream = self._streams.get((framework_id, task_id))
        return None if stream is None else stream.latest

    def unacknowledged(self, framework_id: str, task_id: str) -> list[mesos_pb2.TaskStatus]:
        """The task's updates not yet acknowledged, oldest first."""
        stream = self._streams.get((framework_id, task_id))
        return [] if stream is None else list(stream.pending)

    def has_stream(self, framework_id: str, task_id: str) -> bool:
        return (framework_id, task_id) in self._streams

    def streams(self) -> list[StreamKey]:
        return list(self._streams)

    def forget(self, framework_id: str, task_id: str) -> None:
        """Drop a stream without acknowledgement (its framework was shut down)."""
        self._streams.pop((framework_id, task_id), None)
        self._unsent.pop((framework_id, task_id), None)

    def recover(self, framework_id: str, task_id: str, records: Iterable[LogRecord]) -> bool:
        """Rebuild a stream from its log; returns False when the stream is already finished."""
        for record in records:
            if isinstance(record, UpdateRecord):
                self.update(framework_id, record.status)
            else:
                self.acknowledge(framework_id, task_id, record.uuid)
        return self.has_stream(framework_id, task_id)


@dataclass(frozen=True, slots=True)
class UpdateRecord:
    """A logged status update."""

    status: mesos_pb2.TaskStatus


@dataclass(frozen=True, slots=True)
class AckRecord:
    """A logged acknowledgement."""

    uuid: bytes


LogRecord = UpdateRecord | AckRecord


def encode_record(record: LogRecord) -> bytes:
    """One log line (with its newline)."""
    if isinstance(record, UpdateRecord):
        body = {"update": base64.b64encode(record.status.SerializeToString()).decode()}
    else:
        body = {"ack": record.uuid.hex()}
    return (json.dumps(body, separators=(",", ":")) + "\n").encode()


def parse_log(data: bytes) -> tuple[list[LogRecord], int]:
    """Parse a log; returns its records and the length of its valid prefix.

    A last line without its newline is a torn append and is ignored; a malformed complete
    line means the log is corrupt and raises ValueError.
    """
    records: list[LogRecord] = []
    valid = 0
    for line in _complete_lines(data):
        try:
            body = json.loads(line)
            if "update" in body:
                status = mesos_pb2.TaskStatus()
                status.ParseFromString(base64.b64decode(body["update"], validate=True))
                records.append(UpdateRecord(status))
            else:
                records.append(AckRecord(bytes.fromhex(body["ack"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"corrupt status update log at byte {valid}: {exc}") from exc
        valid += len(line) + 1
    return records, valid


def _complete_lines(data: bytes) -> Iterator[bytes]:
    start = 0
    while (end := data.find(b"\n", start)) != -1:
        yield data[start:end]
        start = end + 1


class StatusUpdateLog:
    """The durable, append-only update log of one task."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, record: LogRecord) -> None:
        """Append one record; an update is fsynced before this returns.

        An acknowledgement is not: if a crash loses it, its update is sent once more after
        recovery, which at-least-once delivery allows (and the next update's fsync makes it
        durable anyway). That halves the fsyncs of a task's life.
        """
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        try:
            fd = os.open(self.path, flags, 0o644)
        except FileNotFoundError:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, flags, 0o644)
        try:
            os.write(fd, encode_record(record))
            if isinstance(record, UpdateRecord):
                os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[LogRecord]:
        """Read the log, truncating a torn tail so that later appends start on a fresh line."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        records, valid = parse_log(data)
        if valid != len(data):
            with self.path.open("r+b") as handle:
                handle.truncate(valid)
                handle.flush()
                os.fsync(handle.fileno())
        return records
