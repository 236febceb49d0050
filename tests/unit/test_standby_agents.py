"""StandbyAgents: the snapshots a master holds for agents' passive streams (ADR 0018)."""

from __future__ import annotations

import pytest

from mesos_master.errors import ErrorCode, MasterError
from mesos_master.standby import DecodedReport, ResumptionWave, StandbyAgents
from mesos_values.resources import Resources
from protos import agent_pb2, mesos_pb2


class Outbox:
    def __init__(self) -> None:
        self.sent: list[agent_pb2.MasterMessage] = []

    def send(self, message: agent_pb2.MasterMessage) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass


def standby(agent_id: str, seq: int, task_ids: tuple[str, ...] = ()) -> (
        agent_pb2.AgentMessage.Standby):
    snapshot = agent_pb2.AgentMessage.Reregister(
        agent_info=mesos_pb2.AgentInfo(hostname="h", id=mesos_pb2.AgentID(value=agent_id)),
        tasks=[mesos_pb2.Task(task_id=mesos_pb2.TaskID(value=t)) for t in task_ids])
    return agent_pb2.AgentMessage.Standby(seq=seq, snapshot=snapshot)


def test_resume_takes_the_last_snapshot_of_the_stream_once() -> None:
    held, stream = StandbyAgents(), Outbox()
    held.hold(standby("a1", 1, ("t1",)), stream, "p")
    held.hold(standby("a1", 2, ("t1", "t2")), stream, "p")
    assert len(held) == 1
    snapshot = held.take("a1", stream, 2).snapshot
    assert [t.task_id.value for t in snapshot.tasks] == ["t1", "t2"]
    assert (len(held), held.resumed) == (0, 1)
    with pytest.raises(MasterError) as again:
        held.take("a1", stream, 2)
    assert again.value.code is ErrorCode.ABORTED


@pytest.mark.parametrize(("seq", "other_stream"), [(1, False), (3, False), (2, True)],
                         ids=["older number", "newer number", "another stream"])
def test_resume_that_does_not_match_is_refused(seq: int, other_stream: bool) -> None:
    held, stream = StandbyAgents(), Outbox()
    held.hold(standby("a1", 1), stream, None)
    held.hold(standby("a1", 2), stream, None)
    with pytest.raises(MasterError) as refused:
        held.take("a1", Outbox() if other_stream else stream, seq)
    assert refused.value.code is ErrorCode.ABORTED
    assert (len(held), held.resumed) == (1, 0)  # still held for the right resume
    held.take("a1", stream, 2)


def test_newest_stream_wins_and_an_old_stream_ending_keeps_it() -> None:
    held, old, new = StandbyAgents(), Outbox(), Outbox()
    held.hold(standby("a1", 5), old, None)
    held.hold(standby("a1", 1), new, None)
    held.drop("a1", old)  # the old stream ends after the new one came
    assert len(held) == 1
    assert held.take("a1", new, 1).snapshot.agent_info.id.value == "a1"
    held.hold(standby("a2", 1), old, None)
    held.drop("a2", old)
    assert len(held) == 0


def test_a_snapshot_without_agent_id_is_refused() -> None:
    with pytest.raises(MasterError) as refused:
        StandbyAgents().hold(standby("", 1), Outbox(), None)
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT


def test_a_stream_carries_the_snapshots_of_the_agent_it_first_named() -> None:
    held, stream = StandbyAgents(), Outbox()
    held.hold(standby("a1", 1), stream, None)
    with pytest.raises(MasterError) as refused:
        held.hold(standby("a2", 2), stream, None, stream_agent="a1")
    assert refused.value.code is ErrorCode.INVALID_ARGUMENT
    assert len(held) == 1  # a2 is not held, so nothing outlives the stream's drop of a1
    held.hold(standby("a1", 2), stream, None, stream_agent="a1")
    assert held.take("a1", stream, 2).snapshot.agent_info.id.value == "a1"


def test_a_held_snapshot_carries_its_resources_decoded() -> None:
    held, stream = StandbyAgents(), Outbox()
    message = standby("a1", 1, ("t1",))
    message.snapshot.agent_info.resources.extend(Resources.parse("cpus:2;mem:64").to_proto())
    message.snapshot.tasks[0].resources.extend(Resources.parse("cpus:0.5").to_proto())
    held.hold(message, stream, None)
    decoded = held.take("a1", stream, 1).decoded
    assert decoded.total == Resources.parse("cpus:2;mem:64")
    assert decoded.task_resources == (Resources.parse("cpus:0.5"),)


def test_resources_that_do_not_parse_are_left_to_the_core() -> None:
    report = standby("a1", 1, ("t1",)).snapshot
    bad = report.agent_info.resources.add(name="cpus", type=mesos_pb2.Value.SCALAR)
    bad.scalar.value = -1
    task_bad = report.tasks[0].resources.add(name="mem", type=mesos_pb2.Value.SCALAR)
    task_bad.scalar.value = -5
    decoded = DecodedReport.of(report)
    assert decoded.total is None
    assert decoded.task_resources == (Resources.EMPTY,)


def test_emptying_the_cache_is_reported_once_the_last_snapshot_goes() -> None:
    """A new leader hands its frozen heap back to the collector then (server `_unfreeze`)."""
    held, first, second = StandbyAgents(), Outbox(), Outbox()
    emptied: list[None] = []
    held.on_empty = lambda: emptied.append(None)
    held.hold(standby("a1", 1), first, None)
    held.hold(standby("a2", 1), second, None)
    held.take("a1", first, 1)
    held.drop("a2", first)  # not the stream a2's snapshot came on: kept
    assert (len(held), emptied) == (1, [])
    held.drop("a2", second)
    assert (len(held), emptied) == (0, [None])


def test_the_resumption_wave_is_over_when_no_snapshot_is_held() -> None:
    held, stream = StandbyAgents(), Outbox()
    held.hold(standby("a1", 1), stream, None)
    held.hold(standby("a2", 1), stream, None)
    wave = ResumptionWave(held, 100.0, longest=5.0, stall=1.0)
    assert not wave.over(100.5)
    held.take("a1", stream, 1)
    assert not wave.over(101.2)  # one came back at 101.2: not stalled
    held.drop("a2", stream)
    assert wave.over(101.3)


def test_the_resumption_wave_is_over_when_it_stalls_or_lasts_too_long() -> None:
    held, stream = StandbyAgents(), Outbox()
    for number in range(6):
        held.hold(standby(f"a{number}", 1), stream, None)
    stalled = ResumptionWave(held, 100.0, longest=5.0, stall=1.0)
    assert not stalled.over(100.9)
    assert stalled.over(101.0)  # none came back for a second
    long = ResumptionWave(held, 200.0, longest=5.0, stall=1.0)
    for step in range(5):
        held.take(f"a{step}", stream, 1)
        assert not long.over(200.9 + step * 0.9)
    assert not long.over(204.95)
    assert long.over(205.0)  # still coming back, one by one, but for too long


def test_equal_resources_of_held_snapshots_are_one_instance() -> None:
    """The core interns agents' and tasks' resources too: it then finds them by identity."""
    held, stream = StandbyAgents(), Outbox()
    for agent_id in ("a1", "a2"):
        message = standby(agent_id, 1, ("t1",))
        message.snapshot.agent_info.resources.extend(Resources.parse("cpus:2").to_proto())
        message.snapshot.tasks[0].resources.extend(Resources.parse("cpus:0.5").to_proto())
        held.hold(message, stream if agent_id == "a1" else Outbox(), None)
    first = held.take("a1", stream, 1).decoded
    [second] = [h.decoded for h in held._held.values()]
    assert first.total is second.total and first.total == Resources.parse("cpus:2")
    assert first.read.tasks[0].resources is second.read.tasks[0].resources
