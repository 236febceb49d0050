"""Marathon's scheduler core driven directly: deployments, launches, failures, recovery."""

from __future__ import annotations

import pytest

from marathon.core import DECLINE_SECONDS, IDLE_DECLINE_SECONDS
from marathon.deployments import AppLockedError
from marathon.groups import Group, remove_app
from marathon.paths import PathId
from marathon.state import Recovered
from mesos_coordination.store import MemorySink
from mesos_values.resources import Resources
from protos import mesos_pb2
from tests.unit.marathon.harness import World

APP = {"id": "/web", "cmd": "sleep 600", "cpus": 0.5, "mem": 64, "instances": 2}


def test_a_new_app_is_deployed_launched_and_reported_running() -> None:
    world = World()
    world.deploy_app(APP)
    assert world.core.deployments
    tasks = world.offer()
    assert len(tasks) == 2
    assert all(t.task_id.value.startswith("web.instance-") for t in tasks)
    env = {v.name: v.value for v in tasks[0].command.environment.variables}
    assert env["MARATHON_APP_ID"] == "/web" and env["PORT0"].isdigit()
    for task in tasks:
        world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    assert not world.core.deployments
    assert "deployment_success" in world.event_types()
    app = world.core.root.app(PathId.parse("/web"))
    assert app is not None and world.core.counts(app)["tasksRunning"] == 2


def test_launches_wait_until_the_instances_are_durable() -> None:
    sink = MemorySink(hold=True)
    world = World(sink)
    world.deploy_app(APP)
    assert world.offer() == []
    sink.flush()
    assert len(world.actions.launched) == 1
    assert len(world.actions.launched[0][1]) == 2


def test_a_failed_instance_is_replaced_after_its_backoff() -> None:
    world = World()
    world.deploy_app({**APP, "instances": 1, "backoffSeconds": 10})
    [task] = world.offer()
    world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    world.update(task.task_id.value, mesos_pb2.TASK_FAILED)
    assert world.offer() == []  # backing off
    world.wall.advance(10)
    [replacement] = world.offer()
    assert replacement.task_id.value != task.task_id.value


def test_task_unknown_ends_an_instance_and_is_not_killed() -> None:
    world = World()
    world.deploy_app({**APP, "instances": 1})
    [task] = world.offer()
    world.update(task.task_id.value, mesos_pb2.TASK_UNKNOWN)
    assert not world.core.instances  # expunged: reconciliation found no such task
    world.update("web.instance-stranger._app.1", mesos_pb2.TASK_UNKNOWN)
    world.update("web.instance-other._app.1", mesos_pb2.TASK_RUNNING)
    assert world.actions.killed == ["web.instance-other._app.1"]


def test_scaling_down_kills_the_youngest_instances() -> None:
    world = World()
    world.deploy_app({**APP, "instances": 3})
    tasks = world.offer()
    for task in tasks:
        world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
        world.wall.advance(1)
    world.deploy_app({**APP, "instances": 1})
    assert len(world.actions.killed) == 2
    for task_id in world.actions.killed:
        world.update(task_id, mesos_pb2.TASK_KILLED)
    assert not world.core.deployments
    [survivor] = world.core.instances.values()
    assert survivor.task_id == tasks[0].task_id.value  # the oldest stays


def test_a_config_change_replaces_instances_without_dropping_below_capacity() -> None:
    world = World()
    world.deploy_app(APP)
    for task in world.offer():
        world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    old_tasks = {i.task_id for i in world.core.instances.values()}
    world.deploy_app({**APP, "cmd": "sleep 700"})
    assert world.actions.killed == []  # minimumHealthCapacity 1: new ones first
    new = world.offer()
    assert new
    for task in new:
        world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    for task_id in list(world.actions.killed):
        world.update(task_id, mesos_pb2.TASK_KILLED)
    for task in world.offer():
        world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    for task_id in world.actions.killed:
        if any(i.task_id == task_id for i in world.core.instances.values()):
            world.update(task_id, mesos_pb2.TASK_KILLED)
    assert set(world.actions.killed) == old_tasks
    assert not world.core.deployments
    assert all(i.config_version != "" for i in world.core.instances.values())
    assert len(world.core.instances) == 2


def test_a_locked_app_refuses_a_second_deployment_unless_forced() -> None:
    world = World()
    first = world.deploy_app(APP)
    with pytest.raises(AppLockedError) as locked:
        world.deploy_app({**APP, "instances": 3})
    assert locked.value.to_json()["deployments"] == [{"id": first}]
    world.deploy_app({**APP, "instances": 3}, force=True)
    assert first not in world.core.deployments
    assert "deployment_failed" in world.event_types()


def test_a_kill_and_scale_of_a_locked_app_is_refused_unless_forced() -> None:
    world = World()
    world.deploy_app(APP)
    for task in world.offer():
        world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    assert not world.core.deployments
    scaling = world.deploy_app({**APP, "instances": 3})  # waits for an offer: holds /web
    task_id = next(iter(world.core.instances.values())).task_id
    with pytest.raises(AppLockedError) as locked:
        world.core.kill_tasks([task_id], scale=True)
    assert locked.value.to_json()["deployments"] == [{"id": scaling}]
    assert world.actions.killed == []
    plan = world.core.kill_tasks([task_id], scale=True, force=True)
    assert plan is not None and scaling not in world.core.deployments
    assert world.actions.killed == [task_id]


def test_removing_an_app_kills_its_instances_and_reports_it_terminated() -> None:
    world = World()
    world.deploy_app(APP)
    for task in world.offer():
        world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    world.core.update_root(lambda root: remove_app(root, PathId.parse("/web")))
    assert len(world.actions.killed) == 2
    for task_id in world.actions.killed:
        world.update(task_id, mesos_pb2.TASK_KILLED)
    assert world.core.instances == {}
    assert "app_terminated_event" in world.event_types()
    assert not world.core.deployments


def test_a_new_leader_recovers_instances_and_reconciles_them() -> None:
    world = World()
    world.deploy_app(APP)
    tasks = world.offer()
    world.update(tasks[0].task_id.value, mesos_pb2.TASK_RUNNING)
    world.core.registered("fw-1")

    recovered = Recovered.decode(world.sink.entries)
    assert recovered.framework_id == "fw-1"
    successor = World(MemorySink(), recovered)
    assert set(successor.core.instances) == set(world.core.instances)
    assert successor.core.root.app(PathId.parse("/web")) is not None
    assert len(successor.core.deployments) == 1  # one instance is still staging
    successor.core.registered("fw-1")
    [reconciled] = successor.actions.reconciled
    assert {t for t, _ in reconciled} == {t.task_id.value for t in tasks}
    successor.update(tasks[1].task_id.value, mesos_pb2.TASK_RUNNING)
    assert not successor.core.deployments


def test_unknown_tasks_are_killed() -> None:
    world = World()
    world.update("stranger.instance-1._app.1", mesos_pb2.TASK_RUNNING)
    assert world.actions.killed == ["stranger.instance-1._app.1"]


def test_apps_are_kept_at_their_instance_count_outside_deployments() -> None:
    world = World()
    world.deploy_app({**APP, "instances": 1})
    [task] = world.offer()
    world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    assert not world.core.deployments
    world.update(task.task_id.value, mesos_pb2.TASK_KILLED)  # killed outside Marathon
    [replacement] = world.offer()
    assert replacement.task_id.value != task.task_id.value


def test_root_group_starts_empty() -> None:
    assert World().core.root == Group(PathId.parse("/"))


def test_an_app_this_cluster_cannot_run_is_kept_and_reports_why() -> None:
    world = World()
    world.deploy_app({**APP, "container": {"type": "MESOS", "appc": {"image": "nginx"}}})
    assert world.offer() == []
    app_id = PathId.parse("/web")
    assert world.core.root.app(app_id) is not None  # stored faithfully
    failure = world.core.last_failures[app_id]
    assert "AppC" in failure["message"]
    world.core.tick()
    failed = [e for e in world.events if e.get("taskStatus") == "TASK_FAILED"]
    assert len(failed) == 1  # said once per version, not every tick


def test_a_forced_change_replaces_the_definition_waiting_in_the_queue() -> None:
    world = World()
    world.deploy_app({**APP, "instances": 1, "cpus": 100})
    assert world.offer() == []  # does not fit
    world.deploy_app({**APP, "instances": 1, "cpus": 0.1}, force=True)
    [task] = world.offer()
    assert Resources.from_proto(task.resources).scalar("cpus") == 0.1


def test_a_per_agent_app_runs_one_instance_on_every_matching_agent() -> None:
    world = World()
    world.deploy_app({**APP, "instances": 1, "labels": {"MARATHON_PER_AGENT": "true"},
                      "constraints": [["hostname", "LIKE", "web-.*"]]})
    assert not world.core.deployments  # nothing to count: it follows the agents
    assert len(world.offer("web-1")) == 1
    assert world.offer("web-1") == []  # one per agent
    assert world.offer("db-1") == []  # does not match the constraint
    [task] = world.offer("web-2")  # a new agent gets one too
    world.update(task.task_id.value, mesos_pb2.TASK_RUNNING, host="web-2")
    world.update(task.task_id.value, mesos_pb2.TASK_LOST, host="web-2")
    assert world.offer("web-1") == []  # lost with its agent: not moved elsewhere
    world.wall.advance(1)  # the launch backoff after a lost instance
    assert len(world.offer("web-2")) == 1  # back when the agent offers again


def test_an_agent_a_per_agent_app_did_not_fit_on_is_offered_again_soon() -> None:
    """Declined for long (idle), the agent's next offers would come only after minutes,
    and its instance with them."""
    world = World()
    world.deploy_app({**APP, "instances": 1, "mem": 512,
                      "labels": {"MARATHON_PER_AGENT": "true"},
                      "constraints": [["hostname", "LIKE", "web-.*"]]})
    assert world.offer("web-1", "cpus:4;mem:256;ports:[31000-31010]") == []  # does not fit
    assert world.actions.refusals[-1] == DECLINE_SECONDS
    assert world.offer("db-1") == []  # no per-agent app wants it: idle
    assert world.actions.refusals[-1] == IDLE_DECLINE_SECONDS


def test_constraints_count_instances_launched_earlier_in_the_same_round_of_offers() -> None:
    world = World()
    world.deploy_app({**APP, "instances": 6, "constraints": [["hostname", "MAX_PER", "2"]]})
    assert len(world.offer("h1")) == 2  # a round of its own, placed before the next round
    offers = [mesos_pb2.Offer(id=mesos_pb2.OfferID(value=f"r{n}"),
                              agent_id=mesos_pb2.AgentID(value=f"agent-{host}"), hostname=host,
                              resources=Resources.parse("cpus:4;mem:4096;ports:[1-9]").to_proto())
              for n, host in enumerate(["h1", "h2", "h2"])]
    world.core.resource_offers(offers)
    launched = {offer_id: len(tasks) for offer_id, tasks in world.actions.launched}
    assert launched == {"o0": 2, "r1": 2}
    assert world.actions.declined == ["r0", "r2"]


def test_deployment_events_carry_marathons_plan_and_apps_get_service_ports() -> None:
    world = World()
    world.deploy_app(APP)
    for task in world.offer():
        world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    plans = {e["eventType"]: e["plan"] for e in world.events if "plan" in e}
    assert set(plans) == {"deployment_info", "deployment_step_success", "deployment_success"}
    for plan in plans.values():  # Marathon 1.9's DeploymentPlan: no groups, no progress
        assert set(plan) == {"id", "steps", "version"}
        assert plan["steps"][0] == {"actions": [{"action": "StartApplication", "app": "/web"}]}
    app = world.core.root.app(PathId.parse("/web"))
    assert app is not None and [d.port for d in app.port_definitions] == [10000]


def test_killing_and_scaling_a_locked_app_needs_force() -> None:
    world = World()
    first = world.deploy_app({**APP, "instances": 3})
    running = world.offer(resources="cpus:1;mem:4096;ports:[31000-31010]")  # room for 2 of 3
    for task in running:
        world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    assert first in world.core.deployments  # still waiting for the third instance
    killed = running[0].task_id.value
    with pytest.raises(AppLockedError):
        world.core.kill_tasks([killed], scale=True)
    plan = world.core.kill_tasks([killed], scale=True, force=True)
    assert plan is not None and first not in world.core.deployments
    app = world.core.root.app(PathId.parse("/web"))
    assert app is not None and app.instances == 2


class HealthObserver:
    def __init__(self) -> None:
        self.results: list[tuple[str, str, bool]] = []

    def running(self, app: object, instance: object) -> None:
        pass

    def gone(self, instance_id: str) -> None:
        pass

    def agent_health(self, instance_id: str, task_id: str, healthy: bool) -> None:
        self.results.append((instance_id, task_id, healthy))


def test_the_agents_health_results_reach_the_health_checker() -> None:
    world = World()
    observer = HealthObserver()
    world.core.observer = observer
    world.deploy_app({**APP, "instances": 1, "healthChecks": [
        {"protocol": "COMMAND", "command": {"value": "true"}}]})
    [task] = world.offer()
    assert task.health_check.command.value == "true"
    world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    world.core.status_update(mesos_pb2.TaskStatus(
        task_id=task.task_id, state=mesos_pb2.TASK_RUNNING, healthy=True,
        reason=mesos_pb2.TaskStatus.REASON_TASK_HEALTH_CHECK_STATUS_UPDATED,
        agent_id=mesos_pb2.AgentID(value="agent-h1")))
    [(instance_id, task_id, healthy)] = observer.results
    assert task_id == task.task_id.value and healthy
    assert task_id.startswith(instance_id)


class RunningObserver(HealthObserver):
    def __init__(self) -> None:
        super().__init__()
        self.watched: list[str] = []

    def running(self, app: object, instance: object) -> None:
        self.watched.append(instance.task_id)


def test_a_new_leader_checks_the_health_of_the_instances_it_recovered() -> None:
    world = World()
    world.deploy_app({**APP, "healthChecks": [{"protocol": "HTTP", "path": "/"}]})
    tasks = world.offer()
    world.update(tasks[0].task_id.value, mesos_pb2.TASK_RUNNING)  # the other one is staging
    successor = World(MemorySink(), Recovered.decode(world.sink.entries))
    observer = RunningObserver()
    successor.core.observer = observer
    successor.core.watch_running_instances()
    assert observer.watched == [tasks[0].task_id.value]



def test_a_burst_is_split_over_the_offers_of_one_round() -> None:
    world = World()
    world.deploy_app({**APP, "instances": 5})
    offers = [mesos_pb2.Offer(id=mesos_pb2.OfferID(value=f"r{n}"),
                              agent_id=mesos_pb2.AgentID(value=f"agent-h{n}"), hostname=f"h{n}",
                              resources=Resources.parse("cpus:4;mem:4096;ports:[1-9]").to_proto())
              for n in range(2)]
    world.core.resource_offers(offers)
    assert {offer_id: len(tasks) for offer_id, tasks in world.actions.launched} == {
        "r0": 3, "r1": 2}


def _big_offer(name: str, host: str) -> mesos_pb2.Offer:
    return mesos_pb2.Offer(id=mesos_pb2.OfferID(value=name),
                           agent_id=mesos_pb2.AgentID(value=f"agent-{host}"), hostname=host,
                           resources=Resources.parse("cpus:100;mem:100000").to_proto())


def test_an_agent_gets_a_small_first_wave_then_the_rest_of_its_share() -> None:
    world = World()
    world.core.first_wave = 4
    world.deploy_app({**APP, "instances": 30, "cpus": 0.1, "mem": 1, "portDefinitions": []})
    world.core.resource_offers([_big_offer("a0", "h1"), _big_offer("b0", "h2")])
    # 4 each at first (of shares of 15), the offers' rest offered again at once.
    assert [len(tasks) for _, tasks in world.actions.launched] == [4, 4]
    assert world.actions.launch_refusals == [0.0, 0.0]
    # The rest comes back one offer at a time: each takes its agent's share, not all.
    world.core.resource_offers([_big_offer("a1", "h1")])
    world.core.resource_offers([_big_offer("b1", "h2")])
    launched = {offer_id: len(tasks) for offer_id, tasks in world.actions.launched}
    assert launched == {"a0": 4, "b0": 4, "a1": 11, "b1": 11}
    assert world.actions.launch_refusals[2:] == [None, None]
    agents = {i.agent_id for i in world.core.instances.values()}
    assert agents == {"agent-h1", "agent-h2"}


def test_the_next_burst_starts_with_a_small_wave_again() -> None:
    world = World()
    world.core.first_wave = 2
    world.deploy_app({**APP, "id": "/a", "instances": 6, "cpus": 0.1, "mem": 1,
                      "portDefinitions": []})
    for round_ in range(3):
        world.core.resource_offers([_big_offer(f"a{round_}", "h1")])
    assert [len(tasks) for _, tasks in world.actions.launched] == [2, 4]
    world.deploy_app({**APP, "id": "/b", "instances": 5, "cpus": 0.1, "mem": 1,
                      "portDefinitions": []})
    world.core.resource_offers([_big_offer("c", "h1")])
    assert len(world.actions.launched[-1][1]) == 2


def test_a_burst_smaller_than_the_first_wave_goes_at_once() -> None:
    world = World()
    world.core.first_wave = 4
    world.deploy_app({**APP, "instances": 6, "cpus": 0.1, "mem": 1, "portDefinitions": []})
    world.core.resource_offers([_big_offer("a", "h1"), _big_offer("b", "h2")])
    assert [len(tasks) for _, tasks in world.actions.launched] == [3, 3]
    assert world.actions.launch_refusals == [None, None]


def test_without_waves_an_offer_takes_its_whole_share() -> None:
    world = World()
    world.core.first_wave = None
    world.deploy_app({**APP, "instances": 30, "cpus": 0.1, "mem": 1, "portDefinitions": []})
    world.core.resource_offers([_big_offer("a", "h1"), _big_offer("b", "h2")])
    assert [len(tasks) for _, tasks in world.actions.launched] == [15, 15]
    assert world.actions.launch_refusals == [None, None]
