"""Marathon's unreachableStrategy with real processes: the agent running an instance is
frozen (SIGSTOP) until the master marks it unreachable; Marathon replaces the instance on the
other agent after `inactiveAfterSeconds`, and when the agent comes back (SIGCONT) the app
returns to exactly one instance."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.cluster import Cluster, Process, wait_for

pytestmark = pytest.mark.integration

APP = {"id": "/partitioned", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 1,
       "unreachableStrategy": {"inactiveAfterSeconds": 1, "expungeAfterSeconds": 3600}}


@pytest.fixture
def agents(cluster: Cluster) -> dict[str, Process]:
    """Two agents by hostname (the master's fast flags mark a silent agent unreachable
    after 2 s)."""
    return {host: cluster.start_agent("cpus:2;mem:2048;disk:1000;ports:[31000-31099]",
                                      hostname=host)
            for host in ("host-a", "host-b")}


@pytest.fixture
def marathon(cluster: Cluster, agents: dict[str, Process]) -> Iterator[httpx.Client]:
    _, url = cluster.start_marathon()
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/v2/info").json()["frameworkId"], "marathon to register")
        yield client


def tasks(client: httpx.Client) -> dict[str, dict[str, Any]]:
    answer = client.get("/v2/apps/partitioned/tasks")
    found: list[dict[str, Any]] = answer.json()["tasks"] if answer.status_code == 200 else []
    return {task["id"]: task for task in found}


def test_an_unreachable_instance_is_replaced_and_the_excess_killed_when_it_returns(
        marathon: httpx.Client, agents: dict[str, Process]) -> None:
    assert marathon.post("/v2/apps", json=APP).status_code == 201
    [first] = wait_for(
        lambda: [t for t in tasks(marathon).values() if t["state"] == "TASK_RUNNING"],
        "the instance to run")
    frozen = agents[first["host"]].popen
    assert frozen is not None
    frozen.send_signal(signal.SIGSTOP)
    try:
        def replaced() -> dict[str, dict[str, Any]] | None:
            current = tasks(marathon)
            others = [t for t in current.values()
                      if t["id"] != first["id"] and t["state"] == "TASK_RUNNING"]
            unreachable = current.get(first["id"], {}).get("state") == "TASK_UNREACHABLE"
            return current if unreachable and len(others) == 1 else None

        during = wait_for(replaced, "the instance unreachable and a replacement running")
        [replacement] = [t for t in during.values() if t["id"] != first["id"]]
        assert replacement["host"] != first["host"]
    finally:
        frozen.send_signal(signal.SIGCONT)

    # The agent re-registers, the master reports the task running again, the app has two
    # live instances and kills the youngest (killSelection YOUNGEST_FIRST): the replacement.
    def back_to_one() -> dict[str, dict[str, Any]] | None:
        current = tasks(marathon)
        app = marathon.get("/v2/apps/partitioned").json()["app"]
        settled = list(current) == [first["id"]] and app["tasksRunning"] == 1
        return current if settled and current[first["id"]]["state"] == "TASK_RUNNING" else None

    after = wait_for(back_to_one, "the returning instance running alone")
    assert after[first["id"]]["host"] == first["host"]
