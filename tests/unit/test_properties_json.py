"""Properties of the strict JSON body parser and of the typed reader of parsed bodies.

- any bytes either parse or raise BadJson with a reason: never another exception;
- on valid documents within the bounds it agrees with `json.loads`;
- whatever it accepts has no NaN/Infinity, no lone surrogate and no nesting over MAX_DEPTH;
- `JsonReader` reads any JSON value into a value of the asked type or a violation.
"""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from mesos_http.json_body import MAX_DEPTH, MAX_NUMBER_LENGTH, BadJson, parse_json_body
from mesos_http.json_input import METRONOME, PLAY_JSON, JsonReader, JsonWording

# Valid JSON values: finite numbers, strings of Unicode scalar values (no lone surrogates).
_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
_scalars = (st.none() | st.booleans() | st.integers(min_value=-(10**30), max_value=10**30)
            | st.floats(allow_nan=False, allow_infinity=False) | _text)
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_text, inner, max_size=5),
    max_leaves=25,
)

# Text that looks a lot like JSON, to reach the parser's corners.
_json_alphabet = st.sampled_from(list('[]{}",:\\ 0123456789-+.eEtrufalsnNIiy\x00\x7f\u00e9'))
json_like = st.text(_json_alphabet, max_size=60)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


def _well_formed(value: Any) -> bool:
    """No NaN/Infinity and no lone surrogate anywhere in `value`."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        return not any("\ud800" <= c <= "\udfff" for c in value)
    if isinstance(value, list):
        return all(_well_formed(v) for v in value)
    if isinstance(value, dict):
        return all(_well_formed(k) and _well_formed(v) for k, v in value.items())
    return True


def _parse_or_reason(raw: bytes) -> Any:
    try:
        return parse_json_body(raw)
    except BadJson as error:
        assert error.reason and str(error) == error.reason
        return error


@given(st.binary(max_size=80))
def test_any_bytes_parse_or_give_a_reason(raw: bytes) -> None:
    _parse_or_reason(raw)


@given(json_like)
def test_any_json_like_text_parses_or_gives_a_reason(text: str) -> None:
    value = _parse_or_reason(text.encode("utf-8", "surrogatepass"))
    if not isinstance(value, BadJson):
        assert _well_formed(value)
        assert value == json.loads(text)


@given(json_values, st.booleans())
def test_agrees_with_json_loads_on_valid_documents(value: Any, ascii_only: bool) -> None:
    raw = json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    assert parse_json_body(raw) == json.loads(raw) == value


@given(st.integers(min_value=1, max_value=MAX_DEPTH + 20), st.booleans())
def test_nesting_up_to_the_bound_and_no_deeper(depth: int, objects: bool) -> None:
    if objects:
        raw = '{"k":' * (depth - 1) + "{}" + "}" * (depth - 1)
    else:
        raw = "[" * depth + "1" + "]" * depth
    result = _parse_or_reason(raw.encode())
    if depth <= MAX_DEPTH:
        assert not isinstance(result, BadJson)
        assert _depth(result) == depth
    else:
        assert isinstance(result, BadJson) and "nested deeper" in result.reason


@given(st.integers(min_value=-(10**(MAX_NUMBER_LENGTH - 1)) + 1,
                   max_value=10**MAX_NUMBER_LENGTH - 1))
def test_integer_literals_are_kept_exact(number: int) -> None:
    """Like Jackson's BigInteger: an integer within the length bound is exact, even beyond a
    double (the readers then refuse it as out of range, see below)."""
    assert parse_json_body(str(number).encode()) == number


@given(st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 400 + ".0",
                        "-" + "9" * 309 + "e0", "1" + "0" * 309 + ".5"]),
       st.sampled_from(["{}", "[{}]", '{{"a": [1, {}]}}']))
def test_numbers_beyond_a_double_are_refused(number: str, template: str) -> None:
    raw = template.replace("{}", number, 1) if template != "{}" else number
    result = _parse_or_reason(raw.encode())
    assert isinstance(result, BadJson), f"{raw!r} parsed as {result!r}"


@given(st.integers(min_value=1, max_value=MAX_NUMBER_LENGTH + 10))
def test_number_length_bound(length: int) -> None:
    literal = "1" + "0" * (length - 1) if length <= 300 else "0." + "1" * (length - 2)
    result = _parse_or_reason(literal.encode())
    if length <= MAX_NUMBER_LENGTH:
        assert result == json.loads(literal)
    else:
        assert isinstance(result, BadJson) and "characters" in result.reason


@given(st.integers(min_value=0xD800, max_value=0xDFFF), st.booleans())
def test_lone_surrogates_are_refused(code: int, as_key: bool) -> None:
    escaped = f'"\\u{code:04x}"'
    raw = f"{{{escaped}: 1}}" if as_key else f"[{escaped}]"
    assert isinstance(_parse_or_reason(raw.encode()), BadJson)


# The typed reader: any JSON value, any bounds.

_wordings = st.sampled_from([PLAY_JSON, METRONOME])
_any_number = (st.integers(min_value=-(10**400), max_value=10**400)
               | st.floats(allow_nan=False, allow_infinity=False))
_bound = st.none() | st.floats(min_value=-1e6, max_value=1e6)


@given(_wordings, json_values | _any_number, _bound, _bound)
def test_number_reads_a_finite_number_in_bounds_or_records_why(
        wording: JsonWording, value: Any, minimum: float | None,
        maximum: float | None) -> None:
    reader = JsonReader(wording)
    read = reader.number(value, "/n", minimum=minimum, maximum=maximum)
    if read is None:
        assert len(reader.violations) == 1 and reader.violations[0].path == "/n"
    else:
        assert not reader.violations
        assert isinstance(read, float) and math.isfinite(read)
        assert read == float(value)
        assert minimum is None or read >= minimum
        assert maximum is None or read <= maximum


@given(_wordings, json_values | _any_number,
       st.none() | st.integers(-(10**6), 10**6), st.none() | st.integers(-(10**6), 10**6))
def test_integer_reads_an_int_in_bounds_or_records_why(
        wording: JsonWording, value: Any, minimum: int | None, maximum: int | None) -> None:
    reader = JsonReader(wording)
    read = reader.integer(value, "/i", minimum=minimum, maximum=maximum)
    if read is None:
        assert len(reader.violations) == 1 and reader.violations[0].path == "/i"
    else:
        assert not reader.violations
        assert type(read) is int and read == value
        assert minimum is None or read >= minimum
        assert maximum is None or read <= maximum


@given(_wordings, json_values)
def test_other_readers_take_their_type_or_record_why(wording: JsonWording, value: Any) -> None:
    reader = JsonReader(wording)
    results = [
        (reader.string(value, "/s"), str),
        (reader.boolean(value, "/b"), bool),
        (reader.object(value, "/o"), dict),
        (reader.array(value, "/a"), list),
    ]
    for read, kind in results:
        assert read is None or isinstance(read, kind)
    assert len(reader.violations) == sum(read is None for read, _ in results)
    mapping = JsonReader(wording).string_map(value, "/m")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in mapping.items())
