"""The SUBSCRIBE stream's subscriber: events rendered as the core records each change, what the
principal may see, and a subscriber that falls behind dropped instead of holding the master."""

from __future__ import annotations

import json
from typing import Any

from mesos_master.operator_events import Subscriber, get_state, record_io
from protos import mesos_pb2
from tests.unit.test_master import Cluster, agent_status, task


def decode(record: bytes) -> dict[str, Any]:
    length, _, data = record.partition(b"\n")
    assert int(length) == len(data)
    event: dict[str, Any] = json.loads(data)
    return event


async def drain(subscriber: Subscriber) -> list[dict[str, Any]]:
    """Every queued event, once the subscriber has ended."""
    return [decode(record) async for record in subscriber.records(heartbeat_interval=60)]


def test_record_io_frames_json_with_its_byte_length() -> None:
    assert decode(record_io({"type": "HEARTBEAT", "name": "é"})) == {
        "type": "HEARTBEAT", "name": "é"}  # `decode` checks the length


async def test_events_follow_the_core_and_end_with_the_term() -> None:
    cluster = Cluster()
    subscriber = Subscriber(cluster.master, lambda action, target: True)
    cluster.master.observers.add(subscriber)
    agent_id = cluster.add_agent(hostname="h1")
    framework = cluster.subscribe("web")
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    cluster.master.status_update(agent_id, framework.framework_id,
                                 agent_status(framework, "t1", mesos_pb2.TASK_RUNNING, b"u1"))
    cluster.master.close_streams()
    events = await drain(subscriber)
    assert [event["type"] for event in events] == [
        "AGENT_ADDED", "FRAMEWORK_ADDED", "TASK_ADDED", "TASK_UPDATED"]
    added = events[2]["task_added"]["task"]
    assert added["state"] == "TASK_STAGING"  # as it was when added, not as it is now
    updated = events[3]["task_updated"]
    assert updated["state"] == "TASK_RUNNING"
    assert updated["status"]["agent_id"]["value"] == agent_id
    assert updated["framework_id"]["value"] == framework.framework_id


async def test_a_subscriber_that_falls_behind_is_dropped() -> None:
    cluster = Cluster()
    subscriber = Subscriber(cluster.master, lambda action, target: True, max_queued=2)
    cluster.master.observers.add(subscriber)
    for index in range(3):
        cluster.add_agent(hostname=f"h{index}")
    assert subscriber.overflowed and subscriber.ended
    assert len(cluster.master.observers) == 0  # the master no longer renders for it
    assert await drain(subscriber) == []  # its stream ends: it must subscribe again
    cluster.add_agent(hostname="later")  # and the master goes on


def test_the_state_and_the_events_show_what_the_acls_let_the_principal_see() -> None:
    cluster = Cluster()
    cluster.add_agent(hostname="visible")
    cluster.add_agent(hostname="hidden")
    shown = cluster.subscribe("shown")
    cluster.launch(shown, cluster.offers(shown)[:1], task("t1"), task("t2"))

    def can_view(action: str, target: str | None) -> bool:
        return not (action == "view_agents" and target == "hidden")

    state = get_state(cluster.master, can_view)
    assert [a["agent_info"]["hostname"] for a in state["get_agents"]["agents"]] == ["visible"]
    assert {t["task_id"]["value"] for t in state["get_tasks"]["tasks"]} == {"t1", "t2"}

    blind = Subscriber(cluster.master, lambda action, target: action != "view_tasks")
    cluster.master.observers.add(blind)
    cluster.add_agent(hostname="third")
    cluster.launch(shown, cluster.offers(shown)[:1], task("t3"))
    assert [decode(record)["type"] for record in blind._queue] == ["AGENT_ADDED"]
    assert get_state(cluster.master, lambda action, target: action != "view_tasks")[
        "get_tasks"]["tasks"] == []
