"""One garbage-collector setting for the long-running services (master, agent, Marathon).

They hold many long-lived objects and make many short-lived ones per call or per task; with
Python's default (a young collection every 700 net allocations, the older generations after 10
and 100 of those) they spent much of their time collecting (docs/benchmarks.md, "Scale", and
"Issue 22, session 17: the agents' CPU per launch").
"""

from __future__ import annotations

import gc

GC_YOUNG_THRESHOLD = 10_000
"""Net allocations between young collections (Python's default: 700)."""


def collect_less_often() -> None:
    """Young collections every `GC_YOUNG_THRESHOLD` allocations; the older generations keep
    their default ratios."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def tune_gc() -> None:
    """`collect_less_often`, and never again walk what was allocated so far (`gc.freeze`): the
    modules, classes and functions imported before serving, which every full collection
    walked."""
    collect_less_often()
    gc.freeze()
