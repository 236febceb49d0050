"""Jobs this cluster cannot run as written (Docker or UCR images) and jobs with GPUs
(`--gpu_scheduling_behavior`), on a real batch framework, master and agent."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.integration.cluster import Cluster, wait_for

pytestmark = pytest.mark.integration

RUN = {"cpus": 0.1, "mem": 32, "disk": 0}


@contextmanager
def batch_of(cluster: Cluster, *flags: str) -> Iterator[httpx.Client]:
    _, url = cluster.start_batch(*flags)
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/info").json()["frameworkId"], "batch to register")
        yield client


def test_runs_of_jobs_with_an_image_fail_at_once_and_say_why(cluster: Cluster) -> None:
    cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]")
    marker = cluster.work_dir / "ran-on-the-host"
    with batch_of(cluster) as batch:
        for job_id, run in (
                ("only.image", {**RUN, "docker": {"image": "busybox"}}),
                ("ucr.image", {**RUN, "ucr": {"image": {"id": "busybox"}}}),
                ("cmd.and.image", {**RUN, "cmd": f"touch {marker}",
                                   "docker": {"image": "busybox"}})):
            assert batch.post("/v1/jobs", json={"id": job_id, "run": run}).status_code == 201
            started = batch.post(f"/v1/jobs/{job_id}/runs")
            assert started.status_code == 201, started.text
            body = started.json()
            assert body["status"] == "FAILED" and body["tasks"] == []
            assert "container images are not supported" in body["message"]
            stored = batch.get(f"/v1/jobs/{job_id}/runs/{body['id']}").json()
            assert stored["status"] == "FAILED" and stored["message"] == body["message"]
            history = batch.get(f"/v1/jobs/{job_id}", params={"embed": "history"}).json()
            assert history["history"]["failureCount"] == 1
        assert not marker.exists()


def test_gpu_jobs_run_with_a_gpu_scheduling_behavior(cluster: Cluster) -> None:
    cluster.start_agent("cpus:4;mem:4096;disk:1000;gpus:1;ports:[31000-31099]")
    with batch_of(cluster, "--gpu_scheduling_behavior", "restricted") as batch:
        job = {"id": "gpu", "run": {**RUN, "cmd": "true", "gpus": 1}}
        assert batch.post("/v1/jobs", json=job).status_code == 201
        assert batch.post("/v1/jobs/gpu/runs").status_code == 201
        wait_for(lambda: batch.get("/v1/jobs/gpu", params={"embed": "history"}).json()
                 ["history"]["successCount"] == 1, "the GPU job to succeed")
