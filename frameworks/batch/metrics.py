"""Metronome's `GET /v1/metrics`: the batch framework's figures in Dropwizard's JSON shape.

    {"version": "4.0.0", "start": ..., "end": ...,
     "gauges": {"metronome.jobs.active.gauge": {"value": 2}, ...},
     "counters": {"metronome.jobs.started.counter": {"count": 7}, ...},
     "histograms": {"metronome.jobs.run-duration.histogram.seconds": {"count": ..., "p50": ...}},
     "meters": {}, "timers": {}}

Names follow Metronome's: `metronome.` + the metric + its type (+ its unit). Metronome's own
`jobs.active` (active runs), `jobs.started` and `jobs.failed` (runs) keep their meaning. Counters
count since this instance became the leader; a standby has only `metronome.leader.gauge` (0).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from frameworks.batch.core import BatchCore
from mesos_values.timestamps import format_timestamp

__all__ = ["DROPWIZARD_VERSION", "dropwizard_metrics", "histogram"]

DROPWIZARD_VERSION = "4.0.0"
"""The `version` of Dropwizard's metrics JSON, as Metronome serves it."""

_COUNTER_NAMES = {
    "runs_started": "jobs.started",
    "runs_succeeded": "jobs.succeeded",
    "runs_failed": "jobs.failed",
    "offers_declined": "mesos.offers.declined",
    "schedule_missed": "schedules.missed",
    "schedule_skipped": "schedules.skipped",
}
"""`BatchCore.counters` keys whose Metronome name is not the key with dots for underscores."""

_QUANTILES = {"p50": 0.5, "p75": 0.75, "p95": 0.95, "p98": 0.98, "p99": 0.99, "p999": 0.999}


def dropwizard_metrics(core: BatchCore | None, now: float) -> dict[str, Any]:
    """The metrics of this instance (`core` None: a standby) at `now` (epoch seconds)."""
    stamp = format_timestamp(now)
    gauges: dict[str, int] = {"leader": int(core is not None)}
    counters: dict[str, int] = {}
    histograms: dict[str, dict[str, float]] = {}
    if core is not None:
        gauges |= {
            "jobs.active": len(core.runs),
            "jobs.specs": len(core.jobs),
            "jobs.queued": sum(len(runs) for runs in core.queued_runs().values()),
            "schedules": sum(len(s) for s in core.schedules.values()),
            "mesos.offers.suppressed": int(core.suppressed),
            "records.set-aside": len(core.set_aside),
        }
        counters = {_COUNTER_NAMES.get(key, key.replace("_", ".")): value
                    for key, value in core.counters.items()}
        durations = [(run.finished_at - run.created_at).total_seconds()
                     for history in core.histories.values()
                     for run in (*history.successful_runs, *history.failed_runs)]
        histograms["jobs.run-duration.histogram.seconds"] = histogram(durations)
    return {
        "version": DROPWIZARD_VERSION, "start": stamp, "end": stamp,
        "gauges": {f"metronome.{name}.gauge": {"value": value}
                   for name, value in sorted(gauges.items())},
        "counters": {f"metronome.{name}.counter": {"count": value}
                     for name, value in sorted(counters.items())},
        "histograms": {f"metronome.{name}": value for name, value in histograms.items()},
        "meters": {},
        "timers": {},
    }


def histogram(values: Sequence[float]) -> dict[str, float]:
    """Dropwizard's histogram entry for a sample: count, min, max, mean, sample stddev and the
    quantiles p50..p999 (interpolated between the two nearest values); zeros when empty."""
    ordered = sorted(values)
    count = len(ordered)
    if count == 0:
        return {"count": 0, "min": 0, "max": 0, "mean": 0.0, "stddev": 0.0,
                **dict.fromkeys(_QUANTILES, 0.0)}
    mean = sum(ordered) / count
    variance = sum((v - mean) ** 2 for v in ordered) / (count - 1) if count > 1 else 0.0
    return {"count": count, "min": ordered[0], "max": ordered[-1], "mean": mean,
            "stddev": math.sqrt(variance),
            **{name: _quantile(ordered, q) for name, q in _QUANTILES.items()}}


def _quantile(ordered: Sequence[float], q: float) -> float:
    """The `q` quantile of a sorted, non-empty sample, as Dropwizard's snapshots compute it."""
    position = q * (len(ordered) + 1)
    if position < 1:
        return float(ordered[0])
    if position >= len(ordered):
        return float(ordered[-1])
    lower = ordered[int(position) - 1]
    upper = ordered[int(position)]
    return float(lower + (position - math.floor(position)) * (upper - lower))
