"""The shared request-body reader: each check in both wordings, and the 422 body."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest

from mesos_http.json_input import (
    METRONOME,
    PLAY_JSON,
    InvalidBody,
    JsonReader,
    JsonWording,
    Violation,
    frozen_json,
    thawed_json,
)

Read = Callable[[JsonReader], object]

CASES: list[tuple[str, Read, object, str, str]] = [
    # (id, reading, expected value, play-json error, Metronome error); "" when accepted
    ("string", lambda r: r.string("x", "/p"), "x", "", ""),
    ("string-wrong-type", lambda r: r.string(1, "/p"), None,
     "error.expected.jsstring", "must be a string"),
    ("string-too-short", lambda r: r.string("", "/p", min_length=1), None,
     "error.minLength", "must not be empty"),
    ("string-pattern", lambda r: r.string("ab", "/p", pattern=re.compile("a")), None,
     "error.pattern", "does not match the expected pattern"),
    ("number", lambda r: r.number(2, "/p"), 2.0, "", ""),
    ("number-boolean", lambda r: r.number(True, "/p"), None,
     "error.expected.jsnumber", "must be a number"),
    ("number-below", lambda r: r.number(0.001, "/p", minimum=0.01), None,
     "error.min", "must be at least 0.01"),
    ("number-above", lambda r: r.number(2, "/p", maximum=1.0), None,
     "error.max", "must be at most 1"),
    ("integer", lambda r: r.integer(3, "/p", minimum=0), 3, "", ""),
    ("integer-text", lambda r: r.integer("3", "/p"), None,
     "error.expected.jsnumber", "must be an integer"),
    ("integer-fraction", lambda r: r.integer(1.5, "/p"), None,
     "error.expected.int", "must be an integer"),
    ("integer-below", lambda r: r.integer(0, "/p", minimum=1), None,
     "error.min", "must be at least 1"),
    ("boolean", lambda r: r.boolean(False, "/p"), False, "", ""),
    ("boolean-wrong-type", lambda r: r.boolean("true", "/p"), None,
     "error.expected.jsboolean", "must be a boolean"),
    ("object-wrong-type", lambda r: r.object([], "/p"), None,
     "error.expected.jsobject", "must be an object"),
    ("array-wrong-type", lambda r: r.array({}, "/p"), None,
     "error.expected.jsarray", "must be an array"),
    ("choice-ignores-case", lambda r: r.choice("tcp", "/p", ("TCP", "UDP")), "TCP", "", ""),
    ("choice-unknown", lambda r: r.choice("sctp", "/p", ("TCP", "UDP")), None,
     "error.unknown.enum.literal", "is not one of the allowed values"),
]


@pytest.mark.parametrize(("reading", "expected", "play_json", "metronome"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
@pytest.mark.parametrize("wording", [PLAY_JSON, METRONOME], ids=["play-json", "metronome"])
def test_each_check_in_each_wording(wording: JsonWording, reading: Read, expected: object,
                                    play_json: str, metronome: str) -> None:
    reader = JsonReader(wording)
    assert reading(reader) == expected
    error = play_json if wording is PLAY_JSON else metronome
    assert reader.violations == ([Violation("/p", error)] if error else [])


@pytest.mark.parametrize(("wording", "value", "expected", "errors"), [
    (PLAY_JSON, 2.0, 2, []),
    (METRONOME, 2, 2, []),
    (METRONOME, 2.0, None, ["must be an integer"]),
], ids=["play-json-integral-float", "metronome-int", "metronome-float"])
def test_integral_floats_follow_the_wording(wording: JsonWording, value: float,
                                             expected: int | None, errors: list[str]) -> None:
    reader = JsonReader(wording)
    assert reader.integer(value, "/p") == expected
    assert [v.error for v in reader.violations] == errors


def test_items_and_fields_carry_their_paths() -> None:
    reader = JsonReader(PLAY_JSON)
    body: dict[str, Any] = {"ports": [80, "x", 443], "labels": {"a": "b", "c": 1}, "none": None}
    ports = reader.field(body, "ports", "", lambda v, p: reader.items(v, p, reader.integer))
    assert ports == [80, 443]
    assert reader.field(body, "labels", "/app", reader.string_map) == {"a": "b"}
    assert reader.field(body, "none", "", reader.string) is None
    assert reader.violations == [Violation("/ports(1)", "error.expected.jsnumber"),
                                 Violation("/app/labels/c", "error.expected.jsstring")]


def test_details_group_by_path_in_first_seen_order_without_repeats() -> None:
    refusal = InvalidBody("Object is not valid", [
        Violation("/id", "a"), Violation("/cpus", "b"), Violation("/id", "c"),
        Violation("/id", "a")])
    assert refusal.status_code == 422
    assert refusal.to_json() == {"message": "Object is not valid", "details": [
        {"path": "/id", "errors": ["a", "c"]}, {"path": "/cpus", "errors": ["b"]}]}
    assert refusal.errors_at("/id") == ["a", "c", "a"]


def test_frozen_json_is_read_only_and_thaws_back() -> None:
    value = {"a": [1, {"b": "c"}], "d": None}
    frozen = frozen_json(value)
    with pytest.raises(TypeError):
        frozen["a"] = 2
    assert frozen["a"] == (1, frozen_json({"b": "c"}))
    assert thawed_json(frozen) == value
