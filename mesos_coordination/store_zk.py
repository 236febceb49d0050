"""A `Store` in ZooKeeper (with `--zk`), fenced by the leader's epoch (`mesos_coordination.store`).

Layout under `root` (the master uses `<election path>/registry`, beside the `json.info_N`
members):

    <root>/epoch            the epoch of the leader that owns the store (decimal text)
    <root>/<kind>/<name>    one znode per entry

Fencing: `recover()` runs one transaction that checks the leader's own election znode still
exists (so it still leads) and sets `<root>/epoch` to its epoch, recording the znode version
that write produced. Every later commit is one transaction that first sets `<root>/epoch` again
at that version (and records the next): once a newer leader has taken the store over, every
write of the deposed one fails as a whole (StoreError), whatever its own session believes.

Following (ADR 0018): since every change of the entries modifies `<root>/epoch` in the same
transaction, the epoch znode's last modification (`mzxid`) names the store's state. A standby's
`ZooKeeperStoreFollower` keeps a `StoreCopy` read between two reads of the epoch znode that
found the same `mzxid`; a new leader whose takeover transaction succeeded at that very `mzxid`
(nothing modified the store since the copy was read) takes the copy instead of reading every
entry, and reads them all otherwise. When the epoch itself changed (another leader took the
store over: its agents are coming back right now), the follower reads the new term's entries
only `settle` seconds later, not in the middle of that failover.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from kazoo.exceptions import (
    BadVersionError,
    KazooException,
    NodeExistsError,
    NoNodeError,
    RolledBackError,
)

from mesos_coordination.store import Mutation, StoreError
from mesos_coordination.zookeeper import ZooKeeperSession

log = structlog.get_logger("mesos_coordination.store_zk")

RECHECK_SETTLES = 6
"""A follower looks at the epoch znode at least every this many `settle` periods."""


@dataclass(frozen=True, slots=True)
class StoreCopy:
    """A store's entries as they were after the modification `mzxid` of its epoch znode."""

    entries: dict[str, bytes]
    mzxid: int


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
        copy: StoreCopy | None = None,
    ) -> None:
        """`copy`: a standby's copy of the store (`ZooKeeperStoreFollower`), used by
        `recover()` when nothing modified the store since it was read."""
        self._session = session
        self._copy = copy
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

        copy, self._copy = self._copy, None
        if copy is not None and copy.mzxid == stat.mzxid:
            # The takeover set the epoch at the version read with `stat`: no commit came
            # between the copy and the takeover.
            entries = dict(copy.entries)
            log.info("took the store over from a standby's copy", root=self.root,
                     entries=len(entries))
        else:
            entries = await read_entries(self._session, self.root, self.kinds)
        self._existing = set(entries)
        return entries

    async def commit(self, mutations: Sequence[Mutation]) -> None:
        if self._epoch_version is None:
            raise StoreError("the store was not recovered")
        client = self._session.client
        transaction = client.transaction()
        # Fences (the version check) and marks the change (the modification: `StoreCopy`).
        transaction.set_data(self._epoch_path, str(self.epoch).encode(),
                             version=self._epoch_version)
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
        self._epoch_version = results[0].version
        for mutation in mutations:
            if mutation.value is None:
                self._existing.discard(mutation.key)
            else:
                self._existing.add(mutation.key)

    async def close(self) -> None:
        self._epoch_version = None


async def read_entries(session: ZooKeeperSession, root: str,
                       kinds: Sequence[str]) -> dict[str, bytes]:
    """Every entry under `root`, "<kind>/<name>" -> value."""
    client = session.client
    entries: dict[str, bytes] = {}
    for kind in kinds:
        names = await session.call(client.get_children_async, f"{root}/{kind}")
        values = await session.get_many([f"{root}/{kind}/{name}" for name in names])
        for name, value in zip(names, values, strict=True):
            entries[f"{kind}/{name}"] = value
    return entries


class ZooKeeperStoreFollower:
    """A standby's copy of the store under `root` (see the module docstring), read again
    `quick` seconds after the store changed, but at most once per `settle` seconds, and
    `settle` seconds after another leader took it over; never while `paused()` (this process
    leads and writes the store itself).

    Steady-state cost: one read of the epoch znode (with a watch) per notification of the
    session or per `RECHECK_SETTLES * settle` seconds, and one read of every entry per
    `settle` seconds while the store changes."""

    def __init__(self, session: ZooKeeperSession, root: str, kinds: Sequence[str], *,
                 paused: Callable[[], bool], settle: float = 10.0,
                 quick: float = 1.0) -> None:
        self._session = session
        self.root = root.rstrip("/")
        self.kinds = tuple(kinds)
        self._epoch_path = f"{self.root}/epoch"
        self._paused = paused
        self._settle = settle
        self._quick = min(quick, settle)
        self._last_full_read = -math.inf  # event loop time (or of a read put off)
        self._epoch: bytes | None = None  # the epoch znode's data at the last full read
        self._put_off = False  # a full read was put off after a takeover
        self.latest: StoreCopy | None = None
        """The last consistent copy read; None before the first, and while paused."""
        self.looks = 0
        """How many times it has looked at the store (read its epoch znode) so far."""

    def take(self) -> StoreCopy | None:
        """The latest copy, no longer kept here (a new leader takes it once)."""
        copy, self.latest = self.latest, None
        return copy

    async def run(self) -> None:
        """Follow the store until cancelled."""
        while True:
            changed = self._session.next_change()
            if self._paused():
                self.latest = None
            elif self._session.connected:
                try:
                    self.latest = await self._read(self.latest)
                except Exception as exc:  # a copy is an optimization: never fail the process
                    log.info("cannot follow the store", root=self.root, error=repr(exc))
                self.looks += 1
            # A watch that a failed read did not set again must not stop the following.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(
                        self._settle * (1 if self._put_off else RECHECK_SETTLES)):
                    await changed.wait()
            now = asyncio.get_running_loop().time()
            await asyncio.sleep(max(self._quick, self._last_full_read + self._settle - now))

    async def _read(self, latest: StoreCopy | None) -> StoreCopy | None:
        """A consistent copy: `latest` when the epoch znode did not change since, a new one
        when two reads of it around the entries agree, None when there is no store (yet)."""
        client = self._session.client
        # `exists` watches a znode that is not there yet too (a store no leader has taken).
        stat = await self._session.call(
            client.exists_async, self._epoch_path, watch=self._session.watch)
        if stat is None:
            return None
        if latest is not None and latest.mzxid == stat.mzxid:
            return latest
        self._last_full_read = asyncio.get_running_loop().time()
        epoch, _ = await self._session.call(client.get_async, self._epoch_path)
        taken_over, self._epoch = self._epoch is not None and epoch != self._epoch, epoch
        self._put_off = taken_over
        if taken_over:
            return None  # read `settle` seconds from now (see the module docstring)
        entries = await read_entries(self._session, self.root, self.kinds)
        after = await self._session.call(client.exists_async, self._epoch_path)
        if after is None or after.mzxid != stat.mzxid:
            return None  # a commit came during the read: read again on its notification
        return StoreCopy(entries, stat.mzxid)


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
