"""What a new leading master recovers from the registry in ZooKeeper: agents that must
re-register (one of them partitioned during the failover), and frameworks whose failover timeout
keeps running across the failover. Three masters, a real ZooKeeper, kill -9 of the leader."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from frameworks import OfferBudget, SchedulerDriver, command_task, is_terminal
from protos import mesos_pb2
from tests.conftest import unique_zk_path
from tests.integration.cluster import Cluster, Process, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import running_sleeps, sleep_pids
from tests.zookeeper import ZooKeeperEnsemble

PARTITION_AWARE = mesos_pb2.FrameworkInfo.Capability(
    type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE
)
REREGISTER_TIMEOUT = ["--agent_reregister_timeout", "10secs"]


@pytest.fixture
def cluster(tmp_path: Path, shared_zookeeper: ZooKeeperEnsemble) -> Iterator[Cluster]:
    """Three masters (agents get 10 s to re-register after a failover) on the shared
    ZooKeeper, under a path of their own."""
    cluster = Cluster(tmp_path, [*FAST_MASTER_FLAGS, *REREGISTER_TIMEOUT],
                      zk_url=shared_zookeeper.url(unique_zk_path("/mesos")))
    try:
        for _ in range(3):
            cluster.start_master()
        yield cluster
    finally:
        cluster.close()


def one_sleep_per_host(tasks_by_host: dict[str, str]) -> Callable[..., None]:
    """An offer handler launching task `tasks_by_host[hostname]` (sleep 600) once per host."""
    pending = dict(tasks_by_host)

    def handle(driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            task_id = pending.pop(offer.hostname, None)
            if task_id is None:
                driver.decline_offer(offer.id, filters=60)
                continue
            task = command_task(task_id, OfferBudget(offer), "sleep 600", cpus=0.1, mem=32)
            driver.launch_tasks(offer.id, [task])

    return handle


def new_leader(cluster: Cluster, old: Process) -> Process:
    [leader] = wait_for(
        lambda: [m for m in cluster.leading_masters() if m is not old], "a new leading master"
    )
    return leader


def reconciled(scheduler: RecordingScheduler, task_id: str, start: int) -> int | None:
    """The state of the first reconciliation answer for `task_id` after update number `start`."""
    for update in scheduler.updates[start:]:
        if (update.task_id.value == task_id
                and update.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION):
            return int(update.state)
    return None


def test_master_failover_while_an_agent_is_partitioned(cluster: Cluster) -> None:
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    dirs = {host: cluster.work_dir / f"agent-{host}" for host in ("a", "b")}
    agents = {
        host: cluster.start_agent("cpus:1;mem:256", hostname=host, work_dir=path)
        for host, path in dirs.items()
    }
    scheduler = RecordingScheduler(on_offers=one_sleep_per_host({"a": "on-a", "b": "on-b"}))
    info = mesos_pb2.FrameworkInfo(
        name="partition", user="tester", failover_timeout=300, capabilities=[PARTITION_AWARE]
    )
    driver = SchedulerDriver(scheduler, info, cluster.master_address)
    driver.start()
    try:
        running = {t: scheduler.wait_for_state(t, "TASK_RUNNING") for t in ("on-a", "on-b")}
        agent_b = running["on-b"].agent_id.value
        pids = {host: running_sleeps(path, 1) for host, path in dirs.items()}

        partitioned = agents["b"].popen
        assert partitioned is not None
        partitioned.send_signal(signal.SIGSTOP)  # b hears nothing from here on
        try:
            leader.kill9()
            leader = new_leader(cluster, leader)
            leader.wait_for_log("agent re-registered")  # a; b is still silent
            wait_for(lambda: agent_b in scheduler.lost_agents,
                     "the new leader to give b up after --agent_reregister_timeout")
            assert "agent did not re-register after master failover" in leader.log()

            start = len(scheduler.updates)
            driver.reconcile_tasks([("on-a", running["on-a"].agent_id.value), ("on-b", agent_b)])
            wait_for(lambda: reconciled(scheduler, "on-b", start), "an answer about on-b")
            assert reconciled(scheduler, "on-a", start) == mesos_pb2.TASK_RUNNING
            assert reconciled(scheduler, "on-b", start) == mesos_pb2.TASK_UNREACHABLE
        finally:
            partitioned.send_signal(signal.SIGCONT)

        # The partition heals: b re-registers with its task, which kept running all along.
        wait_for(lambda: leader.log().count("agent re-registered") >= 2, "b to re-register")
        start = len(scheduler.updates)
        driver.reconcile_tasks([])
        wait_for(lambda: reconciled(scheduler, "on-b", start) == mesos_pb2.TASK_RUNNING,
                 "on-b to be reported running again")
        assert reconciled(scheduler, "on-a", start) == mesos_pb2.TASK_RUNNING
        assert {host: sleep_pids(path) for host, path in dirs.items()} == pids
        assert not [u for u in scheduler.updates if is_terminal(u)]
        assert len(cluster.leading_masters()) == 1
    finally:
        driver.stop()
        driver.join()


def test_failover_timeout_keeps_running_across_master_failover(cluster: Cluster) -> None:
    """A scheduler disconnects, then the leader dies: the next leader knows the framework from
    the registry and removes it (killing its task) once its failover timeout is over."""
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    agent_dir = cluster.work_dir / "agent"
    cluster.start_agent(hostname="a", work_dir=agent_dir)
    scheduler = RecordingScheduler(on_offers=one_sleep_per_host({"a": "doomed"}))
    info = mesos_pb2.FrameworkInfo(name="brief", user="tester", failover_timeout=5)
    driver = SchedulerDriver(scheduler, info, cluster.master_address)
    driver.start()
    scheduler.wait_for_state("doomed", "TASK_RUNNING")
    framework_id = scheduler.framework_id
    running_sleeps(agent_dir, 1)
    driver.stop(failover=True)  # disconnect without tearing down
    driver.join()
    leader.wait_for_log("framework disconnected")

    leader.kill9()
    leader = new_leader(cluster, leader)
    wait_for(lambda: [line for line in leader.log().splitlines()
                      if "framework removed" in line and framework_id in line],
             "the new leader to remove the framework")
    wait_for(lambda: not sleep_pids(agent_dir), "the framework's task to be killed")

    # Its id is refused from now on, by this leader and (from the registry) by the next.
    refused = RecordingScheduler()
    info.id.value = framework_id
    late = SchedulerDriver(refused, info, cluster.master_address)
    late.start()
    try:
        wait_for(lambda: refused.errors, "the master to refuse the removed framework")
        assert "removed" in refused.errors[0]
    finally:
        late.abort()
        late.join()
