"""`Turns` (mesos_runtime.turns): a burst of waiters goes on a few per loop iteration, in
order, and work that becomes ready meanwhile runs between them."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from mesos_runtime.turns import Turns


async def test_at_most_per_turn_waiters_go_on_per_iteration_in_arrival_order() -> None:
    turns = Turns(2)
    passed: list[int] = []

    async def waiter(index: int) -> None:
        await turns.wait()
        passed.append(index)

    tasks = [asyncio.create_task(waiter(index)) for index in range(7)]
    looks = [0]
    while len(passed) < 7:
        await asyncio.sleep(0)  # one iteration of the loop
        looks.append(len(passed))
    await asyncio.gather(*tasks)
    assert passed == list(range(7))
    steps = [after - before for before, after in itertools.pairwise(looks)]
    assert max(steps) == 2
    assert turns.waiting == 0


async def test_work_that_becomes_ready_runs_before_the_rest_of_the_burst() -> None:
    turns = Turns(1)
    order: list[str] = []
    first_passed = asyncio.Event()

    async def waiter(index: int) -> None:
        await turns.wait()
        order.append(f"launch {index}")
        if index == 0:
            first_passed.set()

    async def other() -> None:
        await first_passed.wait()
        order.append("other")

    burst = [asyncio.create_task(waiter(index)) for index in range(3)]
    await asyncio.gather(asyncio.create_task(other()), *burst)
    # All at once, the burst would have gone on before `other` could: launch 0, 1, 2, other.
    assert order == ["launch 0", "other", "launch 1", "launch 2"]


async def test_a_cancelled_waiter_gives_its_turn_away() -> None:
    turns = Turns(1)
    passed: list[int] = []

    async def waiter(index: int) -> None:
        await turns.wait()
        passed.append(index)

    tasks = [asyncio.create_task(waiter(index)) for index in range(3)]
    await asyncio.sleep(0)
    assert turns.waiting == 3
    tasks[0].cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert passed == [1, 2]
    assert turns.waiting == 0


def test_per_turn_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Turns(0)
