"""Crash-safe checkpoints of the agent's state under `<work_dir>/meta` (layout in `paths`).

Each file is replaced atomically (write a temp file, fsync, rename, fsync the directory), so a
crash leaves either the old or the new version. Protobufs are stored as protobuf JSON.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from mesos_agent.containerizer import ContainerProcess
from mesos_agent.paths import AgentPaths
from mesos_agent.status_updates import LogRecord, StatusUpdateLog
from protos import mesos_pb2

M = TypeVar("M", bound=Message)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or the new content."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _to_json(message: Message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _from_json(data: Any, message: M) -> M:
    return json_format.ParseDict(data, message)


def _container_to_json(process: ContainerProcess | None) -> Any:
    if process is None:
        return None
    return {
        "container_id": process.container_id,
        "pid": process.pid,
        "start_time": process.start_time,
        "sandbox": str(process.sandbox),
    }


def _container_from_json(data: Any) -> ContainerProcess | None:
    if data is None:
        return None
    return ContainerProcess(
        data["container_id"], int(data["pid"]), float(data["start_time"]), Path(data["sandbox"])
    )


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
    """Reads and writes the agent's checkpoint files."""

    def __init__(self, paths: AgentPaths) -> None:
        self.paths = paths

    def save_agent(self, agent_info: mesos_pb2.AgentInfo) -> None:
        self._write(self.paths.agent_file, {"agent_info": _to_json(agent_info)})

    def save_framework(self, framework_info: mesos_pb2.FrameworkInfo) -> None:
        self._write(
            self.paths.framework_file(framework_info.id.value),
            {"framework_info": _to_json(framework_info)},
        )

    def remove_framework(self, framework_id: str) -> None:
        shutil.rmtree(self.paths.framework_dir(framework_id), ignore_errors=True)

    def save_executor(self, checkpoint: ExecutorCheckpoint) -> None:
        executor_id = checkpoint.executor.executor_id.value
        self._write(
            self.paths.executor_file(checkpoint.framework_id, executor_id),
            {
                "executor_info": _to_json(checkpoint.executor),
                "container": _container_to_json(checkpoint.container),
            },
        )

    def remove_executor(self, framework_id: str, executor_id: str) -> None:
        self.paths.executor_file(framework_id, executor_id).unlink(missing_ok=True)

    def save_task(self, checkpoint: TaskCheckpoint) -> None:
        self._write(
            self.paths.task_file(checkpoint.framework_id, checkpoint.task.task_id.value),
            {
                "task_info": _to_json(checkpoint.task),
                "executor_id": checkpoint.executor_id,
                "container": _container_to_json(checkpoint.container),
            },
        )

    def remove_task(self, framework_id: str, task_id: str) -> None:
        shutil.rmtree(self.paths.task_dir(framework_id, task_id), ignore_errors=True)

    def update_log(self, framework_id: str, task_id: str) -> StatusUpdateLog:
        return StatusUpdateLog(self.paths.updates_file(framework_id, task_id))

    def clear(self) -> None:
        """Forget everything (the master refused this agent's id)."""
        shutil.rmtree(self.paths.meta_dir, ignore_errors=True)

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
                            _container_from_json(data["container"]),
                        )
                    )
            tasks_dir = self.paths.tasks_dir(framework_id)
            for task_dir in sorted(tasks_dir.iterdir()) if tasks_dir.is_dir() else []:
                data = self._read(task_dir / "task.json")
                if data is None:
                    continue
                task = _from_json(data["task_info"], mesos_pb2.TaskInfo())
                state.tasks.append(
                    TaskCheckpoint(
                        framework_id,
                        task,
                        data["executor_id"],
                        _container_from_json(data["container"]),
                        self.update_log(framework_id, task.task_id.value).read(),
                    )
                )
        return state

    def _write(self, path: Path, data: Any) -> None:
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True).encode())

    def _read(self, path: Path) -> Any:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        except json.JSONDecodeError as exc:
            raise ValueError(f"corrupt checkpoint {path}: {exc}") from exc
