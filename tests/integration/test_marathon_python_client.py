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

# Run by the client's virtualenv with `python -I`: prints {call: "OK" or the error}.
CALLS = '''
import json, sys, time
from marathon import MarathonClient
from marathon.models import MarathonApp

client = MarathonClient(sys.argv[1])
results = {}

def call(name, fn):
    try:
        value = fn()
    except Exception as exc:
        results[name] = f"{type(exc).__name__}: {exc}"
        return None
    results[name] = "OK"
    return value

def until(condition):
    deadline = time.monotonic() + 60
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)

call("get_info", client.get_info)
# An app no agent can hold deploys for ever, its instance queued.
call("create_app (unplaceable)", lambda: client.create_app(
    "stuck", MarathonApp(cmd="sleep 600", cpus=100, mem=32, instances=1)))
call("list_apps (deploying)", client.list_apps)
call("get_app (deploying)", lambda: client.get_app("stuck"))
call("create_app", lambda: client.create_app(
    "client-app", MarathonApp(cmd="sleep 600", cpus=0.1, mem=32, instances=1)))
until(lambda: client.get_app("client-app").tasks_running == 1)
call("scale_app", lambda: client.scale_app("client-app", instances=2))
until(lambda: not client.get_app("client-app").deployments)
call("update_app (partial)", lambda: client.update_app("client-app", MarathonApp(mem=48)))
updated = client.get_app("client-app")
results["update kept cmd, changed mem"] = (
    "OK" if (updated.cmd, updated.mem) == ("sleep 600", 48) else f"{updated.cmd} {updated.mem}")
results["get_app embeds tasks"] = "OK" if updated.tasks else "no tasks"
call("list_tasks", lambda: client.list_tasks("client-app"))
until(lambda: not client.get_app("client-app").deployments)
call("delete_app", lambda: client.delete_app("client-app"))
call("delete_app (forced)", lambda: client.delete_app("stuck", force=True))
print(json.dumps(results))
'''


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


def test_the_public_client_drives_an_app_through_its_life(
    cluster: Cluster, client_python: Path, tmp_path: Path,
) -> None:
    cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]", hostname="127.0.0.1")
    _, url = cluster.start_marathon()
    wait_for(lambda: httpx.get(url + "/v2/info", timeout=10).json()["frameworkId"],
             "marathon to register")
    script = tmp_path / "calls.py"
    script.write_text(CALLS)
    ran = subprocess.run([str(client_python), "-I", str(script), url], capture_output=True,
                         text=True, timeout=300, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    results = json.loads(ran.stdout)
    assert {call: answer for call, answer in results.items() if answer != "OK"} == {}
    assert len(results) == 12
