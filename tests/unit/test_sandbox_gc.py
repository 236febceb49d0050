"""Sandbox GC's core: which finished sandboxes are due, as `--gc_delay` and
`--gc_disk_headroom` say."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesos_agent.sandbox_gc import RunDirectory, allowed_age, due_for_deletion

DAY = 86400.0


def run(name: str, modified: float) -> RunDirectory:
    return RunDirectory(Path("/work/slaves/a/frameworks/f/executors/e/runs") / name, name,
                        modified)


@pytest.mark.parametrize(
    ("usage", "expected"),
    [(0.0, 0.9 * 7 * DAY), (0.5, 0.4 * 7 * DAY), (0.9, 0.0), (0.95, 0.0), (1.0, 0.0)],
)
def test_the_allowed_age_shrinks_as_the_disk_fills(usage: float, expected: float) -> None:
    assert allowed_age(7 * DAY, 0.1, usage) == pytest.approx(expected)


def test_only_sandboxes_older_than_the_allowed_age_are_due_oldest_first() -> None:
    now = 100 * DAY
    runs = [run("young", now - 1 * DAY), run("old", now - 8 * DAY),
            run("older", now - 9 * DAY), run("edge", now - 0.9 * 7 * DAY)]
    due = due_for_deletion(runs, live=(), now=now, gc_delay=7 * DAY, headroom=0.1, usage=0.0)
    assert [r.container_id for r in due] == ["older", "old", "edge"]


def test_a_full_disk_makes_every_finished_sandbox_due_at_once() -> None:
    now = 100.0
    runs = [run("just-finished", now), run("earlier", now - 5)]
    due = due_for_deletion(runs, live=(), now=now, gc_delay=7 * DAY, headroom=0.1, usage=0.92)
    assert [r.container_id for r in due] == ["earlier", "just-finished"]


def test_a_live_container_keeps_its_sandbox_however_old_and_full() -> None:
    now = 100 * DAY
    runs = [run("live", 0.0), run("dead", 0.0)]
    due = due_for_deletion(runs, live={"live"}, now=now, gc_delay=1.0, headroom=0.1, usage=1.0)
    assert [r.container_id for r in due] == ["dead"]


def test_a_sandbox_touched_in_the_future_is_not_due_before_its_time() -> None:
    runs = [run("skewed", 200.0)]
    assert due_for_deletion(runs, live=(), now=100.0, gc_delay=10.0, headroom=0.1,
                            usage=1.0) == []
