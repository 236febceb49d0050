"""Properties of ranges, resources and attributes (`mesos_values`).

- range arithmetic agrees with a model of plain integer sets;
- resource text, JSON and protobuf forms round-trip; any text parses or raises ValueError;
- resource addition and subtraction agree with per-name models (sums of thousandths, sets);
- a scalar that is non-finite, negative or over MAX_SCALAR is refused with a message;
- attribute text round-trips and any text parses or raises ValueError.
"""

from __future__ import annotations

import json
import math
import re

from google.protobuf.json_format import MessageToDict
from hypothesis import assume, given
from hypothesis import strategies as st

from mesos_values.attributes import format_attributes, parse_attributes
from mesos_values.ranges import (
    Range,
    intersect_ranges,
    merge_ranges,
    ranges_contain,
    split_top_level,
    subtract_ranges,
)
from mesos_values.resources import MAX_SCALAR, Reservation, Resources, format_scalar
from protos import mesos_pb2

# Ranges, against a model of integer sets (small numbers so the sets stay small).

_range = st.tuples(st.integers(0, 60), st.integers(0, 8)).map(lambda t: (t[0], t[0] + t[1]))
_range_lists = st.lists(_range, max_size=6)


def _points(ranges: tuple[Range, ...] | list[Range]) -> set[int]:
    return {n for begin, end in ranges for n in range(begin, end + 1)}


def _normalised(ranges: tuple[Range, ...]) -> bool:
    return all(begin <= end for begin, end in ranges) and all(
        ranges[i][1] + 1 < ranges[i + 1][0] for i in range(len(ranges) - 1))


@given(_range_lists)
def test_merge_keeps_the_points_and_normalises(ranges: list[Range]) -> None:
    merged = merge_ranges(ranges)
    assert _points(merged) == _points(ranges)
    assert _normalised(merged)
    assert merge_ranges(merged) == merged


@given(_range_lists, _range_lists)
def test_contain_subtract_and_intersect_agree_with_sets(a: list[Range], b: list[Range]) -> None:
    outer, inner = merge_ranges(a), merge_ranges(b)
    assert ranges_contain(outer, inner) == (_points(inner) <= _points(outer))
    common = intersect_ranges(outer, inner)
    assert _points(common) == _points(outer) & _points(inner) and _normalised(common)
    left = subtract_ranges(outer, common)
    assert _points(left) == _points(outer) - _points(inner) and _normalised(left)
    assert merge_ranges(left + common) == outer


@given(st.text(st.sampled_from("ab;[]{}"), max_size=20))
def test_split_top_level_splits_or_refuses_unbalanced_text(text: str) -> None:
    try:
        parts = split_top_level(text, ";")
    except ValueError as error:
        assert "unbalanced" in str(error)
        return
    assert ";".join(parts) == text
    for part in parts:
        assert split_top_level(part, ";") == [part]


# Resources: a model of what a bag holds, built into text, JSON and protobuf forms.

_names = st.from_regex(r"[a-z][a-z0-9_./-]{0,6}", fullmatch=True)
_roles = st.sampled_from(["ads", "eng", "eng/backend", "*"])
_thousandths = st.integers(1, 10**9)
_items = st.from_regex(r"[a-z0-9]{1,4}", fullmatch=True)


@st.composite
def resource_models(draw: st.DrawFn) -> tuple[dict[str, int], dict[str, list[Range]],
                                              dict[str, set[str]]]:
    """Scalars (in thousandths), ranges and sets by distinct `name` or `name(role)` labels."""
    names = draw(st.lists(_names, unique=True, max_size=6))
    scalars: dict[str, int] = {}
    ranges: dict[str, list[Range]] = {}
    sets: dict[str, set[str]] = {}
    for name in names:
        role = draw(_roles)
        label = name if role == "*" else f"{name}({role})"
        kind = draw(st.sampled_from(["scalar", "ranges", "set"]))
        if kind == "scalar":
            scalars[label] = draw(_thousandths)
        elif kind == "ranges":
            ranges[label] = draw(_range_lists.filter(bool))
        else:
            sets[label] = draw(st.sets(_items, min_size=1, max_size=4))
    return scalars, ranges, sets


Model = tuple[dict[str, int], dict[str, list[Range]], dict[str, set[str]]]


def _text(model: Model) -> str:
    scalars, ranges, sets = model
    parts = [f"{label}:{format_scalar(value / 1000)}" for label, value in scalars.items()]
    parts += [f"{label}:[{','.join(f'{b}-{e}' for b, e in rs)}]" for label, rs in ranges.items()]
    parts += [f"{label}:{{{','.join(sorted(items))}}}" for label, items in sets.items()]
    return ";".join(parts)


@given(resource_models())
def test_text_form_round_trips(model: Model) -> None:
    resources = Resources.parse(_text(model))
    assert Resources.parse(str(resources)) == resources
    scalars, ranges, sets = model
    for label, value in scalars.items():
        assert round(resources.scalar(label.partition("(")[0]) * 1000) == value
    for label, rs in ranges.items():
        assert _points(resources.ranges_of(label.partition("(")[0])) == _points(rs)
    for label, items in sets.items():
        assert resources.set_of(label.partition("(")[0]) == items


@given(resource_models())
def test_protobuf_and_json_forms_round_trip(model: Model) -> None:
    resources = Resources.parse(_text(model))
    messages = resources.to_proto()
    assert Resources.from_proto(messages) == resources
    # As the operator API writes them (uint64 as strings, zero bounds left out) and reads them.
    as_json = json.dumps([MessageToDict(m, preserving_proto_field_name=True) for m in messages])
    assert Resources.parse(as_json) == resources


def _shared_points(a: Model, b: Model) -> bool:
    return any(_points(a[1][label]) & _points(b[1].get(label, [])) for label in a[1]) or any(
        a[2][label] & b[2].get(label, set()) for label in a[2])


@given(resource_models(), resource_models())
def test_addition_and_subtraction_agree_with_the_model(a: Model, b: Model) -> None:
    left, right = Resources.parse(_text(a)), Resources.parse(_text(b))
    try:
        total = left + right
    except ValueError as error:  # one name used with two types
        assert "different types" in str(error)
        return
    assert total.contains(left) and total.contains(right)
    assert total == right + left
    assert (total - right).contains(left - left) and left.contains(total - right)
    if not _shared_points(a, b):  # ranges and sets are unions: only then is - the inverse
        assert total - right == left and total - left == right
    for label in a[0].keys() | b[0].keys():
        name = label.partition("(")[0]
        assert total.scalar(name) == left.scalar(name) + right.scalar(name) or math.isclose(
            total.scalar(name), left.scalar(name) + right.scalar(name))
    if not right.is_empty() and not left.contains(right):
        try:
            left - right
        except ValueError as error:
            assert "not contained" in str(error)
        else:
            raise AssertionError(f"{left} - {right} did not refuse")


@given(st.text(st.sampled_from("cpus:mem()[]{},;-.0123456789 eEnaif*\x1f\n"), max_size=30))
def test_any_text_parses_or_raises_value_error(text: str) -> None:
    try:
        resources = Resources.parse(text)
    except ValueError as error:
        assert str(error)
        return
    assert Resources.parse(str(resources)) == resources
    resources.to_proto()


_bad_scalars = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1.0, -1e-3,
                                MAX_SCALAR * 1.0001, 2.0**64])


@given(_names, _bad_scalars)
def test_bad_scalars_are_refused_in_every_form(name: str, value: float) -> None:
    message = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.SCALAR)
    message.scalar.value = value
    attempts = [
        lambda: Resources.from_proto([message]),
        lambda: Resources.from_scalars({name: value}),
        lambda: Resources.parse(f"{name}:{value!r}"),
        lambda: Resources.parse(json.dumps([{"name": name, "type": "SCALAR",
                                             "scalar": {"value": value}}])),
        lambda: Resources.parse(json.dumps([{"name": name, "type": "SCALAR", "scalar": {
            "value": int(math.copysign(1, value)) * 10**309}}])),  # beyond a double
    ]
    for attempt in attempts:
        try:
            attempt()
        except ValueError as error:
            assert name in str(error)
        else:
            raise AssertionError(f"{name}={value!r} was accepted")


@given(_names, st.integers(0, 10**18).map(lambda n: n / 1000).filter(lambda v: v <= MAX_SCALAR))
def test_scalars_within_bounds_are_accepted_at_millis(name: str, value: float) -> None:
    resources = Resources.from_scalars({name: value})
    assert resources.scalar(name) == round(value * 1000) / 1000
    assert Resources.parse(str(resources)) == resources


@given(st.integers(0, 2**64 + 10), st.integers(0, 2**64 + 10))
def test_range_bounds_fit_mesos_uint64(begin: int, end: int) -> None:
    assume(begin <= end)
    try:
        resources = Resources.parse(f"ports:[{begin}-{end}]")
    except ValueError as error:
        assert end >= 2**64 and "ports" in str(error)
        return
    assert end < 2**64
    assert Resources.from_proto(resources.to_proto()) == resources


@given(_names, st.sampled_from(["\x1f", "\n", " ", "(", "", "\x1f[[\"ads\",true,\"\",[]]]"]))
def test_names_outside_the_grammar_are_refused(name: str, junk: str) -> None:
    bad = name + junk
    message = mesos_pb2.Resource(name=bad, type=mesos_pb2.Value.SCALAR)
    message.scalar.value = 1
    for attempt in (lambda: Resources.from_proto([message]),
                    lambda: Resources.from_scalars({bad: 1.0})):
        try:
            resources = attempt()
        except ValueError as error:
            assert "name" in str(error)
        else:
            assert junk == "" and resources.scalar(name) == 1.0


@given(resource_models(), st.sampled_from(["ads", "eng"]))
def test_reserve_then_unreserve_gives_back_the_same(model: Model, role: str) -> None:
    resources = Resources.parse(_text(model))
    reservation = Reservation(role, dynamic=True, principal="p")
    pushed = resources.pushed(reservation)
    assert pushed.popped() == resources
    assert pushed.without_dynamic() == resources
    assert pushed.scalar_quantities() == resources.scalar_quantities()


# Attributes.

_attribute_values = st.one_of(
    st.from_regex(r"[a-z][a-z0-9_.-]{0,5}", fullmatch=True),
    st.integers(-(10**6), 10**6).map(str),
    st.integers(0, 10**6).map(lambda n: f"{n / 1000:g}"),
    _range_lists.filter(bool).map(
        lambda rs: "[" + ",".join(f"{b}-{e}" for b, e in merge_ranges(rs)) + "]"),
    st.lists(_items, min_size=1, max_size=3, unique=True).map(lambda i: "{" + ",".join(i) + "}"),
)


@given(st.dictionaries(_names, _attribute_values, max_size=5))
def test_attributes_round_trip(attributes: dict[str, str]) -> None:
    text = ";".join(f"{name}:{value}" for name, value in attributes.items())
    parsed = parse_attributes(text)
    assert [a.name for a in parsed] == list(attributes)
    assert parse_attributes(format_attributes(parsed)) == parsed


@given(st.text(st.sampled_from("rack:zone[]{},;-.0123456789 \n\x1f"), max_size=30))
def test_any_attribute_text_parses_or_raises_value_error(text: str) -> None:
    try:
        parsed = parse_attributes(text)
    except ValueError as error:
        assert str(error)
        return
    assert parse_attributes(format_attributes(parsed)) == parsed


@given(st.text(st.sampled_from(list("0123456789.-e\u0661\u00b2a")), min_size=1, max_size=8))
def test_attribute_values_are_scalars_exactly_when_decimal_numbers(value: str) -> None:
    try:
        (attribute,) = parse_attributes(f"n:{value}")
    except ValueError:
        return
    number = re.fullmatch(r"-?[0-9]+(\.[0-9]+)?", value)
    assert (attribute.type == mesos_pb2.Value.SCALAR) == bool(number)
    if number:
        assert attribute.scalar.value == float(value)
    else:
        assert attribute.type == mesos_pb2.Value.TEXT and attribute.text.value == value


@given(st.text(st.sampled_from(list("0123456789.-+eE_x \u0661nai")), min_size=1, max_size=8))
def test_text_scalars_are_decimal_numbers(value: str) -> None:
    decimal = re.fullmatch(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?", value.strip())
    try:
        resources = Resources.parse(f"cpus:{value}")
    except ValueError as error:
        assert "cpus" in str(error)
        assert not decimal or not 0 <= float(value) <= MAX_SCALAR or "non-finite" in str(error)
        return
    assert decimal and resources.scalar("cpus") == round(float(value) * 1000) / 1000
