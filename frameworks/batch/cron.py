"""Cron expressions in Metronome's dialect, and their firing instants in a time zone.

Dialect (Metronome parses with cron-utils and this definition; we accept the same language):

    minute hour day-of-month month day-of-week [year]

- A field is `*`, a value, a range `a-b`, a step `*/s`, `a/s` or `a-b/s`, or a list of those.
- Months may be named `JAN`..`DEC`, days of the week `SUN`..`SAT` (case-insensitive).
  Day-of-week numbers run 0-7 with both 0 and 7 meaning Sunday, 1 Monday.
- Day of month also takes `L` (last day), `L-n` (n days before the last), `nW` (the weekday
  nearest to day n, within the month) and `LW` (the last weekday); day of week takes `nL`
  (the last such weekday of the month) and `n#k` (the k-th such weekday of the month).
- The optional sixth field restricts the years (1970-2099).
- When both day of month and day of week are restricted, a day must match **both** (Metronome
  asks cron-utils for `matchDayOfWeekAndDayOfMonth`; Vixie cron would take either):
  `0 9 1-7 * 1` is "09:00 on the first Monday of the month".
- A day of month that exists in none of the listed months (`0 0 30 2 *`) is rejected, as Metronome
  does. `?` and nicknames such as `@hourly` are rejected: Metronome's definition enables neither.

Daylight saving time (times are wall-clock times in the schedule's zone):

- A wall-clock time skipped by a spring-forward gap fires once, shifted forward by the length of
  the gap (02:30 on a day that jumps from 02:00 to 03:00 fires at 03:30). This is what java.time,
  and so Metronome, does; nothing is silently skipped.
- A wall-clock time repeated by a fall-back fires once, at its first occurrence, unless the hour
  field is unrestricted (`*`): an expression that fires every hour keeps its rhythm through both
  passes of the repeated hour. This is Vixie cron's rule for "wildcard" jobs and what cron-utils
  does for expressions that fire at least hourly.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

__all__ = ["CronExpression", "next_after", "parse_cron"]

_MONTH_NAMES = {name.upper(): number for number, name in enumerate(calendar.month_abbr) if name}
_DAY_NAMES = {"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}
_MIN_YEAR, _MAX_YEAR = 1970, 2099
_SEARCH_YEARS = 400
_MAX_DAYS_IN_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_OFFSET_WINDOW = timedelta(days=2)


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int] | None = None


_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY_OF_MONTH = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_DAY_OF_WEEK = _Field("day-of-week", 0, 7, _DAY_NAMES)
_YEAR = _Field("year", _MIN_YEAR, _MAX_YEAR)


@dataclass(frozen=True)
class _DayOfMonth:
    days: frozenset[int]
    before_last: frozenset[int]
    """`L-n` offsets from the last day (`L` is 0)."""
    nearest_weekday: frozenset[int]
    last_weekday: bool

    def matching(self, year: int, month: int) -> set[int]:
        length = calendar.monthrange(year, month)[1]
        found = {day for day in self.days if day <= length}
        found |= {length - offset for offset in self.before_last if length - offset >= 1}
        found |= {_nearest_weekday(year, month, day, length)
                  for day in self.nearest_weekday if day <= length}
        if self.last_weekday:
            found.add(_nearest_weekday(year, month, length, length))
        return found


@dataclass(frozen=True)
class _DayOfWeek:
    weekdays: frozenset[int]
    """0 = Sunday ... 6 = Saturday."""
    last_of: frozenset[int]
    nth_of: frozenset[tuple[int, int]]

    def matching(self, year: int, month: int) -> set[int]:
        length = calendar.monthrange(year, month)[1]
        first = _cron_weekday(date(year, month, 1))
        found: set[int] = set()
        for day in range(1, length + 1):
            weekday = (first + day - 1) % 7
            if weekday in self.weekdays:
                found.add(day)
            if weekday in self.last_of and day + 7 > length:
                found.add(day)
            if (weekday, (day - 1) // 7 + 1) in self.nth_of:
                found.add(day)
        return found


@dataclass(frozen=True)
class CronExpression:
    """A parsed cron expression; build it with `parse_cron`."""

    text: str
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    months: tuple[int, ...]
    years: tuple[int, ...] | None
    day_of_month: _DayOfMonth
    day_of_week: _DayOfWeek

    def __str__(self) -> str:
        return self.text

    def next_after(self, after: datetime, tz: tzinfo) -> datetime | None:
        """The first firing instant strictly after `after`; None if it never fires again.

        `tz` is the zone whose wall clock the expression reads. `after` must be timezone-aware.
        The result is in UTC: Python compares two datetimes of the same zone by wall-clock time,
        which misorders the two passes of a repeated hour, so instants stay in UTC here.
        """
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError("`after` must be a timezone-aware datetime")
        after_utc = after.astimezone(UTC)
        spread = _offset_spread(tz, after_utc)
        wall = after_utc.astimezone(tz).replace(tzinfo=None, fold=0)
        best: datetime | None = None
        bound: datetime | None = None
        for local in self._local_candidates((wall - spread).replace(second=0, microsecond=0)):
            if bound is not None and local > bound:
                break
            for instant in self._instants(local, tz):
                if instant > after_utc and (best is None or instant < best):
                    best = instant
                    near = spread
                    if instant - after_utc > timedelta(days=1):
                        near = max(spread, _offset_spread(tz, instant))
                    bound = local + near
        return best

    def times_between(self, after: datetime, until: datetime, tz: tzinfo) -> Iterator[datetime]:
        """The firing instants in (`after`, `until`], in order, in UTC."""
        current = self.next_after(after, tz)
        while current is not None and current <= until:
            yield current
            current = self.next_after(current, tz)

    def _matching_days(self, year: int, month: int) -> list[int]:
        return sorted(self.day_of_month.matching(year, month)
                      & self.day_of_week.matching(year, month))

    def _local_candidates(self, start: datetime) -> Iterator[datetime]:
        """Matching wall-clock times from `start` (inclusive), in wall-clock order."""
        last_year = max(self.years) if self.years else min(start.year + _SEARCH_YEARS, 9999)
        for year in range(start.year, last_year + 1):
            if self.years is not None and year not in self.years:
                continue
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                for day in self._matching_days(year, month):
                    if (year, month, day) < (start.year, start.month, start.day):
                        continue
                    first_day = (year, month, day) == (start.year, start.month, start.day)
                    for hour in self.hours:
                        if first_day and hour < start.hour:
                            continue
                        first_hour = first_day and hour == start.hour
                        for minute in self.minutes:
                            if first_hour and minute < start.minute:
                                continue
                            yield datetime(year, month, day, hour, minute)

    def _instants(self, local: datetime, tz: tzinfo) -> tuple[datetime, ...]:
        """The UTC instants at which wall-clock time `local` fires (the module's DST rules)."""
        first = local.replace(tzinfo=tz)
        second = local.replace(tzinfo=tz, fold=1)
        if first.utcoffset() == second.utcoffset():
            return (first.astimezone(UTC),)
        earlier, later = first.astimezone(UTC), second.astimezone(UTC)
        if earlier < later:
            return (earlier, later) if len(self.hours) == 24 else (earlier,)
        # In a gap, fold=0 reads the time with the offset from before the jump: shifted forward.
        return (earlier,)


def parse_cron(text: str) -> CronExpression:
    """Parse `text`; ValueError with a message naming the offending field otherwise."""
    if not isinstance(text, str):
        raise ValueError("a cron expression must be a string")
    stripped = text.strip()
    if stripped.startswith("@"):
        raise ValueError(f"nicknames such as {stripped.split()[0]!r} are not supported; "
                         "write the five fields, e.g. '0 * * * *' for hourly")
    fields = stripped.split()
    if len(fields) not in (5, 6):
        raise ValueError("a cron expression has five fields (minute hour day-of-month month "
                         f"day-of-week) and an optional year; got {len(fields)} in {text!r}")
    if "?" in stripped:
        raise ValueError("'?' is not supported in this cron dialect; use '*'")
    minutes = _parse_plain(fields[0], _MINUTE)
    hours = _parse_plain(fields[1], _HOUR)
    day_of_month = _parse_day_of_month(fields[2])
    months = _parse_plain(fields[3], _MONTH)
    day_of_week = _parse_day_of_week(fields[4])
    years = _parse_plain(fields[5], _YEAR) if len(fields) == 6 else None
    _check_days_exist(day_of_month, months)
    return CronExpression(
        text=" ".join(fields),
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        months=tuple(sorted(months)),
        years=tuple(sorted(years)) if years is not None else None,
        day_of_month=day_of_month,
        day_of_week=day_of_week,
    )


def next_after(expr: str | CronExpression, after: datetime, tz: tzinfo) -> datetime | None:
    """The first instant (UTC) strictly after `after` at which `expr` fires in zone `tz`.

    None when the expression never fires again (a year field in the past).
    """
    expression = parse_cron(expr) if isinstance(expr, str) else expr
    return expression.next_after(after, tz)


def _parse_plain(text: str, field: _Field) -> set[int]:
    values: set[int] = set()
    for item in text.split(","):
        values |= _parse_item(item, field)
    if field is _DAY_OF_WEEK:
        values = {value % 7 for value in values}
    return values


def _parse_item(item: str, field: _Field) -> set[int]:
    if not item:
        raise ValueError(f"{field.name}: empty list element")
    base, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not _is_number(step_text) or int(step_text) < 1:
            raise ValueError(f"{field.name}: step in {item!r} must be a positive integer")
        step = int(step_text)
    if base == "*":
        low, high = field.low, field.high
    elif "-" in base:
        first, _, last = base.partition("-")
        low, high = _value(first, field, item), _value(last, field, item)
        if low > high:
            raise ValueError(f"{field.name}: range {item!r} runs backwards")
    else:
        low = _value(base, field, item)
        high = field.high if slash else low
    return set(range(low, high + 1, step))


def _is_number(text: str) -> bool:
    """ASCII digits (`str.isdigit` also takes `²` and Arabic-Indic digits), few enough for `int`."""
    return text.isascii() and text.isdigit() and len(text) <= 100


def _value(text: str, field: _Field, item: str) -> int:
    if field.names is not None and text.upper() in field.names:
        return field.names[text.upper()]
    if not _is_number(text):
        raise ValueError(f"{field.name}: {text!r} in {item!r} is not a number"
                         + (" or a name" if field.names else ""))
    value = int(text)
    if not field.low <= value <= field.high:
        raise ValueError(f"{field.name}: {value} is out of range {field.low}-{field.high}")
    return value


def _parse_day_of_month(text: str) -> _DayOfMonth:
    days: set[int] = set()
    before_last: set[int] = set()
    nearest: set[int] = set()
    last_weekday = False
    for item in text.split(","):
        upper = item.upper()
        if upper == "LW":
            last_weekday = True
        elif upper == "L":
            before_last.add(0)
        elif upper.startswith("L-"):
            offset = upper[2:]
            if not _is_number(offset) or int(offset) > 30:
                raise ValueError(f"day-of-month: {item!r} needs L-n with n from 0 to 30")
            before_last.add(int(offset))
        elif upper.endswith("W"):
            nearest.add(_value(upper[:-1], _DAY_OF_MONTH, item))
        else:
            days |= _parse_item(item, _DAY_OF_MONTH)
    return _DayOfMonth(frozenset(days), frozenset(before_last), frozenset(nearest), last_weekday)


def _parse_day_of_week(text: str) -> _DayOfWeek:
    weekdays: set[int] = set()
    last_of: set[int] = set()
    nth_of: set[tuple[int, int]] = set()
    for item in text.split(","):
        upper = item.upper()
        if "#" in upper:
            day, _, nth = upper.partition("#")
            if not _is_number(nth) or not 1 <= int(nth) <= 5:
                raise ValueError(f"day-of-week: {item!r} needs d#k with k from 1 to 5")
            nth_of.add((_value(day, _DAY_OF_WEEK, item) % 7, int(nth)))
        elif upper.endswith("L") and len(upper) > 1:
            last_of.add(_value(upper[:-1], _DAY_OF_WEEK, item) % 7)
        elif upper == "L":
            raise ValueError("day-of-week: 'L' needs a day before it, e.g. '5L' (last Friday)")
        else:
            weekdays |= {value % 7 for value in _parse_item(item, _DAY_OF_WEEK)}
    return _DayOfWeek(frozenset(weekdays), frozenset(last_of), frozenset(nth_of))


def _check_days_exist(day_of_month: _DayOfMonth, months: set[int]) -> None:
    if day_of_month.before_last or day_of_month.nearest_weekday or day_of_month.last_weekday:
        return
    if not any(day <= _MAX_DAYS_IN_MONTH[month - 1]
               for day in day_of_month.days for month in months):
        raise ValueError("day-of-month: none of the listed days exists in any listed month "
                         "(e.g. 30 February)")


def _cron_weekday(day: date) -> int:
    return (day.weekday() + 1) % 7


def _nearest_weekday(year: int, month: int, day: int, length: int) -> int:
    weekday = _cron_weekday(date(year, month, day))
    if weekday == 6:  # Saturday: the Friday before, or the Monday after on the 1st
        return day - 1 if day > 1 else day + 2
    if weekday == 0:  # Sunday: the Monday after, or the Friday before on the last day
        return day + 1 if day < length else day - 2
    return day


def _offset_spread(tz: tzinfo, around: datetime) -> timedelta:
    """How far the UTC offset of `tz` varies within about two days of the instant `around`."""
    return _offset_spread_near_hour(tz, int(around.timestamp() // 3600))


@functools.lru_cache(maxsize=4096)
def _offset_spread_near_hour(tz: tzinfo, hour: int) -> timedelta:
    window_hours = int(_OFFSET_WINDOW / timedelta(hours=1))
    start = datetime.fromtimestamp((hour - window_hours) * 3600, UTC)
    offsets = [(start + timedelta(hours=step)).astimezone(tz).utcoffset() or timedelta(0)
               for step in range(2 * window_hours + 2)]
    return max(offsets) - min(offsets)
