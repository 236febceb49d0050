"""The master's HTTP endpoints on real processes: /state, /metrics/snapshot and Prometheus
/metrics against the cluster's real state, /flags, /version, /health, and /redirect and the
standby's answers with two masters electing a leader through ZooKeeper."""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesos_http.operator_http import prometheus_name
from mesos_master.http import COUNTERS, MasterHttp
from mesos_master.server import LeaderGate
from protos import mesos_pb2
from tests.conftest import unique_zk_path
from tests.integration.cluster import Cluster, Process, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import launch_once, running
from tests.zookeeper import ZooKeeperEnsemble

pytestmark = pytest.mark.integration

_TYPE = re.compile(r"# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|untyped)")
_HELP = re.compile(r"# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .+")
_SAMPLE = re.compile(r'(([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?:[a-zA-Z_]\w*="(?:[^"\\]|\\.)*",?)*\})?)'
                     r" (\S+)")


def parse_prometheus(text: str) -> tuple[dict[str, float], dict[str, str]]:
    """Samples (by name, with its labels if any: `name{a="b"}`) and declared types (by
    name) of a Prometheus text exposition."""
    samples: dict[str, float] = {}
    types: dict[str, str] = {}
    sampled: set[str] = set()
    for line in text.splitlines():
        if match := _TYPE.fullmatch(line):
            assert match[1] not in types, f"{match[1]} is declared twice"
            types[match[1]] = match[2]
        elif _HELP.fullmatch(line):
            continue
        elif match := _SAMPLE.fullmatch(line):
            assert match[1] not in samples, f"{match[1]} is exposed twice"
            assert match[2] in types, f"{match[2]} is exposed before its TYPE line"
            samples[match[1]] = float(match[3])
            sampled.add(match[2])
        else:
            raise AssertionError(f"not a line of the Prometheus text format: {line!r}")
    assert sampled == set(types), "every sample has exactly one TYPE line"
    return samples, types


def get(process: Process, path: str) -> Any:
    response = httpx.get(process.http_url + path, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def framework_named(state: dict[str, Any], name: str) -> dict[str, Any]:
    matching: list[dict[str, Any]] = [f for f in state["frameworks"] if f["name"] == name]
    assert len(matching) == 1, matching
    return matching[0]


def test_state_and_metrics_follow_the_cluster(cluster: Cluster) -> None:
    master = cluster.masters[0]
    cluster.start_agent(attributes="rack:r1;level:3")
    scheduler = RecordingScheduler(on_offers=launch_once(
        ("sleeper", "sleep 600"), ("done", "true"), ("broken", "exit 3"), cpus=0.5, mem=64,
    ))
    with running(cluster, scheduler, "observed") as driver:
        scheduler.wait_for_state("sleeper", "TASK_RUNNING")
        scheduler.wait_for_state("done", "TASK_FINISHED")
        scheduler.wait_for_state("broken", "TASK_FAILED")
        state = wait_for(
            lambda: (s := get(master, "/state"))
            and len(framework_named(s, "observed")["completed_tasks"]) == 2 and s,
            "the acknowledged terminal tasks to be completed tasks",
        )
        assert state["pid"] == state["leader"] == f"master@127.0.0.1:{master.http_port}"
        assert state["leader_info"]["http_port"] == master.http_port
        assert state["elected_time"] >= state["start_time"]
        assert state["activated_slaves"] == 1
        [agent] = state["slaves"]
        assert agent["hostname"] == "host1" and agent["active"] is True
        assert agent["resources"] == {
            "cpus": 4.0, "mem": 4096.0, "disk": 10000.0, "gpus": 0.0, "ports": "[31000-31099]",
        }
        assert agent["used_resources"]["cpus"] == 0.5
        assert agent["attributes"] == {"rack": "r1", "level": 3.0}
        framework = framework_named(state, "observed")
        assert framework["active"] and framework["connected"]
        assert framework["roles"] == ["*"] and framework["user"] == "tester"
        assert framework["used_resources"]["mem"] == 64.0
        [sleeper] = framework["tasks"]
        assert sleeper["id"] == "sleeper" and sleeper["state"] == "TASK_RUNNING"
        assert sleeper["slave_id"] == agent["id"] and sleeper["framework_id"] == framework["id"]
        assert sleeper["resources"]["cpus"] == 0.5
        assert sleeper["statuses"][-1]["state"] == "TASK_RUNNING"
        assert {t["id"]: t["state"] for t in framework["completed_tasks"]} == {
            "done": "TASK_FINISHED", "broken": "TASK_FAILED",
        }

        snapshot = get(master, "/metrics/snapshot")
        assert {name: snapshot[name] for name in (
            "master/elected", "master/slaves_active", "master/slaves_connected",
            "master/slaves_unreachable", "master/frameworks_active", "master/tasks_running",
            "master/tasks_finished", "master/tasks_failed", "master/tasks_killed",
            "master/cpus_total", "master/cpus_used", "master/cpus_percent",
            "master/mem_total", "master/mem_used",
        )} == {
            "master/elected": 1, "master/slaves_active": 1, "master/slaves_connected": 1,
            "master/slaves_unreachable": 0, "master/frameworks_active": 1,
            "master/tasks_running": 1, "master/tasks_finished": 1, "master/tasks_failed": 1,
            "master/tasks_killed": 0, "master/cpus_total": 4.0, "master/cpus_used": 0.5,
            "master/cpus_percent": 0.125, "master/mem_total": 4096.0, "master/mem_used": 64.0,
        }

        response = httpx.get(master.http_url + "/metrics", timeout=10)
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples, types = parse_prometheus(response.text)
        assert set(samples) == {prometheus_name(name) for name in snapshot}
        assert samples["mesos_master_tasks_running"] == 1
        assert samples["mesos_master_tasks_failed"] == 1
        assert samples["mesos_master_cpus_used"] == 0.5
        assert samples["mesos_master_slaves_active"] == 1
        assert types["mesos_master_tasks_finished"] == "counter"
        assert types["mesos_master_tasks_running"] == "gauge"
        assert {n for n, kind in types.items() if kind == "counter"} == {
            prometheus_name(name) for name in COUNTERS
        }

        driver.kill_task("sleeper")
        scheduler.wait_for_state("sleeper", "TASK_KILLED")
        snapshot = get(master, "/metrics/snapshot")
        assert snapshot["master/tasks_killed"] == 1
        assert snapshot["master/tasks_running"] == 0
        assert snapshot["master/cpus_used"] == 0.0


def test_flags_version_and_health(cluster: Cluster) -> None:
    master = cluster.masters[0]
    flags = get(master, "/flags")["flags"]
    assert flags["http_port"] == str(master.http_port)
    assert flags["agent_ping_timeout"] == "0.5secs"
    assert flags["max_agent_ping_timeouts"] == "4"
    assert all(isinstance(value, str) for value in flags.values())
    assert get(master, "/master/flags")["flags"] == flags
    assert get(master, "/version")["version"] == get(master, "/state")["version"]
    health = httpx.get(master.http_url + "/health", timeout=10)
    assert health.status_code == 200 and health.content == b""


@pytest.fixture
def two_masters(tmp_path: Path, shared_zookeeper: ZooKeeperEnsemble) -> Iterator[Cluster]:
    zk_url = shared_zookeeper.url(unique_zk_path("/mesos"))
    cluster = Cluster(tmp_path, FAST_MASTER_FLAGS, zk_url=zk_url)
    try:
        cluster.start_master()
        cluster.start_master()
        yield cluster
    finally:
        cluster.close()


def redirect_target(master: Process) -> str | None:
    response = httpx.get(master.http_url + "/redirect", timeout=10, follow_redirects=False)
    return response.headers["location"] if response.status_code == 307 else None


def test_redirect_and_standby_answers_with_two_masters(two_masters: Cluster) -> None:
    cluster = two_masters
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    [standby] = [m for m in cluster.masters if m is not leader]
    for master in (leader, standby):
        target = wait_for(partial(redirect_target, master), f"{master.name} to know the leader")
        assert target == leader.http_url

    state = get(standby, "/state")
    assert state["leader"] == f"master@127.0.0.1:{leader.http_port}" != state["pid"]
    assert state["leader_info"]["http_port"] == leader.http_port
    assert state["slaves"] == [] and state["frameworks"] == [] and "elected_time" not in state
    assert get(standby, "/metrics/snapshot")["master/elected"] == 0
    assert get(leader, "/metrics/snapshot")["master/elected"] == 1
    samples, _ = parse_prometheus(httpx.get(standby.http_url + "/metrics", timeout=10).text)
    assert samples["mesos_master_elected"] == 0
    for master in (leader, standby):  # both list the other master as the standby
        standbys = wait_for(lambda m=master: get(m, "/state")["standbys"], "the group's members")
        assert [s["http_port"] for s in standbys] == [standby.http_port]

    leader.kill9()
    wait_for(lambda: redirect_target(standby) == standby.http_url,
             "the standby to take over and redirect to itself")
    wait_for(lambda: get(standby, "/state")["standbys"] == [], "the dead leader to leave")
    wait_for(lambda: get(standby, "/metrics/snapshot")["master/elected"] == 1,
             "the new leader to report itself elected once its registry is recovered")


async def test_redirect_without_a_known_leader_is_unavailable() -> None:
    info = mesos_pb2.MasterInfo(id="m1", hostname="h", address="127.0.0.1", port=1, http_port=2)
    app = MasterHttp(LeaderGate(lambda: None, own_id="m1"), info, {}).app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://master") as client:
        response = await client.get("/redirect", follow_redirects=False)
        assert response.status_code == 503
        assert (await client.get("/metrics/snapshot")).json()["master/elected"] == 0
