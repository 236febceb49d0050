"""Agent attributes: parsing into typed values and formatting back."""

from __future__ import annotations

import pytest

from mesos_values.attributes import format_attributes, parse_attributes
from protos import mesos_pb2


def test_parse_typed_values() -> None:
    attrs = parse_attributes("rack:r1;zone:a;level:10;weight:0.5;ids:[1-5,7];tags:{x,y}")
    by_name = {a.name: a for a in attrs}
    assert [a.name for a in attrs] == ["rack", "zone", "level", "weight", "ids", "tags"]
    assert by_name["rack"].type == mesos_pb2.Value.TEXT
    assert by_name["rack"].text.value == "r1"
    assert by_name["level"].type == mesos_pb2.Value.SCALAR
    assert by_name["level"].scalar.value == 10.0
    assert by_name["weight"].scalar.value == 0.5
    assert by_name["ids"].type == mesos_pb2.Value.RANGES
    assert [(r.begin, r.end) for r in by_name["ids"].ranges.range] == [(1, 5), (7, 7)]
    assert by_name["tags"].type == mesos_pb2.Value.SET
    assert list(by_name["tags"].set.item) == ["x", "y"]


def test_round_trip() -> None:
    text = "rack:r1;zone:us-east-1a;level:10;ids:[1-5];tags:{x,y}"
    assert format_attributes(parse_attributes(text)) == text


def test_numbers_only_when_they_read_as_numbers() -> None:
    [host] = parse_attributes("host:10.0.0.1")
    assert host.type == mesos_pb2.Value.TEXT
    [inf] = parse_attributes("x:inf")
    assert inf.type == mesos_pb2.Value.TEXT


def test_empty_input() -> None:
    assert parse_attributes("") == []
    assert parse_attributes(" ; ") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rack", "expected 'name:value'"),
        ("rack:", "expected 'name:value'"),
        ("rack:a;rack:b", "given twice"),
        ("ids:[5-1]", "begin is greater than end"),
        ("ids:[a-b]", "malformed range"),
        ("ids:[1-2", "unbalanced"),
        ("bad name:x", "invalid attribute name"),
        ("tags:{a,,b}", "malformed set"),
        ("note:two words", "cannot parse value"),
    ],
    ids=["no-colon", "no-value", "duplicate", "begin>end", "range-syntax", "unbalanced",
         "bad-name", "empty-set-item", "whitespace"],
)
def test_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_attributes(text)
