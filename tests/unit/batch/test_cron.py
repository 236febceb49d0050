"""Cron expressions: Metronome's dialect, next firing times, and daylight saving time."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from frameworks.batch.cron import next_after, parse_cron

CHICAGO = ZoneInfo("America/Chicago")
BERLIN = ZoneInfo("Europe/Berlin")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
        second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


@pytest.mark.parametrize(
    "expr, after, expected",
    [
        ("* * * * *", utc(2017, 10, 2, 10, 0), utc(2017, 10, 2, 10, 1)),
        ("* * * * *", utc(2017, 10, 2, 10, 0, 30), utc(2017, 10, 2, 10, 1)),
        ("*/5 * * * *", utc(2017, 10, 2, 10, 3), utc(2017, 10, 2, 10, 5)),
        ("0 0 * * 5", utc(2017, 10, 2, 10, 0), utc(2017, 10, 6, 0, 0)),
        # day of month AND day of week, as Metronome configures cron-utils
        ("0 9 1-7 * 1", utc(2017, 10, 2, 10, 0), utc(2017, 11, 6, 9, 0)),
        ("0 9 1-7 * 1-5", utc(2017, 10, 2, 10, 0), utc(2017, 10, 3, 9, 0)),
        ("0 9 1-7 * 6-7", utc(2017, 10, 2, 10, 0), utc(2017, 10, 7, 9, 0)),
        ("0 9 22-28 * 6-7", utc(2017, 10, 2, 10, 0), utc(2017, 10, 22, 9, 0)),
        ("* * */1 * 3", utc(2017, 10, 2, 10, 0), utc(2017, 10, 4, 0, 0)),
        ("0 0 20-31 2 *", utc(2017, 10, 2, 10, 0), utc(2018, 2, 20, 0, 0)),
        ("* * * * 1", utc(2017, 4, 25), utc(2017, 5, 1)),
        ("* * * * 1", utc(2017, 7, 28), utc(2017, 7, 31)),
        ("* * * * 1", utc(2017, 12, 27), utc(2018, 1, 1)),
        ("* * * * 1", utc(2018, 9, 30), utc(2018, 10, 1)),
        ("0 12 * JAN,jul SUN", utc(2024, 1, 1), utc(2024, 1, 7, 12, 0)),
        ("0 12 * * 0", utc(2024, 1, 1), utc(2024, 1, 7, 12, 0)),
        ("0 12 * * 7", utc(2024, 1, 1), utc(2024, 1, 7, 12, 0)),
        ("0 12 * * MON-FRI", utc(2024, 1, 6), utc(2024, 1, 8, 12, 0)),
        ("15 10 L * *", utc(2024, 2, 1), utc(2024, 2, 29, 10, 15)),
        ("0 0 L-2 * *", utc(2023, 2, 1), utc(2023, 2, 26)),
        ("0 0 15W * *", utc(2024, 6, 1), utc(2024, 6, 14)),  # the 15th is a Saturday
        ("0 0 1W * *", utc(2024, 5, 31), utc(2024, 6, 3)),  # the 1st is a Saturday
        ("0 0 LW * *", utc(2024, 8, 1), utc(2024, 8, 30)),  # the 31st is a Saturday
        ("0 0 * * 5L", utc(2024, 5, 1), utc(2024, 5, 31)),
        ("0 0 * * 5#3", utc(2024, 5, 1), utc(2024, 5, 17)),
        ("0 0 29 2 *", utc(2023, 3, 1), utc(2024, 2, 29)),
        ("0 0 1 1 * 2030", utc(2024, 5, 1), utc(2030, 1, 1)),
        ("0 0 1-10/3 * *", utc(2024, 5, 4, 1), utc(2024, 5, 7)),
        ("10/20 * * * *", utc(2024, 5, 4, 1, 31), utc(2024, 5, 4, 1, 50)),
    ],
)
def test_next_after_in_utc(expr: str, after: datetime, expected: datetime) -> None:
    assert next_after(expr, after, UTC) == expected


def test_next_after_is_strictly_after_and_in_utc() -> None:
    at = datetime(2024, 5, 4, 9, 0, tzinfo=CHICAGO)
    found = next_after("0 9 * * *", at, CHICAGO)
    assert found == datetime(2024, 5, 5, 9, 0, tzinfo=CHICAGO)
    assert found is not None and found.tzinfo is UTC


def test_the_zone_decides_the_wall_clock() -> None:
    found = next_after("0 9 * * *", utc(2024, 5, 4, 12, 0), CHICAGO)
    assert found == utc(2024, 5, 4, 14, 0)  # 09:00 CDT


def test_a_cron_that_never_fires_again_gives_none() -> None:
    assert next_after("0 0 1 1 * 2020", utc(2024, 1, 1), UTC) is None


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_after("* * * * *", datetime(2024, 1, 1), UTC)


def test_text_is_kept() -> None:
    assert str(parse_cron("  */2  * * * *  ")) == "*/2 * * * *"


@pytest.mark.parametrize(
    "expr, message",
    [
        ("* * * *", "five fields"),
        ("* * * * * * *", "five fields"),
        ("@hourly", "nicknames"),
        ("0 0 ? * 1", r"'\?' is not supported"),
        ("60 * * * *", "minute: 60 is out of range 0-59"),
        ("* 24 * * *", "hour: 24 is out of range"),
        ("* * 0 * *", "day-of-month: 0 is out of range"),
        ("* * * 13 *", "month: 13 is out of range"),
        ("* * * * 8", "day-of-week: 8 is out of range"),
        ("* * * FOO *", "month: 'FOO'"),
        ("*/0 * * * *", "minute: step"),
        ("*/x * * * *", "minute: step"),
        ("30-10 * * * *", "runs backwards"),
        ("1,,2 * * * *", "empty list element"),
        ("0 0 31 2 *", "none of the listed days exists"),
        ("0 0 30-31 2 *", "none of the listed days exists"),
        ("0 0 31 2-3 *", None),  # 31 March exists
        ("0 0 * * 5#6", "d#k"),
        ("0 0 * * L", "needs a day"),
        ("0 0 L-40 * *", "L-n"),
        ("* * * * * 1960", "year: 1960 is out of range"),
    ],
)
def test_parse_errors_name_the_field(expr: str, message: str | None) -> None:
    if message is None:
        parse_cron(expr)
        return
    with pytest.raises(ValueError, match=message):
        parse_cron(expr)


def test_spring_forward_gap_fires_shifted_forward() -> None:
    # 2024-03-10 in Chicago jumps from 02:00 CST to 03:00 CDT: 02:30 does not exist.
    found = next_after("30 2 * * *", datetime(2024, 3, 10, 0, 0, tzinfo=CHICAGO), CHICAGO)
    assert found == utc(2024, 3, 10, 8, 30)  # 03:30 CDT, shifted by the one-hour gap
    after = next_after("30 2 * * *", found, CHICAGO)
    assert after == datetime(2024, 3, 11, 2, 30, tzinfo=CHICAGO)


def test_gap_shift_does_not_double_a_time_that_exists() -> None:
    times = list(parse_cron("30 2,3 * * *").times_between(
        datetime(2024, 3, 10, 0, 0, tzinfo=CHICAGO), utc(2024, 3, 10, 12, 0), CHICAGO))
    assert times == [utc(2024, 3, 10, 8, 30)]  # 02:30 and 03:30 are one instant that day


def test_every_minute_through_the_gap_never_skips_or_repeats() -> None:
    start = datetime(2024, 3, 10, 1, 58, tzinfo=CHICAGO)
    times = list(parse_cron("* * * * *").times_between(start, start + timedelta(minutes=5),
                                                      CHICAGO))
    assert [t.astimezone(UTC) for t in times] == [
        utc(2024, 3, 10, 7, 59), utc(2024, 3, 10, 8, 0), utc(2024, 3, 10, 8, 1),
        utc(2024, 3, 10, 8, 2), utc(2024, 3, 10, 8, 3),
    ]


def test_fall_back_runs_a_fixed_hour_once_at_the_first_occurrence() -> None:
    # 2024-11-03 in Chicago repeats 01:00-01:59 (CDT, then CST).
    first = next_after("30 1 * * *", datetime(2024, 11, 3, 0, 0, tzinfo=CHICAGO), CHICAGO)
    assert first == utc(2024, 11, 3, 6, 30)  # 01:30 CDT
    assert next_after("30 1 * * *", first, CHICAGO) == datetime(2024, 11, 4, 1, 30,
                                                                 tzinfo=CHICAGO)


def test_fall_back_keeps_the_rhythm_of_an_hourly_wildcard() -> None:
    start = datetime(2024, 11, 3, 0, 50, tzinfo=CHICAGO)
    times = list(parse_cron("*/20 * * * *").times_between(start, utc(2024, 11, 3, 8, 1),
                                                         CHICAGO))
    assert [t.astimezone(UTC) for t in times] == [
        utc(2024, 11, 3, 6, 0), utc(2024, 11, 3, 6, 20), utc(2024, 11, 3, 6, 40),  # CDT pass
        utc(2024, 11, 3, 7, 0), utc(2024, 11, 3, 7, 20), utc(2024, 11, 3, 7, 40),  # CST pass
        utc(2024, 11, 3, 8, 0),
    ]


@pytest.mark.parametrize(
    "zone, start",
    [(CHICAGO, utc(2024, 3, 9)), (CHICAGO, utc(2024, 11, 2)), (BERLIN, utc(2024, 3, 30)),
     (BERLIN, utc(2024, 10, 26)), (ZoneInfo("Australia/Lord_Howe"), utc(2024, 4, 5)),
     (ZoneInfo("Australia/Lord_Howe"), utc(2024, 10, 4))],
)
def test_every_real_half_hour_fires_once_around_transitions(zone: ZoneInfo,
                                                            start: datetime) -> None:
    # Lord Howe shifts by 30 minutes: gaps and repeats are half an hour long there.
    end = start + timedelta(days=3)
    times = list(parse_cron("0,30 * * * *").times_between(start, end, zone))
    assert all(earlier < later for earlier, later in itertools.pairwise(times))
    assert len(times) == 3 * 48
