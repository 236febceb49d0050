"""Exponential backoff with jitter, for the loops that reconnect to a master or an agent."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff"]


class Backoff:
    """Delays that double from `initial` up to `cap`; each is drawn at random from
    [(1 - jitter) * d, d] for the current d, so that the clients of a server that went away
    do not all come back at the same moment."""

    def __init__(
        self, initial: float, cap: float, *, jitter: float,
        uniform: Callable[[], float] = random.random,
    ) -> None:
        if not 0 < initial <= cap:
            raise ValueError("backoff needs 0 < initial <= cap")
        if not 0 <= jitter <= 1:
            raise ValueError("backoff jitter must be between 0 and 1")
        self._initial = initial
        self._cap = cap
        self._jitter = jitter
        self._uniform = uniform
        self._current = initial

    def next_delay(self) -> float:
        """The next delay in seconds."""
        delay = self._current * (1 - self._jitter + self._jitter * self._uniform())
        self._current = min(self._cap, self._current * 2)
        return delay

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._current = self._initial
