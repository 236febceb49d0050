"""Per-container usage on real processes: `/monitor/statistics`, `/containers` and the
container families of `/metrics`, measured by the agent's default isolation (cgroups when this
machine runs the suite as root) and by `posix/cpu,posix/mem`."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesos_agent.agent import USAGE_BATCH
from tests.integration.cluster import Cluster, Process, free_port, port_answers, wait_for
from tests.integration.recording import RecordingScheduler
from tests.integration.test_cli import run_mesos
from tests.integration.test_end_to_end import launch_once, running

pytestmark = pytest.mark.integration

MB = 1024 * 1024
# Holds 20 MB it has written (so resident), then waits.
HOLDER = f"{sys.executable} -c 'import time; held = b\"x\" * {20 * MB}; time.sleep(600)'"
_SAMPLE = re.compile(r'([a-z_]+)\{(.*)\} (\S+)')
_LABEL = re.compile(r'([a-z_]+)="((?:[^"\\]|\\.)*)"')


def ok(agent: Process, endpoint: str, **params: str) -> Any:
    response = httpx.get(agent.http_url + endpoint, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def start_agent(cluster: Cluster) -> Process:
    agent = cluster.start_agent(http_port=free_port())
    assert agent.http_port is not None
    port = agent.http_port
    wait_for(lambda: port_answers(port) or not agent.alive(), "the agent's HTTP endpoints")
    assert agent.alive(), agent.log()
    return agent


def container_samples(text: str) -> dict[tuple[str, str], float]:
    """(metric, task_id) -> value of the `mesos_container_...` samples."""
    samples: dict[tuple[str, str], float] = {}
    for line in text.splitlines():
        match = _SAMPLE.fullmatch(line)
        if match and match[1].startswith("mesos_container_"):
            labels = dict(_LABEL.findall(match[2]))
            assert set(labels) == {"framework_id", "executor_id", "task_id", "container_id"}
            samples[(match[1], labels["task_id"])] = float(match[3])
    return samples


@pytest.mark.parametrize("isolation", [None, "posix/cpu,posix/mem"], ids=["default", "posix"])
def test_a_running_task_is_measured_at_every_usage_endpoint(
    cluster: Cluster, isolation: str | None
) -> None:
    if isolation is not None:
        cluster.agent_flags = [f"--isolation={isolation}"]
    agent = start_agent(cluster)
    scheduler = RecordingScheduler(on_offers=launch_once(
        ("holder", HOLDER), ("done", "echo bye"), cpus=0.5, mem=64))
    with running(cluster, scheduler, "measured"):
        scheduler.wait_for_state("holder", "TASK_RUNNING")
        scheduler.wait_for_state("done", "TASK_FINISHED")

        entry = wait_for(
            lambda: next((e for e in ok(agent, "/monitor/statistics")
                          if e["statistics"].get("mem_rss_bytes", 0) >= 20 * MB), None),
            "the task's memory to be measured")
        assert [e["executor_id"] for e in ok(agent, "/monitor/statistics")] == ["holder"]
        assert entry["framework_id"] == scheduler.framework_id
        assert entry["executor_name"] == "Command Executor (Task: holder)"
        assert entry["source"] == "holder"
        statistics = entry["statistics"]
        assert statistics["cpus_limit"] == 0.5
        assert statistics["mem_limit_bytes"] == 64 * MB
        assert statistics["cpus_user_time_secs"] + statistics["cpus_system_time_secs"] > 0
        assert statistics["timestamp"] > 0
        assert ok(agent, "/monitor/statistics.json")[0]["executor_id"] == "holder"
        isolators = agent.wait_for_log(r'"isolation": "([^"]*)"')[1].split(",")
        assert isolators == (isolation.split(",") if isolation else isolators)
        # Only the memory cgroup knows the page cache and the total charged.
        assert ("mem_total_bytes" in statistics) == ("cgroups/mem" in isolators)

        state = ok(agent, "/state")
        [executor] = [e for f in state["frameworks"] for e in f["executors"]
                      if e["id"] == "holder"]
        [container] = ok(agent, "/containers")
        assert container["container_id"] == executor["container"] == \
            Path(executor["directory"]).name
        assert container["executor_id"] == "holder"
        assert container["status"]["container_id"] == {"value": executor["container"]}
        assert container["status"]["executor_pid"] > 0
        assert container["statistics"]["mem_limit_bytes"] == 64 * MB
        [selected] = ok(agent, "/containers", container_id=executor["container"])
        assert selected["container_id"] == executor["container"]
        assert ok(agent, "/containers", container_id="no-such-container") == []

        metrics = httpx.get(agent.http_url + "/metrics", timeout=10)
        assert metrics.status_code == 200
        samples = container_samples(metrics.text)
        assert samples[("mesos_container_cpus_limit", "holder")] == 0.5
        assert samples[("mesos_container_memory_limit_bytes", "holder")] == 64 * MB
        assert samples[("mesos_container_memory_rss_bytes", "holder")] >= 20 * MB
        assert samples[("mesos_container_cpu_user_seconds_total", "holder")] >= 0
        assert "# TYPE mesos_container_cpu_user_seconds_total counter" in metrics.text
        assert "# TYPE mesos_container_memory_rss_bytes gauge" in metrics.text
        assert {task for _, task in samples} == {"holder"}


def test_mesos_tasks_shows_usage_and_a_dash_once_the_agent_is_gone(cluster: Cluster) -> None:
    agent = start_agent(cluster)
    master_url = cluster.masters[0].http_url
    scheduler = RecordingScheduler(on_offers=launch_once(("holder", HOLDER), cpus=0.5, mem=64))
    with running(cluster, scheduler, "measured"):
        scheduler.wait_for_state("holder", "TASK_RUNNING")
        env = {"MESOS_MASTER_URL": master_url}

        def row() -> str:
            done = run_mesos("tasks", env=env)
            assert done.returncode == 0, done.stderr
            header, *rows = done.stdout.splitlines()
            assert header.split()[-4:] == ["CPU", "TIME", "MEM", "USED"]
            [only] = rows
            return only

        measured = wait_for(lambda: re.search(r" ([\d.]+)s  +([\d.]+) MB/64 MB$", row()),
                            "the task's usage in `mesos tasks`")
        assert float(measured[2]) >= 20
        agent.kill9()
        gone = row()
        assert gone.startswith("holder ") and gone.split()[-2:] == ["-", "-"], gone


def test_every_container_of_many_is_measured(cluster: Cluster) -> None:
    # More containers than the agent measures at once (mesos_agent.agent.USAGE_BATCH).
    count = 2 * USAGE_BATCH + 3
    cluster.agent_flags = ["--isolation=posix/cpu,posix/mem"]
    agent = start_agent(cluster)
    ids = [f"sleeper-{n}" for n in range(count)]
    scheduler = RecordingScheduler(on_offers=launch_once(
        *((task_id, "sleep 600") for task_id in ids), cpus=0.01, mem=16))
    with running(cluster, scheduler, "many"):
        for task_id in ids:
            scheduler.wait_for_state(task_id, "TASK_RUNNING")
        entries = ok(agent, "/monitor/statistics")
        assert sorted(e["executor_id"] for e in entries) == sorted(ids)
        assert {e["statistics"]["mem_limit_bytes"] for e in entries} == {16 * MB}
        assert len({c["container_id"] for c in ok(agent, "/containers")}) == count
