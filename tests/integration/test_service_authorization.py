"""The authorization file of Marathon and the batch framework (`--http_authorization`) on real
processes: alice may do everything under /dev (jobs dev.*), bob may only view, admin may do
everything; refusals are 403 naming the reason, and listings show only what the user may view."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.cluster import Cluster, wait_for

pytestmark = pytest.mark.integration

RULES = {"rules": [
    {"users": ["alice"], "actions": ["*"], "paths": ["/dev"]},
    {"users": ["bob"], "actions": ["view"], "paths": ["/"]},
    {"users": ["admin"], "actions": ["*"], "paths": ["/"]},
]}
ALICE, BOB, ADMIN = ("alice", "a-pw"), ("bob", "b-pw"), ("admin", "adm:pw")


def service_flags(tmp_path: Path) -> list[str]:
    users = tmp_path / "users"
    users.write_text("alice a-pw\nbob b-pw\n")
    rules = tmp_path / "authorization.json"
    rules.write_text(json.dumps(RULES))
    return ["--http_credentials", "admin:adm:pw", "--http_credentials_file", str(users),
            "--http_authorization", str(rules)]


def app(app_id: str, cpus: float = 0.1) -> dict[str, object]:
    return {"id": app_id, "cmd": "sleep 300", "cpus": cpus, "mem": 32, "instances": 1}


def refused(answer: httpx.Response, reason: str) -> bool:
    return answer.status_code == 403 and reason in answer.json()["message"]


@pytest.fixture
def marathon(cluster: Cluster, tmp_path: Path) -> Iterator[str]:
    cluster.start_agent()
    _, url = cluster.start_marathon(*service_flags(tmp_path))
    wait_for(lambda: httpx.get(f"{url}/v2/info", auth=BOB).json()["frameworkId"],
             "Marathon to register")
    yield url


def test_marathon_refuses_and_filters_by_path(marathon: str) -> None:
    url = marathon
    assert httpx.get(f"{url}/v2/apps").status_code == 401
    assert httpx.post(f"{url}/v2/apps", json=app("/prod/web"), auth=ADMIN).status_code == 201
    assert httpx.post(f"{url}/v2/apps", json=app("/dev/api"), auth=ALICE).status_code == 201
    # An app no offer fits keeps its deployment and its queue entry.
    assert httpx.post(f"{url}/v2/apps", json=app("/prod/huge", cpus=100), auth=ADMIN
                      ).status_code == 201

    answer = httpx.post(f"{url}/v2/apps", json=app("/prod/x"), auth=ALICE)
    assert refused(answer, "no rule allows user 'alice' to create '/prod/x'"), answer.text
    assert refused(httpx.post(f"{url}/v2/apps", json=app("/devil"), auth=ALICE), "'/devil'")
    assert refused(httpx.post(f"{url}/v2/apps", json=app("/dev/y"), auth=BOB),
                   "no rule allows user 'bob' to create '/dev/y'")
    assert refused(httpx.put(f"{url}/v2/apps/prod/web", json={"cmd": "sleep 1"}, auth=ALICE),
                   "to update '/prod/web'")
    assert refused(httpx.delete(f"{url}/v2/apps/prod/web", auth=ALICE),
                   "to delete '/prod/web'")
    assert refused(httpx.get(f"{url}/v2/apps/prod/web", auth=ALICE), "to view '/prod/web'")
    assert refused(httpx.post(f"{url}/v2/apps/prod/web/restart", auth=ALICE),
                   "to update '/prod/web'")
    assert refused(httpx.delete(f"{url}/v2/groups/prod", auth=ALICE), "to delete '/prod'")
    # A group change is refused for every app it touches outside /dev, at any level.
    root = {"id": "/", "apps": [app("/prod/web2")]}
    assert refused(httpx.put(f"{url}/v2/groups", json=root, auth=ALICE),
                   "to create '/prod/web2'")
    assert refused(httpx.put(f"{url}/v2/groups/prod", json={"scaleBy": 2}, auth=ALICE),
                   "to update '/prod/")
    dev_group = {"id": "/dev", "apps": [app("/dev/api"), app("/dev/worker")]}
    assert httpx.put(f"{url}/v2/groups/dev", json=dev_group, auth=ALICE).status_code == 200

    def ids(user: tuple[str, str]) -> set[str]:
        return {a["id"] for a in httpx.get(f"{url}/v2/apps", auth=user).json()["apps"]}

    assert ids(ALICE) == {"/dev/api", "/dev/worker"}
    assert ids(BOB) == {"/dev/api", "/dev/worker", "/prod/web", "/prod/huge"}
    groups = httpx.get(f"{url}/v2/groups", auth=ALICE).json()
    assert [g["id"] for g in groups["groups"]] == ["/dev"]
    assert refused(httpx.get(f"{url}/v2/groups/prod", auth=ALICE), "to view '/prod'")

    def task_apps(user: tuple[str, str]) -> set[str]:
        return {t["appId"] for t in httpx.get(f"{url}/v2/tasks", auth=user).json()["tasks"]}

    wait_for(lambda: task_apps(BOB) == {"/dev/api", "/dev/worker", "/prod/web"},
             "the tasks to launch")
    assert task_apps(ALICE) == {"/dev/api", "/dev/worker"}
    [prod_task] = httpx.get(f"{url}/v2/apps/prod/web/tasks", auth=BOB).json()["tasks"]
    assert refused(httpx.post(f"{url}/v2/tasks/delete", json={"ids": [prod_task["id"]]},
                              auth=ALICE), "to update '/prod/web'")

    [huge] = [d for d in httpx.get(f"{url}/v2/deployments", auth=BOB).json()
              if d["affectedApps"] == ["/prod/huge"]]
    assert huge["id"] not in {d["id"] for d in
                              httpx.get(f"{url}/v2/deployments", auth=ALICE).json()}
    assert refused(httpx.delete(f"{url}/v2/deployments/{huge['id']}", auth=ALICE),
                   "to update '/prod/huge'")
    assert "/prod/huge" in {q["app"]["id"] for q in
                            httpx.get(f"{url}/v2/queue", auth=BOB).json()["queue"]}
    assert httpx.get(f"{url}/v2/queue", auth=ALICE).json()["queue"] == []
    assert refused(httpx.delete(f"{url}/v2/queue/prod/huge/delay", auth=ALICE),
                   "to update '/prod/huge'")
    assert refused(httpx.delete(f"{url}/v2/leader", auth=ALICE), "to update '/'")
    assert httpx.delete(f"{url}/v2/apps/dev/worker", auth=ALICE).status_code == 200


def test_marathon_event_stream_shows_only_what_the_user_may_view(marathon: str) -> None:
    url = marathon
    seen: list[str] = []
    with httpx.stream("GET", f"{url}/v2/events", auth=ALICE,
                      timeout=httpx.Timeout(60)) as stream:
        assert stream.status_code == 200
        assert httpx.post(f"{url}/v2/apps", json=app("/prod/ev"), auth=ADMIN
                          ).status_code == 201
        assert httpx.post(f"{url}/v2/apps", json=app("/dev/ev"), auth=ALICE
                          ).status_code == 201
        for line in stream.iter_lines():
            if line.startswith("data:"):
                seen.append(line)
                if '"eventType":"api_post_event"' in line and "/dev/ev" in line:
                    break
    assert not [line for line in seen if "/prod" in line]


@pytest.fixture
def batch(cluster: Cluster, tmp_path: Path) -> Iterator[str]:
    _, url = cluster.start_batch(*service_flags(tmp_path))
    wait_for(lambda: httpx.get(f"{url}/info", auth=BOB).json()["frameworkId"],
             "the batch framework to register")
    yield url


def job(job_id: str, cpus: float = 0.1) -> dict[str, object]:
    return {"id": job_id, "run": {"cmd": "sleep 1", "cpus": cpus, "mem": 32}}


def test_batch_refuses_and_filters_by_job_path(batch: str) -> None:
    url = batch
    assert httpx.get(f"{url}/v1/jobs").status_code == 401
    assert httpx.post(f"{url}/v1/jobs", json=job("dev.backup"), auth=ALICE).status_code == 201
    assert httpx.post(f"{url}/v1/jobs", json=job("prod.backup", cpus=100), auth=ADMIN
                      ).status_code == 201
    assert refused(httpx.post(f"{url}/v1/jobs", json=job("prod.x"), auth=ALICE),
                   "no rule allows user 'alice' to create '/prod/x'")
    assert refused(httpx.post(f"{url}/v1/jobs", json=job("devil"), auth=ALICE), "'/devil'")
    assert refused(httpx.post(f"{url}/v0/scheduled-jobs", json=job("devil"), auth=ALICE),
                   "'/devil'")
    assert refused(httpx.post(f"{url}/v1/jobs", json=job("dev.y"), auth=BOB),
                   "user 'bob' to create '/dev/y'")
    assert refused(httpx.get(f"{url}/v1/jobs/prod.backup", auth=ALICE),
                   "to view '/prod/backup'")
    assert refused(httpx.put(f"{url}/v1/jobs/prod.backup", json=job("prod.backup"),
                             auth=ALICE), "to update '/prod/backup'")
    assert refused(httpx.delete(f"{url}/v1/jobs/prod.backup", auth=ALICE),
                   "to delete '/prod/backup'")
    assert refused(httpx.post(f"{url}/v1/jobs/prod.backup/runs", auth=ALICE),
                   "to update '/prod/backup'")
    assert refused(httpx.post(f"{url}/v1/jobs/dev.backup/runs", auth=BOB),
                   "to update '/dev/backup'")
    schedule = {"id": "nightly", "cron": "0 3 * * *"}
    assert refused(httpx.post(f"{url}/v1/jobs/prod.backup/schedules", json=schedule,
                              auth=ALICE), "to update '/prod/backup'")
    assert httpx.post(f"{url}/v1/jobs/dev.backup/schedules", json=schedule, auth=ALICE
                      ).status_code == 201

    def ids(user: tuple[str, str]) -> list[str]:
        return [j["id"] for j in httpx.get(f"{url}/v1/jobs", auth=user).json()]

    assert ids(ALICE) == ["dev.backup"]
    assert ids(BOB) == ["dev.backup", "prod.backup"]

    run = httpx.post(f"{url}/v1/jobs/prod.backup/runs", auth=ADMIN)
    assert run.status_code == 201
    assert refused(httpx.get(f"{url}/v1/jobs/prod.backup/runs/{run.json()['id']}", auth=ALICE),
                   "to view '/prod/backup'")
    assert refused(httpx.post(
        f"{url}/v1/jobs/prod.backup/runs/{run.json()['id']}/actions/stop", auth=ALICE),
        "to update '/prod/backup'")
    wait_for(lambda: [q["jobId"] for q in httpx.get(f"{url}/v1/queue", auth=BOB).json()]
             == ["prod.backup"], "the run to wait for offers")
    assert httpx.get(f"{url}/v1/queue", auth=ALICE).json() == []
    assert refused(httpx.get(f"{url}/v1/set-aside-records", auth=ALICE), "to view '/'")
    assert httpx.delete(f"{url}/v1/jobs/dev.backup", auth=ALICE).status_code == 200
