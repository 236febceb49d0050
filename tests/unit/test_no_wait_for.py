"""No `asyncio.wait_for` in the project: on Python 3.11 it swallows a cancellation that arrives
in the same turn as the awaited thing completes (CPython gh-86296, fixed in 3.12), so a loop
like `while True: wait_for(event.wait(), poll)` can outlive its cancellation and a service hang
on SIGTERM (marathon-lb did, once, in CI). `asyncio.timeout` counts cancellations correctly.

The first test shows the difference on this interpreter; the second finds the calls, read
from the source with `ast` (a call through any alias of the module or the function counts).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("protos", "mesos_values", "mesos_runtime", "mesos_security", "mesos_coordination",
            "mesos_http", "webui", "frameworks", "mesos_master", "mesos_agent", "marathon",
            "marathon_lb", "mesos_local", "mesos_cli", "mesos_dns", "bench", "scripts")


async def _wait_for(event: asyncio.Event) -> None:
    await asyncio.wait_for(event.wait(), 10)


async def _timeout(event: asyncio.Event) -> None:
    async with asyncio.timeout(10):
        await event.wait()


async def _cancel_as_the_wait_ends(wait: Callable[[asyncio.Event], Awaitable[None]]) -> bool:
    """Whether a loop around `wait` stops when cancelled in the turn its event is set."""
    event = asyncio.Event()

    async def loop() -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await wait(event)
            event.clear()

    task = asyncio.create_task(loop())
    for _ in range(5):  # the loop reaches its wait
        await asyncio.sleep(0)
    event.set()
    await asyncio.sleep(0)
    task.cancel()
    for _ in range(50):  # a cancellation that is kept ends the task within a few turns
        await asyncio.sleep(0)
    stopped = task.done()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return stopped


def test_timeout_keeps_a_cancellation_that_wait_for_loses_here() -> None:
    assert asyncio.run(_cancel_as_the_wait_ends(_timeout))
    if sys.version_info < (3, 12):
        assert not asyncio.run(_cancel_as_the_wait_ends(_wait_for))


def _wait_for_calls(tree: ast.AST) -> list[int]:
    module_names = {"asyncio"}
    function_names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            module_names |= {alias.asname or alias.name for alias in node.names
                             if alias.name == "asyncio"}
        elif isinstance(node, ast.ImportFrom) and node.module == "asyncio":
            function_names |= {alias.asname or alias.name for alias in node.names
                               if alias.name == "wait_for"}
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        called = node.func
        if (isinstance(called, ast.Attribute) and called.attr == "wait_for"
                and isinstance(called.value, ast.Name) and called.value.id in module_names) or (
                isinstance(called, ast.Name) and called.id in function_names):
            lines.append(node.lineno)
    return lines


def test_the_finder_sees_every_spelling() -> None:
    source = ("import asyncio\nimport asyncio as aio\nfrom asyncio import wait_for as wf\n"
              "asyncio.wait_for(x, 1)\naio.wait_for(x, 1)\nwf(x, 1)\nother.wait_for(x)\n")
    assert _wait_for_calls(ast.parse(source)) == [4, 5, 6]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_package_calls_wait_for(package: str) -> None:
    found = [f"{path.relative_to(ROOT)}:{line}"
             for path in sorted((ROOT / package).rglob("*.py"))
             for line in _wait_for_calls(ast.parse(path.read_text(), str(path)))]
    assert not found, f"asyncio.wait_for (use asyncio.timeout, see this module): {found}"
