"""Two instances of an elected framework service (Marathon or the batch framework) sharing
ZooKeeper, for the HA tests: start them beside a master and an agent, and find the leader."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from tests.integration.cluster import Cluster, Process, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.zookeeper import zookeeper

Service = tuple[Process, httpx.Client]
StartService = Callable[..., tuple[Process, str]]


@contextlib.contextmanager
def elected_services(
    tmp_path: Path, start: Callable[[Cluster], StartService], names: tuple[str, str],
    zk_path: str, session_timeout: str,
) -> Iterator[list[Service]]:
    """A master, an agent and the two services `names`, started by `start(cluster)` with
    `--zk <zk_path>` on a private ZooKeeper."""
    with zookeeper(tmp_path / "zk") as ensemble:
        cluster = Cluster(tmp_path, FAST_MASTER_FLAGS)
        clients: list[httpx.Client] = []
        try:
            cluster.start_master()
            cluster.start_agent()
            started = []
            for name in names:
                process, url = start(cluster)(
                    "--zk", ensemble.url(zk_path), "--zk_session_timeout", session_timeout,
                    name=name)
                clients.append(httpx.Client(base_url=url, timeout=10))
                started.append((process, clients[-1]))
            yield started
        finally:
            for client in clients:
                client.close()
            cluster.close()


def leader_of(services: list[Service], info_path: str) -> Service:
    """The one live service whose `info_path` answer says it is elected and registered with
    the master (it has a framework id)."""
    def elected() -> list[Service]:
        found = []
        for process, client in services:
            if not process.alive():
                continue
            info = client.get(info_path).json()
            if info["elected"] and info["frameworkId"]:
                found.append((process, client))
        return found

    [leader] = wait_for(lambda: (found := elected()) and len(found) == 1 and found,
                        "exactly one elected service")
    return leader
