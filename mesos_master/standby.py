"""What agents told this master on their passive streams (ADR 0018): a pure cache.

    agent ── Standby{seq, snapshot} ──▶ StandbyAgents.hold()      (any master, leading or not)
    agent ── Resume{seq} ─────────────▶ StandbyAgents.take() ──▶ Master.reregister_agent()
    stream ends ──────────────────────▶ StandbyAgents.drop()

One entry per agent id: the last snapshot received (the agent's `Reregister`, decoded once on
arrival, with what its adoption reads of it: `DecodedReport`, so that the adoption at an
election decodes and encodes nothing), its number and the stream it came on. A `Resume` is
honoured only on that stream and for that number, so the core adopts exactly the state the
agent has just declared current.

`ResumptionWave` tells a new leader when the agents holding snapshots here are back (or have
stopped coming back): it holds its allocation passes until then (ADR 0018).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from mesos_master.errors import ErrorCode, MasterError
from mesos_master.records import Outbox
from mesos_master.tasks import ReadReport
from mesos_values.interning import Interner
from mesos_values.resources import Resources
from protos import agent_pb2


@dataclass(frozen=True, slots=True)
class DecodedReport:
    """What the adoption of an agent's `Reregister` reads of it, read ahead of the adoption."""

    total: Resources | None
    """The agent's resources (hashed already); None when they do not parse (the core refuses
    the agent)."""
    encoded_info: bytes
    """Its `AgentInfo`, encoded (as the master's record keeps it)."""
    read: ReadReport
    """Its tasks and frameworks, as `ClusterTasks.adopt_report` reads them."""

    @property
    def task_resources(self) -> tuple[Resources, ...]:
        """Each reported task's resources, in the report's order."""
        return tuple(task.resources for task in self.read.tasks)

    @classmethod
    def of(cls, report: agent_pb2.AgentMessage.Reregister,
           shared: Interner[Resources] | None = None) -> DecodedReport:
        """`shared`: hands out one instance of equal resources (the core interns them too,
        and finds one it holds already by identity)."""
        share = shared if shared is not None else _as_is
        try:
            total: Resources | None = share(Resources.from_proto(report.agent_info.resources))
        except ValueError:
            total = None
        else:
            hash(total)  # computed once, here: the core interns the agents' totals
        return cls(total, report.agent_info.SerializeToString(), ReadReport.of(report, share))


@dataclass(slots=True)
class HeldSnapshot:
    """An agent's last snapshot on one passive stream."""

    agent_id: str
    seq: int
    snapshot: agent_pb2.AgentMessage.Reregister
    decoded: DecodedReport
    outbox: Outbox[agent_pb2.MasterMessage]
    principal: str | None


class StandbyAgents:
    """The snapshots held for agents' passive streams, and how many were resumed."""

    def __init__(self) -> None:
        self._held: dict[str, HeldSnapshot] = {}
        self._shared: Interner[Resources] = Interner()  # agents and tasks are often alike
        self.resumed = 0
        """Agents re-registered from a held snapshot since the process started."""
        self.on_empty: Callable[[], None] = _nothing
        """Called when the last snapshot held is taken or dropped."""

    def __len__(self) -> int:
        return len(self._held)

    def hold(self, standby: agent_pb2.AgentMessage.Standby,
             outbox: Outbox[agent_pb2.MasterMessage], principal: str | None,
             *, stream_agent: str | None = None) -> HeldSnapshot:
        """Keep `standby`'s snapshot as the one of the agent on `outbox`'s stream (the newest
        stream of an agent wins); `stream_agent`: the agent the stream's first snapshot named.
        Raises MasterError when it names no agent id, or another one than `stream_agent`."""
        agent_id = standby.snapshot.agent_info.id.value
        if not agent_id:
            raise MasterError(ErrorCode.INVALID_ARGUMENT, "a standby snapshot without an agent id")
        if stream_agent is not None and agent_id != stream_agent:
            raise MasterError(
                ErrorCode.INVALID_ARGUMENT,
                f"a passive stream carries one agent's snapshots: {stream_agent}, not {agent_id}")
        decoded = DecodedReport.of(standby.snapshot, self._shared)
        held = self._held.get(agent_id)
        if held is not None and held.outbox is outbox:
            held.seq, held.snapshot, held.decoded = standby.seq, standby.snapshot, decoded
            return held
        held = HeldSnapshot(agent_id, standby.seq, standby.snapshot, decoded, outbox, principal)
        self._held[agent_id] = held
        return held

    def take(self, agent_id: str, outbox: Outbox[agent_pb2.MasterMessage],
             seq: int) -> HeldSnapshot:
        """The snapshot to re-register the agent with, no longer held. Raises MasterError
        (ABORTED) unless it came on `outbox`'s stream with number `seq`."""
        held = self._held.get(agent_id)
        if held is None or held.outbox is not outbox or held.seq != seq:
            have = held.seq if held is not None and held.outbox is outbox else None
            raise MasterError(
                ErrorCode.ABORTED,
                f"no snapshot {seq} of agent {agent_id} on this stream (held: {have}); "
                "re-register")
        self._forget(agent_id)
        self.resumed += 1
        return held

    def drop(self, agent_id: str, outbox: Outbox[agent_pb2.MasterMessage]) -> None:
        """The stream on `outbox` ended (or became active): forget its snapshot."""
        held = self._held.get(agent_id)
        if held is not None and held.outbox is outbox:
            self._forget(agent_id)

    def _forget(self, agent_id: str) -> None:
        del self._held[agent_id]
        if not self._held:
            self.on_empty()


class ResumptionWave:
    """The agents resuming with a new leader, from the snapshots it held when elected: over
    when none is held any more, when none was taken or dropped for `stall` seconds, or
    `longest` seconds after it began, whichever comes first."""

    def __init__(self, standbys: StandbyAgents, now: float, *, longest: float = 30.0,
                 stall: float = 2.0) -> None:
        self._standbys = standbys
        self._began = now
        self._longest = longest
        self._stall = stall
        self._held = len(standbys)
        self._moved_at = now

    def over(self, now: float) -> bool:
        """Whether the wave is over at clock time `now`."""
        held = len(self._standbys)
        if held == 0:
            return True
        if held != self._held:
            self._held, self._moved_at = held, now
        return now >= self.deadline()

    def deadline(self) -> float:
        """The clock time at which the wave is over unless an agent comes back before."""
        return min(self._began + self._longest, self._moved_at + self._stall)


def _nothing() -> None:
    pass


def _as_is(resources: Resources) -> Resources:
    return resources
