"""Read-only views of the agent's tasks and custom executors, as its HTTP endpoints show them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mesos_values.addresses import HostPort
from protos import mesos_pb2

__all__ = ["AgentSnapshot", "ExecutorView", "TaskView", "Viewer"]

Viewer = Callable[[str, str | None], bool]
"""`can_view(action, target)`: whether the request's principal may see it (ACLs, ADR 0013)."""


@dataclass(frozen=True, slots=True)
class TaskView:
    """One task as the agent's HTTP endpoints show it."""

    task: mesos_pb2.Task  # with its latest status
    executor_id: str
    custom_executor: bool
    sandbox: Path | None  # its container's sandbox (a custom executor's), once launched
    user: str = ""  # the user the task names (`mesos_values.users.own_user`); "" if none


@dataclass(frozen=True, slots=True)
class ExecutorView:
    """One custom executor as the agent's HTTP endpoints show it."""

    framework_id: str
    info: mesos_pb2.ExecutorInfo
    container_id: str
    sandbox: Path | None
    subscribed: bool


@dataclass(frozen=True, slots=True)
class AgentSnapshot:
    """A read-only snapshot of the agent for its HTTP endpoints."""

    info: mesos_pb2.AgentInfo
    master: HostPort | None  # the master it follows, when one is detected
    registered: bool
    frameworks: Mapping[str, mesos_pb2.FrameworkInfo]
    tasks: tuple[TaskView, ...]
    executors: tuple[ExecutorView, ...]
    terminal_tasks: Mapping[mesos_pb2.TaskState.ValueType, int]  # counted since the start
    sandboxes_root: Path  # every sandbox is below it (see mesos_agent.paths)
    # Forgotten tasks and ended executors kept for their sandboxes (see mesos_agent.completed).
    completed_tasks: tuple[TaskView, ...] = ()
    completed_executors: tuple[ExecutorView, ...] = ()
    completed_frameworks: Mapping[str, mesos_pb2.FrameworkInfo] = field(default_factory=dict)
    # Passive streams to standby masters (ADR 0018): open, and holding the current snapshot.
    standby_masters: int = 0
    standby_masters_current: int = 0
