"""A task's command: empty only when an image gives one (`validate_task`)."""

from __future__ import annotations

import pytest

from mesos_master.validation import validate_task
from mesos_values.resources import Resources
from protos import mesos_pb2


def problem(task: mesos_pb2.TaskInfo) -> str | None:
    task.task_id.value = "t"
    task.resources.extend(Resources.parse("cpus:0.1;mem:32").to_proto())
    return validate_task(task, framework_id="fw", agent_id="a", task_id_in_use=False,
                         remaining=Resources.parse("cpus:1;mem:128"), running_executor=None)[0]


def test_an_empty_command_needs_an_image() -> None:
    assert problem(mesos_pb2.TaskInfo(command=mesos_pb2.CommandInfo())) == (
        "task 't' has an empty command (and no image)")
    mesos_image = mesos_pb2.TaskInfo(command=mesos_pb2.CommandInfo(shell=False))
    mesos_image.container.mesos.image.docker.name = "busybox"
    assert problem(mesos_image) is None
    docker = mesos_pb2.TaskInfo(command=mesos_pb2.CommandInfo(arguments=["-p", "80"]))
    docker.container.docker.image = "nginx"
    assert problem(docker) is None


@pytest.mark.parametrize(("check", "why"), [
    (mesos_pb2.HealthCheck(type=mesos_pb2.HealthCheck.COMMAND), "needs a command"),
    (mesos_pb2.HealthCheck(type=mesos_pb2.HealthCheck.HTTP), "an HTTP health check needs a port"),
    (mesos_pb2.HealthCheck(type=mesos_pb2.HealthCheck.TCP), "a TCP health check needs a port"),
    (mesos_pb2.HealthCheck(), "needs a type"),
    (mesos_pb2.HealthCheck(type=mesos_pb2.HealthCheck.TCP, tcp={"port": 80},
                           interval_seconds=0), "interval_seconds must be a finite number"),
    (mesos_pb2.HealthCheck(type=mesos_pb2.HealthCheck.TCP, tcp={"port": 80},
                           delay_seconds=-1), "delay_seconds must be a finite number >= 0"),
    (mesos_pb2.HealthCheck(type=mesos_pb2.HealthCheck.TCP, tcp={"port": 80},
                           timeout_seconds=float("inf")), "timeout_seconds must be a finite"),
])
def test_a_health_check_the_agent_cannot_run_is_refused(
        check: mesos_pb2.HealthCheck, why: str) -> None:
    task = mesos_pb2.TaskInfo(command=mesos_pb2.CommandInfo(value="true"), health_check=check)
    found = problem(task)
    assert found is not None and why in found, found


def test_a_health_check_with_mesos_defaults_is_accepted() -> None:
    check = mesos_pb2.HealthCheck(type=mesos_pb2.HealthCheck.COMMAND,
                                  command=mesos_pb2.CommandInfo(value="true"), delay_seconds=0)
    assert problem(mesos_pb2.TaskInfo(command=mesos_pb2.CommandInfo(value="true"),
                                      health_check=check)) is None
