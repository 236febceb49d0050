"""Injected clocks: pure cores read time only through a `Clock`."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic seconds."""

    def now(self) -> float:
        """Seconds on a monotonic scale (only differences are meaningful)."""
        ...


class SystemClock:
    """The real monotonic clock."""

    def now(self) -> float:
        return time.monotonic()


class FakeClock:
    """A clock that moves only when told to; for unit tests of pure cores."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by `seconds` (must not be negative)."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._now += seconds


class WallClock:
    """Wall-clock seconds since the epoch (versions, schedules and stored timestamps)."""

    def now(self) -> float:
        return time.time()


class WarpedWallClock:
    """Wall-clock seconds running `factor` times faster than real time from `anchor` on (a
    testing and demo aid): `anchor + (real - anchor) * factor`, where `real` is the wall clock.

    `anchor` is an epoch second chosen by the caller, so that every process (and every restart)
    given the same anchor and factor reads the same warped time.
    """

    def __init__(self, anchor: float, factor: float, real: Clock | None = None) -> None:
        if factor <= 0:
            raise ValueError("the warp factor must be positive")
        self.anchor = anchor
        self.factor = factor
        self._real = real or WallClock()

    def now(self) -> float:
        return self.anchor + (self._real.now() - self.anchor) * self.factor
