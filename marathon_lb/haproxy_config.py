"""HAProxy's configuration for a list of services (a pure core: text in, text out).

The layout follows marathon-lb's: global settings and defaults (with `retries` and
`option redispatch`, so a connection a dying backend refuses is retried on another one), a
stats listener (`/haproxy?stats`, `/_haproxy_health_check`, `/_haproxy_getconfig`,
`/_haproxy_getvhostmap`, `/metrics`), a shared HTTP frontend routing on the `Host` header (and
an HTTPS one on SNI when certificates are given), then a frontend and a backend per service
port. The text is our own; marathon-lb's templates are not used.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from marathon_lb.services import Backend, Service

__all__ = ["Layout", "render_config", "render_vhost_map", "server_arguments", "server_commands"]


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


def render_config(services: Sequence[Service], layout: Layout) -> str:
    """The whole configuration file."""
    parts = [_head(layout), _stats(layout)]
    routed = _routing_order(s for s in services if s.vhosts and s.mode == "http")
    if layout.bind_http_https:
        parts.append(_http_frontend(routed, layout))
        if layout.ssl_certs:
            parts.append(_https_frontend(routed, layout))
    for service in services:
        parts += [_frontend(service), _backend(service)]
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


def _backend(service: Service) -> str:
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
    lines += [f"  server {backend.name} {server_arguments(service, backend)}"
              for backend in service.backends]
    return "\n".join(lines) + "\n"


def server_arguments(service: Service, backend: Backend) -> str:
    """What follows `server <name>` for `backend`: its address, HAProxy's own checks when
    the port has a Marathon HTTP or TCP check, its sticky cookie."""
    arguments = f"{backend.address}:{backend.port}"
    check = service.health_check
    if _checked(service) and check is not None:
        arguments += (f" check inter {_seconds(check.interval_seconds)}"
                      f" fall {check.max_consecutive_failures + 1}")
    if service.sticky:
        arguments += f" cookie {backend.name}"
    return arguments


def server_commands(before: Sequence[Service], after: Sequence[Service]) -> list[str] | None:
    """HAProxy runtime API commands that turn the servers of `before` into those of `after`
    (removed servers: disabled, then deleted; new ones: added, then enabled), or None when
    anything but the servers differs, which takes a reload."""
    def shape(services: Sequence[Service]) -> list[Service]:
        return [replace(s, backends=()) for s in services]

    if shape(before) != shape(after):
        return None
    commands: list[str] = []
    for old, new in zip(before, after, strict=True):
        for backend in sorted(set(old.backends) - set(new.backends)):
            server = f"{old.name}/{backend.name}"
            commands += [f"disable server {server}", f"del server {server}"]
        for backend in sorted(set(new.backends) - set(old.backends)):
            server = f"{new.name}/{backend.name}"
            commands += [f"add server {server} {server_arguments(new, backend)}",
                         f"enable server {server}"]
            if _checked(new):
                commands.append(f"enable health {server}")
    return commands


def _checked(service: Service) -> bool:
    check = service.health_check
    return check is not None and check.protocol in ("HTTP", "MESOS_HTTP", "TCP", "MESOS_TCP")


def _seconds(value: float) -> str:
    return f"{round(value * 1000)}ms"
