from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

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
def ha_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, ZooKeeperEnsemble]]:
    """Three masters electing a leader through a private single-node ZooKeeper."""
    with zookeeper(tmp_path / "zk") as ensemble:
        cluster = Cluster(tmp_path, FAST_MASTER_FLAGS, zk_url=ensemble.url("/mesos"))
        try:
            for _ in range(3):
                cluster.start_master()
            yield cluster, ensemble
        finally:
            cluster.close()
