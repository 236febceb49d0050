"""Rate limits per principal (`--rate_limits`, Mesos' `RateLimits` format), as a pure core.

The flag's JSON is Mesos'::

    {"limits": [{"principal": "marathon", "qps": 50, "capacity": 100},
                {"principal": "", "qps": 1, "capacity": 10}],
     "aggregate_default_qps": 10, "aggregate_default_capacity": 50}

Semantics (Mesos' framework rate limiting, applied here to a principal's scheduler calls and,
separately, to its agent registrations):

- A principal's calls are admitted one every `1/qps` seconds. A call that arrives before its
  turn waits (is queued) until then; at most `capacity` calls of a principal wait at a time,
  and a call beyond that is refused (`RateLimited`), as Mesos drops a message beyond capacity
  and tells the framework. Without `capacity` the queue is unbounded; without `qps` the
  principal is not limited.
- Principals without an entry share one limiter of `aggregate_default_qps` and
  `aggregate_default_capacity` (none: they are not limited).
- A caller that did not authenticate counts as the principal `""`: an entry for `""` limits
  anonymous callers on their own, otherwise they share the aggregate default.

The clock is injected; `Throttle.acquire` answers how long the caller must wait.
"""

from __future__ import annotations

import json
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ANONYMOUS = ""
"""The principal that callers without one count as."""


@dataclass(frozen=True, slots=True)
class Limit:
    """One limiter's settings: None means unlimited."""

    qps: float | None = None
    capacity: int | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """The parsed `--rate_limits`: per-principal limits and the aggregate default."""

    limits: Mapping[str, Limit] = field(default_factory=dict)
    aggregate_default: Limit = Limit()

    @property
    def enabled(self) -> bool:
        """Whether any call can be throttled at all."""
        return self.aggregate_default.qps is not None or any(
            limit.qps is not None for limit in self.limits.values())


class RateLimited(Exception):
    """A call refused because its principal's queue is full; the message names the limit."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _qps(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: qps must be a positive number, not {value!r}")
    return float(value)


def _capacity(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{where}: capacity must be a non-negative integer, not {value!r}")
    return value


def _unknown(document: Mapping[str, Any], known: set[str], where: str) -> None:
    if unknown := sorted(set(document) - known):
        raise ValueError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")


def parse_rate_limits(text: str) -> RateLimits:
    """Parse Mesos' `RateLimits` JSON; ValueError with the offending field otherwise."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object with 'limits'")
    _unknown(document, {"limits", "aggregate_default_qps", "aggregate_default_capacity"},
             "rate limits")
    entries = document.get("limits", [])
    if not isinstance(entries, list):
        raise ValueError("limits: expected a list")
    limits: dict[str, Limit] = {}
    for index, entry in enumerate(entries):
        where = f"limits[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        _unknown(entry, {"principal", "qps", "capacity"}, where)
        principal = entry.get("principal")
        if not isinstance(principal, str):
            raise ValueError(f"{where}: principal must be a string")
        if principal in limits:
            raise ValueError(f"{where}: principal {principal!r} is listed twice")
        limits[principal] = Limit(_qps(entry.get("qps"), where),
                                  _capacity(entry.get("capacity"), where))
    aggregate = Limit(_qps(document.get("aggregate_default_qps"), "aggregate_default_qps"),
                      _capacity(document.get("aggregate_default_capacity"),
                                "aggregate_default_capacity"))
    return RateLimits(limits, aggregate)


class _Limiter:
    """One principal's (or the aggregate's) queue: a permit every 1/qps seconds."""

    __slots__ = ("capacity", "interval", "last", "waiting")

    def __init__(self, limit: Limit) -> None:
        assert limit.qps is not None
        self.interval = 1.0 / limit.qps
        self.capacity = limit.capacity
        self.last: float | None = None  # when the latest permit was (or will be) given
        self.waiting: deque[float] = deque()  # permits given for later than now

    def acquire(self, now: float) -> float | None:
        """The delay before this call's permit, or None when the queue is full."""
        while self.waiting and self.waiting[0] <= now:
            self.waiting.popleft()
        at = now if self.last is None else max(now, self.last + self.interval)
        if at > now:
            if self.capacity is not None and len(self.waiting) >= self.capacity:
                return None
            self.waiting.append(at)
        self.last = at
        return at - now


class Throttle:
    """Admits the calls of one kind (`what`, e.g. "scheduler calls") per principal."""

    def __init__(self, limits: RateLimits, clock: Callable[[], float], what: str) -> None:
        self._limits = limits
        self._clock = clock
        self._what = what
        self._by_principal: dict[str, _Limiter] = {}
        self._aggregate = (_Limiter(limits.aggregate_default)
                           if limits.aggregate_default.qps is not None else None)

    def acquire(self, principal: str | None) -> float:
        """Seconds the call must wait before it is handled (0: at once); `RateLimited` when
        its principal already has `capacity` calls waiting. None is an anonymous caller."""
        name = ANONYMOUS if principal is None else principal
        limit = self._limits.limits.get(name)
        if limit is None:
            limiter, source = self._aggregate, "the aggregate default"
        elif limit.qps is None:
            limiter, source = None, ""
        else:
            limiter = self._by_principal.get(name)
            if limiter is None:
                limiter = self._by_principal[name] = _Limiter(limit)
            source = f"the limit of principal {name!r}"
        if limiter is None:
            return 0.0
        delay = limiter.acquire(self._clock())
        if delay is None:
            who = "anonymous callers" if name == ANONYMOUS else f"principal {name!r}"
            raise RateLimited(
                f"too many {self._what} of {who}: {1 / limiter.interval:g} per second are "
                f"handled and {limiter.capacity} may wait for their turn ({source} of "
                "--rate_limits); retry later")
        return delay
