"""Principals own what they register (ADR 0013): frameworks and agents are bound to their
principal, agents to their host; the ACLs decide roles, users and agent registration."""

from __future__ import annotations

import json

import pytest

from mesos_master.errors import ErrorCode, MasterError
from mesos_master.master import Master
from mesos_master.registry import RegistryState
from mesos_security.acls import parse_acls
from mesos_values.resources import Resources
from protos import agent_pb2, mesos_pb2, scheduler_pb2
from tests.unit.test_master import Cluster, RecordingOutbox, task

ACLS = parse_acls(json.dumps({
    "permissive": False,
    "register_frameworks": [{"principals": {"values": ["marathon"]},
                             "roles": {"values": ["web", "*"]}}],
    "run_tasks": [{"principals": {"values": ["marathon"]}, "users": {"values": ["nobody"]}}],
    "register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}}],
}))


def subscribe(cluster: Cluster, authenticated: str | None, **fields: object) -> str:
    outbox: RecordingOutbox[scheduler_pb2.Event] = RecordingOutbox()
    info = mesos_pb2.FrameworkInfo(name="fw", user="nobody", **fields)  # type: ignore[arg-type]
    framework_id, _ = cluster.master.subscribe(info, outbox, authenticated)
    cluster.framework_outboxes[framework_id] = outbox
    return framework_id


def refused(call: object, code: ErrorCode = ErrorCode.PERMISSION_DENIED) -> str:
    assert callable(call)
    with pytest.raises(MasterError) as raised:
        call()
    assert raised.value.code == code
    return raised.value.message


def test_a_framework_belongs_to_the_principal_that_registered_it() -> None:
    cluster = Cluster()
    framework_id = subscribe(cluster, "marathon", failover_timeout=60)
    assert cluster.master.frameworks[framework_id].info.principal == "marathon"
    message = refused(lambda: subscribe(cluster, "intruder",
                                        id=mesos_pb2.FrameworkID(value=framework_id)))
    assert "belongs to principal 'marathon'" in message
    # The victim keeps its subscription; its owner may fail over.
    assert cluster.master.frameworks[framework_id].outbox is not None
    subscribe(cluster, "marathon", id=mesos_pb2.FrameworkID(value=framework_id))
    assert "is not the authenticated principal" in refused(
        lambda: subscribe(cluster, "marathon", principal="batch"))
    stream_id = cluster.master.frameworks[framework_id].stream_id
    assert "not 'intruder'" in refused(
        lambda: cluster.master.check_stream(framework_id, stream_id, "intruder"))
    assert cluster.master.check_stream(framework_id, stream_id, "marathon")


def test_without_authentication_the_claimed_principal_is_bound() -> None:
    cluster = Cluster()
    framework_id = subscribe(cluster, None, principal="claimed")
    assert "belongs to principal 'claimed'" in refused(
        lambda: subscribe(cluster, None, id=mesos_pb2.FrameworkID(value=framework_id)))


def test_acls_decide_roles_users_and_agents() -> None:
    cluster = Cluster(acls=ACLS)
    assert "register_frameworks" in refused(lambda: subscribe(cluster, "batch"))
    assert "register_frameworks roles 'batch'" in refused(
        lambda: subscribe(cluster, "marathon", roles=["batch"]))
    framework = cluster.master.frameworks[subscribe(cluster, "marathon", roles=["web"])]
    assert "register_agents" in refused(lambda: cluster.master.register_agent(
        mesos_pb2.AgentInfo(hostname="h1", resources=Resources.parse("cpus:4;mem:4096")
                            .to_proto()), RecordingOutbox(), "someone"))
    outbox: RecordingOutbox[agent_pb2.MasterMessage] = RecordingOutbox()
    cluster.master.register_agent(mesos_pb2.AgentInfo(
        hostname="h1", resources=Resources.parse("cpus:4;mem:4096").to_proto()), outbox, "agent")
    [offer] = cluster.offers(framework)
    allowed, as_root = task("allowed"), task("as-root")
    as_root.command.user = "root"
    cluster.launch(framework, [offer], allowed, as_root)
    states = {s.task_id.value: s for s in cluster.updates(framework)}
    assert states["as-root"].state == mesos_pb2.TASK_ERROR
    assert states["as-root"].reason == mesos_pb2.TaskStatus.REASON_TASK_UNAUTHORIZED
    assert "run_tasks users 'root'" in states["as-root"].message
    assert "allowed" not in states or states["allowed"].state != mesos_pb2.TASK_ERROR


def test_an_agent_id_is_bound_to_its_principal_and_host_across_failover() -> None:
    cluster = Cluster()
    outbox: RecordingOutbox[agent_pb2.MasterMessage] = RecordingOutbox()
    info = mesos_pb2.AgentInfo(hostname="h1",
                               resources=Resources.parse("cpus:4;mem:4096").to_proto())
    agent_id = cluster.master.register_agent(info, outbox, "agent")
    registered = mesos_pb2.AgentInfo()
    registered.CopyFrom(info)
    registered.id.value = agent_id

    def reregister(master: Master, principal: str | None, hostname: str = "h1") -> str:
        claimed = mesos_pb2.AgentInfo()
        claimed.CopyFrom(registered)
        claimed.hostname = hostname
        message = agent_pb2.AgentMessage.Reregister(agent_info=claimed)
        return master.reregister_agent(message, RecordingOutbox(), principal)

    successor = Cluster(recovered=RegistryState.decode(cluster.sink.entries)).master
    for master in (cluster.master, successor):
        assert "registered as principal 'agent'" in refused(
            lambda: reregister(master, "intruder"))  # noqa: B023 (called at once)
        assert "registered as principal 'agent'" in refused(
            lambda: reregister(master, None))  # noqa: B023
        assert "is on host 'h1'" in refused(
            lambda: reregister(master, "agent", hostname="h2"))  # noqa: B023
        assert reregister(master, "agent") == agent_id


def test_an_operator_teardown_removes_the_framework_and_tells_its_scheduler() -> None:
    cluster = Cluster()
    framework_id = subscribe(cluster, "marathon", failover_timeout=60)
    outbox = cluster.framework_outboxes[framework_id]
    outbox.take()
    cluster.master.operator_teardown(framework_id)
    assert framework_id not in cluster.master.frameworks
    [error] = outbox.take()
    assert error.type == scheduler_pb2.Event.ERROR
    assert "torn down by an operator" in error.error.message and outbox.closed
    assert "is not known" in refused(lambda: cluster.master.operator_teardown(framework_id),
                                     ErrorCode.NOT_FOUND)
    assert "has been removed" in refused(
        lambda: subscribe(cluster, "marathon", id=mesos_pb2.FrameworkID(value=framework_id)),
        ErrorCode.FAILED_PRECONDITION)


def test_new_frameworks_beyond_the_caps_are_refused_but_failovers_are_not() -> None:
    cluster = Cluster(max_frameworks_per_principal=2, max_frameworks=4)
    first = subscribe(cluster, "marathon", failover_timeout=60)
    subscribe(cluster, "marathon")
    assert refused(lambda: subscribe(cluster, "marathon"), ErrorCode.RESOURCE_EXHAUSTED) == (
        "principal 'marathon' already has 2 frameworks, the most --max_frameworks_per_principal "
        "allows; tear one down or fail over an existing one (subscribe with its id)")
    subscribe(cluster, "marathon", id=mesos_pb2.FrameworkID(value=first))  # a failover
    # Anonymous callers without a claimed principal count as the empty principal.
    subscribe(cluster, None)
    subscribe(cluster, None)
    assert "the empty principal already has 2" in refused(
        lambda: subscribe(cluster, None), ErrorCode.RESOURCE_EXHAUSTED)
    assert "the master already keeps 4 frameworks" in refused(
        lambda: subscribe(cluster, "batch"), ErrorCode.RESOURCE_EXHAUSTED)
    # A framework that leaves frees its place.
    cluster.master.framework_disconnected(first, cluster.master.frameworks[first].stream_id)
    cluster.clock.advance(61)
    cluster.master.tick()
    assert first not in cluster.master.frameworks
    subscribe(cluster, "marathon")
