"""Two batch frameworks electing a leader through ZooKeeper: the standby forwards requests, and
after kill -9 of the leader the other takes over with the jobs and history it recovers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.cluster import wait_for
from tests.integration.elected_services import Service, elected_services
from tests.integration.elected_services import leader_of as elected_leader

pytestmark = pytest.mark.integration

JOB = {"id": "ha.job", "run": {"cmd": "echo done", "cpus": 0.1, "mem": 32}}


@pytest.fixture
def batches(tmp_path: Path) -> Iterator[list[Service]]:
    with elected_services(tmp_path, lambda cluster: cluster.start_batch, ("batch-1", "batch-2"),
                          "/batch", "2secs") as started:
        yield started


def leader_of(batches: list[Service]) -> Service:
    return elected_leader(batches, "/info")


def successes(client: httpx.Client) -> int:
    job: dict[str, Any] = client.get("/v1/jobs/ha.job", params={"embed": "history"}).json()
    return int(job["history"]["successCount"])


def test_standby_forwards_and_failover_keeps_jobs_and_history(
    batches: list[Service],
) -> None:
    leader, _ = leader_of(batches)
    standby, standby_client = next(b for b in batches if b[0] is not leader)
    wait_for(lambda: standby_client.get("/info").json()["leader"], "the standby to know the leader")
    leader_address = standby_client.get("/info").json()["leader"]
    assert standby_client.get("/leader").json() == {"leader": leader_address}  # not forwarded
    standby_metrics = standby_client.get("/v1/metrics").json()  # answered for itself
    assert standby_metrics["gauges"] == {"metronome.leader.gauge": {"value": 0}}

    assert standby_client.post("/v1/jobs", json=JOB).status_code == 201  # forwarded
    assert standby_client.post("/v1/jobs/ha.job/runs").status_code == 201
    wait_for(lambda: successes(standby_client) == 1, "the first run to succeed")

    leader.kill9()
    new_leader, client = leader_of(batches)
    assert new_leader is standby
    assert successes(client) == 1  # history recovered from ZooKeeper
    assert client.post("/v1/jobs/ha.job/runs").status_code == 201
    wait_for(lambda: successes(client) == 2, "a run on the new leader to succeed")
