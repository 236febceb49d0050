"""The operator API's event stream: Mesos' v1 `SUBSCRIBE` call, a thin shell over the core's
observer hook (`mesos_master.observers`).

    POST /api/v1 {"type": "SUBSCRIBE"}
      200, RecordIO (`<length>\\n<json>` per record) of v1 master events:
        SUBSCRIBED {get_state, heartbeat_interval_seconds}    the state at the time of the call
        TASK_ADDED, TASK_UPDATED, AGENT_ADDED, AGENT_REMOVED,
        FRAMEWORK_ADDED, FRAMEWORK_UPDATED, FRAMEWORK_REMOVED  as the core records each change
        HEARTBEAT                                              after each quiet interval

    Master ── observer calls ──▶ Subscriber: renders the event (JSON bytes) ──▶ bounded queue
    StreamingResponse ◀── records ── queue (HEARTBEAT when nothing came for the interval)

An event is rendered when the core notifies it, so it shows the change as it was made. A
subscriber that falls `max_queued` events behind is dropped (its stream ends; it subscribes
again and starts from a fresh SUBSCRIBED), so a slow reader never holds the master back. The
stream also ends when the leadership term does (`Master.close_streams`). What a principal sees
follows the ACLs as `/state` does: frameworks by `view_frameworks`, tasks by `view_tasks`,
agents by `view_agents` (ADR 0013).
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from starlette.responses import StreamingResponse

from mesos_master.master import Master
from mesos_master.records import AgentRecord, FrameworkRecord, TaskRecord
from mesos_values.users import task_user
from protos import mesos_pb2

__all__ = ["MAX_QUEUED_EVENTS", "Subscriber", "get_state", "record_io", "subscribe_response"]

MAX_QUEUED_EVENTS = 10_000
"""How far a subscriber may fall behind before it is dropped."""

CanView = Callable[[str, "str | None"], bool]


def record_io(event: dict[str, Any]) -> bytes:
    """One RecordIO record: the JSON's length in bytes, a newline, the JSON."""
    data = json.dumps(event, separators=(",", ":")).encode()
    return b"%d\n%s" % (len(data), data)


def _proto(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


def _task_json(task: TaskRecord) -> dict[str, Any]:
    proto = task.to_proto()
    for status in proto.statuses:
        status.agent_id.value = task.agent_id
    return _proto(proto)


def _status(task: TaskRecord) -> mesos_pb2.TaskStatus:
    """The task's latest status (made up from its state if it has none), naming its agent."""
    status = mesos_pb2.TaskStatus()
    if task.latest_status is not None:
        status.CopyFrom(task.latest_status)
    else:
        status.state = task.state
    status.task_id.value = task.task_id
    status.agent_id.value = task.agent_id
    return status


def _agent_json(agent: AgentRecord) -> dict[str, Any]:
    info = agent.info
    port = info.http_port or info.port
    return {
        "agent_info": _proto(info),
        "active": agent.connected and not agent.deactivated,
        "deactivated": agent.deactivated,
        "pid": f"slave(1)@{info.address or info.hostname}:{port}",
        "total_resources": [_proto(resource) for resource in agent.total.to_proto()],
    }


def _framework_json(framework: FrameworkRecord) -> dict[str, Any]:
    return {
        "framework_info": _proto(framework.info),
        "active": framework.connected,
        "connected": framework.connected,
        "recovered": False,
        "registered_time": {"nanoseconds": int(framework.registered_at * 1e9)},
    }


def get_state(master: Master, can_view: CanView) -> dict[str, Any]:
    """Mesos' `Response.GetState`: tasks, frameworks and agents the principal may view."""
    tasks, completed, frameworks = [], [], []
    for framework in master.frameworks.values():
        if not can_view("view_frameworks", framework.info.user):
            continue
        frameworks.append(_framework_json(framework))
        for task in framework.tasks.values():
            if can_view("view_tasks", task_user(task.info, framework.info)):
                tasks.append(_task_json(task))
        for task in framework.completed_tasks:
            if can_view("view_tasks", task_user(task.info, framework.info)):
                completed.append(_task_json(task))
    visible = [agent for agent in master.agents.values()
               if agent.admitted and agent.reachable
               and can_view("view_agents", agent.info.hostname)]
    return {
        "get_tasks": {"tasks": tasks, "completed_tasks": completed},
        "get_frameworks": {"frameworks": frameworks},
        "get_agents": {
            "agents": [_agent_json(agent) for agent in visible
                       if not agent.awaiting_reregistration],
            # known from the registry, not re-registered since this master was elected: their
            # tasks are not known yet
            "recovered_agents": [_proto(agent.info) for agent in visible
                                 if agent.awaiting_reregistration],
        },
    }


class Subscriber:
    """One SUBSCRIBE stream: a `MasterObserver` queueing the events its principal may see."""

    def __init__(self, master: Master, can_view: CanView, *,
                 max_queued: int = MAX_QUEUED_EVENTS) -> None:
        self._master = master
        self._can_view = can_view
        self._max_queued = max_queued
        self._queue: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self.ended = False  # the term ended, or this subscriber fell too far behind
        self.overflowed = False

    # MasterObserver

    def task_added(self, task: TaskRecord) -> None:
        if self._sees_task(task):
            self._put({"type": "TASK_ADDED", "task_added": {"task": _task_json(task)}})

    def task_updated(self, task: TaskRecord) -> None:
        if self._sees_task(task):
            self._put({"type": "TASK_UPDATED", "task_updated": {
                "framework_id": {"value": task.framework_id},
                "status": _proto(_status(task)),
                "state": mesos_pb2.TaskState.Name(task.state),
            }})

    def agent_added(self, agent: AgentRecord) -> None:
        if self._can_view("view_agents", agent.info.hostname):
            self._put({"type": "AGENT_ADDED", "agent_added": {"agent": _agent_json(agent)}})

    def agent_removed(self, agent: AgentRecord) -> None:
        if self._can_view("view_agents", agent.info.hostname):
            self._put({"type": "AGENT_REMOVED",
                       "agent_removed": {"agent_id": {"value": agent.agent_id}}})

    def framework_added(self, framework: FrameworkRecord) -> None:
        if self._can_view("view_frameworks", framework.info.user):
            self._put({"type": "FRAMEWORK_ADDED",
                       "framework_added": {"framework": _framework_json(framework)}})

    def framework_updated(self, framework: FrameworkRecord) -> None:
        if self._can_view("view_frameworks", framework.info.user):
            self._put({"type": "FRAMEWORK_UPDATED",
                       "framework_updated": {"framework": _framework_json(framework)}})

    def framework_removed(self, framework: FrameworkRecord) -> None:
        if self._can_view("view_frameworks", framework.info.user):
            self._put({"type": "FRAMEWORK_REMOVED",
                       "framework_removed": {"framework_info": _proto(framework.info)}})

    def closed(self) -> None:
        self._end(flush=True)

    # The stream

    def subscribed(self, heartbeat_interval: float) -> bytes:
        """The SUBSCRIBED record: the state as of now (events queue from now on)."""
        return record_io({"type": "SUBSCRIBED", "subscribed": {
            "get_state": get_state(self._master, self._can_view),
            "heartbeat_interval_seconds": heartbeat_interval,
        }})

    async def records(self, heartbeat_interval: float) -> AsyncIterator[bytes]:
        """Each queued event, HEARTBEAT after each quiet interval; ends when the subscriber
        is dropped, or when the term ends (after the events queued until then)."""
        while self._queue or not self.ended:
            if self._queue:
                yield self._queue.popleft()
                continue
            self._wake.clear()
            try:
                async with asyncio.timeout(heartbeat_interval):
                    await self._wake.wait()
            except TimeoutError:
                yield record_io({"type": "HEARTBEAT"})

    def _sees_task(self, task: TaskRecord) -> bool:
        framework = self._master.frameworks.get(task.framework_id)
        info = framework.info if framework is not None else None
        if info is not None and not self._can_view("view_frameworks", info.user):
            return False
        return self._can_view("view_tasks", task_user(task.info, info))

    def _put(self, event: dict[str, Any]) -> None:
        if self.ended:
            return
        if len(self._queue) >= self._max_queued:
            self.overflowed = True
            self._end()
            return
        self._queue.append(record_io(event))
        self._wake.set()

    def _end(self, *, flush: bool = False) -> None:
        """Stop listening; the stream ends once what is queued was sent (`flush`, at the
        end of the term) or at once (a subscriber dropped for falling behind)."""
        self.ended = True
        if not flush:
            self._queue.clear()
        self._master.observers.remove(self)
        self._wake.set()


def subscribe_response(master: Master, can_view: CanView) -> StreamingResponse:
    """The SUBSCRIBE call's answer: a RecordIO stream that follows `master`'s changes."""
    subscriber = Subscriber(master, can_view)
    interval = master.config.scheduler_heartbeat_interval
    first = subscriber.subscribed(interval)
    master.observers.add(subscriber)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield first
            async for record in subscriber.records(interval):
                yield record
        finally:
            master.observers.remove(subscriber)

    return StreamingResponse(stream(), media_type="application/recordio",
                             headers={"Message-Type": "application/json"})
