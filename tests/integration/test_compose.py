"""docker-compose.yml without a Docker engine: the file is valid Compose (the Compose
Specification schema that Debian's docker-compose package ships, and that program's own
`config` check), every command and flag in it exists, and the same topology started as local
processes (a real ZooKeeper, three masters, two agents, two Marathons, the batch framework)
elects one master, registers the agents with their attributes, runs an app posted to the
standby Marathon and a batch job. `scripts/test.sh` installs Debian's docker-compose package."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mesos_http.operator_http import attributes_json
from mesos_security.tls import TlsConfig
from mesos_values.addresses import HostPort
from mesos_values.attributes import parse_attributes
from tests.compose_topology import (
    COMPOSE_FILE,
    LOOPBACK,
    TLS_COMPOSE_FILE,
    LocalService,
    command_problems,
    load_compose,
    local_services,
    merge_compose,
    schema_problems,
    service_argv,
)
from tests.integration.cluster import Cluster, Process, free_port, wait_for
from tests.zookeeper import zookeeper

pytestmark = pytest.mark.integration

REPO = COMPOSE_FILE.parent
DEBIAN_COMPOSE_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
ZOOKEEPER_CLIENT_PORT = 2181  # where the official zookeeper image serves clients
STARTUP_TIMEOUT = 45.0


def compose_schema() -> dict[str, Any]:
    if not DEBIAN_COMPOSE_SCHEMA.exists():
        pytest.fail(f"{DEBIAN_COMPOSE_SCHEMA} is missing: scripts/test.sh installs Debian's "
                    "docker-compose package, which ships the Compose Specification schema")
    schema: dict[str, Any] = json.loads(DEBIAN_COMPOSE_SCHEMA.read_text())
    return schema


def test_the_compose_file_matches_the_compose_specification_schema() -> None:
    schema = compose_schema()
    document = load_compose()
    assert schema_problems(document, schema) == []

    misspelt = copy.deepcopy(document)
    misspelt["services"]["master1"]["comand"] = misspelt["services"]["master1"].pop("command")
    assert schema_problems(misspelt, schema) == [
        "services/master1: 'comand' does not match any of the regexes: '^x-'"
    ]


def test_docker_compose_config_accepts_the_file_without_an_engine() -> None:
    checked = subprocess.run(
        ["docker-compose", "--file", str(COMPOSE_FILE), "config", "--quiet"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert checked.returncode == 0, checked.stderr


def test_every_program_and_flag_in_the_compose_file_exists() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    document = load_compose()
    assert command_problems(document, pyproject["project"]["scripts"]) == []
    programs = [service_argv(service)[0] for service in document["services"].values()
                if "build" in service]
    assert sorted(programs) == sorted(
        ["mesos-master"] * 3 + ["mesos-agent"] * 2 + ["marathon"] * 2 + ["mesos-batch"]
        + ["mesos-dns", "marathon-lb"])


@dataclass
class Topology:
    """The compose services running as local processes."""

    services: list[LocalService]
    processes: list[Process]
    scheme: str = "http"

    def running(self, program: str) -> list[LocalService]:
        return [service for service in self.services if service.program == program]

    def url(self, service: LocalService) -> str:
        return f"{self.scheme}://{LOOPBACK}:{service.options.http_port}"


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    with running_topology(load_compose(), tmp_path) as started:
        yield started


@contextlib.contextmanager
def running_topology(document: dict[str, Any], tmp_path: Path, scheme: str = "http",
                     binds_from: Path | None = None) -> Iterator[Topology]:
    """The services of `document` as local processes, the files of bind mounts copied from
    under `binds_from` (the directory the compose files are in)."""
    [zookeeper_service] = [name for name, service in document["services"].items()
                           if str(service.get("image", "")).startswith("zookeeper:")]
    with zookeeper(tmp_path / "zookeeper") as ensemble:
        [server] = ensemble.nodes
        services = local_services(
            document,
            external={HostPort(zookeeper_service, ZOOKEEPER_CLIENT_PORT):
                      HostPort(LOOPBACK, server.client_port)},
            work_dir=tmp_path,
            free_port=free_port,
        )
        for service in services:
            for source, local in service.binds.items():
                assert binds_from is not None, f"{service.name} mounts {source}"
                local.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(binds_from / source, local)
        cluster = Cluster(tmp_path)  # its close() stops the processes and their tasks
        try:
            for service in services:
                cluster.processes.append(
                    Process(service.name, service.argv, tmp_path / f"{service.name}.log").start())
            yield Topology(services, cluster.processes, scheme)
        finally:
            cluster.close()


def answers(url: str) -> bool:
    """Whether a plain HTTP GET of `url` answers 200."""
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def get_json(http: httpx.Client, url: str) -> Any:
    """The JSON answer of a GET, or None while the process is not answering yet."""
    try:
        answer = http.get(url)
    except httpx.HTTPError:
        return None
    return answer.json() if answer.status_code == 200 else None


def test_the_compose_topology_runs_as_local_processes(topology: Topology) -> None:
    with httpx.Client(timeout=10) as http:
        check_topology(topology, http)


def check_topology(topology: Topology, http: httpx.Client) -> None:
    """One master leads with both agents registered, an app posted to the standby Marathon
    runs where its constraint says, a batch job succeeds."""
    masters = topology.running("mesos-master")
    agents = topology.running("mesos-agent")
    marathons = topology.running("marathon")
    [batch] = topology.running("mesos-batch")
    leader = wait_for(lambda: the_leading_master(http, topology, masters),
                      "every master to name the one elected master", STARTUP_TIMEOUT)
    expected_agents = {agent.options.hostname: attributes_json(
        parse_attributes(agent.options.attributes)) for agent in agents}
    wait_for(lambda: active_agents(http, topology.url(leader)) == expected_agents,
             f"agents {sorted(expected_agents)} to register with their attributes",
             STARTUP_TIMEOUT)

    leading_marathon = wait_for(lambda: the_leading_marathon(http, topology, marathons),
                                "exactly one Marathon to lead", STARTUP_TIMEOUT)
    [standby] = [marathon for marathon in marathons if marathon is not leading_marathon]
    standby_url = topology.url(standby)
    wait_for(lambda: get_json(http, f"{standby_url}/v2/leader"),
             "the standby Marathon to know the leader")
    target = agents[-1]  # pinned by its rack, which no other agent has
    rack = expected_agents[target.options.hostname]["rack"]
    assert [a["rack"] for a in expected_agents.values()].count(rack) == 1
    created = http.post(f"{standby_url}/v2/apps", json={
        "id": "/compose-check", "cmd": "sleep 600", "cpus": 0.1, "mem": 32,
        "instances": 1, "constraints": [["rack", "CLUSTER", rack]]})
    assert created.status_code == 201, created.text
    wait_for(lambda: running_hosts(http, standby_url, "compose-check")
             == [target.options.hostname],
             f"the app to run on {target.options.hostname}", STARTUP_TIMEOUT)

    # mesos-dns (following the leading master through ZooKeeper) names the app's instance.
    [dns] = topology.running("mesos-dns")
    wait_for(lambda: [entry.get("port") for entry in get_json(
        http, f"{topology.url(dns)}/v1/services/_compose-check._tcp.marathon.mesos.") or []
        if entry.get("port")], "mesos-dns to name the app's instance", STARTUP_TIMEOUT)
    for balancer in topology.running("marathon-lb"):  # the plain variant only
        health = f"http://{LOOPBACK}:{balancer.options.stats_port}/_haproxy_health_check"
        wait_for(lambda url=health: answers(url), "marathon-lb's HAProxy", STARTUP_TIMEOUT)

    batch_url = topology.url(batch)
    wait_for(lambda: (get_json(http, f"{batch_url}/info") or {}).get("frameworkId"),
             "the batch framework to lead and register", STARTUP_TIMEOUT)
    job = {"id": "compose-check", "run": {"cmd": "true", "cpus": 0.1, "mem": 32}}
    assert http.post(f"{batch_url}/v1/jobs", json=job).status_code == 201
    started = http.post(f"{batch_url}/v1/jobs/compose-check/runs")
    assert started.status_code == 201, started.text
    run_url = f"{batch_url}/v1/jobs/compose-check/runs/{started.json()['id']}"
    wait_for(lambda: (get_json(http, run_url) or {}).get("status") == "SUCCESS",
             "the batch run to succeed", STARTUP_TIMEOUT)

    assert all(process.alive() for process in topology.processes), [
        process.name for process in topology.processes if not process.alive()]


TLS_FLAGS = ["--ssl_cert_file=/etc/mesos/pki/cert.pem", "--ssl_key_file=/etc/mesos/pki/key.pem",
             "--ssl_ca_file=/etc/mesos/pki/ca.pem", "--ssl_require_client_cert=true"]
MASTER_TLS_FLAGS = [*TLS_FLAGS, "--authenticate_frameworks=true", "--authenticate_agents=true"]


def tls_compose() -> dict[str, Any]:
    """docker-compose.yml with docker-compose.tls.yml over it."""
    return merge_compose(load_compose(), load_compose(TLS_COMPOSE_FILE))


def test_the_tls_variant_matches_the_compose_specification_schema() -> None:
    schema = compose_schema()
    assert schema_problems(load_compose(TLS_COMPOSE_FILE), schema) == []
    assert schema_problems(tls_compose(), schema) == []


def test_docker_compose_config_merges_the_tls_variant_as_the_tests_do() -> None:
    merged = subprocess.run(
        ["docker-compose", "--file", str(COMPOSE_FILE), "--file", str(TLS_COMPOSE_FILE),
         "config"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert merged.returncode == 0, merged.stderr
    theirs = yaml.safe_load(merged.stdout)["services"]
    ours = tls_compose()["services"]
    assert sorted(theirs) == sorted(ours)
    for name, service in ours.items():
        assert theirs[name].get("command") == service.get("command"), name
        assert theirs[name].get("healthcheck") == service.get("healthcheck"), name
        assert sorted(v.split(":")[1] for v in theirs[name].get("volumes", [])) == sorted(
            v.split(":")[1] for v in service.get("volumes", [])), name


def test_the_tls_variant_adds_tls_to_every_command_and_nothing_else() -> None:
    """Every service of the TLS variant runs the command of docker-compose.yml followed by
    the TLS flags (the masters also authenticate frameworks and agents), and sees the CA's
    certificate and its own certificate and key, never the CA's key."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    merged = tls_compose()
    assert command_problems(merged, pyproject["project"]["scripts"]) == []
    plain = load_compose()["services"]
    override = load_compose(TLS_COMPOSE_FILE)["services"]
    assert sorted(override) == sorted(name for name, service in plain.items()
                                      if "build" in service)
    # A service the variant cannot secure is left out: only started with its profile.
    left_out = {name for name, service in override.items() if set(service) == {"profiles"}}
    assert left_out == {"marathon-lb"}
    for name, service in override.items():
        if name in left_out:
            continue
        base = service_argv(plain[name])
        extra = MASTER_TLS_FLAGS if base[0] == "mesos-master" else TLS_FLAGS
        assert service_argv(service) == [*base, *extra], name
        mounted = {volume.split(":")[0]: volume.split(":")[1] for volume in service["volumes"]}
        certificate = "marathon" if base[0] == "marathon" else name
        assert mounted == {"./certs/ca.pem": "/etc/mesos/pki/ca.pem",
                           f"./certs/{certificate}.pem": "/etc/mesos/pki/cert.pem",
                           f"./certs/{certificate}-key.pem": "/etc/mesos/pki/key.pem"}, name
        assert "https://" in " ".join(merged["services"][name]["healthcheck"]["test"]), name


def documented_certificate_commands() -> str:
    """The shell commands docker-compose.tls.yml's header gives for making ./certs."""
    header = TLS_COMPOSE_FILE.read_text().split("\n\n")[0]
    match = re.search(r"from the repository's root:\n#\n((?:#   .*\n)+)", header + "\n")
    assert match is not None, "docker-compose.tls.yml's header lost its certificate commands"
    return "".join(line.removeprefix("#   ") + "\n" for line in match.group(1).splitlines())


def test_the_docs_give_the_same_certificate_commands() -> None:
    commands = documented_certificate_commands()
    assert "python -m mesos_security.pki --dir certs" in commands
    docs = (REPO / "docs" / "docker-compose.md").read_text()
    assert commands in docs, "docs/docker-compose.md and docker-compose.tls.yml differ"


def test_the_tls_topology_runs_as_local_processes(tmp_path: Path) -> None:
    """The merged files as local processes over mutual TLS, with certificates made by the
    documented commands: the same checks as the plain topology, through HTTPS with the
    user's certificate, and a client without one is refused."""
    made = subprocess.run(["bash", "-e", "-c", documented_certificate_commands()],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:"
                               f"{os.environ['PATH']}"})
    assert made.returncode == 0, made.stderr
    certs = tmp_path / "certs"
    user = TlsConfig(str(certs / "cli.pem"), str(certs / "cli-key.pem"), str(certs / "ca.pem"))
    with running_topology(tls_compose(), tmp_path / "run", "https", binds_from=tmp_path
                          ) as topology, httpx.Client(verify=user.client_context(),
                                                      timeout=10) as https:
        check_topology(topology, https)
        leader = the_leading_master(https, topology, topology.running("mesos-master"))
        assert leader is not None
        state = https.get(f"{topology.url(leader)}/state").json()
        assert sorted({f["principal"] for f in state["frameworks"]}) == ["batch", "marathon"]
        anonymous = TlsConfig(ca_file=str(certs / "ca.pem")).client_context()
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"{topology.url(leader)}/state", verify=anonymous, timeout=10)


def the_leading_master(
    http: httpx.Client, topology: Topology, masters: list[LocalService]
) -> LocalService | None:
    """The one master that leads, once every master names it as the leader."""
    states = [get_json(http, f"{topology.url(master)}/state") for master in masters]
    if not all(states):
        return None
    elected = [master for master, state in zip(masters, states, strict=True)
               if "elected_time" in state]
    if len(elected) != 1:
        return None
    leader_pid = states[masters.index(elected[0])]["pid"]
    return elected[0] if all(state.get("leader") == leader_pid for state in states) else None


def active_agents(http: httpx.Client, master_url: str) -> dict[str, Any] | None:
    """hostname -> attributes of the agents the leading master has active."""
    state = get_json(http, f"{master_url}/state")
    if state is None:
        return None
    return {agent["hostname"]: agent["attributes"]
            for agent in state["slaves"] if agent["active"]}


def the_leading_marathon(
    http: httpx.Client, topology: Topology, marathons: list[LocalService]
) -> LocalService | None:
    infos = [get_json(http, f"{topology.url(marathon)}/v2/info") for marathon in marathons]
    if not all(infos):
        return None
    elected = [marathon for marathon, info in zip(marathons, infos, strict=True)
               if info["elected"] and info["frameworkId"]]
    return elected[0] if len(elected) == 1 else None


def running_hosts(http: httpx.Client, marathon_url: str, app_id: str) -> list[str] | None:
    app = get_json(http, f"{marathon_url}/v2/apps/{app_id}?embed=app.tasks")
    if app is None:
        return None
    return [task["host"] for task in app["app"]["tasks"] if task["state"] == "TASK_RUNNING"]
