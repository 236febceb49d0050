"""Marathon's 422 error model for app definitions.

Marathon rejects a definition in one of two phases, both answered with HTTP 422:

- reading the JSON (wrong types, numbers out of range, bad patterns, missing `id`):
  `{"message": "Invalid JSON", "details": [{"path": "/cpus", "errors": ["error.min"]}]}`;
- validating the definition it read (cmd/args/container, constraints, health checks, ids...):
  `{"message": "Object is not valid", "details": [{"path": "/", "errors": ["..."]}]}`.

Paths are JSON paths in Marathon's style: `/healthChecks(0)/portIndex`, `/` for the whole app.
"""

from __future__ import annotations

from mesos_http.json_input import InvalidBody, Violation

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


class AppValidationError(InvalidBody):
    """A rejected app or group definition, carrying Marathon's 422 body."""

    def prefixed(self, prefix: str) -> AppValidationError:
        """The same error with every path moved under `prefix` (e.g. `/apps(3)`)."""
        return AppValidationError(self.message, (
            Violation(prefix if v.path == "/" else prefix + v.path, v.error)
            for v in self.violations))
