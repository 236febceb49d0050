"""Metronome's Dropwizard-shaped metrics from a BatchCore's figures."""

from __future__ import annotations

import pytest

from frameworks.batch.metrics import DROPWIZARD_VERSION, dropwizard_metrics, histogram
from tests.unit.batch.test_core import START, Harness, job


def test_a_standby_has_the_shape_and_only_the_leader_gauge() -> None:
    metrics = dropwizard_metrics(None, START.timestamp())
    assert metrics == {
        "version": DROPWIZARD_VERSION, "start": "2024-05-01T12:00:30.000Z",
        "end": "2024-05-01T12:00:30.000Z", "gauges": {"metronome.leader.gauge": {"value": 0}},
        "counters": {}, "histograms": {}, "meters": {}, "timers": {},
    }


def test_the_leader_reports_its_jobs_runs_and_run_durations() -> None:
    h = Harness()
    h.core.put_job(job("quick"), create=True)
    h.core.put_job(job("huge", cpus=64), create=True)
    h.core.start_run("quick")
    [task] = h.offer()
    h.advance(4)
    h.update(task, "TASK_FINISHED")
    h.core.start_run("huge")
    metrics = dropwizard_metrics(h.core, h.clock.now())
    gauges = {name: entry["value"] for name, entry in metrics["gauges"].items()}
    assert gauges == {
        "metronome.leader.gauge": 1, "metronome.jobs.active.gauge": 1,
        "metronome.jobs.specs.gauge": 2, "metronome.jobs.queued.gauge": 1,
        "metronome.schedules.gauge": 0, "metronome.mesos.offers.suppressed.gauge": 0,
        "metronome.records.set-aside.gauge": 0,
    }
    counters = {name: entry["count"] for name, entry in metrics["counters"].items()}
    assert counters["metronome.jobs.started.counter"] == 2
    assert counters["metronome.jobs.succeeded.counter"] == 1
    assert counters["metronome.jobs.failed.counter"] == 0
    assert counters["metronome.tasks.launched.counter"] == 1
    assert counters["metronome.tasks.finished.counter"] == 1
    assert "metronome.mesos.offers.declined.counter" in counters
    durations = metrics["histograms"]["metronome.jobs.run-duration.histogram.seconds"]
    assert durations["count"] == 1 and durations["max"] == pytest.approx(4)


def test_histogram_quantiles_interpolate_as_dropwizard_does() -> None:
    empty = histogram([])
    assert empty["count"] == 0 and empty["p99"] == 0.0
    entry = histogram([4.0, 1.0, 3.0, 2.0])
    assert (entry["count"], entry["min"], entry["max"], entry["mean"]) == (4, 1.0, 4.0, 2.5)
    assert entry["p50"] == 2.5 and entry["p75"] == 3.75 and entry["p999"] == 4.0
    assert entry["stddev"] == pytest.approx(1.2909944)
    assert histogram([7.0])["p50"] == 7.0 and histogram([7.0])["stddev"] == 0.0
