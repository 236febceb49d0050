"""Marathon's event shapes and the bus that fans them out to `/v2/events` subscribers."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from marathon.event_bus import EventBus
from marathon.events import (
    deployment_event,
    sse,
    status_update_event,
    stream_event,
    timestamp,
)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "marathon"


def fixture_events() -> list[dict[str, object]]:
    lines = (FIXTURES / "events.txt").read_text().splitlines()
    return [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data:")]


def test_timestamps_have_milliseconds_and_z() -> None:
    moment = datetime(2015, 9, 30, 12, 44, 30, 61_999, tzinfo=UTC)
    assert timestamp(moment) == "2015-09-30T12:44:30.061Z"


def test_status_update_event_has_the_fields_of_marathons_example() -> None:
    [_, example, _] = fixture_events()
    built = status_update_event(
        agent_id="s6",
        task_id="foo.1",
        state="TASK_FAILED",
        message="boom",
        app_id="/foo",
        host="h",
        ports=[31776],
        version="2015-09-30T09:09:17.614Z",
    )
    assert set(example) <= set(built)
    assert built["eventType"] == "status_update_event"
    assert built["ports"] == [31776]


def test_sse_frames_one_event() -> None:
    item = stream_event(True, "127.0.0.1")
    frame = sse(item).decode()
    assert frame.startswith("event: event_stream_attached\ndata: {")
    assert frame.endswith("\n\n")
    assert json.loads(frame.splitlines()[1].removeprefix("data: ")) == item


def test_deployment_outcomes_carry_the_plan_id() -> None:
    plan = {"id": "d1", "steps": []}
    assert deployment_event("deployment_success", plan)["id"] == "d1"
    assert "id" not in deployment_event("deployment_info", plan, current_step={"actions": []})
    assert deployment_event("deployment_failed", plan, reason="x")["reason"] == "x"


async def test_subscribers_get_the_event_types_they_asked_for() -> None:
    bus = EventBus()
    everything = bus.subscribe()
    updates = bus.subscribe({"status_update_event"})
    bus.publish(stream_event(True, "a"))
    bus.publish(status_update_event(agent_id="s", task_id="t", state="TASK_RUNNING", message="",
                                    app_id="/a", host="h", ports=[], version="v"))
    bus.unsubscribe(everything)
    bus.unsubscribe(updates)
    assert [e["eventType"] async for e in everything] == [
        "event_stream_attached", "status_update_event"
    ]
    assert [e["eventType"] async for e in updates] == ["status_update_event"]


async def test_a_subscriber_too_far_behind_is_disconnected() -> None:
    bus = EventBus(max_backlog=2)
    slow = bus.subscribe()
    for index in range(3):
        bus.publish(stream_event(True, str(index)))
    assert bus.subscribers == 0
    received = [e["remoteAddress"] async for e in slow]
    assert received == ["0", "1"]  # what it had queued; then the stream ends
