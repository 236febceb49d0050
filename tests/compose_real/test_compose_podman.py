"""docker-compose.yml run for real, in containers, with podman and podman-compose: the images
are built, the whole topology comes up and turns healthy, an app posted to the standby Marathon
runs on both agents, the leading master's container is killed, another master is elected, the
app's processes keep running (same tasks, same processes) and the new leader launches more, and
everything, volumes included, is torn down.

Opt-in and slow (minutes): `scripts/compose-test.sh` runs it (COMPOSE_REAL=1) with the local
base and ZooKeeper images; docs/docker-compose.md says how and how long it takes. Services the
file gains that are not named here are started but not checked.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.compose_topology import COMPOSE_FILE, load_compose
from tests.integration.cluster import wait_for

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.environ.get("COMPOSE_REAL") != "1",
                       reason="runs containers for minutes: scripts/compose-test.sh runs it"),
    pytest.mark.timeout(1200),
]

REPO = COMPOSE_FILE.parent
CONTAINERS_CONF = REPO / "scripts" / "podman" / "containers.conf"
MASTERS = ("master1", "master2", "master3")
AGENTS = ("agent1", "agent2")
MARATHONS = ("marathon1", "marathon2")
CHECKED = ("zookeeper", *MASTERS, *AGENTS, *MARATHONS, "batch")
HEALTHY_TIMEOUT = 180.0
CLUSTER_TIMEOUT = 90.0
FAILOVER_TIMEOUT = 90.0  # ZooKeeper's session timeout (10 s) and re-registration, with margin
APP_CMD = "sleep 3600"


@dataclass
class Compose:
    """One podman-compose project of docker-compose.yml, and the phases it went through."""

    project: str
    environment: dict[str, str]
    phases: list[tuple[str, float]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def run(self, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """A podman or podman-compose command; AssertionError with its output if it fails."""
        done = subprocess.run(list(argv), cwd=REPO, env=self.environment, capture_output=True,
                              text=True, timeout=timeout, check=False)
        assert done.returncode == 0, (
            f"{' '.join(argv)} exited {done.returncode}\n{done.stdout[-4000:]}"
            f"\n{done.stderr[-4000:]}")
        return done

    def compose(self, *argv: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return self.run("podman-compose", "--project-name", self.project,
                        "--file", str(COMPOSE_FILE), *argv, timeout=timeout)

    def phase(self, name: str) -> None:
        """Record that `name` is done, with the wall time since the previous phase."""
        now = time.monotonic()
        since = self.phases[-1][1] if self.phases else self.started
        self.phases.append((name, now))
        print(f"[compose-real] {name}: {now - since:.1f}s (total {now - self.started:.1f}s)",
              file=sys.stderr, flush=True)

    def containers(self) -> dict[str, str]:
        """service name -> container name, for every container of the project."""
        listed = self.run("podman", "ps", "--all", "--format", "json", "--filter",
                          f"label=io.podman.compose.project={self.project}")
        return {entry["Labels"]["com.docker.compose.service"]: entry["Names"][0]
                for entry in json.loads(listed.stdout or "[]")}

    def volumes(self) -> list[str]:
        listed = self.run("podman", "volume", "ls", "--format", "{{.Name}}")
        return [name for name in listed.stdout.split() if name.startswith(f"{self.project}_")]

    def networks(self) -> list[str]:
        listed = self.run("podman", "network", "ls", "--format", "{{.Name}}")
        return [name for name in listed.stdout.split() if name.startswith(f"{self.project}_")]

    def healthy(self, container: str) -> bool:
        """Runs the container's health check now (podman runs them from systemd timers,
        which this host has not) and says whether it passed."""
        checked = subprocess.run(["podman", "healthcheck", "run", container], cwd=REPO,
                                 env=self.environment, capture_output=True, text=True,
                                 timeout=60, check=False)
        return checked.returncode == 0

    def logs(self) -> str:
        """The last lines of every container's log, for a failure's report."""
        lines = []
        for service, container in sorted(self.containers().items()):
            logged = subprocess.run(["podman", "logs", "--tail", "15", container], cwd=REPO,
                                    env=self.environment, capture_output=True, text=True,
                                    timeout=60, check=False)
            lines.append(f"--- {service} ({container})\n{logged.stdout}{logged.stderr}")
        return "\n".join(lines)

    def down(self) -> None:
        """Stops and removes the containers, the volumes and the network."""
        self.compose("down", "--volumes", timeout=300)
        for network in self.networks():  # podman-compose 1.0.3 leaves it
            self.run("podman", "network", "rm", "--force", network)


def host_ports(document: Mapping[str, Any]) -> dict[str, int]:
    """service -> the host port its first published port is on."""
    ports = {}
    for name, service in document["services"].items():
        for entry in service.get("ports", [])[:1]:
            published = entry["published"] if isinstance(entry, Mapping) else (
                str(entry).split("/")[0].split(":")[-2])
            ports[name] = int(published)
    return ports


def get_json(port: int, path: str) -> Any:
    """GET from a published port; None when nothing (or no leader) answers yet."""
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def has_everything(state: Any) -> bool:
    """Whether a master's /state has both agents and both frameworks active."""
    return isinstance(state, dict) and {
        agent["hostname"] for agent in state.get("slaves", []) if agent.get("active")
    } == set(AGENTS) and {
        framework["name"] for framework in state.get("frameworks", []) if framework.get("active")
    } >= {"marathon", "batch"}


def listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def compose() -> Iterator[Compose]:
    for program in ("podman", "podman-compose"):
        if shutil.which(program) is None:
            pytest.fail(f"{program} is missing: docs/docker-compose.md says how to install it")
    environment = dict(os.environ)
    environment.setdefault("CONTAINERS_CONF", str(CONTAINERS_CONF))
    project = f"pymesos-real-{uuid.uuid4().hex[:6]}"
    running = Compose(project, environment)
    try:
        yield running
    finally:
        if running.containers():
            print(running.logs(), file=sys.stderr)
        running.down()


def test_the_compose_file_runs_in_containers_and_survives_losing_the_leading_master(
    compose: Compose,
) -> None:
    document = load_compose(environment=compose.environment)
    ports = host_ports(document)
    busy = sorted(port for port in ports.values() if listening(port))
    assert not busy, f"host ports {busy} are taken: the compose file publishes them"

    build_args = []
    if base := compose.environment.get("BASE_IMAGE"):
        build_args = ["--build-arg", f"BASE_IMAGE={base}"]
    compose.compose("build", *build_args, "master1")  # one image serves every built service
    compose.phase("image built")

    started = compose.compose("up", "-d")  # exits 0 even when a container fails to start
    containers = compose.containers()
    missing = sorted(set(CHECKED) - set(containers))
    assert not missing, f"no container for {missing}:\n{started.stderr[-3000:]}"
    for service in CHECKED:
        container = containers[service]
        wait_for(functools.partial(compose.healthy, container),
                 f"{service} to pass its health check", HEALTHY_TIMEOUT, interval=1.0)
    compose.phase("every service healthy")

    def leading_master(masters: tuple[str, ...]) -> dict[str, Any] | None:
        """The leader's /state once it has both agents and both frameworks, found from any of
        `masters` (a standby names the leader, whose own port is then asked)."""
        for master in masters:
            state = get_json(ports[master], "/state") or {}
            leader = state.get("leader_info", {}).get("hostname")
            if leader in masters:
                leader_state = get_json(ports[leader], "/state")
                if has_everything(leader_state) and leader_state["pid"] == state["leader"]:
                    return dict(leader_state)
        return None

    first = wait_for(lambda: leading_master(MASTERS), "a leader with both agents and both "
                     "frameworks", CLUSTER_TIMEOUT, interval=1.0)
    attributes = {agent["hostname"]: agent["attributes"] for agent in first["slaves"]}
    assert attributes == {"agent1": {"rack": "r1", "zone": "a"},
                          "agent2": {"rack": "r2", "zone": "b"}}
    killed = first["leader_info"]["hostname"]

    leader_marathon = wait_for(lambda: (get_json(ports["marathon1"], "/v2/leader") or {})
                               .get("leader"), "a leading Marathon", CLUSTER_TIMEOUT,
                               interval=1.0)
    [standby] = [name for name in MARATHONS if not leader_marathon.startswith(f"{name}:")]
    app = {"id": "/sleepy", "cmd": APP_CMD, "cpus": 0.1, "mem": 32, "instances": 2,
           "constraints": [["hostname", "UNIQUE"]]}
    posted = httpx.post(f"http://127.0.0.1:{ports[standby]}/v2/apps", json=app, timeout=30)
    assert posted.status_code == 201, posted.text

    def running_tasks(app_id: str, instances: int) -> dict[str, str] | None:
        """task id -> agent of `app_id`'s tasks, asked of the standby, once all run."""
        found = get_json(ports[standby], f"/v2/apps/{app_id}?embed=app.tasks")
        tasks = {task["id"]: task["host"] for task in (found or {}).get("app", {})
                 .get("tasks", []) if task.get("state") == "TASK_RUNNING"}
        return tasks if len(tasks) == instances else None

    tasks = wait_for(lambda: running_tasks("sleepy", 2), "both instances to run",
                     CLUSTER_TIMEOUT, interval=1.0)
    assert sorted(tasks.values()) == sorted(AGENTS)
    processes = {agent: app_processes(compose, containers[agent]) for agent in AGENTS}
    assert all(processes.values()), processes
    compose.phase("app deployed through the standby Marathon")

    compose.run("podman", "kill", containers[killed])
    survivors = tuple(master for master in MASTERS if master != killed)
    second = wait_for(lambda: leading_master(survivors), "a new leader with both agents and "
                      "both frameworks", FAILOVER_TIMEOUT, interval=1.0)
    assert second["leader_info"]["hostname"] in survivors
    compose.phase(f"{killed} killed, {second['leader_info']['hostname']} elected")

    [marathon] = [framework for framework in second["frameworks"]
                  if framework["name"] == "marathon"]
    assert {task["id"]: task["state"] for task in marathon["tasks"]} == dict.fromkeys(
        tasks, "TASK_RUNNING")
    assert running_tasks("sleepy", 2) == tasks
    assert {agent: app_processes(compose, containers[agent]) for agent in AGENTS} == processes

    after = {"id": "/after-failover", "cmd": APP_CMD, "cpus": 0.1, "mem": 32, "instances": 1}
    posted = httpx.post(f"http://127.0.0.1:{ports[standby]}/v2/apps", json=after, timeout=30)
    assert posted.status_code == 201, posted.text
    wait_for(lambda: running_tasks("after-failover", 1), "an app launched by the new leader",
             CLUSTER_TIMEOUT, interval=1.0)
    compose.phase("new leader launched another app")

    compose.down()
    assert compose.containers() == {}
    assert compose.volumes() == []
    assert compose.networks() == []
    compose.phase("torn down, volumes too")


def app_processes(compose: Compose, container: str) -> list[int]:
    """Process ids of `APP_CMD` processes in a container, read from its /proc."""
    listed = compose.run("podman", "exec", container, "python", "-c", (
        "import pathlib\n"
        "for p in pathlib.Path('/proc').glob('[0-9]*/cmdline'):\n"
        "    try:\n"
        "        argv = p.read_bytes().split(b'\\0')\n"
        "    except OSError:\n"
        "        continue\n"
        f"    if argv[:2] == {APP_CMD.encode().split()!r}:\n"
        "        print(p.parent.name)\n"))
    return sorted(int(pid) for pid in listed.stdout.split())
