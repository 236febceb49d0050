"""mesos-local's pure parts: the restart backoff and the split of --task_ports."""

from __future__ import annotations

import argparse

import pytest

from mesos_local.main import agent_port_ranges, parse_port_range
from mesos_local.supervisor import RestartBackoff


def test_restarts_back_off_doubling_up_to_a_minute_and_start_over_once_stable() -> None:
    backoff = RestartBackoff()
    assert [backoff.delay(n) for n in (1, 2, 3, 4, 7, 8, 30)] == [1, 2, 4, 8, 60, 60, 60]
    assert backoff.exits_in_a_row(previous=3, ran_for=2.0) == 4  # crashing again at once
    assert backoff.exits_in_a_row(previous=5, ran_for=600.0) == 1  # it had run fine


def test_task_ports_are_split_evenly_among_the_agents() -> None:
    assert agent_port_ranges((31000, 32999), 2) == [(31000, 31999), (32000, 32999)]
    assert agent_port_ranges((40000, 40009), 3) == [(40000, 40002), (40003, 40005),
                                                    (40006, 40008)]
    assert agent_port_ranges((31000, 32999), 0) == []
    with pytest.raises(ValueError, match="fewer ports than --agents 3"):
        agent_port_ranges((40000, 40001), 3)


def test_port_ranges_are_parsed_and_checked() -> None:
    assert parse_port_range("41000-41999") == (41000, 41999)
    for bad in ("41000", "41999-41000", "0-10", "a-b", "1-70000"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_port_range(bad)
