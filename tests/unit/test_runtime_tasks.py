"""`mesos_runtime.tasks`: ending child tasks keeps the caller's own cancellation.

The first tests show the bug of the pattern the helpers replace (`child.cancel()` then
`suppress(CancelledError): await child`), on this interpreter: a task cancelled while it waits
for a cancelled child carries on. The last one finds the pattern in the source, read with `ast`.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from mesos_runtime.tasks import cancel_and_wait, wait_ended

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protos", "mesos_values", "mesos_runtime", "mesos_security", "mesos_coordination",
            "mesos_http", "webui", "frameworks", "mesos_master", "mesos_agent", "marathon",
            "marathon_lb", "mesos_local", "mesos_cli", "mesos_dns", "bench", "scripts")

Stop = Callable[[asyncio.Task[None]], Awaitable[None]]


async def _suppressing(child: asyncio.Task[None]) -> None:
    child.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await child


async def _child(cleaning: asyncio.Event | None) -> None:
    """Runs until cancelled; then, if given `cleaning`, sets it and cleans up until cancelled
    again (as a stream's writer closing its call)."""
    try:
        await asyncio.Event().wait()
    finally:
        if cleaning is not None:
            cleaning.set()
            await asyncio.Event().wait()


async def _retry_loop(stop: Stop, cleaning: asyncio.Event) -> int:
    """A connection loop: each attempt starts a child, fails, and stops the child in a
    `finally:`; the first child is still cleaning up when the loop is cancelled. The number of
    attempts made, if the loop outlives its cancellation."""
    attempts = 0
    for attempt in range(3):
        child = asyncio.create_task(_child(cleaning if attempt == 0 else None))
        await asyncio.sleep(0)  # the child starts
        attempts += 1
        try:
            raise OSError("the master's stream broke")
        except OSError:
            pass
        finally:
            await stop(child)
    return attempts


async def _outlives_cancellation(stop: Stop) -> bool:
    cleaning = asyncio.Event()
    loop = asyncio.create_task(_retry_loop(stop, cleaning))
    await cleaning.wait()
    loop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop
    return not loop.cancelled()


def test_a_task_cancelled_while_it_waits_for_a_cancelled_child_ends_cancelled() -> None:
    assert not asyncio.run(_outlives_cancellation(cancel_and_wait))
    assert asyncio.run(_outlives_cancellation(_suppressing))  # the bug the helper fixes


async def _cancelled_caller_first() -> None:
    """The usual path: the caller is cancelled, and stops its child in `finally:`."""
    child = asyncio.create_task(_child(None))
    started = asyncio.Event()

    async def caller() -> None:
        try:
            started.set()
            await asyncio.Event().wait()
        finally:
            await cancel_and_wait(child)

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert child.cancelled()
    assert task.cancelled()


def test_a_caller_cancelled_first_ends_cancelled_with_its_child() -> None:
    asyncio.run(_cancelled_caller_first())


async def _outcomes() -> None:
    async def fails() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            raise RuntimeError("failed while cancelled")

    async def returns() -> int:
        return 1

    quiet = asyncio.create_task(_child(None))
    failing = asyncio.create_task(fails())
    done = asyncio.create_task(returns())
    await asyncio.sleep(0)
    await cancel_and_wait(quiet)  # its cancellation is dropped
    with pytest.raises(RuntimeError, match="failed while cancelled"):
        await cancel_and_wait(failing, done)
    assert quiet.cancelled() and done.result() == 1
    await cancel_and_wait()  # nothing to wait for


def test_children_cancellations_are_dropped_and_other_errors_raised() -> None:
    asyncio.run(_outcomes())


async def _wait_passes_the_cancellation_on() -> None:
    child = asyncio.create_task(_child(None))
    waiting = asyncio.create_task(wait_ended(child))
    await asyncio.sleep(0)
    assert not child.done()  # wait_ended does not cancel
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert child.cancelled()


def test_wait_ended_passes_the_callers_cancellation_on_and_raises_it() -> None:
    asyncio.run(_wait_passes_the_cancellation_on())


def _suppressed_awaits(tree: ast.AST) -> list[int]:
    """Lines of `with ...suppress(..., CancelledError, ...):` blocks that await a task or
    future held in a name or attribute (`await child`, `await self._reader`)."""
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.With, ast.AsyncWith)):
            continue
        suppresses_cancel = any(
            isinstance(item.context_expr, ast.Call)
            and any(isinstance(arg, (ast.Attribute, ast.Name))
                    and (arg.attr if isinstance(arg, ast.Attribute) else arg.id)
                    == "CancelledError" for arg in item.context_expr.args)
            for item in node.items)
        if suppresses_cancel and any(
                isinstance(inner, ast.Await) and isinstance(inner.value, (ast.Name, ast.Attribute))
                for statement in node.body for inner in ast.walk(statement)):
            lines.append(node.lineno)
    return lines


def test_the_finder_sees_the_pattern() -> None:
    source = ("with contextlib.suppress(asyncio.CancelledError):\n    await task\n"
              "with suppress(CancelledError, OSError):\n    await self._reader\n"
              "with contextlib.suppress(asyncio.CancelledError):\n    await main()\n"
              "with contextlib.suppress(TimeoutError):\n    await task\n")
    assert _suppressed_awaits(ast.parse(source)) == [1, 3]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_suppresses_a_cancellation_around_awaiting_a_task(package: str) -> None:
    found = [f"{path.relative_to(ROOT)}:{line}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for line in _suppressed_awaits(ast.parse(path.read_text(), str(path)))]
    assert not found, ("suppress(CancelledError) around awaiting a task loses the caller's own "
                       f"cancellation; use mesos_runtime.tasks: {found}")
