"""The registry's writer: makes the core's registry mutations durable, in order, in batches.

    Master core ──write(mutation, then)──▶ Registrar queue ──run(): batch──▶ RegistryStore.commit
                 ◀──────────── then() callbacks, in order, once the batch is durable ──┘

One `Registrar` lives while a master leads; its `run()` task belongs to the leader's task
group. A store failure (the registry was taken over by a newer leader, or ZooKeeper refuses a
write) raises `RegistryError` out of `run()`: the master stops leading, as a Mesos master
aborts when its registrar fails.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from mesos_master.registry import Mutation

# One batch stays well inside ZooKeeper's default 1 MiB request limit.
MAX_BATCH_MUTATIONS = 256
MAX_BATCH_BYTES = 512 * 1024


class RegistryStore(Protocol):
    """Durable storage of registry entries for one leader's term."""

    async def recover(self) -> dict[str, bytes]:
        """Take the registry over for this leader (later writes of earlier leaders are refused
        from now on) and read every entry; RegistryError when that is not possible."""
        ...

    async def commit(self, mutations: Sequence[Mutation]) -> None:
        """Apply `mutations` atomically and durably; RegistryError when refused or failed."""
        ...

    async def close(self) -> None:
        """Release what the store holds (locks, files); the store is not used afterwards."""
        ...


class Registrar:
    """A `RegistrySink` that commits queued mutations to a `RegistryStore` from `run()`."""

    def __init__(self, store: RegistryStore) -> None:
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
        """Commit queued mutations until cancelled; raises RegistryError when a commit fails."""
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
