"""Timestamps as the HTTP APIs write them: ISO 8601 in UTC, to the millisecond."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["format_timestamp"]


def format_timestamp(seconds: float, *, utc_suffix: str = "Z") -> str:
    """`seconds` since the epoch as `2016-02-28T16:41:41.090Z` (Marathon's form); with
    `utc_suffix="+0000"`, `2016-07-15T13:02:59.735+0000` (Metronome's). Milliseconds are
    truncated, not rounded."""
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}{utc_suffix}"
