"""Schedules: the conformance payload, defaults, and the exactly-once due-time decisions."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from frameworks.batch.cron import parse_cron
from frameworks.batch.jobs import ValidationError
from frameworks.batch.schedules import (
    ConcurrencyPolicy,
    ScheduleDecision,
    ScheduleSpec,
    decide,
    parse_schedule,
)
from mesos_http.field_limits import MAX_DURATION_SECONDS

METRONOME = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "metronome"


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def schedule(cron: str = "* * * * *", **fields: Any) -> ScheduleSpec:
    return ScheduleSpec(id="every", cron=parse_cron(cron), **fields)


def errors_of(obj: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        parse_schedule(obj)
    return {d["path"]: d["errors"] for d in caught.value.to_json()["details"]}


def test_schedule_json_round_trips_exactly() -> None:
    obj = json.loads((METRONOME / "schedule.json").read_text())
    spec = parse_schedule(obj)
    assert spec.to_json() == obj
    assert spec.zone == ZoneInfo("America/Chicago")
    assert spec.concurrency_policy is ConcurrencyPolicy.ALLOW


def test_defaults() -> None:
    spec = parse_schedule({"id": "nightly", "cron": "0 3 * * *", "nextRunAt": "ignored"})
    assert spec.to_json() == {
        "id": "nightly", "cron": "0 3 * * *", "timezone": "UTC",
        "startingDeadlineSeconds": 900, "concurrencyPolicy": "ALLOW", "enabled": True,
    }


@pytest.mark.parametrize(
    "obj, path",
    [
        ({"cron": "* * * * *"}, "/id"),
        ({"id": "a", "cron": "* * * * *"}, "/id"),  # schedule ids have two characters or more
        ({"id": "Every", "cron": "* * * * *"}, "/id"),
        ({"id": "every"}, "/cron"),
        ({"id": "every", "cron": 5}, "/cron"),
        ({"id": "every", "cron": "61 * * * *"}, "/cron"),
        ({"id": "every", "cron": "* * * * *", "timezone": "Mars/Olympus"}, "/timezone"),
        ({"id": "every", "cron": "* * * * *", "startingDeadlineSeconds": 0},
         "/startingDeadlineSeconds"),
        # beyond Metronome's int; found by fuzzing: it overflowed `timedelta` in `decide`
        ({"id": "every", "cron": "* * * * *", "startingDeadlineSeconds": 2**65},
         "/startingDeadlineSeconds"),
        ({"id": "every", "cron": "* * * * *", "concurrencyPolicy": "REPLACE"},
         "/concurrencyPolicy"),
        ({"id": "every", "cron": "* * * * *", "enabled": "yes"}, "/enabled"),
        ([], "/"),
    ],
)
def test_invalid_schedules(obj: Any, path: str) -> None:
    assert path in errors_of(obj)


def test_the_longest_starting_deadline_decides() -> None:
    spec = parse_schedule({"id": "every", "cron": "* * * * *",
                           "startingDeadlineSeconds": MAX_DURATION_SECONDS})
    decision = decide(spec, utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 10, 2), run_active=False)
    assert decision.start == (utc(2024, 1, 1, 10, 1), utc(2024, 1, 1, 10, 2))


def test_cron_error_message_says_why() -> None:
    message = errors_of({"id": "every", "cron": "61 * * * *"})["/cron"][0]
    assert "minute: 61 is out of range 0-59" in message


def test_nothing_due_yet() -> None:
    decision = decide(schedule(), utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 10, 0, 30),
                      run_active=False)
    assert decision == ScheduleDecision((), (), (), utc(2024, 1, 1, 10, 0, 30),
                                        utc(2024, 1, 1, 10, 1))


def test_allow_starts_every_due_time_within_the_deadline() -> None:
    decision = decide(schedule(starting_deadline_seconds=120), utc(2024, 1, 1, 10, 0),
                      utc(2024, 1, 1, 10, 5), run_active=True)
    assert decision.start == (utc(2024, 1, 1, 10, 3), utc(2024, 1, 1, 10, 4),
                              utc(2024, 1, 1, 10, 5))
    assert decision.missed == (utc(2024, 1, 1, 10, 1), utc(2024, 1, 1, 10, 2))
    assert decision.skipped == ()
    assert decision.handled_until == utc(2024, 1, 1, 10, 5)
    assert decision.next_due == utc(2024, 1, 1, 10, 6)


def test_forbid_skips_while_a_run_is_active() -> None:
    spec = schedule(concurrency_policy=ConcurrencyPolicy.FORBID)
    decision = decide(spec, utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 10, 2), run_active=True)
    assert decision.start == ()
    assert decision.skipped == (utc(2024, 1, 1, 10, 1), utc(2024, 1, 1, 10, 2))


def test_forbid_starts_only_the_latest_due_time() -> None:
    spec = schedule(concurrency_policy=ConcurrencyPolicy.FORBID)
    decision = decide(spec, utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 10, 3), run_active=False)
    assert decision.start == (utc(2024, 1, 1, 10, 3),)
    assert decision.skipped == (utc(2024, 1, 1, 10, 1), utc(2024, 1, 1, 10, 2))


def test_disabled_schedules_decide_nothing_and_move_on() -> None:
    decision = decide(schedule(enabled=False), utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 11, 0),
                      run_active=False)
    assert decision == ScheduleDecision((), (), (), utc(2024, 1, 1, 11, 0), None)


def test_a_clock_that_went_back_decides_nothing() -> None:
    decision = decide(schedule(), utc(2024, 1, 1, 10, 0), utc(2024, 1, 1, 9, 0),
                      run_active=False)
    assert (decision.start, decision.missed, decision.skipped) == ((), (), ())
    assert decision.handled_until == utc(2024, 1, 1, 10, 0)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        decide(schedule(), datetime(2024, 1, 1), utc(2024, 1, 1), run_active=False)


def test_due_times_follow_the_schedules_zone_through_dst() -> None:
    spec = schedule("30 2 * * *", timezone="America/Chicago")
    decision = decide(spec, utc(2024, 3, 10, 0, 0), utc(2024, 3, 10, 8, 35), run_active=False)
    assert decision.start == (utc(2024, 3, 10, 8, 30),)  # 02:30 does not exist: 03:30 CDT


@pytest.mark.parametrize("seed", range(12))
def test_every_due_time_gets_exactly_one_decision_across_restarts(seed: int) -> None:
    """Jepsen's Chronos check: random clock advances, crashes and restarts of the scheduler.

    `decide` keeps no memory, so every call is as if the scheduler had just restarted from its
    durable state; a crash between deciding and the durable write drops that decision.
    """
    rng = random.Random(seed)
    spec = schedule(
        rng.choice(["* * * * *", "*/7 * * * *", "30 1,2 * * *", "0,30 * * * *"]),
        timezone=rng.choice(["UTC", "America/Chicago", "Europe/Berlin"]),
        starting_deadline_seconds=rng.choice([60, 600, 3600]),
        concurrency_policy=rng.choice(list(ConcurrencyPolicy)),
    )
    created = utc(2024, 11, 2, 20, 0) if seed % 2 else utc(2024, 3, 9, 20, 0)
    durable_watermark = created
    durable_log: list[tuple[datetime, str, datetime]] = []  # (due time, decision, decided at)
    now = created
    active_until: datetime | None = None
    for _ in range(120):
        now += timedelta(seconds=rng.choice([1, 30, 59, 61, 300, 900, 3600, 5400]))
        run_active = active_until is not None and now < active_until
        decision = decide(spec, durable_watermark, now, run_active=run_active)
        if rng.random() < 0.2:
            continue  # crashed before the durable write: decision lost, watermark unchanged
        durable_watermark = decision.handled_until  # one write: watermark and decisions
        durable_log += [(t, "start", now) for t in decision.start]
        durable_log += [(t, "missed", now) for t in decision.missed]
        durable_log += [(t, "skipped", now) for t in decision.skipped]
        if decision.start:
            active_until = now + timedelta(seconds=rng.choice([10, 120, 5400]))
    expected = list(spec.cron.times_between(created, durable_watermark, spec.zone))
    decided = [due for due, _, _ in durable_log]
    assert sorted(decided) == expected  # every due time once: none lost, none twice
    deadline = timedelta(seconds=spec.starting_deadline_seconds)
    for due, kind, decided_at in durable_log:
        assert (kind == "missed") == (decided_at - due > deadline)
    if spec.concurrency_policy is ConcurrencyPolicy.FORBID:
        starts = [decided_at for _, kind, decided_at in durable_log if kind == "start"]
        assert len(starts) == len(set(starts))  # at most one start per decision
