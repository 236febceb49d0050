"""BatchCore with recorded actions, in-memory sinks and a fake wall clock: no processes."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest

from frameworks.batch.core import (
    IDLE_DECLINE_SECONDS,
    LIVE_TASKS_PER_RUN,
    BatchCore,
    Conflict,
    Recovered,
    parse_job_body,
)
from frameworks.batch.jobs import ValidationError, parse_job
from frameworks.batch.runs import RunStatus
from frameworks.batch.schedules import parse_schedule
from mesos_coordination.store import MemorySink, Mutation, store_key
from mesos_runtime.clock import FakeClock
from mesos_values.resources import Resources
from protos import mesos_pb2

START = datetime(2024, 5, 1, 12, 0, 30, tzinfo=UTC)


class RecordingActions:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def launch(self, offer_id: str, tasks: Sequence[mesos_pb2.TaskInfo]) -> None:
        self.calls.append(("launch", (offer_id, list(tasks))))

    def decline(self, offer_id: str, refuse_seconds: float) -> None:
        self.calls.append(("decline", (offer_id, refuse_seconds)))

    def kill(self, task_id: str, agent_id: str, grace_seconds: float | None) -> None:
        self.calls.append(("kill", task_id))

    def revive(self) -> None:
        self.calls.append(("revive", None))

    def suppress(self) -> None:
        self.calls.append(("suppress", None))

    def reconcile(self, tasks: Sequence[tuple[str, str]]) -> None:
        self.calls.append(("reconcile", list(tasks)))

    def of(self, name: str) -> list[Any]:
        return [arg for call, arg in self.calls if call == name]

    def launched(self) -> list[mesos_pb2.TaskInfo]:
        return [task for _, tasks in self.of("launch") for task in tasks]


class PrefixSink:
    """A sink whose writes become durable only when told, a prefix at a time (to crash between
    two writes)."""

    def __init__(self) -> None:
        self.entries: dict[str, bytes] = {}
        self.pending: list[tuple[Mutation, Callable[[], None] | None]] = []

    def write(self, mutation: Mutation, then: Callable[[], None] | None = None) -> None:
        self.pending.append((mutation, then))

    def flush(self, count: int | None = None) -> None:
        taken = self.pending[:count] if count is not None else list(self.pending)
        del self.pending[:len(taken)]
        for mutation, then in taken:
            if mutation.value is None:
                self.entries.pop(mutation.key, None)
            else:
                self.entries[mutation.key] = mutation.value
            if then is not None:
                then()


class Harness:
    def __init__(self, sink: MemorySink | PrefixSink | None = None,
                 recovered: Recovered | None = None, clock: FakeClock | None = None) -> None:
        self.clock = clock or FakeClock(START.timestamp())
        self.actions = RecordingActions()
        self.sink = sink if sink is not None else MemorySink()
        self.core = BatchCore(wall=self.clock, actions=self.actions, sink=self.sink,
                              recovered=recovered, rng=random.Random(7))
        self.offers = 0

    def restart(self) -> Harness:
        """A new leader recovering from what is durable now."""
        return Harness(sink=self.sink, recovered=Recovered.decode(dict(self.sink.entries)),
                       clock=self.clock)

    def offer(self, resources: str = "cpus:4;mem:4096;disk:1000", hostname: str = "h1",
              attributes: dict[str, str] | None = None,
              image_providers: tuple[str, ...] = ("docker",)) -> list[mesos_pb2.TaskInfo]:
        """Offer resources (of an agent that runs images, unless `image_providers` says
        otherwise); the tasks launched into it."""
        self.offers += 1
        offer = mesos_pb2.Offer(hostname=hostname, image_providers=image_providers)
        offer.id.value = f"offer-{self.offers}"
        offer.agent_id.value = f"agent-{hostname}"
        offer.resources.extend(Resources.parse(resources).to_proto())
        for name, value in (attributes or {}).items():
            offer.attributes.add(name=name, type=mesos_pb2.Value.TEXT).text.value = value
        before = len(self.actions.launched())
        self.core.resource_offers([offer])
        return self.actions.launched()[before:]

    def update(self, task: mesos_pb2.TaskInfo | str, state: str) -> None:
        status = mesos_pb2.TaskStatus(state=mesos_pb2.TaskState.Value(state))
        status.task_id.value = task if isinstance(task, str) else task.task_id.value
        status.agent_id.value = "agent-h1"
        self.core.status_update(status)

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.core.tick()


def job(job_id: str = "nightly", **run: Any) -> Any:
    return parse_job({"id": job_id, "run": {"cmd": "true", "cpus": 1, "mem": 64, **run}})


def env(task: mesos_pb2.TaskInfo) -> dict[str, str]:
    return {v.name: v.value for v in task.command.environment.variables}


def test_a_one_off_run_succeeds_and_is_counted() -> None:
    h = Harness()
    h.core.put_job(job(), create=True)
    run = h.core.start_run("nightly")
    assert run.status is RunStatus.INITIAL and h.actions.of("revive")
    [task] = h.offer()
    assert task.task_id.value == f"nightly_{run.id}.0.0" and task.command.value == "true"
    h.update(task, "TASK_RUNNING")
    assert h.core.find_run("nightly", run.id).status is RunStatus.ACTIVE
    h.update(task, "TASK_FINISHED")
    finished = h.core.find_run("nightly", run.id)
    assert finished.status is RunStatus.SUCCESS and not h.core.active_runs("nightly")
    assert h.core.history("nightly").success_count == 1
    assert h.actions.calls[-1] == ("suppress", None)  # idle again: no offers wanted


def test_on_failure_retries_until_success() -> None:
    h = Harness()
    h.core.put_job(job(restart={"policy": "ON_FAILURE"}), create=True)
    run = h.core.start_run("nightly")
    [first] = h.offer()
    h.update(first, "TASK_FAILED")
    assert h.core.find_run("nightly", run.id).status is RunStatus.STARTING
    [second] = h.offer()
    assert second.task_id.value.endswith(".0.1")  # the next attempt of index 0
    h.update(second, "TASK_FINISHED")
    history = h.core.history("nightly")
    assert (history.success_count, history.failure_count) == (1, 0)
    # the history entry lists both attempts' task ids, also after a restart
    expected = [first.task_id.value, second.task_id.value]
    for core in (h.core, h.restart().core):
        [entry] = core.history("nightly").to_json()["successfulFinishedRuns"]
        assert entry["id"] == run.id and entry["tasks"] == expected


def test_active_deadline_ends_the_retries() -> None:
    h = Harness()
    h.core.put_job(job(restart={"policy": "ON_FAILURE", "activeDeadlineSeconds": 60}),
                   create=True)
    run = h.core.start_run("nightly")
    [first] = h.offer()
    h.update(first, "TASK_FAILED")
    [second] = h.offer()
    h.advance(61)
    h.update(second, "TASK_FAILED")
    assert h.core.find_run("nightly", run.id).status is RunStatus.FAILED
    assert h.core.history("nightly").failure_count == 1
    assert h.offer() == []


def test_max_launch_delay_fails_a_run_that_gets_no_offer() -> None:
    h = Harness()
    h.core.put_job(job(maxLaunchDelay=30), create=True)
    run = h.core.start_run("nightly")
    h.advance(29)
    assert h.core.active_runs("nightly")
    h.advance(2)
    assert h.core.find_run("nightly", run.id).status is RunStatus.FAILED


def test_array_jobs_pack_indexed_tasks_into_offers() -> None:
    h = Harness()
    h.core.put_job(job("fan", arraySize=5), create=True)
    h.core.start_run("fan")
    first = h.offer("cpus:3;mem:4096")
    assert [env(t)["INDEX"] for t in first] == ["0", "1", "2"]
    second = h.offer("cpus:8;mem:4096")
    assert [env(t)["INDEX"] for t in second] == ["3", "4"]
    assert len(h.actions.of("launch")) == 2  # one launch per offer
    for task in first + second:
        h.update(task, "TASK_FINISHED")
    assert h.core.history("fan").success_count == 1


def test_placement_constraints_choose_the_agent() -> None:
    h = Harness()
    h.core.put_job(job(placement={"constraints": [
        {"attribute": "rack", "operator": "EQ", "value": "r2"}]}), create=True)
    h.core.start_run("nightly")
    assert h.offer(attributes={"rack": "r1"}) == []
    assert len(h.offer(attributes={"rack": "r2"})) == 1


def test_idle_framework_suppresses_and_declines_for_long() -> None:
    h = Harness()
    h.core.registered("fw-1")
    assert h.actions.of("suppress") and h.core.suppressed
    h.offer()
    assert h.actions.of("decline")[-1][1] == IDLE_DECLINE_SECONDS
    h.core.put_job(job(), create=True)
    h.core.start_run("nightly")
    assert h.actions.calls[-1] == ("revive", None) and not h.core.suppressed


def test_tasks_are_launched_only_once_their_run_is_durable() -> None:
    h = Harness(sink=MemorySink(hold=True))
    h.core.put_job(job(), create=True)
    h.core.start_run("nightly")
    assert h.offer() == []
    assert isinstance(h.sink, MemorySink)
    h.sink.flush()
    assert len(h.actions.launched()) == 1


def test_cron_fires_once_per_due_time_across_restarts() -> None:
    h = Harness()
    h.core.put_job(job(), create=True)
    h.core.put_schedule("nightly", parse_schedule({"id": "every", "cron": "* * * * *"}),
                        create=True)
    for step in range(10):
        h.advance(60)
        if step % 3 == 2:
            h = h.restart()
    runs = [*h.core.runs.values()]
    due = sorted(a.run.due_at for a in runs if a.run.due_at is not None)
    assert len(due) == 10 and len(set(due)) == 10  # one run per minute, none twice


def test_a_crash_before_the_history_update_counts_the_run_once_in_any_store_order() -> None:
    sink = PrefixSink()
    h = Harness(sink=sink)
    h.core.put_job(job(), create=True)
    for finished in range(1, 12):  # ten finished runs, then one more
        h.core.start_run("nightly")
        h.offer()
        sink.flush()  # the run record is durable: its task is launched
        task = h.actions.launched()[-1]
        h.clock.advance(1)
        h.update(task, "TASK_FINISHED")
        if finished <= 10:
            sink.flush()
    # the 11th run's SUCCESS record is durable; the delete of the oldest record and the
    # history update are not (the process dies)
    assert len(sink.pending) == 3
    sink.flush(1)
    assert h.core.history("nightly").success_count == 11
    for entries in (dict(sink.entries), dict(reversed(list(sink.entries.items())))):
        recovered = Recovered.decode(entries)
        assert recovered.histories["nightly"].success_count == 11


@pytest.mark.parametrize("durable_writes", range(4))
def test_a_crash_between_the_runs_and_the_watermark_neither_loses_nor_repeats(
        durable_writes: int) -> None:
    sink = PrefixSink()
    h = Harness(sink=sink)
    h.core.put_job(job(), create=True)
    h.core.put_schedule("nightly", parse_schedule({"id": "every", "cron": "* * * * *",
                                                   "startingDeadlineSeconds": 600}), create=True)
    sink.flush()
    h.clock.advance(140)  # two due times: 12:01 and 12:02
    h.core.tick()
    assert len(sink.pending) == 3  # run 12:01, run 12:02, then the watermark
    assert h.offer() == []  # not launchable before the watermark is durable
    sink.flush(durable_writes)  # ... then the process dies
    after = h.restart()
    after.core.tick()
    due = sorted(a.run.due_at for a in after.core.runs.values() if a.run.due_at is not None)
    assert due == [datetime(2024, 5, 1, 12, m, tzinfo=UTC) for m in (1, 2)]


def test_forbid_skips_due_times_while_a_run_is_active() -> None:
    h = Harness()
    h.core.put_job(job(), create=True)
    h.core.put_schedule("nightly", parse_schedule(
        {"id": "every", "cron": "* * * * *", "concurrencyPolicy": "FORBID"}), create=True)
    h.advance(60)
    [task] = h.offer()
    h.update(task, "TASK_RUNNING")
    h.advance(60)
    h.advance(60)
    assert len(h.core.active_runs("nightly")) == 1
    assert h.core.counters["schedule_skipped"] == 2
    h.update(task, "TASK_FINISHED")
    h.advance(60)
    assert len(h.core.active_runs("nightly")) == 1


def finish_all(h: Harness, state: str = "TASK_FINISHED") -> None:
    h.clock.advance(1)
    for task in h.offer("cpus:16;mem:16384"):
        h.update(task, state)


def test_dependents_run_in_dag_order_after_their_parents_succeed() -> None:
    h = Harness()
    for spec in (job("a"), job("b"), job("c", ), job("d")):
        h.core.put_job(spec, create=True)
    h.core.put_job(parse_job({"id": "c", "dependencies": [{"id": "a"}, {"id": "b"}],
                              "run": {"cmd": "true"}}), create=False)
    h.core.put_job(parse_job({"id": "d", "dependencies": [{"id": "c"}],
                              "run": {"cmd": "true"}}), create=False)
    h.core.start_run("a")
    finish_all(h)
    h.core.tick()
    assert not h.core.active_runs("c")  # b has not succeeded yet
    h.core.start_run("b")
    h.core.tick()
    assert not h.core.active_runs("c")
    finish_all(h, "TASK_FAILED")
    h.core.start_run("b")
    finish_all(h)
    assert len(h.core.active_runs("c")) == 1 and not h.core.active_runs("d")
    finish_all(h)
    assert len(h.core.active_runs("d")) == 1
    finish_all(h)
    h.advance(60)
    assert [h.core.history(j).success_count for j in "abcd"] == [1, 1, 1, 1]


def test_dependency_cycles_are_refused() -> None:
    h = Harness()
    h.core.put_job(job("a"), create=True)
    h.core.put_job(parse_job({"id": "b", "dependencies": ["a"], "run": {"cmd": "true"}}),
                   create=True)
    with pytest.raises(ValidationError):
        h.core.put_job(parse_job({"id": "a", "dependencies": ["b"], "run": {"cmd": "true"}}),
                       create=False)


def test_a_restart_mid_run_keeps_the_run_and_reconciles_its_task() -> None:
    h = Harness()
    h.core.put_job(job(), create=True)
    h.core.start_run("nightly")
    h.update(done := h.offer()[0], "TASK_FINISHED")
    assert done
    run = h.core.start_run("nightly")
    [task] = h.offer()
    h.update(task, "TASK_RUNNING")
    h.core.flush()
    after = h.restart()
    assert after.core.find_run("nightly", run.id).status is RunStatus.ACTIVE
    assert after.core.history("nightly").success_count == 1
    after.core.registered("fw-1")
    assert after.actions.of("reconcile") == [[(task.task_id.value, "agent-h1")]]
    after.update(task, "TASK_FINISHED")
    assert after.core.history("nightly").success_count == 2


def test_deleting_a_job_with_active_runs_needs_stop_current_runs() -> None:
    h = Harness()
    h.core.put_job(job(), create=True)
    h.core.start_run("nightly")
    [task] = h.offer()
    with pytest.raises(Conflict):
        h.core.delete_job("nightly", stop_current_runs=False)
    h.core.delete_job("nightly", stop_current_runs=True)
    assert h.actions.of("kill") == [task.task_id.value]
    assert not any(key.endswith("nightly") or "nightly%40" in key
                   for key in h.sink.entries if not key.startswith("framework"))


def test_updates_for_tasks_of_no_active_run_kill_them() -> None:
    h = Harness()
    h.update("stray_20240501120000abcde.0.0", "TASK_RUNNING")
    assert h.actions.of("kill") == ["stray_20240501120000abcde.0.0"]


def run_records(sink: MemorySink) -> list[bytes]:
    return [m.value for m in sink.written if m.key.startswith("runs") and m.value is not None]


def test_a_10000_task_array_run_keeps_its_record_small_and_survives_a_restart() -> None:
    h = Harness()
    h.core.put_job(job("fan", cpus=0.01, mem=32, arraySize=10_000), create=True)
    run = h.core.start_run("fan")
    big = "cpus:1000;mem:1000000"
    first = h.offer(big)
    assert len(first) == LIVE_TASKS_PER_RUN  # a window of live tasks, not all 10,000 at once
    assert h.offer(big) == []  # the window is full
    finished: list[str] = []
    live = first
    while len(finished) < 5_000:
        for task in live:
            h.update(task, "TASK_RUNNING")
            h.update(task, "TASK_FINISHED")
            finished.append(task.task_id.value)
        h.core.flush()
        live = h.offer(big)
    h.core.flush()
    assert isinstance(h.sink, MemorySink)
    assert max(len(record) for record in run_records(h.sink)) < 64_000
    after = h.restart()  # a new leader: 1,000 tasks launched and not reported yet
    after.core.registered("fw-1")
    [reconciled] = after.actions.of("reconcile")
    assert sorted(task_id for task_id, _ in reconciled) == sorted(t.task_id.value for t in live)
    recovered = after.core.find_run("fan", run.id)
    assert recovered.succeeded == 5_000 and recovered.pending_count == 4_000
    while live:
        for task in live:
            after.update(task, "TASK_FINISHED")
            finished.append(task.task_id.value)
        live = after.offer(big)
    assert after.core.find_run("fan", run.id).status is RunStatus.SUCCESS
    assert len(finished) == len(set(finished)) == 10_000  # every index once, no task twice
    assert sorted(int(task_id.rsplit(".", 2)[1]) for task_id in finished) == list(range(10_000))


def test_offers_that_come_together_share_the_work() -> None:
    h = Harness()
    h.core.put_job(job("fan", cpus=0.1, arraySize=10), create=True)
    h.core.start_run("fan")
    offers = []
    for host in ("h1", "h2"):
        offer = mesos_pb2.Offer(hostname=host)
        offer.id.value = f"offer-{host}"
        offer.agent_id.value = f"agent-{host}"
        offer.resources.extend(Resources.parse("cpus:8;mem:8192").to_proto())
        offers.append(offer)
    h.core.resource_offers(offers)
    assert [(offer_id, len(tasks)) for offer_id, tasks in h.actions.of("launch")] == [
        ("offer-h1", 5), ("offer-h2", 5)]


def test_a_tasks_progress_is_written_only_when_the_run_changes() -> None:
    h = Harness()
    h.core.put_job(job("fan", arraySize=2), create=True)
    h.core.start_run("fan")
    first, second = h.offer()
    assert isinstance(h.sink, MemorySink)
    writes = len(run_records(h.sink))
    h.update(first, "TASK_STARTING")
    h.update(first, "TASK_RUNNING")  # STARTING -> ACTIVE: written
    h.update(second, "TASK_RUNNING")  # the run stays ACTIVE: not written
    h.core.flush()
    assert len(run_records(h.sink)) == writes + 1
    h.update(second, "TASK_FINISHED")  # counts change: written
    h.core.flush()
    assert len(run_records(h.sink)) == writes + 2


def test_a_history_record_written_before_task_ids_were_kept_still_reads() -> None:
    old = (b'{"successCount": 1, "failureCount": 0, "lastSuccessAt": "2024-05-01T12:00:31+00:00",'
           b' "lastFailureAt": null, "successfulRuns": [["20240501120030abcde",'
           b' "2024-05-01T12:00:30+00:00", "2024-05-01T12:00:31+00:00", null, null]],'
           b' "failedRuns": []}')
    recovered = Recovered.decode({"history/nightly": old})
    [entry] = recovered.histories["nightly"].to_json()["successfulFinishedRuns"]
    assert entry["id"] == "20240501120030abcde" and entry["tasks"] == []


def test_the_queue_lists_runs_waiting_for_offers_by_job() -> None:
    h = Harness()
    h.core.put_job(job("b"), create=True)
    h.core.put_job(job("a", cpus=8), create=True)
    running = h.core.start_run("b")
    [task] = h.offer()
    h.update(task, "TASK_RUNNING")
    waiting = h.core.start_run("b")
    too_big = h.core.start_run("a")
    queued = h.core.queued_runs()
    assert list(queued) == ["a", "b"]
    assert [r.id for r in queued["a"]] == [too_big.id]
    assert [r.id for r in queued["b"]] == [waiting.id] and running.id not in queued["b"]
    h.core.stop_run("a", too_big.id)
    assert list(h.core.queued_runs()) == ["b"]


def test_a_job_body_reports_the_problems_of_the_job_and_its_schedules_together() -> None:
    with pytest.raises(ValidationError) as raised:
        parse_job_body({"id": "Bad Id", "run": {"cpus": 1, "mem": 64, "cmd": "true"},
                        "schedules": [{"id": "ok", "cron": "* * * * *"},
                                      {"id": "bad", "cron": "nonsense"}]})
    paths = {detail.path for detail in raised.value.details}
    assert "/id" in paths and any(p.startswith("/schedules(1)") for p in paths)
    job_, schedules = parse_job_body({"id": "a", "run": {"cmd": "true", "cpus": 1, "mem": 64},
                                      "schedules": [{"id": "nightly", "cron": "0 1 * * *"}]})
    assert job_.id == "a" and schedules is not None and [s.id for s in schedules] == ["nightly"]
    assert parse_job_body({"id": "a", "run": {"cmd": "true", "cpus": 1, "mem": 64}})[1] is None


def test_recovery_sets_bad_records_aside_and_keeps_the_rest() -> None:
    h = Harness()
    h.core.put_job(job("good"), [parse_schedule({"id": "hourly", "cron": "0 * * * *"})],
                   create=True)
    bad = store_key("jobs", "æÊÚl")
    h.sink.entries |= {
        bad: json.dumps({"id": "æÊÚl", "run": {"cmd": "true", "cpus": 1, "mem": 64}}).encode(),
        store_key("schedules", "æÊÚl@hourly"): h.sink.entries[
            store_key("schedules", "good@hourly")],
        store_key("jobs", "other"): json.dumps(job("good").to_json()).encode(),
        store_key("history", "truncated"): b'{"successCount": 1',
    }
    successor = h.restart()
    assert set(successor.core.jobs) == {"good"} and set(successor.core.schedules) == {"good"}
    aside = {record.key: record.reason for record in successor.core.set_aside}
    assert set(aside) == {bad, store_key("schedules", "æÊÚl@hourly"), store_key("jobs", "other"),
                          store_key("history", "truncated")}
    assert aside[bad].startswith("ValidationError: /id: must be")
    assert aside[store_key("schedules", "æÊÚl@hourly")] == "its job 'æÊÚl' is set aside"
    assert aside[store_key("jobs", "other")] == "ValueError: holds job 'good'"

    assert successor.core.discard_set_aside("æÊÚl")
    assert not successor.core.discard_set_aside("æÊÚl")
    successor.core.put_job(job("truncated"), create=True)
    successor.core.delete_job("truncated", stop_current_runs=False)
    assert [r.key for r in successor.restart().core.set_aside] == [store_key("jobs", "other")]
    assert not successor.core.discard_record(store_key("jobs", "good"))  # not set aside
    assert successor.core.discard_record(store_key("jobs", "other"))
    assert not successor.core.discard_record(store_key("jobs", "other"))
    assert not successor.restart().core.set_aside
    assert set(successor.restart().core.jobs) == {"good"}


@pytest.mark.parametrize(("run_fields", "command", "arguments"), [
    ({"cmd": None, "docker": {"image": "busybox", "forcePullImage": True}}, "", []),
    ({"cmd": None, "args": ["-x"], "ucr": {"image": {"id": "busybox"}}}, "", ["-x"]),
    ({"docker": {"image": "busybox"},
      "volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}]}, "true", []),
], ids=["docker", "ucr-args", "cmd-volume"])
def test_runs_of_jobs_with_an_image_launch_image_tasks(
        run_fields: dict[str, Any], command: str, arguments: list[str]) -> None:
    h = Harness()
    body = {"cmd": "true", "cpus": 1, "mem": 64, **run_fields}
    h.core.put_job(parse_job({"id": "imaged", "run": {k: v for k, v in body.items()
                                                      if v is not None}}), create=True)
    h.core.start_run("imaged")
    assert h.offer(image_providers=()) == []  # an agent that runs no images
    [task] = h.offer()
    assert task.container.mesos.image.docker.name == "busybox"
    assert task.container.mesos.image.HasField("cached") == ("docker" in run_fields
                                                             and command == "")
    assert (task.command.value, list(task.command.arguments)) == (command, arguments)
    assert [(v.container_path, v.mode) for v in task.container.volumes] == (
        [("/data", mesos_pb2.Volume.RO)] if "volumes" in run_fields else [])


@pytest.mark.parametrize(("run_fields", "why"), [
    ({"docker": {"image": "busybox", "privileged": True}}, "run.docker.privileged"),
    ({"docker": {"image": "busybox", "parameters": [{"key": "a", "value": "b"}]}},
     "run.docker.parameters"),
    ({"volumes": [{"containerPath": "/data", "hostPath": "/srv", "mode": "RO"}]},
     "run.volumes: volumes need a container image"),
])
def test_a_run_this_cluster_cannot_give_fails_at_once_and_says_why(
        run_fields: dict[str, Any], why: str) -> None:
    h = Harness()
    body = {"cmd": "true", "cpus": 1, "mem": 64, **run_fields}
    h.core.put_job(parse_job({"id": "imaged", "run": body}), create=True)
    run = h.core.start_run("imaged")
    assert run.status is RunStatus.FAILED
    assert run.to_json()["message"].startswith(why)
    assert h.offer() == [] and not h.core.active_runs("imaged")
    assert h.core.history("imaged").failure_count == 1
    recovered = h.restart().core.find_run("imaged", run.id)
    assert recovered.status is RunStatus.FAILED and recovered.message == run.message


@pytest.mark.parametrize("behavior", ["restricted", "unrestricted"])
def test_restricted_gpu_scheduling_keeps_jobs_without_gpus_off_gpu_offers(
        behavior: str) -> None:
    h = Harness()
    h.core = BatchCore(wall=h.clock, actions=h.actions, sink=h.sink, rng=random.Random(7),
                       gpu_scheduling=behavior)
    h.core.put_job(job("plain"), create=True)
    h.core.put_job(job("gpu", gpus=1), create=True)
    h.core.start_run("plain")
    h.core.start_run("gpu")
    launched = h.offer("cpus:4;mem:4096;disk:1000;gpus:1")
    expected = ["gpu"] if behavior == "restricted" else ["gpu", "plain"]
    assert sorted(t.name for t in launched) == expected
    assert [t.name for t in h.offer()] == ([] if behavior == "unrestricted" else ["plain"])


def test_a_waiting_run_says_why_its_tasks_are_not_launched() -> None:
    h = Harness()
    h.core.put_job(parse_job({"id": "imaged", "run": {
        "cpus": 1, "mem": 64, "docker": {"image": "busybox"}}}), create=True)
    run = h.core.start_run("imaged")
    assert h.core.waiting_reason(run.id) is None  # no offer seen yet
    assert h.offer(image_providers=()) == []
    assert h.core.waiting_reason(run.id) == (
        "no offered agent runs container images (agents need --image_providers=docker)")
    assert h.offer(resources="cpus:0.5;mem:32") == []
    assert h.core.waiting_reason(run.id) == "no offer has the resources a task asks for"
    assert len(h.offer()) == 1
    assert h.core.waiting_reason(run.id) is None  # launched: nothing waits


def test_runs_finished_out_of_creation_order_are_counted_once_across_restarts() -> None:
    """The store keeps the runs the history lists: pruning follows completion, not creation,
    even after a restart, so no kept run falls out of the history and is counted again."""
    h = Harness()
    h.core.put_job(job(), create=True)
    counted = 0
    for round_ in range(4):
        runs = [h.core.start_run("nightly") for _ in range(4)]
        tasks = {t.task_id.value: t for t in h.offer("cpus:16;mem:16384")}
        for run in reversed(runs):  # the newest run finishes first
            h.clock.advance(1)
            h.update(tasks[f"nightly_{run.id}.0.0"], "TASK_FINISHED")
            counted += 1
        h = h.restart()
        assert h.core.history("nightly").success_count == counted, f"round {round_}"
