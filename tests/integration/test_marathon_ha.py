"""Two Marathons electing a leader through ZooKeeper: the standby forwards requests, the leader
can abdicate, and after kill -9 of the leader the other takes over with the apps and running
tasks it recovers from ZooKeeper."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from marathon.state import ROOT_KEY
from mesos_coordination.store import store_key
from tests.integration.cluster import wait_for
from tests.integration.elected_services import (
    Service,
    elected_services,
    read_record,
    stored_keys,
    takeovers,
    write_records,
)
from tests.integration.elected_services import leader_of as elected_leader
from tests.zookeeper import ZooKeeperEnsemble

pytestmark = pytest.mark.integration

APP = {"id": "/ha", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 2}


@pytest.fixture
def marathons(tmp_path: Path, shared_zookeeper: ZooKeeperEnsemble) -> Iterator[list[Service]]:
    with elected_services(tmp_path, lambda cluster: cluster.start_marathon,
                          ("marathon-1", "marathon-2"), "/marathon", "2000",
                          shared_zookeeper) as started:
        yield started


def leader_of(marathons: list[Service]) -> Service:
    return elected_leader(marathons, "/v2/info")


def running_tasks(client: httpx.Client) -> set[str] | None:
    app = client.get("/v2/apps/ha", params={"embed": "app.tasks"})
    if app.status_code != 200:
        return None
    body = app.json()["app"]
    tasks = {t["id"] for t in body["tasks"] if t["state"] == "TASK_RUNNING"}
    return tasks if len(tasks) == 2 and not body["deployments"] else None


def test_standby_forwards_leader_abdicates_and_failover_keeps_tasks(
    marathons: list[Service],
) -> None:
    leader, leader_client = leader_of(marathons)
    standby, standby_client = next(m for m in marathons if m[0] is not leader)
    named = wait_for(lambda: (r := standby_client.get("/v2/leader")).status_code == 200 and r,
                     "the standby to know the leader")
    assert named.json()["leader"].endswith(f":{leader_client.base_url.port}")

    created = standby_client.post("/v2/apps", json=APP)  # forwarded to the leader
    assert created.status_code == 201, created.text
    assert created.headers["X-Marathon-Leader"].endswith(f":{leader_client.base_url.port}")
    tasks = wait_for(lambda: running_tasks(standby_client), "both instances running")
    assert running_tasks(leader_client) == tasks

    assert leader_client.delete("/v2/leader").json() == {"message": "Leadership abdicated"}
    new_leader, new_client = leader_of(marathons)
    assert new_leader is standby
    assert wait_for(lambda: running_tasks(new_client), "the new leader to know the tasks") \
        == tasks

    new_leader.kill9()
    again, again_client = leader_of(marathons)
    assert again is leader  # it contended again after abdicating
    assert wait_for(lambda: running_tasks(again_client), "tasks after failover") == tasks
    scaled = again_client.patch("/v2/apps/ha", json={"instances": 3})
    assert scaled.status_code == 200
    wait_for(lambda: len(again_client.get("/v2/apps/ha/tasks").json()["tasks"]) == 3,
             "the recovered leader to scale the app")


def test_a_deployment_in_progress_survives_marathon_failover(
    marathons: list[Service],
) -> None:
    leader, leader_client = leader_of(marathons)
    # Three instances of 1.5 cpus on an agent of 4: the third cannot be placed, so the
    # deployment stays in progress.
    stuck = {**APP, "id": "/stuck", "cpus": 1.5, "instances": 3}
    created = leader_client.post("/v2/apps", json=stuck)
    assert created.status_code == 201, created.text
    deployment = created.headers["Marathon-Deployment-Id"]
    wait_for(lambda: len(leader_client.get("/v2/apps/stuck/tasks").json()["tasks"]) == 2,
             "two of the three instances to be placed")

    leader.kill9()
    _, new_client = leader_of(marathons)
    ids = [d["id"] for d in new_client.get("/v2/deployments").json()]
    assert ids == [deployment]  # recovered from ZooKeeper, still in progress
    assert new_client.put("/v2/apps/stuck", json={**stuck, "instances": 2}).status_code == 409

    fixed = new_client.put("/v2/apps/stuck", params={"force": "true"},
                           json={**stuck, "instances": 2})
    assert fixed.status_code == 200
    wait_for(lambda: new_client.get("/v2/deployments").json() == [],
             "the forced deployment to finish on the new leader")
    assert len(new_client.get("/v2/apps/stuck/tasks").json()["tasks"]) == 2


def test_a_poisoned_record_is_set_aside_and_every_marathon_recovers_the_rest(
    marathons: list[Service],
) -> None:
    """`POST /v2/groups/__main__` with an app `web` is refused; the records an old leader
    stored for it are set aside by each Marathon that recovers them, which keeps the rest."""
    leader = leader_of(marathons)
    client = leader[1]
    assert client.post("/v2/apps", json={**APP, "id": "/good", "instances": 1}).status_code \
        == 201
    wait_for(lambda: client.get("/v2/deployments").json() == [], "/good to be deployed")

    refused = client.post("/v2/groups/__main__", json={"apps": [{"id": "web", "cmd": "sleep 1"}]})
    assert refused.status_code == 422, refused.text
    assert [d["path"] for d in refused.json()["details"]] == ["/apps(0)/id"]
    assert client.post("/v2/groups/__main__", json={}).status_code == 422
    assert client.post("/v2/apps", json={"id": "æÊÚl", "cmd": "sleep 1"}).status_code == 422
    assert client.get("/v2/groups/__main__").status_code == 404
    assert b"__main__" not in read_record(leader, ROOT_KEY)
    version = client.get("/v2/apps/good").json()["app"]["version"]
    assert stored_keys(leader, "apps") == {store_key("apps", f"/good@{version}")}

    bad = store_key("apps", "/__main__/web@v1")
    root = json.loads(read_record(leader, ROOT_KEY))
    root["groups"].append({"id": "/__main__", "version": "v1", "dependencies": [],
                           "apps": [["/__main__/web", "v1"]], "groups": []})
    write_records(leader, {ROOT_KEY: json.dumps(root).encode(),
                           bad: json.dumps({"id": "/__main__/web", "cmd": "sleep 1"}).encode()})
    for successor in takeovers(marathons, leader, "/v2/info"):
        client = successor[1]
        aside = client.get("/v2/set-aside-records").json()["setAsideRecords"]
        assert {r["key"] for r in aside} == {ROOT_KEY, bad}
        assert "setAsideRecords" not in client.get("/v2/info").json()  # Marathon's fields only
        assert "marathon_set_aside_records 2" in client.get("/metrics/prometheus").text
        assert client.get("/v2/apps/good").json()["app"]["tasksRunning"] == 1
        assert client.get("/v2/groups/__main__").status_code == 404

    leader = successor
    removed = client.delete("/v2/apps/__main__/web")
    assert removed.status_code == 200, removed.text
    assert bad not in stored_keys(leader, "apps")
    for _, client in takeovers(marathons, leader, "/v2/info"):
        assert client.get("/v2/set-aside-records").json()["setAsideRecords"] == []
        assert client.get("/v2/apps/good").json()["app"]["tasksRunning"] == 1
