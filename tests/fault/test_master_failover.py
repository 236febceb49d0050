"""Kill -9 the leading master of three (real ZooKeeper): a standby takes over, the agent and
the scheduler follow it, and running tasks keep running with unchanged ids and pids."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from frameworks import SchedulerDriver, is_terminal
from protos import mesos_pb2, scheduler_pb2, scheduler_pb2_grpc
from tests.integration.cluster import Cluster, wait_for
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import launch_once, running_sleeps, sleep_pids
from tests.zookeeper import ZooKeeperEnsemble


@dataclass
class RunningFramework:
    """A framework whose tasks run on one agent of an HA cluster."""

    scheduler: RecordingScheduler
    driver: SchedulerDriver
    agent_dir: Path
    pids: set[int]


@contextmanager
def running_tasks(cluster: Cluster, *task_ids: str,
                  agent_http_port: int | None = None) -> Iterator[RunningFramework]:
    """Start an agent (its HTTP endpoints on `agent_http_port`, when given) and a framework
    (failover timeout 300 s) running `sleep 600` tasks."""
    agent_dir = cluster.work_dir / "agent"
    cluster.start_agent(work_dir=agent_dir, http_port=agent_http_port)
    scheduler = RecordingScheduler(on_offers=launch_once(*((t, "sleep 600") for t in task_ids)))
    info = mesos_pb2.FrameworkInfo(name="ha", user="tester", failover_timeout=300)
    driver = SchedulerDriver(scheduler, info, cluster.master_address)
    driver.start()
    try:
        for task_id in task_ids:
            scheduler.wait_for_state(task_id, "TASK_RUNNING")
        pids = running_sleeps(agent_dir, len(task_ids))
        yield RunningFramework(scheduler, driver, agent_dir, pids)
    finally:
        driver.stop()
        driver.join()


def reported_running(scheduler: RecordingScheduler) -> set[str]:
    """Tasks a reconciliation answer reported TASK_RUNNING."""
    return {u.task_id.value for u in scheduler.updates
            if u.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION
            and u.state == mesos_pb2.TASK_RUNNING}


def test_kill9_leading_master_keeps_tasks_running(
    ha_cluster: tuple[Cluster, ZooKeeperEnsemble],
) -> None:
    cluster, _ = ha_cluster
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    with running_tasks(cluster, "s1", "s2") as running:
        scheduler, driver = running.scheduler, running.driver
        framework_id = scheduler.framework_id

        leader.kill9()
        [new_leader] = wait_for(lambda: cluster.leading_masters(), "a new leading master")
        assert new_leader is not leader
        new_leader.wait_for_log("agent re-registered")
        wait_for(lambda: scheduler.reregistrations >= 1, "the scheduler to re-subscribe")
        assert scheduler.framework_id == framework_id

        driver.reconcile_tasks([])
        wait_for(lambda: reported_running(scheduler) == {"s1", "s2"},
                 "the new leader to report both tasks running")
        assert sleep_pids(running.agent_dir) == running.pids  # nothing was restarted
        assert len(cluster.leading_masters()) == 1

        driver.kill_task("s1")
        scheduler.wait_for_state("s1", "TASK_KILLED")
        assert not [u for u in scheduler.updates if u.task_id.value == "s2" and is_terminal(u)]

def test_standby_masters_name_the_leader(ha_cluster: tuple[Cluster, ZooKeeperEnsemble]) -> None:
    cluster, _ = ha_cluster
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    leader_port = leader.argv[leader.argv.index("--port") + 1]
    standbys = [m for m in cluster.masters if m is not leader]
    for standby in standbys:
        port = standby.argv[standby.argv.index("--port") + 1]
        hint = wait_for(lambda port=port: _leader_hint(port), f"{standby.name} to name the leader")
        assert hint == f"127.0.0.1:{leader_port}"


def _leader_hint(port: str) -> str:
    """Subscribe at a standby; return the leader it names (empty while it knows none)."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        call = scheduler_pb2.Call(
            type=scheduler_pb2.Call.SUBSCRIBE,
            subscribe=scheduler_pb2.Call.Subscribe(
                framework_info=mesos_pb2.FrameworkInfo(name="x", user="u")),
        )
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(stub.Subscribe(call, timeout=10)))
    error = refused.value
    assert error.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
    return str(dict(error.trailing_metadata()).get("mesos-leader", ""))  # type: ignore[attr-defined]


def test_leader_whose_session_expires_steps_down_for_good(
    ha_cluster: tuple[Cluster, ZooKeeperEnsemble],
) -> None:
    """SIGSTOP the leader past its ZooKeeper session timeout: a standby takes over, and when the
    old leader wakes up it must not act as leader again; it exits for its supervisor."""
    cluster, _ = ha_cluster
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    with running_tasks(cluster, "s1") as running:
        assert leader.popen is not None
        leader.popen.send_signal(signal.SIGSTOP)
        try:
            [new_leader] = wait_for(
                lambda: [m for m in cluster.leading_masters() if m is not leader],
                "a standby to take over from the stopped leader",
            )
        finally:
            leader.popen.send_signal(signal.SIGCONT)
        wait_for(lambda: not leader.alive(), "the old leader to exit")
        assert leader.popen.returncode == 1
        assert "lost the ZooKeeper session" in leader.log()
        assert cluster.leading_masters() == [new_leader]

        new_leader.wait_for_log("agent re-registered")
        running.driver.reconcile_tasks([])
        wait_for(lambda: reported_running(running.scheduler) == {"s1"},
                 "the new leader to report the task running")
        assert sleep_pids(running.agent_dir) == running.pids

def test_zookeeper_down_and_back_keeps_tasks_running(
    ha_cluster_own_zookeeper: tuple[Cluster, ZooKeeperEnsemble],
) -> None:
    """Stop the whole ZooKeeper service: masters give up leadership and exit; the test restarts
    them as a supervisor would once ZooKeeper is back. Tasks run throughout."""
    cluster, ensemble = ha_cluster_own_zookeeper
    wait_for(lambda: cluster.leading_masters(), "a leading master")
    with running_tasks(cluster, "s1", "s2") as running:
        old_masters = list(cluster.masters)
        ensemble.stop()
        wait_for(lambda: not any(m.alive() for m in old_masters), "the masters to give up")
        assert sleep_pids(running.agent_dir) == running.pids  # tasks need no ZooKeeper or master

        for node in ensemble.nodes:
            node.start()
            node.wait_listening()
        ensemble.wait_serving()
        for _ in old_masters:
            cluster.start_master()
        [leader] = wait_for(lambda: cluster.leading_masters(), "a new leading master")
        leader.wait_for_log("agent re-registered")
        running.driver.reconcile_tasks([])
        wait_for(lambda: reported_running(running.scheduler) == {"s1", "s2"},
                 "both tasks to be reported running after the outage")
        assert sleep_pids(running.agent_dir) == running.pids
        assert not [u for u in running.scheduler.updates if is_terminal(u)]
