"""Crash-safe checkpoints of the agent's state under `<work_dir>/meta` (layout in `paths`).

Writes go through a `GroupCommitter` (see `mesos_agent.group_commit` for the exact durability
guarantee): each method queues its file operation and returns the ticket of the batch that
makes it durable. Each checkpoint file is replaced atomically, so a crash leaves either the old
or the new version; a task log is append-only. Agent, framework and executor files hold
protobuf JSON; the task log holds its protobufs in binary (base64).

A framework's tasks cost one log, `tasks.log` (see `mesos_agent.task_log`): a task's arrival
(durable before its process is forked), its status updates and acknowledgements, its container
record (appended with TASK_RUNNING after the fork) and its end. The log is replaced by its live
lines alone when it has grown to many times their size.

Recovery (`load`) and `--strict`. A torn last line of a log is the normal trace of a crash and
is always dropped (the log is rewritten without it). Anything else that cannot be read or
decoded is corruption:

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
  executor file     The executor and all its tasks are not recovered (their processes are
                    killed; a terminal update not yet acknowledged is lost with them).
  tasks.log line    The log is copied aside and rewritten without its corrupt lines. A task
                    whose arrival was on such a line is not recovered: its process is killed
                    as an orphan, and the agent's re-registration leaves it out, so the master
                    reports it TASK_LOST (TASK_GONE to partition-aware frameworks) with
                    REASON_AGENT_RESTARTED. The tasks a corrupt line may belong to (the one it
                    names, or all of the log's when it names none) are recovered from their
                    other lines (unacknowledged updates are resent); one of them that lost its
                    container record that way has its process killed and is reported
                    TASK_FAILED.
  tasks/ directory  Per-task checkpoints of an older agent version: set aside, and their
                    tasks are not recovered (as for a lost arrival).
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message

from mesos_agent.containers import ContainerProcess
from mesos_agent.group_commit import GroupCommitter
from mesos_agent.paths import AgentPaths, from_path_component
from mesos_agent.recovered import (
    ExecutorCheckpoint,
    RecoveredState,
    SkippedCheckpoint,
    TaskCheckpoint,
)
from mesos_agent.status_updates import (
    AckRecord,
    ContainerRecord,
    LogRecord,
    container_from_json,
    container_to_json,
)
from mesos_agent.task_log import (
    LiveTasks,
    TaskArrived,
    TaskGone,
    TaskLogRecord,
    describe_error,
    encode_line,
    parse_task_log,
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


def _optional_token(data: Any) -> str:
    if not isinstance(data, str):
        raise TypeError("the executor's token is not a string")
    return data


class CorruptCheckpoint(ValueError):
    """A checkpoint file that cannot be read or decoded."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"corrupt checkpoint {path}: {detail}")
        self.path = path
        self.detail = detail


class Checkpointer:
    """Reads the agent's checkpoint files, and queues their writes in a `GroupCommitter`."""

    def __init__(self, paths: AgentPaths, committer: GroupCommitter) -> None:
        self.paths = paths
        self._committer = committer
        self._live: dict[str, LiveTasks] = {}  # framework id -> its task log's live lines
        self._task_logs: dict[str, Path] = {}  # framework id -> its task log (~6 writes a task)

    @property
    def next_ticket(self) -> int:
        """The group-commit ticket the next write gets."""
        return self._committer.next_ticket

    def save_agent(self, agent_info: mesos_pb2.AgentInfo) -> int:
        return self._write(self.paths.agent_file, {"agent_info": _to_json(agent_info)})

    def save_framework(self, framework_info: mesos_pb2.FrameworkInfo) -> int:
        return self._write(
            self.paths.framework_file(framework_info.id.value),
            {"framework_info": _to_json(framework_info)},
        )

    def remove_framework(self, framework_id: str) -> int:
        self._live.pop(framework_id, None)
        self._task_logs.pop(framework_id, None)
        return self._committer.remove(self.paths.framework_dir(framework_id))

    def save_executor(self, checkpoint: ExecutorCheckpoint) -> int:
        executor_id = checkpoint.executor.executor_id.value
        container = checkpoint.container
        return self._write(
            self.paths.executor_file(checkpoint.framework_id, executor_id),
            {
                "executor_info": _to_json(checkpoint.executor),
                "container": None if container is None else container_to_json(container),
                "token": checkpoint.token,
            },
        )

    def remove_executor(self, framework_id: str, executor_id: str) -> int:
        return self._committer.remove(self.paths.executor_file(framework_id, executor_id))

    def save_task(self, framework_id: str, task: mesos_pb2.TaskInfo, executor_id: str) -> int:
        """The task as it arrived; its container goes to the log (`append`) once launched."""
        return self._log(framework_id, task.task_id.value, TaskArrived(task, executor_id))

    def append(self, framework_id: str, task_id: str, record: LogRecord) -> int:
        """Log a task's update, acknowledgement or container; acknowledgements are not
        fsynced (see group_commit)."""
        return self._log(framework_id, task_id, record, sync=not isinstance(record, AckRecord))

    def remove_task(self, framework_id: str, task_id: str) -> int:
        """Forget the task (not fsynced: after a crash it is only forgotten again)."""
        return self._log(framework_id, task_id, TaskGone(), sync=False)

    def _log(self, framework_id: str, task_id: str, record: TaskLogRecord, *,
             sync: bool = True) -> int:
        line = encode_line(task_id, record)
        live = self._live.get(framework_id)
        if live is None:
            live = self._live[framework_id] = LiveTasks()
        live.record(task_id, record, line)
        path = self._task_logs.get(framework_id)
        if path is None:
            path = self._task_logs[framework_id] = self.paths.task_log(framework_id)
        if live.needs_compaction():
            return self._committer.replace(path, live.compacted())
        return self._committer.append(path, line, sync=sync)

    def adopt(self, framework_id: str, live: LiveTasks, *, rewrite: bool) -> None:
        """Take over the live lines of a task log read at recovery; `rewrite` replaces the
        file by them (to drop a torn tail, corrupt lines or dropped tasks)."""
        self._live[framework_id] = live
        if rewrite:
            self._committer.replace(self.paths.task_log(framework_id), live.compacted())

    def clear(self) -> int:
        """Forget everything (the master refused this agent's id)."""
        self._live.clear()
        self._task_logs.clear()
        return self._committer.remove(self.paths.meta_dir)

    def load(self, *, strict: bool = True) -> RecoveredState:
        """Read everything checkpointed (see the module docstring for `strict`).

        Raises CorruptCheckpoint when `strict` and a file cannot be read or decoded.
        """
        return _Loader(self, strict).load()

    def _write(self, path: Path, data: Any) -> int:
        # Compact: with `indent`, json falls back from its C encoder to pure Python (about a
        # millisecond of agent CPU per file).
        return self._committer.replace(path, json.dumps(data, separators=(",", ":")).encode())


def _read_checkpoint(path: Path, decode: Callable[[Any], T]) -> T | None:
    """Decode one checkpoint file; None when it does not exist."""
    try:
        return decode(json.loads(path.read_bytes()))
    except FileNotFoundError:
        return None
    except _DECODE_ERRORS as exc:
        raise CorruptCheckpoint(path, describe_error(exc)) from exc


def _agent_info(data: Any) -> mesos_pb2.AgentInfo:
    return _from_json(data["agent_info"], mesos_pb2.AgentInfo())


def _framework_info(data: Any) -> mesos_pb2.FrameworkInfo:
    return _from_json(data["framework_info"], mesos_pb2.FrameworkInfo())


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
                        _optional_token(data.get("token", "")),
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
        legacy = paths.legacy_tasks_dir(framework_id)
        if legacy.exists():
            self._skip(CorruptCheckpoint(legacy, "per-task checkpoints of an older agent "
                                         "version, which this version does not read"),
                       "their tasks are dropped: their processes are killed and the master "
                       "reports them lost", legacy)
        self._load_tasks(framework_id, lost_executors)

    def _load_tasks(self, framework_id: str, lost_executors: dict[str, Path]) -> None:
        path = self._paths.task_log(framework_id)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._skip(CorruptCheckpoint(path, describe_error(exc)), "the framework's tasks are "
                       "dropped: their processes are killed and the master reports them lost",
                       path)
            return
        parsed = parse_task_log(data)
        suspects: set[str] | None = set()  # tasks a corrupt line may belong to (None: any)
        if parsed.corrupt:
            first = parsed.corrupt[0]
            self._skip(
                CorruptCheckpoint(path, f"line at byte {first.offset}: {first.problem}"),
                f"its {len(parsed.corrupt)} corrupt line(s) are dropped: a task whose arrival "
                "they held is dropped (its process is killed, the master reports it lost), a "
                "task they may belong to is recovered from its other lines (TASK_FAILED if "
                "that lost its container record)", path, copy=True)
            named = {line.task_id for line in parsed.corrupt}
            suspects = None if None in named else {t for t in named if t is not None}
        live = LiveTasks()
        tasks: dict[str, TaskCheckpoint] = {}
        for task_id, record, line in parsed.records:
            live.record(task_id, record, line)
            if isinstance(record, TaskArrived):
                tasks[task_id] = TaskCheckpoint(framework_id, record.task, record.executor_id)
            elif (task := tasks.get(task_id)) is None:
                continue
            elif isinstance(record, TaskGone):
                del tasks[task_id]
            elif isinstance(record, ContainerRecord):
                task.container = record.container
            else:
                task.updates.append(record)
        rewrite = bool(parsed.corrupt) or parsed.torn_tail
        for task_id, task in tasks.items():
            if task.task.HasField("executor") and task.executor_id in lost_executors:
                self._skip(CorruptCheckpoint(lost_executors[task.executor_id],
                                             "corrupt executor checkpoint"),
                           f"task {task_id!r} is dropped: its process is killed and the master "
                           "reports it lost", None)
                live.record(task_id, TaskGone(), b"")
                rewrite = True
                continue
            task.updates_lost = suspects is None or task_id in suspects
            self._state.tasks.append(task)
        live.file_bytes = len(data)
        self._checkpointer.adopt(framework_id, live, rewrite=rewrite)

    def _skip(self, corrupt: CorruptCheckpoint, consequence: str, aside: Path | None, *,
              copy: bool = False) -> None:
        """Raise `corrupt` when strict; otherwise set `aside` aside (moved, or copied)."""
        if self._strict:
            raise corrupt
        if aside is None:
            self._state.skipped.append(SkippedCheckpoint(corrupt.path, corrupt.detail,
                                                         consequence, None))
            return
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
