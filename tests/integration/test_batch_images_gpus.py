"""Jobs in Docker or UCR images (pulled from a real registry, run by runc) and jobs with GPUs
(`--gpu_scheduling_behavior`), on a real batch framework, master and agent."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.integration.cluster import Cluster, wait_for
from tests.integration.registries import Registry, build_image

pytestmark = pytest.mark.integration

RUN = {"cpus": 0.1, "mem": 32, "disk": 0}


@contextmanager
def batch_of(cluster: Cluster, *flags: str) -> Iterator[httpx.Client]:
    _, url = cluster.start_batch(*flags)
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/info").json()["frameworkId"], "batch to register")
        yield client


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None,
                    reason="image containers need root and runc")
def test_runs_of_jobs_with_an_image_run_in_it(cluster: Cluster, tmp_path: Path) -> None:
    image = build_image(tmp_path / "layout", layers=[{"etc/motd": b"batch image\n"}],
                        entrypoint=["/bin/sh", "-c"], cmd=["cat /etc/motd"], tag="v1")
    with Registry(tmp_path / "registry") as registry:
        registry.push(image, "team/job")
        cluster.agent_flags += ["--image_providers=docker",
                                f"--docker_registry={registry.url}"]
        cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]")
        marker = cluster.work_dir / "ran-on-the-host"
        with batch_of(cluster) as batch:
            for job_id, run in (
                    ("docker.image", {**RUN, "docker": {"image": "team/job:v1"}}),
                    ("ucr.image", {**RUN, "args": ["echo from args"],
                                   "ucr": {"image": {"id": "team/job:v1"}}}),
                    ("cmd.and.image", {**RUN, "cmd": f"touch {marker} || echo in-image",
                                       "docker": {"image": "team/job:v1"}})):
                assert batch.post("/v1/jobs", json={"id": job_id, "run": run}).status_code == 201
                assert batch.post(f"/v1/jobs/{job_id}/runs").status_code == 201
                wait_for(lambda job_id=job_id: batch.get(  # type: ignore[misc]
                    f"/v1/jobs/{job_id}", params={"embed": "history"}).json()
                    ["history"]["successCount"] == 1, f"{job_id} to succeed")
            privileged = {**RUN, "docker": {"image": "team/job:v1", "privileged": True}}
            assert batch.post("/v1/jobs", json={"id": "privileged", "run": privileged}
                              ).status_code == 201
            started = batch.post("/v1/jobs/privileged/runs").json()
            assert started["status"] == "FAILED" and started["tasks"] == []
            assert started["message"].startswith("run.docker.privileged: privileged "
                                                 "containers are not supported")
        assert not marker.exists()  # the command ran in the image, not on the host
        outputs = sorted(path.read_text() for path in cluster.work_dir.glob(
            "agent-*/slaves/*/frameworks/*/executors/*/runs/*/stdout"))
        assert outputs == ["batch image\n", "from args\n", "in-image\n"]


def test_gpu_jobs_run_with_a_gpu_scheduling_behavior(cluster: Cluster) -> None:
    cluster.start_agent("cpus:4;mem:4096;disk:1000;gpus:1;ports:[31000-31099]")
    with batch_of(cluster, "--gpu_scheduling_behavior", "restricted") as batch:
        job = {"id": "gpu", "run": {**RUN, "cmd": "true", "gpus": 1}}
        assert batch.post("/v1/jobs", json=job).status_code == 201
        assert batch.post("/v1/jobs/gpu/runs").status_code == 201
        wait_for(lambda: batch.get("/v1/jobs/gpu", params={"embed": "history"}).json()
                 ["history"]["successCount"] == 1, "the GPU job to succeed")
