"""Inclusive integer ranges (ports and the like) and their arithmetic, and the bracket-aware
split that the resource and attribute text forms share."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = [
    "RANGE_ITEM", "Range", "intersect_ranges", "merge_ranges", "ranges_contain", "split_top_level",
    "subtract_ranges",
]

Range = tuple[int, int]
"""An inclusive range of non-negative integers, `(begin, end)` with `begin <= end`."""


RANGE_ITEM = re.compile(r"^([0-9]+)(?:\s*-\s*([0-9]+))?$")
"""One range item of the text form: `BEGIN-END` or a single `N`."""


def merge_ranges(ranges: Iterable[Range]) -> tuple[Range, ...]:
    """Sort `ranges` and merge overlapping and adjacent ones."""
    merged: list[Range] = []
    for begin, end in sorted(ranges):
        if merged and begin <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((begin, end))
    return tuple(merged)


def ranges_contain(outer: tuple[Range, ...], inner: tuple[Range, ...]) -> bool:
    """Whether every range of `inner` lies inside one range of `outer` (both normalised)."""
    i = 0
    for begin, end in inner:
        while i < len(outer) and outer[i][1] < begin:
            i += 1
        if i == len(outer) or outer[i][0] > begin or outer[i][1] < end:
            return False
    return True


def subtract_ranges(outer: tuple[Range, ...], inner: tuple[Range, ...]) -> tuple[Range, ...]:
    """`outer` minus `inner` (both normalised; `inner` is contained in `outer`)."""
    result: list[Range] = []
    holes = iter(inner)
    hole = next(holes, None)
    for begin, end in outer:
        cursor = begin
        while hole is not None and hole[0] <= end:
            if hole[0] > cursor:
                result.append((cursor, hole[0] - 1))
            cursor = max(cursor, hole[1] + 1)
            hole = next(holes, None)
        if cursor <= end:
            result.append((cursor, end))
    return tuple(result)


def intersect_ranges(a: tuple[Range, ...], b: tuple[Range, ...]) -> tuple[Range, ...]:
    """The ranges both `a` and `b` cover."""
    result: list[Range] = []
    for begin, end in a:
        for other_begin, other_end in b:
            low, high = max(begin, other_begin), min(end, other_end)
            if low <= high:
                result.append((low, high))
    return merge_ranges(result)


def split_top_level(text: str, separator: str) -> list[str]:
    """Split `text` on `separator` outside of [] and {} brackets; ValueError if unbalanced."""
    parts: list[str] = []
    depth = 0
    start = 0
    for index, char in enumerate(text):
        if char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced brackets in {text!r}")
        elif char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    if depth != 0:
        raise ValueError(f"unbalanced brackets in {text!r}")
    parts.append(text[start:])
    return parts
