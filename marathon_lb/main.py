"""`marathon-lb`: HAProxy fed by Marathon, with marathon-lb's flags.

    /v2/events ──(any relevant event)──▶ dirty ◀── --poll-interval timer, (re)connection
                                           │
    regenerate: GET /v2/apps ─▶ build_services ─▶ render_config ─▶ HAProxy.apply
                                                                   (validate, switch, reload)

Events only mark the state dirty; one regeneration reads every app, so a burst of events
handled while a pass runs costs one more pass, not one per event.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import structlog

from marathon_lb.haproxy import LUA_ENDPOINTS, Applied, HAProxy, HAProxyExited
from marathon_lb.haproxy_config import (
    Layout,
    SlotTable,
    assign_slots,
    render_config,
    render_vhost_map,
    server_commands,
)
from marathon_lb.marathon_client import CONNECTED, MarathonClient, MarathonUnavailable
from marathon_lb.protocol import RESYNC_EVENTS
from marathon_lb.services import HealthMemory, Selection, Service, build_services
from mesos_coordination.process import run_service
from mesos_runtime.backoff import Backoff
from mesos_runtime.flags import FlagParser, parse_log_level, parse_port
from mesos_runtime.logging import configure_logging

log = structlog.get_logger("marathon-lb")

RESOLVE_TTL = 300.0
"""How long a task host's resolved address is reused."""


def build_parser() -> argparse.ArgumentParser:
    """marathon-lb's flags (those it has that make no sense here are accepted and ignored),
    and ours for the ports and the HAProxy binary."""
    parser = FlagParser(prog="marathon-lb", description="HAProxy load balancer for Marathon.")
    parser.add_argument("--marathon", "-m", nargs="+", default=["http://master.mesos:8080"],
                        help="Marathon URLs; the leading one is followed")
    parser.add_argument("--haproxy-config", default="/etc/haproxy/haproxy.cfg", type=Path)
    parser.add_argument("--group", action="append", default=[],
                        help="expose apps whose HAPROXY_GROUP (or HAPROXY_{n}_GROUP) is this "
                        "(repeatable; '*' for every app)")
    parser.add_argument("--sse", "-s", action="store_true",
                        help="follow Marathon's /v2/events (else re-read every --poll-interval)")
    parser.add_argument("--health-check", "-H", action="store_true",
                        help="only instances whose Marathon health checks all pass")
    parser.add_argument("--strict-mode", action="store_true",
                        help="only service ports labelled HAPROXY_{n}_ENABLED=true")
    parser.add_argument("--dont-bind-http-https", action="store_true",
                        help="no shared HTTP/HTTPS frontends (vhost routing)")
    parser.add_argument("--ssl-certs", default="",
                        help="comma-separated PEM files: an HTTPS frontend routes on SNI")
    parser.add_argument("--skip-config-cleanup", action="store_true",
                        help="when the configuration is invalid, keep the running one instead "
                        "of leaving out the apps that make it invalid")
    parser.add_argument("--dry", "-d", action="store_true",
                        help="print the configuration once and exit")
    parser.add_argument("--marathon-auth-credential-file", type=Path,
                        help="file holding USER:PASSWORD for Marathon's HTTP basic auth")
    parser.add_argument("--auth-credentials", help="USER:PASSWORD for Marathon's basic auth")
    parser.add_argument("--marathon-ca-cert", help="CA certificate for https Marathon URLs")
    parser.add_argument("--max-backoff", type=float, default=300.0,
                        help="longest wait, in seconds, between reconnections to Marathon")
    parser.add_argument("--log-level", type=parse_log_level, default="INFO")
    for ignored in ("--syslog-socket", "--log-format", "--lru-cache-capacity",
                    "--archive-versions", "--max-reload-retries", "--reload-interval",
                    "--min-serv-port-ip-per-task", "--max-serv-port-ip-per-task",
                    "--command"):
        parser.add_argument(ignored, help=argparse.SUPPRESS)
    for ignored in ("--haproxy-map", "--group-https-by-vhost", "--skip-validation"):
        parser.add_argument(ignored, action="store_true", help=argparse.SUPPRESS)
    # Ours.
    parser.add_argument("--haproxy-bin", default="haproxy", help="the HAProxy executable")
    parser.add_argument("--http-port", type=parse_port, default=80)
    parser.add_argument("--https-port", type=parse_port, default=443)
    parser.add_argument("--stats-port", type=parse_port, default=9090,
                        help="stats, /_haproxy_health_check and /_haproxy_getconfig")
    parser.add_argument("--poll-interval", type=float, default=60.0,
                        help="seconds between full re-reads of the apps (with --sse too)")
    parser.add_argument("--runtime-server-updates", action=argparse.BooleanOptionalAction,
                        default=True,
                        help="when instances only move in and out of a backend's server "
                        "slots, set them through HAProxy's runtime API instead of reloading "
                        "(--no-runtime-server-updates: always reload)")
    return parser


@dataclass(frozen=True, slots=True)
class Settings:
    """What the flags decide."""

    urls: tuple[str, ...]
    auth: tuple[str, str] | None
    ca_cert: str | None
    selection: Selection
    layout: Layout
    haproxy_bin: str
    sse: bool
    poll_interval: float
    max_backoff: float
    config_cleanup: bool
    dry: bool
    runtime_server_updates: bool = True


def settings_from(args: argparse.Namespace) -> Settings:
    if not args.group:
        raise ValueError("--group is required: at least one group name (or '*')")
    if args.poll_interval <= 0:
        raise ValueError("--poll-interval must be above 0")
    config: Path = args.haproxy_config.absolute()
    return Settings(
        urls=tuple(args.marathon), auth=_credentials(args), ca_cert=args.marathon_ca_cert,
        selection=Selection(frozenset(args.group), strict=args.strict_mode,
                            respect_health=args.health_check),
        layout=Layout(
            config_path=str(config), lua_path=str(LUA_ENDPOINTS),
            vhost_map_path=str(config.with_suffix(".vhostmap")), stats_port=args.stats_port,
            http_port=args.http_port, https_port=args.https_port,
            bind_http_https=not args.dont_bind_http_https,
            ssl_certs=tuple(c.strip() for c in args.ssl_certs.split(",") if c.strip())),
        haproxy_bin=args.haproxy_bin, sse=args.sse, poll_interval=args.poll_interval,
        max_backoff=max(args.max_backoff, 0.5), config_cleanup=not args.skip_config_cleanup,
        dry=args.dry, runtime_server_updates=args.runtime_server_updates)


def _credentials(args: argparse.Namespace) -> tuple[str, str] | None:
    text = args.auth_credentials
    if args.marathon_auth_credential_file is not None:
        text = args.marathon_auth_credential_file.read_text().strip()
    if not text:
        return None
    user, colon, password = text.partition(":")
    if not colon or not user:
        raise ValueError("Marathon credentials must be USER:PASSWORD")
    return user, password


class Resolver:
    """Task hosts to IPv4 addresses, resolved off the loop and cached for `RESOLVE_TTL`."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, str | None]] = {}

    async def resolve(self, hosts: set[str]) -> dict[str, str]:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for host in hosts:
            cached = self._cache.get(host)
            if cached is not None and now - cached[0] < RESOLVE_TTL:
                continue
            try:
                found = await loop.getaddrinfo(host, None, family=socket.AF_INET,
                                               type=socket.SOCK_STREAM)
                address: str | None = str(found[0][4][0])
            except OSError as exc:
                log.warning("cannot resolve a task host; its tasks are left out", host=host,
                            error=str(exc))
                address = None
            self._cache[host] = (now, address)
        return {h: a for h in hosts if (a := self._cache[h][1]) is not None}


class LoadBalancer:
    """Keeps HAProxy's configuration in step with Marathon's apps."""

    def __init__(self, settings: Settings, marathon: MarathonClient, haproxy: HAProxy) -> None:
        self.settings = settings
        self.marathon = marathon
        self.haproxy = haproxy
        self.dirty = asyncio.Event()
        self.health = HealthMemory()
        self.resolver = Resolver()
        self._running: list[Service] | None = None
        """The services the running configuration was made of."""
        self._slots: SlotTable = {}
        """Their backends' server slots."""

    async def run(self) -> None:
        self.dirty.set()
        async with asyncio.TaskGroup() as group:
            group.create_task(self._regenerate_forever())
            group.create_task(self._watch_haproxy())
            if self.settings.sse:
                group.create_task(self._follow_events())

    async def services(self) -> list[Service]:
        """The services Marathon's apps make now."""
        apps = await self.marathon.apps()
        hosts = {str(t.get("host")) for a in apps for t in a.get("tasks") or () if t.get("host")}
        addresses = await self.resolver.resolve(hosts)
        return build_services(apps, self.settings.selection, self.health, addresses)

    async def regenerate(self) -> None:
        """One pass: read the apps, render, apply (leaving out apps that break the file)."""
        services = await self.services()
        applied = await self._apply(services)
        if applied.outcome == "invalid" and self.settings.config_cleanup:
            broken = await self._apps_that_break(services)
            if broken:
                log.error("leaving out apps whose labels make HAProxy's configuration invalid",
                          apps=sorted(broken))
                services = [s for s in services if s.app_id not in broken]
                applied = await self._apply(services)
        log.info("configuration pass", outcome=applied.outcome, services=len(services),
                 backends=sum(len(s.backends) for s in services))

    async def _apply(self, services: list[Service]) -> Applied:
        layout = self.settings.layout
        slots = assign_slots(self._slots, services)
        commands = (server_commands(self._running, self._slots, services, slots)
                    if self._running is not None and self.settings.runtime_server_updates
                    else None)
        applied = await self.haproxy.apply(
            render_config(services, layout, slots),
            {Path(layout.vhost_map_path): render_vhost_map(services)}, commands)
        if applied.outcome not in ("invalid", "failed"):
            self._running, self._slots = services, slots
        return applied

    async def _apps_that_break(self, services: list[Service]) -> set[str]:
        by_app: dict[str, list[Service]] = {}
        for service in services:
            by_app.setdefault(service.app_id, []).append(service)
        broken = set()
        for app_id, own in by_app.items():
            if await self.haproxy.check(render_config(own, self.settings.layout)):
                broken.add(app_id)
        return broken

    async def _regenerate_forever(self) -> None:
        backoff = Backoff(0.5, self.settings.max_backoff, jitter=0.5)
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_interval):
                    await self.dirty.wait()
            self.dirty.clear()
            try:
                await self.regenerate()
                backoff.reset()
            except (MarathonUnavailable, httpx.HTTPError, HAProxyExited, OSError) as exc:
                delay = backoff.next_delay()
                log.warning("the pass failed; retrying", error=f"{exc.__class__.__name__}: "
                            f"{exc}", retry_in=round(delay, 2))
                await asyncio.sleep(delay)
                self.dirty.set()

    async def _follow_events(self) -> None:
        backoff = Backoff(0.2, self.settings.max_backoff, jitter=0.5)
        while True:
            try:
                async for name, body in self.marathon.events():
                    if name == CONNECTED:
                        log.info("following Marathon's events", url=self.marathon.current)
                        backoff.reset()
                        self.dirty.set()  # re-sync: what happened while not connected
                    elif name in RESYNC_EVENTS:
                        log.debug("event", type=name, app=body.get("appId"),
                                  task=body.get("taskId"), state=body.get("taskStatus"))
                        self.dirty.set()
                log.warning("Marathon's event stream ended; reconnecting")
            except (MarathonUnavailable, httpx.HTTPError) as exc:
                log.warning("Marathon's event stream failed; reconnecting",
                            error=f"{exc.__class__.__name__}: {exc}")
            self.dirty.set()
            await asyncio.sleep(backoff.next_delay())

    async def _watch_haproxy(self) -> None:
        """A master that exits unasked makes a pass, which starts a new one."""
        while True:
            await self.haproxy.started.wait()
            self.haproxy.started.clear()
            if (process := self.haproxy.process) is not None:
                await process.wait()
                self.dirty.set()


async def serve(settings: Settings) -> None:
    """Run until cancelled; HAProxy is stopped on the way out."""
    marathon = MarathonClient(settings.urls, auth=settings.auth, ca_cert=settings.ca_cert)
    config = Path(settings.layout.config_path)
    if not settings.dry:
        config.parent.mkdir(parents=True, exist_ok=True)
    haproxy = HAProxy(settings.haproxy_bin, config)
    balancer = LoadBalancer(settings, marathon, haproxy)
    try:
        if settings.dry:
            sys.stdout.write(render_config(await balancer.services(), settings.layout))
            return
        log.info("marathon-lb starting", marathon=list(settings.urls),
                 groups=sorted(settings.selection.groups), config=str(config),
                 sse=settings.sse, health_check=settings.selection.respect_health)
        await balancer.run()
    finally:
        await haproxy.stop()
        await marathon.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    """The `marathon-lb` entry point."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    configure_logging(args.log_level)
    for chatty in ("httpx", "httpcore"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    run_service("marathon-lb", lambda: serve(settings))


if __name__ == "__main__":
    main()
