"""Marathon as users run it: a real `marathon` process on a real master and agent, driven
over its REST API with an HTTP client."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from marathon.state import ROOT_KEY
from mesos_coordination.store import store_key
from tests.integration.cluster import JSON_TYPE, Cluster, wait_for, write_local_records
from tests.integration.elected_services import restart

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "conformance" / "marathon"
WEB = {"id": "/web", "cmd": "python3 -m http.server $PORT0", "cpus": 0.1, "mem": 32,
       "instances": 2}


@pytest.fixture
def marathon(cluster: Cluster) -> Iterator[httpx.Client]:
    """A Marathon (local state under the test's work_dir) on a master with one agent."""
    # A hostname that resolves: Marathon's health checks connect to the task's host.
    cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]", hostname="127.0.0.1")
    _, url = cluster.start_marathon()
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/v2/info").json()["frameworkId"], "marathon to register")
        yield client


def app(client: httpx.Client, app_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = client.get(f"/v2/apps{app_id}", params={"embed": "app.tasks"}
                                        ).json()["app"]
    return answer


def settled(client: httpx.Client, app_id: str, running: int) -> dict[str, Any] | None:
    """The app once `running` tasks run and no deployment holds it."""
    current = app(client, app_id)
    if current["tasksRunning"] == running and not current["deployments"] \
            and len(current["tasks"]) == running:
        return current
    return None


def serves(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_an_app_is_deployed_scaled_restarted_and_destroyed(marathon: httpx.Client) -> None:
    created = marathon.post("/v2/apps", json=WEB)
    assert created.status_code == 201, created.text
    assert created.headers["Location"] == "/v2/apps/web"
    deployment = created.headers["Marathon-Deployment-Id"]
    assert created.json()["deployments"] == [{"id": deployment}]

    current = wait_for(lambda: settled(marathon, "/web", 2), "two running instances")
    ports = [task["ports"][0] for task in current["tasks"]]
    wait_for(lambda: all(serves(port) for port in ports), "both instances to serve HTTP")
    env_check = current["tasks"][0]["id"]
    assert env_check.startswith("web.instance-")

    scaled = marathon.patch("/v2/apps/web", json={"instances": 3})
    assert scaled.status_code == 200 and scaled.json()["deploymentId"]
    before = {t["id"] for t in wait_for(lambda: settled(marathon, "/web", 3), "3 running")[
        "tasks"]}

    restarted = marathon.post("/v2/apps/web/restart")
    assert restarted.status_code == 200
    after = wait_for(
        lambda: (s := settled(marathon, "/web", 3)) and not {t["id"] for t in s["tasks"]}
        & before and s,
        "every instance to be replaced",
    )
    assert after["versionInfo"]["lastConfigChangeAt"] == restarted.json()["version"]
    versions = marathon.get("/v2/apps/web/versions").json()["versions"]
    assert len(versions) == 3 and versions[0] == restarted.json()["version"]

    destroyed = marathon.delete("/v2/apps/web")
    assert destroyed.status_code == 200
    wait_for(lambda: marathon.get("/v2/tasks").json() == {"tasks": []}, "every task gone")
    assert marathon.get("/v2/apps").json() == {"apps": []}
    assert marathon.get("/v2/apps/web").status_code == 404
    wait_for(lambda: not any(serves(t["ports"][0]) for t in after["tasks"]), "servers gone")


def test_the_event_stream_reports_deployments_and_task_states(marathon: httpx.Client) -> None:
    seen: list[dict[str, Any]] = []
    with marathon.stream("GET", "/v2/events",
                         params={"event_type": ["status_update_event", "deployment_success",
                                                "api_post_event"]},
                         timeout=httpx.Timeout(10, read=30)) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        assert marathon.post("/v2/apps", json={**WEB, "instances": 1}).status_code == 201
        for line in stream.iter_lines():
            if line.startswith("data: "):
                seen.append(json.loads(line.removeprefix("data: ")))
            if any(e["eventType"] == "deployment_success" for e in seen):
                break
    states = [e["taskStatus"] for e in seen if e["eventType"] == "status_update_event"]
    assert "TASK_RUNNING" in states
    [posted] = [e for e in seen if e["eventType"] == "api_post_event"]
    assert posted["uri"] == "/v2/apps" and posted["appDefinition"]["id"] == "/web"
    assert all(e["appId"] == "/web" for e in seen if "appId" in e)


def test_bad_requests_get_marathons_answers(marathon: httpx.Client) -> None:
    invalid = marathon.post("/v2/apps", json={"id": "/bad", "cmd": "x", "cpus": -1})
    assert invalid.status_code == 422
    assert {"path": "/cpus", "errors": ["error.min"]} in invalid.json()["details"]
    assert marathon.post("/v2/apps", headers=JSON_TYPE, content=b'{"id": ').status_code == 400
    assert marathon.get("/v2/apps/nope").status_code == 404

    # An app that cannot be placed keeps its deployment running: changes need force=true.
    huge = {"id": "/huge", "cmd": "sleep 600", "cpus": 100, "mem": 32}
    assert marathon.post("/v2/apps", json=huge).status_code == 201
    locked = marathon.put("/v2/apps/huge", json={**huge, "cpus": 200})
    assert locked.status_code == 409
    assert locked.json()["deployments"]
    queue = marathon.get("/v2/queue").json()["queue"]
    assert [entry["app"]["id"] for entry in queue] == ["/huge"]
    forced = marathon.put("/v2/apps/huge", params={"force": "true"}, json={**huge, "cpus": 0.1})
    assert forced.status_code == 200
    wait_for(lambda: settled(marathon, "/huge", 1), "the fixed app to run")
    assert marathon.get("/v2/queue").json() == {"queue": []}


def test_conformance_examples_are_accepted_and_round_trip(marathon: httpx.Client) -> None:
    apps = json.loads((FIXTURES / "apps_create.json").read_text())
    for body in reversed(apps):  # the dependency first
        answer = marathon.post("/v2/apps", json=body)
        assert answer.status_code == 201, answer.text
    example = json.loads((FIXTURES / "app-check-http-example.json").read_text())
    assert marathon.post("/v2/apps", json=example).status_code == 201
    for body in [*apps, example]:
        stored = app(marathon, "/" + body["id"].lstrip("/"))
        for field in ("cmd", "cpus", "mem", "instances"):
            assert stored[field] == body[field]
    patched = marathon.patch("/v2/apps", json=json.loads(
        (FIXTURES / "apps_patch.json").read_text()), params={"force": "true"})
    assert patched.status_code == 200, patched.text
    assert app(marathon, "/test/sleep60")["cpus"] == 0.3
    assert app(marathon, "/test/sleep60")["cmd"] == "sleep 60"  # PATCH keeps other fields


def test_health_checks_gate_deployments_and_replace_unhealthy_instances(
    marathon: httpx.Client,
) -> None:
    check = {"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30,
             "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 2}
    created = marathon.post("/v2/apps", json={**WEB, "healthChecks": [check]})
    assert created.status_code == 201, created.text
    healthy = wait_for(
        lambda: (a := settled(marathon, "/web", 2)) and a["tasksHealthy"] == 2 and a,
        "both instances healthy",
    )
    results = healthy["tasks"][0]["healthCheckResults"]
    assert results[0]["alive"] is True and results[0]["consecutiveFailures"] == 0

    # An app whose check answers 404: once the grace period is over its instance fails its
    # checks, is killed and replaced; the healthy app is not touched.
    sick = {**WEB, "id": "/sick", "instances": 1,
            "healthChecks": [{**check, "path": "/missing", "gracePeriodSeconds": 0}]}
    assert marathon.post("/v2/apps", json=sick).status_code == 201
    first = wait_for(lambda: [t["id"] for t in app(marathon, "/sick")["tasks"]
                              if t.get("healthCheckResults")], "a checked instance")
    wait_for(lambda: first[0] not in {t["id"] for t in app(marathon, "/sick")["tasks"]},
             "the unhealthy instance to be killed")
    wait_for(lambda: app(marathon, "/sick")["tasks"], "a replacement")
    assert app(marathon, "/sick")["tasksHealthy"] == 0
    assert {t["id"] for t in app(marathon, "/web")["tasks"]} == {
        t["id"] for t in healthy["tasks"]}


def test_readiness_checks_hold_deployments_until_instances_are_ready(
    marathon: httpx.Client,
) -> None:
    check = {"name": "ready", "protocol": "HTTP", "path": "/", "portName": "http",
             "intervalSeconds": 2, "timeoutSeconds": 1, "httpStatusCodesForReady": [200],
             "preserveLastResponse": True}
    ready_app = {**WEB, "instances": 1, "portDefinitions": [{"port": 0, "name": "http"}],
                 "readinessChecks": [check]}
    assert marathon.post("/v2/apps", json=ready_app).status_code == 201
    wait_for(lambda: settled(marathon, "/web", 1), "the ready instance's deployment to end")

    never = {**ready_app, "id": "/never", "readinessChecks": [{**check, "path": "/missing"}]}
    assert marathon.post("/v2/apps", json=never).status_code == 201

    def not_ready() -> list[dict[str, Any]] | None:
        for deployment in marathon.get("/v2/deployments").json():
            for action in deployment["currentActions"]:
                if action["app"] == "/never" and action["readinessCheckResults"]:
                    results: list[dict[str, Any]] = action["readinessCheckResults"]
                    return results
        return None

    [result] = wait_for(not_ready, "the deployment to show the readiness result")
    assert result["ready"] is False and result["lastResponse"]["status"] == 404
    assert app(marathon, "/never")["tasksRunning"] == 1  # running, just not ready


def test_apps_answer_as_marathon_1_9_does(marathon: httpx.Client) -> None:
    """No `queuedTask`; GET /v2/apps/{id} embeds tasks; PUT is partial unless
    `partialUpdate=false`; `/v2/apps/{group}/*` lists the group's apps."""
    unplaceable = {"id": "/team/huge", "cmd": "sleep 600", "cpus": 100, "mem": 32}
    assert marathon.post("/v2/apps", json=unplaceable).status_code == 201
    assert marathon.post("/v2/apps", json={**WEB, "instances": 1}).status_code == 201
    queued = marathon.get("/v2/apps/team/huge").json()["app"]
    assert "queuedTask" not in queued
    assert queued["tasks"] == [] and queued["tasksStaged"] == 0 and queued["deployments"]
    assert all("queuedTask" not in a for a in marathon.get("/v2/apps").json()["apps"])

    web = wait_for(lambda: (a := marathon.get("/v2/apps/web").json()["app"])["tasks"]
                   and not a["deployments"] and a, "/web to run, its task embedded")
    assert web["tasksRunning"] == 1
    # /web launched; the unplaceable app stays queued for as long as it exists.
    assert [e["app"]["id"] for e in marathon.get("/v2/queue").json()["queue"]] == ["/team/huge"]

    assert [a["id"] for a in marathon.get("/v2/apps/team/*").json()["*"]] == ["/team/huge"]
    assert sorted(a["id"] for a in marathon.get("/v2/apps/*").json()["*"]) == [
        "/team/huge", "/web"]
    missing = marathon.get("/v2/apps/nowhere/*")
    assert missing.status_code == 404
    assert missing.json() == {"message": "Group '/nowhere' does not exist"}

    partial = marathon.put("/v2/apps/team/huge", params={"force": "true"}, json={"cpus": 0.1})
    assert partial.status_code == 200, partial.text
    changed = marathon.get("/v2/apps/team/huge").json()["app"]
    assert changed["cpus"] == 0.1 and changed["cmd"] == "sleep 600"
    full = marathon.put("/v2/apps/team/huge", params={"partialUpdate": "false", "force": "true"},
                        json={"cpus": 0.2})
    assert full.status_code == 422, full.text
    assert full.json()["details"]


def test_info_and_metrics_answer_as_marathon_1_9_does(marathon: httpx.Client) -> None:
    info = marathon.get("/v2/info").json()
    assert {"features", "task_lost_expunge_initial_delay",
            "task_lost_expunge_interval"} <= set(info["marathon_config"])
    assert {"zk", "zk_session_timeout", "zk_timeout", "zk_connection_timeout",
            "zk_max_versions"} <= set(info["zookeeper_config"])
    assert {"http_port", "https_port"} <= set(info["http_config"])

    assert marathon.post("/v2/apps", json={**WEB, "instances": 2}).status_code == 201
    wait_for(lambda: settled(marathon, "/web", 2), "two running instances")
    snapshot = marathon.get("/metrics")
    assert snapshot.headers["content-type"] == "application/json"
    body = snapshot.json()
    assert body["version"] == "4.0.0"
    assert {"counters", "histograms", "meters", "timers"} <= set(body)
    gauges = body["gauges"]
    assert gauges["marathon.apps.active.gauge"] == {"value": 1}
    assert gauges["marathon.instances.running.gauge"] == {"value": 2}
    assert gauges["marathon.deployments.active.gauge"] == {"value": 0}
    assert gauges["marathon.uptime.gauge.seconds"]["value"] > 0
    prometheus = marathon.get("/metrics/prometheus")
    assert prometheus.headers["content-type"].startswith("text/plain")
    assert "marathon_apps 1\n" in prometheus.text


def test_a_poisoned_app_record_is_set_aside_at_restart_and_deleted(
    cluster: Cluster, marathon: httpx.Client,
) -> None:
    """`POST /v2/groups/__main__` with app `web` is refused and stores nothing; the records an
    old leader wrote for it do not stop a restarted Marathon, which sets them aside, reports
    them and keeps the rest; DELETE removes them."""
    process = next(p for p in cluster.processes if p.name == "marathon")
    good = {"id": "/good", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 1}
    marathon.post("/v2/apps", json=good).raise_for_status()
    wait_for(lambda: settled(marathon, "/good", 1), "/good to run")
    body = {"apps": [{"id": "web", "cmd": "sleep 1"}]}
    assert marathon.post("/v2/groups/__main__", json=body).status_code == 422
    assert marathon.put("/v2/groups/__main__", json=body).status_code == 422
    bad = store_key("apps", "/__main__/web@v1")

    def poison() -> None:
        state = cluster.work_dir / "marathon" / "state"
        entries = write_local_records(state, {})
        assert not [key for key in entries if "__main__" in key]
        assert b"__main__" not in entries[ROOT_KEY]
        root = json.loads(entries[ROOT_KEY])
        root["groups"].append({"id": "/__main__", "version": "v1", "dependencies": [],
                               "apps": [["/__main__/web", "v1"]], "groups": []})
        write_local_records(state, {
            ROOT_KEY: json.dumps(root).encode(),
            bad: json.dumps({"id": "/__main__/web", "cmd": "sleep 1"}).encode()})

    for while_down in (poison, lambda: None):  # after poisoning, and once more
        process.kill9()
        while_down()
        restart((process, marathon))
        wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon to register")
        aside = marathon.get("/v2/set-aside-records").json()["setAsideRecords"]
        assert {r["key"] for r in aside} == {ROOT_KEY, bad}
        assert "marathon_set_aside_records 2" in marathon.get("/metrics/prometheus").text
        assert "record set aside" in process.log()
        assert wait_for(lambda: settled(marathon, "/good", 1), "/good to run")

    assert marathon.delete("/v2/set-aside-records").status_code == 400
    assert marathon.delete("/v2/set-aside-records", params={"key": "instances/x"}
                           ).status_code == 404
    remaining = marathon.delete("/v2/set-aside-records", params={"key": ROOT_KEY})
    assert remaining.status_code == 200
    assert [r["key"] for r in remaining.json()["setAsideRecords"]] == [bad]
    assert marathon.delete("/v2/apps/__main__/web").status_code == 200
    process.kill9()
    restart((process, marathon))
    wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon to register")
    assert marathon.get("/v2/set-aside-records").json()["setAsideRecords"] == []
    assert [a["id"] for a in marathon.get("/v2/apps").json()["apps"]] == ["/good"]


def test_service_ports_and_a_killed_instance_leaving_before_its_sigterm(cluster: Cluster) -> None:
    """Service ports come from --local_port_min/max and show in the text/plain task list; a
    killed instance is TASK_KILLING and out of that list while it still serves (SIGTERM
    comes --sigterm_delay later)."""
    cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]", hostname="127.0.0.1")
    _, url = cluster.start_marathon("--sigterm_delay", "600secs",
                                    "--local_port_min", "15000", "--local_port_max", "15010")
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/v2/info").json()["frameworkId"], "marathon to register")
        body = {**WEB, "id": "/shop/web", "portDefinitions": [{"port": 0}]}
        assert client.post("/v2/apps", json=body).status_code == 201
        current = wait_for(lambda: settled(client, "/shop/web", 2), "two running instances")
        assert [d["port"] for d in current["portDefinitions"]] == [15000]
        assert all(task["servicePorts"] == [15000] for task in current["tasks"])
        endpoints = {f"127.0.0.1:{task['ports'][0]}": task for task in current["tasks"]}
        wait_for(lambda: all(serves(t["ports"][0]) for t in current["tasks"]), "HTTP servers")

        def listed() -> set[str]:
            text = client.get("/v2/tasks", headers={"Accept": "text/plain"}).text
            [line] = text.splitlines()
            app_id, service_port, *hosts = line.split("\t")
            assert (app_id, service_port, hosts[-1]) == ("shop_web", "15000", "")
            return set(hosts[:-1])

        assert listed() == set(endpoints)
        clash = client.post("/v2/apps", json={**WEB, "id": "/other",
                                              "portDefinitions": [{"port": 15000}]})
        assert clash.status_code == 422 and "/shop/web" in clash.text

        doomed, kept = endpoints
        task_id = endpoints[doomed]["id"]
        killed = client.delete(f"/v2/apps/shop/web/tasks/{task_id}", params={"scale": "true"})
        assert killed.status_code == 200, killed.text

        def state_of(task: str) -> str | None:
            found = [t for t in client.get("/v2/tasks").json()["tasks"] if t["id"] == task]
            return found[0]["state"] if found else None

        wait_for(lambda: state_of(task_id) == "TASK_KILLING", "the task to be TASK_KILLING")
        assert listed() == {kept}
        assert serves(int(doomed.rsplit(":", 1)[1])), "the killed instance got SIGTERM already"
