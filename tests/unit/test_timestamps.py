"""Timestamps in the HTTP APIs' form (mesos_values.timestamps)."""

from __future__ import annotations

from datetime import UTC, datetime

from mesos_values.timestamps import format_timestamp


def test_marathons_form_is_the_default() -> None:
    assert format_timestamp(1456677701.090) == "2016-02-28T16:41:41.090Z"
    assert format_timestamp(0) == "1970-01-01T00:00:00.000Z"


def test_milliseconds_are_truncated() -> None:
    assert format_timestamp(59.9996) == "1970-01-01T00:00:59.999Z"


def test_metronomes_suffix() -> None:
    moment = datetime(2016, 7, 15, 13, 2, 59, 735000, tzinfo=UTC)
    assert format_timestamp(moment.timestamp(), utc_suffix="+0000") == (
        "2016-07-15T13:02:59.735+0000"
    )
