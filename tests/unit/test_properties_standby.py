"""The standby cache against a model, over any sequence of what passive streams can bring
(ADR 0018): snapshots of any agents on any streams, resumptions with right and wrong numbers
or streams, streams ending. A resumption is honoured exactly when the model says the stream
holds that agent's snapshot with that number, and then hands over that very snapshot, once."""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from mesos_master.errors import ErrorCode, MasterError
from mesos_master.standby import StandbyAgents
from protos import agent_pb2, mesos_pb2
from tests.unit.test_standby_agents import Outbox, standby

AGENTS = st.sampled_from(["a1", "a2", "a3"])
STREAMS = st.integers(0, 3)
SEQS = st.integers(0, 4)


class StandbyCacheMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.cache = StandbyAgents()
        self.streams = [Outbox() for _ in range(4)]
        self.first_agent: dict[int, str] = {}  # what each stream's first snapshot named
        self.model: dict[str, tuple[int, int, str]] = {}  # agent -> (stream, seq, marker)
        self.resumed = 0
        self.emptied = 0
        self.expected_emptied = 0
        self.cache.on_empty = self._emptied
        self.marker = 0

    def _emptied(self) -> None:
        self.emptied += 1

    @rule(agent=AGENTS, stream=STREAMS, seq=SEQS)
    def snapshot(self, agent: str, stream: int, seq: int) -> None:
        self.marker += 1
        message = standby(agent, seq, (f"task-{self.marker}",))
        expected_agent = self.first_agent.get(stream)
        try:
            self.cache.hold(message, self.streams[stream], None, stream_agent=expected_agent)
        except MasterError as refused:
            assert refused.code is ErrorCode.INVALID_ARGUMENT
            assert expected_agent is not None and expected_agent != agent
            return
        assert expected_agent in (None, agent)
        self.first_agent.setdefault(stream, agent)
        self.model[agent] = (stream, seq, f"task-{self.marker}")

    @rule()
    def snapshot_without_agent(self) -> None:
        empty = agent_pb2.AgentMessage.Standby(
            seq=1, snapshot=agent_pb2.AgentMessage.Reregister(agent_info=mesos_pb2.AgentInfo()))
        try:
            self.cache.hold(empty, self.streams[0], None)
        except MasterError as refused:
            assert refused.code is ErrorCode.INVALID_ARGUMENT
        else:
            raise AssertionError("a snapshot without an agent id was held")

    @rule(agent=AGENTS, stream=STREAMS, seq=SEQS)
    def resume(self, agent: str, stream: int, seq: int) -> None:
        held = self.model.get(agent)
        try:
            taken = self.cache.take(agent, self.streams[stream], seq)
        except MasterError as refused:
            assert refused.code is ErrorCode.ABORTED
            assert held is None or held[:2] != (stream, seq)
            return
        assert held is not None and held[:2] == (stream, seq)
        assert [t.task_id.value for t in taken.snapshot.tasks] == [held[2]]
        assert taken.decoded.total is not None
        self._forget(agent)
        self.resumed += 1

    @rule(agent=AGENTS, stream=STREAMS)
    def stream_ends(self, agent: str, stream: int) -> None:
        self.cache.drop(agent, self.streams[stream])
        held = self.model.get(agent)
        if held is not None and held[0] == stream:
            self._forget(agent)

    def _forget(self, agent: str) -> None:
        del self.model[agent]
        if not self.model:
            self.expected_emptied += 1

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert len(self.cache) == len(self.model)
        assert self.cache.resumed == self.resumed
        assert self.emptied == self.expected_emptied  # reported each time the last one goes


TestStandbyCache = StandbyCacheMachine.TestCase
