"""Sharing equal immutable values: one object for many holders."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

HashableT = TypeVar("HashableT", bound=Hashable)


class Interner(Generic[HashableT]):
    """Hands out one shared instance per distinct immutable value, so that many holders of
    equal values (a master's tasks, holding resources) hold one object.
    Up to `limit` distinct values are kept for ever; later ones are returned as given."""

    def __init__(self, limit: int = 4096) -> None:
        self._values: dict[HashableT, HashableT] = {}
        self._limit = limit

    def __call__(self, value: HashableT) -> HashableT:
        shared = self._values.get(value)
        if shared is not None:
            return shared
        if len(self._values) < self._limit:
            self._values[value] = value
        return value
