"""Isolation as frameworks see it, on a real cluster with cgroups (issue 18): a task that
outgrows its memory ends TASK_FAILED with the memory limitation through the SDK, Marathon's
`lastTaskFailure` and the batch framework's run; Marathon's `user` runs the task as that user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.cluster import Cluster, wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="cgroups isolation needs root"),
]

REPO_ROOT = Path(__file__).resolve().parents[2]
ISOLATED = ["--isolation=cgroups/cpu,cgroups/mem,namespaces/pid"]
# 400 MB a megabyte at a time: the limit is met by an allocation, which the OOM killer answers.
HOG = f"{sys.executable} -c 'b = [bytearray(2**20) for _ in range(400)]'"
AGENT_RESOURCES = "cpus:4;mem:4096;disk:1000;ports:[31000-31099]"


def test_sdk_task_over_its_memory_fails_with_the_memory_limitation(
        cluster: Cluster, tmp_path: Path) -> None:
    cluster.agent_flags += ISOLATED
    cluster.start_agent(AGENT_RESOURCES)
    result = subprocess.run(
        [sys.executable, "-m", "frameworks.examples.guide_scheduler",
         "--master", cluster.master_address, "--state_file", str(tmp_path / "guide.json"),
         "--task", HOG, "--mem", "64", "--max_attempts", "1"],
        capture_output=True, text=True, timeout=120, cwd=REPO_ROOT, check=False)
    output = result.stdout + result.stderr
    assert "task-0-1: TASK_FAILED Memory limit exceeded: Requested: 64MB" in output, output


def test_marathon_shows_the_memory_limitation_as_last_task_failure(cluster: Cluster) -> None:
    cluster.agent_flags += ISOLATED
    cluster.start_agent(AGENT_RESOURCES, hostname="127.0.0.1")
    _, url = cluster.start_marathon()
    with httpx.Client(base_url=url, timeout=10) as marathon:
        wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon to register")
        created = marathon.post("/v2/apps", json={
            "id": "/hog", "cmd": HOG, "cpus": 0.1, "mem": 64, "instances": 1,
            "backoffSeconds": 3600})
        assert created.status_code == 201, created.text

        def failure() -> dict[str, Any] | None:
            app = marathon.get("/v2/apps/hog", params={"embed": "app.lastTaskFailure"})
            found: dict[str, Any] | None = app.json()["app"].get("lastTaskFailure")
            return found

        last = wait_for(failure, "the app's lastTaskFailure")
        assert last["state"] == "TASK_FAILED"
        assert last["message"].startswith("Memory limit exceeded: Requested: 64MB"), last
        queue = marathon.get("/v2/queue").json()["queue"]
        [entry] = [q for q in queue if q["app"]["id"] == "/hog"]
        assert entry["delay"]["timeLeftSeconds"] > 0, entry  # backed off after the failure


def test_marathon_user_runs_the_task_as_that_user(cluster: Cluster, tmp_path: Path) -> None:
    cluster.agent_flags += [*ISOLATED, "--switch_user=true"]
    cluster.start_agent(AGENT_RESOURCES, hostname="127.0.0.1")
    _, url = cluster.start_marathon()
    with httpx.Client(base_url=url, timeout=10) as marathon:
        wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon to register")
        marathon.post("/v2/apps", json={
            "id": "/who", "cmd": "id -un > whoami && sleep 300", "user": "nobody",
            "cpus": 0.1, "mem": 32, "instances": 1}).raise_for_status()
        whoami = wait_for(lambda: next(iter(tmp_path.glob("**/runs/*/whoami")), None),
                          "the task to write whoami")
        wait_for(lambda: whoami.read_text() == "nobody\n", "whoami to say nobody")
        assert whoami.parent.stat().st_uid != 0


def test_batch_run_records_the_memory_limitation(cluster: Cluster) -> None:
    cluster.agent_flags += ISOLATED
    cluster.start_agent(AGENT_RESOURCES)
    _, url = cluster.start_batch()
    with httpx.Client(base_url=url, timeout=10) as batch:
        wait_for(lambda: batch.get("/info").json()["frameworkId"], "batch to register")
        batch.post("/v1/jobs", json={"id": "hog", "run": {
            "cmd": HOG, "cpus": 0.1, "mem": 64}}).raise_for_status()
        run_id = batch.post("/v1/jobs/hog/runs").json()["id"]

        def finished() -> dict[str, Any] | None:
            history = batch.get("/v1/jobs/hog", params={"embed": "history"}).json()["history"]
            runs: list[dict[str, Any]] = history["failedFinishedRuns"]
            return runs[0] if runs else None

        wait_for(finished, "the run to fail")
        run = batch.get(f"/v1/jobs/hog/runs/{run_id}").json()
        [task] = run["tasks"]
        assert task["status"] == "TASK_FAILED"
        assert task["reason"] == "REASON_CONTAINER_LIMITATION_MEMORY"
        assert task["message"].startswith("Memory limit exceeded: Requested: 64MB")
