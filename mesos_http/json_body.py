"""Strict decoding of JSON request bodies, the one place every REST API reads its JSON from.

    bytes --parse_json_body--> JSON value
            | not UTF-8, not JSON, NaN/Infinity, a number over MAX_NUMBER_LENGTH characters or
            | out of a double's range, nesting over MAX_DEPTH, a lone surrogate (`"\\ud800"`)
            v
         BadJson(reason) -- each API renders it in its own wording (Marathon: 400 "Invalid JSON")

The number bound is the default of `StreamReadConstraints` in Jackson 2.15+ (the parser of
Marathon and Metronome, whose older versions have none): at most 1000 characters.
Nesting is bounded tighter than Jackson's 1000 (no definition nests anywhere near 100 deep), and
before parsing, so a deep body costs no recursion.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["MAX_DEPTH", "MAX_NUMBER_LENGTH", "BadJson", "parse_json_body"]

MAX_DEPTH = 100
"""The deepest nesting of arrays and objects a body may have."""
MAX_NUMBER_LENGTH = 1000
"""The most characters a number may have (Jackson's default)."""

_BRACKETS_AND_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class BadJson(ValueError):
    """A body that is not strict JSON; `reason` says why, for the API's own answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_json_body(raw: bytes) -> Any:
    """The JSON value of `raw`; BadJson when it is not strict JSON within the bounds."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadJson(f"invalid UTF-8 at byte {error.start}") from None
    _check_depth(text)
    try:
        value = json.loads(text, parse_constant=_constant, parse_int=_integer,
                           parse_float=_float)
    except json.JSONDecodeError as error:
        raise BadJson(f"{error.msg} (line {error.lineno}, column {error.colno})") from None
    _check_strings(value)
    return value


def _check_depth(text: str) -> None:
    depth = 0
    for token in _BRACKETS_AND_STRINGS.finditer(text):
        bracket = token.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise BadJson(f"nested deeper than {MAX_DEPTH} levels "
                              f"(at character {token.start()})")
        elif bracket in "]}":
            depth -= 1


def _constant(name: str) -> Any:
    raise BadJson(f"{name} is not a JSON number")


def _check_length(literal: str) -> None:
    if len(literal) > MAX_NUMBER_LENGTH:
        raise BadJson(f"a number of {len(literal)} characters; at most {MAX_NUMBER_LENGTH}")


def _integer(literal: str) -> int:
    _check_length(literal)
    return int(literal)


def _float(literal: str) -> float:
    _check_length(literal)
    value = float(literal)
    if math.isinf(value):
        raise BadJson(f"the number {literal:.20} is out of a double's range")
    return value


def _check_strings(value: Any) -> None:
    """Refuse lone surrogates (`"\\udc80"`): they cannot be written back as UTF-8."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and _LONE_SURROGATE.search(item):
            raise BadJson("a string holds a lone UTF-16 surrogate")
