"""HAProxy's configuration for a list of services (a pure core: text in, text out).

The layout follows marathon-lb's: global settings and defaults (with `retries` and
`option redispatch`, so a connection a dying backend refuses is retried on another one), a
stats listener (`/haproxy?stats`, `/_haproxy_health_check`, `/_haproxy_getconfig`,
`/_haproxy_getvhostmap`, `/metrics`), a shared HTTP frontend routing on the `Host` header (and
an HTTPS one on SNI when certificates are given), then a frontend and a backend per service
port. The text is our own; marathon-lb's templates are not used.

Each backend has more server lines than instances, *slots* (`SlotTable`): the unused ones are
`disabled` on a placeholder address, so instances coming and going within a backend's slots
are applied by `server_commands` with the runtime API's `set server` (address, port, state)
and no reload; a slot keeps its instance as long as the instance lasts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace

from marathon_lb.services import Backend, Service

__all__ = [
    "PLACEHOLDER",
    "Layout",
    "SlotTable",
    "assign_slots",
    "render_config",
    "render_vhost_map",
    "server_arguments",
    "server_commands",
    "slot_count",
]

Slots = tuple[Backend | None, ...]
"""A backend's server slots in order (`s1`, `s2`, ...): the instance each holds, or None."""
SlotTable = Mapping[str, Slots]
"""Slots by backend (service) name."""
PLACEHOLDER = ("127.0.0.1", 1)
"""The address of an unused (disabled) slot."""
MIN_SLOTS = 4


@dataclass(frozen=True, slots=True)
class Layout:
    """Where HAProxy listens and the files its configuration names."""

    config_path: str
    lua_path: str
    vhost_map_path: str
    stats_port: int = 9090
    stats_bind: str = "*"
    http_port: int = 80
    https_port: int = 443
    bind_http_https: bool = True
    ssl_certs: tuple[str, ...] = ()


def slot_count(instances: int) -> int:
    """Slots for a backend of `instances`: the next power of two above them (at least
    `MIN_SLOTS`), so that one more instance, and a rolling restart's surge, fit."""
    count = MIN_SLOTS
    while count <= instances:
        count *= 2
    return count


def assign_slots(previous: SlotTable, services: Sequence[Service]) -> dict[str, Slots]:
    """Each service's instances in slots: an instance already in a slot of `previous` keeps
    it, new ones take the free slots in order; a backend keeps its number of slots unless its
    instances outgrow them (then `slot_count`, which takes a reload)."""
    table: dict[str, Slots] = {}
    for service in services:
        old = previous.get(service.name, ())
        wanted = set(service.backends)
        size = len(old) if old and len(service.backends) <= len(old) else slot_count(
            len(service.backends))
        slots: list[Backend | None] = [b if b in wanted else None for b in old]
        slots += [None] * (size - len(slots))
        placed = {b for b in slots if b is not None}
        free = (i for i, b in enumerate(slots) if b is None)
        for backend in sorted(wanted - placed):
            slots[next(free)] = backend
        table[service.name] = tuple(slots)
    return table


def render_config(services: Sequence[Service], layout: Layout,
                  slots: SlotTable | None = None) -> str:
    """The whole configuration file, with the backends' servers in `slots` (by default,
    fresh ones from `assign_slots`)."""
    table = assign_slots(slots or {}, services)
    parts = [_head(layout), _stats(layout)]
    routed = _routing_order(s for s in services if s.vhosts and s.mode == "http")
    if layout.bind_http_https:
        parts.append(_http_frontend(routed, layout))
        if layout.ssl_certs:
            parts.append(_https_frontend(routed, layout))
    for service in services:
        parts += [_frontend(service), _backend(service, table[service.name])]
    return "\n".join(parts)


def render_vhost_map(services: Sequence[Service]) -> str:
    """`vhost [path] backend` lines, what `/_haproxy_getvhostmap` answers."""
    return "".join(" ".join(filter(None, (vhost, service.path, service.name))) + "\n"
                   for service in _routing_order(s for s in services if s.mode == "http")
                   for vhost in service.vhosts)


def _head(layout: Layout) -> str:
    return f"""\
global
  spread-checks 5
  setenv MARATHON_LB_CONFIG {layout.config_path}
  setenv MARATHON_LB_VHOST_MAP {layout.vhost_map_path}
  lua-load {layout.lua_path}

defaults
  log global
  retries 3
  option redispatch
  option dontlognull
  backlog 10000
  maxconn 10000
  timeout connect 3s
  timeout client 30s
  timeout server 30s
  timeout tunnel 3600s
  timeout http-keep-alive 1s
  timeout http-request 15s
  timeout queue 30s
"""


def _stats(layout: Layout) -> str:
    return f"""\
listen stats
  bind {layout.stats_bind}:{layout.stats_port}
  mode http
  stats enable
  stats uri /haproxy?stats
  monitor-uri /_haproxy_health_check
  http-request use-service prometheus-exporter if {{ path /metrics }}
  http-request use-service lua.marathon_lb_getconfig if {{ path /_haproxy_getconfig }}
  http-request use-service lua.marathon_lb_getvhostmap if {{ path /_haproxy_getvhostmap }}
"""


def _routing_order(services: Iterable[Service]) -> list[Service]:
    """Vhost routes in the order HAProxy tries them: heavier first (a path makes a route
    weigh 1 by default, so it wins over its vhost's catch-all), then by name."""
    return sorted(services, key=lambda s: (-s.weight, s.name))


def _host_rules(routed: Sequence[Service], match: str) -> list[str]:
    lines: list[str] = []
    for service in routed:
        lines.append(f"  acl host_{service.name} {match} {' '.join(service.vhosts)}")
        condition = f"host_{service.name}"
        if service.path:
            lines.append(f"  acl path_{service.name} path_beg {service.path}")
            condition += f" path_{service.name}"
        lines.append(f"  use_backend {service.name} if {condition}")
    return lines


def _http_frontend(routed: Sequence[Service], layout: Layout) -> str:
    lines = ["frontend marathon_http_in", f"  bind *:{layout.http_port}", "  mode http",
             "  option http-server-close",
             *_host_rules(routed, "req.hdr(host),lower,field(1,:) -m str -i")]
    return "\n".join(lines) + "\n"


def _https_frontend(routed: Sequence[Service], layout: Layout) -> str:
    certs = " ".join(f"crt {cert}" for cert in layout.ssl_certs)
    lines = ["frontend marathon_https_in", f"  bind *:{layout.https_port} ssl {certs}",
             "  mode http", "  option http-server-close",
             *_host_rules(routed, "ssl_fc_sni -i")]
    return "\n".join(lines) + "\n"


def _frontend(service: Service) -> str:
    options = f" {service.bind_options}" if service.bind_options else ""
    return (f"frontend {service.name}\n"
            f"  bind {service.bind_address}:{service.service_port}{options}\n"
            f"  mode {service.mode}\n"
            f"  use_backend {service.name}\n")


def _backend(service: Service, slots: Slots) -> str:
    lines = [f"backend {service.name}", f"  balance {service.balance}", f"  mode {service.mode}"]
    if service.mode == "http":
        lines += ["  option forwardfor", "  option http-server-close",
                  "  retry-on conn-failure empty-response",
                  "  http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS",
                  "  http-request set-header X-Forwarded-Port %[dst_port]",
                  "  http-request add-header X-Forwarded-Proto https if { ssl_fc }"]
    if service.sticky:
        lines.append("  cookie mesos_sticky insert indirect nocache")
    check = service.health_check
    if _checked(service) and check is not None:
        if check.protocol.endswith("HTTP") and service.mode == "http":
            lines.append(f"  option httpchk GET {check.path}")
        lines.append(f"  timeout check {_seconds(check.timeout_seconds)}")
    lines += [f"  server {_slot_name(i)} {server_arguments(service, i, backend)}"
              for i, backend in enumerate(slots)]
    return "\n".join(lines) + "\n"


def _slot_name(index: int) -> str:
    return f"s{index + 1}"


def server_arguments(service: Service, index: int, backend: Backend | None) -> str:
    """What follows `server <name>` for slot `index` holding `backend`: its address (or
    the placeholder and `disabled` when empty), HAProxy's own checks when the port has a
    Marathon HTTP or TCP check, the sticky cookie (the slot's name)."""
    address, port = (backend.address, backend.port) if backend else PLACEHOLDER
    arguments = f"{address}:{port}"
    check = service.health_check
    if _checked(service) and check is not None:
        arguments += (f" check inter {_seconds(check.interval_seconds)}"
                      f" fall {check.max_consecutive_failures + 1}")
    if service.sticky:
        arguments += f" cookie {_slot_name(index)}"
    if backend is None:
        arguments += " disabled"
    return arguments


def server_commands(before: Sequence[Service], before_slots: SlotTable,
                    after: Sequence[Service], after_slots: SlotTable) -> list[str] | None:
    """HAProxy runtime API commands (`set server`) that turn the running slots into
    `after_slots`: a slot emptied goes to maintenance and back to the placeholder, a slot
    filled gets its instance's address and port and becomes ready (and healthy, when
    checked). None when anything but the servers differs or a backend's number of slots
    changes: that takes a reload."""
    def shape(services: Sequence[Service]) -> list[Service]:
        return [replace(s, backends=()) for s in services]

    if shape(before) != shape(after):
        return None
    commands: list[str] = []
    for service in after:
        old, new = before_slots.get(service.name), after_slots.get(service.name)
        if old is None or new is None or len(old) != len(new):
            return None
        for index, (was, now) in enumerate(zip(old, new, strict=True)):
            if was == now:
                continue
            server = f"{service.name}/{_slot_name(index)}"
            address, port = (now.address, now.port) if now else PLACEHOLDER
            if was is not None:
                commands.append(f"set server {server} state maint")
            commands.append(f"set server {server} addr {address} port {port}")
            if now is not None:
                commands.append(f"set server {server} state ready")
                if _checked(service):
                    commands.append(f"set server {server} health up")
    return commands


def _checked(service: Service) -> bool:
    check = service.health_check
    return check is not None and check.protocol in ("HTTP", "MESOS_HTTP", "TCP", "MESOS_TCP")


def _seconds(value: float) -> str:
    return f"{round(value * 1000)}ms"
