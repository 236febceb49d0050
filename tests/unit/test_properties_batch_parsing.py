"""Properties of the batch framework's parsers: cron expressions, schedules and job bodies.

- any cron text parses or raises ValueError with a message;
- in UTC, `next_after` is the first matching minute after the instant (a day-by-day model);
- in zones with daylight saving time, firing instants increase and keep the minute field;
- any schedule or job body is a spec or a ValidationError (422), never another exception, and
  accepted specs round-trip through their JSON.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from frameworks.batch.cron import CronExpression, parse_cron
from frameworks.batch.jobs import JOB_ID_PATTERN, ValidationError, is_valid_job_id, parse_job
from frameworks.batch.schedules import parse_schedule


def _field(low: int, high: int) -> st.SearchStrategy[tuple[str, set[int]]]:
    """One cron field as text, with the set of values it means."""
    value = st.integers(low, high)
    items = st.one_of(
        value.map(lambda v: (str(v), {v})),
        st.tuples(value, value).map(sorted).map(
            lambda r: (f"{r[0]}-{r[1]}", set(range(r[0], r[1] + 1)))),
        st.tuples(value, st.integers(1, 20)).map(
            lambda t: (f"{t[0]}/{t[1]}", set(range(t[0], high + 1, t[1])))),
        st.integers(1, 20).map(lambda s: (f"*/{s}", set(range(low, high + 1, s)))),
    )
    listed = st.lists(items, min_size=1, max_size=3).map(
        lambda parts: (",".join(p[0] for p in parts), set().union(*(p[1] for p in parts))))
    return st.one_of(st.just(("*", set(range(low, high + 1)))), listed)


@st.composite
def cron_models(draw: st.DrawFn) -> tuple[str, list[set[int]], list[bool]]:
    # Days of the week run 0-7, both 0 and 7 Sunday (so `1/1` is Monday to Sunday).
    fields = [draw(_field(0, 59)), draw(_field(0, 23)), draw(_field(1, 31)), draw(_field(1, 12)),
              draw(_field(0, 7))]
    text = " ".join(f[0] for f in fields)
    sets = [f[1] for f in fields]
    sets[4] = {day % 7 for day in sets[4]}
    return text, sets, [f[0] != "*" for f in fields]


def _model_next(sets: list[set[int]], restricted: list[bool], after: datetime) -> datetime | None:
    """The first minute after `after` (UTC) the fields match, searching day by day."""
    minutes, hours, days, months, weekdays = sets
    start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    day = start.replace(hour=0, minute=0)
    for _ in range(366 * 8):
        cron_weekday = (day.weekday() + 1) % 7
        day_ok = (day.day in days, cron_weekday in weekdays)
        if restricted[2] and restricted[4]:
            matches = all(day_ok)
        else:
            matches = (day_ok[0] or not restricted[2]) and (day_ok[1] or not restricted[4])
        if day.month in months and matches:
            for hour in sorted(hours):
                for minute in sorted(minutes):
                    moment = day.replace(hour=hour, minute=minute)
                    if moment >= start:
                        return moment
        day += timedelta(days=1)
    return None


_instants = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2060, 1, 1),
                         timezones=st.just(UTC))


@given(cron_models(), _instants)
def test_next_after_in_utc_is_the_first_matching_minute(
        model: tuple[str, list[set[int]], list[bool]], after: datetime) -> None:
    text, sets, restricted = model
    try:
        expression = parse_cron(text)
    except ValueError as error:  # only a day of month no listed month has
        assert "none of the listed days exists" in str(error)
        assert not any(day <= 29 for day in sets[2])
        return
    expected = _model_next(sets, restricted, after)
    if expected is not None:
        assert expression.next_after(after, UTC) == expected


_zones = st.sampled_from([ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"),
                          ZoneInfo("Australia/Lord_Howe"), ZoneInfo("Asia/Kolkata")])


@given(cron_models(), _instants, _zones)
def test_firing_instants_increase_and_keep_the_minute(
        model: tuple[str, list[set[int]], list[bool]], after: datetime, zone: ZoneInfo) -> None:
    text, sets, _ = model
    try:
        expression: CronExpression = parse_cron(text)
    except ValueError:
        return
    previous = after
    for _ in range(3):
        moment = expression.next_after(previous, zone)
        if moment is None:
            break
        assert moment > previous and moment.tzinfo is not None
        local = moment.astimezone(zone)
        if zone.key != "Australia/Lord_Howe":  # its half-hour shift moves skipped minutes
            assert local.minute in sets[0]
        previous = moment


_cron_noise = st.text(st.sampled_from(list("0123456789*/-,LW#?@ JANmonFRI\t\u00b2\u0661")),
                      max_size=25)


@given(_cron_noise | cron_models().map(lambda m: m[0]))
def test_any_cron_text_parses_or_raises_value_error(text: str) -> None:
    try:
        expression = parse_cron(text)
    except ValueError as error:
        assert str(error) and "invalid literal" not in str(error)
        return
    assert text.isascii()  # numbers are ASCII digits, as cron-utils reads them
    assert parse_cron(str(expression)) == expression


_json_scalars = (st.none() | st.booleans() | st.integers(-(10**20), 10**20)
                 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8))
_json = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
_zone_names = st.sampled_from(["UTC", "Europe/Berlin", "utc", "", "Europe/../UTC", "/etc/passwd",
                               "a" * 300, "a/" * 200, "Nowhere/City", "\x00", "."])


@given(st.dictionaries(
    st.sampled_from(["id", "cron", "timezone", "startingDeadlineSeconds", "concurrencyPolicy",
                     "enabled", "nextRunAt"]),
    _json | _zone_names | cron_models().map(lambda m: m[0]), max_size=6), st.booleans())
def test_any_schedule_body_is_a_schedule_or_a_422(body: dict[str, Any], basics: bool) -> None:
    if basics:
        body = {"id": "nightly", "cron": "0 0 * * *", **body}
    try:
        spec = parse_schedule(body)
    except ValidationError as error:
        assert error.violations and all(v.error for v in error.violations)
        return
    assert parse_schedule(spec.to_json()) == spec


_RUN_KEYS = ["args", "artifacts", "cmd", "cpus", "gpus", "disk", "networks", "ucr", "docker",
             "env", "maxLaunchDelay", "mem", "placement", "user", "taskKillGracePeriodSeconds",
             "restart", "volumes", "secrets", "arraySize", "other"]


@given(st.dictionaries(st.sampled_from(["id", "description", "labels", "schedules",
                                        "dependencies", "other"]), _json, max_size=4),
       st.dictionaries(st.sampled_from(_RUN_KEYS), _json | st.integers(-(10**400), 10**400),
                       max_size=5),
       st.booleans())
def test_any_job_body_is_a_job_or_a_422(top: dict[str, Any], run: dict[str, Any],
                                        basics: bool) -> None:
    body: dict[str, Any] = {"id": "job", **top, "run": run} if basics else {**top, "run": run}
    if basics:
        run.setdefault("cmd", "sleep 1")
    try:
        job = parse_job(body)
    except ValidationError as error:
        assert error.violations and all(v.error for v in error.violations)
        return
    assert parse_job(job.to_json()) == job


@given(st.text(st.sampled_from(list("ab09-.A_ ")), max_size=12))
def test_job_ids_are_dot_separated_names(text: str) -> None:
    names = text.split(".")
    model = all(name and set(name) <= set("ab09-") and name[0] != "-" and name[-1] != "-"
                for name in names)
    assert is_valid_job_id(text) == model == bool(JOB_ID_PATTERN.fullmatch(text))
