"""bench/hollow_agents.py against a real master: 50 simulated agents in one process take offers,
play tasks (no processes forked), retry unacknowledged updates and re-register after the master
restarts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from frameworks import OfferBudget, SchedulerDriver, command_task, state_name
from protos import mesos_pb2
from tests.conftest import unique_zk_path
from tests.integration.cluster import Cluster, Process, port_answers, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.recording import RecordingScheduler
from tests.zookeeper import ZooKeeperEnsemble

ROOT = Path(__file__).resolve().parents[2]
HOLLOW = ROOT / "bench" / "hollow_agents.py"
AGENTS = 50
ALL_REGISTERED = '"event": "all_registered"'


@pytest.fixture(autouse=True)
def _importable_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    """The hollow agents run as a script: make the repository's packages importable there."""
    monkeypatch.setenv("PYTHONPATH", str(ROOT))


def start_hollow(cluster: Cluster, *extra: str, agents: int = AGENTS) -> Process:
    process = Process(
        "hollow",
        [sys.executable, str(HOLLOW), "--master", cluster.master_address,
         "--agents", str(agents), "--resources", "cpus:2;mem:2048;ports:[31000-31009]",
         "--attributes", "rack:r1", "--id-file", str(cluster.work_dir / "hollow-ids.json"),
         "--log-level", "INFO", *extra],
        cluster.work_dir / "hollow.log",
    ).start()
    cluster.processes.append(process)
    return process


def registration_waves(hollow: Process) -> int:
    return hollow.log().count(ALL_REGISTERED)


@contextmanager
def running(
    cluster: Cluster, scheduler: RecordingScheduler, *, implicit_acknowledgements: bool = True
) -> Iterator[SchedulerDriver]:
    info = mesos_pb2.FrameworkInfo(name="hollow-test", user="tester", failover_timeout=60)
    driver = SchedulerDriver(
        scheduler, info, cluster.master_address,
        implicit_acknowledgements=implicit_acknowledgements,
    )
    driver.start()
    try:
        wait_for(lambda: scheduler.framework_id, "the framework to register")
        yield driver
    finally:
        driver.stop()
        driver.join()


# One task per agent, by agent index modulo the number of plans: what the hollow agent does.
PLANS: list[tuple[str, dict[str, str], str]] = [
    ("exit 0", {}, "TASK_FINISHED"),
    ("exit 3", {}, "TASK_FAILED"),
    ("run-forever", {"hollow_duration_seconds": "0.3"}, "TASK_FINISHED"),
    ("sleep 0.2", {}, "TASK_FINISHED"),
    ("sleep 3600", {}, "TASK_KILLED"),  # killed by the test
]


def one_task_per_agent(launched: dict[str, str]) -> RecordingScheduler:
    """A scheduler launching one task (chosen by hostname index) on the first offer of each
    agent; `launched` maps task id -> the final state the hollow agent should report."""

    def handle(driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            index = int(offer.hostname.removeprefix("hollow-"))
            task_id = f"task-{index}"
            if task_id in launched:
                driver.decline_offer(offer.id, filters=3600)
                continue
            cmd, labels, final = PLANS[index % len(PLANS)]
            launched[task_id] = final
            task = command_task(task_id, OfferBudget(offer), cmd, cpus=0.5, mem=64, ports=1,
                                labels=labels)
            driver.launch_tasks(offer.id, [task], filters=3600)

    return RecordingScheduler(on_offers=handle)


def test_hollow_agents_take_offers_and_play_tasks(cluster: Cluster) -> None:
    hollow = start_hollow(cluster)
    hollow.wait_for_log(ALL_REGISTERED)
    launched: dict[str, str] = {}
    scheduler = one_task_per_agent(launched)
    with running(cluster, scheduler) as driver:
        wait_for(lambda: len(launched) == AGENTS, "a task launched on every agent")
        offered = {offer.hostname for offer in scheduler.offers}
        assert offered == {f"hollow-{index:06d}" for index in range(AGENTS)}
        assert all(offer.attributes[0].text.value == "r1" for offer in scheduler.offers)
        to_kill = [task_id for task_id, final in launched.items() if final == "TASK_KILLED"]
        for task_id in to_kill:
            scheduler.wait_for_state(task_id, "TASK_RUNNING")
            driver.kill_task(task_id)
        for task_id, final in launched.items():
            scheduler.wait_for_state(task_id, final)
    for task_id, final in launched.items():
        assert scheduler.states(task_id) == ["TASK_STARTING", "TASK_RUNNING", final], task_id
    assert scheduler.errors == []


def test_unacknowledged_updates_are_retried_until_acknowledged(cluster: Cluster) -> None:
    hollow = start_hollow(cluster, "--status-update-retry-interval", "0.2", agents=1)
    hollow.wait_for_log(ALL_REGISTERED)
    launched: dict[str, str] = {}
    scheduler = one_task_per_agent(launched)  # hollow-000000 gets `exit 0`
    with running(cluster, scheduler, implicit_acknowledgements=False) as driver:
        wait_for(lambda: len(scheduler.states("task-0")) >= 3,
                 "TASK_STARTING to be sent again while unacknowledged")
        assert set(scheduler.states("task-0")) == {"TASK_STARTING"}
        starting = scheduler.updates[0]
        assert all(update.uuid == starting.uuid for update in scheduler.updates)
        driver.acknowledge_status_update(starting)
        running_update = scheduler.wait_for_state("task-0", "TASK_RUNNING")
        driver.acknowledge_status_update(running_update)
        finished = scheduler.wait_for_state("task-0", "TASK_FINISHED")
        driver.acknowledge_status_update(finished)


def reconcile_running(
    driver: SchedulerDriver, scheduler: RecordingScheduler, survivors: list[str]
) -> None:
    """Reconciliation reports every surviving task RUNNING; then they are killed."""
    before = len(scheduler.updates)
    driver.reconcile_tasks([])
    wait_for(lambda: {u.task_id.value for u in scheduler.updates[before:]} >= set(survivors),
             "reconciliation answers for the surviving tasks")
    answers = {u.task_id.value: state_name(u) for u in scheduler.updates[before:]}
    assert {answers[task_id] for task_id in survivors} == {"TASK_RUNNING"}
    for task_id in survivors:
        driver.kill_task(task_id)
    for task_id in survivors:
        scheduler.wait_for_state(task_id, "TASK_KILLED")


def launch_survivors(
    scheduler: RecordingScheduler, launched: dict[str, str], agents: int = AGENTS
) -> list[str]:
    """Wait for a task on every agent; returns the long-running ones once TASK_RUNNING."""
    wait_for(lambda: len(launched) == agents, "a task launched on every agent")
    survivors = [task_id for task_id, final in launched.items() if final == "TASK_KILLED"]
    for task_id in survivors:
        scheduler.wait_for_state(task_id, "TASK_RUNNING")
    return survivors


def test_hollow_agents_reregister_with_their_tasks_after_a_master_restart(
    cluster: Cluster,
) -> None:
    hollow = start_hollow(cluster)
    hollow.wait_for_log(ALL_REGISTERED)
    launched: dict[str, str] = {}
    scheduler = one_task_per_agent(launched)
    with running(cluster, scheduler) as driver:
        survivors = launch_survivors(scheduler, launched)

        master = cluster.masters[0]
        master.kill9()
        restarted = Process(master.name, master.argv, master.log_path).start()
        cluster.processes.append(restarted)
        wait_for(lambda: port_answers(cluster.master_port), "the restarted master to listen")
        wait_for(lambda: registration_waves(hollow) == 2, "every hollow agent to re-register")
        wait_for(lambda: scheduler.reregistrations or scheduler.registrations > 1,
                 "the framework to re-subscribe")
        reconcile_running(driver, scheduler, survivors)
    assert "re-registration refused" not in hollow.log()


def test_hollow_agents_follow_the_new_leader_after_a_zookeeper_failover(
    tmp_path: Path, shared_zookeeper: ZooKeeperEnsemble
) -> None:
    agents = 20
    zk_url = shared_zookeeper.url(unique_zk_path("/mesos"))
    cluster = Cluster(tmp_path, list(FAST_MASTER_FLAGS), zk_url=zk_url)
    try:
        cluster.start_master()
        cluster.start_master()
        wait_for(lambda: len(cluster.leading_masters()) == 1, "a leading master")
        hollow = start_hollow(cluster, agents=agents)
        hollow.wait_for_log(ALL_REGISTERED)
        launched: dict[str, str] = {}
        scheduler = one_task_per_agent(launched)
        with running(cluster, scheduler) as driver:
            survivors = launch_survivors(scheduler, launched, agents)
            leader = cluster.leading_masters()[0]
            leader.kill9()
            wait_for(lambda: cluster.leading_masters() and cluster.leading_masters()[0]
                     is not leader, "the standby to take over")
            wait_for(lambda: registration_waves(hollow) == 2,
                     "every hollow agent to re-register with the new leader")
            reconcile_running(driver, scheduler, survivors)
        assert "re-registration refused" not in hollow.log()
    finally:
        cluster.close()
