"""Operator maintenance of agents: a deactivated agent is not offered; a draining one also has
its tasks killed, and is DRAINED once none is left (then marked gone, if the operator asked).

Flow::

    operator ── DRAIN / DEACTIVATE / REACTIVATE_AGENT ──▶ Master ──▶ Maintenance
    Maintenance ── (de)activate the agent ──▶ Allocator
                ── rescind its offers ──────▶ OfferBook
                ── KillTask ────────────────▶ agent outbox
                ── deactivated, drain state ─▶ registry (through the Master's `store_agent`)
    Master: agent re-registered ──▶ kill_for_drain;  status update ──▶ check_drained
    Maintenance: drained with mark_gone ──▶ Master.mark_agent_gone

The maintenance state itself (`AgentRecord.deactivated`, `AgentRecord.drain`) is written only
here (and by the recovery from the registry).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from mesos_master.allocator import Allocator
from mesos_master.errors import ErrorCode, MasterError
from mesos_master.offers import OfferBook
from mesos_master.records import AgentRecord
from mesos_values.task_states import TERMINAL_STATES
from protos import agent_pb2, mesos_pb2, registry_pb2

log = structlog.get_logger("mesos_master")


def operator_agent(agents: Mapping[str, AgentRecord], agent_id: str) -> AgentRecord:
    """The agent an operator call names; NOT_FOUND when unknown."""
    agent = agents.get(agent_id)
    if agent is None:
        raise MasterError(ErrorCode.NOT_FOUND, f"unknown agent {agent_id!r}")
    return agent


class Maintenance:
    """Deactivation, draining and reactivation of agents."""

    def __init__(
        self,
        agents: Mapping[str, AgentRecord],
        allocator: Allocator,
        offers: OfferBook,
        *,
        store_agent: Callable[[AgentRecord], None],
        mark_gone: Callable[[str], None],
    ) -> None:
        """`agents` are the master's own; `store_agent` writes an agent's registry entry and
        `mark_gone` marks an agent gone (once drained, when the drain asks for it)."""
        self._agents = agents
        self._allocator = allocator
        self._offers = offers
        self._store_agent = store_agent
        self._mark_gone = mark_gone

    def drain(
        self, agent_id: str, *, max_grace_period: float | None = None, mark_gone: bool = False
    ) -> None:
        """Stop offering the agent and kill its tasks (with at most `max_grace_period` of
        grace); it is DRAINED once none is left, and then marked gone if `mark_gone`."""
        agent = operator_agent(self._agents, agent_id)
        if max_grace_period is not None and max_grace_period < 0:
            raise MasterError(ErrorCode.INVALID_ARGUMENT, "max_grace_period must not be negative")
        drain = registry_pb2.DrainInfo(state=registry_pb2.DrainInfo.DRAINING, mark_gone=mark_gone)
        if max_grace_period is not None:
            drain.max_grace_period = max_grace_period
            drain.has_max_grace_period = True
        agent.drain = drain
        self._deactivate(agent)
        log.info("draining agent", agent_id=agent_id, max_grace_period=max_grace_period,
                 mark_gone=mark_gone)
        self.kill_for_drain(agent)
        self.check_drained(agent)

    def deactivate(self, agent_id: str) -> None:
        """No more offers of this agent; its tasks keep running."""
        agent = operator_agent(self._agents, agent_id)
        self._deactivate(agent)
        log.info("agent deactivated", agent_id=agent_id)

    def reactivate(self, agent_id: str) -> None:
        """Offer a deactivated, draining or drained agent again."""
        agent = operator_agent(self._agents, agent_id)
        if not agent.deactivated:
            raise MasterError(ErrorCode.FAILED_PRECONDITION, f"agent {agent_id} is not deactivated")
        agent.deactivated = False
        agent.drain = None
        if agent.connected and agent.admitted:
            self._allocator.activate_agent(agent_id)
        self._store_agent(agent)
        log.info("agent reactivated", agent_id=agent_id)

    def kill_for_drain(self, agent: AgentRecord) -> None:
        """Ask a connected draining agent to kill its tasks, within the drain's grace period."""
        if agent.outbox is None or agent.drain is None:
            return
        for task in agent.tasks.values():
            if task.state in TERMINAL_STATES:
                continue
            kill = agent_pb2.MasterMessage.KillTask(
                framework_id=mesos_pb2.FrameworkID(value=task.framework_id),
                task_id=mesos_pb2.TaskID(value=task.task_id),
            )
            if agent.drain.has_max_grace_period:
                policy = task.info.kill_policy
                own = policy.grace_period.nanoseconds / 1e9 \
                    if policy.HasField("grace_period") else None
                grace = agent.drain.max_grace_period if own is None \
                    else min(own, agent.drain.max_grace_period)
                kill.kill_policy.grace_period.nanoseconds = int(grace * 1e9)
            agent.outbox.send(agent_pb2.MasterMessage(kill_task=kill))

    def check_drained(self, agent: AgentRecord) -> None:
        """Mark a draining agent DRAINED once none of its tasks is left running."""
        if not agent.draining or any(
            task.state not in TERMINAL_STATES for task in agent.tasks.values()
        ):
            return
        assert agent.drain is not None
        agent.drain.state = registry_pb2.DrainInfo.DRAINED
        log.info("agent drained", agent_id=agent.agent_id)
        if agent.drain.mark_gone:
            self._mark_gone(agent.agent_id)
        else:
            self._store_agent(agent)

    def _deactivate(self, agent: AgentRecord) -> None:
        agent.deactivated = True
        if agent.connected and agent.admitted:
            self._allocator.deactivate_agent(agent.agent_id)
        self._offers.rescind(agent.offers, notify=True)
        self._store_agent(agent)
