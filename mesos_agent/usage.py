"""Per-container resource usage as the agent's endpoints show it (pure: no I/O).

    AgentSnapshot + the containerizer's containers --monitored_containers--> MonitoredContainer
    MonitoredContainer + ResourceStatistics --> /monitor/statistics entry (`monitor_json`),
                                                /containers entry (`container_json`),
                                                Prometheus samples (`usage_samples`)

A monitored container is a live executor's: a custom executor's, or the built-in executor of a
command task, which Mesos names after the task (its `executor_id` and `source` are the task's
id). Only what the request's principal may see in `/state` is monitored for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mesos_agent.containers import ContainerProcess
from mesos_agent.views import AgentSnapshot, TaskView, Viewer
from mesos_values.task_states import TERMINAL_STATES
from mesos_values.users import executor_user
from protos import mesos_pb2

__all__ = [
    "USAGE_METRICS",
    "MonitoredContainer",
    "UsageMetric",
    "command_executor_name",
    "container_json",
    "monitor_json",
    "monitored_containers",
    "statistics_json",
    "usage_samples",
]


@dataclass(frozen=True, slots=True)
class MonitoredContainer:
    """A live executor's container, with what the endpoints say of its executor."""

    container_id: str
    framework_id: str
    executor_id: str
    executor_name: str
    source: str
    task_id: str
    """The command task the container runs; "" for a custom executor's."""
    pid: int
    """Its root process."""


def command_executor_name(task: TaskView) -> str:
    """The name Mesos gives a command task's built-in executor."""
    return f"Command Executor (Task: {task.task.name or task.executor_id})"


def monitored_containers(
    view: AgentSnapshot,
    containers: Iterable[ContainerProcess],
    can_view: Viewer = lambda action, target: True,
) -> list[MonitoredContainer]:
    """The containers of live executors that `can_view` allows, as `/state` shows them: a
    command task's by `view_frameworks` of its framework's user and `view_executors` and
    `view_tasks` of the user it runs as, a custom executor's by `view_frameworks` and
    `view_executors`. Containers the containerizer does not know (any more) are left out."""
    by_sandbox: dict[Path, ContainerProcess] = {c.sandbox: c for c in containers}
    by_id = {c.container_id: c for c in by_sandbox.values()}

    def framework_user(framework_id: str) -> str:
        framework = view.frameworks.get(framework_id)
        return framework.user if framework is not None else ""

    def visible(framework_id: str, user: str, *actions: str) -> bool:
        return can_view("view_frameworks", framework_user(framework_id)) and all(
            can_view(action, user) for action in actions)

    monitored: list[MonitoredContainer] = []
    for task in view.tasks:
        if task.custom_executor or task.sandbox is None or task.task.state in TERMINAL_STATES:
            continue
        process = by_sandbox.get(task.sandbox)
        framework_id = task.task.framework_id.value
        user = task.user or framework_user(framework_id)
        if process is None or not visible(framework_id, user, "view_executors", "view_tasks"):
            continue
        monitored.append(MonitoredContainer(
            container_id=process.container_id, framework_id=framework_id,
            executor_id=task.executor_id, executor_name=command_executor_name(task),
            source=task.executor_id, task_id=task.task.task_id.value, pid=process.pid,
        ))
    for executor in view.executors:
        process = by_id.get(executor.container_id)
        user = executor_user(executor.info, view.frameworks.get(executor.framework_id))
        if process is None or not visible(executor.framework_id, user, "view_executors"):
            continue
        executor_id = executor.info.executor_id.value
        monitored.append(MonitoredContainer(
            container_id=process.container_id, framework_id=executor.framework_id,
            executor_id=executor_id, executor_name=executor.info.name, source=executor_id,
            task_id="", pid=process.pid,
        ))
    return monitored


def statistics_json(statistics: mesos_pb2.ResourceStatistics) -> dict[str, Any]:
    """Mesos' JSON of `ResourceStatistics`: `timestamp` and the fields that are known."""
    model: dict[str, Any] = {"timestamp": statistics.timestamp}
    for field, value in statistics.ListFields():
        model[field.name] = value
    return model


def monitor_json(container: MonitoredContainer,
                 statistics: mesos_pb2.ResourceStatistics) -> dict[str, Any]:
    """One entry of `/monitor/statistics`."""
    return {
        "framework_id": container.framework_id,
        "executor_id": container.executor_id,
        "executor_name": container.executor_name,
        "source": container.source,
        "statistics": statistics_json(statistics),
    }


def container_json(container: MonitoredContainer,
                   statistics: mesos_pb2.ResourceStatistics | None) -> dict[str, Any]:
    """One entry of `/containers`: the container's executor, its status (Mesos'
    `ContainerStatus`: its id and root pid) and, when it could be measured, its usage."""
    model = {
        "framework_id": container.framework_id,
        "executor_id": container.executor_id,
        "executor_name": container.executor_name,
        "source": container.source,
        "container_id": container.container_id,
        "status": {"container_id": {"value": container.container_id},
                   "executor_pid": container.pid},
    }
    if statistics is not None:
        model["statistics"] = statistics_json(statistics)
    return model


@dataclass(frozen=True, slots=True)
class UsageMetric:
    """A Prometheus family of one `ResourceStatistics` field."""

    field: str
    name: str
    kind: str
    help: str


USAGE_METRICS: tuple[UsageMetric, ...] = (
    UsageMetric("cpus_user_time_secs", "mesos_container_cpu_user_seconds_total", "counter",
                 "CPU time the container spent in user mode."),
    UsageMetric("cpus_system_time_secs", "mesos_container_cpu_system_seconds_total",
                 "counter", "CPU time the container spent in kernel mode."),
    UsageMetric("cpus_limit", "mesos_container_cpus_limit", "gauge",
                 "The cpus the container is allocated."),
    UsageMetric("cpus_nr_periods", "mesos_container_cpu_periods_total", "counter",
                 "CFS enforcement periods that have elapsed."),
    UsageMetric("cpus_nr_throttled", "mesos_container_cpu_throttled_periods_total", "counter",
                 "CFS periods in which the container was throttled."),
    UsageMetric("cpus_throttled_time_secs", "mesos_container_cpu_throttled_seconds_total",
                 "counter", "Time the container was throttled for."),
    UsageMetric("mem_rss_bytes", "mesos_container_memory_rss_bytes", "gauge",
                 "Resident (anonymous) memory of the container."),
    UsageMetric("mem_cache_bytes", "mesos_container_memory_cache_bytes", "gauge",
                 "Page cache charged to the container."),
    UsageMetric("mem_total_bytes", "mesos_container_memory_usage_bytes", "gauge",
                 "All memory charged to the container (cgroups)."),
    UsageMetric("mem_limit_bytes", "mesos_container_memory_limit_bytes", "gauge",
                 "The memory the container is allowed."),
    UsageMetric("mem_max_usage_bytes", "mesos_container_memory_max_usage_bytes", "gauge",
                 "The most memory charged to the container at once."),
    UsageMetric("processes", "mesos_container_processes", "gauge",
                 "Processes in the container."),
    UsageMetric("threads", "mesos_container_threads", "gauge", "Threads in the container."),
    UsageMetric("disk_used_bytes", "mesos_container_disk_used_bytes", "gauge",
                 "Disk used by the container's sandbox."),
    UsageMetric("disk_limit_bytes", "mesos_container_disk_limit_bytes", "gauge",
                 "The disk the container is allowed."),
)
"""The Prometheus family of each `ResourceStatistics` field (Prometheus' naming: seconds and
bytes, `_total` for counters)."""


def usage_samples(
    measured: Iterable[tuple[MonitoredContainer, mesos_pb2.ResourceStatistics]],
) -> list[tuple[UsageMetric, list[tuple[Mapping[str, str], float]]]]:
    """The containers' usage as Prometheus samples, per metric of `USAGE_METRICS`: each
    labelled with `framework_id`, `executor_id`, `task_id` ("" for a custom executor) and
    `container_id`. A field a container's isolators do not measure has no sample."""
    known: list[tuple[Mapping[str, str], dict[str, Any]]] = [
        ({"framework_id": c.framework_id, "executor_id": c.executor_id, "task_id": c.task_id,
          "container_id": c.container_id}, statistics_json(statistics))
        for c, statistics in measured
    ]
    return [
        (metric, [(labels, fields[metric.field]) for labels, fields in known
                  if metric.field in fields])
        for metric in USAGE_METRICS
    ]
