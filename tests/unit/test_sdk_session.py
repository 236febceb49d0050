"""The driver's pure bookkeeping (frameworks._session)."""

from __future__ import annotations

import pytest

from frameworks import _calls
from frameworks._session import Action, Session
from protos import mesos_pb2, scheduler_pb2

Call = scheduler_pb2.Call
FW = mesos_pb2.FrameworkID(value="fw1")


def launch_two() -> Call:
    tasks = [
        mesos_pb2.TaskInfo(task_id=mesos_pb2.TaskID(value=name),
                           agent_id=mesos_pb2.AgentID(value="a1"))
        for name in ("t1", "t2")
    ]
    return _calls.launch("o1", tasks)


def test_first_subscription_then_resubscriptions() -> None:
    session = Session()
    assert not session.subscribed and session.framework_id is None
    assert session.on_subscribed(FW, "s1") is True
    assert session.subscribed and session.stream_id == "s1"
    assert session.on_disconnected() is True
    assert session.on_disconnected() is False
    assert session.on_subscribed(FW, "s2") is False
    assert session.framework_id == FW


def test_subscribed_calls_are_sent_with_the_framework_id() -> None:
    session = Session()
    session.on_subscribed(FW, "s1")
    call = _calls.kill("t1")
    resolution = session.resolve(call, timestamp=1.0)
    assert resolution.action is Action.SEND
    assert resolution.call is not None and resolution.call.framework_id == FW
    assert not call.HasField("framework_id")  # the caller's message is left alone


@pytest.mark.parametrize(
    "call",
    [_calls.kill("t1"), _calls.reconcile([]), _calls.revive(), _calls.suppress(),
     _calls.message("e", "a", b""), _calls.shutdown("e", "a"), _calls.teardown()],
    ids=lambda call: Call.Type.Name(call.type),
)
def test_other_calls_wait_for_the_next_subscription(call: Call) -> None:
    assert Session().resolve(call, timestamp=1.0).action is Action.WAIT


def test_offer_calls_and_acks_are_dropped_when_disconnected() -> None:
    session = Session()
    session.on_subscribed(FW, "s1")
    session.on_disconnected()
    for call in (_calls.decline("o1"), _calls.acknowledge(
            mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value="t"), uuid=b"u"))):
        assert call is not None
        resolution = session.resolve(call, timestamp=1.0)
        assert (resolution.action, resolution.updates) == (Action.DROP, ())


def test_launches_dropped_while_disconnected_come_back_as_task_dropped() -> None:
    resolution = Session().resolve(launch_two(), timestamp=123.0)
    assert resolution.action is Action.DROP
    assert [(u.task_id.value, u.agent_id.value) for u in resolution.updates] == [
        ("t1", "a1"), ("t2", "a1")
    ]
    for update in resolution.updates:
        assert update.state == mesos_pb2.TASK_DROPPED
        assert update.reason == mesos_pb2.TaskStatus.REASON_MASTER_DISCONNECTED
        assert update.source == mesos_pb2.TaskStatus.SOURCE_MASTER
        assert update.timestamp == 123.0
        assert not update.uuid  # synthesized: never acknowledged
