"""Agent attributes in Mesos' text form: `rack:r1;zone:a;level:10;ids:[1-5];tags:{x,y}`.

A value is SCALAR when it reads as a number, RANGES in `[..]`, SET in `{..}`, TEXT otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mesos_values.ranges import RANGE_ITEM, merge_ranges, split_top_level
from mesos_values.resources import format_scalar
from protos import mesos_pb2

__all__ = ["format_attribute_value", "format_attributes", "parse_attributes"]

_NAME = re.compile(r"^[A-Za-z0-9_./\-]+$")
_NUMBER = re.compile(r"^-?[0-9]+(?:\.[0-9]+)?$")
_TEXT = re.compile(r"^[^\s\[\]{},;]+$")


def parse_attributes(text: str) -> list[mesos_pb2.Attribute]:
    """Parse `name:value;...` into attributes; ValueError naming the problem on bad input."""
    attributes: list[mesos_pb2.Attribute] = []
    seen: set[str] = set()
    for raw in split_top_level(text.strip(), ";"):
        entry = raw.strip()
        if not entry:
            continue
        name, colon, value = entry.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not value:
            raise ValueError(f"expected 'name:value' in attributes, got {entry!r}")
        if not _NAME.match(name):
            raise ValueError(f"invalid attribute name {name!r}")
        if name in seen:
            raise ValueError(f"attribute {name!r} given twice")
        seen.add(name)
        attributes.append(_parse_value(name, value))
    return attributes


def _parse_value(name: str, value: str) -> mesos_pb2.Attribute:
    attribute = mesos_pb2.Attribute(name=name)
    if value.startswith("[") and value.endswith("]"):
        attribute.type = mesos_pb2.Value.RANGES
        ranges: list[tuple[int, int]] = []
        inner = value[1:-1].strip()
        for item in inner.split(",") if inner else ():
            match = RANGE_ITEM.match(item.strip())
            if not match:
                raise ValueError(f"malformed range {item.strip()!r} in attribute {name!r}")
            begin = int(match.group(1))
            end = int(match.group(2)) if match.group(2) is not None else begin
            if begin > end:
                raise ValueError(f"malformed range [{begin}-{end}] in attribute {name!r}: "
                                 "begin is greater than end")
            ranges.append((begin, end))
        for begin, end in merge_ranges(ranges):
            attribute.ranges.range.add(begin=begin, end=end)
    elif value.startswith("{") and value.endswith("}"):
        attribute.type = mesos_pb2.Value.SET
        inner = value[1:-1].strip()
        items = [item.strip() for item in inner.split(",")] if inner else []
        if any(not _TEXT.match(item) for item in items):
            raise ValueError(f"malformed set {value!r} in attribute {name!r}")
        attribute.set.item.extend(items)
    elif _NUMBER.match(value):
        attribute.type = mesos_pb2.Value.SCALAR
        attribute.scalar.value = float(value)
    elif _TEXT.match(value):
        attribute.type = mesos_pb2.Value.TEXT
        attribute.text.value = value
    else:
        raise ValueError(f"cannot parse value {value!r} of attribute {name!r}")
    return attribute


def format_attributes(attributes: Iterable[mesos_pb2.Attribute]) -> str:
    """The text form of `attributes`, the inverse of `parse_attributes`."""
    return ";".join(f"{a.name}:{format_attribute_value(a)}" for a in attributes)


def format_attribute_value(attribute: mesos_pb2.Attribute) -> str:
    """The text form of one attribute's value (`r1`, `10`, `[1-5]`, `{a,b}`)."""
    if attribute.type == mesos_pb2.Value.SCALAR:
        return format_scalar(attribute.scalar.value)
    if attribute.type == mesos_pb2.Value.RANGES:
        return "[" + ",".join(f"{r.begin}-{r.end}" for r in attribute.ranges.range) + "]"
    if attribute.type == mesos_pb2.Value.SET:
        return "{" + ",".join(attribute.set.item) + "}"
    return attribute.text.value
