"""The batch framework as users run it: a real `python -m frameworks.batch` process on a real
master and agent, driven over Metronome's v1 REST API with an HTTP client."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesos_coordination.store import store_key
from tests.integration.cluster import JSON_TYPE, Cluster, wait_for, write_local_records

pytestmark = pytest.mark.integration

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "conformance" / "metronome"


class Batch:
    """The batch process and a client for its API."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.process, self.url = cluster.start_batch()
        self.port = int(self.url.rsplit(":", 1)[1])
        self.client = httpx.Client(base_url=self.url, timeout=10)
        self.registered()

    def registered(self) -> None:
        wait_for(lambda: self.client.get("/info").json()["frameworkId"], "batch to register")

    def restart(self, while_down: Callable[[], object] = lambda: None) -> None:
        self.process.kill9()
        while_down()
        self.process, _ = self.cluster.start_batch(port=self.port)
        self.registered()

    def job(self, job_id: str, embed: str = "activeRuns,history") -> dict[str, Any]:
        answer: dict[str, Any] = self.client.get(f"/v1/jobs/{job_id}",
                                                 params={"embed": embed}).json()
        return answer


@pytest.fixture
def batch(cluster: Cluster) -> Iterator[Batch]:
    cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]")
    running = Batch(cluster)
    yield running
    running.client.close()


def test_a_job_runs_now_and_its_history_counts(batch: Batch) -> None:
    created = batch.client.post("/v1/jobs", json={
        "id": "hello", "run": {"cmd": "test \"$GREETING\" = hi", "cpus": 0.1, "mem": 32,
                               "env": {"GREETING": "hi"}}})
    assert created.status_code == 201, created.text
    started = batch.client.post("/v1/jobs/hello/runs")
    assert started.status_code == 201 and started.json()["status"] == "INITIAL"
    run_id = started.json()["id"]
    wait_for(lambda: batch.job("hello")["history"]["successCount"] == 1, "the run to succeed")
    run = batch.client.get(f"/v1/jobs/hello/runs/{run_id}").json()
    assert run["status"] == "SUCCESS" and run["tasks"][0]["status"] == "TASK_FINISHED"
    [entry] = batch.job("hello")["history"]["successfulFinishedRuns"]
    assert entry["id"] == run_id and entry["tasks"] == [run["tasks"][0]["id"]]
    job = batch.job("hello", "historySummary,activeRuns")
    assert job["activeRuns"] == [] and job["historySummary"]["failureCount"] == 0


def test_a_failing_job_is_retried_on_failure(batch: Batch) -> None:
    marker = batch.cluster.work_dir / "attempted"
    batch.client.post("/v1/jobs", json={"id": "flaky", "run": {
        "cmd": f"if [ -e {marker} ]; then exit 0; else touch {marker}; exit 1; fi",
        "cpus": 0.1, "mem": 32, "restart": {"policy": "ON_FAILURE"}}}).raise_for_status()
    run_id = batch.client.post("/v1/jobs/flaky/runs").json()["id"]
    wait_for(lambda: batch.job("flaky")["history"]["successCount"] == 1, "the retry to succeed")
    tasks = batch.client.get(f"/v1/jobs/flaky/runs/{run_id}").json()["tasks"]
    assert sorted(t["status"] for t in tasks) == ["TASK_FAILED", "TASK_FINISHED"]


def test_conformance_payloads_round_trip_and_schedules_crud(batch: Batch) -> None:
    job = json.loads((FIXTURES / "job.json").read_text())
    created = batch.client.post("/v1/jobs", json=job)
    assert created.status_code == 201 and created.json() == job
    assert batch.client.post("/v1/jobs", json=job).status_code == 409
    assert batch.job(job["id"], "schedules") == job
    assert batch.client.post("/v1/jobs", headers=JSON_TYPE, content=b"{").status_code == 400
    invalid = batch.client.post("/v1/jobs", json={"id": "x", "run": {"cpus": -1}})
    assert invalid.status_code == 422 and invalid.json()["details"]

    path = f"/v1/jobs/{job['id']}/schedules"
    schedule = json.loads((FIXTURES / "schedule.json").read_text())
    added = batch.client.post(path, json=schedule)
    assert added.status_code == 201
    assert {k: v for k, v in added.json().items() if k != "nextRunAt"} == schedule
    assert added.json()["nextRunAt"]
    assert batch.client.post(path, json=schedule).status_code == 409
    changed = batch.client.put(f"{path}/everyminute", json={**schedule, "enabled": False})
    assert changed.status_code == 200 and changed.json()["enabled"] is False
    assert [s["id"] for s in batch.client.get(path).json()] == ["everyminute"]
    assert batch.client.delete(f"{path}/everyminute").status_code == 200
    assert batch.client.get(f"{path}/everyminute").status_code == 404
    assert batch.client.delete(f"/v1/jobs/{job['id']}").status_code == 200
    assert batch.client.get(f"/v1/jobs/{job['id']}").status_code == 404


def test_the_queue_lists_a_run_no_offer_fits_and_leader_names_this_instance(
    batch: Batch,
) -> None:
    assert batch.client.get("/v1/queue").json() == []
    batch.client.post("/v1/jobs", json={"id": "huge", "run": {
        "cmd": "true", "cpus": 64, "mem": 32}}).raise_for_status()
    run_id = batch.client.post("/v1/jobs/huge/runs").json()["id"]
    [entry] = batch.client.get("/v1/queue").json()
    assert entry["jobId"] == "huge" and [r["runId"] for r in entry["runs"]] == [run_id]
    # Once an offer came and could not take it, the run says why (an extension).
    assert entry["runs"][0].get("waitingReason") in (
        None, "no offer has the resources a task asks for")
    batch.client.post(f"/v1/jobs/huge/runs/{run_id}/actions/stop").raise_for_status()
    assert batch.client.get("/v1/queue").json() == []
    leader = batch.client.get("/leader")
    assert leader.status_code == 200
    assert leader.json() == {"leader": batch.client.get("/info").json()["leader"]}


def test_v1_metrics_counts_the_runs_as_metronome_names_them(batch: Batch) -> None:
    batch.client.post("/v1/jobs", json={"id": "counted", "run": {
        "cmd": "true", "cpus": 0.1, "mem": 32}}).raise_for_status()
    batch.client.post("/v1/jobs/counted/runs").raise_for_status()
    wait_for(lambda: batch.job("counted")["history"]["successCount"] == 1, "the run to succeed")
    metrics = batch.client.get("/v1/metrics").json()
    assert metrics["version"] == "4.0.0" and metrics["meters"] == {} and metrics["timers"] == {}
    assert metrics["gauges"]["metronome.jobs.specs.gauge"] == {"value": 1}
    assert metrics["counters"]["metronome.jobs.started.counter"] == {"count": 1}
    assert metrics["counters"]["metronome.jobs.succeeded.counter"] == {"count": 1}
    durations = metrics["histograms"]["metronome.jobs.run-duration.histogram.seconds"]
    assert durations["count"] == 1


def test_v0_scheduled_jobs_creates_and_replaces_a_job_with_its_schedules(batch: Batch) -> None:
    schedule = json.loads((FIXTURES / "schedule.json").read_text())
    body = {"id": "weekly", "run": {"cmd": "true", "cpus": 0.1, "mem": 32},
            "schedules": [schedule]}
    bad = batch.client.post("/v0/scheduled-jobs", json={
        **body, "run": {"cpus": 0.1}, "schedules": [{**schedule, "cron": "nonsense"}]})
    assert bad.status_code == 422
    assert {"/run", "/schedules(0)/cron"} <= {d["path"] for d in bad.json()["details"]}
    assert batch.client.get("/v1/jobs/weekly").status_code == 404  # nothing was created

    created = batch.client.post("/v0/scheduled-jobs", json=body)
    assert created.status_code == 201
    assert created.json()["schedules"] == [schedule]
    assert batch.job("weekly", "schedules")["schedules"] == [schedule]
    assert batch.client.post("/v0/scheduled-jobs", json=body).status_code == 409

    replaced = batch.client.put("/v0/scheduled-jobs/weekly", json={**body, "schedules": []})
    assert replaced.status_code == 200 and replaced.json()["schedules"] == []
    assert batch.client.get("/v1/jobs/weekly/schedules").json() == []
    assert batch.client.put("/v0/scheduled-jobs/nope", json={**body, "id": "nope"}) \
        .status_code == 404


def test_deleting_a_job_with_a_running_run_needs_stop_current_job_runs(batch: Batch) -> None:
    batch.client.post("/v1/jobs", json={"id": "sleepy", "run": {
        "cmd": "sleep 300", "cpus": 0.1, "mem": 32}}).raise_for_status()
    run_id = batch.client.post("/v1/jobs/sleepy/runs").json()["id"]
    wait_for(lambda: batch.client.get(f"/v1/jobs/sleepy/runs/{run_id}").json()["status"]
             == "ACTIVE", "the run to be active")
    assert batch.client.delete("/v1/jobs/sleepy").status_code == 409
    gone = batch.client.delete("/v1/jobs/sleepy", params={"stopCurrentJobRuns": "true"})
    assert gone.status_code == 200
    assert batch.client.get("/v1/jobs/sleepy").status_code == 404


def test_a_restart_mid_run_keeps_the_run_and_its_history(batch: Batch) -> None:
    release = batch.cluster.work_dir / "release"
    release.touch()
    batch.client.post("/v1/jobs", json={"id": "waiter", "run": {
        "cmd": f"while [ ! -e {release} ]; do sleep 0.1; done", "cpus": 0.1,
        "mem": 32}}).raise_for_status()
    batch.client.post("/v1/jobs/waiter/runs").raise_for_status()
    wait_for(lambda: batch.job("waiter")["history"]["successCount"] == 1, "the first run")
    release.unlink()
    run_id = batch.client.post("/v1/jobs/waiter/runs").json()["id"]
    wait_for(lambda: batch.client.get(f"/v1/jobs/waiter/runs/{run_id}").json()["status"]
             == "ACTIVE", "the second run to be active")

    batch.restart()
    job = batch.job("waiter")
    assert [run["id"] for run in job["activeRuns"]] == [run_id]
    assert job["activeRuns"][0]["status"] == "ACTIVE"
    assert job["history"]["successCount"] == 1
    release.touch()
    wait_for(lambda: batch.job("waiter")["history"]["successCount"] == 2,
             "the run to succeed after the restart")


def test_a_poisoned_job_record_is_set_aside_at_restart_and_deleted(batch: Batch) -> None:
    """A job record with an id no request may name (one is refused with 422) does not stop a
    restarted leader: it is set aside and reported, the rest recovered, and DELETE removes it
    (`DELETE /v1/jobs/{id}` does too: test_batch_ha)."""
    good = {"id": "good", "run": {"cmd": "true", "cpus": 0.1, "mem": 32}}
    batch.client.post("/v1/jobs", json=good).raise_for_status()
    assert batch.client.post("/v1/jobs", json={**good, "id": "æÊÚl"}).status_code == 422
    bad = store_key("jobs", "æÊÚl")
    state = batch.cluster.work_dir / "batch" / "state"
    before: dict[str, bytes] = {}
    batch.restart(lambda: before.update(write_local_records(
        state, {bad: json.dumps({**good, "id": "æÊÚl"}).encode()})))
    assert bad not in before  # the refused attempt stored nothing
    aside = batch.client.get("/info").json()["setAsideRecords"]
    assert [r["key"] for r in aside] == [bad]
    assert "batch_set_aside_records 1" in batch.client.get("/metrics").text
    assert "record set aside" in batch.process.log()
    assert [job["id"] for job in batch.client.get("/v1/jobs").json()] == ["good"]

    assert batch.client.get("/v1/set-aside-records").json()["setAsideRecords"] == aside
    assert batch.client.delete("/v1/set-aside-records").status_code == 400
    assert batch.client.delete("/v1/set-aside-records", params={"key": store_key("jobs", "good")}
                               ).status_code == 404
    removed = batch.client.delete("/v1/set-aside-records", params={"key": bad})
    assert removed.status_code == 200 and removed.json() == {"setAsideRecords": []}
    batch.restart()
    assert batch.client.get("/info").json()["setAsideRecords"] == []
    assert [job["id"] for job in batch.client.get("/v1/jobs").json()] == ["good"]
