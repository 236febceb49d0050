"""A private ZooKeeper server for the benchmarks that need one.

It is tests/zookeeper.py's server (one definition of how this project runs ZooKeeper: Debian's
jar under `java`, free loopback ports, 200 ms ticks), with one difference: no limit on
connections per client address. A benchmark holds a ZooKeeper session per SDK framework, per
hollow agent process and per master, all from 127.0.0.1, well past ZooKeeper's default of 60.

Benchmarks run as scripts (`python bench/x.py`), so the repository root is not on sys.path and
the `tests` package is not installed: this module puts the root there before importing it.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.cluster import free_port
from tests.zookeeper import ZOOKEEPER_JAR, ZooKeeperEnsemble, ZooKeeperNode

__all__ = ["ZooKeeperEnsemble", "private_zookeeper"]


@contextlib.contextmanager
def private_zookeeper(data_dir: Path) -> Iterator[ZooKeeperEnsemble]:
    """Start a standalone ZooKeeper keeping its data under `data_dir`; stop it afterwards."""
    if not ZOOKEEPER_JAR.exists() or shutil.which("java") is None:
        raise RuntimeError(f"{ZOOKEEPER_JAR} or java is missing: run scripts/test.sh to install")
    node = ZooKeeperNode(1, free_port(), free_port(), free_port(), data_dir)
    ensemble = ZooKeeperEnsemble([node])
    config = node.write_config(ensemble.nodes)
    with config.open("a") as lines:
        lines.write("maxClientCnxns=0\n")
    try:
        node.start()
        node.wait_listening()
        ensemble.wait_serving()
        yield ensemble
    finally:
        ensemble.stop()
