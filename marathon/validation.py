"""Marathon's 422 error model for app definitions.

Marathon rejects a definition in one of two phases, both answered with HTTP 422:

- reading the JSON (wrong types, numbers out of range, bad patterns, missing `id`):
  `{"message": "Invalid JSON", "details": [{"path": "/cpus", "errors": ["error.min"]}]}`;
- validating the definition it read (cmd/args/container, constraints, health checks, ids...):
  `{"message": "Object is not valid", "details": [{"path": "/", "errors": ["..."]}]}`.

Paths are JSON paths in Marathon's style: `/healthChecks(0)/portIndex`, `/` for the whole app.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INVALID_JSON",
    "OBJECT_NOT_VALID",
    "AppValidationError",
    "Violation",
]

INVALID_JSON = "Invalid JSON"
"""The message of errors found while reading the JSON."""

OBJECT_NOT_VALID = "Object is not valid"
"""The message of errors found while validating what was read."""


@dataclass(frozen=True)
class Violation:
    """One complaint: where (`/instances`, `/healthChecks(0)/portIndex`) and what."""

    path: str
    error: str


class AppValidationError(ValueError):
    """A rejected definition, carrying Marathon's 422 body."""

    status_code = 422

    def __init__(self, message: str, violations: Iterable[Violation]) -> None:
        self.message = message
        self.violations = tuple(violations)
        super().__init__(f"{message}: " + "; ".join(f"{v.path}: {v.error}"
                                                    for v in self.violations))

    def to_json(self) -> dict[str, Any]:
        """The response body: violations grouped by path, in the order first seen."""
        grouped: dict[str, list[str]] = {}
        for violation in self.violations:
            errors = grouped.setdefault(violation.path, [])
            if violation.error not in errors:
                errors.append(violation.error)
        return {"message": self.message,
                "details": [{"path": path, "errors": errors} for path, errors in grouped.items()]}

    def errors_at(self, path: str) -> list[str]:
        """The errors reported for `path` (empty when none)."""
        return [v.error for v in self.violations if v.path == path]

    def prefixed(self, prefix: str) -> AppValidationError:
        """The same error with every path moved under `prefix` (e.g. `/apps(3)`)."""
        return AppValidationError(self.message, (
            Violation(prefix if v.path == "/" else prefix + v.path, v.error)
            for v in self.violations))
