"""Following deployments: progress, the bar, verdicts, and the event-stream decoder."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from mesos_cli.app_commands import deployment_id_of
from mesos_cli.context import ProgressLine
from mesos_cli.progress import (
    DeploymentProgress,
    SseDecoder,
    app_at_target,
    blocking_reason,
    deployment_progress,
    find_deployment,
    render_bar,
    stall_reason,
)

MARATHON = Path(__file__).resolve().parents[1] / "fixtures" / "conformance" / "marathon"


def progress(target: int, running: int, healthy: int = 0,
             health_checked: bool = False) -> DeploymentProgress:
    return DeploymentProgress("/web", 1, 2, target, running, healthy, health_checked)


@pytest.mark.parametrize(
    ("fraction", "bar"),
    [(0.0, "[..........]"), (0.5, "[#####.....]"), (1.0, "[##########]"),
     (1.7, "[##########]"), (-1.0, "[..........]"), (0.04, "[..........]")],
)
def test_the_bar_fills_its_fraction_of_cells(fraction: float, bar: str) -> None:
    assert render_bar(fraction, width=10) == bar


def test_a_bar_needs_room() -> None:
    with pytest.raises(ValueError):
        render_bar(0.5, width=0)


@pytest.mark.parametrize(
    ("shown", "fraction"),
    [
        (progress(target=4, running=1), 0.25),                       # scaling up
        (progress(target=2, running=3), 2 / 3),                      # scaling down: 3 -> 2
        (progress(target=0, running=0), 1.0),                        # scaled to zero
        (progress(target=2, running=2, healthy=1, health_checked=True), 0.5),  # health counts
        (progress(target=2, running=2, healthy=0), 1.0),             # no checks: running counts
    ],
    ids=["up", "down", "zero", "health-checked", "unchecked"],
)
def test_progress_counts_ready_instances(shown: DeploymentProgress, fraction: float) -> None:
    assert shown.fraction == pytest.approx(fraction)


def test_the_progress_line_names_step_and_instances() -> None:
    line = progress(target=4, running=2, healthy=1, health_checked=True).render(width=8)
    assert line == "/web [##......]   25%  step 1/2  running 2/4  healthy 1/4"
    assert "healthy" not in progress(target=4, running=2).render()


def test_progress_comes_from_the_deployments_entry_then_from_the_app() -> None:
    [deployment] = json.loads((MARATHON / "deployments.json").read_text())
    app = {**json.loads((MARATHON / "app.json").read_text()), "tasksRunning": 1,
           "tasksHealthy": 1}
    assert find_deployment([deployment], deployment["id"]) == deployment
    assert find_deployment([deployment], "other") is None
    assert find_deployment({"message": "not a list"}, "x") is None
    during = deployment_progress(app, deployment)
    assert (during.current_step, during.total_steps) == (1, 1)
    assert (during.target, during.running, during.healthy) == (2, 1, 1)
    assert during.health_checked  # app.json has an HTTP health check
    after = deployment_progress(app, None, total_steps=3)
    assert (after.current_step, after.total_steps) == (3, 3)


@pytest.mark.parametrize(
    ("app", "at_target"),
    [
        ({"instances": 2, "tasksRunning": 2, "deployments": []}, True),
        ({"instances": 2, "tasksRunning": 1, "deployments": []}, False),
        ({"instances": 2, "tasksRunning": 2, "deployments": [{"id": "d"}]}, False),
        ({"instances": 1, "tasksRunning": 1, "tasksHealthy": 0, "deployments": [],
          "healthChecks": [{"protocol": "HTTP"}]}, False),
        ({"instances": 0, "tasksRunning": 0, "deployments": []}, True),
    ],
    ids=["done", "short", "deploying", "unhealthy", "zero"],
)
def test_an_app_is_at_target_when_settled(app: dict[str, Any], at_target: bool) -> None:
    assert app_at_target(app) is at_target


@pytest.mark.parametrize(
    ("answer", "deployment_id"),
    [
        ({"deploymentId": "d1", "version": "v"}, "d1"),              # PUT, PATCH, restart
        ({"id": "/web", "deployments": [{"id": "d2"}]}, "d2"),       # POST /v2/apps
        ({"id": "/web", "deployments": []}, None),
        (None, None),
    ],
)
def test_the_deployment_a_change_started(answer: Any, deployment_id: str | None) -> None:
    assert deployment_id_of(answer) == deployment_id


def test_marathons_event_stream_decodes_into_events() -> None:
    decoder = SseDecoder()
    lines = (MARATHON / "events.txt").read_text().splitlines()
    events = [event for line in lines if (event := decoder.feed(line)) is not None]
    assert [event.event for event in events] == [
        "event_stream_attached", "status_update_event", "status_update_event"]
    assert [event.json()["eventType"] for event in events] == [e.event for e in events]
    assert events[1].json()["taskStatus"] == "TASK_FAILED"


def test_comments_multi_line_data_and_unnamed_events() -> None:
    decoder = SseDecoder()
    fed = [decoder.feed(line) for line in (": keep-alive", "data: a", "data:b", "")]
    assert fed[:3] == [None, None, None]
    assert fed[3] is not None and (fed[3].event, fed[3].data) == ("message", "a\nb")
    assert decoder.feed("") is None  # a blank line alone completes nothing


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_redraws_one_line_on_a_terminal() -> None:
    stream = Terminal()
    line = ProgressLine(stream)
    for text in ("a", "a", "b"):
        line.show(text)
    line.close()
    assert stream.getvalue() == "\ra\x1b[K\rb\x1b[K\n"


def test_progress_prints_each_change_once_elsewhere() -> None:
    stream = io.StringIO()
    line = ProgressLine(stream)
    for text in ("a", "a", "b"):
        line.show(text)
    line.close()
    assert stream.getvalue() == "a\nb\n"


def test_stall_reason_names_the_queue_reasons_and_the_last_failure() -> None:
    app = {"id": "/web", "version": "v2"}
    queue = {"queue": [
        {"app": {"id": "/other"}, "processedOffersSummary": {"rejectSummaryLastOffers": [
            {"reason": "InsufficientCpus", "declined": 3, "processed": 3}]}},
        {"app": {"id": "/web"}, "processedOffersSummary": {"rejectSummaryLastOffers": [
            {"reason": "UnfulfilledRole", "declined": 0, "processed": 2},
            {"reason": "NoImageProvider", "declined": 2, "processed": 2}]}}]}
    assert stall_reason(app, queue) == "offers declined: NoImageProvider (2 of 2)"
    failed = {**app, "lastTaskFailure": {"message": "failed to pull image 'x'", "version": "v2"}}
    assert stall_reason(failed, {"queue": []}) == "last task failed: failed to pull image 'x'"
    assert stall_reason(failed, queue) == (
        "offers declined: NoImageProvider (2 of 2); last task failed: failed to pull image 'x'")
    older = {**app, "lastTaskFailure": {"message": "old news", "version": "v1"}}
    assert stall_reason(older, {"queue": []}) is None
    assert stall_reason(app, None) is None


def test_blocking_reason_only_for_what_waiting_cannot_clear() -> None:
    app = {"id": "/web", "version": "v2"}

    def queue(*entries: tuple[str, int, int]) -> dict[str, Any]:
        return {"queue": [{"app": {"id": "/web"}, "processedOffersSummary": {
            "rejectSummaryLastOffers": [{"reason": r, "processed": p, "declined": d}
                                        for r, p, d in entries]}}]}

    assert blocking_reason(app, queue(("UnfulfilledRole", 2, 0),
                                      ("NoImageProvider", 2, 2))) == (
        "every agent's offer was declined: NoImageProvider")
    # One agent could still take it, or the reason clears as the deployment goes on.
    assert blocking_reason(app, queue(("NoImageProvider", 2, 1),
                                      ("InsufficientCpus", 1, 1))) is None
    assert blocking_reason(app, queue(("InsufficientCpus", 2, 2))) is None
    failed = {**app, "lastTaskFailure": {"message": "failed to pull image 'x'", "version": "v2"}}
    assert blocking_reason(failed, None) == "last task failed: failed to pull image 'x'"
    older = {**app, "lastTaskFailure": {"message": "old", "version": "v1"}}
    assert blocking_reason(older, queue()) is None
