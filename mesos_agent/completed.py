"""What the agent remembers of finished work once it forgot it: the last tasks and custom
executors that ended, with their sandboxes, so that `/state` still points at their logs.

In memory only, bounded like Mesos' `--max_completed_{tasks,executors}_per_framework`: the most
recent `per_framework` records of each framework and `total` overall, oldest first.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Generic, TypeVar

from mesos_agent.views import ExecutorView, TaskView
from protos import mesos_pb2

__all__ = ["CompletedWork"]

MAX_PER_FRAMEWORK = 100
MAX_TOTAL = 1000

_Key = TypeVar("_Key", bound=Hashable)
_Record = TypeVar("_Record")


class _Bounded(Generic[_Key, _Record]):
    """Records in insertion order; the oldest of a framework go first past `per_framework`,
    the oldest overall past `total`."""

    def __init__(self, per_framework: int, total: int) -> None:
        self._per_framework = per_framework
        self._total = total
        self._records: OrderedDict[tuple[str, _Key], _Record] = OrderedDict()
        self._counts: Counter[str] = Counter()

    def add(self, framework_id: str, key: _Key, record: _Record) -> None:
        full_key = (framework_id, key)
        if self._records.pop(full_key, None) is None:
            self._counts[framework_id] += 1
        self._records[full_key] = record
        if self._counts[framework_id] > self._per_framework:
            oldest = next(k for k in self._records if k[0] == framework_id)
            self._remove(oldest)
        while len(self._records) > self._total:
            self._remove(next(iter(self._records)))

    def _remove(self, key: tuple[str, _Key]) -> None:
        del self._records[key]
        self._counts[key[0]] -= 1
        if not self._counts[key[0]]:
            del self._counts[key[0]]

    def frameworks(self) -> set[str]:
        return set(self._counts)

    def values(self) -> tuple[_Record, ...]:
        return tuple(self._records.values())


class CompletedWork:
    """Finished tasks and executors of every framework, with the frameworks' infos."""

    def __init__(self, per_framework: int = MAX_PER_FRAMEWORK, total: int = MAX_TOTAL) -> None:
        self._tasks: _Bounded[str, TaskView] = _Bounded(per_framework, total)
        self._executors: _Bounded[tuple[str, str], ExecutorView] = _Bounded(
            per_framework, total)
        self._framework_infos: dict[str, mesos_pb2.FrameworkInfo] = {}

    def add_task(self, task: TaskView, framework: mesos_pb2.FrameworkInfo | None) -> None:
        """Remember a task the agent forgot (terminal and acknowledged, or its framework
        shut down)."""
        framework_id = task.task.framework_id.value
        self._tasks.add(framework_id, task.task.task_id.value, task)
        self._keep_framework(framework_id, framework)

    def add_executor(
        self, executor: ExecutorView, framework: mesos_pb2.FrameworkInfo | None
    ) -> None:
        """Remember a custom executor that ended."""
        key = (executor.info.executor_id.value, executor.container_id)
        self._executors.add(executor.framework_id, key, executor)
        self._keep_framework(executor.framework_id, framework)

    def executor_sandbox(self, framework_id: str, executor_id: str) -> Path | None:
        """The sandbox of the latest finished run of that executor, if one is remembered."""
        for executor in reversed(self._executors.values()):
            if (executor.framework_id, executor.info.executor_id.value) == (
                    framework_id, executor_id):
                return executor.sandbox
        return None

    @property
    def tasks(self) -> tuple[TaskView, ...]:
        return self._tasks.values()

    @property
    def executors(self) -> tuple[ExecutorView, ...]:
        return self._executors.values()

    @property
    def frameworks(self) -> Mapping[str, mesos_pb2.FrameworkInfo]:
        """The infos of the frameworks that have finished tasks or executors here."""
        return dict(self._framework_infos)

    def _keep_framework(self, framework_id: str, info: mesos_pb2.FrameworkInfo | None) -> None:
        if info is not None:
            self._framework_infos[framework_id] = info
        remembered = self._tasks.frameworks() | self._executors.frameworks()
        for gone in set(self._framework_infos) - remembered:
            del self._framework_infos[gone]
