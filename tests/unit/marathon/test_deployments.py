"""Deployment plans, deployment locks and the rolling-replace decision (with random runs)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from marathon.app_definition import parse_app
from marathon.app_parts import UpgradeStrategy
from marathon.deployments import (
    ActionType,
    AppLockedError,
    DeploymentPlan,
    ReadinessCheckResult,
    ReplaceInstance,
    capacity_bounds,
    conflicting_deployments,
    plan_deployment,
    replace_step,
    revert_target,
)
from marathon.groups import Group, assign_versions, parse_group, put_app, remove_app
from marathon.paths import ROOT, PathId

CONFORMANCE = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "marathon"


def p(text: str) -> PathId:
    return PathId.parse(text)


def app(app_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 1000", **fields}


def root_of(*apps: dict[str, Any], version: str = "v1") -> Group:
    root = Group(ROOT)
    for body in apps:
        root = put_app(root, parse_app(body))
    return assign_versions(Group(ROOT), root, version)


def steps_of(plan: DeploymentPlan) -> list[list[tuple[str, str]]]:
    return [[(a.action.value, str(a.app.id)) for a in s.actions] for s in plan.steps]


def test_new_app_starts_at_zero_then_scales() -> None:
    target = root_of(app("/foo", instances=3))
    plan = plan_deployment(Group(ROOT), target, "2015-09-30T09:09:17.614Z", plan_id="d1")
    assert steps_of(plan) == [[("StartApplication", "/foo")], [("ScaleApplication", "/foo")]]
    assert plan.steps[1].actions[0].scale_to == 3
    assert plan.affected_apps == (p("/foo"),)


def test_plan_json_matches_marathons_shape() -> None:
    expected = json.loads((CONFORMANCE / "deployments.json").read_text())[0]
    original = root_of(app("/foo", instances=1))
    target = assign_versions(original, put_app(original, parse_app(app("/foo", instances=2))),
                             expected["version"])
    plan = plan_deployment(original, target, expected["version"], plan_id=expected["id"])
    readiness = ReadinessCheckResult("myReadyCheck", "foo.instance-c9de6033", False,
                                     500, "application/json", "{}")
    body = plan.to_json(current_step=1, readiness={p("/foo"): [readiness]})
    assert set(body) == set(expected)
    assert body["steps"] == expected["steps"][:1]
    assert body["currentActions"] == expected["currentActions"]
    assert (body["id"], body["version"], body["affectedApps"]) == (
        expected["id"], expected["version"], expected["affectedApps"])
    assert (body["currentStep"], body["totalSteps"]) == (1, 1)
    assert plan.to_json()["currentActions"] == [] and plan.to_json()["currentStep"] == 0
    with pytest.raises(ValueError):
        plan.to_json(current_step=2)


def test_plan_id_comes_from_the_injected_factory() -> None:
    plan = plan_deployment(Group(ROOT), root_of(app("/a")), "v", id_factory=lambda: "fixed")
    assert plan.id == "fixed"


def test_dependencies_start_first_and_stop_last() -> None:
    apps = (app("/db"), app("/api", dependencies=["/db"]), app("/web", dependencies=["/api"]))
    target = root_of(*apps)
    plan = plan_deployment(Group(ROOT), target, "v1")
    assert steps_of(plan) == [
        [("StartApplication", "/db"), ("StartApplication", "/api"),
         ("StartApplication", "/web")],
        [("ScaleApplication", "/db")], [("ScaleApplication", "/api")],
        [("ScaleApplication", "/web")]]
    teardown = plan_deployment(target, Group(ROOT), "v2")
    assert steps_of(teardown) == [[("StopApplication", "/web")], [("StopApplication", "/api")],
                                  [("StopApplication", "/db")]]


def test_changes_map_to_restart_scale_or_nothing() -> None:
    original = root_of(app("/same"), app("/scaled"), app("/changed"), app("/gone"))
    target = put_app(original, parse_app(app("/scaled", instances=5)))
    target = put_app(target, parse_app(app("/changed", cmd="sleep 1")))
    target = remove_app(target, p("/gone"))
    target = assign_versions(original, target, "v2")
    plan = plan_deployment(original, target, "v2")
    assert steps_of(plan) == [[("StopApplication", "/gone")],
                              [("ScaleApplication", "/scaled"),
                               ("RestartApplication", "/changed")]]
    assert plan.affected_apps == (p("/changed"), p("/gone"), p("/scaled"))
    assert plan_deployment(original, original, "v3").is_empty


def test_restart_endpoint_new_config_version_restarts() -> None:
    original = root_of(app("/a"))
    a = original.app(p("/a"))
    assert a is not None
    restarted = put_app(original, a.replace(version="v2", version_info={
        "lastScalingAt": "v2", "lastConfigChangeAt": "v2"}))
    assert steps_of(plan_deployment(original, restarted, "v2")) == [
        [("RestartApplication", "/a")]]


def test_artifacts_resolve_first_and_kills_ride_on_scale() -> None:
    original = root_of(app("/a", instances=3))
    target = put_app(original, parse_app(app("/b", storeUrls=["http://h/x.tgz"])))
    target = put_app(target, parse_app(app("/a", instances=2)))
    plan = plan_deployment(original, assign_versions(original, target, "v2"), "v2",
                           to_kill={p("/a"): ["a.instance-1"]})
    assert steps_of(plan)[0] == [("ResolveArtifacts", "/b")]
    scale = next(a for s in plan.steps for a in s.actions if a.app.id == p("/a"))
    assert (scale.action, scale.scale_to, scale.kill) == (ActionType.SCALE, 2, ("a.instance-1",))


def test_cyclic_target_cannot_be_planned() -> None:
    cyclic = parse_group({"id": "/", "apps": [app("/a", dependencies=["/b"]),
                                              app("/b", dependencies=["/a"])]})
    with pytest.raises(ValueError, match="cyclic"):
        plan_deployment(Group(ROOT), cyclic, "v")


def test_conflicts_name_the_locking_deployments() -> None:
    base = root_of(app("/a"), app("/b"))
    running = plan_deployment(base, put_app(base, parse_app(app("/a", cmd="x"))), "v2",
                              plan_id="run-1")
    other = plan_deployment(base, put_app(base, parse_app(app("/b", cmd="x"))), "v2",
                            plan_id="run-2")
    mine = plan_deployment(base, put_app(base, parse_app(app("/a", instances=9))), "v3",
                           plan_id="new")
    conflicts = conflicting_deployments(mine, [running, other, mine])
    assert [c.id for c in conflicts] == ["run-1"]
    error = AppLockedError(c.id for c in conflicts)
    assert error.status_code == 409
    assert error.to_json() == {
        "message": "App is locked by one or more deployments. Override with the option "
                   "'?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
        "deployments": [{"id": "run-1"}]}


def test_revert_restores_originals_and_drops_created_things() -> None:
    original = root_of(app("/keep"), app("/changed"), app("/removed"))
    target = put_app(original, parse_app(app("/changed", cmd="new")))
    target = put_app(remove_app(target, p("/removed")), parse_app(app("/new/created")))
    plan = plan_deployment(original, assign_versions(original, target, "v2"), "v2")
    reverted = revert_target(plan, plan.target)
    assert reverted.transitive_app_ids() == original.transitive_app_ids()
    assert reverted.app(p("/changed")) == original.app(p("/changed"))
    assert reverted.group(p("/new")) is None


@pytest.mark.parametrize(("instances", "health", "over", "bounds"), [
    (10, 1.0, 1.0, (10, 20)),
    (10, 0.5, 0.0, (5, 10)),
    (5, 0.5, 0.0, (3, 5)),     # ceil(2.5)
    (10, 0.3, 0.15, (3, 11)),  # no float noise: ceil(3.0), floor(11.5)
    (3, 1.0, 0.0, (3, 4)),     # min == max: one extra instance allowed
    (0, 1.0, 0.0, (0, 0)),
], ids=["default", "half", "round-up", "float-noise", "deadlock-extra", "zero"])
def test_capacity_bounds(instances: int, health: float, over: float,
                         bounds: tuple[int, int]) -> None:
    assert capacity_bounds(instances, UpgradeStrategy(health, over)) == bounds


def test_replace_kills_unhealthy_old_at_once_and_keeps_minimum() -> None:
    strategy = UpgradeStrategy(0.5, 0.0)
    old = [ReplaceInstance(f"o{i}", healthy=i != 0) for i in range(4)]
    decision = replace_step(4, strategy, old, [])
    assert decision.kill == ("o0", "o1")  # unhealthy o0, then healthy down to ceil(4*0.5)=2
    assert decision.start == 0 and not decision.done  # 4 alive already fill max 4
    done = replace_step(4, strategy, [], [ReplaceInstance(f"n{i}", True) for i in range(4)])
    assert done == done.__class__(0, (), True)


def test_unready_new_instances_do_not_count_as_healthy() -> None:
    strategy = UpgradeStrategy(1.0, 1.0)
    old = [ReplaceInstance("o0", healthy=True)]
    decision = replace_step(1, strategy, old, [ReplaceInstance("n0", healthy=True, ready=False)])
    assert decision == decision.__class__(0, (), False)


class _Simulation:
    """Live instances of a restart, driven by replace_step and random events."""

    def __init__(self, rng: random.Random, instances: int, old: int,
                 strategy: UpgradeStrategy) -> None:
        self.rng, self.instances, self.strategy = rng, instances, strategy
        self.old = {f"o{i}": ReplaceInstance(f"o{i}", healthy=rng.random() < 0.8)
                    for i in range(old)}
        self.new: dict[str, ReplaceInstance] = {}
        self.queued = 0
        self.serial = 0

    def alive(self) -> int:
        return len(self.old) + len(self.new) + self.queued

    def healthy(self) -> int:
        return sum(1 for i in [*self.old.values(), *self.new.values()]
                   if i.healthy and i.ready and not i.killing)

    def decide(self) -> bool:
        decision = replace_step(self.instances, self.strategy, list(self.old.values()),
                                list(self.new.values()), queued=self.queued)
        for instance_id in decision.kill:
            self.old[instance_id] = ReplaceInstance(instance_id, self.old[instance_id].healthy,
                                                    killing=True)
        self.queued += decision.start
        return decision.done

    def events(self) -> list[tuple[str, str]]:
        found = [("launch", "")] if self.queued else []
        found += [("gone", i) for i, x in self.old.items() if x.killing]
        found += [("healthy", i) for i, x in self.new.items() if not x.healthy]
        found += [("ready", i) for i, x in self.new.items() if x.healthy and not x.ready]
        return found

    def apply(self, kind: str, instance_id: str) -> None:
        if kind == "launch":
            self.queued -= 1
            self.serial += 1
            self.new[f"n{self.serial}"] = ReplaceInstance(f"n{self.serial}",
                                                          ready=self.rng.random() < 0.5)
        elif kind == "gone":
            del self.old[instance_id]
        elif kind == "healthy":
            self.new[instance_id] = ReplaceInstance(instance_id, True, self.new[instance_id].ready)
        else:
            self.new[instance_id] = ReplaceInstance(instance_id, True, True)


@pytest.mark.parametrize("seed", range(40))
def test_random_restarts_keep_both_bounds_and_finish(seed: int) -> None:
    rng = random.Random(seed)
    instances = rng.randint(0, 8)
    strategy = UpgradeStrategy(rng.choice([0.0, 0.3, 0.5, 1.0]), rng.choice([0.0, 0.2, 1.0]))
    simulation = _Simulation(rng, instances, rng.randint(0, 8), strategy)
    minimum, maximum = capacity_bounds(instances, strategy)
    ceiling = max(maximum, simulation.alive())
    for _ in range(500):
        healthy_before = simulation.healthy()
        if simulation.decide():
            break
        assert simulation.healthy() >= min(minimum, healthy_before)
        assert simulation.alive() <= ceiling
        events = simulation.events()
        assert events, "no event can happen, yet the restart is not done"
        simulation.apply(*rng.choice(events))
    else:
        pytest.fail("the restart did not finish in 500 events")
    assert not simulation.old and len(simulation.new) == instances
