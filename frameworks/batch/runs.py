"""Job runs: their state machine, ids and JSON, and each job's history of finished runs.

    JobRun.start(job)          INITIAL   (no task launched yet)
      .task_launched(i, id)    STARTING  (a task is launched, none running)
      .task_status(id, state)  ACTIVE    (a task is TASK_RUNNING)
                               SUCCESS   (every index has a TASK_FINISHED task)
                               FAILED    (a task failed and may not be retried, stop(), or
                                          check_deadlines() found maxLaunchDelay passed)

A failed task is retried (its index becomes pending again, the run goes back to STARTING) only
with restart policy ON_FAILURE and while `activeDeadlineSeconds` since the run's creation has not
passed (no deadline: retry forever). `maxLaunchDelay` bounds how long a run may stay INITIAL or
STARTING, counted from its creation or its last retry. Every value is immutable: each transition
returns a new `JobRun`; the caller launches `iter_pending()` with `next_task_id()` and kills
`live_task_ids()` of a run that turned FAILED.

A run holds counts and its live tasks, never a record per task it launched: an array run of
10,000 indices costs, per task and transition, work that grows with its live tasks only, and
so does what its owner stores. Only the latest `FINISHED_TASKS_KEPT` terminal tasks are kept,
for the run's JSON.

Run ids are Metronome's: the UTC creation time as `yyyyMMddHHmmss` and five random letters or
digits (`20160715130259A34HX`). Timestamps are written as Metronome does,
`2016-07-15T13:02:59.735+0000`.
"""

from __future__ import annotations

import random
import re
import string
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from frameworks.batch.jobs import JobSpec, RestartPolicy, RestartSpec
from mesos_values.timestamps import format_timestamp

__all__ = [
    "FINISHED_TASKS_KEPT",
    "UTC_SUFFIX",
    "FinishedRun",
    "JobHistory",
    "JobRun",
    "RunStatus",
    "RunTask",
    "new_run_id",
    "parse_task_id",
]

RUN_ID_PATTERN = re.compile(r"^[0-9]{14}[A-Za-z0-9]{5}$")
_RUN_ID_ALPHABET = string.ascii_letters + string.digits
_SUCCESS_STATES = frozenset({"TASK_FINISHED"})
_FAILURE_STATES = frozenset({
    "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR", "TASK_DROPPED", "TASK_GONE",
    "TASK_GONE_BY_OPERATOR",
})
_RUNNING_STATE = "TASK_RUNNING"
_NEVER_RESTART = RestartSpec()
FINISHED_TASKS_KEPT = 20
"""Terminal tasks a run keeps to show in its JSON (its counts keep counting)."""
UTC_SUFFIX = "+0000"
"""How Metronome ends a timestamp (`mesos_values.timestamps.format_timestamp`)."""
DEFAULT_HISTORY_LENGTH = 10
"""Finished runs kept per list in a `JobHistory` (the counts keep counting)."""


class RunStatus(StrEnum):
    """A run's status as Metronome names it."""

    INITIAL = "INITIAL"
    STARTING = "STARTING"
    ACTIVE = "ACTIVE"
    SUCCESS = "SUCCESS"
    FAILED = "FAILED"

    @property
    def is_terminal(self) -> bool:
        """SUCCESS or FAILED: the run will not change any more."""
        return self in (RunStatus.SUCCESS, RunStatus.FAILED)



def new_run_id(now: datetime, rng: random.Random) -> str:
    """A Metronome run id: UTC `yyyyMMddHHmmss` of `now` and five random letters or digits."""
    suffix = "".join(rng.choice(_RUN_ID_ALPHABET) for _ in range(5))
    return f"{now.astimezone(UTC):%Y%m%d%H%M%S}{suffix}"


_DIGITS = re.compile(r"[0-9]{1,18}")


def parse_task_id(task_id: str) -> tuple[str, str, int, int] | None:
    """(job id, run id, index, attempt) of a task id made by `JobRun.next_task_id`, else None."""
    prefix, _, rest = task_id.rpartition("_")
    run_id, _, numbers = rest.partition(".")
    index, _, attempt = numbers.partition(".")
    if not (prefix and RUN_ID_PATTERN.fullmatch(run_id) and _DIGITS.fullmatch(index)
            and _DIGITS.fullmatch(attempt)):
        return None
    return prefix, run_id, int(index), int(attempt)


@dataclass(frozen=True)
class RunTask:
    """One Mesos task launched for a run (an index of an array job, one attempt)."""

    id: str
    index: int
    status: str
    started_at: datetime
    completed_at: datetime | None = None
    attempt: int = 0
    # Why a task failed: its last status's message and reason (e.g. a memory limitation).
    message: str | None = None
    reason: str | None = None

    def to_json(self) -> dict[str, Any]:
        """Metronome's task entry of a run, plus `message` and `reason` of a failed task
        (extensions)."""
        started_at = format_timestamp(self.started_at.timestamp(), utc_suffix=UTC_SUFFIX)
        result: dict[str, Any] = {"id": self.id, "status": self.status, "startedAt": started_at}
        if self.completed_at is not None:
            result["completedAt"] = format_timestamp(
                self.completed_at.timestamp(), utc_suffix=UTC_SUFFIX
            )
        if self.message is not None:
            result["message"] = self.message
        if self.reason is not None:
            result["reason"] = self.reason
        return result


@dataclass(frozen=True)
class JobRun:
    """One run of a job; the restart and launch settings are fixed when it starts.

    The run keeps counts and its live tasks, not every task it ever launched: an index is
    either launched for the first time (from `next_index` on), waiting for a retry (`retries`),
    live (`live`), or finished. `finished_tasks` keeps the latest terminal tasks for display.
    """

    id: str
    job_id: str
    status: RunStatus
    created_at: datetime
    array_size: int = 1
    restart: RestartSpec = _NEVER_RESTART
    max_launch_delay: int = 3600
    completed_at: datetime | None = None
    waiting_since: datetime | None = None
    """When the run last started waiting for a launch (creation or retry), for maxLaunchDelay."""
    next_index: int = 0
    """Indices from here on have never been launched."""
    retries: Mapping[int, int] = field(default_factory=dict)
    """Indices below `next_index` waiting for a launch -> the attempt number of that launch."""
    live: Mapping[str, RunTask] = field(default_factory=dict)
    """Tasks launched and not terminal, by id, in launch order."""
    running: int = 0
    """How many live tasks are TASK_RUNNING."""
    succeeded: int = 0
    """Tasks that finished (TASK_FINISHED): one per index."""
    failed: int = 0
    """Tasks that ended in any other terminal state (each retry counts)."""
    finished_tasks: tuple[RunTask, ...] = ()
    """The latest terminal tasks, oldest first, at most `FINISHED_TASKS_KEPT`."""
    schedule_id: str | None = None
    due_at: datetime | None = None
    """The schedule and the due time this run was started for (None when started otherwise)."""
    message: str | None = None
    """Why the run failed without launching anything (an extension), or None."""

    @classmethod
    def start(
        cls, job: JobSpec, now: datetime, rng: random.Random, *,
        schedule_id: str | None = None, due_at: datetime | None = None,
    ) -> JobRun:
        """A new INITIAL run of `job` created at `now` (for a schedule's due time, if given)."""
        return cls(id=new_run_id(now, rng), job_id=job.id, status=RunStatus.INITIAL,
                   created_at=now, array_size=job.run.array_size, restart=job.run.restart,
                   max_launch_delay=job.run.max_launch_delay, waiting_since=now,
                   schedule_id=schedule_id, due_at=due_at)

    @property
    def tasks(self) -> tuple[RunTask, ...]:
        """The tasks the run remembers (the latest terminal ones and every live one), in launch
        order (by start time, then index)."""
        return tuple(sorted((*self.finished_tasks, *self.live.values()),
                            key=lambda task: (task.started_at, task.index, task.attempt)))

    @property
    def has_pending(self) -> bool:
        """Whether an index waits for a task to be launched."""
        return self.pending_count > 0

    @property
    def pending_count(self) -> int:
        """How many indices wait for a task to be launched."""
        if self.status.is_terminal:
            return 0
        return len(self.retries) + self.array_size - self.next_index

    def iter_pending(self) -> Iterator[int]:
        """Indices that need a task launched (not finished, no live task), ascending."""
        if self.status.is_terminal:
            return
        yield from sorted(self.retries)
        yield from range(self.next_index, self.array_size)

    def pending_indices(self) -> tuple[int, ...]:
        """Every index that needs a task launched, ascending (see `iter_pending`)."""
        return tuple(self.iter_pending())

    def live_task_ids(self) -> tuple[str, ...]:
        """Tasks launched and not yet terminal (to kill when the run fails or is stopped)."""
        return tuple(self.live)

    def next_task_id(self, index: int) -> str:
        """The id for the next attempt of task `index`: `<jobId>_<runId>.<index>.<attempt>`."""
        return self.task_id(index, self.retries.get(index, 0))

    def task_id(self, index: int, attempt: int) -> str:
        """The id of attempt `attempt` of task `index` (see `next_task_id`)."""
        return f"{self.job_id}_{self.id}.{index}.{attempt}"

    def task_launched(self, index: int, task_id: str, now: datetime) -> JobRun:
        """Record that task `task_id` was launched for `index`; INITIAL becomes STARTING."""
        return self.tasks_launched(((index, task_id),), now)

    def tasks_launched(self, launches: Iterable[tuple[int, str]], now: datetime) -> JobRun:
        """`task_launched` for several (index, task id) pairs at once (one offer's worth)."""
        retries = dict(self.retries)
        live = dict(self.live)
        next_index = self.next_index
        for index, task_id in launches:
            if self.status.is_terminal or not (index in retries
                                               or next_index <= index < self.array_size):
                raise ValueError(f"index {index} of run {self.id} is not waiting for a launch")
            attempt = retries.pop(index, 0)
            if index >= next_index:
                retries.update(dict.fromkeys(range(next_index, index), 0))
                next_index = index + 1
            live[task_id] = RunTask(task_id, index, "TASK_STAGING", now, attempt=attempt)
        if len(live) == len(self.live):
            return self
        status = RunStatus.STARTING if self.status is RunStatus.INITIAL else self.status
        return replace(self, retries=retries, live=live, next_index=next_index, status=status)

    def task_status(
        self, task_id: str, state: str, now: datetime, *,
        message: str | None = None, reason: str | None = None,
    ) -> JobRun:
        """Apply a Mesos status update (state name such as `TASK_RUNNING`) for one of our tasks;
        a failed task keeps the update's `message` and `reason` (a name such as
        `REASON_CONTAINER_LIMITATION_MEMORY`).

        Updates for unknown tasks, for tasks already terminal, or that repeat a task's state
        change nothing (the same run is returned).
        """
        task = self.live.get(task_id)
        if task is None or task.status == state:
            return self
        live = dict(self.live)
        running = self.running - (task.status == _RUNNING_STATE)
        if state not in _SUCCESS_STATES and state not in _FAILURE_STATES:
            live[task_id] = replace(task, status=state)
            running += state == _RUNNING_STATE
            status = self.status
            if not status.is_terminal:
                status = RunStatus.ACTIVE if running else RunStatus.STARTING
            return replace(self, live=live, running=running, status=status)
        del live[task_id]
        succeeded = state in _SUCCESS_STATES
        ended = replace(task, status=state, completed_at=now)
        if not succeeded:
            ended = replace(ended, message=message or None, reason=reason or None)
        finished = (*self.finished_tasks, ended)
        run = replace(self, live=live, running=running,
                      succeeded=self.succeeded + succeeded, failed=self.failed + (not succeeded),
                      finished_tasks=finished[-FINISHED_TASKS_KEPT:])
        if self.status.is_terminal:
            return run
        if not succeeded:
            if not run._may_retry(now):
                return replace(run, status=RunStatus.FAILED, completed_at=now)
            run = replace(run, waiting_since=now,
                          retries={**run.retries, task.index: task.attempt + 1})
        if run.succeeded == self.array_size:
            return replace(run, status=RunStatus.SUCCESS, completed_at=now)
        return replace(run, status=RunStatus.ACTIVE if running else RunStatus.STARTING)

    def check_deadlines(self, now: datetime) -> JobRun:
        """FAILED if the run has waited for a launch longer than maxLaunchDelay; else unchanged."""
        if self.status not in (RunStatus.INITIAL, RunStatus.STARTING):
            return self
        waiting_since = self.waiting_since or self.created_at
        if now - waiting_since > timedelta(seconds=self.max_launch_delay):
            return replace(self, status=RunStatus.FAILED, completed_at=now)
        return self

    def stop(self, now: datetime) -> JobRun:
        """Abort the run (`/actions/stop`): FAILED; the caller kills `live_task_ids()`."""
        if self.status.is_terminal:
            return self
        return replace(self, status=RunStatus.FAILED, completed_at=now)

    def refuse(self, now: datetime, message: str) -> JobRun:
        """FAILED at once with `message`: the run cannot be launched here."""
        return replace(self, status=RunStatus.FAILED, completed_at=now, message=message)

    def to_json(self) -> dict[str, Any]:
        """Metronome's run JSON (its `tasks` are the ones the run remembers, see `tasks`),
        plus `scheduleId` and `dueAt` for a scheduled run and `message` for a run refused
        at once (extensions)."""
        result: dict[str, Any] = {
            "id": self.id,
            "jobId": self.job_id,
            "status": self.status.value,
            "createdAt": format_timestamp(self.created_at.timestamp(), utc_suffix=UTC_SUFFIX),
            "completedAt": _optional_timestamp(self.completed_at),
            "tasks": [task.to_json() for task in self.tasks],
        }
        _add_schedule_json(result, self.schedule_id, self.due_at)
        if self.message is not None:
            result["message"] = self.message
        return result

    def _may_retry(self, now: datetime) -> bool:
        if self.restart.policy is not RestartPolicy.ON_FAILURE:
            return False
        deadline = self.restart.active_deadline_seconds
        return deadline is None or now - self.created_at < timedelta(seconds=deadline)


@dataclass(frozen=True)
class FinishedRun:
    """A finished run as the history lists it."""

    id: str
    created_at: datetime
    finished_at: datetime
    schedule_id: str | None = None
    due_at: datetime | None = None
    tasks: tuple[str, ...] = ()
    """The ids of the tasks the run remembered when it finished (see `JobRun.tasks`)."""

    def to_json(self) -> dict[str, Any]:
        """`{"id", "createdAt", "finishedAt", "tasks"}` as in Metronome's `embed=history`, plus
        `scheduleId` and `dueAt` for a scheduled run (an extension)."""
        result: dict[str, Any] = {
            "id": self.id,
            "createdAt": format_timestamp(self.created_at.timestamp(), utc_suffix=UTC_SUFFIX),
            "finishedAt": format_timestamp(self.finished_at.timestamp(), utc_suffix=UTC_SUFFIX),
            "tasks": list(self.tasks),
        }
        _add_schedule_json(result, self.schedule_id, self.due_at)
        return result


def _add_schedule_json(
    result: dict[str, Any], schedule_id: str | None, due_at: datetime | None
) -> None:
    if schedule_id is not None and due_at is not None:
        result["scheduleId"] = schedule_id
        result["dueAt"] = format_timestamp(due_at.timestamp(), utc_suffix=UTC_SUFFIX)


@dataclass(frozen=True)
class JobHistory:
    """Counts and the latest finished runs of one job (newest first)."""

    job_id: str
    success_count: int = 0
    failure_count: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    successful_runs: tuple[FinishedRun, ...] = ()
    failed_runs: tuple[FinishedRun, ...] = ()

    @property
    def latest_succeeded(self) -> bool:
        """Whether the job's latest finished run succeeded (what a dependent job waits for)."""
        if self.last_success_at is None:
            return False
        return self.last_failure_at is None or self.last_success_at >= self.last_failure_at

    def record(self, run: JobRun, *, keep: int = DEFAULT_HISTORY_LENGTH) -> JobHistory:
        """The history with the terminal `run` added; a run already listed is not counted again."""
        if run.job_id != self.job_id:
            raise ValueError(f"a run of {run.job_id!r} is not in the history of {self.job_id!r}")
        if not run.status.is_terminal or run.completed_at is None:
            raise ValueError(f"run {run.id} is {run.status.value}, not finished")
        if any(f.id == run.id for f in (*self.successful_runs, *self.failed_runs)):
            return self
        finished = FinishedRun(run.id, run.created_at, run.completed_at, run.schedule_id,
                               run.due_at, tuple(task.id for task in run.tasks))
        if run.status is RunStatus.SUCCESS:
            return replace(self, success_count=self.success_count + 1,
                           last_success_at=run.completed_at,
                           successful_runs=(finished, *self.successful_runs)[:keep])
        return replace(self, failure_count=self.failure_count + 1,
                       last_failure_at=run.completed_at,
                       failed_runs=(finished, *self.failed_runs)[:keep])

    def summary_json(self) -> dict[str, Any]:
        """Metronome's `embed=historySummary` object."""
        return {
            "successCount": self.success_count,
            "failureCount": self.failure_count,
            "lastSuccessAt": _optional_timestamp(self.last_success_at),
            "lastFailureAt": _optional_timestamp(self.last_failure_at),
        }

    def to_json(self) -> dict[str, Any]:
        """Metronome's `embed=history` object."""
        return {
            **self.summary_json(),
            "successfulFinishedRuns": [run.to_json() for run in self.successful_runs],
            "failedFinishedRuns": [run.to_json() for run in self.failed_runs],
        }


def _optional_timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else format_timestamp(moment.timestamp(), utc_suffix=UTC_SUFFIX)
