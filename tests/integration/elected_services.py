"""Two instances of an elected framework service (Marathon or the batch framework) sharing
ZooKeeper, for the HA tests: start them beside a master and an agent, and find the leader."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlparse

import httpx
from kazoo.client import KazooClient

from tests.conftest import unique_zk_path
from tests.integration.cluster import Cluster, Process, port_answers, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.zookeeper import ZooKeeperEnsemble, zookeeper

Service = tuple[Process, httpx.Client]
StartService = Callable[..., tuple[Process, str]]


@contextlib.contextmanager
def elected_services(
    tmp_path: Path, start: Callable[[Cluster], StartService], names: tuple[str, str],
    zk_path: str, session_timeout: str, shared: ZooKeeperEnsemble | None = None,
) -> Iterator[list[Service]]:
    """A master, an agent and the two services `names`, started by `start(cluster)` with
    `--zk <zk_path>` on a private ZooKeeper, or with `--zk <zk_path>-<random>` on `shared`."""
    with (contextlib.nullcontext(shared) if shared is not None
          else zookeeper(tmp_path / "zk")) as ensemble:
        if shared is not None:
            zk_path = unique_zk_path(zk_path)
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


def takeovers(services: list[Service], leader: Service, info_path: str) -> Iterator[Service]:
    """Once for each service: kill -9 the leader and yield the one that takes over (the
    killed one is restarted after, so the first leader, restarted, recovers last)."""
    for _ in services:
        leader[0].kill9()
        successor = leader_of(services, info_path)
        yield successor
        restart(leader)
        leader = successor


def restart(service: Service) -> None:
    """Start a killed service again, as it was (it contends for leadership anew)."""
    process, client = service
    process.start()
    port = client.base_url.port
    assert port is not None
    wait_for(lambda: port_answers(port) or not process.alive(), f"{process.name} to listen")


@contextlib.contextmanager
def stored_state(service: Service) -> Iterator[tuple[KazooClient, str]]:
    """A ZooKeeper client on the service's ensemble and the znode of its stored state, whose
    children are the store's keys (`kind/name`): to read or poison its records directly, as
    an old or buggy leader would have written them."""
    argv = service[0].argv
    url = urlparse(argv[argv.index("--zk") + 1])
    client = KazooClient(hosts=url.netloc)
    client.start()
    try:
        yield client, f"{url.path.rstrip('/')}/state"
    finally:
        client.stop()
        client.close()


def write_records(service: Service, records: Mapping[str, bytes]) -> None:
    """Put `records` (store key to value) straight into the service's stored state."""
    with stored_state(service) as (client, root):
        for key, value in records.items():
            path = f"{root}/{key}"
            if client.exists(path):
                client.set(path, value)
            else:
                client.create(path, value, makepath=True)


def stored_keys(service: Service, kind: str) -> set[str]:
    """The keys of the records of `kind` in the service's stored state."""
    with stored_state(service) as (client, root):
        return {f"{kind}/{name}" for name in client.get_children(f"{root}/{kind}")}


def read_record(service: Service, key: str) -> bytes:
    """The stored value of record `key`."""
    with stored_state(service) as (client, root):
        value: bytes = client.get(f"{root}/{key}")[0]
        return value
