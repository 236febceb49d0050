"""`marathon`: parse flags and run Marathon (REST API + scheduler) until SIGINT/SIGTERM.

Flag names follow Marathon; each flag also reads `MARATHON_<FLAG>`. Durations take units
(`10secs`); `--zk_session_timeout` as a plain number is milliseconds, as in Marathon.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from frameworks.service_host import add_service_flags, parse_service_flags, serve_service
from marathon.api import MarathonApi
from marathon.app_rules import GPU_RESOURCES
from marathon.groups import SERVICE_PORTS
from marathon.service import MarathonConfig, MarathonService
from mesos_coordination.process import run_service
from mesos_runtime.flags import FlagParser, parse_duration
from mesos_runtime.gc_tuning import tune_gc

FEATURES = (GPU_RESOURCES,)
"""The `--enable_features` this Marathon knows (Marathon 1.9's others need what is missing
here: secrets, external volumes, VIPs)."""
KEEP_ALIVE_SECONDS = 30
"""How long an idle HTTP connection stays open: Marathon's Jetty idle timeout (30 s)."""


def _milliseconds(text: str) -> float:
    """Marathon's millisecond numbers, or a duration with a unit."""
    digits = text.strip()
    return float(digits) / 1000 if digits.isascii() and digits.isdigit() else parse_duration(text)


def build_parser() -> argparse.ArgumentParser:
    """The flags of `marathon`: the shared service flags and Marathon's role and user."""
    parser = FlagParser(
        prog="marathon",
        description="Run Marathon. Every flag can also be set as MARATHON_<FLAG>.",
    )
    add_service_flags(parser, who="Marathon", http_port=8080, framework_name="marathon",
                      zk_session_timeout=_milliseconds)
    parser.add_argument("--mesos_role", default="*")
    parser.add_argument("--mesos_user", default=None, help="user tasks run as by default")
    parser.add_argument("--enable_features", type=parse_features, default=frozenset(),
                        help="comma-separated optional features to turn on: "
                        f"{', '.join(FEATURES)} (apps may then ask for GPUs; Marathon "
                        "subscribes with the GPU_RESOURCES capability)")
    parser.add_argument("--sigterm_delay", type=parse_duration, default=1.0,
                        help="how long an instance being killed keeps running after it is "
                        "announced TASK_KILLING (load balancers and mesos-dns drop it) before "
                        "its SIGTERM; 0 stops it at once (default 1secs)")
    parser.add_argument("--local_port_min", type=_port, default=SERVICE_PORTS.start,
                        help="lowest service port Marathon assigns to apps' port 0")
    parser.add_argument("--local_port_max", type=_port, default=SERVICE_PORTS.stop - 1,
                        help="highest service port Marathon assigns to apps' port 0")
    return parser


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1-65535)")
    return port


def service_port_range(args: argparse.Namespace) -> range:
    """`--local_port_min` to `--local_port_max`, both included."""
    if args.local_port_min > args.local_port_max:
        raise SystemExit(f"marathon: --local_port_min {args.local_port_min} is above "
                         f"--local_port_max {args.local_port_max}")
    return range(args.local_port_min, args.local_port_max + 1)


def parse_features(text: str) -> frozenset[str]:
    """`--enable_features`: comma-separated names out of `FEATURES`."""
    names = frozenset(name.strip() for name in text.split(",") if name.strip())
    unknown = sorted(names - set(FEATURES))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown or unsupported features: {', '.join(unknown)} "
            f"(supported: {', '.join(FEATURES)})")
    return names


async def serve(config: MarathonConfig) -> None:
    """Serve the REST API and run the service until cancelled."""
    service = MarathonService(config)
    await serve_service(service, MarathonApi(service).app(), "marathon",
                        keep_alive=KEEP_ALIVE_SECONDS)


def main(argv: Sequence[str] | None = None) -> None:
    """The `marathon` entry point."""
    args = parse_service_flags(build_parser(), argv, "MARATHON")
    config = MarathonConfig.from_flags(args, role=args.mesos_role, user=args.mesos_user,
                                       features=args.enable_features,
                                       gpu_resources=GPU_RESOURCES in args.enable_features,
                                       service_ports=service_port_range(args),
                                       sigterm_delay=args.sigterm_delay)
    tune_gc()
    run_service("marathon", lambda: serve(config))


if __name__ == "__main__":
    main()
