"""Following a Marathon deployment or a batch run (pure: state in, text and verdicts out).

    deploy --wait:  /v2/events (deployment_success|failed) ─┐
                    /v2/deployments + /v2/apps/{id} polls ──┴─> DeploymentProgress -> bar
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mesos_cli.tables import format_number

__all__ = [
    "RUN_FINISHED_STATES",
    "DeploymentProgress",
    "ServerSentEvent",
    "SseDecoder",
    "app_at_target",
    "deployment_progress",
    "find_deployment",
    "render_bar",
]

RUN_FINISHED_STATES = frozenset({"SUCCESS", "FAILED"})
"""Metronome run statuses after which a run does not change."""


def render_bar(fraction: float, width: int = 24) -> str:
    """`[#########...............]`: `fraction` (clamped to 0..1) of `width` cells filled."""
    if width < 1:
        raise ValueError("width must be positive")
    filled = round(max(0.0, min(1.0, fraction)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


@dataclass(frozen=True)
class DeploymentProgress:
    """How far one app's deployment got: its plan's step and its instances."""

    app_id: str
    current_step: int
    total_steps: int
    target: int
    running: int
    healthy: int
    health_checked: bool

    @property
    def ready(self) -> int:
        """Instances that count towards the target: healthy ones when health-checked."""
        return self.healthy if self.health_checked else self.running

    @property
    def fraction(self) -> float:
        """0..1: ready instances of the target; when scaling down, target of those running."""
        if self.running > self.target:
            return self.target / self.running
        if self.target == 0:
            return 1.0
        return min(self.ready, self.target) / self.target

    def render(self, width: int = 24) -> str:
        """`/web [######......]  50%  step 1/1  running 1/2  healthy 0/2`."""
        parts = [
            f"{self.app_id} {render_bar(self.fraction, width)}",
            f"{format_number(100.0 * self.fraction).rjust(3)}%",
            f"step {self.current_step}/{self.total_steps}",
            f"running {self.running}/{self.target}",
        ]
        if self.health_checked:
            parts.append(f"healthy {self.healthy}/{self.target}")
        return "  ".join(parts)


def find_deployment(deployments: Any, deployment_id: str) -> Mapping[str, Any] | None:
    """Our entry in `GET /v2/deployments`, None once it is gone."""
    if not isinstance(deployments, list):
        return None
    for deployment in deployments:
        if isinstance(deployment, Mapping) and deployment.get("id") == deployment_id:
            return deployment
    return None


def deployment_progress(
    app: Mapping[str, Any], deployment: Mapping[str, Any] | None, *, total_steps: int = 0
) -> DeploymentProgress:
    """The progress shown for `app` (a `/v2/apps/{id}` `app`): from its deployment's entry,
    or all `total_steps` done once the deployment is gone."""
    if deployment is not None:
        total = int(deployment.get("totalSteps", 0))
        step = int(deployment.get("currentStep", 0))
    else:
        total = step = total_steps
    return DeploymentProgress(
        app_id=str(app.get("id", "")),
        current_step=step,
        total_steps=total,
        target=int(app.get("instances", 0)),
        running=int(app.get("tasksRunning", 0)),
        healthy=int(app.get("tasksHealthy", 0)),
        health_checked=bool(app.get("healthChecks")),
    )


def app_at_target(app: Mapping[str, Any]) -> bool:
    """No deployment holds the app and its instances are what it asks for (healthy ones when
    health-checked): how a deployment whose end event was missed is judged."""
    progress = deployment_progress(app, None)
    return not app.get("deployments") and progress.running == progress.target \
        and progress.ready == progress.target


def stall_reason(app: Mapping[str, Any], queue: Any) -> str | None:
    """Why instances of `app` (a `/v2/apps/{id}` `app` with `lastTaskFailure` embedded) are
    not launching, from Marathon's own words: the reasons its queue gives for the offers it
    could not use (`/v2/queue`), and the last failure of a task of the app's current
    version. None when neither says anything."""
    reasons: list[str] = []
    items = queue.get("queue") if isinstance(queue, Mapping) else None
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or (item.get("app") or {}).get("id") != app.get("id"):
            continue
        summary = (item.get("processedOffersSummary") or {}).get("rejectSummaryLastOffers")
        declined = [(str(entry.get("reason")), int(entry.get("declined", 0)),
                     int(entry.get("processed", 0)))
                    for entry in summary or () if isinstance(entry, Mapping)
                    and entry.get("declined")]
        if declined:
            reasons.append("offers declined: " + ", ".join(
                f"{reason} ({count} of {processed})" for reason, count, processed in declined))
    failure = app.get("lastTaskFailure")
    if isinstance(failure, Mapping) and failure.get("message") and (
            not app.get("version") or failure.get("version") == app.get("version")):
        reasons.append(f"last task failed: {failure['message']}")
    return "; ".join(reasons) or None


STRUCTURAL_REASONS = frozenset({"NoImageProvider"})
"""Queue reasons that no launch or kill of the deployment itself can clear."""


def blocking_reason(app: Mapping[str, Any], queue: Any) -> str | None:
    """Why waiting longer would not help, if Marathon says so: a task of the app's current
    version failed to launch (Marathon retries after its backoff, but the cause is known), or
    every agent's last offer was declined for a reason the deployment cannot clear
    (`STRUCTURAL_REASONS`). None otherwise."""
    failure = app.get("lastTaskFailure")
    if isinstance(failure, Mapping) and failure.get("message") and app.get("version") and (
            failure.get("version") == app.get("version")):
        return f"last task failed: {failure['message']}"
    items = queue.get("queue") if isinstance(queue, Mapping) else None
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, Mapping) or (item.get("app") or {}).get("id") != app.get("id"):
            continue
        summary = (item.get("processedOffersSummary") or {}).get("rejectSummaryLastOffers")
        entries = [e for e in summary or () if isinstance(e, Mapping)]
        declined = {str(e.get("reason")): int(e.get("declined", 0)) for e in entries}
        offers = max((int(e.get("processed", 0)) for e in entries), default=0)
        for reason in STRUCTURAL_REASONS:
            if offers and declined.get(reason) == offers:
                return f"every agent's offer was declined: {reason}"
    return None


@dataclass(frozen=True)
class ServerSentEvent:
    """One event of a `text/event-stream`."""

    event: str
    data: str

    def json(self) -> Any:
        """`data` parsed as JSON (Marathon's events are JSON objects)."""
        return json.loads(self.data)


@dataclass
class SseDecoder:
    """Turns the lines of an event stream into events (`event:`, `data:`, blank line ends)."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> ServerSentEvent | None:
        """One line without its newline; returns the event a blank line completes."""
        if not line:
            if not self._data:
                self._event = ""
                return None
            completed = ServerSentEvent(self._event or "message", "\n".join(self._data))
            self._event, self._data = "", []
            return completed
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None
