"""The batch framework's scheduler state: jobs, schedules, runs and history, as one pure core.

    REST handlers ──put_job / start_run / stop_run / put_schedule──▶ BatchCore ──actions──▶ driver
    SDK driver ──registered / resource_offers / status_update──────▶    │ ──writes──▶ Sink (store)
    shell timer ──tick(): deadlines, schedules, dependencies───────▶    │

Runs are launched into offers, many tasks per offer (an array job's N indexed tasks with `INDEX`
in their environment), and only once the run's record, with the ids of the tasks about to be
launched, is durable: a new leader knows every task that may exist and reconciles them.
A run's record holds counts and its live tasks, never one entry per task launched, and at most
`LIVE_TASKS_PER_RUN` tasks of a run are live at once, so the record stays small whatever the
arraySize. A change of a run's status is written at once; a task's end changes only counts
and is written at the next `flush()` (the shell batches them); a task's progress short of its
end is not written at all (reconciliation tells a new leader).
Offers the core cannot use are declined: for `DECLINE_SECONDS` while work waits for a better
offer, for `IDLE_DECLINE_SECONDS` otherwise; with no work at all the core suppresses offers and
revives as soon as work appears, so it never holds resources other frameworks could use.

Schedules, exactly once (see `schedules.py`): `tick()` calls `decide()` for each schedule. When the
decision starts runs, their INITIAL records (each naming its schedule and due time) and then the
schedule's new watermark are written in that order, and the runs become launchable only when the
watermark is durable. Writes become durable in order, so after a crash either the watermark is
durable (the decision is complete) or it is not and the runs may be: `Recovered.decode` then
raises the watermark to the latest due time of the schedule's recovered runs, which is the latest
due time the lost decision covered. Either way no due time is decided twice or dropped. Decisions
that start nothing need no write: deciding the same window again decides nothing again.

Dependencies (a DAG, `jobs.check_dependencies`): a job with parents is triggered automatically
when it has no active run and every parent's latest finished run succeeded *after* the child was
last triggered (or created). So `a, b -> c` runs `c` once after both `a` and `b` have succeeded
since `c`'s previous run; a parent that fails holds `c` back until it succeeds again. A due time of
a dependent job's own schedule is skipped unless every parent's latest run succeeded. Starting a
run by hand (`start_run`) is an operator's decision and starts it regardless. The trigger time
is written after the run it started; recovery raises it to the creation time of any recovered run
the parents started, so a crash between the two writes neither loses nor repeats the run.

No I/O: time comes from the injected wall clock (seconds since the epoch) and everything outside
goes through `SchedulerActions` and the store `Sink`.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import structlog

from frameworks.actions import SchedulerActions
from frameworks.batch.jobs import (
    JobSpec,
    RestartPolicy,
    RestartSpec,
    ValidationError,
    check_dependencies,
    dependents_of,
    parse_job,
)
from frameworks.batch.runs import (
    FinishedRun,
    JobHistory,
    JobRun,
    RunStatus,
    RunTask,
    parse_task_id,
)
from frameworks.batch.schedules import ScheduleSpec, decide, parse_schedule
from frameworks.offers import OfferBudget, offer_gpus
from frameworks.placement import AgentView, FieldScheme, check
from frameworks.set_aside import SetAside, reading
from frameworks.tasks import command_task, is_terminal, state_name, volume
from mesos_coordination.store import Mutation, Sink, split_key, store_key
from mesos_runtime.clock import Clock
from protos import mesos_pb2

__all__ = [
    "DECLINE_SECONDS",
    "GPU_SCHEDULING_BEHAVIORS",
    "IDLE_DECLINE_SECONDS",
    "KINDS",
    "LIVE_TASKS_PER_RUN",
    "ActiveRun",
    "BatchCore",
    "Conflict",
    "NotFound",
    "Recovered",
    "ScheduleState",
    "parse_job_body",
]

log = structlog.get_logger("frameworks.batch")

GPU_SCHEDULING_BEHAVIORS = ("restricted", "unrestricted")
"""Metronome's GPU scheduling behaviors: with `restricted`, runs of jobs without `gpus` do not
use offers that hold GPUs (keeping those agents for jobs that need them)."""
KINDS = ("jobs", "schedules", "runs", "history", "triggers", "framework")
FRAMEWORK_KEY = store_key("framework", "id")
DECLINE_SECONDS = 5.0
"""Refusal for an offer declined while work waits (it did not fit)."""
IDLE_DECLINE_SECONDS = 120.0
"""Refusal for an offer declined with nothing to launch."""
FINISHED_RUNS_KEPT = 10
"""Finished runs kept per job (readable with GET .../runs/{runId}); the history counts on."""
LIVE_TASKS_PER_RUN = 1000
"""Tasks of one run launched and not yet terminal, at most: this bounds the run's stored record
(tens of kB, far below ZooKeeper's 1 MiB for any arraySize) and the work per status update."""


class NotFound(LookupError):
    """An unknown job, run or schedule (HTTP 404)."""


class Conflict(Exception):
    """The change conflicts with the current state (HTTP 409)."""



WAITING_CONSTRAINTS = "no offered agent meets the job's placement constraints"
WAITING_GPUS = ("agents with GPUs are kept for jobs that use them "
                "(--gpu_scheduling_behavior restricted)")
WAITING_IMAGES = "no offered agent runs container images (agents need --image_providers=docker)"
WAITING_RESOURCES = "no offer has the resources a task asks for"

@dataclass(slots=True)
class ActiveRun:
    """A run the core drives, with where its tasks run and what started it."""

    run: JobRun
    agents: dict[str, str] = field(default_factory=dict)
    """live task id -> agent id, for kills and reconciliation."""
    by_parents: bool = False
    """Started because its parents succeeded (see the module docstring)."""
    launchable: bool = True
    """False until the decision that created the run is durable."""
    waiting_reason: str | None = None
    """Why the last offer that could have taken its waiting tasks did not (not stored)."""
    _encoded_live: dict[str, tuple[str, str]] = field(default_factory=dict, init=False,
                                                       repr=False, compare=False)
    """live task id -> (state, JSON entry) from the last `to_record`, to encode each once."""

    def to_record(self) -> bytes:
        """The run as stored: counts, waiting retries, live and the latest terminal tasks.

        Tasks are `[index, attempt, state, startedAt ms, agent id | completedAt ms]` (their ids
        are `JobRun.task_id(index, attempt)`). The size grows with the live tasks, bounded by
        `LIVE_TASKS_PER_RUN`; a live task's entry is encoded again only when its state changed.
        """
        run = self.run
        encoded: dict[str, tuple[str, str]] = {}
        for task in run.live.values():
            entry = self._encoded_live.get(task.id)
            if entry is None or entry[0] != task.status:
                entry = (task.status, json.dumps([task.index, task.attempt, task.status,
                                                  _ms(task.started_at),
                                                  self.agents.get(task.id, "")]))
            encoded[task.id] = entry
        self._encoded_live = encoded
        head = json.dumps({
            "id": run.id, "jobId": run.job_id, "status": run.status.value,
            "createdAt": _iso(run.created_at), "completedAt": _iso(run.completed_at),
            "arraySize": run.array_size, "restartPolicy": run.restart.policy.value,
            "activeDeadlineSeconds": run.restart.active_deadline_seconds,
            "maxLaunchDelay": run.max_launch_delay, "waitingSince": _iso(run.waiting_since),
            "scheduleId": run.schedule_id, "dueAt": _iso(run.due_at), "message": run.message,
            "byParents": self.by_parents,
            "nextIndex": run.next_index, "retries": sorted(run.retries.items()),
            "succeeded": run.succeeded, "failed": run.failed,
            "finished": [[t.index, t.attempt, t.status, _ms(t.started_at),
                          _ms(t.completed_at or t.started_at), t.message, t.reason]
                         for t in run.finished_tasks],
        })
        live = ",".join(entry for _, entry in encoded.values())
        return f'{head[:-1]}, "live": [{live}]}}'.encode()

    @classmethod
    def from_record(cls, data: bytes) -> ActiveRun:
        raw = json.loads(data)
        run = JobRun(
            id=raw["id"], job_id=raw["jobId"], status=RunStatus(raw["status"]),
            created_at=_from_iso(raw["createdAt"]), array_size=raw["arraySize"],
            restart=RestartSpec(RestartPolicy(raw["restartPolicy"]),
                                raw["activeDeadlineSeconds"]),
            max_launch_delay=raw["maxLaunchDelay"], completed_at=_optional_iso(raw["completedAt"]),
            waiting_since=_optional_iso(raw["waitingSince"]),
            next_index=raw["nextIndex"], retries=dict(raw["retries"]),
            succeeded=raw["succeeded"], failed=raw["failed"],
            schedule_id=raw["scheduleId"], due_at=_optional_iso(raw["dueAt"]),
            message=raw.get("message"),
        )
        agents: dict[str, str] = {}
        live: dict[str, RunTask] = {}
        for index, attempt, state, started, agent_id in raw["live"]:
            task_id = run.task_id(index, attempt)
            live[task_id] = RunTask(task_id, index, state, _from_ms(started), attempt=attempt)
            if agent_id:
                agents[task_id] = agent_id
        finished = tuple(
            RunTask(run.task_id(index, attempt), index, state, _from_ms(started),
                    _from_ms(completed), attempt, *why)  # why: message, reason (once absent)
            for index, attempt, state, started, completed, *why in raw["finished"])
        running = sum(task.status == "TASK_RUNNING" for task in live.values())
        run = replace(run, live=live, running=running, finished_tasks=finished)
        return cls(run, agents, raw["byParents"])


@dataclass(slots=True)
class ScheduleState:
    """A schedule and its durable watermark (every due time up to it has its decision)."""

    spec: ScheduleSpec
    handled_until: datetime

    def to_record(self) -> bytes:
        return json.dumps({"schedule": self.spec.to_json(),
                           "handledUntil": _iso(self.handled_until)}).encode()


@dataclass(slots=True)
class Recovered:
    """The core's durable state, as a new leader reads it from the store, and the records it
    set aside (see `frameworks.set_aside`): each record that cannot be read or validated,
    and every record of a job whose own record is set aside. They stay in the store until
    `DELETE /v1/jobs/{id}` removes them."""

    jobs: dict[str, JobSpec] = field(default_factory=dict)
    schedules: dict[str, dict[str, ScheduleState]] = field(default_factory=dict)
    runs: dict[str, ActiveRun] = field(default_factory=dict)
    histories: dict[str, JobHistory] = field(default_factory=dict)
    triggers: dict[str, datetime] = field(default_factory=dict)
    framework_id: str | None = None
    set_aside: list[SetAside] = field(default_factory=list)

    @classmethod
    def decode(cls, entries: Mapping[str, bytes]) -> Recovered:
        """Read the store's entries, repairing what a crash between ordered writes left."""
        state = cls()
        jobs_first = sorted(entries.items(), key=lambda item: split_key(item[0])[0] != "jobs")
        for key, value in jobs_first:
            job_id = job_of(key)
            if split_key(key)[0] not in ("jobs", "framework") and job_id not in state.jobs \
                    and store_key("jobs", job_id) in entries:
                state.set_aside.append(SetAside(key, f"its job {job_id!r} is set aside"))
                continue
            with reading(state.set_aside, key):
                state._read(key, value)
        # A finished run whose history update a crash cut off is added to the history now.
        # `record` recognises a run it already counted only among the newest it lists: the
        # finished runs kept in the store are those, as long as both follow completion order.
        for run in state.finished_runs():
            history = state.histories.get(run.job_id, JobHistory(run.job_id))
            state.histories[run.job_id] = history.record(run)
        for active in state.runs.values():
            run = active.run
            if active.by_parents:
                state.triggers[run.job_id] = max(state.triggers.get(run.job_id, run.created_at),
                                                 run.created_at)
            schedule = state.schedules.get(run.job_id, {}).get(run.schedule_id or "")
            if schedule is not None and run.due_at is not None:
                schedule.handled_until = max(schedule.handled_until, run.due_at)
        return state

    def finished_runs(self) -> list[JobRun]:
        """The finished runs in the order they finished, oldest first (the store's entries
        come in any order). The core prunes the oldest of them, as the history drops them."""
        return sorted((a.run for a in self.runs.values() if a.run.status.is_terminal),
                      key=lambda run: (run.completed_at or run.created_at, run.created_at))

    def _read(self, key: str, value: bytes) -> None:
        kind, name = split_key(key)
        if kind == "jobs":
            job = parse_job(json.loads(value))
            if job.id != name:
                raise ValueError(f"holds job {job.id!r}")
            self.jobs[job.id] = job
        elif kind == "schedules":
            raw = json.loads(value)
            spec = parse_schedule(raw["schedule"])
            self.schedules.setdefault(job_of(key), {})[spec.id] = ScheduleState(
                spec, _from_iso(raw["handledUntil"]))
        elif kind == "runs":
            active = ActiveRun.from_record(value)
            self.runs[active.run.id] = active
        elif kind == "history":
            self.histories[name] = _history_from_record(name, value)
        elif kind == "triggers":
            self.triggers[name] = _from_iso(value.decode())
        elif kind == "framework":
            self.framework_id = value.decode()


def job_of(key: str) -> str:
    """The job a record belongs to: its key names it, alone or before an `@`."""
    return split_key(key)[1].rpartition("@")[0] or split_key(key)[1]


class BatchCore:
    """Jobs, schedules, runs and history; see the module docstring."""

    def __init__(
        self,
        *,
        wall: Clock,
        actions: SchedulerActions,
        sink: Sink,
        recovered: Recovered | None = None,
        rng: random.Random | None = None,
        gpu_scheduling: str | None = None,
    ) -> None:
        if gpu_scheduling not in (None, *GPU_SCHEDULING_BEHAVIORS):
            raise ValueError(f"unknown GPU scheduling behavior {gpu_scheduling!r}")
        state = recovered or Recovered()
        self.gpu_scheduling = gpu_scheduling
        self.wall = wall
        self.actions = actions
        self.sink = sink
        self.rng = rng or random.Random()
        self.jobs = state.jobs
        self.schedules = state.schedules
        self.histories = state.histories
        self.triggers = state.triggers
        self.framework_id = state.framework_id
        self.set_aside = list(state.set_aside)
        self.runs = {i: a for i, a in state.runs.items() if not a.run.status.is_terminal}
        self.finished: dict[str, list[JobRun]] = {}
        for run in state.finished_runs():  # newest first, as `_finish` keeps them
            self.finished.setdefault(run.job_id, []).insert(0, run)
        self.suppressed = False
        self.counters: dict[str, int] = {
            "runs_started": 0, "runs_succeeded": 0, "runs_failed": 0, "tasks_launched": 0,
            "tasks_finished": 0, "tasks_failed": 0,
            "schedule_missed": 0, "schedule_skipped": 0, "offers_declined": 0,
        }
        self._dirty: set[str] = set()

    # ------------------------------------------------------------------ jobs

    def put_job(self, job: JobSpec, schedules: Sequence[ScheduleSpec] | None = None, *,
                create: bool) -> None:
        """Create (`create`, 409 if it exists) or replace (404 if missing) a job.

        `schedules` (from the job body) replaces the job's schedules when given.
        Raises ValidationError (422) for unknown parents or a dependency cycle.
        """
        exists = job.id in self.jobs
        if create and exists:
            raise Conflict(f"Job with id '{job.id}' already exists")
        if not create and not exists:
            raise NotFound(f"Job '{job.id}' does not exist")
        check_dependencies(job, {k: v for k, v in self.jobs.items() if k != job.id})
        self.jobs[job.id] = job
        self.sink.write(Mutation(store_key("jobs", job.id), json.dumps(job.to_json()).encode()))
        if job.dependencies and job.id not in self.triggers:
            self._set_trigger(job.id, self.now())
        if schedules is not None:
            for old in list(self.schedules.get(job.id, {})):
                if old not in {s.id for s in schedules}:
                    self.delete_schedule(job.id, old)
            for schedule in schedules:
                self._store_schedule(job.id, schedule)

    def delete_job(self, job_id: str, *, stop_current_runs: bool) -> None:
        """Delete a job with its schedules, runs and history (and its set-aside records).

        409 while runs are active (unless `stop_current_runs`) or other jobs depend on it.
        """
        self.job(job_id)
        dependents = dependents_of(job_id, self.jobs)
        if dependents:
            raise Conflict(f"Job '{job_id}' is a dependency of {', '.join(dependents)}")
        active = self.active_runs(job_id)
        if active and not stop_current_runs:
            raise Conflict("There are active job runs. Override with stopCurrentJobRuns=true")
        for run in active:
            self.stop_run(job_id, run.id)
        for schedule_id in list(self.schedules.get(job_id, {})):
            self.delete_schedule(job_id, schedule_id)
        for run in self.finished.pop(job_id, []):
            self.sink.write(Mutation(_run_key(run), None))
        del self.jobs[job_id]
        self.histories.pop(job_id, None)
        self.triggers.pop(job_id, None)
        for kind in ("jobs", "history", "triggers"):
            self.sink.write(Mutation(store_key(kind, job_id), None))
        self.discard_set_aside(job_id)

    def discard_set_aside(self, job_id: str) -> bool:
        """Delete the set-aside records of job `job_id` from the store; False if it has none."""
        discarded = [r for r in self.set_aside
                     if split_key(r.key)[0] != "framework" and job_of(r.key) == job_id]
        for record in discarded:
            self.set_aside.remove(record)
            self.sink.write(Mutation(record.key, None))
        return bool(discarded)

    def discard_record(self, key: str) -> bool:
        """Delete set-aside record `key` from the store; False if no record of that key is
        set aside."""
        if not any(record.key == key for record in self.set_aside):
            return False
        self.set_aside = [record for record in self.set_aside if record.key != key]
        self.sink.write(Mutation(key, None))
        return True

    def job(self, job_id: str) -> JobSpec:
        """The job; NotFound otherwise."""
        job = self.jobs.get(job_id)
        if job is None:
            raise NotFound(f"Job '{job_id}' does not exist")
        return job

    def history(self, job_id: str) -> JobHistory:
        return self.histories.get(job_id) or JobHistory(job_id)

    # ------------------------------------------------------------- schedules

    def put_schedule(self, job_id: str, schedule: ScheduleSpec, *, create: bool) -> None:
        """Add (409 if it exists) or replace (404 if missing) a schedule of a job.

        Its watermark starts (again) now: no due time before the change is replayed.
        """
        self.job(job_id)
        exists = schedule.id in self.schedules.get(job_id, {})
        if create and exists:
            raise Conflict(f"Schedule with id '{schedule.id}' already exists")
        if not create and not exists:
            raise NotFound(f"Schedule '{schedule.id}' of job '{job_id}' does not exist")
        self._store_schedule(job_id, schedule)

    def delete_schedule(self, job_id: str, schedule_id: str) -> None:
        self.schedule(job_id, schedule_id)
        del self.schedules[job_id][schedule_id]
        if not self.schedules[job_id]:
            del self.schedules[job_id]
        self.sink.write(Mutation(store_key("schedules", f"{job_id}@{schedule_id}"), None))

    def schedule(self, job_id: str, schedule_id: str) -> ScheduleState:
        self.job(job_id)
        state = self.schedules.get(job_id, {}).get(schedule_id)
        if state is None:
            raise NotFound(f"Schedule '{schedule_id}' of job '{job_id}' does not exist")
        return state

    def job_schedules(self, job_id: str) -> list[ScheduleState]:
        self.job(job_id)
        return sorted(self.schedules.get(job_id, {}).values(), key=lambda s: s.spec.id)

    # ------------------------------------------------------------------ runs

    def start_run(self, job_id: str) -> JobRun:
        """Start a run of the job now (POST .../runs)."""
        run = self._create_run(self.job(job_id))
        active = self.runs.get(run.id)
        if active is not None:  # else it failed at once and `_finish` stored it
            self._store_run(active)
        self._want_offers()
        return run

    def stop_run(self, job_id: str, run_id: str) -> JobRun:
        """Abort an active run: FAILED, its tasks killed. NotFound if it is not active."""
        active = self.runs.get(run_id)
        if active is None or active.run.job_id != job_id:
            raise NotFound(f"JobRun '{run_id}' of job '{job_id}' is not active")
        self._kill_live(active)
        active.run = active.run.stop(self.now())
        self._finish(active)
        return active.run

    def active_runs(self, job_id: str) -> list[JobRun]:
        return sorted((a.run for a in self.runs.values() if a.run.job_id == job_id),
                      key=lambda r: r.created_at)

    def queued_runs(self) -> dict[str, list[JobRun]]:
        """Active runs with tasks waiting to be launched, by job id (sorted), oldest first."""
        queued: dict[str, list[JobRun]] = {}
        for active in sorted(self.runs.values(), key=lambda a: (a.run.job_id, a.run.created_at)):
            if active.run.has_pending:
                queued.setdefault(active.run.job_id, []).append(active.run)
        return queued

    def waiting_reason(self, run_id: str) -> str | None:
        """Why an active run's waiting tasks were not launched into the last offer that could
        have taken them, None when nothing holds them back (or the run is not active)."""
        active = self.runs.get(run_id)
        if active is None or not active.run.has_pending:
            return None
        return active.waiting_reason

    def find_run(self, job_id: str, run_id: str) -> JobRun:
        """An active run, or one of the job's last finished ones; NotFound otherwise."""
        self.job(job_id)
        active = self.runs.get(run_id)
        if active is not None and active.run.job_id == job_id:
            return active.run
        for run in self.finished.get(job_id, []):
            if run.id == run_id:
                return run
        raise NotFound(f"JobRun '{run_id}' of job '{job_id}' does not exist")

    # ---------------------------------------------------------------- driver

    def registered(self, framework_id: str) -> None:
        """Subscribed (or again): remember the id, reconcile every live task, offers as needed."""
        if framework_id != self.framework_id:
            self.framework_id = framework_id
            self.sink.write(Mutation(FRAMEWORK_KEY, framework_id.encode()))
        self.actions.reconcile([(task_id, active.agents.get(task_id, ""))
                                for active in self.runs.values()
                                for task_id in active.run.live_task_ids()])
        self.suppressed = False
        self._want_offers(revive=False)

    def resource_offers(self, offers: Sequence[mesos_pb2.Offer]) -> None:
        """Pack waiting tasks into the offers (launched once durable); decline the rest.

        Each run's launchable tasks are shared evenly among the offers, so that every agent
        offered at once gets work at once."""
        now = self.now()
        for position, offer in enumerate(offers):
            budget = OfferBudget(offer)
            agent = AgentView.of_offer(offer, scheme=FieldScheme.ATTRIBUTES)
            gpu_offer = offer_gpus(offer) > 0
            tasks: list[mesos_pb2.TaskInfo] = []
            touched: list[ActiveRun] = []
            for active in self._waiting():
                job = self.jobs.get(active.run.job_id)
                if job is None:
                    continue
                if not check(job.run.placement_rules, agent):
                    active.waiting_reason = WAITING_CONSTRAINTS
                    continue
                if gpu_offer and job.run.gpus == 0 and self.gpu_scheduling == "restricted":
                    active.waiting_reason = WAITING_GPUS
                    continue
                if job.run.image is not None and "docker" not in offer.image_providers:
                    active.waiting_reason = WAITING_IMAGES  # see `Offer.image_providers`
                    continue
                launched = self._pack(active, job, budget, now, len(offers) - position)
                if launched:
                    active.waiting_reason = None
                    tasks += launched
                    touched.append(active)
                elif active.run.has_pending:
                    active.waiting_reason = WAITING_RESOURCES
            if not tasks:
                self.counters["offers_declined"] += 1
                idle = not any(True for _ in self._waiting())
                self.actions.decline(offer.id.value,
                                     IDLE_DECLINE_SECONDS if idle else DECLINE_SECONDS)
                continue
            self.counters["tasks_launched"] += len(tasks)
            offer_id = offer.id.value

            def launch(offer_id: str = offer_id,
                       tasks: list[mesos_pb2.TaskInfo] = tasks) -> None:
                self.actions.launch(offer_id, tasks)

            for number, active in enumerate(touched, start=1):
                self._dirty.discard(active.run.id)
                self._store_run(active, then=launch if number == len(touched) else None)
        self._want_offers(revive=False)

    def status_update(self, status: mesos_pb2.TaskStatus) -> None:
        """Apply a task status update to its run."""
        task_id = status.task_id.value
        state = state_name(status)
        if state == "TASK_UNKNOWN":  # the master has no record of it: it is not running
            state = "TASK_LOST"
        parsed = parse_task_id(task_id)
        active = self.runs.get(parsed[1]) if parsed is not None else None
        if active is None or task_id not in active.run.live:
            if not is_terminal(status):  # a task of no active run (or long done): stop it
                self.actions.kill(task_id, status.agent_id.value, None)
            return
        if status.agent_id.value:
            active.agents[task_id] = status.agent_id.value
        before = active.run
        reason = (mesos_pb2.TaskStatus.Reason.Name(status.reason)
                  if status.reason else None)
        active.run = before.task_status(task_id, state, self.now(),
                                        message=status.message or None, reason=reason)
        if active.run is before:
            return
        agent_id = active.agents.get(task_id)
        ended = task_id not in active.run.live
        if ended:
            active.agents.pop(task_id, None)
            self.counters["tasks_finished" if state == "TASK_FINISHED" else "tasks_failed"] += 1
        log.debug("task status", job_id=before.job_id, run_id=before.id, task_id=task_id,
                  agent_id=agent_id, state=state, run=active.run.status.value)
        if active.run.status.is_terminal:
            self._kill_live(active)
            self._finish(active)
            self._trigger_dependents(self.now())
        elif active.run.status is not before.status:
            self._dirty.discard(active.run.id)
            self._store_run(active)
        elif ended:
            self._dirty.add(active.run.id)  # a task's own progress is not stored: reconciled
        if len(active.run.retries) > len(before.retries):
            self._want_offers()  # a failed index waits again: clear old filters

    def tick(self) -> None:
        """Periodic work: maxLaunchDelay, due schedule times, dependency triggers, writes."""
        now = self.now()
        for active in list(self.runs.values()):
            checked = active.run.check_deadlines(now)
            if checked is not active.run:
                log.warning("run did not start within maxLaunchDelay", job_id=checked.job_id,
                            run_id=checked.id)
                self._kill_live(active)
                active.run = checked
                self._finish(active)
        for job_id, schedules in list(self.schedules.items()):
            for state in list(schedules.values()):
                self._decide(job_id, state, now)
        self._trigger_dependents(now)
        self.flush()
        self._want_offers(revive=False)

    def flush(self) -> None:
        """Write the runs changed by status updates since the last flush (one write each)."""
        for run_id in sorted(self._dirty):
            active = self.runs.get(run_id)
            if active is not None:
                self._store_run(active)
        self._dirty.clear()

    # --------------------------------------------------------------- internals

    def now(self) -> datetime:
        """The wall-clock time (UTC)."""
        return datetime.fromtimestamp(self.wall.now(), UTC)

    def _create_run(self, job: JobSpec, schedule_id: str | None = None,
                    due_at: datetime | None = None, *, launchable: bool = True) -> JobRun:
        now = self.now()
        run = JobRun.start(job, now, self.rng, schedule_id=schedule_id, due_at=due_at)
        while run.id in self.runs:
            run = JobRun.start(job, now, self.rng, schedule_id=schedule_id, due_at=due_at)
        active = ActiveRun(run, launchable=launchable)
        reason = job.run.unsupported_reason
        if reason is not None:
            log.warning("run refused", job_id=job.id, run_id=run.id, reason=reason)
            active.run = run.refuse(now, reason)
        self.runs[run.id] = active
        self.counters["runs_started"] += 1
        log.info("run created", job_id=job.id, run_id=run.id, schedule_id=schedule_id)
        if active.run.status.is_terminal:
            self._finish(active)
        return active.run

    def _decide(self, job_id: str, state: ScheduleState, now: datetime) -> None:
        job = self.jobs[job_id]
        decision = decide(state.spec, state.handled_until, now,
                          run_active=bool(self.active_runs(job_id)))
        state.handled_until = decision.handled_until
        skipped = list(decision.skipped)
        started: list[ActiveRun] = []
        for due in decision.start:
            if not self._parents_succeeded(job):
                skipped.append(due)
                continue
            run = self._create_run(job, state.spec.id, due, launchable=False)
            active = self.runs.get(run.id)
            if active is not None:
                started.append(active)
                self._store_run(active)
        for due in decision.missed:
            log.warning("schedule missed its starting deadline", job_id=job_id,
                        schedule_id=state.spec.id, due_at=_iso(due))
        for due in skipped:
            log.info("scheduled run skipped", job_id=job_id, schedule_id=state.spec.id,
                     due_at=_iso(due))
        self.counters["schedule_missed"] += len(decision.missed)
        self.counters["schedule_skipped"] += len(skipped)
        if not decision.start:
            return

        def decided() -> None:
            for active in started:
                active.launchable = True
            self._want_offers()

        self.sink.write(Mutation(store_key("schedules", f"{job_id}@{state.spec.id}"),
                                 state.to_record()), decided)

    def _parents_succeeded(self, job: JobSpec) -> bool:
        return all(self.history(parent).latest_succeeded for parent in job.dependencies)

    def _trigger_dependents(self, now: datetime) -> None:
        for job in list(self.jobs.values()):
            if not job.dependencies or self.active_runs(job.id):
                continue
            since = self.triggers.get(job.id)
            ready = all(
                self.history(parent).latest_succeeded
                and (since is None or (self.history(parent).last_success_at or since) > since)
                for parent in job.dependencies
            )
            if ready:
                log.info("parents succeeded; starting dependent job", job_id=job.id)
                run = self._create_run(job)
                active = self.runs.get(run.id)
                if active is not None:
                    active.by_parents = True
                    self._store_run(active)
                self._set_trigger(job.id, now)
                self._want_offers()

    def _set_trigger(self, job_id: str, moment: datetime) -> None:
        self.triggers[job_id] = moment
        self.sink.write(Mutation(store_key("triggers", job_id),
                                 moment.astimezone(UTC).isoformat().encode()))

    def _store_schedule(self, job_id: str, schedule: ScheduleSpec) -> None:
        state = ScheduleState(schedule, self.now())
        self.schedules.setdefault(job_id, {})[schedule.id] = state
        self.sink.write(Mutation(store_key("schedules", f"{job_id}@{schedule.id}"),
                                 state.to_record()))

    def _waiting(self) -> Iterable[ActiveRun]:
        """Launchable runs with task indices to launch, oldest first."""
        for active in sorted(self.runs.values(), key=lambda a: a.run.created_at):
            if active.launchable and active.run.has_pending:
                yield active

    def _pack(self, active: ActiveRun, job: JobSpec, budget: OfferBudget, now: datetime,
              offers_left: int) -> list[mesos_pb2.TaskInfo]:
        """Launch into `budget` this offer's share of the run's launchable tasks."""
        spec = job.run
        run = active.run
        room = min(LIVE_TASKS_PER_RUN - len(run.live), run.pending_count)
        tasks: list[mesos_pb2.TaskInfo] = []
        launches: list[tuple[int, str]] = []
        for index in itertools.islice(run.iter_pending(), max(-(-room // offers_left), 0)):
            if not budget.fits(cpus=spec.cpus, mem=spec.mem, disk=spec.disk, gpus=spec.gpus):
                break
            task_id = run.next_task_id(index)
            image = spec.image
            command: str | list[str] | None = (
                spec.cmd if spec.cmd is not None
                else None if image is not None else list(spec.args or ()))
            task = command_task(
                task_id, budget, command, cpus=spec.cpus, mem=spec.mem, disk=spec.disk,
                gpus=spec.gpus, env=spec.task_environment(index), name=job.id,
                kill_grace_period=spec.task_kill_grace_period_seconds,
                image=image[0] if image is not None else None,
                force_pull_image=image is not None and image[1],
                volumes=[volume(v.host_path, v.container_path, read_only=v.mode == "RO")
                         for v in spec.volumes if v.host_path is not None],
            )
            if image is not None and spec.cmd is None:
                task.command.arguments.extend(spec.args or ())  # after the Entrypoint
            if spec.user is not None:
                task.command.user = spec.user
            for artifact in spec.artifacts:
                task.command.uris.add(value=artifact.uri, extract=artifact.extract,
                                      executable=artifact.executable, cache=artifact.cache)
            launches.append((index, task_id))
            active.agents[task_id] = budget.agent_id.value
            tasks.append(task)
        active.run = run.tasks_launched(launches, now)
        return tasks

    def _want_offers(self, *, revive: bool = True) -> None:
        """Revive when work waits (always with `revive`, to clear old filters); suppress when
        nothing does."""
        waiting = any(True for _ in self._waiting())
        if waiting and (revive or self.suppressed):
            self.suppressed = False
            self.actions.revive()
        elif not waiting and not self.suppressed:
            self.suppressed = True
            self.actions.suppress()

    def _kill_live(self, active: ActiveRun) -> None:
        job = self.jobs.get(active.run.job_id)
        grace = job.run.task_kill_grace_period_seconds if job is not None else None
        for task_id in active.run.live_task_ids():
            self.actions.kill(task_id, active.agents.get(task_id, ""), grace)

    def _finish(self, active: ActiveRun) -> None:
        """Move a terminal run to the finished runs and the history (run record first)."""
        run = active.run
        self.runs.pop(run.id, None)
        self._dirty.discard(run.id)
        succeeded = run.status is RunStatus.SUCCESS
        self.counters["runs_succeeded" if succeeded else "runs_failed"] += 1
        log.info("run finished", job_id=run.job_id, run_id=run.id, status=run.status.value)
        if run.job_id not in self.jobs:
            return
        self._store_run(active)
        finished = self.finished.setdefault(run.job_id, [])
        finished.insert(0, run)
        for stale in finished[FINISHED_RUNS_KEPT:]:
            self.sink.write(Mutation(_run_key(stale), None))
        del finished[FINISHED_RUNS_KEPT:]
        history = self.history(run.job_id).record(run)
        self.histories[run.job_id] = history
        self.sink.write(Mutation(store_key("history", run.job_id), _history_record(history)))

    def _store_run(self, active: ActiveRun, then: Callable[[], None] | None = None) -> None:
        self.sink.write(Mutation(_run_key(active.run), active.to_record()), then)


def _run_key(run: JobRun) -> str:
    return store_key("runs", f"{run.job_id}@{run.id}")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def _from_ms(milliseconds: int) -> datetime:
    return datetime.fromtimestamp(milliseconds / 1000, UTC)


def _from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _optional_iso(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _history_record(history: JobHistory) -> bytes:
    def runs(items: Sequence[FinishedRun]) -> list[list[Any]]:
        return [[f.id, _iso(f.created_at), _iso(f.finished_at), f.schedule_id, _iso(f.due_at),
                 list(f.tasks)] for f in items]

    return json.dumps({
        "successCount": history.success_count, "failureCount": history.failure_count,
        "lastSuccessAt": _iso(history.last_success_at),
        "lastFailureAt": _iso(history.last_failure_at),
        "successfulRuns": runs(history.successful_runs), "failedRuns": runs(history.failed_runs),
    }).encode()


def _history_from_record(job_id: str, data: bytes) -> JobHistory:
    raw = json.loads(data)

    def runs(items: list[list[Any]]) -> tuple[FinishedRun, ...]:
        # Entries written before runs kept their schedule have three fields, before they kept
        # their task ids five.
        return tuple(
            FinishedRun(str(item[0]), _from_iso(str(item[1])), _from_iso(str(item[2])),
                        item[3] if len(item) > 3 else None,
                        _optional_iso(item[4]) if len(item) > 4 else None,
                        tuple(str(task) for task in item[5]) if len(item) > 5 else ())
            for item in items
        )

    return JobHistory(
        job_id, raw["successCount"], raw["failureCount"], _optional_iso(raw["lastSuccessAt"]),
        _optional_iso(raw["lastFailureAt"]), runs(raw["successfulRuns"]), runs(raw["failedRuns"]),
    )


def parse_job_body(obj: Any) -> tuple[JobSpec, list[ScheduleSpec] | None]:
    """A job body and the schedules it embeds (None when it has no `schedules` key).

    Raises one ValidationError (422) listing the problems of the job and of every schedule
    (paths `/schedules(i)/...`) together.
    """
    violations: list[tuple[str, str]] = []
    job: JobSpec | None = None
    try:
        job = parse_job(obj)
    except ValidationError as error:
        violations += [(v.path, e) for v in error.details for e in v.errors]
    embedded = obj.get("schedules") if isinstance(obj, dict) else None
    schedules: list[ScheduleSpec] = []
    for index, item in enumerate(embedded if isinstance(embedded, list) else []):
        try:
            schedules.append(parse_schedule(item))
        except ValidationError as error:
            violations += [(f"/schedules({index}){v.path}", e) for v in error.details
                           for e in v.errors]
    ids = [s.id for s in schedules]
    if len(ids) != len(set(ids)):
        violations.append(("/schedules", "schedule ids must be unique"))
    if job is None or violations:
        raise ValidationError(violations)
    return job, (schedules if embedded is not None else None)
