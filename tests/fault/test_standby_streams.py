"""Passive streams to standby masters (ADR 0018), with real ZooKeeper and three masters: the
agent resumes with a new leader over the stream it already held; a standby that dies and comes
back gets the stream again; a partition between the agent and a standby sends the agent down
today's path (a new stream and a full re-registration) when that standby is elected."""

from __future__ import annotations

import json
import re
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from kazoo.client import KazooClient

from tests.fault.tcp_proxy import TcpProxy
from tests.fault.test_master_failover import reported_running, running_tasks
from tests.integration.cluster import Cluster, Process, free_port, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.test_end_to_end import sleep_pids
from tests.zookeeper import ZooKeeperEnsemble, zookeeper


def metric(master: Process, name: str) -> float:
    with urllib.request.urlopen(f"{master.http_url}/metrics/snapshot", timeout=5) as answer:
        value = json.load(answer)[name]
    assert isinstance(value, (int, float))
    return value


def agent_current(agent: Process, standbys: int) -> bool:
    """Whether `standbys` masters hold the agent's current snapshot."""
    with urllib.request.urlopen(f"{agent.http_url}/metrics/snapshot", timeout=5) as answer:
        return bool(json.load(answer)["slave/standby_masters_current"] == standbys)


def holding(masters: list[Process], agents: int) -> bool:
    """Whether each of `masters` holds the snapshots of `agents` agents."""
    return all(metric(m, "master/standby_agents") == agents for m in masters)


def registry_zxid(ensemble: ZooKeeperEnsemble, cluster: Cluster) -> int:
    """The modification (mzxid) of the registry's epoch znode: what a current copy names."""
    assert cluster.zk_url is not None
    client = KazooClient(hosts=ensemble.hosts, timeout=5.0)
    client.start(timeout=10.0)
    try:
        stat = client.exists(f"{urlsplit(cluster.zk_url).path}/registry/epoch")
    finally:
        client.stop()
        client.close()
    assert stat is not None
    return int(stat.mzxid)


def grpc_port(master: Process) -> int:
    return int(master.argv[master.argv.index("--port") + 1])


def log_lines(process: Process, event: str) -> list[dict[str, object]]:
    lines = [json.loads(line) for line in process.log().splitlines()
             if line.startswith("{") and event in line]
    return [line for line in lines if line.get("event") == event]


def test_kill9_leader_agent_resumes_over_its_passive_stream(
    ha_cluster: tuple[Cluster, ZooKeeperEnsemble],
) -> None:
    cluster, ensemble = ha_cluster
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    with running_tasks(cluster, "r1", "r2", agent_http_port=free_port()) as running:
        standbys = [m for m in cluster.masters if m is not leader]
        wait_for(lambda: holding(standbys, 1), "both standbys to hold the agent's snapshot")
        [agent] = [p for p in cluster.processes if p.name.startswith("agent")]
        wait_for(lambda: agent_current(agent, 2), "both standbys to hold its current state")
        assert metric(leader, "master/standby_agents") == 0  # none to the leader it uses
        wait_for(lambda: all(metric(m, "registrar/standby_copy_zxid")
                             == registry_zxid(ensemble, cluster) for m in standbys),
                 "both standbys to hold a current copy of the registry")
        assert metric(leader, "registrar/standby_copy_zxid") == 0  # the leader keeps none

        leader.kill9()
        [new_leader] = wait_for(lambda: cluster.leading_masters(), "a new leading master")
        wait_for(lambda: metric(new_leader, "master/slave_resumptions") == 1,
                 "the agent to resume over its passive stream")
        assert metric(new_leader, "master/slave_reregistrations") == 1  # no other stream
        # The master counts the resumption before the agent reads its answer and logs it.
        wait_for(lambda: len(log_lines(agent, "registered with master")) >= 2,
                 "the agent to log its registration with the new leader")
        assert [line["resumed"] for line in log_lines(agent, "registered with master")] \
            == [False, True]
        # Its standby's decode of the copy it took the store over with: none left to decode.
        [decoded] = log_lines(new_leader, "decoded the registry")
        assert decoded["at_the_election"] == 0 and decoded["entries"] == 2  # agent, framework

        running.driver.reconcile_tasks([])
        wait_for(lambda: reported_running(running.scheduler) == {"r1", "r2"},
                 "the new leader to report both tasks running")
        assert sleep_pids(running.agent_dir) == running.pids
        [other] = [m for m in standbys if m is not new_leader]
        assert metric(other, "master/standby_agents") == 1  # still held by the last standby


def test_standby_killed_and_back_holds_the_passive_stream_again(
    ha_cluster: tuple[Cluster, ZooKeeperEnsemble],
) -> None:
    cluster, _ = ha_cluster
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    with running_tasks(cluster, "k1") as running:
        standbys = [m for m in cluster.masters if m is not leader]
        wait_for(lambda: holding(standbys, 1), "both standbys to hold the agent's snapshot")
        victim = standbys[0]
        victim.kill9()

        running.driver.reconcile_tasks([])  # the agent keeps working with the leader
        wait_for(lambda: reported_running(running.scheduler) == {"k1"}, "k1 reported running")
        assert metric(leader, "master/slaves_connected") == 1
        [agent] = [p for p in cluster.processes if p.name.startswith("agent")]
        assert len(log_lines(agent, "registered with master")) == 1

        back = cluster.start_master(port=grpc_port(victim))
        wait_for(lambda: holding([back], 1), "the restarted standby to hold the snapshot again")
        assert len(log_lines(agent, "registered with master")) == 1


@pytest.fixture
def proxied_cluster(tmp_path: Path) -> Iterator[tuple[Cluster, TcpProxy]]:
    """Three masters on a private ZooKeeper; the second (next in line) is reached through a
    proxy the test can cut."""
    with zookeeper(tmp_path / "zk") as ensemble:
        cluster = Cluster(tmp_path, FAST_MASTER_FLAGS, zk_url=ensemble.url("/mesos"))
        proxy: TcpProxy | None = None
        try:
            cluster.start_master()
            wait_for(lambda: cluster.leading_masters(), "a leading master")
            listen = free_port()
            proxy = TcpProxy(target_port=listen)
            proxy.heal()
            cluster.start_master(port=listen, flags=["--advertise_port", str(proxy.port)])
            cluster.start_master()
            yield cluster, proxy
        finally:
            if proxy is not None:
                proxy.cut()
            cluster.close()


def test_partitioned_standby_elected_gets_the_agent_back_by_reregistration(
    proxied_cluster: tuple[Cluster, TcpProxy],
) -> None:
    cluster, proxy = proxied_cluster
    leader, partitioned, third = cluster.masters
    with running_tasks(cluster, "p1") as running:
        wait_for(lambda: holding([partitioned, third], 1),
                 "both standbys to hold the agent's snapshot")
        proxy.cut()
        wait_for(lambda: holding([partitioned], 0), "the partition to end the passive stream")

        leader.kill9()
        wait_for(lambda: cluster.leading_masters() == [partitioned], "the partitioned standby "
                 "to lead")
        [agent] = [p for p in cluster.processes if p.name.startswith("agent")]
        target = re.escape(f"127.0.0.1:{proxy.port}")
        wait_for(lambda: any(re.fullmatch(target, str(line.get("master")))
                             for line in log_lines(agent, "master connection failed; "
                                                            "retrying")),
                 "the agent to fail to reach the new leader")
        proxy.heal()

        partitioned.wait_for_log("agent re-registered")
        assert metric(partitioned, "master/slave_resumptions") == 0
        assert metric(partitioned, "master/slave_reregistrations") == 1
        running.driver.reconcile_tasks([])
        wait_for(lambda: reported_running(running.scheduler) == {"p1"},
                 "the new leader to report p1 running")
        assert sleep_pids(running.agent_dir) == running.pids
