"""The framework author's guide cannot rot: its finished scheduler
(`frameworks.examples.guide_scheduler`) runs against a real master and agent — tasks, retries,
failover with reconciliation, a custom executor — and every Python snippet of the guide is code
of that scheduler."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
GUIDE = REPO_ROOT / "docs" / "framework-guide.md"
EXAMPLE = REPO_ROOT / "frameworks" / "examples" / "guide_scheduler.py"


def run_guide(cluster: Cluster, state_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the guide's scheduler to its end; its output is in the failure when it hangs."""
    try:
        return subprocess.run(
            [sys.executable, "-m", "frameworks.examples.guide_scheduler",
             "--master", cluster.master_address, "--state_file", str(state_file),
             "--log_level", "INFO", *args],
            capture_output=True, text=True, timeout=90, cwd=REPO_ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    except subprocess.TimeoutExpired as hung:
        output = [o.decode(errors="replace") if isinstance(o, bytes) else o or ""
                  for o in (hung.stdout, hung.stderr)]
        raise AssertionError("the scheduler did not finish:\n" + "\n".join(output)) from None


def test_tasks_run_and_a_failing_one_is_retried_then_given_up(
    cluster: Cluster, tmp_path: Path,
) -> None:
    cluster.start_agent()
    state_file = tmp_path / "guide.json"
    result = run_guide(cluster, state_file, "--task", "echo hello", "--task", "exit 3",
                       "--max_attempts", "2", "--show_output")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "\nhello\n" in result.stdout  # the finished task's stdout, read from its sandbox
    assert "task-0-1: TASK_FINISHED" in output
    assert "task-1-1: TASK_FAILED" in output and "task-1-2: TASK_FAILED" in output
    assert "DRIVER_STOPPED: 1 finished, 1 not finished" in output
    saved = json.loads(state_file.read_text())
    assert {name: (r["attempt"], r["state"]) for name, r in saved["tasks"].items()} == {
        "task-0": (1, "TASK_FINISHED"), "task-1": (2, "TASK_FAILED")}


def test_a_new_process_takes_over_the_framework_and_reconciles_its_task(
    cluster: Cluster, tmp_path: Path,
) -> None:
    cluster.start_agent()
    state_file = tmp_path / "guide.json"
    first = run_guide(cluster, state_file, "--task", "sleep 5", "--hand_over")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "handing over: stopping with failover" in first.stdout
    framework_id = json.loads(state_file.read_text())["framework_id"]

    second = run_guide(cluster, state_file)
    output = second.stdout + second.stderr
    assert second.returncode == 0, output
    assert f"registered as {framework_id}" in output  # the same framework, not a new one
    assert "task-0-1: TASK_RUNNING (reconciliation)" in output
    assert "task-0-1: TASK_FINISHED" in output
    assert "launching" not in output  # the running task was kept, not launched again


def test_tasks_run_on_the_custom_executor(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start_agent()
    result = run_guide(cluster, tmp_path / "guide.json", "--executor",
                       "--task", "one", "--task", "two")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "DRIVER_STOPPED: 2 finished, 0 not finished" in result.stdout


def _normalised(code: str) -> str:
    return "\n".join(line.rstrip() for line in textwrap.dedent(code).strip().splitlines())


def test_every_python_snippet_of_the_guide_is_code_of_the_example() -> None:
    snippets = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.DOTALL)
    assert len(snippets) >= 8
    example = EXAMPLE.read_text()
    example_lines = [line.rstrip() for line in example.splitlines()]
    for snippet in snippets:
        wanted = _normalised(snippet).splitlines()
        assert _contains_dedented(example_lines, wanted), f"not in {EXAMPLE.name}:\n{snippet}"


def _contains_dedented(lines: list[str], wanted: list[str]) -> bool:
    """Whether `wanted` occurs as consecutive lines of `lines` at one common indentation."""
    for start in range(len(lines) - len(wanted) + 1):
        first = lines[start]
        indent = first[: len(first) - len(first.lstrip())]
        block = lines[start:start + len(wanted)]
        if all(line.removeprefix(indent) == want if want else not line.strip()
               for line, want in zip(block, wanted, strict=True)):
            return True
    return False
