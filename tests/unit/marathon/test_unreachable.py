"""Marathon's `unreachableStrategy` on the pure core with a fake clock: an unreachable
instance counts until `inactiveAfterSeconds`, is replaced then, expunged after
`expungeAfterSeconds`, and when it comes back the app sheds the excess by `killSelection`."""

from __future__ import annotations

from typing import Any

import pytest

from marathon.app_definition import parse_app, to_json
from marathon.app_parts import UnreachableStrategy
from marathon.paths import PathId
from marathon.state import Instance, Recovered
from marathon.validation import AppValidationError
from mesos_coordination.store import store_key
from protos import mesos_pb2
from tests.unit.marathon.harness import World

APP_ID = PathId.parse("/web")


def app_body(strategy: object, **fields: Any) -> dict[str, Any]:
    return {"id": "/web", "cmd": "sleep 600", "cpus": 0.5, "mem": 64, "instances": 1,
            "unreachableStrategy": strategy, **fields}


def running_world(strategy: object, **fields: Any) -> tuple[World, str]:
    """A world whose one-instance app runs on host h1; returns it and the task id."""
    world = World()
    world.deploy_app(app_body(strategy, **fields))
    [task] = world.offer("h1")
    world.update(task.task_id.value, mesos_pb2.TASK_RUNNING, "h1")
    assert not world.core.deployments
    world.wall.advance(1)
    return world, task.task_id.value


def instance_of(world: World, task_id: str) -> Instance | None:
    return next((i for i in world.core.instances.values() if i.task_id == task_id), None)


def conditions(world: World, task_id: str) -> list[str]:
    """The conditions `instance_changed_event` reported for the instance of `task_id`."""
    instance_id = task_id.rpartition("._app.")[0]
    assert instance_id, task_id
    return [event["condition"] for event in world.events
            if event["eventType"] == "instance_changed_event"
            and event["instanceId"] == instance_id]


def test_an_unreachable_instance_still_counts_until_inactive_after() -> None:
    world, task_id = running_world({"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120})
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    world.wall.advance(59)
    world.core.tick()
    assert world.offer("h2") == []  # nothing queued: it still counts
    instance = instance_of(world, task_id)
    assert instance is not None and instance.live and not instance.inactive
    assert instance.condition.value == "Unreachable"

    world.wall.advance(1)  # unreachable for exactly inactiveAfterSeconds
    world.core.tick()
    [replacement] = world.offer("h2")
    assert replacement.task_id.value != task_id
    assert instance.inactive and not instance.live
    assert instance.condition.value == "UnreachableInactive"
    shown = {t.task_id: t.task_json()["state"] for t in world.core.app_instances(APP_ID)}
    assert shown == {task_id: "TASK_UNREACHABLE", replacement.task_id.value: "TASK_STAGING"}
    assert world.actions.killed == []


def test_an_instance_back_before_inactive_after_is_not_replaced() -> None:
    world, task_id = running_world({"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120})
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    world.wall.advance(30)
    world.core.tick()
    world.update(task_id, mesos_pb2.TASK_RUNNING, "h1")
    world.wall.advance(60)
    world.core.tick()
    assert world.offer("h2") == []
    instance = instance_of(world, task_id)
    assert instance is not None and instance.unreachable_since is None
    assert conditions(world, task_id) == ["Running", "Unreachable", "Running"]


def test_an_expunged_instance_is_forgotten_and_killed_when_it_reports_again() -> None:
    world, task_id = running_world({"inactiveAfterSeconds": 1, "expungeAfterSeconds": 10})
    instance = instance_of(world, task_id)
    assert instance is not None
    record = store_key("instances", instance.instance_id)
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    world.wall.advance(1)
    world.core.tick()
    [replacement] = world.offer("h2")
    world.update(replacement.task_id.value, mesos_pb2.TASK_RUNNING, "h2")
    world.wall.advance(8)  # 9 s unreachable
    world.core.tick()
    assert instance_of(world, task_id) is not None and record in world.sink.entries

    world.wall.advance(1)  # 10 s: expungeAfterSeconds
    world.core.tick()
    assert instance_of(world, task_id) is None
    assert record not in world.sink.entries
    assert [t.task_id for t in world.core.app_instances(APP_ID)] == [replacement.task_id.value]
    assert conditions(world, task_id) == ["Running", "Unreachable", "UnreachableInactive",
                                          "Killed"]
    assert world.actions.killed == []  # nobody can hear a kill now

    world.update(task_id, mesos_pb2.TASK_RUNNING, "h1")  # it comes back after all
    assert world.actions.killed == [task_id]
    assert instance_of(world, task_id) is None


@pytest.mark.parametrize(("selection", "survivor"), [("YOUNGEST_FIRST", "returning"),
                                                     ("OLDEST_FIRST", "replacement")],
                         ids=["youngest-first", "oldest-first"])
def test_a_returning_instance_makes_the_app_shed_the_excess_by_kill_selection(
        selection: str, survivor: str) -> None:
    world, task_id = running_world({"inactiveAfterSeconds": 5, "expungeAfterSeconds": 3600},
                                   killSelection=selection)
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    world.wall.advance(5)
    world.core.tick()
    [replacement] = world.offer("h2")
    world.update(replacement.task_id.value, mesos_pb2.TASK_RUNNING, "h2")
    world.wall.advance(3)

    world.update(task_id, mesos_pb2.TASK_RUNNING, "h1")  # the agent re-registered
    returning = instance_of(world, task_id)
    assert returning is not None and not returning.inactive  # it counts again, so ...
    assert conditions(world, task_id)[-2:] == ["UnreachableInactive", "Running"]
    doomed = replacement.task_id.value if survivor == "returning" else task_id
    assert world.actions.killed == [doomed]
    world.update(doomed, mesos_pb2.TASK_KILLED, "h2" if doomed != task_id else "h1")
    world.core.tick()
    assert len(world.core.app_instances(APP_ID)) == 1
    assert world.offer("h3") == []


def test_disabled_never_replaces_nor_expunges() -> None:
    world, task_id = running_world("disabled")
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    for _ in range(3):
        world.wall.advance(30 * 24 * 3600)
        world.core.tick()
    assert world.offer("h2") == []
    instance = instance_of(world, task_id)
    assert instance is not None and instance.live and instance.condition.value == "Unreachable"
    world.update(task_id, mesos_pb2.TASK_RUNNING, "h1")
    assert world.actions.killed == []
    assert conditions(world, task_id) == ["Running", "Unreachable", "Running"]


def test_the_default_strategy_replaces_at_once_and_expunges_at_the_next_tick() -> None:
    world, task_id = running_world({})
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    assert conditions(world, task_id) == ["Running", "UnreachableInactive"]  # one change
    [replacement] = world.offer("h2")
    assert replacement.task_id.value != task_id
    world.core.tick()
    assert instance_of(world, task_id) is None
    assert conditions(world, task_id)[-1] == "Killed"


def test_a_late_unreachable_update_makes_it_inactive_at_once() -> None:
    world, task_id = running_world({"inactiveAfterSeconds": 5, "expungeAfterSeconds": 50})
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    world.wall.advance(6)
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")  # e.g. a reconciliation answer
    assert conditions(world, task_id) == ["Running", "Unreachable", "UnreachableInactive"]
    assert len(world.offer("h2")) == 1


def test_killing_an_unreachable_instance_expunges_it() -> None:
    world = World()
    world.deploy_app(app_body({"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120},
                              instances=2))
    tasks = [t.task_id.value for t in world.offer("h1")]
    for task_id in tasks:
        world.update(task_id, mesos_pb2.TASK_RUNNING, "h1")
        world.wall.advance(1)
    lost, kept = tasks
    world.update(lost, mesos_pb2.TASK_UNREACHABLE, "h1")

    world.deploy_app(app_body({"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120},
                              instances=1))
    assert world.actions.killed == []  # unreachable goes first, and it is expunged, not killed
    assert [i.task_id for i in world.core.instances.values()] == [kept]
    assert conditions(world, lost)[-1] == "Killed"
    assert not world.core.deployments


def test_a_kill_in_flight_when_it_becomes_unreachable_ends_in_an_expunge() -> None:
    world, task_id = running_world({"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120})
    [instance_id] = world.core.instances
    world.core.kill_tasks([task_id], scale=False)
    assert world.actions.killed == [task_id]
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    assert instance_id not in world.core.instances
    assert len(world.offer("h2")) == 1  # and it is replaced


def test_failing_health_checks_do_not_kill_an_unreachable_instance() -> None:
    world, task_id = running_world({"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120})
    [instance_id] = world.core.instances
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    world.core.kill_instance(instance_id)
    assert world.actions.killed == [] and instance_id in world.core.instances


def test_a_new_leader_keeps_an_inactive_instance_inactive() -> None:
    world, task_id = running_world({"inactiveAfterSeconds": 1, "expungeAfterSeconds": 3600})
    world.update(task_id, mesos_pb2.TASK_UNREACHABLE, "h1")
    world.wall.advance(1)
    world.core.tick()
    recovered = Recovered.decode(world.sink.entries)
    [instance] = [i for i in recovered.instances.values() if i.task_id == task_id]
    assert instance.inactive and instance.unreachable_since is not None
    successor = World(recovered=recovered)
    successor.core.tick()
    assert len(successor.offer("h2")) == 1


def test_defaults_and_validation_follow_marathon() -> None:
    assert parse_app({"id": "/a", "cmd": "x"}).unreachable_strategy == UnreachableStrategy(
        True, 0, 0)
    resident = parse_app({"id": "/a", "cmd": "x", "residency": {}})
    assert to_json(resident)["unreachableStrategy"] == "disabled"
    same = parse_app(app_body({"inactiveAfterSeconds": 7, "expungeAfterSeconds": 7}))
    assert same.unreachable_strategy == UnreachableStrategy(True, 7, 7)
    with pytest.raises(AppValidationError) as rejected:
        parse_app(app_body({"inactiveAfterSeconds": 8, "expungeAfterSeconds": 7}))
    assert rejected.value.errors_at("/unreachableStrategy/inactiveAfterSeconds") == [
        "inactiveAfterSeconds (8) must be less or equal to expungeAfterSeconds, which is 7"]
