"""Building scheduler calls (frameworks._calls) and id coercion (frameworks._ids)."""

from __future__ import annotations

import getpass

import pytest

from frameworks import _calls, _ids
from protos import mesos_pb2, scheduler_pb2

Call = scheduler_pb2.Call


def test_ids_accept_strings_and_messages() -> None:
    assert _ids.task_id("t1") == mesos_pb2.TaskID(value="t1")
    message = mesos_pb2.AgentID(value="a1")
    assert _ids.agent_id(message) is message
    with pytest.raises(ValueError, match="OfferID must not be empty"):
        _ids.offer_id("")
    with pytest.raises(TypeError, match="expected ExecutorID or str, got int"):
        _ids.executor_id(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="expected TaskID or str, got AgentID"):
        _ids.task_id(message)  # type: ignore[arg-type]


def test_framework_info_from_dict_defaults_user() -> None:
    info = _calls.framework_info({"name": "f", "failoverTimeout": 60, "roles": ["web"]})
    assert (info.name, info.failover_timeout, list(info.roles)) == ("f", 60.0, ["web"])
    assert info.user == getpass.getuser()
    original = mesos_pb2.FrameworkInfo(name="g", user="bob")
    copied = _calls.framework_info(original)
    assert copied == original and copied is not original
    with pytest.raises(ValueError, match="invalid framework_info"):
        _calls.framework_info({"nmae": "typo"})


def test_launch_builds_one_accept_with_a_launch_operation() -> None:
    task = mesos_pb2.TaskInfo(task_id=mesos_pb2.TaskID(value="t1"))
    call = _calls.launch("o1", [task], filters_=30)
    assert call.type == Call.ACCEPT
    assert [o.value for o in call.accept.offer_ids] == ["o1"]
    (operation,) = call.accept.operations
    assert operation.type == mesos_pb2.Offer.Operation.LAUNCH
    assert list(operation.launch.task_infos) == [task]
    assert call.accept.filters.refuse_seconds == 30.0


def test_launch_without_tasks_declines_all_named_offers() -> None:
    call = _calls.launch([mesos_pb2.OfferID(value="o1"), "o2"], [])
    assert [o.value for o in call.accept.offer_ids] == ["o1", "o2"]
    assert not call.accept.operations
    assert not call.accept.HasField("filters")


def test_decline_with_filters_message_or_seconds() -> None:
    assert _calls.decline("o1").decline.offer_ids[0].value == "o1"
    filters = mesos_pb2.Filters(refuse_seconds=5)
    assert _calls.decline(["o1"], filters).decline.filters == filters
    assert _calls.decline("o1", 0).decline.filters.HasField("refuse_seconds")
    with pytest.raises(ValueError, match="must not be negative"):
        _calls.decline("o1", -1)
    with pytest.raises(TypeError):
        _calls.decline("o1", True)


def test_revive_and_suppress_roles() -> None:
    assert list(_calls.revive().revive.roles) == []
    assert list(_calls.revive("web").revive.roles) == ["web"]
    assert list(_calls.suppress(["a", "b"]).suppress.roles) == ["a", "b"]


def test_kill_with_optional_agent_and_grace() -> None:
    call = _calls.kill("t1")
    assert call.type == Call.KILL and call.kill.task_id.value == "t1"
    assert not call.kill.HasField("agent_id") and not call.kill.HasField("kill_policy")
    call = _calls.kill("t1", "a1", 1.5)
    assert call.kill.agent_id.value == "a1"
    assert call.kill.kill_policy.grace_period.nanoseconds == 1_500_000_000


def test_acknowledge_only_updates_with_a_uuid() -> None:
    status = mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value="t1"), agent_id=mesos_pb2.AgentID(value="a1"), uuid=b"u"
    )
    call = _calls.acknowledge(status)
    assert call is not None
    assert (call.acknowledge.task_id.value, call.acknowledge.agent_id.value,
            call.acknowledge.uuid) == ("t1", "a1", b"u")
    reconciliation = mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value="t1"),
        reason=mesos_pb2.TaskStatus.REASON_RECONCILIATION,
    )
    assert _calls.acknowledge(reconciliation) is None


def test_reconcile_accepts_statuses_ids_and_pairs() -> None:
    call = _calls.reconcile([
        mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value="t1"),
                             agent_id=mesos_pb2.AgentID(value="a1")),
        "t2",
        ("t3", "a3"),
    ])
    assert [(t.task_id.value, t.agent_id.value) for t in call.reconcile.tasks] == [
        ("t1", "a1"), ("t2", ""), ("t3", "a3")
    ]
    assert not _calls.reconcile([]).reconcile.tasks


def test_message_and_shutdown() -> None:
    call = _calls.message("e1", "a1", b"hello")
    assert (call.type, call.message.executor_id.value, call.message.data) == (
        Call.MESSAGE, "e1", b"hello"
    )
    with pytest.raises(TypeError, match="must be bytes"):
        _calls.message("e1", "a1", "text")  # type: ignore[arg-type]
    assert _calls.shutdown("e1", "a1").shutdown.executor_id.value == "e1"


def test_subscribe_and_teardown() -> None:
    info = mesos_pb2.FrameworkInfo(name="f", id=mesos_pb2.FrameworkID(value="fw1"))
    call = _calls.subscribe(info)
    assert call.type == Call.SUBSCRIBE and call.subscribe.framework_info == info
    assert _calls.teardown().type == Call.TEARDOWN
