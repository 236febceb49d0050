"""Marathon's apps as load-balanced services: which service ports to expose, with which
settings (marathon-lb's `HAPROXY_*` labels), and which instances serve them.

    GET /v2/apps?embed=apps.tasks ──▶ build_services(apps, selection, health, addresses)
                                       ──▶ [Service(frontend settings, healthy backends)]

A pure core: host names arrive already resolved (`addresses`), and what it remembers between
passes (the last health verdict of each task) lives in the `HealthMemory` its owner keeps.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

__all__ = [
    "HTTP_CHECK_PROTOCOLS",
    "Backend",
    "HealthCheck",
    "HealthMemory",
    "Selection",
    "Service",
    "build_services",
]

HTTP_CHECK_PROTOCOLS = frozenset({"HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"})
"""Health check protocols that make a service port speak HTTP, as marathon-lb decides."""
SERVING_STATE = "TASK_RUNNING"
"""The one task state that receives traffic: not staging or starting (not serving yet), not
killing (draining before its SIGTERM), not unreachable or lost (Marathon cannot vouch for it)."""
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")


@dataclass(frozen=True, slots=True)
class Selection:
    """Which apps this load balancer exposes: marathon-lb's `--group` and `--strict-mode`,
    and whether Marathon's health results decide (`--health-check`)."""

    groups: frozenset[str]
    strict: bool = False
    respect_health: bool = False

    def wants(self, service_groups: Iterable[str]) -> bool:
        """Whether a service port labelled with `service_groups` belongs here (`*` takes
        every service port, with a group or without)."""
        return "*" in self.groups or bool(self.groups & set(service_groups))


@dataclass(frozen=True, slots=True, order=True)
class Backend:
    """One instance's port behind a service port."""

    host: str
    address: str
    port: int
    task_id: str = field(compare=False)

    @property
    def name(self) -> str:
        """The server's name in its backend: unique there, stable across passes."""
        return _UNSAFE_NAME.sub("_", f"{self.host}_{self.port}")


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """What HAProxy's own checks borrow from the app's Marathon health check of a port."""

    protocol: str
    path: str
    interval_seconds: float
    timeout_seconds: float
    max_consecutive_failures: int


@dataclass(frozen=True, slots=True)
class Service:
    """One service port of one app: its frontend's settings and its backends."""

    app_id: str
    port_index: int
    service_port: int
    mode: str = "tcp"
    balance: str = "roundrobin"
    bind_address: str = "*"
    bind_options: str = ""
    vhosts: tuple[str, ...] = ()
    path: str = ""
    weight: int = 0
    sticky: bool = False
    health_check: HealthCheck | None = None
    backends: tuple[Backend, ...] = ()

    @property
    def name(self) -> str:
        """The frontend's and backend's name: the app id's segments and the service port,
        as marathon-lb names them (`/shop/web` on 10001 is `shop_web_10001`)."""
        segments = self.app_id.strip("/").replace("/", "_")
        return _UNSAFE_NAME.sub("_", f"{segments}_{self.service_port}")


class HealthMemory:
    """The last health verdict of every task Marathon has shown results for.

    A new Marathon leader knows no results until its first probes; until then a task keeps the
    verdict it had, so a Marathon failover does not empty every health-checked backend.
    """

    def __init__(self) -> None:
        self._alive: dict[str, bool] = {}

    def verdict(self, task_id: str, results: Sequence[Mapping[str, Any]] | None) -> bool:
        """Whether the task passes: every result alive, or the remembered verdict (none yet:
        it does not pass, so a new instance joins only once healthy)."""
        if results:
            self._alive[task_id] = all(r.get("alive") is True for r in results)
        return self._alive.get(task_id, False)

    def keep_only(self, task_ids: Iterable[str]) -> None:
        """Forget tasks that are gone."""
        live = set(task_ids)
        self._alive = {t: v for t, v in self._alive.items() if t in live}


def build_services(
    apps: Iterable[Mapping[str, Any]],
    selection: Selection,
    health: HealthMemory,
    addresses: Mapping[str, str],
) -> list[Service]:
    """The service ports of `apps` (Marathon's `/v2/apps` JSON with tasks) this load balancer
    exposes, sorted by app and port index; `addresses` maps task hosts to IP addresses (a
    task on a host missing there is left out)."""
    services: list[Service] = []
    seen_tasks: list[str] = []
    for app in apps:
        labels = _labels(app)
        checks = [c for c in app.get("healthChecks") or () if isinstance(c, Mapping)]
        tasks = [t for t in app.get("tasks") or () if isinstance(t, Mapping)]
        seen_tasks += [str(t.get("id")) for t in tasks]
        for index, service_port in enumerate(service_ports(app)):
            service = _service(app, labels, checks, index, service_port, selection)
            if service is None:
                continue
            backends = sorted({
                Backend(host, addresses[host], ports[index], str(task.get("id")))
                for task in tasks
                if (host := str(task.get("host") or "")) in addresses
                and len(ports := _ports(task)) > index
                and _serves(task, checks, selection, health)
            })
            services.append(replace(service, backends=tuple(backends)))
    health.keep_only(seen_tasks)
    return sorted(services, key=lambda s: (s.app_id, s.port_index))


def service_ports(app: Mapping[str, Any]) -> list[int]:
    """The app's service ports (0: not assigned): its port mappings' `servicePort`s, else its
    port definitions' ports, else what its tasks show."""
    container = app.get("container") or {}
    mappings = container.get("portMappings") or (container.get("docker") or {}).get(
        "portMappings") or ()
    if mappings:
        return [_int(m.get("servicePort")) for m in mappings if isinstance(m, Mapping)]
    definitions = app.get("portDefinitions")
    if definitions:
        return [_int(d.get("port")) for d in definitions if isinstance(d, Mapping)]
    for task in app.get("tasks") or ():
        if isinstance(task, Mapping) and task.get("servicePorts"):
            return [_int(p) for p in task["servicePorts"]]
    return [_int(p) for p in app.get("ports") or ()]


def _service(app: Mapping[str, Any], labels: Mapping[str, str], checks: list[Mapping[str, Any]],
             index: int, service_port: int, selection: Selection) -> Service | None:
    def label(name: str) -> str | None:
        return labels.get(f"HAPROXY_{index}_{name}")

    groups = label("GROUP") if label("GROUP") is not None else labels.get("HAPROXY_GROUP")
    if not selection.wants(_split(groups or "", ",")):
        return None
    enabled = (label("ENABLED") or "").strip().lower()
    if enabled == "false" or (selection.strict and enabled != "true"):
        return None
    port = _int(label("PORT")) if label("PORT") is not None else service_port
    if port <= 0:
        return None
    check = _check_for_port(checks, index, label("BACKEND_HEALTHCHECK_PORT_INDEX"))
    vhosts = tuple(_split(label("VHOST") or "", ","))
    mode = (label("MODE") or ("http" if vhosts else "tcp")).strip()
    if check is not None and check.protocol in HTTP_CHECK_PROTOCOLS:
        mode = "http"  # marathon-lb: an HTTP health check makes the port HTTP, label or not
    path = (label("PATH") or "").strip()
    weight_label = label("BACKEND_WEIGHT")
    weight = _int(weight_label) if weight_label is not None else (1 if path else 0)
    return Service(
        app_id=str(app.get("id", "")), port_index=index, service_port=port, mode=mode,
        balance=(label("BALANCE") or "roundrobin").strip(),
        bind_address=(label("BIND_ADDR") or "*").strip(),
        bind_options=(label("BIND_OPTIONS") or "").strip(),
        vhosts=vhosts, path=path, weight=weight,
        sticky=(label("STICKY") or "").strip().lower() == "true", health_check=check,
    )


def _serves(task: Mapping[str, Any], checks: list[Mapping[str, Any]], selection: Selection,
            health: HealthMemory) -> bool:
    if task.get("state", SERVING_STATE) != SERVING_STATE:
        return False
    if not (selection.respect_health and checks):
        return True
    results = task.get("healthCheckResults")
    return health.verdict(str(task.get("id")), results if isinstance(results, list) else None)


def _check_for_port(checks: list[Mapping[str, Any]], index: int,
                    index_label: str | None) -> HealthCheck | None:
    """The app's health check of port `index` (or of the port the
    `HAPROXY_{n}_BACKEND_HEALTHCHECK_PORT_INDEX` label names)."""
    wanted = _int(index_label) if index_label is not None else index
    for check in checks:
        if check.get("portIndex", 0 if "port" not in check else None) == wanted:
            return HealthCheck(
                protocol=str(check.get("protocol", "HTTP")).upper(),
                path=str(check.get("path") or "/"),
                interval_seconds=_number(check.get("intervalSeconds"), 60),
                timeout_seconds=_number(check.get("timeoutSeconds"), 20),
                max_consecutive_failures=_int(check.get("maxConsecutiveFailures", 3)),
            )
    return None


def _labels(app: Mapping[str, Any]) -> dict[str, str]:
    raw = app.get("labels") or {}
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, Mapping) else {}


def _ports(task: Mapping[str, Any]) -> list[int]:
    return [_int(p) for p in task.get("ports") or ()]


def _split(text: str, separator: str) -> list[str]:
    return [part.strip() for part in text.split(separator) if part.strip()]


def _int(value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        return 0


def _number(value: Any, default: float) -> float:
    try:
        return float(value) if value is not None else default
    except (TypeError, ValueError):
        return default
