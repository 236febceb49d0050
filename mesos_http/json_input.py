"""Reading REST request bodies: typed values out of parsed JSON, every problem kept as a
`Violation` at its JSON path, and the 422 body that lists them.

    parsed body --JsonReader(wording).string / number / integer / ...--> values (None if bad)
                      | wrong type, out of range, too short, no pattern match
                      v
                 reader.violations --InvalidBody(message, violations).to_json()-->
                 {"message": "...", "details": [{"path": "/cpus", "errors": ["error.min"]}]}

Paths are in Marathon's style: `/healthChecks(0)/portIndex`, `/` for the whole body. The words of
the errors are a `JsonWording`: `PLAY_JSON` (Marathon's play-json codes) or `METRONOME`
(Metronome's sentences).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, TypeVar

__all__ = [
    "METRONOME",
    "PLAY_JSON",
    "InvalidBody",
    "JsonReader",
    "JsonWording",
    "PathErrors",
    "Violation",
    "frozen_json",
    "thawed_json",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Violation:
    """One complaint: where (`/instances`, `/healthChecks(0)/portIndex`) and what."""

    path: str
    error: str


@dataclass(frozen=True)
class PathErrors:
    """The distinct errors found at one path, in the order first seen."""

    path: str
    errors: tuple[str, ...]


class InvalidBody(ValueError):
    """A request body refused with 422 Unprocessable Entity: a message and its violations."""

    status_code = 422

    def __init__(self, message: str, violations: Iterable[Violation]) -> None:
        self.message = message
        self.violations = tuple(violations)
        super().__init__(f"{message}: " + "; ".join(f"{v.path}: {v.error}"
                                                    for v in self.violations))

    @property
    def details(self) -> tuple[PathErrors, ...]:
        """The violations grouped by path, paths and errors in the order first seen."""
        grouped: dict[str, list[str]] = {}
        for violation in self.violations:
            errors = grouped.setdefault(violation.path, [])
            if violation.error not in errors:
                errors.append(violation.error)
        return tuple(PathErrors(path, tuple(errors)) for path, errors in grouped.items())

    def to_json(self) -> dict[str, Any]:
        """The response body: `{"message": ..., "details": [{"path": ..., "errors": [...]}]}`."""
        return {"message": self.message,
                "details": [{"path": d.path, "errors": list(d.errors)} for d in self.details]}

    def errors_at(self, path: str) -> list[str]:
        """The errors reported for `path` (empty when none)."""
        return [v.error for v in self.violations if v.path == path]


@dataclass(frozen=True)
class JsonWording:
    """The errors a `JsonReader` records; `below` and `above` may name `{minimum}`/`{maximum}`."""

    string: str
    number: str
    integer: str
    """For a value that is not a number where an integer belongs."""
    fraction: str
    """For a number with a fraction (or, unless `integral_floats`, any float) there."""
    boolean: str
    object: str
    array: str
    too_short: str
    pattern: str
    missing: str
    choice: str
    below: str
    above: str
    integral_floats: bool
    """Whether a float without a fraction (`2.0`) reads as an integer."""


PLAY_JSON = JsonWording(
    string="error.expected.jsstring", number="error.expected.jsnumber",
    integer="error.expected.jsnumber", fraction="error.expected.int",
    boolean="error.expected.jsboolean", object="error.expected.jsobject",
    array="error.expected.jsarray", too_short="error.minLength", pattern="error.pattern",
    missing="error.path.missing", choice="error.unknown.enum.literal", below="error.min",
    above="error.max", integral_floats=True)
"""Marathon's words: the error codes of play-json's readers."""

METRONOME = JsonWording(
    string="must be a string", number="must be a number", integer="must be an integer",
    fraction="must be an integer", boolean="must be a boolean", object="must be an object",
    array="must be an array", too_short="must not be empty",
    pattern="does not match the expected pattern", missing="is required",
    choice="is not one of the allowed values", below="must be at least {minimum:g}",
    above="must be at most {maximum:g}", integral_floats=False)
"""Metronome's words: short sentences."""


class JsonReader:
    """Reads typed values out of parsed JSON, recording a `Violation` for each bad one.

    Every reading method returns None (and records why) when the value does not fit.
    """

    def __init__(self, wording: JsonWording) -> None:
        self.wording = wording
        self.violations: list[Violation] = []

    def fail(self, path: str, error: str) -> None:
        """Record a violation."""
        self.violations.append(Violation(path, error))

    def field(self, obj: Mapping[str, Any], key: str, path: str,
              convert: Callable[[Any, str], T | None]) -> T | None:
        """`convert(obj[key], path/key)`; None when the key is absent or null."""
        if key not in obj or obj[key] is None:
            return None
        return convert(obj[key], f"{path}/{key}")

    def string(self, value: Any, path: str, *, min_length: int = 0,
               pattern: re.Pattern[str] | None = None) -> str | None:
        """A string of at least `min_length` characters, all of it matching `pattern`."""
        if not isinstance(value, str):
            self.fail(path, self.wording.string)
            return None
        if len(value) < min_length:
            self.fail(path, self.wording.too_short)
            return None
        if pattern is not None and not pattern.fullmatch(value):
            self.fail(path, self.wording.pattern)
            return None
        return value

    def number(self, value: Any, path: str, *, minimum: float | None = None,
               maximum: float | None = None) -> float | None:
        """A number (not a boolean) within the bounds, as a float."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, self.wording.number)
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer literal beyond a double's range, so beyond any bound
            top = sys.float_info.max
            if value > 0:
                self.fail(path, self.wording.above.format(maximum=top if maximum is None
                                                          else maximum))
            else:
                self.fail(path, self.wording.below.format(minimum=-top if minimum is None
                                                          else minimum))
            return None
        return self._in_range(number, path, minimum, maximum)

    def integer(self, value: Any, path: str, *, minimum: int | None = None,
                maximum: int | None = None) -> int | None:
        """An integer within the bounds (`2.0` too, when the wording allows it)."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, self.wording.integer)
            return None
        if isinstance(value, float) and not (self.wording.integral_floats
                                             and value.is_integer()):
            self.fail(path, self.wording.fraction)
            return None
        checked = self._in_range(int(value), path, minimum, maximum)
        return None if checked is None else int(checked)

    def _in_range(self, value: float, path: str, minimum: float | None,
                  maximum: float | None) -> float | None:
        if minimum is not None and value < minimum:
            self.fail(path, self.wording.below.format(minimum=minimum))
            return None
        if maximum is not None and value > maximum:
            self.fail(path, self.wording.above.format(maximum=maximum))
            return None
        return value

    def boolean(self, value: Any, path: str) -> bool | None:
        """`true` or `false`."""
        if not isinstance(value, bool):
            self.fail(path, self.wording.boolean)
            return None
        return value

    def choice(self, value: Any, path: str, choices: Sequence[str]) -> str | None:
        """One of `choices`, compared ignoring case; the choice as spelled in `choices`."""
        text = self.string(value, path)
        if text is None:
            return None
        for choice in choices:
            if choice.lower() == text.lower():
                return choice
        self.fail(path, self.wording.choice)
        return None

    def object(self, value: Any, path: str) -> Mapping[str, Any] | None:
        """A JSON object."""
        if not isinstance(value, Mapping):
            self.fail(path, self.wording.object)
            return None
        return value

    def array(self, value: Any, path: str) -> list[Any] | None:
        """A JSON array."""
        if not isinstance(value, list | tuple):
            self.fail(path, self.wording.array)
            return None
        return list(value)

    def items(self, value: Any, path: str, convert: Callable[[Any, str], T | None]) -> list[T]:
        """An array's items, each read by `convert` at `path(i)`; the bad ones left out."""
        values = self.array(value, path)
        converted = [convert(item, f"{path}({i})") for i, item in enumerate(values or [])]
        return [item for item in converted if item is not None]

    def string_map(self, value: Any, path: str) -> dict[str, str]:
        """An object of strings; entries that are not strings are left out."""
        mapping = self.object(value, path) or {}
        result: dict[str, str] = {}
        for key, item in mapping.items():
            text = self.string(item, f"{path}/{key}")
            if text is not None:
                result[key] = text
        return result


def frozen_json(value: Any) -> Any:
    """A deep read-only copy of a JSON value (objects become mappings, arrays tuples)."""
    if isinstance(value, Mapping):
        return MappingProxyType({k: frozen_json(v) for k, v in value.items()})
    if isinstance(value, list | tuple):
        return tuple(frozen_json(v) for v in value)
    return value


def thawed_json(value: Any) -> Any:
    """Plain JSON (dicts and lists) from a `frozen_json` value."""
    if isinstance(value, Mapping):
        return {k: thawed_json(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [thawed_json(v) for v in value]
    return value
