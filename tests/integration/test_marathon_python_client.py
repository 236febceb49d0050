"""The public marathon-python client (PyPI `marathon` 0.13.0, strict about app JSON) against a
real Marathon. The client's top-level `marathon` package clashes with ours, so it runs in its
own virtualenv, made once per session; the test is skipped when the client cannot be installed.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.cluster import Cluster, wait_for

pytestmark = pytest.mark.integration

CLIENT = "marathon==0.13.0"

CALLS = Path(__file__).with_name("marathon_python_calls.py")
"""The script the client's virtualenv runs: every public call, each result checked."""


@pytest.fixture(scope="session")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The python of a virtualenv holding the public client."""
    venv = tmp_path_factory.mktemp("marathon-python") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", CLIENT],
                               capture_output=True, text=True, timeout=600)
    if installed.returncode != 0:
        pytest.skip(f"cannot install {CLIENT}: {installed.stderr[-500:]}")
    return python


def test_every_call_of_the_public_client_answers_as_marathon_1_9_does(
    cluster: Cluster, client_python: Path, tmp_path: Path,
) -> None:
    """Each public method of the client is called (the script fails the test if the client
    has one it does not call), and each answer checked; where Marathon 1.9 itself fails the
    client (removed event subscriptions, queue items with `role`, deployment events without
    the plan's groups, group rollback), the script checks the client fails the same way. The
    abdication comes last, and the Marathon must lead again with its apps."""
    cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]", hostname="127.0.0.1")
    _, url = cluster.start_marathon()
    wait_for(lambda: httpx.get(url + "/v2/info", timeout=10).json()["frameworkId"],
             "marathon to register")
    ran = subprocess.run([str(client_python), "-I", str(CALLS), url], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    answer = json.loads(ran.stdout)
    assert answer["called"] == answer["public"]
    assert len(answer["public"]) == 36  # marathon 0.13.0's MarathonClient
    assert {check: result for check, result in answer["results"].items()
            if result != "OK"} == {}
