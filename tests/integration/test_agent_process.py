"""The `mesos-agent` process: flag errors and retrying an absent master."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

AGENT = [sys.executable, "-m", "mesos_agent"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("MESOS_")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--work_dir", "{tmp}"], "--master is required"),
        (["--master", "127.0.0.1:5050"], "--work_dir is required"),
        (["--master", "nowhere", "--work_dir", "{tmp}"], "invalid master address 'nowhere'"),
        (["--master", "zk://127.0.0.1:2181", "--work_dir", "{tmp}"], "a path is required"),
        (["--master", "127.0.0.1:5050", "--work_dir", "{tmp}", "--resources", "cpus:lots"],
         "--resources"),
        (["--master", "127.0.0.1:5050", "--work_dir", "{tmp}", "--attributes", "rack"],
         "--attributes"),
        (["--master", "127.0.0.1:5050", "--work_dir", "{tmp}",
          "--executor_registration_timeout", "soon"], "invalid duration 'soon'"),
        (["--master", "127.0.0.1:5050", "--work_dir", "{tmp}", "--bogus"],
         "unrecognized arguments: --bogus"),
    ],
    ids=["no-master", "no-work-dir", "bad-master", "zk", "bad-resources", "bad-attributes",
         "bad-duration", "unknown-flag"],
)
def test_bad_flags_exit_1_with_one_clear_line(
    tmp_path: Path, args: list[str], message: str
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = subprocess.run(
        [*AGENT, *argv], capture_output=True, text=True, timeout=60, env=clean_env()
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mesos-agent: error: ")
    assert message in lines[0]
    assert "Traceback" not in result.stderr


def test_bad_flag_from_the_environment(tmp_path: Path) -> None:
    env = {**clean_env(), "MESOS_MASTER": "nowhere", "MESOS_WORK_DIR": str(tmp_path)}
    result = subprocess.run(AGENT, capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == 1
    assert "invalid master address 'nowhere'" in result.stderr


@pytest.fixture
def agent_without_master(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    log_path = tmp_path / "agent.log"
    with log_path.open("w") as log_file:
        process = subprocess.Popen(
            [*AGENT, "--master", f"127.0.0.1:{free_port()}", "--work_dir", str(tmp_path / "w"),
             "--port", "0", "--resources", "cpus:1;mem:128"],
            stdout=log_file, stderr=subprocess.STDOUT, text=True, env=clean_env(),
        )
    try:
        yield process, log_path
    finally:
        process.terminate()
        process.wait(timeout=30)


def log_events(log_path: Path) -> list[dict[str, object]]:
    events = []
    for line in log_path.read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events


def test_agent_keeps_retrying_when_no_master_listens(
    agent_without_master: tuple[subprocess.Popen[str], Path],
) -> None:
    process, log_path = agent_without_master
    deadline = time.monotonic() + 30
    retries: list[dict[str, object]] = []
    while time.monotonic() < deadline and len(retries) < 6:
        assert process.poll() is None, log_path.read_text()
        retries = [e for e in log_events(log_path)
                   if e.get("event") == "master connection failed; retrying"]
        time.sleep(0.1)
    assert len(retries) >= 6, log_path.read_text()
    assert all("UNAVAILABLE" in str(e["error"]) for e in retries)
    delays = [float(str(e["retry_in"])) for e in retries]
    assert delays[-1] > delays[0]  # backing off
    assert max(delays) <= 2.0
    assert process.poll() is None
    process.terminate()
    assert process.wait(timeout=30) == 0
    assert "Traceback" not in log_path.read_text()
