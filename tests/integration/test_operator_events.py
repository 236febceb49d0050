"""The master's v1 operator event stream (SUBSCRIBE) on real processes: the state, then each
change as the master records it."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.integration.cluster import Cluster
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import launch_once, running

pytestmark = pytest.mark.integration


def read_records(stream: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """Decode RecordIO (`<length>\\n<json>`) from a byte stream."""
    buffer = b""
    for chunk in stream:
        buffer += chunk
        while b"\n" in buffer:
            header, rest = buffer.split(b"\n", 1)
            length = int(header)
            if len(rest) < length:
                break
            yield json.loads(rest[:length])
            buffer = rest[length:]


@contextmanager
def subscribed(url: str) -> Iterator[queue.Queue[dict[str, Any]]]:
    """Events of a SUBSCRIBE stream, read on a thread, in a queue."""
    events: queue.Queue[dict[str, Any]] = queue.Queue()
    client = httpx.Client(timeout=httpx.Timeout(10, read=None))

    def read() -> None:
        try:
            with client.stream("POST", url + "/api/v1", json={"type": "SUBSCRIBE"}) as response:
                events.put({"status": response.status_code})
                for event in read_records(response.iter_bytes()):
                    events.put(event)
        except httpx.HTTPError:
            pass
        events.put({"type": "END"})

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        yield events
    finally:
        client.close()


def next_event(events: queue.Queue[dict[str, Any]], kind: str,
               match: Any = lambda event: True) -> dict[str, Any]:
    """The next event of type `kind` for which `match(event)` holds (others are skipped)."""
    while True:
        event = events.get(timeout=30)
        assert event.get("type") != "END", f"the stream ended before {kind}"
        if event.get("type") == kind and match(event):
            return event


def test_subscribe_streams_the_state_then_each_change(cluster: Cluster) -> None:
    master = cluster.masters[0]
    with subscribed(master.http_url) as events:
        assert events.get(timeout=30) == {"status": 200}
        first = events.get(timeout=30)
        assert first["type"] == "SUBSCRIBED"
        assert first["subscribed"]["get_state"]["get_tasks"]["tasks"] == []
        assert first["subscribed"]["heartbeat_interval_seconds"] > 0

        cluster.start_agent(hostname="dns-host")
        added = next_event(events, "AGENT_ADDED")
        agent = added["agent_added"]["agent"]
        assert agent["agent_info"]["hostname"] == "dns-host"
        assert agent["pid"].startswith("slave(1)@127.0.0.1:")

        scheduler = RecordingScheduler(on_offers=launch_once(("web", "sleep 600"), ports=1))
        with running(cluster, scheduler, "shop"):
            framework = next_event(events, "FRAMEWORK_ADDED")
            assert framework["framework_added"]["framework"]["framework_info"]["name"] == "shop"
            task = next_event(events, "TASK_ADDED")["task_added"]["task"]
            assert task["task_id"]["value"] == "web"
            assert task["state"] == "TASK_STAGING"
            assert any(r["name"] == "ports" for r in task["resources"])
            running_update = next_event(
                events, "TASK_UPDATED",
                lambda e: e["task_updated"]["state"] == "TASK_RUNNING")["task_updated"]
            assert running_update["status"]["task_id"]["value"] == "web"
            assert running_update["status"]["agent_id"] == agent["agent_info"]["id"]

            # a second subscriber starts from the state, with the task running
            with subscribed(master.http_url) as second:
                assert second.get(timeout=30) == {"status": 200}
                state = second.get(timeout=30)["subscribed"]["get_state"]
                [task] = state["get_tasks"]["tasks"]
                assert task["state"] == "TASK_RUNNING"
                [agent_entry] = state["get_agents"]["agents"]
                assert agent_entry["agent_info"]["hostname"] == "dns-host"
                [framework_entry] = state["get_frameworks"]["frameworks"]
                assert framework_entry["framework_info"]["name"] == "shop"

            teardown = httpx.post(master.http_url + "/api/v1", json={
                "type": "TEARDOWN",
                "teardown": {"framework_id": {"value": scheduler.framework_id}}}, timeout=10)
            assert teardown.status_code == 200
            removed = next_event(events, "FRAMEWORK_REMOVED")
            assert removed["framework_removed"]["framework_info"]["name"] == "shop"


def test_quiet_streams_carry_heartbeats(cluster: Cluster) -> None:
    with subscribed(cluster.masters[0].http_url) as events:
        assert events.get(timeout=30) == {"status": 200}
        next_event(events, "SUBSCRIBED")
        next_event(events, "HEARTBEAT")


def test_unknown_call_types_are_400_and_the_answer_names_subscribe(cluster: Cluster) -> None:
    response = httpx.post(cluster.masters[0].http_url + "/api/v1",
                          json={"type": "SUBSCRIBE_PLEASE"}, timeout=10)
    assert response.status_code == 400
    assert "SUBSCRIBE" in response.text
