"""Lose one of three ZooKeeper servers, each in turn: the quorum stays, so the cluster keeps
electing a leader, keeps its registry writable (new tasks launch) and tasks keep running.
Masters that give up their session are restarted, as a supervisor would."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path

from frameworks import OfferBudget, SchedulerDriver, command_task, is_terminal
from protos import mesos_pb2
from tests.integration.cluster import Cluster, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import running_sleeps, sleep_pids
from tests.zookeeper import zookeeper


@dataclass
class Launcher:
    """Launches each task id added to `pending` (sleep 600) on the next offer."""

    pending: list[str] = field(default_factory=list)

    def __call__(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            if not self.pending:  # short filter: a revive lost in a failover costs 1 s
                driver.decline_offer(offer.id, filters=1)
                continue
            budget = OfferBudget(offer)
            tasks = [command_task(t, budget, "sleep 600", cpus=0.1, mem=32) for t in self.pending]
            self.pending.clear()
            driver.launch_tasks(offer.id, tasks)


def test_losing_one_of_three_zookeeper_servers(tmp_path: Path) -> None:
    with zookeeper(tmp_path / "zk", size=3) as ensemble:
        cluster = Cluster(tmp_path, FAST_MASTER_FLAGS, zk_url=ensemble.url("/mesos"))
        try:
            for _ in range(3):
                cluster.start_master()
            wait_for(lambda: cluster.leading_masters(), "a leading master")
            agent_dir = tmp_path / "agent"
            cluster.start_agent(work_dir=agent_dir)
            launcher = Launcher(["before"])
            scheduler = RecordingScheduler(on_offers=launcher)
            info = mesos_pb2.FrameworkInfo(name="quorum", user="tester", failover_timeout=300)
            driver = SchedulerDriver(scheduler, info, cluster.master_address)
            driver.start()
            try:
                scheduler.wait_for_state("before", "TASK_RUNNING")
                expected = running_sleeps(agent_dir, 1)
                for node in ensemble.nodes:
                    node.stop(signal.SIGKILL)
                    task_id = f"without-zk{node.server_id}"
                    _launch(cluster, driver, scheduler, launcher, task_id)
                    expected = running_sleeps(agent_dir, len(expected) + 1)
                    node.start()
                    node.wait_listening()
                    ensemble.wait_serving()
                assert sleep_pids(agent_dir) == expected
                assert len(expected) == 4
                # Nothing that ran ended (a launch dropped in a leader change never ran).
                assert not [u for u in scheduler.updates
                            if is_terminal(u) and u.state != mesos_pb2.TASK_DROPPED]
                wait_for(lambda: len(cluster.leading_masters()) == 1, "exactly one leader")
            finally:
                driver.stop()
                driver.join()
        finally:
            cluster.close()


def _launch(
    cluster: Cluster,
    driver: SchedulerDriver,
    scheduler: RecordingScheduler,
    launcher: Launcher,
    task_id: str,
) -> None:
    """Launch `task_id` and wait until it runs, restarting masters that gave up meanwhile and
    launching it again if a leader change dropped the launch (as a framework would)."""
    launcher.pending.append(task_id)
    driver.revive_offers()
    relaunched = 0

    def running() -> bool:
        nonlocal relaunched
        for master in list(cluster.masters):
            if not master.alive() and master.popen is not None:
                cluster.masters.remove(master)
                cluster.start_master()  # its supervisor would restart it
        states = scheduler.states(task_id)
        if states.count("TASK_DROPPED") > relaunched:  # once per dropped launch
            relaunched += 1
            launcher.pending.append(task_id)
            driver.revive_offers()
        return "TASK_RUNNING" in states

    wait_for(running, f"{task_id} to run with one ZooKeeper server down")
