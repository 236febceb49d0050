"""Deployment planning, deployment locks and the rolling-replace decision.

Flow::

    original root, target root --plan_deployment--> DeploymentPlan
        steps: [ResolveArtifacts] -> Stop (dependents first) -> Start (0 instances)
               -> Scale / Restart per dependency level (dependencies first)
    DeploymentPlan x running plans --conflicting_deployments--> 409 AppLockedError unless force
    DeploymentPlan.to_json(current_step, readiness) --> GET /v2/deployments entry

    RestartApplication, on every instance change:
        target count, upgradeStrategy, old/new instances --replace_step--> ReplaceDecision
            (how many new to start, which old to kill, whether the restart is done)
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from marathon.app_definition import AppDefinition
from marathon.app_parts import UpgradeStrategy
from marathon.groups import (
    Group,
    dependency_levels,
    put_app,
    put_group,
    remove_app,
    remove_group,
    same_config,
)
from marathon.paths import PathId

__all__ = [
    "ActionType",
    "AppLockedError",
    "DeploymentAction",
    "DeploymentPlan",
    "DeploymentStep",
    "ReadinessCheckResult",
    "ReplaceDecision",
    "ReplaceInstance",
    "capacity_bounds",
    "conflicting_deployments",
    "plan_deployment",
    "replace_step",
    "revert_target",
]


class ActionType(enum.StrEnum):
    """The action names of Marathon's deployment steps."""

    START = "StartApplication"
    STOP = "StopApplication"
    SCALE = "ScaleApplication"
    RESTART = "RestartApplication"
    RESOLVE_ARTIFACTS = "ResolveArtifacts"


@dataclass(frozen=True)
class DeploymentAction:
    """One action on one app; `app` is the target definition (the original one for Stop)."""

    action: ActionType
    app: AppDefinition
    scale_to: int | None = None
    kill: tuple[str, ...] = ()
    """Instance ids a ScaleApplication must kill (DELETE /v2/apps/{id}/tasks?scale=true)."""

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action.value, "app": str(self.app.id)}


@dataclass(frozen=True)
class DeploymentStep:
    """Actions that run in parallel; the next step starts when all of them are done."""

    actions: tuple[DeploymentAction, ...]

    def to_json(self) -> dict[str, Any]:
        return {"actions": [a.to_json() for a in self.actions]}


@dataclass(frozen=True)
class ReadinessCheckResult:
    """The latest result of one readiness check of one task, as deployments show it."""

    name: str
    task_id: str
    ready: bool
    last_response_status: int | None = None
    last_response_content_type: str | None = None
    last_response_body: str | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"name": self.name, "taskId": self.task_id, "ready": self.ready}
        if self.last_response_status is not None:
            body["lastResponse"] = {"status": self.last_response_status,
                                    "contentType": self.last_response_content_type or "",
                                    "body": self.last_response_body or ""}
        return body


@dataclass(frozen=True)
class DeploymentPlan:
    """The ordered steps that turn the `original` root group into the `target` one."""

    id: str
    original: Group
    target: Group
    steps: tuple[DeploymentStep, ...]
    version: str

    @property
    def affected_apps(self) -> tuple[PathId, ...]:
        """Every app some action touches, sorted: the apps this deployment locks."""
        return tuple(sorted({a.app.id for step in self.steps for a in step.actions}))

    @property
    def is_empty(self) -> bool:
        """True when nothing needs doing."""
        return not self.steps

    def event_json(self) -> dict[str, Any]:
        """The plan as deployment events carry it (Marathon's `DeploymentPlan` type)."""
        return {"id": self.id, "steps": [s.to_json() for s in self.steps],
                "version": self.version}

    def to_json(self, current_step: int = 0,
                readiness: Mapping[PathId, Sequence[ReadinessCheckResult]] | None = None,
                ) -> dict[str, Any]:
        """The GET /v2/deployments entry; `current_step` counts from 1 (0: not started)."""
        if not 0 <= current_step <= len(self.steps):
            raise ValueError(f"step {current_step} is outside 0..{len(self.steps)}")
        results = readiness or {}
        current = self.steps[current_step - 1].actions if current_step else ()
        return {
            "id": self.id,
            "version": self.version,
            "affectedApps": [str(a) for a in self.affected_apps],
            "affectedPods": [],
            "steps": [s.to_json() for s in self.steps],
            "currentActions": [
                {**a.to_json(), "readinessCheckResults": [
                    r.to_json() for r in results.get(a.app.id, ())]}
                for a in current],
            "currentStep": current_step,
            "totalSteps": len(self.steps),
        }


def _needs_restart(before: AppDefinition, after: AppDefinition) -> bool:
    return not same_config(before, after)


def plan_deployment(original: Group, target: Group, version: str, *,
                    plan_id: str | None = None,
                    id_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
                    to_kill: Mapping[PathId, Sequence[str]] | None = None,
                    ) -> DeploymentPlan:
    """Marathon's plan from `original` to `target` (both root groups).

    Steps, empty ones dropped: ResolveArtifacts for new or changed apps with `storeUrls`;
    StopApplication for removed apps (apps that depend on others stop first); StartApplication
    (at 0 instances) for new apps; then one step per dependency level, dependencies first, with
    ScaleApplication for new and rescaled apps and RestartApplication for changed ones.
    `to_kill` names instances a scale-down must kill. Raises ValueError on cyclic dependencies.
    """
    kills = to_kill or {}
    before = {a.id: a for a in original.transitive_apps()}
    after = {a.id: a for a in target.transitive_apps()}
    steps: list[tuple[DeploymentAction, ...]] = []
    steps.append(tuple(
        DeploymentAction(ActionType.RESOLVE_ARTIFACTS, app) for app in after.values()
        if app.store_urls and (app.id not in before or _needs_restart(before[app.id], app))))
    removed = set(before) - set(after)
    for level in reversed(dependency_levels(original)):
        steps.append(tuple(DeploymentAction(ActionType.STOP, app) for app in level
                           if app.id in removed))
    steps.append(tuple(DeploymentAction(ActionType.START, app, scale_to=0)
                       for app in after.values() if app.id not in before))
    for level in dependency_levels(target):
        actions: list[DeploymentAction] = []
        for app in level:
            old = before.get(app.id)
            if old is None:
                actions.append(DeploymentAction(ActionType.SCALE, app, scale_to=app.instances))
            elif _needs_restart(old, app):
                actions.append(DeploymentAction(ActionType.RESTART, app, scale_to=app.instances))
            elif old.instances != app.instances or kills.get(app.id):
                actions.append(DeploymentAction(ActionType.SCALE, app, scale_to=app.instances,
                                                kill=tuple(kills.get(app.id, ()))))
        steps.append(tuple(actions))
    return DeploymentPlan(plan_id if plan_id is not None else id_factory(), original, target,
                          tuple(DeploymentStep(s) for s in steps if s), version)


class AppLockedError(Exception):
    """A change touches apps that running deployments hold (HTTP 409 unless `force=true`)."""

    status_code = 409

    def __init__(self, deployment_ids: Iterable[str]) -> None:
        self.deployment_ids = tuple(deployment_ids)
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return ("App is locked by one or more deployments. Override with the option "
                "'?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.")

    def to_json(self) -> dict[str, Any]:
        """Marathon's 409 body."""
        return {"message": self.message,
                "deployments": [{"id": d} for d in self.deployment_ids]}


def conflicting_deployments(plan: DeploymentPlan,
                            running: Iterable[DeploymentPlan]) -> list[DeploymentPlan]:
    """The running deployments that lock an app `plan` would touch.

    The caller answers 409 (`AppLockedError`) when this is non-empty, or with `force=true`
    cancels them and starts `plan`.
    """
    mine = set(plan.affected_apps)
    return [other for other in running
            if other.id != plan.id and mine.intersection(other.affected_apps)]


def revert_target(plan: DeploymentPlan, current: Group) -> Group:
    """The root group that undoes `plan` on `current` (DELETE /v2/deployments/{id}).

    Apps the plan changed get their original definition back, apps it created are removed and
    apps it removed come back; groups it created are removed when left empty, group
    dependencies it changed are restored.
    """
    result = current
    changed = set(plan.affected_apps) | (
        {a.id for a in plan.original.transitive_apps()}
        ^ {a.id for a in plan.target.transitive_apps()})
    for app_id in sorted(changed):
        original_app = plan.original.app(app_id)
        result = (remove_app(result, app_id) if original_app is None
                  else put_app(result, original_app))
    originals = {g.id: g for g in plan.original.transitive_groups()}
    for group in sorted(plan.target.transitive_groups(), key=lambda g: -len(g.id.segments)):
        now = result.group(group.id)
        if now is None:
            continue
        if group.id not in originals:
            if not now.apps and not now.groups:
                result = remove_group(result, group.id)
        elif now.dependencies != originals[group.id].dependencies:
            result = put_group(result, now.replace(
                dependencies=originals[group.id].dependencies))
    return result


@dataclass(frozen=True)
class ReplaceInstance:
    """An instance as the rolling replace sees it.

    `healthy` means running and passing its health checks (running, when it has none);
    `ready` means its readiness checks passed (True when it has none); `killing` marks an
    instance already asked to stop that has not terminated yet.
    """

    instance_id: str
    healthy: bool = False
    ready: bool = True
    killing: bool = False


@dataclass(frozen=True)
class ReplaceDecision:
    """What a rolling replace does now: start `start` new instances, kill `kill`."""

    start: int
    kill: tuple[str, ...]
    done: bool


def capacity_bounds(instances: int, strategy: UpgradeStrategy) -> tuple[int, int]:
    """`(minimum healthy, maximum alive)` while restarting an app with `instances` instances.

    Minimum healthy is `ceil(instances * minimumHealthCapacity)`, maximum alive is
    `floor(instances * (1 + maximumOverCapacity))`. When the two are equal no old instance
    could ever be replaced, so, as Marathon does, one extra instance is allowed (Marathon
    allows it only when the old instances already fill the capacity; allowing it always
    also unblocks restarts that scale up at the same time).
    """
    minimum = math.ceil(round(instances * strategy.minimum_health_capacity, 9))
    maximum = math.floor(round(instances * (1 + strategy.maximum_over_capacity), 9))
    if minimum == maximum and instances > 0:
        maximum += 1
    return minimum, maximum


def replace_step(instances: int, strategy: UpgradeStrategy,
                 old: Sequence[ReplaceInstance], new: Sequence[ReplaceInstance], *,
                 queued: int = 0) -> ReplaceDecision:
    """Marathon's rolling replace (TaskReplaceActor), as a decision on the current state.

    `old` are the live instances of previous versions, `new` the live ones of the target
    version and `queued` new instances asked for but not launched yet. Call again after every
    change. Guarantees, counting instances still being killed as alive:

    - healthy instances never drop below `min(minimum healthy, healthy before the decision)`:
      an old healthy instance is killed only while enough others (old or new healthy and
      ready) remain; old unhealthy ones go at once;
    - new instances are started only while live plus queued instances stay within the
      maximum of `capacity_bounds`.

    With every started instance eventually launched and healthy, and every killed one
    eventually gone, repeated calls reach `done` (old all gone, `instances` new healthy).
    """
    minimum, maximum = capacity_bounds(instances, strategy)
    candidates = [i for i in old if not i.killing]
    healthy_new = sum(1 for i in new if i.healthy and i.ready and not i.killing)
    healthy_old = [i for i in candidates if i.healthy]
    spare = max(0, healthy_new + len(healthy_old) - minimum)
    kill = [i.instance_id for i in candidates if not i.healthy]
    kill += [i.instance_id for i in healthy_old[:spare]]
    live_new = sum(1 for i in new if not i.killing)
    alive = len(old) + len(new) + queued
    start = max(0, min(instances - live_new - queued, maximum - alive))
    done = not old and queued == 0 and live_new == instances == healthy_new
    return ReplaceDecision(start, tuple(kill), done)

