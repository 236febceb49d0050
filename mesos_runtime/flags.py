"""Command-line flags in Mesos' style: every `--flag` may also come from `<PREFIX>_<FLAG>`.

Explicit command-line values win over the environment, which wins over defaults. Durations
accept Mesos' suffixes (`500ms`, `15secs`, `2mins`, `1hrs`) or plain seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Sequence
from typing import NoReturn

from mesos_values.addresses import parse_zk_url

_DURATION = re.compile(
    r"^\s*([0-9]*\.?[0-9]+)\s*(ns|us|ms|secs?|s|mins?|m|hrs?|h|days?|d|weeks?|w)?\s*$"
)
_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}


class FlagParser(argparse.ArgumentParser):
    """argparse that exits with status 1 and one clear line on bad flags, as Mesos does."""

    def error(self, message: str) -> NoReturn:
        self.exit(1, f"{self.prog}: error: {message}\n")


def parse_duration(text: str) -> float:
    """Parse a Mesos duration (`5secs`, `100ms`, `2mins`, or plain seconds) into seconds."""
    match = _DURATION.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: expected a number with an optional unit "
            "(ms, secs, mins, hrs, days), e.g. '15secs'"
        )
    number, unit = match.groups()
    seconds = float(number) * _UNIT_SECONDS[unit or "s"]
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: too long")
    return seconds


def _is_decimal(text: str) -> bool:
    """ASCII digits only (`str.isdigit` also takes `²`, which `int` refuses), at most 4300 of
    them (`int` refuses longer ones)."""
    return text.isascii() and text.isdigit() and len(text) <= 4300


_BYTES = re.compile(r"^\s*(\d{1,30})\s*(B|KB|MB|GB|TB)?\s*$", re.IGNORECASE)
_BYTE_UNITS = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}


def parse_bytes(text: str) -> int:
    """Parse a Mesos byte size (`2GB`, `512MB`, `100KB`, `64B` or plain bytes)."""
    match = _BYTES.match(text)
    if not match:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: expected a number with an optional unit (B, KB, MB, GB, "
            "TB), e.g. '2GB'")
    number, unit = match.groups()
    return int(number) * _BYTE_UNITS[(unit or "B").upper()]


def parse_port(text: str) -> int:
    """Parse a TCP port number (0 lets the system pick a free port)."""
    if not _is_decimal(text.strip()) or not 0 <= int(text) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0..65535)")
    return int(text)


def parse_positive_int(text: str) -> int:
    """Parse an integer of at least 1."""
    if not _is_decimal(text.strip()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer of at least 1")
    return int(text)


def parse_bool(text: str) -> bool:
    """Parse a boolean flag value the way Mesos does (true/false, 1/0, yes/no)."""
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes", "on"):
        return True
    if lowered in ("false", "0", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {text!r}: expected true or false")


def parse_flags(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, env_prefix: str
) -> argparse.Namespace:
    """Parse `argv`, filling flags not given on the command line from `<env_prefix>_<FLAG>`."""
    env_defaults: dict[str, str] = {}
    for action in parser._actions:  # argparse offers no public iterator over its actions
        if not action.option_strings or action.dest == "help":
            continue
        value = os.environ.get(f"{env_prefix}_{action.dest.upper()}")
        if value is not None:
            env_defaults[action.dest] = value
    for dest, raw in env_defaults.items():
        action = next(a for a in parser._actions if a.dest == dest)
        if isinstance(action, argparse._StoreTrueAction):
            parser.set_defaults(**{dest: parse_bool(raw)})
            continue
        convert = action.type if callable(action.type) else str
        try:
            parser.set_defaults(**{dest: convert(raw)})
        except (argparse.ArgumentTypeError, ValueError) as exc:
            parser.error(f"{env_prefix}_{dest.upper()}: {exc}")
    return parser.parse_args(argv)


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def parse_log_level(text: str) -> str:
    """A `--log_level` value (case-insensitive), returned upper-case."""
    if text.strip().upper() not in LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"unknown level {text!r}: expected one of {', '.join(LOG_LEVELS)}"
        )
    return text.strip().upper()


def parse_zk_flag(text: str) -> str:
    """A `--zk` value: checked to be a `zk://[user:pass@]host:port,.../path` URL, kept as text."""
    try:
        parse_zk_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text
