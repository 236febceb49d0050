"""Crash-safe checkpoints of the agent's state under `<work_dir>/meta` (layout in `paths`).

Writes go through a `GroupCommitter` (see `mesos_agent.group_commit` for the exact durability
guarantee): each method queues its file operation and returns the ticket of the batch that
makes it durable. Each checkpoint file is replaced atomically, so a crash leaves either the old
or the new version; a task's log is append-only. Protobufs are stored as protobuf JSON.

A command task costs one checkpoint file and one log: `task.json` (its TaskInfo, written once
when the task arrives, durable before its process is forked) and `updates.log` (its status
updates and acknowledgements, and the container record appended with TASK_RUNNING after the
fork, so the task file is never rewritten).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from mesos_agent.containerizer import ContainerProcess
from mesos_agent.group_commit import GroupCommitter
from mesos_agent.paths import AgentPaths
from mesos_agent.status_updates import (
    AckRecord,
    ContainerRecord,
    LogRecord,
    container_from_json,
    container_to_json,
    encode_record,
    read_log,
)
from protos import mesos_pb2

M = TypeVar("M", bound=Message)


def _to_json(message: Message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _from_json(data: Any, message: M) -> M:
    return json_format.ParseDict(data, message)


def _optional_container(data: Any) -> ContainerProcess | None:
    return None if data is None else container_from_json(data)


@dataclass(slots=True)
class TaskCheckpoint:
    """A task as checkpointed: its info, its executor and (command tasks) its container."""

    framework_id: str
    task: mesos_pb2.TaskInfo
    executor_id: str
    container: ContainerProcess | None = None
    updates: list[LogRecord] = field(default_factory=list)


@dataclass(slots=True)
class ExecutorCheckpoint:
    """A custom executor and its container."""

    framework_id: str
    executor: mesos_pb2.ExecutorInfo
    container: ContainerProcess | None = None


@dataclass(slots=True)
class RecoveredState:
    """Everything found under `meta/` at start-up."""

    agent_info: mesos_pb2.AgentInfo | None = None
    frameworks: dict[str, mesos_pb2.FrameworkInfo] = field(default_factory=dict)
    executors: list[ExecutorCheckpoint] = field(default_factory=list)
    tasks: list[TaskCheckpoint] = field(default_factory=list)


class Checkpointer:
    """Reads the agent's checkpoint files, and queues their writes in a `GroupCommitter`."""

    def __init__(self, paths: AgentPaths, committer: GroupCommitter) -> None:
        self.paths = paths
        self._committer = committer

    def save_agent(self, agent_info: mesos_pb2.AgentInfo) -> int:
        return self._write(self.paths.agent_file, {"agent_info": _to_json(agent_info)})

    def save_framework(self, framework_info: mesos_pb2.FrameworkInfo) -> int:
        return self._write(
            self.paths.framework_file(framework_info.id.value),
            {"framework_info": _to_json(framework_info)},
        )

    def remove_framework(self, framework_id: str) -> int:
        return self._committer.remove(self.paths.framework_dir(framework_id))

    def save_executor(self, checkpoint: ExecutorCheckpoint) -> int:
        executor_id = checkpoint.executor.executor_id.value
        container = checkpoint.container
        return self._write(
            self.paths.executor_file(checkpoint.framework_id, executor_id),
            {
                "executor_info": _to_json(checkpoint.executor),
                "container": None if container is None else container_to_json(container),
            },
        )

    def remove_executor(self, framework_id: str, executor_id: str) -> int:
        return self._committer.remove(self.paths.executor_file(framework_id, executor_id))

    def save_task(self, framework_id: str, task: mesos_pb2.TaskInfo, executor_id: str) -> int:
        """The task as it arrived; its container goes to its log (`append`) once launched."""
        return self._write(
            self.paths.task_file(framework_id, task.task_id.value),
            {"task_info": _to_json(task), "executor_id": executor_id},
        )

    def append(self, framework_id: str, task_id: str, record: LogRecord) -> int:
        """Append to the task's log; acknowledgements are not fsynced (see group_commit)."""
        return self._committer.append(
            self.paths.updates_file(framework_id, task_id),
            encode_record(record),
            sync=not isinstance(record, AckRecord),
        )

    def remove_task(self, framework_id: str, task_id: str) -> int:
        return self._committer.remove(self.paths.task_dir(framework_id, task_id))

    def clear(self) -> int:
        """Forget everything (the master refused this agent's id)."""
        return self._committer.remove(self.paths.meta_dir)

    def load(self) -> RecoveredState:
        """Read everything checkpointed; raises ValueError when a file is corrupt."""
        state = RecoveredState()
        agent = self._read(self.paths.agent_file)
        if agent is None:
            return state
        state.agent_info = _from_json(agent["agent_info"], mesos_pb2.AgentInfo())
        if not self.paths.frameworks_dir.is_dir():
            return state
        for framework_dir in sorted(self.paths.frameworks_dir.iterdir()):
            framework = self._read(framework_dir / "framework.json")
            if framework is None:
                continue
            info = _from_json(framework["framework_info"], mesos_pb2.FrameworkInfo())
            framework_id = info.id.value
            state.frameworks[framework_id] = info
            executors_dir = self.paths.executors_dir(framework_id)
            for executor_file in sorted(executors_dir.glob("*.json")):
                data = self._read(executor_file)
                if data is not None:
                    state.executors.append(
                        ExecutorCheckpoint(
                            framework_id,
                            _from_json(data["executor_info"], mesos_pb2.ExecutorInfo()),
                            _optional_container(data["container"]),
                        )
                    )
            tasks_dir = self.paths.tasks_dir(framework_id)
            for task_dir in sorted(tasks_dir.iterdir()) if tasks_dir.is_dir() else []:
                data = self._read(task_dir / "task.json")
                if data is None:
                    continue
                task = _from_json(data["task_info"], mesos_pb2.TaskInfo())
                records = read_log(self.paths.updates_file(framework_id, task.task_id.value))
                # Older agents stored the container in task.json; now the log records it.
                container = _optional_container(data.get("container"))
                for record in records:
                    if isinstance(record, ContainerRecord):
                        container = record.container
                state.tasks.append(
                    TaskCheckpoint(framework_id, task, data["executor_id"], container, records)
                )
        return state

    def _write(self, path: Path, data: Any) -> int:
        return self._committer.replace(path, json.dumps(data, indent=1, sort_keys=True).encode())

    def _read(self, path: Path) -> Any:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise ValueError(f"corrupt checkpoint {path}: {exc}") from exc
