"""The strict JSON body parser: what it accepts unchanged, what it refuses and why."""

from __future__ import annotations

import pytest

from mesos_http.json_body import MAX_DEPTH, MAX_NUMBER_LENGTH, BadJson, parse_json_body


def _nested(depth: int) -> list[object]:
    value: list[object] = []
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize("raw, value", [
    (b'{"id": "/a", "cpus": 0.5, "instances": 2, "env": {"K": "\\u00e9"}}',
     {"id": "/a", "cpus": 0.5, "instances": 2, "env": {"K": "\u00e9"}}),
    (b'"[{\\"not nesting\\"}]"', '[{"not nesting"}]'),
    (b'"\\ud83d\\ude00"', "\U0001F600"),
    (b"1e308", 1e308),
    (b"9" * MAX_NUMBER_LENGTH, int("9" * MAX_NUMBER_LENGTH)),
    (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, _nested(MAX_DEPTH)),
])
def test_accepts_strict_json(raw: bytes, value: object) -> None:
    assert parse_json_body(raw) == value


@pytest.mark.parametrize("raw, reason", [
    (b"[" * 10_000 + b"]" * 10_000, f"nested deeper than {MAX_DEPTH} levels"),
    (b'{"id": "\xff"}', "invalid UTF-8 at byte 8"),
    (b"1" * 4301, f"a number of 4301 characters; at most {MAX_NUMBER_LENGTH}"),
    (b'{"cpus": NaN}', "NaN is not a JSON number"),
    (b'{"scaleBy": Infinity}', "Infinity is not a JSON number"),
    (b'{"cpus": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"cpus": 1e999999}', "the number 1e999999 is out of a double's range"),
    (b'{"id": "\\ud800"}', "a string holds a lone UTF-16 surrogate"),
    (b'{"\\udc80": 1}', "a string holds a lone UTF-16 surrogate"),
    (b'{"id": ', "Expecting value (line 1, column 8)"),
])
def test_refuses_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(BadJson) as refused:
        parse_json_body(raw)
    assert refused.value.reason.startswith(reason)
