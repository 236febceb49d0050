"""The flag value types every component's command line shares."""

from __future__ import annotations

import argparse

import pytest

from mesos_http.operator_http import flag_values, redact_credentials
from mesos_runtime.flags import parse_duration, parse_log_level, parse_port, parse_zk_flag


def test_log_levels_are_checked_and_normalised() -> None:
    assert parse_log_level(" debug ") == "DEBUG"
    with pytest.raises(argparse.ArgumentTypeError, match="unknown level 'LOUD'"):
        parse_log_level("LOUD")


def test_zk_urls_are_checked_and_kept_as_given() -> None:
    url = "zk://user:pass@127.0.0.1:2181,127.0.0.2:2181/mesos"
    assert parse_zk_flag(url) == url
    for bad in ("nope", "zk://", "zk://127.0.0.1:2181"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_zk_flag(bad)


def test_durations_and_ports() -> None:
    assert parse_duration("2mins") == 120.0
    assert parse_duration("500ms") == 0.5
    assert parse_port("0") == 0
    with pytest.raises(argparse.ArgumentTypeError):
        parse_port("70000")


def test_zookeeper_passwords_are_never_shown() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zk", type=parse_zk_flag)
    args = parser.parse_args(["--zk", "zk://ops:s3cret@127.0.0.1:2181,127.0.0.2:2181/mesos"])
    assert flag_values(parser, args) == {"zk": "zk://ops:*****@127.0.0.1:2181,127.0.0.2:2181/mesos"}
    assert redact_credentials("zk://127.0.0.1:2181/mesos") == "zk://127.0.0.1:2181/mesos"
