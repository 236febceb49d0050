"""Which apps, ports and instances marathon-lb exposes (`marathon_lb.services`)."""

from __future__ import annotations

from typing import Any

import pytest

from marathon_lb.services import Backend, HealthMemory, Selection, Service, build_services

ADDRESSES = {"host1": "10.0.0.1", "host2": "10.0.0.2"}
EXTERNAL = Selection(frozenset({"external"}), respect_health=True)
HTTP_CHECK = {"protocol": "HTTP", "path": "/health", "portIndex": 0, "intervalSeconds": 2,
              "timeoutSeconds": 1, "maxConsecutiveFailures": 3}


def task(task_id: str, host: str = "host1", ports: tuple[int, ...] = (31000,),
         state: str = "TASK_RUNNING", alive: tuple[bool, ...] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"id": task_id, "host": host, "ports": list(ports), "state": state}
    if alive is not None:
        body["healthCheckResults"] = [{"alive": a} for a in alive]
    return body


def app(app_id: str = "/shop/web", ports: tuple[int, ...] = (10001,),
        labels: dict[str, str] | None = None, tasks: tuple[dict[str, Any], ...] = (),
        checks: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    return {"id": app_id, "portDefinitions": [{"port": p} for p in ports],
            "labels": {"HAPROXY_GROUP": "external"} if labels is None else labels,
            "healthChecks": list(checks), "tasks": list(tasks)}


def build(*apps: dict[str, Any], selection: Selection = EXTERNAL,
          health: HealthMemory | None = None) -> list[Service]:
    return build_services(apps, selection, health or HealthMemory(), ADDRESSES)


def task_ids(service: Service) -> list[str]:
    return [b.task_id for b in service.backends]


def test_a_service_port_gets_a_frontend_named_after_the_app_and_its_running_backends() -> None:
    [service] = build(app(tasks=(task("a", ports=(31001,)), task("b", "host2", (31002,)))))
    assert service.name == "shop_web_10001" and service.service_port == 10001
    assert service.backends == (Backend("host1", "10.0.0.1", 31001, "a"),
                                Backend("host2", "10.0.0.2", 31002, "b"))
    assert (service.mode, service.balance, service.bind_address) == ("tcp", "roundrobin", "*")


@pytest.mark.parametrize(("groups", "labels", "exposed"), [
    ({"external"}, {"HAPROXY_GROUP": "external"}, True),
    ({"external"}, {"HAPROXY_GROUP": "internal,external"}, True),
    ({"external"}, {"HAPROXY_GROUP": "internal"}, False),
    ({"external"}, {}, False),
    ({"*"}, {}, True),
    ({"external"}, {"HAPROXY_GROUP": "internal", "HAPROXY_0_GROUP": "external"}, True),
    ({"external"}, {"HAPROXY_GROUP": "external", "HAPROXY_0_GROUP": "internal"}, False),
], ids=["group", "one-of-several", "other-group", "no-group", "star-takes-all",
        "port-group-wins", "port-group-excludes"])
def test_groups_select_service_ports(groups: set[str], labels: dict[str, str],
                                     exposed: bool) -> None:
    found = build(app(labels=labels), selection=Selection(frozenset(groups)))
    assert bool(found) == exposed


@pytest.mark.parametrize("state", ["TASK_STAGING", "TASK_STARTING", "TASK_KILLING",
                                   "TASK_UNREACHABLE", "TASK_KILLED", "TASK_FAILED"])
def test_only_running_instances_serve(state: str) -> None:
    [service] = build(app(tasks=(task("up"), task("other", "host2", state=state))))
    assert task_ids(service) == ["up"]


def test_with_health_checks_only_instances_whose_every_check_passes_serve() -> None:
    checks = (HTTP_CHECK, {**HTTP_CHECK, "protocol": "TCP"})
    [service] = build(app(checks=checks, tasks=(
        task("both", alive=(True, True)), task("one-fails", "host2", alive=(True, False)),
        task("unknown", ports=(31009,)), task("no-results", ports=(31010,), alive=()))))
    assert task_ids(service) == ["both"]


def test_without_health_check_flag_results_are_ignored() -> None:
    [service] = build(app(checks=(HTTP_CHECK,), tasks=(task("sick", alive=(False,)),)),
                      selection=Selection(frozenset({"external"})))
    assert task_ids(service) == ["sick"]


def test_apps_without_health_checks_serve_once_running() -> None:
    [service] = build(app(tasks=(task("a"),)))
    assert task_ids(service) == ["a"]


def test_a_known_verdict_outlives_a_marathon_failover_that_forgot_the_results() -> None:
    health = HealthMemory()
    checked = (HTTP_CHECK,)
    build(app(checks=checked, tasks=(task("good", alive=(True,)),
                                     task("bad", "host2", alive=(False,)))), health=health)
    # A new leader shows the tasks without results until it has probed them again.
    [service] = build(app(checks=checked, tasks=(task("good"), task("bad", "host2"))),
                      health=health)
    assert task_ids(service) == ["good"]
    # Tasks that are gone are forgotten.
    build(app(checks=checked), health=health)
    [service] = build(app(checks=checked, tasks=(task("good"),)), health=health)
    assert task_ids(service) == []


def test_unresolved_hosts_and_missing_ports_are_left_out() -> None:
    [first, second] = build(app(ports=(10001, 10002), tasks=(
        task("two-ports", ports=(31001, 31002)), task("one-port", "host2", (31003,)),
        task("nowhere", "unknown-host", (31004, 31005)))))
    assert task_ids(first) == ["two-ports", "one-port"]
    assert task_ids(second) == ["two-ports"]
    assert second.port_index == 1 and second.name == "shop_web_10002"


def test_labels_set_the_frontend() -> None:
    [service] = build(app(labels={
        "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "a.example.com, b.example.com",
        "HAPROXY_0_PATH": "/api", "HAPROXY_0_BALANCE": "leastconn",
        "HAPROXY_0_BIND_ADDR": "127.0.0.1", "HAPROXY_0_PORT": "8080",
        "HAPROXY_0_BIND_OPTIONS": "accept-proxy", "HAPROXY_0_STICKY": "true"}))
    assert service.vhosts == ("a.example.com", "b.example.com")
    assert (service.path, service.weight, service.balance) == ("/api", 1, "leastconn")
    assert (service.bind_address, service.service_port, service.name) == (
        "127.0.0.1", 8080, "shop_web_8080")
    assert service.bind_options == "accept-proxy" and service.sticky
    assert service.mode == "http"  # a vhost makes the port HTTP


@pytest.mark.parametrize(("labels", "checks", "mode"), [
    ({}, (), "tcp"),
    ({"HAPROXY_0_MODE": "http"}, (), "http"),
    ({}, (HTTP_CHECK,), "http"),
    ({"HAPROXY_0_MODE": "tcp"}, (HTTP_CHECK,), "http"),
    ({}, ({**HTTP_CHECK, "protocol": "TCP"},), "tcp"),
    ({}, ({**HTTP_CHECK, "portIndex": 1},), "tcp"),
    ({"HAPROXY_0_BACKEND_HEALTHCHECK_PORT_INDEX": "1"}, ({**HTTP_CHECK, "portIndex": 1},),
     "http"),
], ids=["default-tcp", "label", "http-check", "http-check-wins", "tcp-check",
        "check-of-another-port", "check-port-index-label"])
def test_mode_is_decided_as_marathon_lb_does(labels: dict[str, str],
                                             checks: tuple[dict[str, Any], ...],
                                             mode: str) -> None:
    [service] = build(app(labels={"HAPROXY_GROUP": "external", **labels}, checks=checks),
                      selection=Selection(frozenset({"external"})))
    assert service.mode == mode


def test_unassigned_ports_and_disabled_ports_are_not_exposed() -> None:
    assert build(app(ports=(0,))) == []
    assert [s.service_port for s in build(app(ports=(0,), labels={
        "HAPROXY_GROUP": "external", "HAPROXY_0_PORT": "9000"}))] == [9000]
    assert build(app(labels={"HAPROXY_GROUP": "external", "HAPROXY_0_ENABLED": "false"})) == []
    strict = Selection(frozenset({"external"}), strict=True)
    assert build(app(), selection=strict) == []
    assert build(app(labels={"HAPROXY_GROUP": "external", "HAPROXY_0_ENABLED": "true"}),
                 selection=strict)


def test_service_ports_come_from_port_mappings_then_definitions_then_tasks() -> None:
    mapped = {**app(ports=()), "container": {"type": "DOCKER", "portMappings": [
        {"containerPort": 80, "servicePort": 10080}]}}
    shown = {**app(ports=()), "tasks": [{**task("a"), "servicePorts": [10090]}]}
    assert [s.service_port for s in build(mapped)] == [10080]
    assert [s.service_port for s in build(shown)] == [10090]


def test_services_and_their_backends_are_sorted() -> None:
    services = build(app("/b", (10002,), tasks=(task("x", "host2"), task("y"))),
                     app("/a", (10001,)))
    assert [s.app_id for s in services] == ["/a", "/b"]
    assert task_ids(services[1]) == ["y", "x"]
