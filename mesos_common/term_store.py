"""The store a leader uses for one term: in ZooKeeper beside its election znode with `--zk`,
a local crash-safe store under `--work_dir` otherwise, or none (state kept in memory).

    contender ──leading (epoch)──▶ open_term_store(contender, state, kinds, work_dir)
        ZooKeeperContender  ─▶ ZooKeeperStore(<election path>/state, fenced by the epoch)
        standalone + dir    ─▶ LocalStore(<work_dir>/state)
        standalone, no dir  ─▶ None
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mesos_common.election import Contender, Leadership, ZooKeeperContender
from mesos_common.store import Store
from mesos_common.store_local import LocalStore
from mesos_common.store_zk import ZooKeeperStore

__all__ = ["open_term_store"]


def open_term_store(
    contender: Contender, state: Leadership, kinds: Sequence[str], work_dir: Path | None
) -> Store | None:
    """The store for the term that `state` (leading) began; see the module docstring."""
    if isinstance(contender, ZooKeeperContender):
        if state.epoch is None or contender.member_path is None:
            raise ValueError("a ZooKeeper term needs the leader's epoch and election znode")
        return ZooKeeperStore(
            contender.session, f"{contender.url.path.rstrip('/')}/state", kinds,
            epoch=state.epoch, member_path=contender.member_path,
        )
    if work_dir is not None:
        return LocalStore(work_dir / "state")
    return None
