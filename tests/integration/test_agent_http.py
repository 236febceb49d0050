"""The agent's HTTP endpoints on real processes: /state with sandboxes, metrics and Prometheus
text against the tasks really running, sandbox browsing, reading with offsets (tailing a task's
stdout), downloads, and refused escapes out of the sandboxes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.cluster import Cluster, Process, free_port, port_answers, wait_for
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import launch_once, running
from tests.integration.test_master_http import parse_prometheus

pytestmark = pytest.mark.integration

TICKER = 'i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 0.1; done'


def get(agent: Process, endpoint: str, **params: str | int) -> httpx.Response:
    return httpx.get(agent.http_url + endpoint, params=params, timeout=10)


def ok(agent: Process, endpoint: str, **params: str | int) -> Any:
    response = get(agent, endpoint, **params)
    assert response.status_code == 200, response.text
    return response.json()


def start_observed_agent(cluster: Cluster) -> Process:
    agent = cluster.start_agent(attributes="rack:r1", http_port=free_port())
    assert agent.http_port is not None
    port = agent.http_port
    wait_for(lambda: port_answers(port) or not agent.alive(), "the agent's HTTP endpoints")
    assert agent.alive(), agent.log()
    return agent


def executor_of(state: dict[str, Any], task_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [
        executor for framework in state["frameworks"] for executor in framework["executors"]
        if any(task["id"] == task_id for task in executor["tasks"] + executor["completed_tasks"])
    ]
    assert len(found) == 1, state
    return found[0]


def test_state_and_metrics_show_the_running_tasks(cluster: Cluster) -> None:
    agent = start_observed_agent(cluster)
    scheduler = RecordingScheduler(on_offers=launch_once(
        ("ticker", TICKER), ("done", "echo bye"), cpus=0.5, mem=64,
    ))
    with running(cluster, scheduler, "observed"):
        scheduler.wait_for_state("ticker", "TASK_RUNNING")
        scheduler.wait_for_state("done", "TASK_FINISHED")
        state = ok(agent, "/state")
        assert state["pid"] == f"slave(1)@127.0.0.1:{agent.http_port}"
        assert state["id"] and state["hostname"] == "host1"
        assert state["master_hostname"] == "127.0.0.1"
        assert state["resources"]["cpus"] == 4.0 and state["resources"]["ports"] == "[31000-31099]"
        assert state["attributes"] == {"rack": "r1"}
        assert state["flags"]["http_port"] == str(agent.http_port)
        [framework] = state["frameworks"]
        assert framework["name"] == "observed" and framework["id"] == scheduler.framework_id
        executor = executor_of(state, "ticker")
        [task] = executor["tasks"]
        assert task["state"] == "TASK_RUNNING" and task["slave_id"] == state["id"]
        assert task["resources"]["mem"] == 64.0
        assert os.path.isdir(executor["directory"])
        assert executor["directory"].startswith(str(cluster.work_dir / "agent-1" / "slaves"))

        snapshot = wait_for(
            lambda: (s := ok(agent, "/metrics/snapshot"))["slave/tasks_finished"] == 1 and s,
            "the finished task to be counted",
        )
        assert {name: snapshot[name] for name in (
            "slave/registered", "slave/tasks_running", "slave/tasks_failed",
            "slave/executors_running", "slave/cpus_total", "slave/cpus_used",
            "slave/cpus_percent", "slave/mem_used",
        )} == {
            "slave/registered": 1, "slave/tasks_running": 1, "slave/tasks_failed": 0,
            "slave/executors_running": 1, "slave/cpus_total": 4.0, "slave/cpus_used": 0.5,
            "slave/cpus_percent": 0.125, "slave/mem_used": 64.0,
        }
        samples, types = parse_prometheus(get(agent, "/metrics").text)
        assert samples["mesos_slave_tasks_running"] == 1
        assert samples["mesos_slave_tasks_finished"] == 1
        assert types["mesos_slave_tasks_finished"] == "counter"
        assert samples["mesos_slave_cpus_used"] == 0.5

        assert ok(agent, "/flags")["flags"] == state["flags"]
        assert ok(agent, "/version")["version"] == state["version"]
        assert get(agent, "/health").status_code == 200


def test_sandbox_files_browse_read_tail_and_download(cluster: Cluster) -> None:
    agent = start_observed_agent(cluster)
    scheduler = RecordingScheduler(on_offers=launch_once(("ticker", TICKER)))
    with running(cluster, scheduler, "observed"):
        scheduler.wait_for_state("ticker", "TASK_RUNNING")
        sandbox = executor_of(ok(agent, "/state"), "ticker")["directory"]
        stdout = f"{sandbox}/stdout"

        listing = {entry["path"]: entry for entry in ok(agent, "/files/browse", path=sandbox)}
        assert {f"{sandbox}/stdout", f"{sandbox}/stderr"} <= set(listing)
        entry = listing[stdout]
        assert entry["mode"].startswith("-rw") and entry["nlink"] == 1
        assert isinstance(entry["mtime"], int) and entry["uid"] and entry["gid"]
        [single] = ok(agent, "/files/browse", path=stdout)  # a file lists itself
        assert single["path"] == stdout and single["mode"] == entry["mode"]

        # Tail stdout the way a UI does: ask for the size, then read on from an offset.
        wait_for(lambda: ok(agent, "/files/read", path=stdout, offset=-1)["offset"] > 0,
                 "the task to write to stdout")
        size = ok(agent, "/files/read", path=stdout, offset=-1)
        assert size["data"] == "" and size["offset"] > 0
        first = ok(agent, "/files/read", path=stdout, offset=0, length=7)
        assert first == {"data": "tick 1\n", "offset": 0}
        offset = len(first["data"])
        seen = first["data"]
        while "tick 30\n" not in seen:
            chunk = ok(agent, "/files/read", path=stdout, offset=offset)
            assert chunk["offset"] == offset
            seen += chunk["data"]
            offset += len(chunk["data"])
        assert seen.startswith("".join(f"tick {i}\n" for i in range(1, 31)))
        beyond = ok(agent, "/files/read", path=stdout, offset=10**9)
        assert beyond == {"data": "", "offset": 10**9}
        assert ok(agent, "/files/read", path=stdout, offset=10**30) == {  # past any seek
            "data": "", "offset": 10**30}

        download = get(agent, "/files/download", path=f"{sandbox}/stderr")
        assert download.status_code == 200
        assert download.content == Path(sandbox, "stderr").read_bytes()
        assert download.headers["content-type"] == "application/octet-stream"

        os.symlink("/etc", f"{sandbox}/escape")
        refused = {
            "parent": f"{sandbox}/../../..",
            "outside": "/etc/passwd",
            "agent work dir": str(cluster.work_dir / "agent-1"),
            "symlink out": f"{sandbox}/escape/passwd",
            "relative": "stdout",
        }
        for endpoint in ("/files/browse", "/files/read", "/files/download"):
            for why, path in refused.items():
                assert get(agent, endpoint, path=path).status_code == 403, (endpoint, why)
            assert get(agent, endpoint, path=f"{sandbox}/missing").status_code == 404
            assert get(agent, endpoint).status_code == 400
        assert get(agent, "/files/read", path=sandbox).status_code == 400
        assert get(agent, "/files/read", path=stdout, offset="x").status_code == 400


def test_a_task_cannot_make_the_agent_read_outside_its_sandbox_or_block(
    cluster: Cluster, tmp_path: Path,
) -> None:
    """The task swaps a file for a symlink to a secret and back as fast as it can, while its
    file is read 200 times (100 by each endpoint): the secret never comes back (a
    check-then-open did in about one read of five, so 200 reads miss it with odds of 1e-19).
    A FIFO in the sandbox is refused at once, not opened."""
    secret = tmp_path / "secret"
    secret.write_text("SECRET-MARKER\n")
    swapper = (f"mkfifo fifo; while true; do echo public > new && mv -f new data; "
               f"ln -s {secret} link && mv -fT link data; done")
    agent = start_observed_agent(cluster)
    scheduler = RecordingScheduler(on_offers=launch_once(("swapper", swapper)))
    with running(cluster, scheduler, "attacker"):
        scheduler.wait_for_state("swapper", "TASK_RUNNING")
        sandbox = executor_of(ok(agent, "/state"), "swapper")["directory"]
        wait_for(lambda: Path(sandbox, "fifo").exists(), "the task to make its FIFO")
        answers: dict[int, int] = {}
        for _ in range(100):
            for endpoint in ("/files/read", "/files/download"):
                response = get(agent, endpoint, path=f"{sandbox}/data")
                assert b"SECRET-MARKER" not in response.content, endpoint
                answers[response.status_code] = answers.get(response.status_code, 0) + 1
        assert set(answers) <= {200, 403, 404}, answers  # 404: caught between mv and ln
        assert answers.get(200, 0) and answers.get(403, 0), answers  # both sides were seen
        for endpoint in ("/files/read", "/files/download", "/files/browse"):
            fifo = get(agent, endpoint, path=f"{sandbox}/fifo")
            assert fifo.status_code == 400 and "not a regular file" in fifo.text, endpoint
        assert ok(agent, "/state")["frameworks"]


def completed_executor_of(state: dict[str, Any], task_id: str) -> dict[str, Any] | None:
    """The ended executor whose `completed_tasks` hold the task, in a completed framework."""
    for framework in state["completed_frameworks"]:
        for executor in framework["completed_executors"]:
            if any(task["id"] == task_id for task in executor["completed_tasks"]):
                return {**executor, "framework": framework["name"]}
    return None


def test_a_finished_tasks_sandbox_stays_in_state_and_readable(cluster: Cluster) -> None:
    agent = start_observed_agent(cluster)
    scheduler = RecordingScheduler(on_offers=launch_once(
        ("printer", "echo printed-before-finishing; echo oops >&2")))
    with running(cluster, scheduler, "finisher"):
        scheduler.wait_for_state("printer", "TASK_FINISHED")
        # Acknowledged, the agent forgets the task: /state keeps it among the completed ones.
        executor = wait_for(lambda: completed_executor_of(ok(agent, "/state"), "printer"),
                            "the finished task to move to completed_frameworks")
        state = ok(agent, "/state")
        assert state["frameworks"] == []
        assert executor["framework"] == "finisher" and executor["tasks"] == []
        [task] = executor["completed_tasks"]
        assert task["state"] == "TASK_FINISHED" and task["slave_id"] == state["id"]
        sandbox = executor["directory"]
        assert sandbox.startswith(str(cluster.work_dir / "agent-1" / "slaves"))

        listing = {entry["path"] for entry in ok(agent, "/files/browse", path=sandbox)}
        assert {f"{sandbox}/stdout", f"{sandbox}/stderr"} <= listing
        assert ok(agent, "/files/read", path=f"{sandbox}/stdout", offset=0) == {
            "data": "printed-before-finishing\n", "offset": 0}
        assert get(agent, "/files/download", path=f"{sandbox}/stderr").content == b"oops\n"
