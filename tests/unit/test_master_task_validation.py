"""A task's command: empty only when an image gives one (`validate_task`)."""

from __future__ import annotations

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
