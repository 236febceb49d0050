"""The opt-in memory report: its tables, and the SIGUSR2 hook the environment turns on."""

from __future__ import annotations

import inspect
import os
import signal
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesos_runtime.memory_report import (
    ENVIRONMENT_VARIABLE,
    TRACE_VARIABLE,
    allocation_table,
    install_memory_report,
    object_table,
)


class Held:
    pass


@pytest.fixture
def restored_sigusr2() -> Iterator[None]:
    previous = signal.getsignal(signal.SIGUSR2)
    yield
    signal.signal(signal.SIGUSR2, previous)
    tracemalloc.stop()


def test_object_table_counts_types_most_numerous_first() -> None:
    table = object_table([Held(), Held(), Held(), "a", "b", 1], top=2)
    assert table == ["         3  Held", "         2  str"]


def test_allocation_table_names_the_line_holding_the_most() -> None:
    tracemalloc.start(1)
    try:
        line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
        held = [bytearray(1000) for _ in range(2000)]  # about 2 MB from one line
        stats = tracemalloc.take_snapshot().statistics("lineno")
    finally:
        tracemalloc.stop()
    table = allocation_table(stats, top=1)
    assert table[0].startswith("python allocations held: ")
    assert table[1].endswith(f"{__file__}:{line}")
    assert len(held) == 2000


def test_nothing_is_installed_without_the_environment_variable() -> None:
    assert install_memory_report({}) is None
    assert not tracemalloc.is_tracing()


def test_sigusr2_writes_the_report_where_the_environment_says(
    tmp_path: Path, restored_sigusr2: None
) -> None:
    target = tmp_path / "report.txt"
    assert install_memory_report({ENVIRONMENT_VARIABLE: str(target)}) == target
    assert not tracemalloc.is_tracing()
    os.kill(os.getpid(), signal.SIGUSR2)  # the handler runs before the next bytecode
    report = target.read_text()
    assert report.startswith("malloc: ")
    assert "pymalloc bytes in allocated blocks" in report
    assert "python allocations held" not in report
    assert "live objects tracked by the garbage collector, by type:" in report


def test_tracing_adds_the_allocations_held(tmp_path: Path, restored_sigusr2: None) -> None:
    target = tmp_path / "report.txt"
    install_memory_report({ENVIRONMENT_VARIABLE: str(target), TRACE_VARIABLE: "1"})
    assert tracemalloc.is_tracing()
    os.kill(os.getpid(), signal.SIGUSR2)
    assert "python allocations held: " in target.read_text()
