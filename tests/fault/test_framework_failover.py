"""SIGKILL a scheduler process, then re-subscribe with its framework id: before the failover
timeout the new scheduler takes over the running tasks (same ids, same pids); after it the
master has removed the framework, killed its tasks and refuses the old id."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from frameworks import DriverStatus, SchedulerDriver, is_terminal
from mesos_values.resources import Resources
from protos import mesos_pb2
from tests.integration.cluster import Cluster, Process, wait_for
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import running_sleeps, sleep_pids

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENT_RESOURCES = "cpus:4;mem:4096;disk:10000;ports:[31000-31099]"

# The doomed scheduler: launches two sleeps, writes its framework id once both run, then
# waits to be killed.
SCHEDULER_SCRIPT = """\
import sys
from frameworks import SchedulerDriver
from protos import mesos_pb2
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import launch_once

master, failover_timeout, ready = sys.argv[1], float(sys.argv[2]), sys.argv[3]
scheduler = RecordingScheduler(on_offers=launch_once(("s1", "sleep 600"), ("s2", "sleep 600")))
info = mesos_pb2.FrameworkInfo(name="doomed", user="tester", failover_timeout=failover_timeout)
driver = SchedulerDriver(scheduler, info, master)
driver.start()
for task_id in ("s1", "s2"):
    scheduler.wait_for_state(task_id, "TASK_RUNNING")
with open(ready + ".tmp", "w") as out:
    out.write(scheduler.framework_id)
import os
os.rename(ready + ".tmp", ready)
driver.join()
"""



def run_doomed_scheduler(cluster: Cluster, failover_timeout: float) -> tuple[Process, str]:
    """Start the scheduler script in its own process; return it and its framework id once
    both of its tasks are running."""
    script = cluster.work_dir / "doomed_scheduler.py"
    script.write_text(SCHEDULER_SCRIPT)
    ready = cluster.work_dir / "doomed.framework_id"
    process = Process(
        "doomed-scheduler",
        [sys.executable, str(script), cluster.master_address, str(failover_timeout), str(ready)],
        cluster.work_dir / "doomed-scheduler.log",
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    log = process.log_path.open("ab")
    process.popen = subprocess.Popen(
        process.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
        cwd=cluster.work_dir,
    )
    log.close()
    cluster.processes.append(process)
    wait_for(lambda: ready.exists() or not process.alive(), "the doomed scheduler's tasks to run")
    assert ready.exists(), process.log()
    return process, ready.read_text()


def master_logged(master: Process, event: str, framework_id: str) -> bool:
    """Whether the master's JSON log has `event` for the framework."""
    for line in master.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == event and record.get("framework_id") == framework_id:
                return True
    return False


def reconciled_running(scheduler: RecordingScheduler) -> set[str]:
    with scheduler.lock:
        return {u.task_id.value for u in scheduler.updates
                if u.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION
                and u.state == mesos_pb2.TASK_RUNNING}


def test_scheduler_killed_and_replaced_before_failover_timeout(cluster: Cluster) -> None:
    agent_dir = cluster.work_dir / "agent"
    cluster.start_agent(AGENT_RESOURCES, work_dir=agent_dir)
    doomed, framework_id = run_doomed_scheduler(cluster, failover_timeout=30)
    pids = running_sleeps(agent_dir, 2)

    doomed.kill9()
    master = cluster.masters[0]
    wait_for(lambda: master_logged(master, "framework disconnected", framework_id),
             "the master to notice the scheduler is gone")

    scheduler = RecordingScheduler()
    info = mesos_pb2.FrameworkInfo(name="heir", user="tester", failover_timeout=30,
                                   id=mesos_pb2.FrameworkID(value=framework_id))
    driver = SchedulerDriver(scheduler, info, cluster.master_address)
    driver.start()
    try:
        wait_for(lambda: scheduler.registrations + scheduler.reregistrations >= 1,
                 "the new scheduler to subscribe")
        assert scheduler.framework_id == framework_id  # a new driver's first subscription
        assert driver.framework_id is not None and driver.framework_id.value == framework_id
        assert not scheduler.errors

        driver.reconcile_tasks([])
        wait_for(lambda: reconciled_running(scheduler) == {"s1", "s2"},
                 "reconciliation to report both tasks running")
        assert sleep_pids(agent_dir) == pids  # the tasks survived their scheduler

        driver.kill_task("s1")
        scheduler.wait_for_state("s1", "TASK_KILLED")
        wait_for(lambda: len(sleep_pids(agent_dir)) == 1, "one sleep to be gone")
        assert sleep_pids(agent_dir) < pids
        assert not [u for u in scheduler.updates if u.task_id.value == "s2" and is_terminal(u)]
        assert not master_logged(master, "framework removed", framework_id)
    finally:
        driver.stop()
        driver.join()


def test_scheduler_resubscribing_after_failover_timeout_is_refused(cluster: Cluster) -> None:
    agent_dir = cluster.work_dir / "agent"
    cluster.start_agent(AGENT_RESOURCES, work_dir=agent_dir)
    doomed, framework_id = run_doomed_scheduler(cluster, failover_timeout=1)
    running_sleeps(agent_dir, 2)

    doomed.kill9()
    master = cluster.masters[0]
    wait_for(lambda: not sleep_pids(agent_dir), "the agent to kill the removed framework's tasks")
    assert master_logged(master, "framework removed", framework_id)

    late = RecordingScheduler()
    info = mesos_pb2.FrameworkInfo(name="late", user="tester", failover_timeout=30,
                                   id=mesos_pb2.FrameworkID(value=framework_id))
    late_driver = SchedulerDriver(late, info, cluster.master_address)
    late_driver.start()
    try:
        wait_for(lambda: late.errors, "the master to refuse the removed framework id")
        assert late_driver.join() is DriverStatus.ABORTED
    finally:
        late_driver.stop()
        late_driver.join()
    assert late.registrations == late.reregistrations == 0
    assert framework_id in late.errors[0] and "removed" in late.errors[0]
    assert not late.offers and not late.updates

    fresh = RecordingScheduler()
    fresh_info = mesos_pb2.FrameworkInfo(name="fresh", user="tester")
    fresh_driver = SchedulerDriver(fresh, fresh_info, cluster.master_address)
    fresh_driver.start()
    try:
        wait_for(lambda: fresh.offers, "an offer for the fresh framework")
        assert fresh.framework_id is not None and fresh.framework_id != framework_id
        [offer] = fresh.offers[:1]
        assert Resources.from_proto(offer.resources) == Resources.parse(AGENT_RESOURCES)
    finally:
        fresh_driver.stop()
        fresh_driver.join()
