"""Health checks the agent runs for command tasks (Mesos' `HealthCheck`), on a real cluster:
changes of health reach the framework as TASK_RUNNING updates with `healthy`, a task that
fails its check too often is killed, and a COMMAND check of an image task runs inside its
container."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from frameworks import OfferBudget, SchedulerDriver, command_task, health_check
from protos import mesos_pb2
from tests.integration.cluster import Cluster, wait_for
from tests.integration.recording import RecordingScheduler
from tests.integration.registries import Registry, build_image
from tests.integration.test_end_to_end import running

pytestmark = pytest.mark.integration

# Checks start at once; failures before the first success are ignored for 10 s (a check may
# run before the command has made what it checks, or before the container is up).
FAST = {"delay": 0, "interval": 0.2, "timeout": 5, "grace_period": 10}
Reason = mesos_pb2.TaskStatus.Reason


def launcher(tasks: list[tuple[str, str, mesos_pb2.HealthCheck, int, str | None]]
             ) -> RecordingScheduler:
    """A scheduler launching (task id, command, check, ports, image) tasks on its first
    offer."""

    def launch(driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            if not tasks:
                driver.decline_offer(offer.id, filters=60)
                continue
            budget = OfferBudget(offer)
            launched = [command_task(task_id, budget, cmd, ports=ports, image=image,
                                     health_check=check)
                        for task_id, cmd, check, ports, image in tasks]
            tasks.clear()
            driver.launch_tasks(offer.id, launched)

    return RecordingScheduler(on_offers=launch)


def health_updates(scheduler: RecordingScheduler, task_id: str) -> list[bool]:
    return [u.healthy for u in list(scheduler.updates)
            if u.task_id.value == task_id and u.HasField("healthy")
            and u.state == mesos_pb2.TASK_RUNNING]


def test_command_http_and_tcp_checks_report_health_and_kill_the_unhealthy(
        cluster: Cluster) -> None:
    cluster.start_agent()
    server = f"exec {sys.executable} -m http.server --bind 127.0.0.1 $PORT0"
    scheduler = launcher([
        # Healthy until the file it checks is removed, then killed after 2 failures.
        ("flaky", "touch ok; sleep 0.8; rm ok; exec sleep 300",
         health_check(command="test -f ok", consecutive_failures=2, **FAST), 0, None),
        ("web", server, health_check(http_port=0, **FAST), 1, None),
        ("tcp", server, health_check(tcp_port=0, **FAST), 1, None),
    ])
    # The checks' ports are the tasks' own: set once the offer's ports are known.
    original = scheduler.on_offers

    def with_ports(driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        real_launch = driver.launch_tasks

        def launch_tasks(offer_id: object, tasks: list[mesos_pb2.TaskInfo]) -> None:
            for task in tasks:
                ports = [r for r in task.resources if r.name == "ports"]
                port = ports[0].ranges.range[0].begin if ports else 0
                if task.health_check.type == mesos_pb2.HealthCheck.HTTP:
                    task.health_check.http.port = port
                elif task.health_check.type == mesos_pb2.HealthCheck.TCP:
                    task.health_check.tcp.port = port
            real_launch(offer_id, tasks)  # type: ignore[arg-type]

        driver.launch_tasks = launch_tasks  # type: ignore[method-assign]
        try:
            original(driver, offers)
        finally:
            driver.launch_tasks = real_launch  # type: ignore[method-assign]

    scheduler.on_offers = with_ports
    with running(cluster, scheduler):
        killed = scheduler.wait_for_state("flaky", "TASK_KILLED")
        wait_for(lambda: health_updates(scheduler, "web") == [True], "/web to be healthy")
        wait_for(lambda: health_updates(scheduler, "tcp") == [True], "tcp to be healthy")
    assert health_updates(scheduler, "flaky") == [True, False]
    assert killed.reason == Reason.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED
    assert killed.HasField("healthy") and not killed.healthy
    assert "failing its health check" in killed.message


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None,
                    reason="image containers need root and runc")
def test_a_command_check_of_an_image_task_runs_in_its_container(
        cluster: Cluster, tmp_path: Path) -> None:
    image = build_image(tmp_path / "layout", layers=[{"only/in/the/image": b"x"}], tag="v1")
    with Registry(tmp_path / "registry") as registry:
        registry.push(image, "team/checked")
        cluster.agent_flags += ["--image_providers=docker", f"--docker_registry={registry.url}"]
        cluster.start_agent()
        scheduler = launcher([
            ("inside", "exec sleep 300",
             health_check(command="test -f /only/in/the/image", **FAST), 0, "team/checked:v1"),
            ("outside", "exec sleep 300",
             health_check(command=f"test -d {tmp_path}", consecutive_failures=1,
                          **{**FAST, "grace_period": 1}), 0, "team/checked:v1"),
        ])
        with running(cluster, scheduler):
            wait_for(lambda: health_updates(scheduler, "inside") == [True], "inside healthy")
            killed = scheduler.wait_for_state("outside", "TASK_KILLED")
        assert not killed.healthy  # the host's directory is not in the container
