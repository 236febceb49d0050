"""Schedule specs and the pure decision of what a schedule asks for now.

    schedule body ──parse_schedule()──▶ ScheduleSpec ──to_json()──▶ schedule JSON

    decide(spec, handled_until, now, run_active=...)
        due times in (handled_until, now] ──▶ start    (within startingDeadlineSeconds)
                                          ──▶ missed   (later than startingDeadlineSeconds)
                                          ──▶ skipped  (FORBID while a run is active)
        handled_until' = now, next_due = the first due time after now

Exactly once, across restarts (the Chronos failure Jepsen found, avoided): `handled_until` is a
durable watermark meaning "every due time up to here has its decision". The caller writes the new
watermark *together with* the decision (the runs to start, recorded as INITIAL runs, and the missed
and skipped times) in one durable write, and only then launches. A crash before that write loses
the decision but not the watermark, so the next call decides the same due times again; a crash
after it finds the decision stored and no due time left before the watermark. So every due time
gets exactly one decision: none is skipped silently, none is started twice.

Defaults (Metronome's): timezone UTC, startingDeadlineSeconds 900, concurrencyPolicy ALLOW,
enabled true. A disabled schedule has no due times: `decide` advances the watermark and decides
nothing, so enabling it later does not replay the disabled period.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from frameworks.batch.cron import CronExpression, parse_cron
from frameworks.batch.jobs import ValidationError
from mesos_http.field_limits import MAX_DURATION_SECONDS

__all__ = [
    "ConcurrencyPolicy",
    "ScheduleDecision",
    "ScheduleSpec",
    "decide",
    "parse_schedule",
]

SCHEDULE_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]*[a-z0-9]+$")
"""Metronome's schedule id (schedulespec.schema.json): at least two characters."""


class ConcurrencyPolicy(StrEnum):
    """Whether a scheduled run may start while another run of the job is active."""

    ALLOW = "ALLOW"
    FORBID = "FORBID"


@dataclass(frozen=True)
class ScheduleSpec:
    """One schedule of a job."""

    id: str
    cron: CronExpression
    timezone: str = "UTC"
    starting_deadline_seconds: int = 900
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    enabled: bool = True

    @property
    def zone(self) -> ZoneInfo:
        """The schedule's time zone."""
        return ZoneInfo(self.timezone)

    def next_due(self, after: datetime) -> datetime | None:
        """The first due time strictly after `after` (UTC), None if the cron never fires again.

        Also what Metronome shows as `nextRunAt`.
        """
        due = self.cron.next_after(after, self.zone)
        return None if due is None else due.astimezone(UTC)

    def to_json(self) -> dict[str, Any]:
        """Metronome's schedule JSON (the caller adds `nextRunAt` if it wants it)."""
        return {
            "id": self.id,
            "cron": str(self.cron),
            "timezone": self.timezone,
            "startingDeadlineSeconds": self.starting_deadline_seconds,
            "concurrencyPolicy": self.concurrency_policy.value,
            "enabled": self.enabled,
        }


@dataclass(frozen=True)
class ScheduleDecision:
    """What to do about the due times in (handled_until, now]; all instants are UTC."""

    start: tuple[datetime, ...]
    """Due times to start a run for, oldest first."""
    missed: tuple[datetime, ...]
    """Due times older than startingDeadlineSeconds: record them as missed, start nothing."""
    skipped: tuple[datetime, ...]
    """Due times not started because of FORBID."""
    handled_until: datetime
    """The new watermark: persist it with the decision before acting on it."""
    next_due: datetime | None
    """The first due time after `now` (when to call `decide` again)."""


def parse_schedule(obj: Any) -> ScheduleSpec:
    """Read a schedule body; ValidationError (Metronome's 422 shape) otherwise.

    Unknown keys (such as `nextRunAt` from a GET) are ignored, as Metronome's schema allows.
    """
    if not isinstance(obj, dict):
        raise ValidationError([("/", "a schedule must be a JSON object")])
    errors: list[tuple[str, str]] = []
    schedule_id = obj.get("id")
    if "id" not in obj:
        errors.append(("/id", "is required"))
    elif not isinstance(schedule_id, str) or not SCHEDULE_ID_PATTERN.fullmatch(schedule_id):
        errors.append(("/id", "must be at least two lowercase letters, digits or dashes, "
                              "starting and ending with a letter or digit"))
    cron: CronExpression | None = None
    if "cron" not in obj:
        errors.append(("/cron", "is required"))
    elif not isinstance(obj["cron"], str):
        errors.append(("/cron", "must be a string"))
    else:
        try:
            cron = parse_cron(obj["cron"])
        except ValueError as error:
            errors.append(("/cron", f"Can not read cron expression {obj['cron']!r}: {error}"))
    timezone = obj.get("timezone", "UTC")
    if not _is_zone(timezone):
        errors.append(("/timezone", f"No time zone found with this id: {timezone!r}"))
    deadline = obj.get("startingDeadlineSeconds", 900)
    if not isinstance(deadline, int) or isinstance(deadline, bool) \
            or not 1 <= deadline <= MAX_DURATION_SECONDS:
        errors.append(("/startingDeadlineSeconds",
                       f"must be an integer from 1 to {MAX_DURATION_SECONDS}"))
    policy = obj.get("concurrencyPolicy", ConcurrencyPolicy.ALLOW.value)
    if policy not in (ConcurrencyPolicy.ALLOW.value, ConcurrencyPolicy.FORBID.value):
        errors.append(("/concurrencyPolicy",
                       f"'{policy}' is not a valid concurrency policy; allowed: ALLOW, FORBID"))
    enabled = obj.get("enabled", True)
    if not isinstance(enabled, bool):
        errors.append(("/enabled", "must be a boolean"))
    if errors or cron is None or not isinstance(schedule_id, str):
        raise ValidationError(errors)
    return ScheduleSpec(id=schedule_id, cron=cron, timezone=timezone,
                        starting_deadline_seconds=deadline,
                        concurrency_policy=ConcurrencyPolicy(policy), enabled=enabled)


def decide(schedule: ScheduleSpec, handled_until: datetime, now: datetime, *,
           run_active: bool) -> ScheduleDecision:
    """Decide every due time in (`handled_until`, `now`]; see the module docstring.

    `handled_until` starts as the schedule's creation time. `run_active` tells whether a run of
    the job is active now (FORBID starts nothing while one is, and at most one run per call: the
    latest due time within the deadline; the earlier ones are skipped). ALLOW starts every due
    time within the deadline. A clock that went backwards decides nothing.
    """
    for name, value in (("handled_until", handled_until), ("now", now)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"`{name}` must be a timezone-aware datetime")
    handled_until, now = handled_until.astimezone(UTC), now.astimezone(UTC)
    if now <= handled_until:
        return ScheduleDecision((), (), (), handled_until,
                                schedule.next_due(handled_until) if schedule.enabled else None)
    if not schedule.enabled:
        return ScheduleDecision((), (), (), now, None)
    due = [t.astimezone(UTC) for t in schedule.cron.times_between(handled_until, now,
                                                                   schedule.zone)]
    deadline = timedelta(seconds=schedule.starting_deadline_seconds)
    missed = tuple(t for t in due if now - t > deadline)
    eligible = tuple(t for t in due if now - t <= deadline)
    start: tuple[datetime, ...]
    skipped: tuple[datetime, ...]
    if schedule.concurrency_policy is ConcurrencyPolicy.ALLOW:
        start, skipped = eligible, ()
    elif run_active:
        start, skipped = (), eligible
    else:
        start, skipped = eligible[-1:], eligible[:-1]
    return ScheduleDecision(start, missed, skipped, now, schedule.next_due(now))


def _is_zone(name: Any) -> bool:
    if not isinstance(name, str) or not name:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True
