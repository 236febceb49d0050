"""bench/batch_bench.py at its smallest (an array job of 40 tasks, real and hollow agents), so
that the benchmark keeps working as the code under it changes."""

from __future__ import annotations

import re

import pytest

from tests.integration.benches import run_bench

pytestmark = pytest.mark.integration

TASKS = 40


def test_minimal_batch_bench_measures_real_and_hollow_agents() -> None:
    output = run_bench("batch_bench.py", "--tasks", str(TASKS), "--variant", "both",
                       "--raw_count", "20", "--timeout", "60")

    assert output.startswith("command: python bench/batch_bench.py ")
    assert "machine: " in output and "load average at start" in output
    assert re.search(r"raw spawn .*: \d+ processes/s", output), output
    for variant in ("real", "hollow"):
        row = re.search(rf"^{variant}\s+{TASKS}\s+([\d.]+)\s+(\d+)\s", output, re.M)
        assert row is not None, f"no {variant} row in:\n{output}"
        seconds, rate = float(row.group(1)), int(row.group(2))
        assert 0 < seconds < 60
        # `seconds` is printed rounded: the rate must fit some time that rounds to it
        decimals = len(row.group(1).partition(".")[2])
        half = 0.5 * 10 ** -decimals
        assert TASKS / (seconds + half) - 1 <= rate <= TASKS / max(seconds - half, 1e-9) + 1
    assert re.search(r"real agents: median \d+ tasks/s", output), output
