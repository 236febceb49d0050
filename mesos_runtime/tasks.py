"""Ending child tasks without losing the caller's own cancellation (ADR 0009).

The obvious way to stop a child task,

    child.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await child

swallows more than the child's cancellation: when the *calling* task is cancelled while it
awaits the child, asyncio passes that cancellation on to the child and the CancelledError the
caller then gets is indistinguishable from the child's, so `suppress` drops it and the caller
carries on as if never cancelled. In a `finally:` reached by an error (a master's stream
broke), a SIGTERM arriving at that moment was lost this way and the agent retried a dead
master forever. `asyncio.wait` never raises a child's outcome, so the two can be told apart:
`wait_ended` and `cancel_and_wait` keep the caller's cancellation and drop only the
children's.
"""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["cancel_and_wait", "wait_ended"]


async def wait_ended(*tasks: asyncio.Future[Any]) -> None:
    """Wait until every one of `tasks` has ended, as `await` would, without raising their
    cancellation. A cancellation of the calling task meanwhile is passed on to the tasks still
    running (as `await task` does), and raised as CancelledError once they have all ended;
    otherwise the first exception other than a cancellation that one of them ended with is
    raised (every task's outcome is retrieved)."""
    cancelled = False
    pending = set(tasks)
    while pending:
        try:
            _, pending = await asyncio.wait(pending)
        except asyncio.CancelledError:  # the caller's own: asyncio.wait raises no task's
            cancelled = True
            for task in pending:
                task.cancel()
    errors = [task.exception() for task in tasks if not task.cancelled()]
    if cancelled:
        raise asyncio.CancelledError
    for error in errors:
        if error is not None:
            raise error


async def cancel_and_wait(*tasks: asyncio.Future[Any]) -> None:
    """Cancel `tasks` and wait until they have all ended (see `wait_ended`): their
    cancellation is dropped, the caller's own is raised."""
    for task in tasks:
        task.cancel()
    await wait_ended(*tasks)
