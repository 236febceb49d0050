"""A command task's container config: its sandbox and resources (pure: no files)."""

from __future__ import annotations

from pathlib import Path

from mesos_agent.container_configs import ContainerConfigs
from mesos_agent.paths import AgentPaths
from mesos_agent.task_book import Task
from mesos_values.resources import Resources
from protos import mesos_pb2


def task(task_id: str, resources: str, framework_id: str = "fw-1") -> Task:
    info = mesos_pb2.TaskInfo(name=task_id, task_id=mesos_pb2.TaskID(value=task_id),
                              command=mesos_pb2.CommandInfo(value="sleep 10"))
    info.resources.extend(Resources.parse(resources).to_proto())
    return Task(framework_id, info, task_id, custom_executor=False)


def configs(work_dir: Path) -> ContainerConfigs:
    agent_info = mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value="agent-1"))
    return ContainerConfigs(agent_info, AgentPaths(work_dir), base_environment={},
                            hostname="h", recovery_timeout=60.0)


def test_each_task_gets_its_own_resources_and_sandbox(tmp_path: Path) -> None:
    made = configs(tmp_path)
    tasks = [task("a", "cpus:0.1;mem:32"), task("b", "cpus:0.1;mem:32"),
             task("c", "cpus:0.2;mem:32"), task("d", "cpus:0.1;mem:32;ports:[31000-31001]"),
             task("e", "cpus:0.1;mem:32", framework_id="fw/2")]
    for _ in range(2):  # the second time, the resources are ones seen before
        for each in tasks:
            config = made.for_task(each)
            assert config.resources == Resources.from_proto(each.info.resources)
            relative = config.sandbox.relative_to(tmp_path)
            assert relative.parts[:-1] == (
                "slaves", "agent-1", "frameworks", each.framework_id.replace("/", "%2F"),
                "executors", each.id, "runs")
            assert relative.parts[-1] == config.container_id
    assert made.for_task(tasks[3]).environment["PORTS"] == "31000,31001"
