"""The master's compact records (encoded TaskInfo, statuses and AgentInfo) and the value
interner."""

from __future__ import annotations

from mesos_master.records import EARLIER_STATES_KEPT, AgentRecord, TaskRecord
from mesos_values.interning import Interner
from mesos_values.resources import Resources
from protos import mesos_pb2


def record(**fields: object) -> TaskRecord:
    info = mesos_pb2.TaskInfo(
        name="web", task_id=mesos_pb2.TaskID(value="t1"),
        resources=Resources.parse("cpus:1;mem:64").to_proto(), **fields,  # type: ignore[arg-type]
    )
    return TaskRecord(info, "fw", "agent", Resources.parse("cpus:1;mem:64"), "*")


def status(state: mesos_pb2.TaskState.ValueType, timestamp: float) -> mesos_pb2.TaskStatus:
    return mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value="t1"), state=state,
                                timestamp=timestamp, message=f"at {timestamp}")


def test_the_task_info_is_kept_whole_and_handed_out_as_a_copy() -> None:
    task = record(executor=mesos_pb2.ExecutorInfo(executor_id=mesos_pb2.ExecutorID(value="e")))
    assert (task.task_id, task.executor_id) == ("t1", "e")
    task.info.name = "changed"  # a copy: the record does not change
    assert task.info.name == "web"
    assert task.info.agent_id.value == "agent"  # the record's, though the TaskInfo had none
    assert record().executor_id == ""


def test_latest_status_is_the_last_recorded_and_earlier_states_keep_each_change_of_state() -> None:
    task = record()
    assert task.latest_status is None and task.earlier_states == []
    task.record_status(status(mesos_pb2.TASK_STARTING, 1.0))
    task.record_status(status(mesos_pb2.TASK_RUNNING, 2.0))
    task.record_status(status(mesos_pb2.TASK_RUNNING, 3.0))  # a health update: no new state
    assert task.latest_status == status(mesos_pb2.TASK_RUNNING, 3.0)
    assert task.earlier_states == [(mesos_pb2.TASK_STARTING, 1.0)]
    proto = task.to_proto()
    assert [(s.state, s.timestamp) for s in proto.statuses] == [
        (mesos_pb2.TASK_STARTING, 1.0), (mesos_pb2.TASK_RUNNING, 3.0)]
    assert proto.statuses[-1].message == "at 3.0"


def test_only_the_newest_earlier_states_are_kept() -> None:
    task = record()
    states = [mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING]
    for index in range(EARLIER_STATES_KEPT + 5):
        task.record_status(status(states[index % 2], float(index)))
    kept = task.earlier_states
    assert len(kept) == EARLIER_STATES_KEPT
    assert kept[-1] == (states[(EARLIER_STATES_KEPT + 3) % 2], float(EARLIER_STATES_KEPT + 3))


def test_acknowledgements_are_matched_by_uuid_and_forgotten() -> None:
    task = record()
    assert task.acknowledged(b"u1") is None
    task.expect_acknowledgement(b"u1", mesos_pb2.TASK_STARTING)
    task.expect_acknowledgement(b"u2", mesos_pb2.TASK_RUNNING)
    assert task.acknowledged(b"u2") == mesos_pb2.TASK_RUNNING
    assert task.acknowledged(b"u2") is None
    assert task.acknowledged(b"u1") == mesos_pb2.TASK_STARTING
    assert task.unacknowledged is None


def test_the_interner_shares_equal_values_up_to_its_limit() -> None:
    shared: Interner[Resources] = Interner(limit=1)
    first = Resources.parse("cpus:1")
    assert shared(Resources.parse("cpus:1")) is shared(first) is shared(Resources.parse("cpus:1"))
    other = Resources.parse("cpus:2")
    assert shared(other) is other  # over the limit: kept as given
    assert shared(Resources.parse("cpus:2")) is not other


def test_an_agent_record_hands_out_copies_of_its_info_and_follows_a_replaced_one() -> None:
    info = mesos_pb2.AgentInfo(hostname="h1", id=mesos_pb2.AgentID(value="a1"))
    agent = AgentRecord("a1", info.SerializeToString(), Resources.EMPTY, None, 0.0, 0.0)
    agent.info.hostname = "changed"  # a copy: the record does not change
    assert agent.info == info
    first = mesos_pb2.Offer.FromString(agent.offer_template())
    assert agent.offer_template() is agent.offer_template()  # encoded once
    agent.info = mesos_pb2.AgentInfo(hostname="h2", id=mesos_pb2.AgentID(value="a1"))
    assert (first.hostname, mesos_pb2.Offer.FromString(agent.offer_template()).hostname) == (
        "h1", "h2")
