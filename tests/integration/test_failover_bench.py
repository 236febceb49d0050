"""bench/failover_bench.py at its smallest (one real agent, ten hollow ones, one failover each,
1 s ZooKeeper sessions), so that the benchmark keeps working as the code under it changes."""

from __future__ import annotations

import re

import pytest

from tests.integration.benches import run_bench

pytestmark = pytest.mark.integration

SESSION_TIMEOUT = 1.0
MINIMAL = [
    "--scenario", "both", "--repeat", "1", "--zk_session_timeout", str(SESSION_TIMEOUT),
    "--agents", "1", "--frameworks", "1", "--tasks_per_framework", "1",
    "--hollow_agents", "10", "--hollow_processes", "1", "--hollow_frameworks", "2",
    "--timeout", "30",
]


def figures(output: str, scenario: str, measure: str) -> tuple[float, float, float]:
    """min, median and max of one row of the printed table."""
    row = re.search(
        rf"^{re.escape(scenario)}\s+{re.escape(measure)}\s+(\S+)\s+(\S+)\s+(\S+)", output, re.M
    )
    assert row is not None, f"no row {scenario!r} / {measure!r} in:\n{output}"
    low, median, high = (float(value) for value in row.groups())
    return low, median, high


def test_minimal_failover_bench_measures_both_scenarios() -> None:
    output = run_bench("failover_bench.py", *MINIMAL)

    assert output.startswith("command: python ")
    assert "machine: " in output
    for kind in ("small", "hollow"):
        scenario = f"{kind}, zk session {SESSION_TIMEOUT:g} s"
        elected, _, _ = figures(output, scenario, "kill -> elected (s)")
        back, _, _ = figures(output, scenario, "kill -> everything back (s)")
        # The dead leader's session must expire before anyone else can lead.
        assert SESSION_TIMEOUT * 0.5 <= elected <= back
        assert figures(output, scenario, "new leader RSS when back (MiB)")[0] > 0
    small = f"small, zk session {SESSION_TIMEOUT:g} s"
    assert figures(output, small, "kill -> all agents re-registered (s)")[0] > 0
    hollow = f"hollow, zk session {SESSION_TIMEOUT:g} s"
    assert figures(output, hollow, "elected -> all agents re-registered (s)")[0] >= 0
