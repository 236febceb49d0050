"""The private ZooKeeper servers the HA tests rely on: a standalone server and a 3-node
ensemble that keeps serving with one node down."""

from __future__ import annotations

from pathlib import Path

from kazoo.client import KazooClient

from tests.zookeeper import zookeeper


def _write_and_read(hosts: str, path: str, value: bytes) -> bytes:
    client = KazooClient(hosts=hosts, timeout=5.0)
    client.start(timeout=15.0)
    try:
        client.create(path, value, makepath=True)
        data, _ = client.get(path)
        return bytes(data)
    finally:
        client.stop()
        client.close()


def test_standalone_server(tmp_path: Path) -> None:
    with zookeeper(tmp_path) as ensemble:
        assert _write_and_read(ensemble.hosts, "/mesos/probe", b"hello") == b"hello"


def test_three_node_ensemble_survives_one_node(tmp_path: Path) -> None:
    with zookeeper(tmp_path, size=3) as ensemble:
        assert _write_and_read(ensemble.hosts, "/a", b"1") == b"1"
        ensemble.nodes[0].stop()
        ensemble.wait_serving()
        survivors = ",".join(node.address for node in ensemble.nodes[1:])
        assert _write_and_read(survivors, "/b", b"2") == b"2"
