"""The durable state a leader uses for one term: in ZooKeeper beside its election znode with
`--zk`, a local crash-safe store under `--work_dir` otherwise, or memory only.

    contender ──leading (epoch)──▶ async with term_state(contender, state, kinds, work_dir, name):
        ZooKeeperContender  ─▶ ZooKeeperStore(<election path>/<name>, fenced by the epoch)
        standalone + dir    ─▶ LocalStore(<work_dir>/<name>)
        standalone, no dir  ─▶ memory (nothing survives the process)

The master keeps its registry under `registry`, Marathon and the batch framework under `state`.
A ZooKeeper standby may follow the store (`follow_term_store`) and hand its copy to the term it
begins: the takeover then reads no entry when nothing changed since (store_zk).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mesos_coordination.election import Contender, Leadership, ZooKeeperContender
from mesos_coordination.store import BatchWriter, MemorySink, Sink, Store
from mesos_coordination.store_local import LocalStore
from mesos_coordination.store_zk import StoreCopy, ZooKeeperStore, ZooKeeperStoreFollower

__all__ = ["Term", "follow_term_store", "open_term_store", "term_state"]


@dataclass(frozen=True, slots=True)
class Term:
    """One term's state: what earlier leaders stored, and where this term writes."""

    entries: dict[str, bytes]
    sink: Sink
    writer: BatchWriter | None
    """Run `writer.run()` in the term's task group; None when state is kept in memory."""


def open_term_store(
    contender: Contender, state: Leadership, kinds: Sequence[str], work_dir: Path | None,
    name: str = "state", copy: StoreCopy | None = None,
) -> Store | None:
    """The store for the term that `state` (leading) began; see the module docstring."""
    if isinstance(contender, ZooKeeperContender):
        if state.epoch is None or contender.member_path is None:
            raise ValueError("a ZooKeeper term needs the leader's epoch and election znode")
        return ZooKeeperStore(
            contender.session, _root(contender, name), kinds,
            epoch=state.epoch, member_path=contender.member_path, copy=copy,
        )
    if work_dir is not None:
        return LocalStore(work_dir / name)
    return None


@contextlib.asynccontextmanager
async def term_state(
    contender: Contender, state: Leadership, kinds: Sequence[str], work_dir: Path | None,
    name: str = "state", copy: StoreCopy | None = None,
) -> AsyncIterator[Term]:
    """Take the store over for this term (StoreError when fenced out or unreadable), read it
    (`copy`: a follower's, used if still current), and close it when the term ends."""
    store = open_term_store(contender, state, kinds, work_dir, name, copy)
    if store is None:
        yield Term({}, MemorySink(), None)
        return
    try:
        entries = await store.recover()
        writer = BatchWriter(store)
        yield Term(entries, writer, writer)
    finally:
        await store.close()


def follow_term_store(contender: Contender, kinds: Sequence[str], name: str = "state", *,
                      paused: Callable[[], bool]) -> ZooKeeperStoreFollower | None:
    """A follower of the ZooKeeper store of `name` (run it while standing by; `paused`: while
    this process leads); None without ZooKeeper."""
    if not isinstance(contender, ZooKeeperContender):
        return None
    return ZooKeeperStoreFollower(contender.session, _root(contender, name), kinds,
                                  paused=paused)


def _root(contender: ZooKeeperContender, name: str) -> str:
    return f"{contender.url.path.rstrip('/')}/{name}"
