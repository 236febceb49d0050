from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import unique_zk_path
from tests.integration.cluster import Cluster
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.zookeeper import ZooKeeperEnsemble, zookeeper


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A running standalone master (fast failure detection) keeping its registry in its work
    dir; start agents with `cluster.start_agent()`."""
    cluster = Cluster(tmp_path, FAST_MASTER_FLAGS)
    try:
        cluster.start_master()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def ha_cluster(
    tmp_path: Path, shared_zookeeper: ZooKeeperEnsemble
) -> Iterator[tuple[Cluster, ZooKeeperEnsemble]]:
    """Three masters electing a leader through the shared ZooKeeper, under a path of their
    own (the test must not stop ZooKeeper: see `ha_cluster_own_zookeeper`)."""
    yield from _three_masters(tmp_path, shared_zookeeper, unique_zk_path("/mesos"))


@pytest.fixture
def ha_cluster_own_zookeeper(tmp_path: Path) -> Iterator[tuple[Cluster, ZooKeeperEnsemble]]:
    """Three masters electing a leader through a private single-node ZooKeeper, which the
    test may stop and start."""
    with zookeeper(tmp_path / "zk") as ensemble:
        yield from _three_masters(tmp_path, ensemble, "/mesos")


def _three_masters(
    tmp_path: Path, ensemble: ZooKeeperEnsemble, zk_path: str
) -> Iterator[tuple[Cluster, ZooKeeperEnsemble]]:
    cluster = Cluster(tmp_path, FAST_MASTER_FLAGS, zk_url=ensemble.url(zk_path))
    try:
        for _ in range(3):
            cluster.start_master()
        yield cluster, ensemble
    finally:
        cluster.close()
