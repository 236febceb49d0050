"""bench/launch_bench.py at its smallest (20 tasks on one agent), so that the benchmark keeps
working as the code under it changes (its figures are never asserted)."""

from __future__ import annotations

import re

import pytest

from tests.integration.benches import run_bench

pytestmark = pytest.mark.integration


def test_minimal_launch_bench_runs_every_task_and_prints_the_raw_rates() -> None:
    output = run_bench("launch_bench.py", "--tasks", "20", "--agents", "1", "--timeout", "60")

    assert output.startswith("machine: "), output
    assert re.search(r"^work dir on: \S+ at /", output, re.M), output
    assert re.search(r"^raw spawn from one Python process: subprocess.Popen \d+ processes/s, "
                     r"asyncio.create_subprocess_exec \d+ processes/s$", output, re.M), output
    assert re.search(r"^  the same without the shell \(`sleep 300`, as the agent runs it\): "
                     r"subprocess.Popen \d+ processes/s$", output, re.M), output
    assert re.search(r"^end to end: 20 tasks TASK_RUNNING in [\d.]+ s = \d+ tasks/s ", output,
                     re.M), output
    assert re.search(r"^  direct spawn just before \(subprocess.Popen of `sleep 300`\): "
                     r"\d+ processes/s; end to end / direct = [\d.]+ \((meets|MISSES) the "
                     r">= 0.8 target\)$", output, re.M), output
    assert re.search(r"^  task processes alive at the end: 20;", output, re.M), output
    assert "warning:" not in output  # every process it started was killed


def test_security_comparison_runs_a_plain_and_a_secured_cluster_and_prints_their_ratio() -> None:
    output = run_bench("launch_bench.py", "--tasks", "20", "--agents", "1", "--timeout", "60",
                       "--security", "both", "--rounds", "1", "--skip_raw")

    for name in ("plain", "tls_auth"):
        assert re.search(rf"^end to end \({name}, round 1\): 20 tasks TASK_RUNNING in [\d.]+ s ",
                         output, re.M), output
    assert re.search(r"^rounds, tasks/s: plain \d+; TLS \+ authentication \d+$", output,
                     re.M), output
    assert re.search(r"^TLS \+ authentication / plain \(medians \d+ / \d+ tasks/s\): \d+ % ",
                     output, re.M), output
    assert "direct spawn just before" not in output  # --skip_raw: no direct spawns at all
    assert "warning:" not in output
