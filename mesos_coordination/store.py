"""Durable key/value state for an elected leader (ADR 0011): the master's registry,
Marathon's and the batch framework's stores.

    pure core ──write(mutation, then)──▶ BatchWriter queue ──run(): batch──▶ Store.commit
               ◀────────── then() callbacks, in order, once the batch is durable ──┘

Keys are `<kind>/<name>` (`store_key` percent-encodes the name); values are bytes. A `Store` is
used for one leadership term: `recover()` takes the state over (fencing out earlier leaders) and
reads it, `commit()` applies batches atomically. Implementations: `store_zk.ZooKeeperStore`
(with --zk) and `store_local.LocalStore` (a crash-safe log under a work_dir).

One `BatchWriter` lives while a leader leads; its `run()` task belongs to the leader's task
group. A store failure (taken over by a newer leader, or ZooKeeper refuses a write) raises
`StoreError` out of `run()`: the leader must stop leading, as a Mesos master aborts when its
registrar fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote, unquote

# One batch stays well inside ZooKeeper's default 1 MiB request limit.
MAX_BATCH_MUTATIONS = 256
MAX_BATCH_BYTES = 512 * 1024


def store_key(kind: str, name: str) -> str:
    """The key of entry `name` of `kind` (one path segment per part, safe in a znode path)."""
    return f"{kind}/{quote(name, safe='')}"


def split_key(key: str) -> tuple[str, str]:
    """The (kind, name) of a key made by `store_key`."""
    kind, _, name = key.partition("/")
    return kind, unquote(name)


@dataclass(frozen=True, slots=True)
class Mutation:
    """Set `key` to `value`, or delete it when `value` is None."""

    key: str
    value: bytes | None


class StoreError(Exception):
    """The store cannot be read or written; its owner must stop leading."""


class Sink(Protocol):
    """Where a pure core's writes go; `then` runs once the write is durable."""

    def write(self, mutation: Mutation, then: Callable[[], None] | None = None) -> None:
        """Queue `mutation`; writes become durable in the order they were queued."""
        ...


class Store(Protocol):
    """Durable storage of entries for one leader's term."""

    async def recover(self) -> dict[str, bytes]:
        """Take the store over for this leader (later writes of earlier leaders are refused
        from now on) and read every entry; StoreError when that is not possible."""
        ...

    async def commit(self, mutations: Sequence[Mutation]) -> None:
        """Apply `mutations` atomically and durably; StoreError when refused or failed."""
        ...

    async def close(self) -> None:
        """Release what the store holds (locks, files); the store is not used afterwards."""
        ...


class BatchWriter:
    """A `Sink` that commits queued mutations to a `Store` from `run()`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: list[tuple[Mutation, Callable[[], None] | None]] = []
        self._wakeup = asyncio.Event()
        self.batches = 0

    def write(self, mutation: Mutation, then: Callable[[], None] | None = None) -> None:
        self._queue.append((mutation, then))
        self._wakeup.set()

    @property
    def pending(self) -> int:
        """Mutations queued and not yet durable."""
        return len(self._queue)

    async def run(self) -> None:
        """Commit queued mutations until cancelled; raises StoreError when a commit fails."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch = self._take_batch()
                await self._store.commit(_coalesce(mutation for mutation, _ in batch))
                self.batches += 1
                for _, then in batch:
                    if then is not None:
                        then()

    async def drain(self) -> None:
        """Wait until everything queued so far is durable (for tests and orderly shutdown)."""
        done = asyncio.Event()
        self.write_barrier(done.set)
        await done.wait()

    def write_barrier(self, then: Callable[[], None]) -> None:
        """Run `then` once every mutation queued before it is durable."""
        if not self._queue:
            then()
            return
        mutation, previous = self._queue[-1]

        def both() -> None:
            if previous is not None:
                previous()
            then()

        self._queue[-1] = (mutation, both)

    def _take_batch(self) -> list[tuple[Mutation, Callable[[], None] | None]]:
        size = 0
        count = 0
        for mutation, _ in self._queue:
            size += len(mutation.key) + len(mutation.value or b"")
            count += 1
            if count >= MAX_BATCH_MUTATIONS or size >= MAX_BATCH_BYTES:
                break
        batch, self._queue = self._queue[:count], self._queue[count:]
        return batch


def _coalesce(mutations: Iterable[Mutation]) -> list[Mutation]:
    """The batch's net effect: the last mutation of each key."""
    latest: dict[str, Mutation] = {}
    for mutation in mutations:
        latest.pop(mutation.key, None)
        latest[mutation.key] = mutation
    return list(latest.values())


class MemorySink:
    """A sink whose writes are "durable" at once, kept in memory: the state of a process run
    without --zk and --work_dir (nothing survives it), and of unit tests.

    With `hold=True`, writes and their callbacks wait for `flush()`, so tests can look at a
    core between a write and its durability.
    """

    def __init__(self, *, hold: bool = False) -> None:
        self.entries: dict[str, bytes] = {}
        self.written: list[Mutation] = []
        self._hold = hold
        self._pending: list[tuple[Mutation, Callable[[], None] | None]] = []

    def write(self, mutation: Mutation, then: Callable[[], None] | None = None) -> None:
        self._pending.append((mutation, then))
        if not self._hold:
            self.flush()

    def flush(self) -> None:
        """Make every queued write durable and run its callback, in order."""
        while self._pending:
            mutation, then = self._pending.pop(0)
            if mutation.value is None:
                self.entries.pop(mutation.key, None)
            else:
                self.entries[mutation.key] = mutation.value
            self.written.append(mutation)
            if then is not None:
                then()
