"""`mesos-batch`: parse flags and run the batch framework (REST API + scheduler) until
SIGINT/SIGTERM.

    python -m frameworks.batch --master HOST:PORT|zk://.../mesos [--zk zk://.../batch]
                               --http_port 9000 --work_dir DIR

Each flag also reads `MESOS_BATCH_<FLAG>` (`MESOS_BATCH_MASTER`, `MESOS_BATCH_HTTP_PORT`, ...);
the command line wins over the environment. Durations take Mesos' units (`10secs`).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import structlog

from frameworks.batch.api import BatchApi
from frameworks.batch.service import VERSION, BatchConfig, BatchService
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

__all__ = ["ENV_PREFIX", "build_parser", "main", "parse_clock_warp", "serve"]

log = structlog.get_logger("frameworks.batch")

ENV_PREFIX = "MESOS_BATCH"


def build_parser() -> argparse.ArgumentParser:
    parser = FlagParser(
        prog="mesos-batch",
        description="Run the batch framework (Metronome's v1 API). Every flag can also be set "
                    f"as {ENV_PREFIX}_<FLAG>.",
    )
    parser.add_argument("--master", default="127.0.0.1:5050",
                        help="the Mesos master: HOST:PORT or zk://host:port/mesos")
    parser.add_argument("--zk", type=parse_zk_flag, default=None,
                        help="ZooKeeper URL for the framework's state and leader election, "
                        "e.g. zk://127.0.0.1:2181/batch")
    parser.add_argument("--http_address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--http_port", type=parse_port, default=9000, help="REST API port")
    parser.add_argument("--hostname", default=None, help="hostname advertised to others")
    parser.add_argument("--framework_name", default="batch")
    parser.add_argument("--role", default="*", help="the role offers are made for")
    parser.add_argument("--user", default=None, help="user tasks run as by default")
    parser.add_argument("--failover_timeout", type=parse_duration, default=604800.0,
                        help="how long the master keeps tasks while the framework is away")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help="directory for the framework's state when there is no --zk")
    parser.add_argument("--zk_session_timeout", type=parse_duration, default=10.0)
    parser.add_argument("--tick_interval", type=parse_duration, default=1.0,
                        help="how often schedules and deadlines are checked")
    parser.add_argument("--clock_warp", type=parse_clock_warp, default=None,
                        metavar="ANCHOR:FACTOR",
                        help="testing aid: the framework's wall clock reads "
                        "ANCHOR + (now - ANCHOR) * FACTOR (ANCHOR in epoch seconds), so cron "
                        "schedules and deadlines run FACTOR times faster")
    parser.add_argument("--log_level", type=parse_log_level, default="INFO")
    return parser


def parse_clock_warp(text: str) -> tuple[float, float]:
    """`ANCHOR:FACTOR` (epoch seconds, a positive factor) for `--clock_warp`."""
    problem = f"expected ANCHOR:FACTOR (epoch seconds, a positive number), got {text!r}"
    try:
        anchor, factor = (float(part) for part in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(problem) from None
    if not (math.isfinite(anchor) and math.isfinite(factor) and factor > 0):
        raise argparse.ArgumentTypeError(problem)
    return anchor, factor


async def serve(config: BatchConfig) -> None:
    """Serve the REST API and run the service until cancelled."""
    service = BatchService(config)

    async def run(port: int) -> None:
        log.info("batch framework listening", url=f"http://{config.http_address}:{port}")
        await service.run(http_port=port)

    await serve_while(BatchApi(service, VERSION).app(), config.http_address, config.http_port,
                      run)


def main(argv: Sequence[str] | None = None) -> None:
    """The `mesos-batch` entry point."""
    parser = build_parser()
    args = parse_flags(parser, argv, ENV_PREFIX)
    configure_logging(args.log_level)
    config = BatchConfig(
        master=args.master, zk=args.zk, http_address=args.http_address,
        http_port=args.http_port, hostname=args.hostname, framework_name=args.framework_name,
        role=args.role, user=args.user, failover_timeout=args.failover_timeout,
        work_dir=args.work_dir, zk_session_timeout=args.zk_session_timeout,
        tick_interval=args.tick_interval, clock_warp=args.clock_warp,
    )
    run_service("mesos-batch", lambda: serve(config))


if __name__ == "__main__":
    main()
