"""Plain-text rendering for terminals: aligned tables and human-friendly numbers."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

__all__ = ["Cell", "format_cell", "format_mem", "format_number", "format_used", "render_table"]

Cell = str | int | float | bool | None

_GAP = "  "


def format_number(value: float) -> str:
    """`4.0` -> `4`, `0.1` -> `0.1`, `0.123456` -> `0.12` (at most two decimals)."""
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def format_mem(megabytes: float) -> str:
    """Megabytes as Mesos shows memory and disk: `32 MB`, `4 GB`, `1.5 TB`."""
    for unit, size in (("TB", 1024.0 * 1024.0), ("GB", 1024.0)):
        if abs(megabytes) >= size:
            return f"{format_number(megabytes / size)} {unit}"
    return f"{format_number(megabytes)} MB"


def format_used(used: float, total: float, *, memory: bool = False) -> str:
    """`used/total`, e.g. `0.5/4` cpus or `32 MB/4 GB` of memory."""
    show = format_mem if memory else format_number
    return f"{show(used)}/{show(total)}"


def format_cell(value: Cell) -> str:
    """A table cell: `-` for nothing, yes/no for booleans, numbers without noise."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def render_table(headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """Columns padded to their widest cell, two spaces apart; numeric columns right-aligned.

    Returns the lines joined by newlines, without a trailing newline; only the header line
    when there are no rows. Every row must have as many cells as there are headers.
    """
    raw_rows = [list(row) for row in rows]
    for row in raw_rows:
        if len(row) != len(headers):
            raise ValueError(f"a row has {len(row)} cells for {len(headers)} columns")
    numeric = [
        bool(raw_rows) and all(_is_number(row[column]) for row in raw_rows)
        for column in range(len(headers))
    ]
    text_rows = [[format_cell(cell) for cell in row] for row in raw_rows]
    widths = [
        max([len(header)] + [len(row[column]) for row in text_rows])
        for column, header in enumerate(headers)
    ]
    lines = [_line(list(headers), widths, numeric)]
    lines += [_line(row, widths, numeric) for row in text_rows]
    return "\n".join(lines)


def _is_number(cell: Cell) -> bool:
    return isinstance(cell, int | float) and not isinstance(cell, bool)


def _line(cells: list[str], widths: list[int], right: list[bool]) -> str:
    padded = [
        cell.rjust(width) if align_right else cell.ljust(width)
        for cell, width, align_right in zip(cells, widths, right, strict=True)
    ]
    return _GAP.join(padded).rstrip()
