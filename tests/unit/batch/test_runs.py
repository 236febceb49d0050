"""Runs: ids, the state machine with restarts and deadlines, JSON shapes, and job history."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from frameworks.batch.jobs import JobSpec, parse_job
from frameworks.batch.runs import (
    FINISHED_TASKS_KEPT,
    RUN_ID_PATTERN,
    UTC_SUFFIX,
    JobHistory,
    JobRun,
    RunStatus,
    new_run_id,
    parse_task_id,
)
from mesos_values.timestamps import format_timestamp

METRONOME = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "metronome"
T0 = datetime(2016, 7, 15, 13, 2, 59, 735000, tzinfo=UTC)


def job(**run: Any) -> JobSpec:
    return parse_job({"id": "prod", "run": {"cmd": "true", **run}})


def started(spec: JobSpec | None = None) -> JobRun:
    return JobRun.start(spec or job(), T0, random.Random(1))


def later(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def metronome_time(moment: datetime) -> str:
    return format_timestamp(moment.timestamp(), utc_suffix=UTC_SUFFIX)


def launched(run: JobRun, at: float = 1) -> JobRun:
    for index in run.pending_indices():
        run = run.task_launched(index, run.next_task_id(index), later(at))
    return run


def test_run_ids_look_like_metronomes() -> None:
    for run in json.loads((METRONOME / "run_list.json").read_text()):
        assert RUN_ID_PATTERN.fullmatch(run["id"])
    run_id = new_run_id(T0, random.Random(7))
    assert run_id.startswith("20160715130259")
    assert RUN_ID_PATTERN.fullmatch(run_id)
    assert new_run_id(T0, random.Random(7)) == run_id
    assert new_run_id(T0, random.Random(8)) != run_id


def test_timestamps_are_metronomes() -> None:
    other_zone = T0.astimezone(datetime.now().astimezone().tzinfo)
    for created_at in (T0, other_zone):
        run = JobRun.start(job(), created_at, random.Random(1))
        assert run.to_json()["createdAt"] == "2016-07-15T13:02:59.735+0000"


def test_a_new_run_matches_the_conformance_shape() -> None:
    example = json.loads((METRONOME / "run.json").read_text())
    run = JobRun.start(job(), T0, random.Random(3))
    assert run.status is RunStatus.INITIAL
    body = run.to_json()
    assert set(body) == set(example)
    assert {**body, "id": example["id"], "status": "STARTING"} == example


def test_one_task_runs_to_success() -> None:
    run = started()
    assert run.pending_indices() == (0,)
    task_id = run.next_task_id(0)
    assert parse_task_id(task_id) == ("prod", run.id, 0, 0)
    run = run.task_launched(0, task_id, later(1))
    assert run.status is RunStatus.STARTING
    assert run.pending_indices() == ()
    run = run.task_status(task_id, "TASK_STARTING", later(2))
    assert run.status is RunStatus.STARTING
    run = run.task_status(task_id, "TASK_RUNNING", later(3))
    assert run.status is RunStatus.ACTIVE
    run = run.task_status(task_id, "TASK_FINISHED", later(4))
    assert run.status is RunStatus.SUCCESS
    assert run.completed_at == later(4)
    assert run.to_json()["tasks"] == [{
        "id": task_id, "status": "TASK_FINISHED", "startedAt": metronome_time(later(1)),
        "completedAt": metronome_time(later(4)),
    }]


def test_never_policy_fails_the_run() -> None:
    run = launched(started())
    run = run.task_status(run.tasks[0].id, "TASK_FAILED", later(5))
    assert run.status is RunStatus.FAILED
    assert run.pending_indices() == ()
    assert run.to_json()["completedAt"] == metronome_time(later(5))


def test_on_failure_retries_within_the_deadline_then_fails() -> None:
    run = launched(started(job(restart={"policy": "ON_FAILURE", "activeDeadlineSeconds": 60})))
    run = run.task_status(run.tasks[0].id, "TASK_RUNNING", later(2))
    run = run.task_status(run.tasks[0].id, "TASK_FAILED", later(10))
    assert run.status is RunStatus.STARTING
    assert run.pending_indices() == (0,)
    retry = run.next_task_id(0)
    assert parse_task_id(retry) == ("prod", run.id, 0, 1)
    run = run.task_launched(0, retry, later(11))
    run = run.task_status(retry, "TASK_LOST", later(61))  # past activeDeadlineSeconds
    assert run.status is RunStatus.FAILED


def test_on_failure_without_deadline_retries_until_success() -> None:
    run = started(job(restart={"policy": "ON_FAILURE"}))
    for attempt in range(5):
        run = launched(run, at=attempt * 1000)
        run = run.task_status(run.tasks[-1].id, "TASK_FAILED", later(attempt * 1000 + 1))
        assert run.status is RunStatus.STARTING
    run = launched(run, at=9000)
    run = run.task_status(run.tasks[-1].id, "TASK_FINISHED", later(9001))
    assert run.status is RunStatus.SUCCESS
    assert len(run.tasks) == 6


def test_array_run_succeeds_when_every_index_finished() -> None:
    run = launched(started(job(arraySize=3)))
    assert sorted(task.index for task in run.tasks) == [0, 1, 2]
    ids = [task.id for task in run.tasks]
    run = run.task_status(ids[0], "TASK_RUNNING", later(2))
    assert run.status is RunStatus.ACTIVE
    run = run.task_status(ids[0], "TASK_FINISHED", later(3))
    run = run.task_status(ids[1], "TASK_FINISHED", later(3))
    assert run.status is RunStatus.STARTING  # index 2 is launched but not running
    run = run.task_status(ids[2], "TASK_FINISHED", later(4))
    assert run.status is RunStatus.SUCCESS


def test_array_run_retries_only_the_failed_index() -> None:
    run = launched(started(job(arraySize=2, restart={"policy": "ON_FAILURE"})))
    run = run.task_status(run.tasks[0].id, "TASK_RUNNING", later(2))
    run = run.task_status(run.tasks[1].id, "TASK_RUNNING", later(2))
    run = run.task_status(run.tasks[1].id, "TASK_FAILED", later(3))
    assert run.status is RunStatus.ACTIVE  # index 0 still runs
    assert run.pending_indices() == (1,)
    assert run.live_task_ids() == (run.tasks[0].id,)


def test_a_failed_array_run_names_the_tasks_to_kill() -> None:
    run = launched(started(job(arraySize=2)))
    run = run.task_status(run.tasks[0].id, "TASK_ERROR", later(2))
    assert run.status is RunStatus.FAILED
    assert run.live_task_ids() == (run.tasks[1].id,)
    after_kill = run.task_status(run.tasks[1].id, "TASK_KILLED", later(3))
    assert after_kill.status is RunStatus.FAILED
    assert after_kill.completed_at == later(2)
    assert after_kill.live_task_ids() == ()


def test_max_launch_delay_aborts_a_run_that_never_starts() -> None:
    run = started(job(maxLaunchDelay=30))
    assert run.check_deadlines(later(30)) is run
    assert run.check_deadlines(later(31)).status is RunStatus.FAILED
    running = launched(run)
    active = running.task_status(running.tasks[0].id, "TASK_RUNNING", later(5))
    assert active.check_deadlines(later(1000)) is active


def test_max_launch_delay_counts_from_the_last_retry() -> None:
    run = launched(started(job(maxLaunchDelay=30, restart={"policy": "ON_FAILURE"})))
    run = run.task_status(run.tasks[0].id, "TASK_FAILED", later(100))
    assert run.check_deadlines(later(129)).status is RunStatus.STARTING
    assert run.check_deadlines(later(131)).status is RunStatus.FAILED


def test_stop_fails_a_run_and_leaves_finished_runs_alone() -> None:
    run = launched(started())
    stopped = run.stop(later(5))
    assert stopped.status is RunStatus.FAILED
    assert stopped.live_task_ids() == run.live_task_ids()
    assert stopped.stop(later(6)) is stopped


def test_stale_and_unknown_updates_change_nothing() -> None:
    run = launched(started())
    task_id = run.tasks[0].id
    done = run.task_status(task_id, "TASK_FINISHED", later(3))
    assert done.task_status(task_id, "TASK_FAILED", later(4)) is done
    assert run.task_status("someone-else", "TASK_RUNNING", later(4)) is run


def test_launching_an_index_that_is_not_pending_is_refused() -> None:
    run = launched(started())
    with pytest.raises(ValueError, match="not waiting"):
        run.task_launched(0, run.next_task_id(0), later(2))


def test_a_large_array_run_keeps_counts_and_live_tasks_not_every_task() -> None:
    run = started(job(arraySize=10_000, restart={"policy": "ON_FAILURE"}))
    assert run.pending_count == 10_000 and run.has_pending
    finished_ids: set[str] = set()
    while run.has_pending:
        batch = [(i, run.next_task_id(i)) for i in itertools.islice(run.iter_pending(), 700)]
        run = run.tasks_launched(batch, later(1))
        assert len(run.live) == len(batch)
        for index, task_id in batch:
            first_try = task_id.endswith(".0")
            state = "TASK_FAILED" if index % 1000 == 0 and first_try else "TASK_FINISHED"
            run = run.task_status(task_id, state, later(2))
            if state == "TASK_FINISHED":
                finished_ids.add(task_id)
        assert len(run.tasks) <= FINISHED_TASKS_KEPT  # nothing live, a bounded tail kept
    assert run.status is RunStatus.SUCCESS and run.succeeded == 10_000 == len(finished_ids)
    assert {parse_task_id(t)[2] for t in finished_ids if parse_task_id(t)} == set(range(10_000))
    assert run.failed == 10  # indices 0, 1000, ... failed once each, and were retried
    assert run.live == {} and run.retries == {}


def test_indices_launched_out_of_order_leave_the_skipped_ones_pending() -> None:
    run = started(job(arraySize=5))
    run = run.task_launched(3, run.next_task_id(3), later(1))
    assert run.pending_indices() == (0, 1, 2, 4) and run.pending_count == 4
    assert run.next_task_id(1).endswith(".1.0")
    run = run.tasks_launched([(1, run.next_task_id(1)), (4, run.next_task_id(4))], later(2))
    assert run.pending_indices() == (0, 2)
    with pytest.raises(ValueError, match="not waiting"):
        run.tasks_launched([(0, run.next_task_id(0)), (3, "again")], later(3))


def test_a_task_repeating_its_state_changes_nothing() -> None:
    run = launched(started())
    running = run.task_status(run.tasks[0].id, "TASK_RUNNING", later(2))
    assert running.running == 1
    assert running.task_status(run.tasks[0].id, "TASK_RUNNING", later(3)) is running


@pytest.mark.parametrize("task_id", ["x", "prod_123.0.0", "prod_20160715130259A34HX.a.0", ""])
def test_foreign_task_ids_are_not_ours(task_id: str) -> None:
    assert parse_task_id(task_id) is None


def finished(status: str, at: float, seed: int) -> JobRun:
    run = launched(JobRun.start(job(), later(at), random.Random(seed)), at=at)
    return run.task_status(run.tasks[0].id, status, later(at + 1))


def test_history_counts_and_lists_newest_first() -> None:
    history = JobHistory("prod")
    assert history.to_json() == {
        "successCount": 0, "failureCount": 0, "lastSuccessAt": None, "lastFailureAt": None,
        "successfulFinishedRuns": [], "failedFinishedRuns": [],
    }
    assert not history.latest_succeeded
    ok1, bad, ok2 = (finished("TASK_FINISHED", 10, 1), finished("TASK_FAILED", 20, 2),
                     finished("TASK_FINISHED", 30, 3))
    history = history.record(ok1).record(bad)
    assert not history.latest_succeeded
    history = history.record(ok2)
    assert history.latest_succeeded
    body = history.to_json()
    assert (body["successCount"], body["failureCount"]) == (2, 1)
    assert body["lastSuccessAt"] == metronome_time(later(31))
    assert body["lastFailureAt"] == metronome_time(later(21))
    assert [r["id"] for r in body["successfulFinishedRuns"]] == [ok2.id, ok1.id]
    assert body["failedFinishedRuns"] == [{
        "id": bad.id, "createdAt": metronome_time(later(20)),
        "finishedAt": metronome_time(later(21)), "tasks": [task.id for task in bad.tasks],
    }]
    assert body["failedFinishedRuns"][0]["tasks"]
    assert history.summary_json() == {key: body[key] for key in
                                      ("successCount", "failureCount", "lastSuccessAt",
                                       "lastFailureAt")}


def test_history_keeps_a_bounded_list_but_counts_everything() -> None:
    history = JobHistory("prod")
    for seed in range(5):
        history = history.record(finished("TASK_FINISHED", seed * 10, seed), keep=3)
    assert history.success_count == 5
    assert len(history.successful_runs) == 3


def test_history_does_not_count_a_run_twice_or_an_unfinished_one() -> None:
    run = finished("TASK_FINISHED", 10, 1)
    history = JobHistory("prod").record(run)
    assert history.record(run) is history
    with pytest.raises(ValueError, match="not finished"):
        history.record(started())
    with pytest.raises(ValueError, match="not in the history"):
        JobHistory("other").record(run)
