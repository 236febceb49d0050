"""Two batch frameworks electing a leader through ZooKeeper: the standby forwards requests, and
after kill -9 of the leader the other takes over with the jobs and history it recovers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.cluster import Cluster, Process, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.zookeeper import zookeeper

pytestmark = pytest.mark.integration

JOB = {"id": "ha.job", "run": {"cmd": "echo done", "cpus": 0.1, "mem": 32}}


@pytest.fixture
def batches(tmp_path: Path) -> Iterator[list[tuple[Process, httpx.Client]]]:
    with zookeeper(tmp_path / "zk") as ensemble:
        cluster = Cluster(tmp_path, FAST_MASTER_FLAGS)
        clients: list[httpx.Client] = []
        try:
            cluster.start_master()
            cluster.start_agent()
            started = []
            for name in ("batch-1", "batch-2"):
                process, url = cluster.start_batch(
                    "--zk", ensemble.url("/batch"), "--zk_session_timeout", "2secs", name=name)
                clients.append(httpx.Client(base_url=url, timeout=10))
                started.append((process, clients[-1]))
            yield started
        finally:
            for client in clients:
                client.close()
            cluster.close()


def leader_of(batches: list[tuple[Process, httpx.Client]]) -> tuple[Process, httpx.Client]:
    def elected() -> list[tuple[Process, httpx.Client]]:
        return [(p, c) for p, c in batches
                if p.alive() and (info := c.get("/info").json())["elected"]
                and info["frameworkId"]]

    [leader] = wait_for(lambda: (found := elected()) and len(found) == 1 and found,
                        "exactly one elected batch framework")
    return leader


def successes(client: httpx.Client) -> int:
    job: dict[str, Any] = client.get("/v1/jobs/ha.job", params={"embed": "history"}).json()
    return int(job["history"]["successCount"])


def test_standby_forwards_and_failover_keeps_jobs_and_history(
    batches: list[tuple[Process, httpx.Client]],
) -> None:
    leader, _ = leader_of(batches)
    standby, standby_client = next(b for b in batches if b[0] is not leader)
    wait_for(lambda: standby_client.get("/info").json()["leader"], "the standby to know the leader")

    assert standby_client.post("/v1/jobs", json=JOB).status_code == 201  # forwarded
    assert standby_client.post("/v1/jobs/ha.job/runs").status_code == 201
    wait_for(lambda: successes(standby_client) == 1, "the first run to succeed")

    leader.kill9()
    new_leader, client = leader_of(batches)
    assert new_leader is standby
    assert successes(client) == 1  # history recovered from ZooKeeper
    assert client.post("/v1/jobs/ha.job/runs").status_code == 201
    wait_for(lambda: successes(client) == 2, "a run on the new leader to succeed")
