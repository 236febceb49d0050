"""Marathon 1.9's semantics of some less common requests, on a real Marathon, master and
agent: group dry runs and rollbacks, DELETE's `force` default, `cmd` filters, killing tasks
by id, and the checks of `container.type`, `networks`, `role`, `acceptedResourceRoles` and
`gpus` (with and without `--enable_features gpu_resources`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from tests.integration.cluster import Cluster, wait_for

pytestmark = pytest.mark.integration

SLEEPER = {"id": "/team/sleeper", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 1}


@contextmanager
def client_of(cluster: Cluster, *flags: str) -> Iterator[httpx.Client]:
    _, url = cluster.start_marathon(*flags)
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/v2/info").json()["frameworkId"], "marathon to register")
        yield client


@pytest.fixture
def marathon(cluster: Cluster) -> Iterator[httpx.Client]:
    cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]")
    with client_of(cluster) as client:
        yield client


def running(client: httpx.Client, app_id: str, count: int) -> dict[str, Any] | None:
    app: dict[str, Any] = client.get(f"/v2/apps{app_id}").json()["app"]
    return app if app["tasksRunning"] == count and not app["deployments"] else None


def test_group_dry_runs_and_rollbacks(marathon: httpx.Client) -> None:
    group = {"id": "/team", "apps": [SLEEPER]}
    dry = marathon.put("/v2/groups/team", params={"dryRun": "true"}, json=group)
    assert dry.status_code == 200, dry.text
    assert dry.json() == {"steps": [
        {"actions": [{"action": "StartApplication", "app": "/team/sleeper"}]},
        {"actions": [{"action": "ScaleApplication", "app": "/team/sleeper"}]}]}
    assert marathon.get("/v2/apps").json()["apps"] == []
    assert marathon.get("/v2/deployments").json() == []
    bad = marathon.put("/v2/groups/team", params={"dryRun": "true"},
                       json={"apps": [{**SLEEPER, "cpus": -1}]})
    assert bad.status_code == 422

    assert marathon.put("/v2/groups/team", json=group).status_code == 200
    first = wait_for(lambda: running(marathon, "/team/sleeper", 1), "the sleeper to run")
    version = marathon.get("/v2/groups/team").json()["version"]
    changed = {"id": "/team", "apps": [{**SLEEPER, "cmd": "sleep 700"}]}
    assert marathon.put("/v2/groups/team", json=changed).status_code == 200
    wait_for(lambda: (a := running(marathon, "/team/sleeper", 1)) and a["cmd"] == "sleep 700",
             "the change to roll out")

    rollback = marathon.put("/v2/groups/team", json={"version": version})
    assert rollback.status_code == 200, rollback.text
    back = wait_for(lambda: (a := running(marathon, "/team/sleeper", 1))
                    and a["cmd"] == "sleep 600" and a, "the rollback")
    assert back["version"] > first["version"]
    unknown = marathon.put("/v2/groups/team", json={"version": "2001-01-01T00:00:00.000Z"})
    assert unknown.status_code == 422
    assert unknown.json() == {"message": "Group /team not available in version "
                                         "2001-01-01T00:00:00.000Z"}


def test_apps_and_tasks_answer_as_marathon_1_9(marathon: httpx.Client) -> None:
    assert marathon.post("/v2/apps", json={**SLEEPER, "cmd": "SLEEP 600 || sleep 600"}
                         ).status_code == 201
    assert [a["id"] for a in marathon.get("/v2/apps", params={"cmd": "sleep 600 |"}
                                          ).json()["apps"]] == ["/team/sleeper"]
    wait_for(lambda: running(marathon, "/team/sleeper", 1), "the sleeper to run")
    [task] = marathon.get("/v2/apps/team/sleeper/tasks").json()["tasks"]

    malformed = marathon.post("/v2/tasks/delete", json={"ids": ["nonsense"]})
    assert malformed.status_code == 400
    assert malformed.json()["message"].startswith("Invalid task id 'nonsense'")
    killed = marathon.post("/v2/tasks/delete", json={"ids": [task["id"]]})
    assert killed.status_code == 200
    assert [t["id"] for t in killed.json()["tasks"]] == [task["id"]]

    # The replacement's deployment holds the app; DELETE needs no force=true (its default).
    assert marathon.put("/v2/apps/team/sleeper", json={"cpus": 0.2}).status_code == 200
    held = marathon.put("/v2/apps/team/sleeper", json={"cpus": 0.3})
    assert held.status_code == 409
    deleted = marathon.delete("/v2/apps/team/sleeper")
    assert deleted.status_code == 200, deleted.text
    wait_for(lambda: marathon.get("/v2/apps").json()["apps"] == [], "the app to be gone")


def test_bad_enums_roles_and_gpus_are_refused_with_422(marathon: httpx.Client) -> None:
    for body, path in (
            ({"container": {"type": "BOGUS"}}, "/container/type"),
            ({"networks": [{"mode": "BOGUS"}]}, "/networks(0)/mode"),
            ({"role": "other"}, "/team/sleeper/role"),
            ({"acceptedResourceRoles": ["slave_public"]}, "/team/sleeper/acceptedResourceRoles"),
            ({"gpus": 1}, "/team/sleeper")):
        answer = marathon.post("/v2/apps", json={**SLEEPER, **body})
        assert answer.status_code == 422, (body, answer.text)
        assert [d["path"] for d in answer.json()["details"]] == [path], answer.text
    assert marathon.get("/v2/apps").json()["apps"] == []
    assert marathon.post("/v2/apps", json={**SLEEPER, "role": "team",
                                           "acceptedResourceRoles": ["*"]}).status_code == 201


def test_gpu_apps_launch_with_the_gpu_resources_feature(cluster: Cluster) -> None:
    cluster.start_agent("cpus:4;mem:4096;disk:1000;gpus:1;ports:[31000-31099]")
    with client_of(cluster, "--enable_features", "gpu_resources") as marathon:
        assert marathon.get("/v2/info").json()["marathon_config"]["features"] == [
            "gpu_resources"]
        gpu = {**SLEEPER, "id": "/gpu", "gpus": 1}
        assert marathon.post("/v2/apps", json=gpu).status_code == 201
        wait_for(lambda: running(marathon, "/gpu", 1), "the GPU app to run")
