"""Real master, agents and SDK schedulers on loopback: offers, launches, kills, failures."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from frameworks import OfferBudget, SchedulerDriver, command_task, offer_resources
from mesos_security.tls import TlsConfig
from mesos_values.resources import Resources
from protos import mesos_pb2
from tests.integration.cluster import Cluster, free_port, wait_for
from tests.integration.recording import OfferHandler, RecordingScheduler

PARTITION_AWARE = mesos_pb2.FrameworkInfo.Capability(
    type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE
)


@contextmanager
def running(
    cluster: Cluster, scheduler: RecordingScheduler, name: str = "test",
    tls: TlsConfig | None = None, credential: mesos_pb2.Credential | None = None,
    **framework_fields: object,
) -> Iterator[SchedulerDriver]:
    info = mesos_pb2.FrameworkInfo(name=name, user="tester", **framework_fields)  # type: ignore[arg-type]
    driver = SchedulerDriver(scheduler, info, cluster.master_address, tls=tls,
                             credential=credential)
    driver.start()
    try:
        wait_for(lambda: scheduler.framework_id, f"{name} to register")
        yield driver
    finally:
        driver.stop()
        driver.join()


def launch_once(*tasks: tuple[str, str], cpus: float = 0.1, mem: float = 32,
                ports: int = 0, image: str | None = None) -> OfferHandler:
    """An offer handler that launches the given (task id, command) pairs on the first offer
    (in `image`, if given)."""
    pending = list(tasks)

    def handle(driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            if not pending:
                driver.decline_offer(offer.id, filters=60)
                continue
            budget = OfferBudget(offer)
            launch = [command_task(task_id, budget, cmd, cpus=cpus, mem=mem, ports=ports,
                                   image=image)
                      for task_id, cmd in pending]
            pending.clear()
            driver.launch_tasks(offer.id, launch)

    return handle


def sandbox_file(work_dir: Path, task_id: str, name: str) -> Path | None:
    for path in work_dir.rglob(name):
        if f"/{task_id}/" in str(path) or path.parent.name.startswith(task_id):
            return path
    return None


def test_command_tasks_run_to_completion_with_their_environment(cluster: Cluster) -> None:
    cluster.start_agent()
    scheduler = RecordingScheduler(on_offers=launch_once(
        ("echo-1", 'echo "hello from $MESOS_TASK_ID port $PORT0 ports $PORTS"; pwd'),
        ("fail-1", "echo broken >&2; exit 3"),
        ports=1,
    ))
    with running(cluster, scheduler):
        finished = scheduler.wait_for_state("echo-1", "TASK_FINISHED")
        failed = scheduler.wait_for_state("fail-1", "TASK_FAILED")
    assert scheduler.states("echo-1") == ["TASK_STARTING", "TASK_RUNNING", "TASK_FINISHED"]
    assert finished.source == mesos_pb2.TaskStatus.SOURCE_EXECUTOR and finished.uuid
    assert "3" in failed.message
    stdout = wait_for(lambda: sandbox_file(cluster.work_dir, "echo-1", "stdout"), "echo-1 stdout")
    text = stdout.read_text()
    assert "hello from echo-1 port 310" in text
    assert text.split("port ")[1].split()[0] == text.split("ports ")[1].split()[0]
    assert str(stdout.parent) in text  # the task ran inside its sandbox
    stderr = sandbox_file(cluster.work_dir, "fail-1", "stderr")
    assert stderr is not None and "broken" in stderr.read_text()


def test_kill_task_sends_killed(cluster: Cluster) -> None:
    cluster.start_agent()
    scheduler = RecordingScheduler(on_offers=launch_once(("sleeper", "sleep 600")))
    with running(cluster, scheduler) as driver:
        scheduler.wait_for_state("sleeper", "TASK_RUNNING")
        driver.kill_task("sleeper")
        killed = scheduler.wait_for_state("sleeper", "TASK_KILLED")
    assert killed.task_id.value == "sleeper"


def test_implicit_reconciliation_reports_running_tasks(cluster: Cluster) -> None:
    cluster.start_agent()
    scheduler = RecordingScheduler(on_offers=launch_once(("sleeper", "sleep 600")))
    with running(cluster, scheduler) as driver:
        scheduler.wait_for_state("sleeper", "TASK_RUNNING")
        driver.reconcile_tasks([])
        wait_for(
            lambda: any(u.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION
                        and u.state == mesos_pb2.TASK_RUNNING for u in scheduler.updates),
            "a reconciliation update",
        )
        driver.reconcile_tasks(["ghost"])
        ghost = scheduler.wait_for_state("ghost", "TASK_LOST")
    assert ghost.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION


def test_agent_killed_makes_tasks_lost_or_unreachable(cluster: Cluster) -> None:
    agent = cluster.start_agent()
    plain = RecordingScheduler(on_offers=launch_once(("plain-task", "sleep 600")))
    aware = RecordingScheduler(on_offers=launch_once(("aware-task", "sleep 600")))
    with running(cluster, plain, "plain"), running(
        cluster, aware, "aware", capabilities=[PARTITION_AWARE]
    ):
        plain.wait_for_state("plain-task", "TASK_RUNNING")
        aware.wait_for_state("aware-task", "TASK_RUNNING")
        agent.kill9()
        lost = plain.wait_for_state("plain-task", "TASK_LOST")
        unreachable = aware.wait_for_state("aware-task", "TASK_UNREACHABLE")
        wait_for(lambda: plain.lost_agents and aware.lost_agents, "agent_lost callbacks")
    assert lost.source == mesos_pb2.TaskStatus.SOURCE_MASTER
    assert unreachable.reason == mesos_pb2.TaskStatus.REASON_AGENT_REMOVED


def test_bad_launches_are_rejected_with_reasons(cluster: Cluster) -> None:
    cluster.start_agent("cpus:1;mem:256")
    used_offers: list[mesos_pb2.Offer] = []

    def handle(driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        offer = offers[0]
        if used_offers:
            driver.decline_offer(offer.id, filters=60)
            return
        used_offers.append(offer)
        too_big = mesos_pb2.TaskInfo(
            name="too-big", task_id=mesos_pb2.TaskID(value="too-big"), agent_id=offer.agent_id,
            resources=Resources.parse("cpus:8;mem:64").to_proto(),
            command=mesos_pb2.CommandInfo(value="true"),
        )
        budget = OfferBudget(offer)
        first = command_task("dup", budget, "sleep 600")
        second = command_task("dup", budget, "sleep 600")
        driver.launch_tasks(offer.id, [too_big, first, second])
        driver.launch_tasks(offer.id, [command_task("late", offer.agent_id.value, "true")])

    scheduler = RecordingScheduler(on_offers=handle)
    with running(cluster, scheduler):
        too_big = scheduler.wait_for_state("too-big", "TASK_ERROR")
        scheduler.wait_for_state("dup", "TASK_RUNNING")
        late = scheduler.wait_for_state("late", "TASK_LOST")
        duplicate = wait_for(
            lambda: [u for u in scheduler.updates
                     if u.task_id.value == "dup" and u.state == mesos_pb2.TASK_ERROR],
            "the duplicate task id to be refused",
        )
    assert "more resources" in too_big.message
    assert too_big.reason == mesos_pb2.TaskStatus.REASON_TASK_INVALID
    assert "already used" in duplicate[0].message
    assert late.reason == mesos_pb2.TaskStatus.REASON_INVALID_OFFERS


def test_status_updates_are_retried_until_acknowledged(cluster: Cluster) -> None:
    cluster.start_agent()
    scheduler = RecordingScheduler(on_offers=launch_once(("t", "sleep 600")))
    info = mesos_pb2.FrameworkInfo(name="explicit-acks", user="tester")
    driver = SchedulerDriver(scheduler, info, cluster.master_address,
                             implicit_acknowledgements=False)
    driver.start()
    try:
        starting = scheduler.wait_for_state("t", "TASK_STARTING")
        # Not acknowledged: the agent sends the same update (same uuid) again.
        wait_for(lambda: [u.uuid for u in scheduler.updates].count(starting.uuid) >= 2,
                 "the unacknowledged update to be resent")
        assert "TASK_RUNNING" not in scheduler.states("t")  # the next one waits for the ack
        driver.acknowledge_status_update(starting)
        running_update = scheduler.wait_for_state("t", "TASK_RUNNING")
        driver.acknowledge_status_update(running_update)
    finally:
        driver.stop()
        driver.join()


def test_drf_paper_example_with_real_offers(cluster: Cluster) -> None:
    """DRF paper: one agent <9 CPUs, 18 GB>; A's tasks <1 CPU, 4 GB>, B's <3 CPU, 1 GB>.

    Each framework launches one task per offer and declines the rest (no filter), so offers
    alternate in DRF order: A ends with 3 tasks (share 2/3 of memory), B with 2 (2/3 of CPUs).
    """
    cluster.start_agent("cpus:9;mem:18432")
    shapes = {"A": Resources.parse("cpus:1;mem:4096"), "B": Resources.parse("cpus:3;mem:1024")}
    launched = {"A": 0, "B": 0}
    refused = {"A": False, "B": False}

    def one_task_per_offer(name: str) -> OfferHandler:
        def handle(driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
            for offer in offers:
                if offer_resources(offer).contains(shapes[name]):
                    launched[name] += 1
                    task = command_task(
                        f"{name}{launched[name]}", offer, "sleep 600",
                        cpus=shapes[name].scalar("cpus"), mem=shapes[name].scalar("mem"),
                    )
                    driver.launch_tasks(offer.id, [task], filters=0)
                else:
                    refused[name] = True
                    driver.decline_offer(offer.id, filters=3600)
        return handle

    a, b = RecordingScheduler(one_task_per_offer("A")), RecordingScheduler(one_task_per_offer("B"))
    with running(cluster, a, "A"), running(cluster, b, "B"):
        wait_for(lambda: refused["A"] and refused["B"], "both frameworks to run out of room")
        for name, scheduler in (("A", a), ("B", b)):
            for index in range(1, launched[name] + 1):
                scheduler.wait_for_state(f"{name}{index}", "TASK_RUNNING")
        final = dict(launched)  # before teardown frees B's share for A
    assert final == {"A": 3, "B": 2}


def run_example(module: str, cluster: Cluster, *args: str,
                env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module, "--master", cluster.master_address, *args],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def test_sleep_framework_example(cluster: Cluster) -> None:
    cluster.start_agent()
    cluster.start_agent()
    result = run_example("frameworks.examples.sleep_framework", cluster,
                         "--tasks", "12", "--cmd", "sleep 0.2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done: 12 finished, 0 failed" in result.stdout


def test_custom_executor_example(cluster: Cluster) -> None:
    cluster.start_agent()
    result = run_example("frameworks.examples.custom_executor_framework", cluster,
                         "--tasks", "3", "--sleep", "0.2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("TASK_FINISHED") == 3, result.stdout


def test_restarted_agent_reregisters_and_keeps_its_running_task(cluster: Cluster) -> None:
    agent_dir, agent_port = cluster.work_dir / "kept-agent", free_port()
    agent = cluster.start_agent(work_dir=agent_dir, port=agent_port, hostname="kept")
    scheduler = RecordingScheduler(on_offers=launch_once(("survivor", "sleep 600")))
    with running(cluster, scheduler, "aware", capabilities=[PARTITION_AWARE]) as driver:
        scheduler.wait_for_state("survivor", "TASK_RUNNING")
        pids = running_sleeps(agent_dir, 1)
        agent.kill9()
        scheduler.wait_for_state("survivor", "TASK_UNREACHABLE")
        assert sleep_pids(agent_dir) == pids  # the task outlives its agent

        cluster.start_agent(work_dir=agent_dir, port=agent_port, hostname="kept")
        wait_for(lambda: [s.state for s in scheduler.updates
                          if s.task_id.value == "survivor"][-1] == mesos_pb2.TASK_RUNNING,
                 "the task to be reported running again")
        driver.reconcile_tasks(["survivor"])
        wait_for(lambda: any(u.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION
                             and u.state == mesos_pb2.TASK_RUNNING
                             for u in scheduler.updates if u.task_id.value == "survivor"),
                 "reconciliation to report the task running")
        assert sleep_pids(agent_dir) == pids  # same process: re-attached, not restarted
        driver.kill_task("survivor")
        scheduler.wait_for_state("survivor", "TASK_KILLED")


def running_sleeps(work_dir: Path, count: int) -> set[int]:
    """The pids of `count` `sleep` processes in sandboxes under `work_dir`, once that many run
    (TASK_RUNNING comes once a container started: its wrappers may still be exec'ing)."""
    def all_running() -> set[int] | None:
        pids = sleep_pids(work_dir)
        return pids if len(pids) == count else None

    return wait_for(all_running, f"{count} sleep processes to run")


def sleep_pids(work_dir: Path) -> set[int]:
    """Pids of `sleep` processes running inside sandboxes under `work_dir`."""
    found = set()
    for process in psutil.process_iter(["cwd", "cmdline"]):
        try:
            if (process.info["cwd"] or "").startswith(str(work_dir)) and (
                process.info["cmdline"] or [""])[0] == "sleep":
                found.add(process.pid)
        except psutil.Error:
            continue
    return found
