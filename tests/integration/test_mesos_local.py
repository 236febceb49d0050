"""`mesos-local` starts a working cluster (master, agents, Marathon) and Ctrl-C leaves no
process behind."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil

from tests.integration.cluster import free_port, wait_for


def _descendants_and_sandboxed(root_pid: int, work_dir: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cwd", "cmdline"]):
        try:
            in_sandbox = (process.info["cwd"] or "").startswith(str(work_dir))
            mentions = str(work_dir) in " ".join(process.info["cmdline"] or [])
        except psutil.Error:
            continue
        if (in_sandbox or mentions) and process.pid != root_pid:
            found.append(process)
    return found


def test_mesos_local_runs_tasks_and_stops_cleanly(tmp_path: Path) -> None:
    port, agent_port, http_port = free_port(), free_port(), free_port()
    marathon_port, batch_port = free_port(), free_port()
    work_dir = tmp_path / "local"
    output = tmp_path / "mesos-local.out"
    with output.open("wb") as sink:
        local = subprocess.Popen(
            [sys.executable, "-m", "mesos_local", "--port", str(port), "--agent_port",
             str(agent_port), "--agents", "2", "--work_dir", str(work_dir),
             "--marathon_port", str(marathon_port), "--batch_port", str(batch_port),
             "--master_http_port", str(http_port)],
            stdout=sink, stderr=subprocess.STDOUT,
        )
    framework: subprocess.Popen[str] | None = None
    try:
        wait_for(lambda: "Press Ctrl-C" in output.read_text() or local.poll() is not None,
                 "mesos-local to start")
        text = output.read_text()
        assert local.poll() is None, text
        assert f"127.0.0.1:{port}" in text and "hostname 127.0.0.2" in text
        assert f"marathon  http://127.0.0.1:{marathon_port}" in text
        assert f"batch     http://127.0.0.1:{batch_port}" in text
        state = httpx.get(f"http://127.0.0.1:{http_port}/state", timeout=10).json()
        assert len(state["slaves"]) == 2

        framework = subprocess.Popen(
            [sys.executable, "-m", "frameworks.examples.sleep_framework", "--master",
             f"127.0.0.1:{port}", "--tasks", "4", "--cmd", "sleep 600"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        def sleep_tasks() -> list[psutil.Process]:
            return [p for p in _descendants_and_sandboxed(local.pid, work_dir)
                    if p.info["cmdline"][:1] == ["sleep"]]

        wait_for(lambda: len(sleep_tasks()) == 4, "four sleep tasks to run")

        app = {"id": "/sleeper", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 2}
        answer = httpx.post(f"http://127.0.0.1:{marathon_port}/v2/apps", json=app, timeout=10)
        assert answer.status_code == 201, answer.text
        wait_for(lambda: len(sleep_tasks()) == 6, "Marathon's two instances to run as well")
        # mesos-dns, on the free port the banner names, resolves the app's instances.
        [dns_port] = re.findall(r"dns {7}127\.0\.0\.1:(\d+)", text)

        def dig(name: str, kind: str) -> list[str]:
            done = subprocess.run(["dig", "@127.0.0.1", "-p", dns_port, "+short", name, kind],
                                  capture_output=True, text=True, timeout=30)
            return done.stdout.splitlines()

        services = wait_for(lambda: len(found := dig("_sleeper._tcp.marathon.mesos", "SRV")) == 2
                            and found, "the app's two instances in DNS")
        ports = {line.split()[2] for line in services}
        tasks = httpx.get(f"http://127.0.0.1:{marathon_port}/v2/apps/sleeper/tasks",
                          timeout=10).json()["tasks"]
        assert ports == {str(task["ports"][0]) for task in tasks}
        assert set(dig("sleeper.marathon.mesos", "A")) <= {"127.0.0.1", "127.0.0.2"}

        # marathon-lb serves an app labelled for it on the app's service port.
        assert "lb        marathon-lb" in text
        service_port = free_port()
        web = {"id": "/web", "cmd": f"{sys.executable} -m http.server $PORT0 --bind 127.0.0.1",
               "cpus": 0.1, "mem": 32, "instances": 1, "labels": {"HAPROXY_GROUP": "external"},
               "portDefinitions": [{"port": service_port}]}
        answer = httpx.post(f"http://127.0.0.1:{marathon_port}/v2/apps", json=web, timeout=10)
        assert answer.status_code == 201, answer.text

        def served() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{service_port}/", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(served, "the app to answer through marathon-lb")

        batch = f"http://127.0.0.1:{batch_port}"
        job = {"id": "nap", "run": {"cmd": "sleep 600", "cpus": 0.1, "mem": 32}}
        assert httpx.post(f"{batch}/v1/jobs", json=job, timeout=10).status_code == 201
        assert httpx.post(f"{batch}/v1/jobs/nap/runs", timeout=10).status_code == 201
        wait_for(lambda: len(sleep_tasks()) == 7, "the batch job's task to run as well")

        local.send_signal(signal.SIGINT)
        assert local.wait(30) == 0
        assert "mesos-local stopped." in output.read_text()
        leftovers = _descendants_and_sandboxed(local.pid, work_dir)
        assert leftovers == [], [p.info["cmdline"] for p in leftovers]
    finally:
        if local.poll() is None:  # the test failed midway: still stop everything cleanly
            local.terminate()
            try:
                local.wait(30)
            except subprocess.TimeoutExpired:
                local.kill()
                local.wait()
        if framework is not None:
            framework.kill()
            framework.wait()


def test_mesos_local_supervises_components_reaps_tasks_and_stops_when_started_in_background(
    tmp_path: Path,
) -> None:
    """Started as a non-interactive shell starts a background job (SIGINT ignored): a killed
    component is reported and restarted while the rest keep running, a task re-parented to
    mesos-local is reaped when it ends, and SIGINT still stops everything."""
    port, agent_port, http_port, marathon_port = free_port(), free_port(), free_port(), free_port()
    work_dir = tmp_path / "local"
    output = tmp_path / "mesos-local.out"
    with output.open("wb") as sink:
        local = subprocess.Popen(
            [sys.executable, "-m", "mesos_local", "--port", str(port), "--agent_port",
             str(agent_port), "--agents", "1", "--work_dir", str(work_dir), "--no_batch",
             "--marathon_port", str(marathon_port), "--master_http_port", str(http_port),
             "--task_ports", "41000-41009"],
            stdout=sink, stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    marathon = f"http://127.0.0.1:{marathon_port}"
    try:
        wait_for(lambda: "Press Ctrl-C" in output.read_text() or local.poll() is not None,
                 "mesos-local to start")
        assert local.poll() is None, output.read_text()
        [agent] = httpx.get(f"http://127.0.0.1:{http_port}/state", timeout=10).json()["slaves"]
        assert agent["resources"]["ports"] == "[41000-41009]"

        def component(module: str) -> psutil.Process:
            [found] = [p for p in psutil.Process(local.pid).children()
                       if p.cmdline()[1:3] == ["-m", module]]
            return found

        master_pid = component("mesos_master").pid
        component("marathon").kill()
        wait_for(lambda: "marathon restarted" in output.read_text(), "marathon to restart")
        assert "marathon exited with status -9" in output.read_text()
        def registered() -> bool:
            try:
                return bool(httpx.get(f"{marathon}/v2/info", timeout=10).json()["frameworkId"])
            except httpx.HTTPError:
                return False

        wait_for(registered, "the restarted marathon to register")
        assert component("mesos_master").pid == master_pid and local.poll() is None

        app = {"id": "/sleeper", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 1}
        assert httpx.post(f"{marathon}/v2/apps", json=app, timeout=10).status_code == 201

        def sleeper() -> psutil.Process | None:
            found = [p for p in _descendants_and_sandboxed(local.pid, work_dir)
                     if p.info["cmdline"][:2] == ["sleep", "600"]]
            return found[0] if found else None

        task = wait_for(sleeper, "the app's task to run")
        component("mesos_agent").kill()  # its task is re-parented to mesos-local
        wait_for(lambda: task.ppid() == local.pid, "the task to be re-parented")
        wait_for(lambda: "agent-1 restarted" in output.read_text(), "the agent to restart")
        task.kill()  # ends as mesos-local's child: it must reap it
        wait_for(lambda: not psutil.pid_exists(task.pid), "the ended task to be reaped")

        local.send_signal(signal.SIGINT)
        assert local.wait(30) == 0
        assert "mesos-local stopped." in output.read_text()
        leftovers = _descendants_and_sandboxed(local.pid, work_dir)
        assert leftovers == [], [p.info["cmdline"] for p in leftovers]
    finally:
        if local.poll() is None:
            local.terminate()
            try:
                local.wait(30)
            except subprocess.TimeoutExpired:
                local.kill()
                local.wait()
