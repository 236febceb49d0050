"""A `Store` in ZooKeeper (with `--zk`), fenced by the leader's epoch (`mesos_coordination.store`).

Layout under `root` (the master uses `<election path>/registry`, beside the `json.info_N`
members):

    <root>/epoch            the epoch of the leader that owns the store (decimal text)
    <root>/<kind>/<name>    one znode per entry

Fencing: `recover()` runs one transaction that checks the leader's own election znode still
exists (so it still leads) and sets `<root>/epoch` to its epoch, recording the znode version
that write produced. Every later commit is one transaction that first checks `<root>/epoch` is
still at that version: once a newer leader has taken the store over, every write of the
deposed one fails as a whole (StoreError), whatever its own session believes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
)

from mesos_coordination.store import Mutation, StoreError
from mesos_coordination.zookeeper import ZooKeeperSession


class ZooKeeperStore:
    """A `Store` under `root` holding entries of `kinds`, for the leader of `epoch` whose
    election znode is `member_path`; see the module docstring."""

    def __init__(
        self,
        session: ZooKeeperSession,
        root: str,
        kinds: Sequence[str],
        *,
        epoch: int,
        member_path: str,
    ) -> None:
        self._session = session
        self.root = root.rstrip("/")
        self.kinds = tuple(kinds)
        self.epoch = epoch
        self._member_path = member_path
        self._epoch_path = f"{self.root}/epoch"
        self._epoch_version: int | None = None
        self._existing: set[str] = set()

    async def recover(self) -> dict[str, bytes]:
        try:
            return await self._recover()
        except KazooException as exc:
            raise StoreError(f"cannot recover the store from ZooKeeper: {exc!r}") from exc

    async def _recover(self) -> dict[str, bytes]:
        client = self._session.client
        for kind in self.kinds:
            await self._session.call(client.ensure_path_async, f"{self.root}/{kind}")
        with contextlib.suppress(NodeExistsError):
            await self._session.call(client.create_async, self._epoch_path, b"0")
        data, stat = await self._session.call(client.get_async, self._epoch_path)
        stored = int(bytes(data).decode() or "0")
        if stored > self.epoch:
            raise StoreError(
                f"the store belongs to a newer leader (epoch {stored} > ours, {self.epoch})"
            )
        transaction = client.transaction()
        transaction.check(self._member_path, -1)
        transaction.set_data(self._epoch_path, str(self.epoch).encode(), version=stat.version)
        results = await self._session.call(transaction.commit_async)
        _raise_failures(results, "taking the store over")
        self._epoch_version = results[1].version

        entries: dict[str, bytes] = {}
        for kind in self.kinds:
            names = await self._session.call(client.get_children_async, f"{self.root}/{kind}")
            values = await self._session.get_many([f"{self.root}/{kind}/{name}" for name in names])
            for name, value in zip(names, values, strict=True):
                entries[f"{kind}/{name}"] = value
        self._existing = set(entries)
        return entries

    async def commit(self, mutations: Sequence[Mutation]) -> None:
        if self._epoch_version is None:
            raise StoreError("the store was not recovered")
        client = self._session.client
        transaction = client.transaction()
        transaction.check(self._epoch_path, self._epoch_version)
        for mutation in mutations:
            path = f"{self.root}/{mutation.key}"
            if mutation.value is None:
                if mutation.key in self._existing:
                    transaction.delete(path)
            elif mutation.key in self._existing:
                transaction.set_data(path, mutation.value)
            else:
                transaction.create(path, mutation.value)
        try:
            results = await self._session.call(transaction.commit_async)
        except KazooException as exc:
            raise StoreError(f"store write failed: {exc!r}") from exc
        _raise_failures(results, "writing the store")
        for mutation in mutations:
            if mutation.value is None:
                self._existing.discard(mutation.key)
            else:
                self._existing.add(mutation.key)

    async def close(self) -> None:
        self._epoch_version = None


def _raise_failures(results: list[Any], doing: str) -> None:
    """Raise StoreError for the first failed operation of a committed transaction."""
    for result in results:
        if isinstance(result, BadVersionError):
            raise StoreError(f"{doing}: a newer leader has taken the store over")
        if isinstance(result, NoNodeError):
            raise StoreError(
                f"{doing}: a znode it relies on is gone (our election znode: no longer leading)"
            )
        if isinstance(result, Exception) and not isinstance(result, RolledBackError):
            raise StoreError(f"{doing} failed: {result!r}")
