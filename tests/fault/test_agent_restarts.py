"""kill -9 an agent ten times in a row while three tasks run, restarting it each time with the
same --work_dir and port: it re-registers under the same id and re-attaches to its tasks (same
pids, same ids); a task whose process dies while the agent is down is reported failed once it is
back; and no status update is lost, reordered or repeated as a second terminal update."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

from frameworks import SchedulerDriver, is_terminal
from mesos_agent.containerizer.cgroups import Cgroups, mounts_under
from mesos_agent.paths import AgentPaths
from mesos_agent.status_updates import AckRecord, UpdateRecord
from protos import mesos_pb2
from tests.integration.cluster import Cluster, Process, free_port, wait_for
from tests.integration.recording import RecordingScheduler
from tests.integration.registries import Registry, build_image
from tests.integration.test_agent_recovery import (
    alive,
    container_record,
    sleep_pid_of,
    task_records,
)
from tests.integration.test_end_to_end import PARTITION_AWARE, launch_once

ROUNDS = 10
DOOMED_ROUND = 3  # the round in which a task's process is killed while the agent is down
TASKS = ("t1", "t2", "t3")
DOOMED = "t2"



def reregistered_agent_ids(master: Process) -> list[str]:
    """The agent id of every re-registration in the master's JSON log, oldest first."""
    ids = []
    for line in master.log().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("event") == "agent re-registered":
                ids.append(record["agent_id"])
    return ids


def restart(agent: Process, start: Callable[[], Process], master: Process,
            while_down: Callable[[], None] | None) -> Process:
    """kill -9 the agent, run `while_down`, start it again; returns it once re-registered."""
    before = len(reregistered_agent_ids(master))
    agent.kill9()
    if while_down is not None:
        while_down()
    restarted = start()
    wait_for(lambda: len(reregistered_agent_ids(master)) > before, "the agent to re-register")
    return restarted


def sleep_pids(agent_dir: Path) -> dict[str, int] | None:
    """The pid of every task's `sleep`, None until all run."""
    found = {t: sleep_pid_of(agent_dir, t) for t in TASKS}
    pids = {t: pid for t, pid in found.items() if pid is not None}
    return pids if len(pids) == len(TASKS) else None


def all_acknowledged(paths: AgentPaths, framework_id: str, task_id: str) -> bool:
    """Whether the agent logged an acknowledgement for every update of the task."""
    records = task_records(paths, task_id, framework_id)
    updates = {r.status.uuid for r in records if isinstance(r, UpdateRecord)}
    return bool(updates) and updates <= {r.uuid for r in records if isinstance(r, AckRecord)}


def check_update_order(task_id: str, updates: list[mesos_pb2.TaskStatus]) -> None:
    """STARTING, RUNNING, then no STARTING again and nothing after a terminal update.

    A re-delivery of the same update (same uuid) is at-least-once delivery, not a new update.
    """
    seen: set[bytes] = set()
    states = []
    for update in updates:
        if update.uuid and update.uuid in seen:
            continue
        seen.add(update.uuid)
        states.append(mesos_pb2.TaskState.Name(update.state))
    assert states[:2] == ["TASK_STARTING", "TASK_RUNNING"], (task_id, states)
    assert "TASK_STARTING" not in states[2:], (task_id, states)
    terminal = [i for i, update in enumerate(updates) if is_terminal(update)]
    assert not terminal or terminal == [len(updates) - 1], (task_id, states)


# The machine's default isolation (cgroups/cpu,cgroups/mem where the agent is root), and every
# isolator that holds a task: its cgroups and its pid and mount namespaces outlive the agent.
# And tasks in an image, run by runc (whose `runc run` is the container's root process).
IMAGE = "image"
ISOLATION = ["default", "cgroups/cpu,cgroups/mem,cgroups/pids,namespaces/pid,filesystem/linux",
             IMAGE]


@pytest.mark.parametrize("isolation", ISOLATION, ids=["default", "namespaces", "image"])
def test_agent_killed_ten_times_keeps_its_tasks_and_their_updates(
        cluster: Cluster, isolation: str, tmp_path: Path) -> None:
    with contextlib.ExitStack() as stack:
        image = None
        if isolation == IMAGE:
            if os.geteuid() != 0 or shutil.which("runc") is None:
                pytest.skip("image containers need root and runc")
            registry = stack.enter_context(Registry(tmp_path / "registry"))
            registry.push(build_image(tmp_path / "layout", tag="v1"), "team/sleeper")
            cluster.agent_flags += ["--image_providers=docker",
                                    f"--docker_registry={registry.url}"]
            image = "team/sleeper:v1"
        elif isolation != "default":
            if os.geteuid() != 0:
                pytest.skip("namespaces need root")
            cluster.agent_flags += [f"--isolation={isolation}"]
        kill_agent_ten_times(cluster, image)


def kill_agent_ten_times(cluster: Cluster, image: str | None) -> None:
    """The test's body: three tasks (in `image`, if given) outlive ten kill -9s of their
    agent."""
    agent_dir, agent_port = cluster.work_dir / "agent", free_port()

    def start_agent() -> Process:
        return cluster.start_agent(work_dir=agent_dir, port=agent_port, hostname="restarted")

    agent = start_agent()
    master = cluster.masters[0]
    scheduler = RecordingScheduler(on_offers=launch_once(*((t, "sleep 600") for t in TASKS),
                                                         image=image))
    info = mesos_pb2.FrameworkInfo(name="restarts", user="tester", failover_timeout=300,
                                   capabilities=[PARTITION_AWARE])
    driver = SchedulerDriver(scheduler, info, cluster.master_address)
    driver.start()
    try:
        for task_id in TASKS:
            scheduler.wait_for_state(task_id, "TASK_RUNNING")
        framework_id = scheduler.framework_id
        assert framework_id is not None
        paths = AgentPaths(agent_dir)
        # Start from a quiet agent, so that any update seen twice later is a bug.
        wait_for(lambda: all(all_acknowledged(paths, framework_id, t) for t in TASKS),
                 "the agent to log every acknowledgement")
        # RUNNING is sent once the container started; its command may still be exec'ing.
        pids = wait_for(lambda: sleep_pids(agent_dir), "every task's sleep to run")
        running_update = scheduler.last(TASKS[0])
        assert running_update is not None
        agent_id = running_update.agent_id.value

        def kill_doomed_task() -> None:
            root = container_record(paths, DOOMED, framework_id).container.pid
            os.kill(pids[DOOMED], signal.SIGKILL)
            wait_for(lambda: not alive(root), "the doomed task's process to end")

        for round_number in range(ROUNDS):
            agent = restart(agent, start_agent, master,
                            kill_doomed_task if round_number == DOOMED_ROUND else None)
            if round_number == DOOMED_ROUND:
                failed = scheduler.wait_for_state(DOOMED, "TASK_FAILED")
                assert failed.reason == mesos_pb2.TaskStatus.REASON_AGENT_RESTARTED
                assert failed.source == mesos_pb2.TaskStatus.SOURCE_AGENT
                # The second wording when the agent still saw the ended process as a zombie
                # (not yet reaped by init) and re-attached to it until it was reaped.
                assert failed.message in (
                    "The task's process ended while the agent was down",
                    "Command exited with an unknown status (its agent restarted meanwhile)",
                ), failed.message
                # Acknowledged before the next kill, so that a re-delivery is not expected.
                wait_for(lambda: not task_records(paths, DOOMED, framework_id),
                         "the agent to forget the failed task once acknowledged")
            survivors = [t for t in TASKS if t != DOOMED or round_number < DOOMED_ROUND]
            assert {t: sleep_pid_of(agent_dir, t) for t in survivors} == {
                t: pids[t] for t in survivors}, f"round {round_number + 1}: a task was restarted"

        reregistrations = reregistered_agent_ids(master)
        assert len(reregistrations) >= ROUNDS
        assert set(reregistrations) == {agent_id}  # never a new agent
        survivors = [t for t in TASKS if t != DOOMED]
        driver.reconcile_tasks(survivors)
        wait_for(lambda: {u.task_id.value for u in list(scheduler.updates)
                          if u.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION
                          and u.state == mesos_pb2.TASK_RUNNING} >= set(survivors),
                 "reconciliation to report the surviving tasks running")
        assert {t: sleep_pid_of(agent_dir, t) for t in TASKS} == {
            **{t: pids[t] for t in survivors}, DOOMED: None}
        if os.geteuid() == 0:  # still in their cgroups, whose limits outlived every restart
            cgroups = Cgroups(mounts_under(Path("/sys/fs/cgroup")), "mesos")
            for task_id in survivors:
                container = container_record(paths, task_id, framework_id).container
                assert pids[task_id] in cgroups.pids("memory", container.container_id)

        received = {u.uuid for u in list(scheduler.updates) if u.uuid}
        for task_id in survivors:
            wait_for(lambda: all_acknowledged(paths, framework_id, task_id),  # noqa: B023
                     f"every update of {task_id} to be acknowledged")
            logged = {r.status.uuid for r in task_records(paths, task_id, framework_id)
                      if isinstance(r, UpdateRecord)}
            assert logged <= received, f"an update of {task_id} never reached the framework"
        for task_id in TASKS:
            updates = [u for u in list(scheduler.updates) if u.task_id.value == task_id]
            check_update_order(task_id, updates)
            assert sum(is_terminal(u) for u in updates) == (task_id == DOOMED), task_id
        assert agent.alive()
    finally:
        driver.stop()
        driver.join()
