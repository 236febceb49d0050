"""What an agent finds of itself at start-up: its checkpointed tasks, executors and
frameworks, and what a non-strict recovery had to set aside. Plain values: `Checkpointer`
reads them from disk, the task book and the executor supervisor take them up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mesos_agent.containers import ContainerProcess
from mesos_agent.status_updates import LogRecord
from protos import mesos_pb2

__all__ = ["ExecutorCheckpoint", "RecoveredState", "SkippedCheckpoint", "TaskCheckpoint"]


@dataclass(frozen=True, slots=True)
class SkippedCheckpoint:
    """Something a non-strict recovery could not use, and where it was set aside."""

    path: Path
    problem: str
    consequence: str
    set_aside_at: Path | None  # None: nothing of it was left to set aside


@dataclass(slots=True)
class TaskCheckpoint:
    """A task as checkpointed: its info, its executor and (command tasks) its container."""

    framework_id: str
    task: mesos_pb2.TaskInfo
    executor_id: str
    container: ContainerProcess | None = None
    updates: list[LogRecord] = field(default_factory=list)
    updates_lost: bool = False  # its log was corrupt and cut (non-strict recovery)


@dataclass(slots=True)
class ExecutorCheckpoint:
    """A custom executor, its container and its token ("" when checkpointed by an agent
    version that gave executors none)."""

    framework_id: str
    executor: mesos_pb2.ExecutorInfo
    container: ContainerProcess | None = None
    token: str = ""


@dataclass(slots=True)
class RecoveredState:
    """Everything found under `meta/` at start-up."""

    agent_info: mesos_pb2.AgentInfo | None = None
    frameworks: dict[str, mesos_pb2.FrameworkInfo] = field(default_factory=dict)
    executors: list[ExecutorCheckpoint] = field(default_factory=list)
    tasks: list[TaskCheckpoint] = field(default_factory=list)
    skipped: list[SkippedCheckpoint] = field(default_factory=list)
