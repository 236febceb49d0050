"""The compose checks on small in-memory compose documents: every program and flag must exist
(a misspelt or abbreviated flag, a value the program refuses, a program that is not ours all
fail), and the translation to local processes rewrites only addresses, ports and volumes."""

from __future__ import annotations

import copy
import itertools
from pathlib import Path
from typing import Any

import pytest

from mesos_values.addresses import HostPort
from tests.compose_topology import command_problems, interpolate, local_services, merge_compose

SCRIPTS = frozenset({"mesos-master", "mesos-agent", "marathon", "mesos-batch", "mesos"})

DOCUMENT: dict[str, Any] = {
    "services": {
        "zookeeper": {"image": "zookeeper:3.8"},
        "master1": {
            "build": ".",
            "command": ["mesos-master", "--ip=master1", "--port=5050", "--http_port=5080",
                        "--zk=zk://zookeeper:2181/mesos"],
            "ports": ["5080:5080"],
        },
        "node-a": {
            "build": ".",
            "hostname": "agent-a",
            "command": "mesos-agent --master master1:5050 --ip agent-a --hostname agent-a "
                       "--port 5051 --work_dir /var/lib/mesos/agent "
                       "--attributes 'rack:r1;zone:a'",
            "volumes": ["work:/var/lib/mesos/agent"],
            "ports": [{"target": 5051, "published": 5051}],
        },
        "batch": {
            "build": ".",
            "command": ["mesos-batch", "--master=zk://zookeeper:2181/mesos",
                        "--http_address=batch", "--http_port=9000", "--framework_name=batch"],
        },
    },
}


def changed(service: str, key: str, value: Any) -> dict[str, Any]:
    document = copy.deepcopy(DOCUMENT)
    document["services"][service][key] = value
    return document


def test_a_document_whose_programs_and_flags_exist_has_no_problems() -> None:
    assert command_problems(DOCUMENT, SCRIPTS) == []


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (changed("master1", "command", ["mesos-master", "--ip=master1", "--zk_sesion=2secs"]),
         "master1: mesos-master: error: unrecognized arguments: --zk_sesion=2secs"),
        (changed("node-a", "command", "mesos-agent --master master1:5050 --atributes rack:r1"),
         "node-a: mesos-agent: error: unrecognized arguments: --atributes rack:r1"),
        (changed("master1", "command", ["mesos-master", "--zk_session=2secs"]),
         "master1: mesos-master: error: unrecognized arguments: --zk_session=2secs"),
        (changed("master1", "command", ["mesos-master", "--port=http"]),
         "master1: mesos-master: error: argument --port: 'http' is not a port number (0..65535)"),
        (changed("master1", "command", ["mesos-master", "--zk=zookeeper:2181"]),
         "master1: mesos-master: error: argument --zk: invalid ZooKeeper URL 'zookeeper:2181': "
         "expected zk://host:port/path"),
        (changed("master1", "command", ["mesos-slave", "--ip=master1"]),
         "master1: 'mesos-slave' is not one of marathon, marathon-lb, mesos-agent, "
         "mesos-batch, mesos-dns, mesos-master"),
        (changed("master1", "command", None),
         "master1: no command (one of marathon, marathon-lb, mesos-agent, mesos-batch, "
         "mesos-dns, mesos-master)"),
        (changed("master1", "ports", ["5081:5081"]),
         "master1: publishes container port 5081, but mesos-master listens on [5050, 5080]"),
    ],
    ids=["misspelt-flag", "misspelt-flag-with-separate-value", "abbreviated-flag", "bad-port",
         "bad-zk-url", "unknown-program", "no-command", "published-port-nobody-listens-on"],
)
def test_a_flag_or_program_that_does_not_exist_is_a_problem(
    document: dict[str, Any], expected: str
) -> None:
    assert command_problems(document, SCRIPTS) == [expected]


def test_a_program_that_is_not_an_installed_console_script_is_a_problem() -> None:
    assert command_problems(DOCUMENT, SCRIPTS - {"mesos-batch"}) == [
        "batch: 'mesos-batch' is not one of marathon, marathon-lb, mesos-agent, mesos-batch, "
        "mesos-dns, mesos-master"
    ]


def test_local_services_keep_the_flags_and_rewrite_addresses_ports_and_volumes() -> None:
    ports = itertools.count(40000)
    services = local_services(
        DOCUMENT,
        external={HostPort("zookeeper", 2181): HostPort("127.0.0.1", 12181)},
        work_dir=Path("/cluster"),
        free_port=lambda: next(ports),
        scripts_dir=Path("/venv/bin"),
    )
    master, agent, batch = services
    assert master.argv == [
        "/venv/bin/mesos-master", "--ip=127.0.0.1", "--port=40000", "--http_port=40001",
        "--zk=zk://127.0.0.1:12181/mesos",
    ]
    assert master.ports == {5050: 40000, 5080: 40001}
    assert master.options.http_port == 40001
    # the agent finds the master at master1's local gRPC port; --hostname is an identity
    assert agent.argv == [
        "/venv/bin/mesos-agent", "--master", "127.0.0.1:40000", "--ip", "127.0.0.1",
        "--hostname", "agent-a", "--port", "40002", "--work_dir", "/cluster/node-a/work",
        "--attributes", "rack:r1;zone:a",
    ]
    assert (agent.name, agent.program, agent.options.attributes) == (
        "node-a", "mesos-agent", "rack:r1;zone:a")
    # a service name is rewritten where it is an address, not where it is any other value
    assert batch.argv[1:] == [
        "--master=zk://127.0.0.1:12181/mesos", "--http_address=127.0.0.1",
        "--http_port=40003", "--framework_name=batch",
    ]


def test_a_service_from_another_image_must_run_locally_already() -> None:
    with pytest.raises(ValueError, match=r"services \['zookeeper'\] are neither built here"):
        local_services(DOCUMENT, external={}, work_dir=Path("/cluster"), free_port=lambda: 1)


def test_an_override_merges_as_compose_merges_files() -> None:
    override: dict[str, Any] = {"services": {"node-a": {
        "command": ["mesos-agent", "--master", "master1:5050"],
        "volumes": ["./certs/ca.pem:/etc/pki/ca.pem:ro", "other:/var/lib/mesos/agent"],
        "ports": ["5051:5051", "6000:6000"],
        "healthcheck": {"test": ["CMD", "true"]},
    }}}
    base = copy.deepcopy(DOCUMENT)
    base["services"]["node-a"]["healthcheck"] = {"test": ["CMD", "false"], "interval": "5s"}
    merged = merge_compose(base, override)
    node = merged["services"]["node-a"]
    assert node["command"] == ["mesos-agent", "--master", "master1:5050"]  # replaced whole
    assert node["volumes"] == ["other:/var/lib/mesos/agent", "./certs/ca.pem:/etc/pki/ca.pem:ro"]
    assert node["ports"] == [{"target": 5051, "published": 5051}, "5051:5051", "6000:6000"]
    assert node["healthcheck"] == {"test": ["CMD", "true"], "interval": "5s"}
    assert node["hostname"] == "agent-a"
    assert merged["services"]["master1"] == DOCUMENT["services"]["master1"]
    assert base["services"]["node-a"]["healthcheck"]["test"] == ["CMD", "false"]  # not changed


def test_bind_mounts_are_listed_with_where_their_files_go(tmp_path: Path) -> None:
    document = copy.deepcopy(DOCUMENT)
    document["services"]["node-a"]["volumes"].append("./certs/agent.pem:/etc/pki/cert.pem:ro")
    document["services"]["node-a"]["command"] += " --ssl_ca_file /etc/pki/cert.pem"
    ports = itertools.count(40000)
    services = {service.name: service for service in local_services(
        document, external={HostPort("zookeeper", 2181): HostPort("127.0.0.1", 2181)},
        work_dir=tmp_path, free_port=lambda: next(ports))}
    local = tmp_path / "node-a" / "certs_agent.pem"
    assert services["node-a"].binds == {"./certs/agent.pem": local}
    assert services["node-a"].options.ssl_ca_file == str(local)
    assert services["master1"].binds == {}


def test_variables_are_interpolated_as_compose_does() -> None:
    document = {"services": {"zookeeper": {
        "image": "${ZOOKEEPER_IMAGE:-zookeeper:3.8}",
        "command": ["$PROGRAM", "--tag=${TAG-none}", "--empty=${EMPTY:-fallback}",
                    "--kept=${EMPTY-fallback}", "--price=$$5", "${MISSING}"],
        "ports": [2181],
    }}}
    environment = {"PROGRAM": "zkServer.sh", "EMPTY": ""}
    zookeeper = interpolate(document, environment)["services"]["zookeeper"]
    assert zookeeper == {"image": "zookeeper:3.8", "command": [
        "zkServer.sh", "--tag=none", "--empty=fallback", "--kept=", "--price=$5", ""],
        "ports": [2181]}
    assert interpolate(document, {"ZOOKEEPER_IMAGE": "localhost/zk:3.8", "TAG": "t"})[
        "services"]["zookeeper"]["image"] == "localhost/zk:3.8"
    assert interpolate("${TAG-none}", {"TAG": "t"}) == "t"
    with pytest.raises(ValueError, match="IMAGE: set IMAGE"):
        interpolate("${IMAGE:?set IMAGE}", {"IMAGE": ""})
    assert interpolate("${IMAGE?set IMAGE}", {"IMAGE": ""}) == ""
