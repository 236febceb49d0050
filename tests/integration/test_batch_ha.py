"""Two batch frameworks electing a leader through ZooKeeper: the standby forwards requests, and
after kill -9 of the leader the other takes over with the jobs and history it recovers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesos_coordination.store import store_key
from tests.integration.cluster import wait_for
from tests.integration.elected_services import (
    Service,
    elected_services,
    stored_keys,
    takeovers,
    write_records,
)
from tests.integration.elected_services import leader_of as elected_leader
from tests.zookeeper import ZooKeeperEnsemble

pytestmark = pytest.mark.integration

JOB = {"id": "ha.job", "run": {"cmd": "echo done", "cpus": 0.1, "mem": 32}}


@pytest.fixture
def batches(tmp_path: Path, shared_zookeeper: ZooKeeperEnsemble) -> Iterator[list[Service]]:
    with elected_services(tmp_path, lambda cluster: cluster.start_batch, ("batch-1", "batch-2"),
                          "/batch", "2secs", shared_zookeeper) as started:
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


def test_a_poisoned_job_is_set_aside_and_every_instance_recovers_the_rest(
    batches: list[Service],
) -> None:
    """A job an old leader stored under an id no request may name is set aside, with its
    schedule, by each instance that recovers it; DELETE removes it."""
    leader = leader_of(batches)
    client = leader[1]
    schedule = {"id": "hourly", "cron": "0 * * * *"}
    assert client.post("/v1/jobs", json={**JOB, "schedules": [schedule]}).status_code == 201
    for body in ({**JOB, "id": "æÊÚl"}, {**JOB, "id": "__main__"}):
        assert client.post("/v1/jobs", json=body).status_code == 422
        assert client.post("/v0/scheduled-jobs", json=body).status_code == 422
    assert client.post("/v1/jobs/ha.job/schedules",
                       json={**schedule, "id": "æÊÚl"}).status_code == 422
    assert stored_keys(leader, "jobs") == {store_key("jobs", "ha.job")}

    bad_job, bad_schedule = store_key("jobs", "æÊÚl"), store_key("schedules", "æÊÚl@hourly")
    write_records(leader, {
        bad_job: json.dumps({**JOB, "id": "æÊÚl"}).encode(),
        bad_schedule: json.dumps({"schedule": schedule,
                                  "handledUntil": "2024-05-01T12:00:00+00:00"}).encode(),
    })
    for successor in takeovers(batches, leader, "/info"):
        client = successor[1]
        aside = client.get("/info").json()["setAsideRecords"]
        assert {r["key"] for r in aside} == {bad_job, bad_schedule}
        gauges = client.get("/v1/metrics").json()["gauges"]
        assert gauges["metronome.records.set-aside.gauge"] == {"value": 2}
        assert [j["id"] for j in client.get("/v1/jobs").json()] == ["ha.job"]
        assert client.post("/v1/jobs/ha.job/runs").status_code == 201

    leader = successor
    removed = client.delete("/v1/jobs/%C3%A6%C3%8A%C3%9Al")
    assert removed.status_code == 200, removed.text
    assert stored_keys(leader, "jobs") == {store_key("jobs", "ha.job")}
    for _, client in takeovers(batches, leader, "/info"):
        assert client.get("/info").json()["setAsideRecords"] == []
        assert client.get("/v1/jobs/ha.job").status_code == 200
