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

from frameworks.batch.api import BatchApi
from frameworks.batch.core import GPU_SCHEDULING_BEHAVIORS
from frameworks.batch.service import VERSION, BatchConfig, BatchService
from frameworks.service_host import add_service_flags, parse_service_flags, serve_service
from mesos_coordination.process import run_service
from mesos_runtime.flags import FlagParser, parse_duration

__all__ = ["ENV_PREFIX", "build_parser", "main", "parse_clock_warp", "serve"]

ENV_PREFIX = "MESOS_BATCH"


def build_parser() -> argparse.ArgumentParser:
    """The flags of `mesos-batch`: the shared service flags and the batch framework's own."""
    parser = FlagParser(
        prog="mesos-batch",
        description="Run the batch framework (Metronome's v1 API). Every flag can also be set "
                    f"as {ENV_PREFIX}_<FLAG>.",
    )
    add_service_flags(parser, who="the framework", http_port=9000, framework_name="batch")
    parser.add_argument("--role", default="*", help="the role offers are made for")
    parser.add_argument("--user", default=None, help="user tasks run as by default")
    parser.add_argument("--tick_interval", type=parse_duration, default=1.0,
                        help="how often schedules and deadlines are checked")
    parser.add_argument("--gpu_scheduling_behavior", choices=GPU_SCHEDULING_BEHAVIORS,
                        default=None,
                        help="opt in to offers of agents with GPUs (the GPU_RESOURCES "
                        "capability), so jobs with gpus can run: `restricted` keeps jobs "
                        "without gpus off those agents, `unrestricted` does not; unset: no "
                        "GPU offers (Metronome's METRONOME_GPU_SCHEDULING_BEHAVIOR)")
    parser.add_argument("--clock_warp", type=parse_clock_warp, default=None,
                        metavar="ANCHOR:FACTOR",
                        help="testing aid: the framework's wall clock reads "
                        "ANCHOR + (now - ANCHOR) * FACTOR (ANCHOR in epoch seconds), so cron "
                        "schedules and deadlines run FACTOR times faster")
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
    api = BatchApi(service, VERSION, service.config.authorization)
    await serve_service(service, api.app(), "batch framework")


def main(argv: Sequence[str] | None = None) -> None:
    """The `mesos-batch` entry point."""
    args = parse_service_flags(build_parser(), argv, ENV_PREFIX)
    config = BatchConfig.from_flags(args, role=args.role, user=args.user,
                                    tick_interval=args.tick_interval, clock_warp=args.clock_warp,
                                    gpu_scheduling_behavior=args.gpu_scheduling_behavior,
                                    gpu_resources=args.gpu_scheduling_behavior is not None)
    run_service("mesos-batch", lambda: serve(config))


if __name__ == "__main__":
    main()
