"""Crash-safe checkpoints of the agent's state under `<work_dir>/meta` (layout in `paths`).

Writes go through a `GroupCommitter` (see `mesos_agent.group_commit` for the exact durability
guarantee): each method queues its file operation and returns the ticket of the batch that
makes it durable. Each checkpoint file is replaced atomically, so a crash leaves either the old
or the new version; a task's log is append-only. Protobufs are stored as protobuf JSON.

A command task costs one checkpoint file and one log: `task.json` (its TaskInfo, written once
when the task arrives, durable before its process is forked) and `updates.log` (its status
updates and acknowledgements, and the container record appended with TASK_RUNNING after the
fork, so the task file is never rewritten).

Recovery (`load`) and `--strict`. A torn last line of a log is the normal trace of a crash and
is always dropped. Anything else that cannot be read or decoded is corruption:

* strict (the default): `load` raises `CorruptCheckpoint` naming the file, and the agent refuses
  to start until the operator fixes or removes the meta directory, or restarts non-strict.
* non-strict: `load` recovers what it can. What it skips is set aside under
  `<work_dir>/meta.corrupt/<time>/`, at its path relative to `meta/`, and listed in `skipped`:

  ================  ==========================================================================
  agent.json        The whole meta directory is set aside and the agent registers as a new
                    agent. The old agent's task processes are killed as orphans (see
                    `mesos_agent.orphans`); the master reports those tasks once it declares the
                    old agent unreachable.
  framework.json    Copied aside and replaced by the framework's id alone (its info is lost
                    until the framework launches another task here); its tasks are recovered.
  executor file     The executor and all its tasks are not recovered (as for task.json; a
                    terminal update not yet acknowledged is lost with them).
  task.json         The task is not recovered: its directory is set aside, its process is
                    killed as an orphan, and the agent's re-registration leaves it out, so the
                    master reports it TASK_LOST (TASK_GONE to partition-aware frameworks) with
                    REASON_AGENT_RESTARTED.
  updates.log       Copied aside, then cut at its first corrupt line; the task is recovered from
                    what precedes it (unacknowledged updates in it are resent). If that lost the
                    container record, the process is killed as an orphan and the task reported
                    TASK_FAILED.
  ================  ==========================================================================

A dropped task is reported by the master, not the agent: the agent cannot keep a status update
stream for a task whose checkpoint it cannot trust, and the master already answers for tasks a
re-registering agent does not know (a master that does not know the task either answers for it
when the framework reconciles). Strict or not, recovery kills every process left in a sandbox
that no live recovered container owns (`mesos_agent.orphans`), so nothing dropped keeps running.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from mesos_agent.containerizer import ContainerProcess
from mesos_agent.group_commit import GroupCommitter
from mesos_agent.paths import AgentPaths, from_path_component
from mesos_agent.status_updates import (
    AckRecord,
    ContainerRecord,
    LogRecord,
    container_from_json,
    container_to_json,
    encode_record,
    parse_log,
    read_log,
)
from protos import mesos_pb2

M = TypeVar("M", bound=Message)
T = TypeVar("T")

# What reading or decoding a damaged checkpoint file may raise.
_DECODE_ERRORS = (
    OSError, ValueError, KeyError, TypeError, AttributeError, json_format.ParseError, DecodeError
)


def _to_json(message: Message) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _from_json(data: Any, message: M) -> M:
    return json_format.ParseDict(data, message)


def _optional_container(data: Any) -> ContainerProcess | None:
    return None if data is None else container_from_json(data)


class CorruptCheckpoint(ValueError):
    """A checkpoint file that cannot be read or decoded."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"corrupt checkpoint {path}: {detail}")
        self.path = path
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SkippedCheckpoint:
    """Something a non-strict recovery could not use, and where it was set aside."""

    path: Path
    problem: str
    consequence: str
    set_aside_at: Path


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
    skipped: list[SkippedCheckpoint] = field(default_factory=list)


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

    def load(self, *, strict: bool = True) -> RecoveredState:
        """Read everything checkpointed (see the module docstring for `strict`).

        Raises CorruptCheckpoint when `strict` and a file cannot be read or decoded.
        """
        return _Loader(self, strict).load()

    def _write(self, path: Path, data: Any) -> int:
        # Compact: with `indent`, json falls back from its C encoder to pure Python (about a
        # millisecond of agent CPU per task.json).
        return self._committer.replace(path, json.dumps(data, separators=(",", ":")).encode())


def _describe(exc: BaseException) -> str:
    lines = str(exc).splitlines()
    text = lines[0] if lines else ""
    return f"{type(exc).__name__}: {text}" if isinstance(exc, KeyError) or not text else text


def _read_checkpoint(path: Path, decode: Callable[[Any], T]) -> T | None:
    """Decode one checkpoint file; None when it does not exist."""
    try:
        return decode(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except _DECODE_ERRORS as exc:
        raise CorruptCheckpoint(path, _describe(exc)) from exc


def _agent_info(data: Any) -> mesos_pb2.AgentInfo:
    return _from_json(data["agent_info"], mesos_pb2.AgentInfo())


def _framework_info(data: Any) -> mesos_pb2.FrameworkInfo:
    return _from_json(data["framework_info"], mesos_pb2.FrameworkInfo())


def _task_file(
    data: Any,
) -> tuple[mesos_pb2.TaskInfo, str, ContainerProcess | None]:
    # Older agents stored the container in task.json; now the log records it.
    return (
        _from_json(data["task_info"], mesos_pb2.TaskInfo()),
        str(data["executor_id"]),
        _optional_container(data.get("container")),
    )


def _valid_prefix(data: bytes) -> tuple[list[LogRecord], int]:
    """The records of a log's complete lines up to the first corrupt one, and their length."""
    records: list[LogRecord] = []
    valid = 0
    while (end := data.find(b"\n", valid)) != -1:
        try:
            line_records, _ = parse_log(data[valid : end + 1])
        except _DECODE_ERRORS:
            break
        records += line_records
        valid = end + 1
    return records, valid


class _Loader:
    """One pass over `meta/`; non-strict, it sets aside what it cannot use (module docstring)."""

    def __init__(self, checkpointer: Checkpointer, strict: bool) -> None:
        self._checkpointer = checkpointer
        self._paths = checkpointer.paths
        self._strict = strict
        self._state = RecoveredState()
        self._aside_root: Path | None = None

    def load(self) -> RecoveredState:
        paths = self._paths
        try:
            self._state.agent_info = _read_checkpoint(paths.agent_file, _agent_info)
        except CorruptCheckpoint as corrupt:
            self._skip(corrupt, "the agent starts afresh and registers as a new agent; the "
                       "old agent's tasks are killed", paths.meta_dir)
            return self._state
        if self._state.agent_info is not None and paths.frameworks_dir.is_dir():
            for framework_dir in sorted(paths.frameworks_dir.iterdir()):
                if framework_dir.is_dir():
                    self._load_framework(from_path_component(framework_dir.name))
        return self._state

    def _load_framework(self, framework_id: str) -> None:
        paths = self._paths
        framework_file = paths.framework_file(framework_id)
        try:
            info = _read_checkpoint(framework_file, _framework_info)
        except CorruptCheckpoint as corrupt:
            self._skip(corrupt, "its tasks are recovered; the framework's info is replaced by "
                       "its id", framework_file, copy=True)
            info = mesos_pb2.FrameworkInfo(id=mesos_pb2.FrameworkID(value=framework_id))
            self._checkpointer.save_framework(info)
        if info is None:
            return  # removed after its last task (a removal may be torn by a crash)
        self._state.frameworks[framework_id] = info
        lost_executors: dict[str, Path] = {}
        for executor_file in sorted(paths.executors_dir(framework_id).glob("*.json")):
            try:
                executor = _read_checkpoint(
                    executor_file,
                    lambda data: ExecutorCheckpoint(
                        framework_id,
                        _from_json(data["executor_info"], mesos_pb2.ExecutorInfo()),
                        _optional_container(data["container"]),
                    ),
                )
            except CorruptCheckpoint as corrupt:
                executor_id = from_path_component(executor_file.name.removesuffix(".json"))
                self._skip(corrupt, f"executor {executor_id!r} and its tasks are dropped; "
                           "their processes are killed", executor_file)
                lost_executors[executor_id] = executor_file
                continue
            if executor is not None:
                self._state.executors.append(executor)
        tasks_dir = paths.tasks_dir(framework_id)
        for task_dir in sorted(tasks_dir.iterdir()) if tasks_dir.is_dir() else []:
            self._load_task(framework_id, task_dir, lost_executors)

    def _load_task(self, framework_id: str, task_dir: Path, lost_executors: dict[str, Path]
                   ) -> None:
        task_id = from_path_component(task_dir.name)
        dropped = (f"task {task_id!r} is dropped: its process is killed and the master "
                   "reports it lost")
        try:
            loaded = _read_checkpoint(task_dir / "task.json", _task_file)
        except CorruptCheckpoint as corrupt:
            self._skip(corrupt, dropped, task_dir)
            return
        if loaded is None:
            return  # removed after its terminal update was acknowledged (torn removal)
        task, executor_id, container = loaded
        if task.HasField("executor") and executor_id in lost_executors:
            executor_file = lost_executors[executor_id]
            self._skip(CorruptCheckpoint(executor_file, "corrupt executor checkpoint"), dropped,
                       task_dir)
            return
        records, updates_lost = self._read_updates(
            self._paths.updates_file(framework_id, task.task_id.value)
        )
        for record in records:
            if isinstance(record, ContainerRecord):
                container = record.container
        self._state.tasks.append(
            TaskCheckpoint(framework_id, task, executor_id, container, records, updates_lost)
        )

    def _read_updates(self, path: Path) -> tuple[list[LogRecord], bool]:
        """The log's records (a torn tail cut off); non-strict, those before a corrupt line."""
        try:
            return read_log(path), False
        except _DECODE_ERRORS as exc:
            if self._strict:
                raise CorruptCheckpoint(path, _describe(exc)) from exc
            corrupt = CorruptCheckpoint(path, _describe(exc))
        try:
            data = path.read_bytes()
        except OSError:
            self._skip(corrupt, "its status updates are lost", path)
            return [], True
        records, valid = _valid_prefix(data)
        self._skip(corrupt, f"its status updates from byte {valid} on are dropped", path,
                   copy=True)
        with path.open("r+b") as handle:
            handle.truncate(valid)
            os.fsync(handle.fileno())
        return records, True

    def _skip(self, corrupt: CorruptCheckpoint, consequence: str, aside: Path, *,
              copy: bool = False) -> None:
        """Raise `corrupt` when strict; otherwise set `aside` aside (moved, or copied)."""
        if self._strict:
            raise corrupt
        if self._aside_root is None:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            self._aside_root = self._paths.work_dir / "meta.corrupt" / stamp
        target = self._aside_root / aside.relative_to(self._paths.meta_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        if copy:
            shutil.copy2(aside, target)
        else:
            os.replace(aside, target)
        self._state.skipped.append(
            SkippedCheckpoint(corrupt.path, corrupt.detail, consequence, target)
        )
