"""Properties of the small text parsers: flag values (durations, ports, counts, booleans),
`HOST:PORT` addresses, batch task ids, the status line of HTTP health checks and timestamps.

Each takes any text and either returns a value within its documented range or raises its
declared error with a message; numbers are ASCII digits only (`str.isdigit` also takes `\u00b2`,
which `int` then refuses with an unrelated error).
"""

from __future__ import annotations

import argparse
import math
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frameworks.batch.runs import parse_task_id
from marathon.core import _parse_seconds
from marathon.health import _http_status
from mesos_master.main import _weights
from mesos_runtime.flags import parse_bool, parse_duration, parse_port, parse_positive_int
from mesos_values.addresses import HostPort, parse_host_port
from mesos_values.timestamps import format_timestamp

_numbers = (st.text(st.sampled_from(list("0123456789.\u00b2\u0661 -+_e")), max_size=12)
            | st.just("9" * 400))
_units = st.sampled_from(["", "ns", "us", "ms", "s", "sec", "secs", "m", "min", "mins", "h",
                          "hr", "hrs", "d", "day", "days", "w", "week", "weeks", "x", "S"])
_SECONDS = {"": 1, "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1, "sec": 1, "secs": 1, "m": 60,
            "min": 60, "mins": 60, "h": 3600, "hr": 3600, "hrs": 3600, "d": 86400,
            "day": 86400, "days": 86400, "w": 604800, "week": 604800, "weeks": 604800}


@given(_numbers, _units, st.sampled_from(["", " "]))
def test_durations_are_finite_seconds_or_refused(number: str, unit: str, space: str) -> None:
    text = number + space + unit
    try:
        seconds = parse_duration(text)
    except argparse.ArgumentTypeError as error:
        assert "invalid duration" in str(error)
        return
    assert math.isfinite(seconds) and seconds >= 0
    assert re.fullmatch(r"\s*[0-9]*\.?[0-9]+\s*", number + space)
    assert seconds == float(number) * _SECONDS[unit]


@given(st.floats(min_value=0, max_value=1e9), _units.filter(lambda u: u in _SECONDS))
def test_written_durations_read_back(value: float, unit: str) -> None:
    assert parse_duration(f"{value:f}{unit}") == float(f"{value:f}") * _SECONDS[unit]


@given(st.integers(-10, 70000).map(str) | _numbers)
def test_ports_are_ascii_numbers_in_range(text: str) -> None:
    try:
        port = parse_port(text)
    except argparse.ArgumentTypeError as error:
        assert "not a port number" in str(error)
        return
    assert 0 <= port < 65536 and port == int(text) and text.strip().isascii()


@given(st.integers(-10, 10**6).map(str) | _numbers | st.just("1" * 5000))
def test_positive_ints_are_ascii_numbers_of_at_least_one(text: str) -> None:
    try:
        number = parse_positive_int(text)
    except argparse.ArgumentTypeError as error:
        assert "at least 1" in str(error)
        return
    assert number >= 1 and number == int(text) and text.strip().isascii()


@given(st.sampled_from(["true", "False", " YES ", "off", "1", "0", "maybe", "", "on", "tru"]))
def test_booleans_are_named_or_refused(text: str) -> None:
    try:
        value = parse_bool(text)
    except argparse.ArgumentTypeError as error:
        assert "invalid boolean" in str(error)
        return
    assert value is (text.strip().lower() in ("true", "1", "yes", "on"))


_hosts = st.from_regex(r"[a-z0-9][a-z0-9.-]{0,10}", fullmatch=True) | st.sampled_from(
    ["::1", "fe80::1", "10.0.0.1"])


@given(_hosts, st.integers(1, 65535))
def test_addresses_round_trip(host: str, port: int) -> None:
    address = HostPort(host, port)
    assert parse_host_port(str(address)) == address


@given(st.text(st.sampled_from(list("ab1:[]\u00b2\u0661 0.")), max_size=12))
def test_any_address_text_parses_or_raises_value_error(text: str) -> None:
    try:
        address = parse_host_port(text)
    except ValueError as error:
        assert str(error).startswith("invalid address")
        return
    assert address.host and 0 < address.port < 65536


@given(st.from_regex(r"[a-z0-9.-]{1,8}", fullmatch=True), st.text("0123456789", min_size=14,
                                                                   max_size=14),
       st.from_regex(r"[A-Za-z0-9]{5}", fullmatch=True), st.integers(0, 10**6),
       st.integers(0, 10**6))
def test_task_ids_round_trip(job: str, stamp: str, suffix: str, index: int,
                             attempt: int) -> None:
    run_id = stamp + suffix
    assert parse_task_id(f"{job}_{run_id}.{index}.{attempt}") == (job, run_id, index, attempt)


@given(st.text(st.sampled_from(list("ab_.0123456789\u00b2\u0661")), max_size=30))
def test_any_task_id_parses_or_is_none(text: str) -> None:
    parsed = parse_task_id(text)
    if parsed is not None:
        job, run_id, index, attempt = parsed
        assert text == f"{job}_{run_id}.{index}.{attempt}"


@given(st.binary(max_size=20) | st.sampled_from(
    [b"HTTP/1.1 200 OK", b"HTTP/1.1 \xb200 OK", b"HTTP/1.0 503", b"HTTP/1.1 9999999 X"]))
def test_http_status_lines_parse_or_are_none(line: bytes) -> None:
    status = _http_status(line)
    if status is not None:
        code, text = status
        assert 0 <= code <= 999 and text.startswith(str(code))


# Timestamps as the HTTP APIs write them (Marathon's versions are such timestamps). Up to the
# year 2200: beyond about 2242 a double no longer holds seconds to the microsecond.

_LAST_MOMENT = 7258118399  # 2199-12-31T23:59:59Z
_moments = st.floats(min_value=0, max_value=_LAST_MOMENT)


@given(_moments, _moments)
def test_timestamps_are_ordered_like_the_moments(a: float, b: float) -> None:
    first, second = sorted((a, b))
    assert format_timestamp(first) <= format_timestamp(second)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", format_timestamp(first))


@given(st.integers(0, _LAST_MOMENT * 1000))
def test_a_version_one_millisecond_later_is_the_next_one(millis: int) -> None:
    """Marathon's core makes versions unique by adding 1 ms to the current one, read back."""
    version = format_timestamp(millis / 1000)
    assert version.endswith(f".{millis % 1000:03d}Z")
    assert _parse_seconds(version) == pytest.approx(millis / 1000, abs=5e-7)
    assert format_timestamp(_parse_seconds(version) + 0.001) == format_timestamp(
        (millis + 1) / 1000)


@given(st.lists(st.tuples(st.sampled_from(["web", "a/b", "a b", ""]),
                          st.sampled_from(["2", "0.5", "0", "-2", "nan", "inf", "-inf", "1e400",
                                           "x", "1_0"])), max_size=3))
def test_master_weights_flag_takes_finite_positive_weights(items: list[tuple[str, str]]) -> None:
    text = ",".join(f"{role}={weight}" for role, weight in items)
    try:
        weights = _weights(text)
    except argparse.ArgumentTypeError as error:
        assert str(error)
        return
    assert all(math.isfinite(w) and w > 0 for w in weights.values())
    assert set(weights) == {role for role, _ in items}
