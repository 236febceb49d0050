"""`marathon`: parse flags and run Marathon (REST API + scheduler) until SIGINT/SIGTERM.

Flag names follow Marathon; each flag also reads `MARATHON_<FLAG>`. Durations take units
(`10secs`); `--zk_session_timeout` as a plain number is milliseconds, as in Marathon.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import structlog

from marathon.api import MarathonApi
from marathon.service import MarathonConfig, MarathonService
from mesos_coordination.process import run_service
from mesos_http.http_server import serve_while
from mesos_runtime.flags import (
    FlagParser,
    parse_duration,
    parse_flags,
    parse_log_level,
    parse_port,
    parse_zk_flag,
)
from mesos_runtime.logging import configure_logging

log = structlog.get_logger("marathon")


def _milliseconds(text: str) -> float:
    """Marathon's millisecond numbers, or a duration with a unit."""
    return float(text) / 1000 if text.strip().isdigit() else parse_duration(text)


def build_parser() -> argparse.ArgumentParser:
    parser = FlagParser(
        prog="marathon",
        description="Run Marathon. Every flag can also be set as MARATHON_<FLAG>.",
    )
    parser.add_argument("--master", default="127.0.0.1:5050",
                        help="the Mesos master: HOST:PORT or zk://host:port/mesos")
    parser.add_argument("--zk", type=parse_zk_flag, default=None,
                        help="ZooKeeper URL for Marathon's state and leader election, "
                        "e.g. zk://127.0.0.1:2181/marathon")
    parser.add_argument("--http_address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--http_port", type=parse_port, default=8080, help="REST API port")
    parser.add_argument("--hostname", default=None, help="hostname advertised to others")
    parser.add_argument("--framework_name", default="marathon")
    parser.add_argument("--mesos_role", default="*")
    parser.add_argument("--mesos_user", default=None, help="user tasks run as by default")
    parser.add_argument("--failover_timeout", type=parse_duration, default=604800.0,
                        help="how long the master keeps tasks while Marathon is away")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="directory for Marathon's state when there is no --zk")
    parser.add_argument("--zk_session_timeout", type=_milliseconds, default=10.0)
    parser.add_argument("--log_level", type=parse_log_level, default="INFO")
    return parser


async def serve(config: MarathonConfig) -> None:
    """Serve the REST API and run the service until cancelled."""
    service = MarathonService(config)

    async def run(port: int) -> None:
        log.info("marathon listening", url=f"http://{config.http_address}:{port}")
        await service.run(http_port=port)

    await serve_while(MarathonApi(service).app(), config.http_address, config.http_port, run)


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parse_flags(parser, argv, "MARATHON")
    configure_logging(args.log_level)
    config = MarathonConfig(
        master=args.master, zk=args.zk, http_address=args.http_address,
        http_port=args.http_port, hostname=args.hostname, framework_name=args.framework_name,
        mesos_role=args.mesos_role, mesos_user=args.mesos_user,
        failover_timeout=args.failover_timeout, work_dir=args.work_dir,
        zk_session_timeout=args.zk_session_timeout,
    )
    run_service("marathon", lambda: serve(config))


if __name__ == "__main__":
    main()
