"""Mesos' health rules (`HealthJudge`) and defaults (`HealthPolicy`)."""

from __future__ import annotations

from mesos_agent.health_checks import HealthDecision, HealthJudge, HealthPolicy
from protos import mesos_pb2


def test_mesos_defaults_and_overrides() -> None:
    assert HealthPolicy.of(mesos_pb2.HealthCheck()) == HealthPolicy(15.0, 10.0, 20.0, 3, 10.0)
    check = mesos_pb2.HealthCheck(delay_seconds=0, interval_seconds=1, consecutive_failures=1)
    assert HealthPolicy.of(check) == HealthPolicy(0.0, 1.0, 20.0, 1, 10.0)


def test_changes_are_reported_once_and_failures_in_a_row_kill() -> None:
    judge = HealthJudge(HealthPolicy(grace_period=10, consecutive_failures=3), started_at=0)
    assert judge.result(False, at=5) == HealthDecision(None)  # starting: in the grace period
    assert judge.result(True, at=6) == HealthDecision(True)
    assert judge.result(True, at=7) == HealthDecision(None)  # no change, nothing to say
    assert judge.result(False, at=8) == HealthDecision(False)  # counted: it was healthy once
    assert judge.result(False, at=9) == HealthDecision(None)
    assert judge.result(True, at=10) == HealthDecision(True)  # a success resets the count
    assert [judge.result(False, at=t) for t in (11, 12, 13)] == [
        HealthDecision(False), HealthDecision(None), HealthDecision(None, kill=True)]


def test_failures_after_the_grace_period_count_without_a_success() -> None:
    judge = HealthJudge(HealthPolicy(grace_period=1, consecutive_failures=2), started_at=0)
    assert judge.result(False, at=2) == HealthDecision(False)
    assert judge.result(False, at=3) == HealthDecision(None, kill=True)
    never = HealthJudge(HealthPolicy(grace_period=0, consecutive_failures=0), started_at=0)
    assert [never.result(False, at=t).kill for t in range(5)] == [False] * 5  # 0: never kills
