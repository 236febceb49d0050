"""`mesos-master`: parse flags and run the master until SIGINT/SIGTERM.

The gRPC API listens on `--port`, the operator HTTP endpoints (`mesos_master.http`) on
`--http_port` (default 5080; 0 picks a free port, logged), both on `--ip` and in one loop.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import structlog
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp

from mesos_coordination.process import run_service
from mesos_http.body_limit import DEFAULT_MAX_REQUEST_BYTES, BodyLimit
from mesos_http.browser_guard import BrowserGuard, origins_flag
from mesos_http.http_auth import HttpAuthentication
from mesos_http.http_server import serve_while
from mesos_http.operator_http import flag_values
from mesos_master.allocator import DEFAULT_MIN_ALLOCATABLE, SORTERS
from mesos_master.config import MasterConfig
from mesos_master.http import DEFAULT_HTTP_PORT, MasterHttp
from mesos_master.rate_limits import RateLimits, parse_rate_limits
from mesos_master.server import CallerChecks, MasterServer
from mesos_master.validation import validate_role
from mesos_runtime.flags import (
    FlagParser,
    parse_bool,
    parse_duration,
    parse_flags,
    parse_log_level,
    parse_port,
    parse_positive_int,
    parse_zk_flag,
)
from mesos_runtime.gc_tuning import collect_less_often
from mesos_runtime.logging import configure_logging
from mesos_runtime.memory_report import install_memory_report
from mesos_security.acls import Acls
from mesos_security.authentication import Authenticator
from mesos_security.credentials import Credentials
from mesos_security.files import load_acls, load_credentials
from mesos_security.tls import TlsConfig, add_tls_flags, tls_from_args
from mesos_values.addresses import HostPort
from mesos_values.resources import Resources


def _weights(text: str) -> dict[str, float]:
    """Parse `role1=2,role2=0.5`."""
    weights: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        role, sep, value = item.partition("=")
        if not sep:
            raise argparse.ArgumentTypeError(f"invalid weight {item!r}: expected ROLE=WEIGHT")
        if problem := validate_role(role):
            raise argparse.ArgumentTypeError(problem)
        try:
            weight = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid weight {item!r}: not a number") from None
        if not (math.isfinite(weight) and weight > 0):
            raise argparse.ArgumentTypeError(
                f"invalid weight {item!r}: must be positive and finite")
        weights[role] = weight
    return weights


def _min_allocatable(text: str) -> tuple[Resources, ...]:
    """Parse Mesos' `cpus:0.01|mem:32`: alternatives, any one of which makes an agent's free
    resources worth offering."""
    alternatives: list[Resources] = []
    for item in filter(None, (part.strip() for part in text.split("|"))):
        try:
            resources = Resources.parse(item)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"invalid resources {item!r}: {exc}") from None
        if resources.names() - frozenset(resources.scalars):
            raise argparse.ArgumentTypeError(f"{item!r}: only scalar resources can be given")
        alternatives.append(resources)
    if not alternatives:
        raise argparse.ArgumentTypeError("expected e.g. 'cpus:0.01|mem:32'")
    return tuple(alternatives)


def load_rate_limits(value: str) -> RateLimits:
    """`--rate_limits`: Mesos' RateLimits JSON, given inline or as a path or `file://` URL."""
    text = value
    if not value.lstrip().startswith("{"):
        path = Path(value.removeprefix("file://"))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"--rate_limits: cannot read {path}: {error}") from None
    try:
        return parse_rate_limits(text)
    except ValueError as error:
        raise ValueError(f"--rate_limits: {error}") from None


def _names(text: str) -> frozenset[str]:
    return frozenset(filter(None, (part.strip() for part in text.split(","))))


def build_parser() -> argparse.ArgumentParser:
    parser = FlagParser(
        prog="mesos-master",
        description="Run a master. Every flag can also be set as MESOS_<FLAG>.",
    )
    parser.add_argument("--ip", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=parse_port, default=5050, help="gRPC port (0: any free one)")
    parser.add_argument(
        "--http_port", type=parse_port, default=DEFAULT_HTTP_PORT,
        help=f"port of the HTTP endpoints: /state, /metrics, ... (default {DEFAULT_HTTP_PORT}; "
        "0: any free one)",
    )
    parser.add_argument(
        "--http_max_request_bytes", type=parse_positive_int, default=DEFAULT_MAX_REQUEST_BYTES,
        help="the largest request body the HTTP endpoints accept (larger: 413)",
    )
    parser.add_argument("--hostname", default=None, help="hostname advertised to frameworks")
    parser.add_argument(
        "--advertise_port", type=parse_port, default=None,
        help="gRPC port published in ZooKeeper and MasterInfo when clients reach this master "
        "through another port (a proxy, a NAT); default: the listening port",
    )
    parser.add_argument(
        "--work_dir",
        type=Path,
        default=None,
        help="directory for the registry when there is no --zk (without either, the registry "
        "is kept in memory only)",
    )
    parser.add_argument("--agent_ping_timeout", type=parse_duration, default=15.0)
    parser.add_argument("--max_agent_ping_timeouts", type=parse_positive_int, default=5)
    parser.add_argument(
        "--offer_timeout",
        type=parse_duration,
        default=None,
        help="rescind offers not used within this duration (default: never)",
    )
    parser.add_argument(
        "--allocation_interval",
        type=parse_duration,
        default=1.0,
        help="longest time between allocation passes (allocation is event-driven)",
    )
    parser.add_argument("--scheduler_heartbeat_interval", type=parse_duration, default=15.0)
    parser.add_argument(
        "--agent_reregister_timeout",
        type=parse_duration,
        default=600.0,
        help="how long a new leader waits for the agents in the registry to re-register before "
        "it marks them unreachable (at least 10secs, as in Mesos)",
    )
    parser.add_argument(
        "--weights",
        type=_weights,
        default={},
        help="role weights for DRF, e.g. 'analytics=2,web=1'",
    )
    parser.add_argument(
        "--role_sorter", choices=sorted(SORTERS), default="drf",
        help="how roles are ordered for offers (default drf)",
    )
    parser.add_argument(
        "--framework_sorter", choices=sorted(SORTERS), default="drf",
        help="how the frameworks of one role are ordered for offers (default drf)",
    )
    parser.add_argument(
        "--min_allocatable_resources", type=_min_allocatable,
        default=DEFAULT_MIN_ALLOCATABLE,
        help="an agent's free resources are offered only if they hold one of these "
        "alternatives (default 'cpus:0.01|mem:32')",
    )
    parser.add_argument(
        "--fair_sharing_excluded_resource_names", type=_names, default=frozenset(),
        help="resource names that do not count towards fair shares, e.g. 'gpus'",
    )
    parser.add_argument("--zk", type=parse_zk_flag, default=None,
                        help="ZooKeeper URL for leader election, zk://[user:pass@]h1:p,h2:p/path")
    parser.add_argument("--zk_session_timeout", type=parse_duration, default=10.0)
    parser.add_argument("--max_completed_frameworks", type=_non_negative_int, default=50,
                        help="removed frameworks kept (with their tasks) for /state, the web UI "
                        "and the CLI; the oldest go first")
    parser.add_argument("--max_completed_tasks_per_framework", type=_non_negative_int,
                        default=1000, help="ended tasks kept per framework")
    parser.add_argument("--quorum", type=parse_positive_int, default=None,
                        help="accepted for Mesos' setups: Mesos' replicated log needs a majority "
                        "of masters; here the registry lives in ZooKeeper, whose own quorum "
                        "guards it, so it is only checked (a number >= 1)")
    parser.add_argument("--log_level", type=parse_log_level, default="INFO")
    add_tls_flags(parser)
    security = parser.add_argument_group("authentication and authorization (ADR 0013)")
    security.add_argument("--authenticate_frameworks", type=parse_bool, default=False,
                          help="schedulers must present a credential of --credentials or a "
                          "client certificate (mutual TLS)")
    security.add_argument("--authenticate_agents", type=parse_bool, default=False,
                          help="agents must present a credential of --credentials or a client "
                          "certificate (mutual TLS)")
    security.add_argument("--credentials", default=None,
                          help="Mesos' credentials file (JSON or 'principal secret' lines): a "
                          "path, file:// URL or the JSON itself")
    security.add_argument("--authenticate_http_readonly", type=parse_bool, default=False,
                          help="GET requests to the HTTP endpoints need HTTP Basic credentials")
    security.add_argument("--authenticate_http_readwrite", type=parse_bool, default=False,
                          help="requests that change state (POST, PUT, DELETE) need HTTP Basic "
                          "credentials")
    security.add_argument("--http_credentials", default=None,
                          help="credentials of HTTP users (as --credentials; default: "
                          "--credentials)")
    security.add_argument("--http_allowed_origins", default="",
                          help="comma-separated origins whose pages may change state through "
                          "the HTTP endpoints; other sites' are refused (403)")
    security.add_argument("--acls", default=None,
                          help="Mesos' ACLs (JSON): a path, file:// URL or the JSON itself")
    security.add_argument("--rate_limits", default=None,
                          help="Mesos' RateLimits (JSON: a path, file:// URL or the JSON "
                          "itself): scheduler calls and agent registrations per principal")
    security.add_argument("--max_frameworks_per_principal", type=parse_positive_int,
                          default=None, help="a new framework of a principal that already has "
                          "this many is refused (failovers are not); default: no cap")
    security.add_argument("--max_frameworks", type=parse_positive_int, default=None,
                          help="a new framework is refused while the master keeps this many; "
                          "default: no cap")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parse_flags(parser, argv, "MESOS")
    for name in ("agent_ping_timeout", "allocation_interval", "scheduler_heartbeat_interval"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name} must be positive")
    if args.agent_reregister_timeout < 10:
        parser.error("--agent_reregister_timeout must be at least 10secs")
    if args.offer_timeout is not None and args.offer_timeout <= 0:
        parser.error("--offer_timeout must be positive")
    if args.zk_session_timeout <= 0:
        parser.error("--zk_session_timeout must be positive")
    try:
        tls = tls_from_args(args)
        credentials = load_credentials(args.credentials) if args.credentials else Credentials()
        http_credentials = (load_credentials(args.http_credentials, "--http_credentials")
                            if args.http_credentials else credentials)
        acls = load_acls(args.acls) if args.acls else Acls()
        rate_limits = load_rate_limits(args.rate_limits) if args.rate_limits else RateLimits()
    except ValueError as error:
        parser.error(str(error))
    checks = CallerChecks(Authenticator(credentials), frameworks=args.authenticate_frameworks,
                          agents=args.authenticate_agents)
    configure_logging(args.log_level)
    collect_less_often()  # the standby's state is frozen when it leads (server._lead)
    install_memory_report()  # opt-in: MESOS_MEMORY_REPORT
    if args.work_dir is not None:
        args.work_dir.mkdir(parents=True, exist_ok=True)
    config = MasterConfig(
        agent_ping_timeout=args.agent_ping_timeout,
        max_agent_ping_timeouts=args.max_agent_ping_timeouts,
        offer_timeout=args.offer_timeout,
        scheduler_heartbeat_interval=args.scheduler_heartbeat_interval,
        role_weights=args.weights,
        agent_reregister_timeout=args.agent_reregister_timeout,
        role_sorter=args.role_sorter,
        framework_sorter=args.framework_sorter,
        min_allocatable_resources=args.min_allocatable_resources,
        fair_sharing_excluded_resource_names=args.fair_sharing_excluded_resource_names,
        acls=acls,
        max_frameworks_per_principal=args.max_frameworks_per_principal,
        max_frameworks=args.max_frameworks,
        max_completed_frameworks=args.max_completed_frameworks,
        max_completed_tasks_per_framework=args.max_completed_tasks_per_framework,
    )
    server = MasterServer(
        ip=args.ip,
        port=args.port,
        hostname=args.hostname,
        advertise_port=args.advertise_port,
        config=config,
        allocation_interval=args.allocation_interval,
        zk=args.zk,
        zk_session_timeout=args.zk_session_timeout,
        work_dir=args.work_dir,
        tls=tls,
        checks=checks,
        rate_limits=rate_limits,
    )
    http = MasterHttp(server.gate, server.info, flag_values(parser, args), tls=tls)
    log = structlog.get_logger("mesos_master")
    if args.quorum is not None:
        log.info("--quorum is accepted and not needed: the registry is kept in ZooKeeper "
                 "(ADR 0011), whose ensemble's majority guards it", quorum=args.quorum)
    if not (checks.frameworks and checks.agents):
        log.warning("the cluster is open: anyone who reaches the master may register "
                    "frameworks or agents (see --authenticate_frameworks, "
                    "--authenticate_agents)")
    app = HttpAuthentication(
        BrowserGuard(BodyLimit(http.app(), args.http_max_request_bytes, _too_large),
                     allowed_origins=origins_flag(args.http_allowed_origins),
                     answer=_plain_answer),
        Authenticator(http_credentials), readonly=args.authenticate_http_readonly,
        readwrite=args.authenticate_http_readwrite, realm="mesos", open_paths=OPEN_PATHS,
        open_prefixes=OPEN_PREFIXES)
    run_service("mesos-master", lambda: _serve(server, app, args, tls))


def _non_negative_int(text: str) -> int:
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 0 or more")
    return int(text)


def _plain_answer(status: int, message: str) -> Response:
    return PlainTextResponse(message, status_code=status)


OPEN_PATHS = frozenset({"/health", "/master/health", "/", "/ui", "/ui/"})
OPEN_PREFIXES = ("/ui/static/",)
"""What the HTTP endpoints serve without credentials: health checks and the UI's page and
files (the UI's data calls are authenticated like any other)."""


async def _serve(server: MasterServer, app: ASGIApp, args: argparse.Namespace,
                 tls: TlsConfig) -> None:
    ip = args.ip

    async def run(port: int) -> None:
        structlog.get_logger("mesos_master").info(
            "master HTTP endpoints listening", url=f"{tls.http_scheme}://{HostPort(ip, port)}"
        )
        await server.run(http_port=port)

    await serve_while(app, ip, args.http_port, run, tls=tls)


def _too_large(message: str) -> Response:
    return PlainTextResponse(message, status_code=413)
