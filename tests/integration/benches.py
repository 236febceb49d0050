"""Running a `bench/` script from a test: the smallest size of each benchmark runs in the suite
so that it keeps working as the code under it changes (its figures are never asserted)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH_DIR = ROOT / "bench"


def run_bench(script: str, *argv: str, timeout: float = 90.0) -> str:
    """Run `bench/<script>` and return its output; on a hang, SIGTERM lets it kill what it
    started before it exits, and the test fails with what it printed."""
    bench = subprocess.Popen(
        [sys.executable, str(BENCH_DIR / script), *argv], cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )
    try:
        output, _ = bench.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        bench.send_signal(signal.SIGTERM)
        output, _ = bench.communicate(timeout=60)
        pytest.fail(f"{script} took longer than {timeout} s:\n{output}")
    assert bench.returncode == 0, output
    return output
