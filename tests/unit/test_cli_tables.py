"""The CLI's table rendering and number formatting."""

from __future__ import annotations

import pytest

from mesos_cli.tables import format_cell, format_mem, format_number, format_used, render_table


@pytest.mark.parametrize(
    ("value", "text"),
    [(4.0, "4"), (0.1, "0.1"), (0.125, "0.12"), (2.5, "2.5"), (0.0, "0"), (-0.001, "0"),
     (1024, "1024")],
)
def test_numbers_lose_their_noise(value: float, text: str) -> None:
    assert format_number(value) == text


@pytest.mark.parametrize(
    ("megabytes", "text"),
    [(32, "32 MB"), (1023.5, "1023.5 MB"), (1024, "1 GB"), (4096, "4 GB"), (10000, "9.77 GB"),
     (1536 * 1024, "1.5 TB")],
)
def test_memory_is_shown_in_the_largest_whole_unit(megabytes: float, text: str) -> None:
    assert format_mem(megabytes) == text


def test_usage_is_used_over_total() -> None:
    assert format_used(0.5, 4) == "0.5/4"
    assert format_used(32, 4096, memory=True) == "32 MB/4 GB"


@pytest.mark.parametrize(
    ("cell", "text"),
    [(None, "-"), ("", "-"), (True, "yes"), (False, "no"), (3, "3"), (0.25, "0.25"),
     ("TASK_RUNNING", "TASK_RUNNING")],
)
def test_cells(cell: str | int | float | bool | None, text: str) -> None:
    assert format_cell(cell) == text


def test_columns_are_aligned_and_numbers_right_aligned() -> None:
    table = render_table(
        ("ID", "CPUS", "ACTIVE", "NOTE"),
        [["a", 0.5, True, None], ["long-id", 12.0, False, "x"]],
    )
    assert table.splitlines() == [
        "ID       CPUS  ACTIVE  NOTE",
        "a         0.5  yes     -",
        "long-id    12  no      x",
    ]


def test_a_table_without_rows_is_its_header() -> None:
    assert render_table(("ID", "NAME"), []) == "ID  NAME"


def test_a_row_of_the_wrong_width_is_refused() -> None:
    with pytest.raises(ValueError, match="2 cells for 3 columns"):
        render_table(("A", "B", "C"), [["x", "y"]])
