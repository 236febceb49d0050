"""The registry as the master core writes it, and a new leader's core recovering from it."""

from __future__ import annotations

import pytest

from mesos_coordination.store import Mutation, StoreError, split_key, store_key
from mesos_master import registry as registry_module
from mesos_master.errors import ErrorCode, MasterError
from mesos_master.records import FrameworkRecord
from mesos_master.registry import (
    AGENTS,
    FRAMEWORKS,
    ImmediateSink,
    Registry,
    RegistryState,
)
from mesos_values.resources import Resources
from protos import agent_pb2, mesos_pb2, registry_pb2, scheduler_pb2
from tests.unit.test_master import Cluster, RecordingOutbox, agent_status, task

EventType = scheduler_pb2.Event.Type


def running_cluster() -> tuple[Cluster, str, FrameworkRecord]:
    """One agent running task t1 of a framework with a 60 s failover timeout."""
    cluster = Cluster()
    agent_id = cluster.add_agent()
    framework = cluster.subscribe(failover_timeout=60.0)
    [offer] = cluster.offers(framework)
    cluster.launch(framework, [offer], task("t1"))
    cluster.agent_outboxes[agent_id].take()
    cluster.master.status_update(
        agent_id,
        framework.framework_id,
        agent_status(framework, "t1", mesos_pb2.TASK_RUNNING, b"u1"),
    )
    cluster.master.tasks.acknowledge(framework, agent_id, "t1", b"u1")
    cluster.events(framework)
    return cluster, agent_id, framework


def failover(previous: Cluster, *, after: float = 0.0, **config: object) -> Cluster:
    """A new leader's core recovering what `previous` wrote, `after` wall seconds later."""
    wall = previous.wall
    wall.advance(after)
    recovered = RegistryState.decode(previous.sink.state.encode())
    return Cluster(recovered=recovered, wall_clock=wall, **config)


def reregister(
    cluster: Cluster, agent_id: str, info: mesos_pb2.AgentInfo, *tasks: mesos_pb2.Task
) -> RecordingOutbox[agent_pb2.MasterMessage]:
    outbox: RecordingOutbox[agent_pb2.MasterMessage] = RecordingOutbox()
    message = agent_pb2.AgentMessage.Reregister(agent_info=info, tasks=tasks)
    cluster.master.reregister_agent(message, outbox)
    cluster.agent_outboxes[agent_id] = outbox
    return outbox


def resubscribe(cluster: Cluster, framework: FrameworkRecord) -> FrameworkRecord:
    outbox: RecordingOutbox[scheduler_pb2.Event] = RecordingOutbox()
    framework_id, _ = cluster.master.subscribe(framework.info, outbox)
    assert outbox.take()[0].type == EventType.SUBSCRIBED
    cluster.framework_outboxes[framework_id] = outbox
    return cluster.master.frameworks[framework_id]


def running_task(framework: FrameworkRecord, agent_id: str, task_id: str) -> mesos_pb2.Task:
    return mesos_pb2.Task(
        name=task_id,
        task_id=mesos_pb2.TaskID(value=task_id),
        framework_id=mesos_pb2.FrameworkID(value=framework.framework_id),
        agent_id=mesos_pb2.AgentID(value=agent_id),
        state=mesos_pb2.TASK_RUNNING,
        resources=Resources.parse("cpus:1;mem:128").to_proto(),
    )


def test_the_core_records_agents_and_frameworks_in_the_registry() -> None:
    cluster, agent_id, framework = running_cluster()
    state = cluster.sink.state
    assert list(state.agents) == [agent_id]
    assert state.agents[agent_id].info.hostname == "h1"
    assert state.agents[agent_id].unreachable_since == 0
    entry = state.frameworks[framework.framework_id]
    assert entry.info.failover_timeout == 60.0
    assert entry.disconnected_since == 0

    cluster.master.framework_disconnected(framework.framework_id, framework.stream_id)
    state = cluster.sink.state
    assert state.frameworks[framework.framework_id].disconnected_since == cluster.wall.now()

    other = cluster.subscribe("other")
    cluster.master.teardown(other)
    state = cluster.sink.state
    assert other.framework_id not in state.frameworks
    assert other.framework_id in state.removed_frameworks


def test_an_agent_is_admitted_only_once_its_registry_entry_is_durable() -> None:
    sink = ImmediateSink(hold=True)
    cluster = Cluster(sink=sink)
    framework = cluster.subscribe()
    outbox: RecordingOutbox[agent_pb2.MasterMessage] = RecordingOutbox()
    info = mesos_pb2.AgentInfo(hostname="h1", resources=Resources.parse("cpus:2").to_proto())
    agent_id = cluster.master.register_agent(info, outbox)
    assert outbox.messages == []
    assert cluster.offers(framework) == []

    sink.flush()
    [registered] = outbox.take()
    assert registered.registered.agent_id.value == agent_id
    [offer] = cluster.offers(framework)
    assert offer.agent_id.value == agent_id


def test_an_agent_gone_before_its_admission_is_durable_gets_no_offers() -> None:
    sink = ImmediateSink(hold=True)
    cluster = Cluster(sink=sink)
    framework = cluster.subscribe()
    outbox: RecordingOutbox[agent_pb2.MasterMessage] = RecordingOutbox()
    info = mesos_pb2.AgentInfo(hostname="h1", resources=Resources.parse("cpus:2").to_proto())
    agent_id = cluster.master.register_agent(info, outbox)
    cluster.master.agent_disconnected(agent_id, outbox)
    sink.flush()
    assert outbox.messages == []
    assert cluster.offers(framework) == []
    assert agent_id in sink.state.agents  # it may still re-register with its id


def test_recovered_agents_wait_for_reregistration_and_reconciliation_waits_too() -> None:
    old, agent_id, framework = running_cluster()
    new = failover(old, agent_reregister_timeout=600.0)
    assert new.master.tasks.recovering
    assert new.master.agents[agent_id].awaiting_reregistration
    framework = resubscribe(new, framework)

    reconcile = [("t1", agent_id), ("t2", "")]
    new.master.tasks.reconcile(framework, reconcile)
    assert new.updates(framework) == []  # the agent may still come back with these tasks

    info = old.master.agents[agent_id].info
    reregister(new, agent_id, info, running_task(framework, agent_id, "t1"))
    assert not new.master.tasks.recovering
    new.master.tasks.reconcile(framework, reconcile)
    states = {s.task_id.value: s.state for s in new.updates(framework)}
    assert states == {"t1": mesos_pb2.TASK_RUNNING, "t2": mesos_pb2.TASK_LOST}


def test_agents_that_do_not_reregister_in_time_are_reported_lost() -> None:
    old, agent_id, framework = running_cluster()
    new = failover(old, agent_reregister_timeout=30.0)
    framework = resubscribe(new, framework)
    new.clock.advance(29.0)
    new.master.tick()
    assert new.events(framework) == []
    new.clock.advance(1.0)
    new.master.tick()
    [lost] = new.events(framework)
    assert lost.type == EventType.FAILURE
    assert lost.failure.agent_id.value == agent_id
    assert new.sink.state.agents[agent_id].unreachable_since == new.wall.now()

    new.master.tasks.reconcile(framework, [("t1", agent_id)])
    [status] = new.updates(framework)
    assert status.state == mesos_pb2.TASK_LOST  # not partition-aware


def test_an_unreachable_agent_stays_unreachable_across_failover() -> None:
    old, agent_id, framework = running_cluster()
    old.clock.advance(old.master.config.agent_unreachable_after + 1)
    old.master.tick()
    new = failover(old)
    assert not new.master.agents[agent_id].reachable
    assert not new.master.tasks.recovering
    framework = resubscribe(new, framework)
    new.master.tasks.reconcile(framework, [("t1", agent_id)])
    [status] = new.updates(framework)
    assert status.state == mesos_pb2.TASK_LOST


def test_failover_timeout_keeps_running_across_master_failover() -> None:
    old, agent_id, framework = running_cluster()
    old.master.framework_disconnected(framework.framework_id, framework.stream_id)
    new = failover(old, after=50.0)  # 50 of its 60 seconds are gone
    assert new.master.frameworks[framework.framework_id].disconnected_at is not None
    new.clock.advance(9.0)
    new.master.tick()
    assert framework.framework_id in new.master.frameworks
    new.clock.advance(1.0)
    new.master.tick()
    assert framework.framework_id not in new.master.frameworks
    assert framework.framework_id in new.sink.state.removed_frameworks

    # Its agent re-registers later with the task: the master has it shut down.
    outbox = reregister(
        new, agent_id, old.master.agents[agent_id].info, running_task(framework, agent_id, "t1")
    )
    kinds = [m.WhichOneof("message") for m in outbox.take()]
    assert kinds == ["shutdown_framework", "reregistered"]
    assert new.master.agents[agent_id].tasks == {}


def test_frameworks_connected_at_failover_get_their_whole_timeout_from_recovery() -> None:
    old, _agent_id, framework = running_cluster()
    new = failover(old, after=3600.0)
    new.clock.advance(59.0)
    new.master.tick()
    assert framework.framework_id in new.master.frameworks
    resubscribed = resubscribe(new, framework)
    assert resubscribed.disconnected_at is None
    assert new.sink.state.frameworks[framework.framework_id].disconnected_since == 0


def test_a_removed_framework_stays_removed_after_failover() -> None:
    old, _agent_id, framework = running_cluster()
    info = framework.info
    old.master.teardown(framework)
    new = failover(old)
    outbox: RecordingOutbox[scheduler_pb2.Event] = RecordingOutbox()
    with pytest.raises(MasterError) as refused:
        new.master.subscribe(info, outbox)
    assert refused.value.code == ErrorCode.FAILED_PRECONDITION


def test_weights_are_recovered_and_flags_take_precedence() -> None:
    state = RegistryState(weights={"a": 3.0, "b": 2.0})
    cluster = Cluster(recovered=state, role_weights={"b": 5.0})
    assert cluster.master.allocator.weight("a") == 3.0
    assert cluster.master.allocator.weight("b") == 5.0


def test_registry_state_round_trips_and_refuses_corrupt_entries() -> None:
    state = RegistryState(
        agents={"a/1": registry_pb2.AgentEntry(info=mesos_pb2.AgentInfo(hostname="h"))},
        frameworks={"f": registry_pb2.FrameworkEntry(disconnected_since=5.0)},
        removed_frameworks={"g": 7.0},
        weights={"eng/backend": 2.0},
    )
    entries = state.encode()
    assert store_key(AGENTS, "a/1") in entries  # the id's slash is encoded
    assert split_key(store_key(AGENTS, "a/1")) == (AGENTS, "a/1")
    assert RegistryState.decode(entries) == state

    with pytest.raises(StoreError, match="corrupt"):
        RegistryState.decode({store_key(FRAMEWORKS, "f"): b"\xff\xff\xff"})
    with pytest.raises(StoreError, match="unknown"):
        RegistryState.decode({"nonsense/x": b""})


def test_removed_framework_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry_module, "MAX_REMOVED_FRAMEWORKS", 2)
    sink = ImmediateSink()
    registry = Registry(sink, {})
    for index, framework_id in enumerate(["f1", "f2", "f3"]):
        registry.remove_framework(framework_id, removed_at=float(index))
    assert sorted(sink.state.removed_frameworks) == ["f2", "f3"]
    assert not registry.is_removed("f1")
    assert Mutation(store_key("removed_frameworks", "f1"), None) in sink.written
