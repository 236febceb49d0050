"""Prometheus metrics of every component (`/metrics`; Marathon's at `/metrics/prometheus`, as
Marathon 1.9 serves them), read with the Prometheus client's own parser and checked against what
the cluster really runs: master, agent, Marathon and the batch framework."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.cluster import Cluster, Process, free_port, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS

pytestmark = pytest.mark.integration


def scrape(url: str, path: str = "/metrics") -> dict[str, tuple[str, float]]:
    """{sample name: (metric type, value)} of one exposition; labelled samples (only the
    agents' per-container families have labels) are named `name{task_id}`."""
    response = httpx.get(url + path, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, tuple[str, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            name = sample.name
            if sample.labels:
                assert name.startswith("mesos_container_"), sample
                assert set(sample.labels) == {"framework_id", "executor_id", "task_id",
                                              "container_id"}, sample
                name += "{" + sample.labels["task_id"] + "}"
            assert name not in samples, f"{name} is exposed twice"
            samples[name] = (family.type, sample.value)
    return samples


@pytest.fixture(scope="module")
def running(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Cluster, Process, str, str]]:
    cluster = Cluster(tmp_path_factory.mktemp("metrics"), FAST_MASTER_FLAGS)
    try:
        # Every process starts at once (their start-ups overlap); each follows the master.
        master = cluster.start_master(wait=False)
        agent = cluster.start_agent(http_port=free_port())
        marathon_process, marathon = cluster.start_marathon(wait=False)
        batch_process, batch = cluster.start_batch(wait=False)
        for process in (master, marathon_process, batch_process):
            process.wait_listening()
        wait_for(lambda: httpx.get(marathon + "/v2/info", timeout=10).json()["frameworkId"],
                 "marathon to register")
        wait_for(lambda: httpx.get(batch + "/info", timeout=10).json()["frameworkId"],
                 "batch to register")
        yield cluster, agent, marathon, batch
    finally:
        cluster.close()


def test_every_component_exposes_its_real_state(
    running: tuple[Cluster, Process, str, str],
) -> None:
    cluster, agent, marathon, batch = running
    app = {"id": "/metered", "cmd": "sleep 600", "cpus": 0.1, "mem": 32, "instances": 2,
           "portDefinitions": []}
    assert httpx.post(marathon + "/v2/apps", json=app, timeout=10).status_code == 201
    job = {"id": "metered.job", "run": {"cmd": "true", "cpus": 0.1, "mem": 32}}
    assert httpx.post(batch + "/v1/jobs", json=job, timeout=10).status_code == 201
    assert httpx.post(batch + "/v1/jobs/metered.job/runs", timeout=10).status_code == 201

    def running_instances() -> int:
        tasks = httpx.get(marathon + "/v2/apps/metered/tasks", timeout=10).json()["tasks"]
        return sum(1 for task in tasks if task["state"] == "TASK_RUNNING")

    wait_for(lambda: running_instances() == 2, "two running instances")
    wait_for(lambda: httpx.get(batch + "/v1/jobs/metered.job?embed=history", timeout=10)
             .json()["history"]["successCount"] == 1, "the job's run to succeed")

    master = scrape(cluster.masters[0].http_url)
    assert master["mesos_master_elected"] == ("gauge", 1.0)
    assert master["mesos_master_slaves_active"][1] == 1
    assert master["mesos_master_frameworks_active"][1] == 2
    assert master["mesos_master_tasks_running"][1] == 2
    assert master["mesos_master_tasks_finished_total"][0] == "counter"
    assert master["mesos_master_tasks_finished_total"][1] >= 1
    assert master["mesos_master_cpus_used"][1] == pytest.approx(0.2)

    slave = scrape(agent.http_url)
    assert slave["mesos_slave_tasks_running"][1] == 2
    # Each running instance's container, measured by the agent's isolators.
    limits = {name: value for name, value in slave.items()
              if name.startswith("mesos_container_memory_limit_bytes{metered.")}
    assert list(limits.values()) == [("gauge", 32 * 1024 * 1024)] * 2, limits
    assert all(slave[name.replace("memory_limit_bytes", "cpu_user_seconds_total")][0] == "counter"
               for name in limits)

    apps = scrape(marathon, "/metrics/prometheus")
    assert apps["marathon_elected"] == ("gauge", 1.0)
    assert apps["marathon_apps"][1] == 1
    assert apps["marathon_instances"][1] == 2

    jobs = scrape(batch)
    assert jobs["batch_leader"] == ("gauge", 1.0)
    assert jobs["batch_jobs"][1] == 1
    assert jobs["batch_active_runs"][1] == 0
