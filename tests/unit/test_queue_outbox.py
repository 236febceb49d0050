"""The master's stream outbox: backlogs in order, bounded, delivered up to its close."""

from __future__ import annotations

import asyncio

from mesos_master.server import QueueOutbox
from mesos_runtime.backlog import MAX_BATCH_MESSAGES


async def drain(outbox: QueueOutbox[int]) -> list[list[int]]:
    return [backlog async for backlog in outbox.backlogs()]


def test_what_was_sent_before_the_close_is_delivered_in_order_and_then_the_stream_ends() -> None:
    outbox: QueueOutbox[int] = QueueOutbox()
    for message in range(3):
        outbox.send(message)
    outbox.close()
    outbox.send(99)  # after the close: dropped
    assert asyncio.run(drain(outbox)) == [[0, 1, 2]]


def test_a_long_backlog_comes_in_bounded_steps() -> None:
    outbox: QueueOutbox[int] = QueueOutbox()
    total = 2 * MAX_BATCH_MESSAGES + 1
    for message in range(total):
        outbox.send(message)
    outbox.close()
    backlogs = asyncio.run(drain(outbox))
    assert [len(b) for b in backlogs] == [MAX_BATCH_MESSAGES, MAX_BATCH_MESSAGES, 1]
    assert [m for b in backlogs for m in b] == list(range(total))


def test_a_waiting_reader_wakes_for_each_send_and_for_the_close() -> None:
    async def scenario() -> list[list[int]]:
        outbox: QueueOutbox[int] = QueueOutbox()
        reader = asyncio.create_task(drain(outbox))
        await asyncio.sleep(0)  # the reader waits on an empty outbox
        outbox.send(1)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        outbox.send(2)
        outbox.send(3)
        outbox.close()
        return await reader

    assert asyncio.run(scenario()) == [[1], [2, 3]]


def test_a_reader_cancelled_while_waiting_leaves_the_outbox_usable() -> None:
    async def scenario() -> list[list[int]]:
        outbox: QueueOutbox[int] = QueueOutbox()
        first = asyncio.create_task(drain(outbox))
        await asyncio.sleep(0)
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        outbox.send(7)
        outbox.close()
        return await drain(outbox)

    assert asyncio.run(scenario()) == [[7]]
