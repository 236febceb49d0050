"""The life of an elected service process (master, Marathon, batch): run its main coroutine
until SIGINT/SIGTERM, and exit 1 with one log line when it cannot start or loses its
ZooKeeper session for good (its supervisor restarts it, as Mesos masters expect)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import structlog

from mesos_coordination.election import LeadershipLost


def run_service(name: str, main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """`asyncio.run(main())`, stopped cleanly by SIGINT or SIGTERM; see the module docstring."""
    log = structlog.get_logger(name)
    try:
        asyncio.run(_until_signalled(main))
    except OSError as exc:
        log.error(f"{name} failed to start", error=str(exc))
        sys.exit(1)
    except LeadershipLost as exc:
        log.error("lost the ZooKeeper session; exiting so the supervisor restarts us",
                  reason=str(exc))
        sys.exit(1)


async def _until_signalled(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await main()
