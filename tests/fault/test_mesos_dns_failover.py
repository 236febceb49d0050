"""Kill -9 the leading master of three (real ZooKeeper) under `mesos-dns --master zk://...`:
DNS keeps answering, the leader's records move to the new leader, and changes made through
the new leader show up (it follows the new leader's event stream)."""

from __future__ import annotations

import signal

import httpx

from frameworks import SchedulerDriver
from protos import mesos_pb2
from tests.integration.cluster import Cluster, Process, wait_for
from tests.integration.dns_helpers import dig, dig_status, start_mesos_dns
from tests.integration.recording import RecordingScheduler
from tests.integration.test_mesos_dns import launch_named
from tests.zookeeper import ZooKeeperEnsemble


def leader_srv(leader: Process) -> list[str]:
    return [f"0 0 {leader.http_port} leader.mesos."]


def subscribed_to(dns: Process, master: Process) -> bool:
    return any("subscribed to the leading master" in line
               and f'"127.0.0.1:{master.http_port}"' in line for line in dns.log().splitlines())


def test_dns_follows_the_new_leader_after_kill9(
    ha_cluster: tuple[Cluster, ZooKeeperEnsemble],
) -> None:
    cluster, _ = ha_cluster
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    standby = next(m for m in cluster.masters if m is not leader)
    subscribe = httpx.post(f"{standby.http_url}/api/v1", json={"type": "SUBSCRIBE"},
                           timeout=10)
    assert subscribe.status_code == 307
    assert subscribe.headers["location"] == f"{leader.http_url}/api/v1"

    agent = cluster.start_agent(hostname="dns-agent")
    dns, port = start_mesos_dns(cluster)
    wait_for(lambda: dig(port, "_leader._tcp.mesos", "SRV") == leader_srv(leader),
             "the leader's SRV record")
    assert dig(port, "master.mesos") == ["127.0.0.1"]  # three masters, all on 127.0.0.1
    assert [dig(port, f"master{i}.mesos") for i in range(3)] == [["127.0.0.1"]] * 3

    scheduler = RecordingScheduler(on_offers=launch_named(
        ("api.1", "api", "sleep 600"), ("worker.1", "worker", "sleep 600")))
    info = mesos_pb2.FrameworkInfo(name="ha", user="tester", failover_timeout=300)
    driver = SchedulerDriver(scheduler, info, cluster.master_address)
    driver.start()
    try:
        scheduler.wait_for_state("api.1", "TASK_RUNNING")
        scheduler.wait_for_state("worker.1", "TASK_RUNNING")
        wait_for(lambda: dig(port, "api.ha.mesos") == ["127.0.0.1"], "the task's record")

        # The agent is frozen so that the new leader has not heard of its tasks when
        # mesos-dns subscribes to it.
        agent.popen.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
        try:
            leader.kill9()
            [new_leader] = wait_for(lambda: cluster.leading_masters(), "a new leading master")
            assert new_leader is not leader
            wait_for(lambda: subscribed_to(dns, new_leader),
                     "mesos-dns to subscribe to the new leader")
            assert dig(port, "_leader._tcp.mesos", "SRV") == leader_srv(new_leader)
            # the new leader knows the agent from its registry but not its tasks yet
            assert dig(port, "api.ha.mesos") == ["127.0.0.1"]
            assert dig(port, "worker.ha.mesos", "A", "+tcp") == ["127.0.0.1"]
        finally:
            agent.popen.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
        new_leader.wait_for_log("agent re-registered")
        wait_for(lambda: scheduler.reregistrations >= 1, "the scheduler to re-subscribe")

        driver.kill_task("api.1")  # through the new leader
        wait_for(lambda: dig_status(port, "api.ha.mesos") == "NXDOMAIN",
                 "the task killed through the new leader to leave DNS")
        assert dig(port, "worker.ha.mesos") == ["127.0.0.1"]
    finally:
        driver.stop()
        driver.join()
