"""Marathon placement and task operations on two real agents: constraints, groups (the
conformance group), killing tasks with and without scaling, the launch queue and its delay."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.cluster import Cluster, wait_for

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "conformance" / "marathon"
SLEEP = {"cmd": "sleep 600", "cpus": 0.1, "mem": 16}


@pytest.fixture
def marathon(cluster: Cluster) -> Iterator[httpx.Client]:
    """Marathon on a master with two agents: 127.0.0.1 (rack r1) and 127.0.0.2 (rack r2)."""
    for index in (1, 2):
        cluster.start_agent("cpus:2;mem:2048;disk:1000;ports:[31000-31099]",
                            hostname=f"127.0.0.{index}", attributes=f"rack:r{index}")
    _, url = cluster.start_marathon()
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/v2/info").json()["frameworkId"], "marathon to register")
        yield client


def tasks(client: httpx.Client, app_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/v2/apps{app_id}/tasks")
    found: list[dict[str, Any]] = answer.json()["tasks"] if answer.status_code == 200 else []
    return found


def running(client: httpx.Client, app_id: str, count: int) -> list[dict[str, Any]] | None:
    found = [t for t in tasks(client, app_id) if t["state"] == "TASK_RUNNING"]
    app = client.get(f"/v2/apps{app_id}").json()["app"]
    return found if len(found) == count and not app["deployments"] else None


def test_constraints_place_instances_and_the_queue_says_why_not(marathon: httpx.Client) -> None:
    unique = {**SLEEP, "id": "/unique", "instances": 2, "constraints": [["hostname", "UNIQUE"]]}
    assert marathon.post("/v2/apps", json=unique).status_code == 201
    placed = wait_for(lambda: running(marathon, "/unique", 2), "one instance per host")
    assert sorted(t["host"] for t in placed) == ["127.0.0.1", "127.0.0.2"]

    pinned = {**SLEEP, "id": "/pinned", "instances": 2,
              "constraints": [["rack", "CLUSTER", "r2"]]}
    assert marathon.post("/v2/apps", json=pinned).status_code == 201
    pinned_tasks = wait_for(lambda: running(marathon, "/pinned", 2), "both on rack r2")
    assert {t["host"] for t in pinned_tasks} == {"127.0.0.2"}

    # A third UNIQUE instance has no host left: it waits in the queue, which says why.
    scaled = marathon.put("/v2/apps/unique", json={**unique, "instances": 3})
    assert scaled.status_code == 200

    def rejected() -> list[str] | None:
        queue = marathon.get("/v2/queue").json()["queue"]
        entry = next((e for e in queue if e["app"]["id"] == "/unique"), None)
        if entry is None:
            return None
        summary = entry["processedOffersSummary"].get("rejectSummaryLaunchAttempt", [])
        reasons = [r["reason"] for r in summary if r["declined"]]
        return reasons or None

    assert wait_for(rejected, "the queue to record rejected offers") == [
        "UnfulfilledConstraint"]
    assert marathon.delete("/v2/queue/unique/delay").status_code == 204
    assert marathon.delete("/v2/queue/nope/delay").status_code == 404


def test_killing_tasks_with_and_without_scaling(marathon: httpx.Client) -> None:
    app = {**SLEEP, "id": "/killable", "instances": 3}
    assert marathon.post("/v2/apps", json=app).status_code == 201
    first = wait_for(lambda: running(marathon, "/killable", 3), "three instances")

    victim = first[0]["id"]
    killed = marathon.delete(f"/v2/apps/killable/tasks/{victim}")
    assert killed.status_code == 200 and killed.json()["task"]["id"] == victim
    replaced = wait_for(
        lambda: (r := running(marathon, "/killable", 3)) and victim not in {t["id"] for t in r}
        and r, "a replacement for the killed task")

    scaled = marathon.post("/v2/tasks/delete", params={"scale": "true"},
                           json={"ids": [replaced[0]["id"]]})
    assert scaled.status_code == 200 and scaled.json()["deploymentId"]
    wait_for(lambda: running(marathon, "/killable", 2), "two instances after scaling down")
    assert marathon.get("/v2/apps/killable").json()["app"]["instances"] == 2
    bad = marathon.post("/v2/tasks/delete", json={"ids": "nope"})
    assert bad.status_code == 422


def test_the_conformance_group_is_stored_and_reported_with_its_apps(
    marathon: httpx.Client,
) -> None:
    group = json.loads((FIXTURES / "group.json").read_text())
    # Two of its apps ask for what only a Docker daemon gives (a privileged container, BRIDGE
    # networking): this cluster refuses them saying why.
    refused = marathon.post("/v2/groups", json=group)
    assert refused.status_code == 422, refused.text
    assert {d["path"] for d in refused.json()["details"]} == {
        "/tools/datadog-agent/container/docker/privileged",
        "/tools/docker/registry/container/docker/network"}
    docker_only = {"/tools/datadog-agent", "/tools/docker/registry"}
    for sub in group["groups"]:
        sub["apps"] = [a for a in sub["apps"] if a["id"] not in docker_only]
        for sub_group in sub.get("groups", []):
            sub_group["apps"] = [a for a in sub_group["apps"] if a["id"] not in docker_only]
    created = marathon.post("/v2/groups", json=group)
    assert created.status_code == 201, created.text
    stored = marathon.get("/v2/groups").json()
    ids = {a["id"] for g in stored["groups"] for a in g["apps"]}
    expected = {a["id"] for g in group["groups"] for a in g["apps"]}
    assert ids == expected
    # Their Docker images run on agents with --image_providers=docker; these agents have
    # none: the apps wait in the queue, which says why.
    app_id = sorted(expected)[0]

    def queued_reasons() -> list[str] | None:
        for item in marathon.get("/v2/queue").json()["queue"]:
            if item["app"]["id"] == app_id:
                summary = item["processedOffersSummary"]["rejectSummaryLastOffers"]
                return [r["reason"] for r in summary if r["declined"]] or None
        return None

    assert wait_for(queued_reasons, "the queue to say why the app waits") == ["NoImageProvider"]
    deleted = marathon.delete("/v2/groups/tools", params={"force": "true"})
    assert deleted.status_code == 200
    assert marathon.get("/v2/groups/tools").status_code == 404


def test_a_per_agent_app_follows_agents_as_they_join(
    cluster: Cluster, marathon: httpx.Client,
) -> None:
    app = {**SLEEP, "id": "/everywhere", "labels": {"MARATHON_PER_AGENT": "true"}}
    assert marathon.post("/v2/apps", json=app).status_code == 201
    first = wait_for(lambda: (found := tasks(marathon, "/everywhere")) and len(found) == 2
                     and found, "one instance on each of the two agents")
    assert sorted(t["host"] for t in first) == ["127.0.0.1", "127.0.0.2"]

    cluster.start_agent("cpus:2;mem:2048;disk:1000;ports:[31000-31099]",
                        hostname="127.0.0.3", attributes="rack:r3")
    third = wait_for(lambda: (found := tasks(marathon, "/everywhere")) and len(found) == 3
                     and found, "an instance on the agent that joined")
    assert sorted(t["host"] for t in third) == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
