"""Sending a backlog in one go: a writer that finds several messages waiting sends them as one
batch message, so a burst costs one gRPC message (and one wake-up of the reader) instead of one
each. The receiving side unpacks the batch and handles its messages in order."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from google.protobuf.message import Message

T = TypeVar("T")
M = TypeVar("M", bound=Message)

# At most this many messages, and about this many bytes, go in one batch: far below gRPC's
# 64 MiB receive limit (a lone message larger than that still goes, alone).
MAX_BATCH_MESSAGES = 256
MAX_BATCH_BYTES = 4 * 2**20


def backlog(queue: asyncio.Queue[T], limit: int = MAX_BATCH_MESSAGES) -> list[T]:
    """The items already waiting in `queue`, oldest first, at most `limit`; never waits."""
    items: list[T] = []
    while len(items) < limit and not queue.empty():
        items.append(queue.get_nowait())
    return items


def size_bounded(messages: Sequence[M], max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[M]]:
    """`messages` in order, as consecutive runs of at most `max_bytes` serialized bytes each
    (a message larger than that makes a run of its own)."""
    run: list[M] = []
    size = 0
    for message in messages:
        message_size = message.ByteSize() if len(messages) > 1 else 0
        if run and size + message_size > max_bytes:
            yield run
            run, size = [], 0
        run.append(message)
        size += message_size
    if run:
        yield run


def batched(
    messages: Sequence[M], wrap: Callable[[list[M]], M], max_bytes: int = MAX_BATCH_BYTES
) -> Iterator[M]:
    """`messages` as few messages to send: each size-bounded run (`size_bounded`) of several
    wrapped into one by `wrap`, a run of one as itself."""
    for run in size_bounded(messages, max_bytes):
        yield run[0] if len(run) == 1 else wrap(run)
