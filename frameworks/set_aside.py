"""Records a new leader could not read: set aside, not fatal.

A record an old or buggy leader stored (an app id no request may name, a truncated job) must
not stop recovery: `Recovered.decode` of each framework reads every record inside `reading`,
which sets the record aside (its store key and the reason) and lets recovery go on with the
rest. Set-aside records stay in the store untouched until an operator removes or replaces
them through the API; the host logs them and each service reports them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["READ_ERRORS", "SetAside", "reading"]

READ_ERRORS = (ValueError, KeyError, TypeError, IndexError, AttributeError)
"""What reading a malformed record raises: bad JSON or UTF-8, missing or mistyped fields,
and the 422 validation errors (`InvalidBody` is a ValueError)."""


@dataclass(frozen=True, slots=True)
class SetAside:
    """A stored record recovery skipped: its store key and why."""

    key: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "reason": self.reason}


@contextmanager
def reading(aside: list[SetAside], key: str, what: str = "") -> Iterator[None]:
    """Run the block that reads record `key`; when it fails, add the record to `aside`
    (`what` names the part of the record that failed, e.g. a group in the root). A record
    already set aside is not added twice."""
    try:
        yield
    except READ_ERRORS as error:
        if not what and any(record.key == key for record in aside):
            return
        reason = f"{type(error).__name__}: {error}"
        aside.append(SetAside(key, f"{what}: {reason}" if what else reason))
