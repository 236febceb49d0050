"""Operator controls on the master core: roles in offers, weights, quota, drain, deactivate,
reactivate and mark gone — and that each survives a master failover through the registry."""

from __future__ import annotations

import pytest

from mesos_master.errors import ErrorCode, MasterError
from mesos_values.resources import Reservation, Resources
from protos import mesos_pb2, registry_pb2
from tests.unit.test_master import Cluster, agent_status, task
from tests.unit.test_master_recovery import (
    failover,
    reregister,
    resubscribe,
    running_cluster,
    running_task,
)

R = Resources.parse
Capability = mesos_pb2.FrameworkInfo.Capability


def test_offers_and_tasks_carry_their_role() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent("cpus:2;mem:256")
    framework = cluster.subscribe(
        roles=["eng/backend", "ads"], capabilities=[Capability(type=Capability.MULTI_ROLE)]
    )
    [offer] = cluster.offers(framework)
    assert offer.role == "eng/backend"
    assert {r.allocation_info.role for r in offer.resources} == {"eng/backend"}
    cluster.launch(framework, [offer], task("t1", "cpus:1;mem:64"))
    [run] = [m.run_task for m in cluster.agent_outboxes[agent_id].take() if m.HasField("run_task")]
    assert {r.allocation_info.role for r in run.task.resources} == {"eng/backend"}
    assert framework.tasks["t1"].role == "eng/backend"
    assert cluster.master.allocator.consumed("eng") == R("cpus:1;mem:64")


def test_several_roles_need_the_multi_role_capability() -> None:
    cluster = Cluster()
    with pytest.raises(MasterError, match="MULTI_ROLE"):
        cluster.subscribe(roles=["a", "b"])


def test_suppress_and_revive_take_the_framework_s_own_roles_only() -> None:
    cluster = Cluster()
    cluster.add_agent()
    framework = cluster.subscribe(roles=["a"])
    with pytest.raises(MasterError, match="not subscribed to: b"):
        cluster.master.suppress(framework, ["b"])
    cluster.master.suppress(framework, ["a"])
    assert framework.suppressed_roles == {"a"}
    assert cluster.offers(framework) == []
    cluster.master.revive(framework)
    assert len(cluster.offers(framework)) == 1


def test_weights_are_validated_and_kept() -> None:
    cluster = Cluster()
    with pytest.raises(MasterError, match="positive"):
        cluster.master.update_weights({"a": 2.0, "b": 0.0})
    assert cluster.master.allocator.weight("a") == 1.0  # all or nothing
    cluster.master.update_weights({"a": 2.0})
    assert cluster.sink.state.weights == {"a": 2.0}


def test_quota_below_consumption_needs_force_and_survives_failover() -> None:
    cluster = Cluster()
    cluster.add_agent("cpus:4;mem:1024")
    framework = cluster.subscribe(roles=["analytics"])
    [offer] = cluster.offers(framework)
    cluster.launch(framework, [offer], task("t1", "cpus:3;mem:128"))
    with pytest.raises(MasterError) as refused:
        cluster.master.update_quota("analytics", R("cpus:2"))
    assert refused.value.code == ErrorCode.FAILED_PRECONDITION
    assert "cpus 3" in refused.value.message
    cluster.master.update_quota("analytics", R("cpus:2"), force=True)
    assert cluster.master.allocator.quota("analytics") == R("cpus:2")
    with pytest.raises(MasterError, match="'\\*' takes no quota"):
        cluster.master.update_quota("*", R("cpus:1"))
    with pytest.raises(MasterError, match="scalar"):
        cluster.master.update_quota("x", R("ports:[1-2]"))

    successor = failover(cluster)
    assert successor.master.allocator.quota("analytics") == R("cpus:2")
    cluster.master.update_quota("analytics", None)
    assert "analytics" not in cluster.sink.state.quotas


def test_quota_keeps_a_role_within_its_limit() -> None:
    cluster = Cluster()
    cluster.add_agent("cpus:4;mem:1024")
    cluster.master.update_quota("small", R("cpus:1"))
    framework = cluster.subscribe(roles=["small"])
    [offer] = cluster.offers(framework)
    assert Resources.from_proto(offer.resources).scalar("cpus") == 1


def test_drain_kills_tasks_with_capped_grace_and_ends_drained() -> None:
    cluster, agent_id, framework = running_cluster()
    other = cluster.subscribe("other")
    cluster.master.drain_agent(agent_id, max_grace_period=2.5)
    agent = cluster.master.agents[agent_id]
    assert agent.draining and agent.deactivated
    [kill] = [m.kill_task for m in cluster.agent_outboxes[agent_id].take()
              if m.HasField("kill_task")]
    assert kill.task_id.value == "t1"
    assert kill.kill_policy.grace_period.nanoseconds == 2_500_000_000
    assert cluster.offers(other) == []  # a draining agent is not offered
    assert cluster.sink.state.agents[agent_id].drain.state == registry_pb2.DrainInfo.DRAINING

    cluster.master.status_update(
        agent_id, framework.framework_id,
        agent_status(framework, "t1", mesos_pb2.TASK_KILLED, b"u2"),
    )
    assert agent.drain is not None and agent.drain.state == registry_pb2.DrainInfo.DRAINED
    assert cluster.sink.state.agents[agent_id].drain.state == registry_pb2.DrainInfo.DRAINED
    assert cluster.offers(other) == []  # drained stays deactivated
    cluster.master.reactivate_agent(agent_id)
    assert len(cluster.offers(framework)) == 1  # both hold nothing: the older one goes first
    assert not cluster.sink.state.agents[agent_id].deactivated


def test_drain_state_survives_failover_and_kills_on_reregistration() -> None:
    cluster, agent_id, framework = running_cluster()
    cluster.master.drain_agent(agent_id)
    successor = failover(cluster)
    agent = successor.master.agents[agent_id]
    assert agent.draining
    outbox = reregister(
        successor, agent_id, cluster.master.agents[agent_id].info,
        running_task(framework, agent_id, "t1"),
    )
    kills = [m.kill_task.task_id.value for m in outbox.take() if m.HasField("kill_task")]
    assert kills == ["t1"]
    back = resubscribe(successor, framework)
    assert successor.offers(back) == []


def test_drain_with_mark_gone_removes_the_agent_for_good() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    cluster.master.drain_agent(agent_id, mark_gone=True)  # no tasks: drained at once
    assert agent_id not in cluster.master.agents
    assert agent_id in cluster.sink.state.gone_agents
    assert agent_id not in cluster.sink.state.agents
    successor = failover(cluster)
    info = mesos_pb2.AgentInfo(hostname="h1", id=mesos_pb2.AgentID(value=agent_id),
                               resources=R("cpus:4;mem:4096").to_proto())
    with pytest.raises(MasterError, match="marked gone") as refused:
        reregister(successor, agent_id, info)
    assert refused.value.code == ErrorCode.FAILED_PRECONDITION


def test_mark_gone_reports_tasks_gone_to_partition_aware_frameworks() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    aware = cluster.subscribe("aware", capabilities=[Capability(type=Capability.PARTITION_AWARE)])
    [offer] = cluster.offers(aware)
    cluster.launch(aware, [offer], task("t1"))
    cluster.events(aware)
    cluster.master.mark_agent_gone(agent_id)
    [update] = cluster.updates(aware)
    assert update.state == mesos_pb2.TASK_GONE_BY_OPERATOR
    assert "marked gone" in update.message
    assert cluster.agent_outboxes[agent_id].closed
    with pytest.raises(MasterError) as unknown:
        cluster.master.deactivate_agent(agent_id)
    assert unknown.value.code == ErrorCode.NOT_FOUND


def test_deactivate_rescinds_offers_and_reactivate_needs_deactivation() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    framework = cluster.subscribe()
    [offer] = cluster.offers(framework)
    cluster.master.deactivate_agent(agent_id)
    events = cluster.events(framework)
    rescinds = [e.rescind.offer_id.value for e in events if e.HasField("rescind")]
    assert rescinds == [offer.id.value]
    assert cluster.offers(framework) == []
    cluster.master.reactivate_agent(agent_id)
    with pytest.raises(MasterError, match="not deactivated"):
        cluster.master.reactivate_agent(agent_id)
    assert len(cluster.offers(framework)) == 1


def reserve_op(resources: Resources) -> mesos_pb2.Offer.Operation:
    return mesos_pb2.Offer.Operation(
        type=mesos_pb2.Offer.Operation.RESERVE,
        reserve=mesos_pb2.Offer.Operation.Reserve(resources=resources.to_proto()),
    )


def unreserve_op(resources: Resources) -> mesos_pb2.Offer.Operation:
    return mesos_pb2.Offer.Operation(
        type=mesos_pb2.Offer.Operation.UNRESERVE,
        unreserve=mesos_pb2.Offer.Operation.Unreserve(resources=resources.to_proto()),
    )


def launch_op(*tasks: mesos_pb2.TaskInfo) -> mesos_pb2.Offer.Operation:
    return mesos_pb2.Offer.Operation(
        type=mesos_pb2.Offer.Operation.LAUNCH,
        launch=mesos_pb2.Offer.Operation.Launch(task_infos=tasks),
    )


def test_static_reservations_are_offered_to_their_role_only() -> None:
    cluster = Cluster()
    cluster.add_agent("cpus:1;mem:128;cpus(ads):2;mem(ads):256")
    plain = cluster.subscribe("plain")
    [offer] = cluster.offers(plain)
    assert Resources.from_proto(offer.resources) == R("cpus:1;mem:128")
    ads = cluster.subscribe("ads", roles=["ads"])
    [reserved] = cluster.offers(ads)
    assert Resources.from_proto(reserved.resources) == R("cpus(ads):2;mem(ads):256")


def test_reserve_then_launch_in_one_accept_and_keep_it_across_failover() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent("cpus:4;mem:1024")
    framework = cluster.subscribe(roles=["eng"], principal="ops")
    [offer] = cluster.offers(framework)
    dynamic = Reservation("eng", dynamic=True, principal="ops")
    wanted = R("cpus:2;mem:512").pushed(dynamic)
    reserved_task = task("t1", "cpus:1;mem:128")
    reserved_task.ClearField("resources")
    reserved_task.resources.extend(R("cpus:1;mem:128").pushed(dynamic).to_proto())
    cluster.master.accept(framework, [offer.id.value],
                          [reserve_op(wanted), launch_op(reserved_task)], mesos_pb2.Filters())
    assert framework.tasks["t1"].resources == R("cpus:1;mem:128").pushed(dynamic)
    agent = cluster.master.agents[agent_id]
    assert agent.total == R("cpus:2;mem:512") + wanted
    stored = Resources.from_proto(cluster.sink.state.agents[agent_id].reserved)
    assert stored == wanted

    successor = failover(cluster)
    assert successor.master.agents[agent_id].total == R("cpus:2;mem:512") + wanted
    reregister(successor, agent_id, agent.info)
    # a framework of another role is offered the unreserved part only
    other = successor.subscribe("other", roles=["web"], id=mesos_pb2.FrameworkID(value="web"))
    [offer] = successor.offers(other)
    assert Resources.from_proto(offer.resources) == R("cpus:2;mem:512")


def test_invalid_reservations_refuse_the_accept_and_return_the_offers() -> None:
    cluster = Cluster()
    cluster.add_agent("cpus:4;mem:1024")
    framework = cluster.subscribe(roles=["eng"], principal="ops")
    [offer] = cluster.offers(framework)
    cases = [
        (R("cpus:1").pushed(Reservation("web", dynamic=True)), "can only be reserved for it"),
        (R("cpus:1").pushed(Reservation("eng", dynamic=True, principal="eve")), "principal"),
        (R("cpus:9").pushed(Reservation("eng", dynamic=True)), "not in the offers"),
        (R("cpus(eng):1"), "DYNAMIC"),
    ]
    for resources, message in cases:
        with pytest.raises(MasterError, match=message):
            cluster.master.accept(framework, [offer.id.value], [reserve_op(resources)],
                                  mesos_pb2.Filters())
        [offer] = cluster.offers(framework)  # offered again, unchanged
        assert Resources.from_proto(offer.resources) == R("cpus:4;mem:1024")
    with pytest.raises(MasterError, match="dynamically reserved resources only"):
        cluster.master.accept(framework, [offer.id.value], [unreserve_op(R("cpus:1"))],
                              mesos_pb2.Filters())


def test_unreserve_in_an_accept_and_by_the_operator() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent("cpus:4;mem:1024")
    dynamic = Reservation("eng", dynamic=True, principal="ops")
    cluster.master.reserve_resources(agent_id, R("cpus:2").pushed(dynamic).to_proto())
    assert cluster.master.agents[agent_id].total == \
        R("cpus:2;mem:1024") + R("cpus:2").pushed(dynamic)
    framework = cluster.subscribe(roles=["eng"])
    [offer] = cluster.offers(framework)
    cluster.master.accept(framework, [offer.id.value],
                          [unreserve_op(R("cpus:1").pushed(dynamic))], mesos_pb2.Filters())
    assert cluster.master.agents[agent_id].total == \
        R("cpus:3;mem:1024") + R("cpus:1").pushed(dynamic)
    with pytest.raises(MasterError, match="not free"):
        cluster.master.unreserve_resources(agent_id, R("cpus:5").pushed(dynamic).to_proto())
    cluster.master.unreserve_resources(agent_id, R("cpus:1").pushed(dynamic).to_proto())
    assert cluster.master.agents[agent_id].total == R("cpus:4;mem:1024")
    assert not cluster.sink.state.agents[agent_id].reserved


def test_refinement_to_a_subrole() -> None:
    cluster = Cluster()
    cluster.add_agent("cpus(eng):2;mem(eng):256")
    framework = cluster.subscribe(roles=["eng/backend"])
    [offer] = cluster.offers(framework)
    refined = R("cpus(eng):1").pushed(Reservation("eng/backend", dynamic=True))
    cluster.master.accept(framework, [offer.id.value], [reserve_op(refined)],
                          mesos_pb2.Filters(refuse_seconds=0))
    [offer] = cluster.offers(framework)
    assert Resources.from_proto(offer.resources) == R("cpus(eng):1;mem(eng):256") + refined
    sideways = R("cpus(eng):1").pushed(Reservation("web", dynamic=True))
    with pytest.raises(MasterError):
        cluster.master.accept(framework, [offer.id.value], [reserve_op(sideways)],
                              mesos_pb2.Filters())


def test_offer_filters_are_validated_and_applied() -> None:
    cluster = Cluster()
    cluster.add_agent("cpus:1;mem:128")
    info = mesos_pb2.FrameworkInfo(name="picky", user="u", roles=["r"])
    info.offer_filters["r"].min_allocatable_resources.quantities.add().quantities["cpus"] = 2
    framework = cluster.subscribe("picky", roles=["r"], offer_filters=info.offer_filters)
    assert cluster.offers(framework) == []
    bad = mesos_pb2.FrameworkInfo(name="bad", user="u")
    bad.offer_filters["elsewhere"].min_allocatable_resources.quantities.add()
    with pytest.raises(MasterError, match="not subscribed"):
        cluster.subscribe("bad", offer_filters=bad.offer_filters)
    negative = mesos_pb2.FrameworkInfo(name="neg", user="u")
    negative.offer_filters["*"].min_allocatable_resources.quantities.add().quantities["cpus"] = -1
    with pytest.raises(MasterError, match="negative"):
        cluster.subscribe("neg", offer_filters=negative.offer_filters)
