"""Exponential backoff with jitter (mesos_runtime.backoff)."""

from __future__ import annotations

import pytest

from mesos_runtime.backoff import Backoff


def test_delays_double_up_to_the_cap_within_the_jitter_band() -> None:
    low = Backoff(0.1, 1.0, jitter=0.5, uniform=lambda: 0.0)
    assert [round(low.next_delay(), 3) for _ in range(6)] == [0.05, 0.1, 0.2, 0.4, 0.5, 0.5]
    high = Backoff(0.1, 1.0, jitter=0.5, uniform=lambda: 1.0)
    assert [round(high.next_delay(), 3) for _ in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.0]
    narrow = Backoff(0.1, 2.0, jitter=0.2, uniform=lambda: 0.0)
    assert [round(narrow.next_delay(), 3) for _ in range(3)] == [0.08, 0.16, 0.32]


def test_reset_starts_again_from_the_initial_delay() -> None:
    backoff = Backoff(0.1, 1.0, jitter=0.0)
    for _ in range(4):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == pytest.approx(0.1)


@pytest.mark.parametrize(("initial", "cap", "jitter"), [(2, 1, 0.5), (0, 1, 0.5), (0.1, 1, 1.5)])
def test_bad_settings_are_refused(initial: float, cap: float, jitter: float) -> None:
    with pytest.raises(ValueError):
        Backoff(initial, cap, jitter=jitter)
