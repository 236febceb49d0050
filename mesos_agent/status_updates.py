"""Reliable status updates (ADR 0012): persisted first, retried until acknowledged.

Flow for one task (one *stream* per framework id + task id)::

    executor/agent --update--> StatusUpdateManager.update(ticket)   (drops duplicate uuids)
                               record appended to the task log in group-commit batch `ticket`
                               ... batch durable --> synced(ticket)
    master <--send-- due() / resend_all()    (only the oldest unacked update is in flight,
                                              and only once its batch is durable)
    master --ack(uuid)--> acknowledge()  -> next update of the stream goes out
                                          -> terminal update acked: the stream is finished

`StatusUpdateManager` is the pure core: no I/O, time from an injected clock. The records below
are what the task log (`mesos_agent.task_log`) keeps of a task's stream and container; it is
written through `mesos_agent.group_commit` (updates are fsynced, acknowledgements are not).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from mesos_agent.containers import ContainerProcess
from mesos_runtime.clock import Clock
from mesos_values.task_states import TERMINAL_STATES
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


@dataclass(frozen=True, slots=True)
class _Pending:
    status: mesos_pb2.TaskStatus
    ticket: int  # the group-commit batch that makes it durable


@dataclass(slots=True)
class _Stream:
    framework_id: str
    task_id: str
    pending: deque[_Pending] = field(default_factory=deque)
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
        # Streams whose unsent head waits for its batch to become durable (an ordered set).
        self._unsent: dict[StreamKey, None] = {}
        self._held: dict[StreamKey, None] = {}
        self._durable = 0
        self._retries: list[tuple[float, int, StreamKey]] = []
        self._sequence = itertools.count()

    def update(
        self, framework_id: str, status: mesos_pb2.TaskStatus, ticket: int = 0
    ) -> AddResult:
        """Queue `status` (which must carry a uuid) behind the stream's unacknowledged ones.

        It is not sent before `synced(t)` with `t >= ticket` (0: it is durable already).
        """
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
        stream.pending.append(_Pending(status, ticket))
        stream.latest = status
        stream.terminal_received = is_terminal(status.state)
        return AddResult.ACCEPTED

    def acknowledge(self, framework_id: str, task_id: str, uuid: bytes) -> AckResult:
        """Drop the in-flight update with `uuid`; the next one becomes due at once."""
        stream = self._streams.get((framework_id, task_id))
        if stream is None or not stream.pending or stream.pending[0].status.uuid != uuid:
            return AckResult.UNKNOWN
        acked = stream.pending.popleft().status
        stream.next_send_at = None
        stream.backoff = 0.0
        if is_terminal(acked.state):
            del self._streams[(framework_id, task_id)]
            return AckResult.STREAM_FINISHED
        if stream.pending:
            self._unsent[(framework_id, task_id)] = None
        return AckResult.ACKNOWLEDGED

    def synced(self, ticket: int) -> None:
        """Every group-commit batch up to `ticket` is durable: their updates may go out."""
        self._durable = max(self._durable, ticket)
        for key in list(self._held):
            stream = self._streams.get(key)
            if stream is None or not stream.pending:
                del self._held[key]
            elif stream.pending[0].ticket <= self._durable:
                del self._held[key]
                self._unsent[key] = None

    def due(self) -> list[PendingUpdate]:
        """Heads of streams that were never sent or whose retry time has come.

        Each returned update is considered sent now; its next retry is scheduled with
        exponential backoff (initial, doubled each time, capped at the maximum). A head whose
        batch is not durable yet is held back until `synced`.
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
            if stream.pending[0].ticket > self._durable:
                self._held[key] = None
                continue
            stream.backoff = (
                self._initial_backoff
                if stream.next_send_at is None
                else min(stream.backoff * 2, self._max_backoff)
            )
            stream.next_send_at = now + stream.backoff
            heapq.heappush(self._retries, (stream.next_send_at, next(self._sequence), key))
            out.append(PendingUpdate(stream.framework_id, stream.pending[0].status))
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
        return [] if stream is None else [p.status for p in stream.pending]

    def has_stream(self, framework_id: str, task_id: str) -> bool:
        return (framework_id, task_id) in self._streams

    def streams(self) -> list[StreamKey]:
        return list(self._streams)

    def forget(self, framework_id: str, task_id: str) -> None:
        """Drop a stream without acknowledgement (its framework was shut down)."""
        self._streams.pop((framework_id, task_id), None)
        self._unsent.pop((framework_id, task_id), None)
        self._held.pop((framework_id, task_id), None)

    def recover(self, framework_id: str, task_id: str, records: Iterable[LogRecord]) -> bool:
        """Rebuild a stream from its log; returns False when the stream is already finished."""
        for record in records:
            if isinstance(record, UpdateRecord):
                self.update(framework_id, record.status)
            elif isinstance(record, AckRecord):
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


@dataclass(frozen=True, slots=True)
class ContainerRecord:
    """The task's container, logged once its process is started."""

    container: ContainerProcess


LogRecord = UpdateRecord | AckRecord | ContainerRecord


def container_to_json(container: ContainerProcess) -> dict[str, Any]:
    """A container as checkpointed (JSON-ready)."""
    return {
        "container_id": container.container_id,
        "pid": container.pid,
        "start_time": container.start_time,
        "sandbox": str(container.sandbox),
    }


def container_from_json(data: Any) -> ContainerProcess:
    """The inverse of `container_to_json`; KeyError/TypeError/ValueError on a bad record."""
    return ContainerProcess(
        str(data["container_id"]), int(data["pid"]), float(data["start_time"]),
        Path(data["sandbox"]),
    )
