"""The master's state machine: a pure core with no I/O and an injected clock (ADR 0009).

Flow::

    AgentLink ── register / updates / heartbeats ──▶ Master ── MasterMessage ──▶ agent outbox
    Scheduler ── subscribe / calls ────────────────▶ Master ── Event ─────────▶ scheduler outbox
    The Master keeps agents and frameworks and hands the rest to the pieces owning it:
        Allocator (DRF) ── offer callback ──▶ OfferBook     outstanding offers (offers.py)
        Master, shell ──────────────────────▶ ClusterTasks      tasks and executors (tasks.py)
        Master (operator calls) ────────────▶ Maintenance   deactivation, drain (maintenance.py)
        Master (operator calls) ────────────▶ QuotaAndWeights  weights and quotas (quota.py)
    The server's timers call tick() (heartbeats, offer and failover timeouts) and allocate().
    Master ── Registry writes ──▶ RegistrySink (durable in order; `then` callbacks after)

A new leader's core starts from the recovered registry: admitted agents wait up to
`agent_reregister_timeout` to re-register (until then reconciliation of their tasks is not
answered), frameworks are disconnected until they re-subscribe and their failover timeouts keep
running from when their schedulers disconnected (from the recovery for those connected at the
failover), and removed frameworks stay refused. An agent's admission is only acted on (offers,
REGISTERED) once its registry entry is durable.

Every method runs on the one asyncio task that owns the master; outboxes only queue messages.
Bad input from a scheduler raises `MasterError`; problems with single launches are answered
with task status updates, never exceptions.
"""

from __future__ import annotations

import functools
import itertools
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

import structlog

from mesos_coordination.store import Sink
from mesos_master.allocator import SORTERS, Allocator
from mesos_master.config import MasterConfig
from mesos_master.errors import ErrorCode, MasterError
from mesos_master.maintenance import Maintenance, operator_agent
from mesos_master.observers import Observers
from mesos_master.offers import OfferBook, refuse_seconds
from mesos_master.quota import QuotaAndWeights
from mesos_master.records import (
    AgentRecord,
    FrameworkRecord,
    MasterCounters,
    Outbox,
)
from mesos_master.registry import ImmediateSink, Registry, RegistryState, with_reservations
from mesos_master.standby import DecodedReport
from mesos_master.tasks import (
    ClusterTasks,
    ack_message,
    update_event,
)
from mesos_master.validation import (
    DEFAULT_ROLE,
    plan_conversions,
    reserve_conversion,
    unreserve_conversion,
    validate_framework_info,
)
from mesos_runtime.clock import Clock
from mesos_values.interning import Interner
from mesos_values.resources import Resources
from mesos_values.task_states import TERMINAL_STATES
from protos import agent_pb2, mesos_pb2, scheduler_pb2

log = structlog.get_logger("mesos_master")

Capability = mesos_pb2.FrameworkInfo.Capability
Reason = mesos_pb2.TaskStatus.Reason
EventType = scheduler_pb2.Event.Type


class Master:
    """Agents and frameworks, with the allocator, offer book, cluster tasks, maintenance and
    quota handling that act on them."""

    def __init__(
        self,
        info: mesos_pb2.MasterInfo,
        clock: Clock,
        config: MasterConfig,
        *,
        registry: Sink | None = None,
        recovered: RegistryState | None = None,
        wall_clock: Callable[[], float],
    ) -> None:
        """`registry` receives the registry writes (default: kept in memory only);
        `recovered` is the registry as the previous leader left it; `wall_clock` gives the
        time of day that the registry and made-up statuses record."""
        recovered = recovered or RegistryState()
        self.info = info
        self.clock = clock
        self.config = config
        self.wall_clock = wall_clock
        self.elected_at = wall_clock()
        self.counters = MasterCounters()
        self.agents: dict[str, AgentRecord] = {}
        self.frameworks: dict[str, FrameworkRecord] = {}
        self.completed_frameworks: deque[FrameworkRecord] = deque(
            maxlen=config.max_completed_frameworks)
        """Removed frameworks with their tasks, oldest first (`/state`; this term only)."""
        self.observers = Observers()  # the operator API's event stream listens here
        self.registry = Registry(
            registry or ImmediateSink(), recovered.removed_frameworks, recovered.gone_agents
        )
        self.allocator = Allocator(
            clock=clock,
            offer_callback=lambda framework_id, grants: self.offers.send(framework_id, grants),
            role_sorter=SORTERS[config.role_sorter],
            framework_sorter=SORTERS[config.framework_sorter],
            min_allocatable=config.min_allocatable_resources,
            fair_sharing_excluded=config.fair_sharing_excluded_resource_names,
        )
        self.offers = OfferBook(info.id, clock, self.allocator, self.agents, self.frameworks)
        self.tasks = ClusterTasks(
            self.agents, self.frameworks, self.allocator, self.registry, self.counters,
            wall_clock, acls=config.acls, observer=self.observers,
        )
        self.maintenance = Maintenance(
            self.agents, self.allocator, self.offers,
            store_agent=self._store_agent, mark_gone=self.mark_agent_gone,
        )
        self.quota_and_weights = QuotaAndWeights(self.allocator, self.registry)
        self.quota_and_weights.recover(
            {**recovered.weights, **(config.role_weights or {})}, recovered.quotas
        )
        self._agent_ids = itertools.count()
        self._shared_totals: Interner[Resources] = Interner()  # agents are often alike
        self._framework_ids = itertools.count()
        self._recover(recovered)

    def _recover(self, state: RegistryState) -> None:
        now = self.clock.now()
        self.agents.update(state.agent_records(now))
        self.frameworks.update(state.framework_records(now, self.wall_clock()))
        for framework in self.frameworks.values():
            self._keep_completed_tasks(framework)
            self._add_to_allocator(framework.info, active=False)
        if state.agents or state.frameworks:
            log.info(
                "recovered the registry",
                agents=len(state.agents),
                frameworks=len(state.frameworks),
                agent_reregister_timeout=self.config.agent_reregister_timeout,
            )

    # ------------------------------------------------------------------ agents

    def register_agent(
        self, info: mesos_pb2.AgentInfo, outbox: Outbox[agent_pb2.MasterMessage],
        principal: str | None = None,
    ) -> str:
        """Admit a new agent registering as `principal` (None: anonymous); returns its id.
        Raises MasterError for an unusable AgentInfo or a principal the ACLs refuse."""
        self._authorize("register_agents", principal, None)
        total = self._agent_resources(info)
        agent_id = f"{self.info.id}-S{next(self._agent_ids)}"
        agent_info = mesos_pb2.AgentInfo()
        agent_info.CopyFrom(info)
        agent_info.id.value = agent_id
        now = self.clock.now()
        agent = AgentRecord(agent_id, agent_info.SerializeToString(), total, outbox, now, now,
                            admitted=False, principal=principal or "")
        self.agents[agent_id] = agent

        def admitted() -> None:
            agent.admitted = True
            self.counters.agent_registrations += 1
            if agent.outbox is not outbox:
                return  # it went away meanwhile; it will re-register with its id
            self.allocator.add_agent(agent_id, total)
            self.observers.agent_added(agent)
            outbox.send(
                agent_pb2.MasterMessage(
                    registered=agent_pb2.MasterMessage.Registered(
                        agent_id=agent_info.id,
                        master_info=self.info,
                        heartbeat_interval_seconds=self.config.agent_heartbeat_interval,
                    )
                )
            )
            log.info(
                "agent registered", agent_id=agent_id, hostname=info.hostname, resources=str(total)
            )

        self.registry.store_agent(agent_info, principal=agent.principal, then=admitted)
        return agent_id

    def reregister_agent(
        self, message: agent_pb2.AgentMessage.Reregister, outbox: Outbox[agent_pb2.MasterMessage],
        principal: str | None = None, *, decoded: DecodedReport | None = None,
    ) -> str:
        """Re-admit an agent with its tasks; agents unknown to a restarted master are admitted.
        A known agent id is bound to the principal and the hostname it registered with: a
        re-registration under another principal or from another host is refused (ADR 0013).
        `decoded`: what the adoption reads of the message, read already (a standby's
        snapshot: ADR 0018)."""
        agent_id = message.agent_info.id.value
        if not agent_id:
            raise MasterError(ErrorCode.INVALID_ARGUMENT, "re-registration without an agent id")
        if self.registry.is_gone(agent_id):
            raise MasterError(
                ErrorCode.FAILED_PRECONDITION,
                f"agent {agent_id} was marked gone by an operator; register as a new agent",
            )
        info = message.agent_info
        # compared with the record's: decodes none
        encoded = decoded.encoded_info if decoded is not None else info.SerializeToString()
        known = self.agents.get(agent_id)
        if known is not None:
            if known.principal != (principal or ""):
                raise MasterError(
                    ErrorCode.PERMISSION_DENIED,
                    f"agent {agent_id} registered as principal {known.principal or '(none)'!r};"
                    f" re-registration as {principal or '(none)'!r} refused")
            if encoded != known.encoded_info and known.info.hostname != info.hostname:
                raise MasterError(
                    ErrorCode.PERMISSION_DENIED,
                    f"agent {agent_id} is on host {known.info.hostname!r}; re-registration from "
                    f"host {info.hostname!r} refused")
        else:
            self._authorize("register_agents", principal, None)
        total = self._agent_resources(
            message.agent_info, decoded.total if decoded is not None else None)
        now = self.clock.now()
        agent = known
        if agent is None:
            agent = AgentRecord(agent_id, encoded, total, None, now, now,
                                principal=principal or "")
            self.agents[agent_id] = agent
            self.registry.store_agent(info, principal=agent.principal)
        else:
            self._detach_agent(agent)
            same_info = encoded == agent.encoded_info or agent.info == info
            changed = not agent.reachable or not same_info
            if agent.total.reserved:  # (else it has no dynamic reservations to keep)
                total = with_reservations(
                    total, agent.total.dynamically_reserved().to_proto(), agent_id
                )
            if encoded != agent.encoded_info:
                agent.encoded_info = encoded
            agent.total = total
            if changed:
                self._store_agent(agent)
        agent.outbox = outbox
        agent.last_seen = now
        agent.reachable = True
        agent.admitted = True
        agent.awaiting_reregistration = False

        reported = self.tasks.adopt_report(
            agent, message, self._recover_framework,
            decoded.read if decoded is not None else None)
        self.observers.agent_added(agent)  # after its tasks: observers learn the whole agent

        self.allocator.add_agent(agent_id, total, used=self._allocator_used(agent))
        if agent.deactivated:
            self.allocator.deactivate_agent(agent_id)
        if agent.draining:
            self.maintenance.kill_for_drain(agent)
        reregistered = agent_pb2.MasterMessage()
        reregistered.CopyFrom(self._reregistered)
        reregistered.reregistered.agent_id.value = agent_id
        outbox.send(reregistered)
        self.counters.agent_reregistrations += 1
        log.info("agent re-registered", agent_id=agent_id, tasks=reported)
        return agent_id

    @functools.cached_property
    def _reregistered(self) -> agent_pb2.MasterMessage:
        """`Reregistered` without the agent's id: each answer copies it (a fifth of the cost
        of building one)."""
        return agent_pb2.MasterMessage(
            reregistered=agent_pb2.MasterMessage.Reregistered(
                master_info=self.info,
                heartbeat_interval_seconds=self.config.agent_heartbeat_interval,
            )
        )

    def agent_heartbeat(self, agent_id: str) -> None:
        """Record that the agent is alive."""
        agent = self.agents.get(agent_id)
        if agent is not None:
            agent.last_seen = self.clock.now()

    def agent_disconnected(self, agent_id: str, outbox: Outbox[agent_pb2.MasterMessage]) -> None:
        """The agent's stream ended; its tasks stay. Only missed heartbeats make it unreachable."""
        agent = self.agents.get(agent_id)
        if agent is None or agent.outbox is not outbox:
            return
        self._detach_agent(agent)
        log.info("agent disconnected", agent_id=agent_id)

    def status_update(self, agent_id: str, framework_id: str, status: mesos_pb2.TaskStatus) -> None:
        """Record a task status update from an agent and forward it to the framework."""
        agent = self.agents.get(agent_id)
        if agent is None:
            self.counters.invalid_status_updates += 1
            return
        agent.last_seen = self.clock.now()
        task_id = status.task_id.value
        task = agent.tasks.get((framework_id, task_id))
        if task is None:
            self.counters.invalid_status_updates += 1
        else:
            self.counters.valid_status_updates += 1
            self.tasks.update_state(task, status)
            if agent.draining:
                self.maintenance.check_drained(agent)
        framework = self.frameworks.get(framework_id)
        terminal = status.state in TERMINAL_STATES
        (log.info if terminal else log.debug)(
            "status update",
            framework_id=framework_id,
            agent_id=agent_id,
            task_id=task_id,
            state=mesos_pb2.TaskState.Name(status.state),
            message=status.message,
        )
        if framework is None:
            # Nobody will acknowledge it: do so on the framework's behalf so the agent stops.
            if status.uuid and agent.outbox is not None:
                agent.outbox.send(ack_message(framework_id, task_id, status.uuid))
            if task is not None and task.state in TERMINAL_STATES:
                self.tasks.forget(task)
            return
        if framework.outbox is not None:
            framework.outbox.send(update_event(status))

    # -------------------------------------------------------------- frameworks

    def subscribe(
        self, info: mesos_pb2.FrameworkInfo, outbox: Outbox[scheduler_pb2.Event],
        principal: str | None = None,
    ) -> tuple[str, str]:
        """Subscribe (or fail over) a framework; returns (framework id, stream id).

        `principal` is the authenticated one (None: the call was anonymous, and the
        FrameworkInfo's `principal` is taken as a claim, as Mesos does). A framework id is
        bound to the principal that registered it: a failover under another is refused, and
        the ACLs' `register_frameworks` must allow each of its roles (ADR 0013).
        """
        problem = validate_framework_info(info)
        if problem:
            raise MasterError(ErrorCode.INVALID_ARGUMENT, problem)
        if principal is not None and info.principal and info.principal != principal:
            raise MasterError(
                ErrorCode.PERMISSION_DENIED,
                f"FrameworkInfo.principal {info.principal!r} is not the authenticated principal "
                f"{principal!r}")
        effective = principal if principal is not None else (info.principal or None)
        framework_id = info.id.value
        if framework_id and self.registry.is_removed(framework_id):
            raise MasterError(
                ErrorCode.FAILED_PRECONDITION,
                f"framework {framework_id} has been removed; subscribe without an id",
            )
        stored = mesos_pb2.FrameworkInfo()
        stored.CopyFrom(info)
        if effective is not None:
            stored.principal = effective
        if not stored.roles:
            stored.roles.append(DEFAULT_ROLE)
        framework = self.frameworks.get(framework_id) if framework_id else None
        if framework is not None and framework.info.principal != stored.principal:
            raise MasterError(
                ErrorCode.PERMISSION_DENIED,
                f"framework {framework_id} belongs to principal "
                f"{framework.info.principal or '(none)'!r}; a scheduler of "
                f"{stored.principal or '(none)'!r} cannot take it over")
        for role in stored.roles:
            self._authorize("register_frameworks", effective, role)
        if framework is None:
            self._check_framework_caps(stored.principal)
        stream_id = str(uuid.uuid4())
        now = self.clock.now()
        if framework is not None:
            if framework.outbox is not None:
                framework.outbox.send(_error_event("framework failed over to a new scheduler"))
                framework.outbox.close()
            self.offers.rescind(framework.offers, notify=False)
            framework.info = stored
            framework.stream_id = stream_id
            framework.outbox = outbox
            framework.disconnected_at = None
            self.allocator.update_framework(
                framework_id, stored.roles, gpu_aware=_gpu_aware(stored),
                min_offers=_offer_filters(stored),
            )
            self.allocator.activate_framework(framework_id)
            self.registry.store_framework(stored)
            self.observers.framework_updated(framework)
            log.info("framework failed over", framework_id=framework_id)
        else:
            framework_id = framework_id or f"{self.info.id}-{next(self._framework_ids):04d}"
            stored.id.value = framework_id
            framework = FrameworkRecord(framework_id, stored, stream_id, outbox, now)
            self._keep_completed_tasks(framework)
            self.frameworks[framework_id] = framework
            self._add_to_allocator(stored, active=True)
            self.registry.store_framework(stored)
            self.observers.framework_added(framework)
            log.info("framework subscribed", framework_id=framework_id, name=stored.name)
        outbox.send(
            scheduler_pb2.Event(
                type=EventType.SUBSCRIBED,
                subscribed=scheduler_pb2.Event.Subscribed(
                    framework_id=stored.id,
                    heartbeat_interval_seconds=self.config.scheduler_heartbeat_interval,
                    master_info=self.info,
                ),
            )
        )
        return framework_id, stream_id

    def _check_framework_caps(self, principal: str) -> None:
        """Refuse a new framework beyond `max_frameworks_per_principal` (frameworks of the
        same principal, "" for none, that the master keeps: connected or within their
        failover timeout) or beyond `max_frameworks` in all."""
        most = self.config.max_frameworks_per_principal
        if most is not None:
            count = sum(1 for f in self.frameworks.values() if f.info.principal == principal)
            if count >= most:
                who = f"principal {principal!r}" if principal else "the empty principal"
                raise MasterError(
                    ErrorCode.RESOURCE_EXHAUSTED,
                    f"{who} already has {count} frameworks, the most "
                    "--max_frameworks_per_principal allows; tear one down or fail over an "
                    "existing one (subscribe with its id)")
        if self.config.max_frameworks is not None \
                and len(self.frameworks) >= self.config.max_frameworks:
            raise MasterError(
                ErrorCode.RESOURCE_EXHAUSTED,
                f"the master already keeps {len(self.frameworks)} frameworks, the most "
                "--max_frameworks allows; failovers of existing frameworks are still accepted")

    def framework_disconnected(self, framework_id: str, stream_id: str) -> None:
        """The scheduler's stream ended: stop offering and start its failover timeout."""
        framework = self.frameworks.get(framework_id)
        if framework is None or framework.stream_id != stream_id or framework.outbox is None:
            return
        framework.outbox = None
        framework.disconnected_at = self.clock.now()
        self.allocator.deactivate_framework(framework_id)
        self.offers.rescind(framework.offers, notify=False)
        log.info(
            "framework disconnected",
            framework_id=framework_id,
            failover_timeout=framework.info.failover_timeout,
        )
        if framework.info.failover_timeout <= 0:
            self._remove_framework(framework, "framework disconnected with no failover timeout")
        else:
            self.registry.store_framework(framework.info, disconnected_since=self.wall_clock())
            self.observers.framework_updated(framework)

    def check_stream(self, framework_id: str, stream_id: str,
                     principal: str | None = None) -> FrameworkRecord:
        """The framework a call is for, if `stream_id` is its current subscription and an
        authenticated `principal` is the framework's own."""
        framework = self.frameworks.get(framework_id)
        if framework is None:
            raise MasterError(ErrorCode.NOT_FOUND, f"framework {framework_id!r} is not subscribed")
        if principal is not None and principal != framework.info.principal:
            raise MasterError(
                ErrorCode.PERMISSION_DENIED,
                f"framework {framework_id} belongs to principal "
                f"{framework.info.principal or '(none)'!r}, not {principal!r}")
        if framework.stream_id != stream_id or framework.outbox is None:
            raise MasterError(
                ErrorCode.PERMISSION_DENIED,
                "the mesos-stream-id does not match the framework's current subscription",
            )
        return framework

    def accept(
        self,
        framework: FrameworkRecord,
        offer_ids: Sequence[str],
        operations: Sequence[mesos_pb2.Offer.Operation],
        filters: mesos_pb2.Filters,
    ) -> None:
        """Apply operations to offers, in order: RESERVE and UNRESERVE change the offered
        resources (an invalid one refuses the whole call, and the offers go back); invalid
        launches become TASK_ERROR/DROPPED/LOST updates."""
        if not offer_ids:
            raise MasterError(ErrorCode.INVALID_ARGUMENT, "ACCEPT names no offers")
        for operation in operations:
            if operation.type not in _OPERATIONS:
                raise MasterError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"unsupported offer operation type {operation.type}; "
                    "LAUNCH, RESERVE and UNRESERVE are supported",
                )
        offers, problem = self.offers.take(framework, offer_ids)
        offered = Resources.EMPTY
        for offer in offers:
            offered = offered + offer.resources
        tasks = [task for op in operations for task in op.launch.task_infos]
        if problem is not None or not offers:
            problem = problem or "no valid offers"
            for offer in offers:
                self.allocator.recover_resources(
                    framework.framework_id, offer.role, offer.agent_id, offer.resources
                )
            lost = mesos_pb2.TASK_DROPPED if framework.partition_aware else mesos_pb2.TASK_LOST
            self.counters.terminal_tasks[lost] += len(tasks)
            for task in tasks:
                self.tasks.send_master_update(
                    framework,
                    task.task_id.value,
                    lost,
                    Reason.REASON_INVALID_OFFERS,
                    problem,
                    agent_id=task.agent_id.value,
                )
            return
        agent = self.agents[offers[0].agent_id]
        role = offers[0].role
        try:
            conversions = plan_conversions(
                operations, offered, role=role, principal=framework.info.principal
            )
        except MasterError:
            for offer in offers:
                self.allocator.recover_resources(
                    framework.framework_id, role, offer.agent_id, offer.resources
                )
            raise
        remaining = offered
        launched_ids: set[str] = set()
        for operation in operations:
            if operation.type == mesos_pb2.Offer.Operation.LAUNCH:
                for task_info in operation.launch.task_infos:
                    remaining = self.tasks.launch(
                        framework, agent, role, task_info, remaining, launched_ids
                    )
                continue
            old, new = conversions.pop(0)
            remaining = remaining - old + new
            self.allocator.convert_allocation(
                framework.framework_id, role, agent.agent_id, old, new
            )
            agent.total = agent.total - old + new
            self._store_agent(agent)
            log.info("reservations changed", framework_id=framework.framework_id,
                     agent_id=agent.agent_id, before=str(old), after=str(new))
        if launched_ids:  # one line per ACCEPT: a line per task cost a third of a launch
            log.info("launching tasks", framework_id=framework.framework_id,
                     agent_id=agent.agent_id, count=len(launched_ids),
                     task_ids=[t.task_id.value for t in tasks if t.task_id.value in launched_ids])
        if not remaining.is_empty():
            self.allocator.recover_resources(
                framework.framework_id, role, agent.agent_id, remaining, refuse_seconds(filters)
            )

    def decline(
        self, framework: FrameworkRecord, offer_ids: Sequence[str], filters: mesos_pb2.Filters
    ) -> None:
        """Return offers, filtering them from this framework for `refuse_seconds`."""
        self.offers.decline(framework, offer_ids, refuse_seconds(filters))

    def revive(self, framework: FrameworkRecord, roles: Sequence[str] = ()) -> None:
        """Clear the framework's filters and un-suppress it in `roles` (default: all)."""
        chosen = self._own_roles(framework, roles, "REVIVE")
        framework.suppressed_roles.difference_update(chosen)
        self.allocator.revive(framework.framework_id, chosen)

    def suppress(self, framework: FrameworkRecord, roles: Sequence[str] = ()) -> None:
        """Stop sending offers to the framework in `roles` (default: all) until it revives."""
        chosen = self._own_roles(framework, roles, "SUPPRESS")
        framework.suppressed_roles.update(chosen)
        self.allocator.suppress(framework.framework_id, chosen)

    @staticmethod
    def _own_roles(framework: FrameworkRecord, roles: Sequence[str], call: str) -> list[str]:
        if not roles:
            return list(framework.info.roles)
        foreign = sorted(set(roles) - set(framework.info.roles))
        if foreign:
            raise MasterError(
                ErrorCode.INVALID_ARGUMENT,
                f"{call} names roles the framework is not subscribed to: {', '.join(foreign)}",
            )
        return list(dict.fromkeys(roles))

    def teardown(self, framework: FrameworkRecord) -> None:
        """Remove the framework at its own request; its tasks are killed."""
        outbox = framework.outbox
        self._remove_framework(framework, "framework tore itself down")
        if outbox is not None:
            outbox.close()

    # ---------------------------------------------------------------- operator

    def operator_teardown(self, framework_id: str) -> None:
        """An operator's TEARDOWN: the framework is removed and its tasks killed, as if it had
        torn itself down (its scheduler gets an ERROR event). NOT_FOUND for an unknown id."""
        framework = self.frameworks.get(framework_id)
        if framework is None:
            raise MasterError(ErrorCode.NOT_FOUND, f"framework {framework_id!r} is not known")
        outbox = framework.outbox
        if outbox is not None:
            outbox.send(_error_event("framework torn down by an operator"))
        self._remove_framework(framework, "torn down by an operator")
        if outbox is not None:
            outbox.close()

    def update_weights(self, weights: Mapping[str, float]) -> None:
        """See `QuotaAndWeights.update_weights`."""
        self.quota_and_weights.update_weights(weights)

    def update_quota(self, role: str, limits: Resources | None, *, force: bool = False) -> None:
        """See `QuotaAndWeights.update_quota`."""
        self.quota_and_weights.update_quota(role, limits, force=force)

    def drain_agent(
        self, agent_id: str, *, max_grace_period: float | None = None, mark_gone: bool = False
    ) -> None:
        """See `Maintenance.drain`."""
        self.maintenance.drain(agent_id, max_grace_period=max_grace_period, mark_gone=mark_gone)

    def deactivate_agent(self, agent_id: str) -> None:
        """See `Maintenance.deactivate`."""
        self.maintenance.deactivate(agent_id)

    def reactivate_agent(self, agent_id: str) -> None:
        """See `Maintenance.reactivate`."""
        self.maintenance.reactivate(agent_id)

    def mark_agent_gone(self, agent_id: str) -> None:
        """The agent is gone for good: its tasks are reported gone (lost to frameworks that
        are not partition-aware) and it may never come back with this id."""
        agent = operator_agent(self.agents, agent_id)
        self.tasks.agent_gone(agent)
        self._detach_agent(agent)
        del self.agents[agent_id]
        self.registry.mark_agent_gone(agent_id, self.wall_clock())
        self.observers.agent_removed(agent)
        log.warning("agent marked gone", agent_id=agent_id, hostname=agent.info.hostname)

    def reserve_resources(self, agent_id: str, resources: Iterable[mesos_pb2.Resource]) -> None:
        """An operator's dynamic reservation of free resources of an agent (outstanding offers
        of the agent are rescinded first)."""
        self._convert_free(agent_id, *reserve_conversion(
            resources, "RESERVE_RESOURCES", role=None, principal=None))

    def unreserve_resources(self, agent_id: str, resources: Iterable[mesos_pb2.Resource]) -> None:
        """An operator's removal of dynamic reservations from free resources of an agent."""
        self._convert_free(agent_id, *unreserve_conversion(resources, "UNRESERVE_RESOURCES"))

    def _convert_free(self, agent_id: str, old: Resources, new: Resources) -> None:
        agent = operator_agent(self.agents, agent_id)
        if not (agent.connected and agent.admitted and agent.reachable):
            raise MasterError(
                ErrorCode.FAILED_PRECONDITION, f"agent {agent_id} is not connected"
            )
        self.offers.rescind(agent.offers, notify=True)
        try:
            self.allocator.convert_available(agent_id, old, new)
        except ValueError as exc:
            raise MasterError(
                ErrorCode.FAILED_PRECONDITION,
                f"{old} is not free on agent {agent_id} (in use or absent): {exc}",
            ) from exc
        agent.total = agent.total - old + new
        self._store_agent(agent)
        log.info("operator changed reservations", agent_id=agent_id, before=str(old),
                 after=str(new))

    def _store_agent(self, agent: AgentRecord, *, unreachable_since: float | None = None) -> None:
        self.registry.store_agent(
            agent.info,
            unreachable_since=unreachable_since,
            deactivated=agent.deactivated,
            drain=agent.drain,
            reserved=agent.total.dynamically_reserved(),
            principal=agent.principal,
        )

    # ------------------------------------------------------------------ timers

    def tick(self) -> None:
        """Expire heartbeats, offers and failover timeouts; the server calls this periodically."""
        now = self.clock.now()
        for agent in list(self.agents.values()):
            if agent.awaiting_reregistration:
                if now - agent.registered_at >= self.config.agent_reregister_timeout:
                    log.warning(
                        "agent did not re-register after master failover",
                        agent_id=agent.agent_id,
                        agent_reregister_timeout=self.config.agent_reregister_timeout,
                    )
                    agent.awaiting_reregistration = False
                    self._mark_unreachable(agent)
            elif agent.reachable and now - agent.last_seen > self.config.agent_unreachable_after:
                self._mark_unreachable(agent)
        if self.config.offer_timeout is not None:
            self.offers.rescind_expired(self.config.offer_timeout)
        for framework in list(self.frameworks.values()):
            if (
                framework.disconnected_at is not None
                and now - framework.disconnected_at >= framework.info.failover_timeout
            ):
                self._remove_framework(framework, "failover timeout expired")

    def send_heartbeats(self) -> None:
        """Send HEARTBEAT to every connected scheduler."""
        event = scheduler_pb2.Event(type=EventType.HEARTBEAT)
        for framework in self.frameworks.values():
            if framework.outbox is not None:
                framework.outbox.send(event)

    def close_streams(self) -> None:
        """End every open agent, scheduler and operator event stream (the term is over)."""
        self.observers.closed()
        for agent in self.agents.values():
            if agent.outbox is not None:
                agent.outbox.close()
        for framework in self.frameworks.values():
            if framework.outbox is not None:
                framework.outbox.close()

    def allocate(self) -> int:
        """Run one allocation pass; returns the number of offers made."""
        return self.allocator.allocate()

    # ---------------------------------------------------------------- internals

    def _authorize(self, action: str, principal: str | None, target: str | None) -> None:
        """PERMISSION_DENIED, naming the ACL, unless the ACLs allow it (ADR 0013)."""
        decision = self.config.acls.authorize(action, principal, target)
        if not decision:
            log.info("refused by the ACLs", action=action, principal=principal, target=target)
            raise MasterError(ErrorCode.PERMISSION_DENIED, decision.reason)

    def _agent_resources(self, info: mesos_pb2.AgentInfo,
                         decoded: Resources | None = None) -> Resources:
        if not info.hostname:
            raise MasterError(ErrorCode.INVALID_ARGUMENT, "agent info has no hostname")
        if decoded is not None:
            return self._shared_totals(decoded)
        try:
            return self._shared_totals(Resources.from_proto(info.resources))
        except ValueError as exc:
            raise MasterError(
                ErrorCode.INVALID_ARGUMENT, f"invalid agent resources: {exc}"
            ) from exc

    def _add_to_allocator(self, info: mesos_pb2.FrameworkInfo, *, active: bool) -> None:
        self.allocator.add_framework(
            info.id.value, info.roles, active=active, gpu_aware=_gpu_aware(info),
            min_offers=_offer_filters(info),
        )

    def _detach_agent(self, agent: AgentRecord) -> None:
        """Close the agent's stream, rescind its offers and take it out of allocation.

        An agent takes part in allocation exactly while it is connected.
        """
        if agent.outbox is None:
            return
        agent.outbox.close()
        agent.outbox = None
        if not agent.admitted:
            return  # never took part in allocation
        self.offers.rescind(agent.offers, notify=True)
        self.allocator.remove_agent(agent.agent_id)

    def _mark_unreachable(self, agent: AgentRecord) -> None:
        self._detach_agent(agent)
        agent.reachable = False
        self.counters.agents_marked_unreachable += 1
        self._store_agent(agent, unreachable_since=self.wall_clock())
        log.warning("agent unreachable", agent_id=agent.agent_id, hostname=agent.info.hostname)
        self.tasks.agent_unreachable(agent)
        self.observers.agent_removed(agent)
        lost = scheduler_pb2.Event(
            type=EventType.FAILURE,
            failure=scheduler_pb2.Event.Failure(agent_id=mesos_pb2.AgentID(value=agent.agent_id)),
        )
        for framework in self.frameworks.values():
            if framework.outbox is not None:
                framework.outbox.send(lost)

    def _recover_framework(
        self, framework_id: str, info: mesos_pb2.FrameworkInfo | None
    ) -> FrameworkRecord:
        """A framework known only from an agent's report: disconnected until it re-subscribes."""
        stored = mesos_pb2.FrameworkInfo()
        if info is not None:
            stored.CopyFrom(info)
        stored.id.value = framework_id
        if not stored.roles:
            stored.roles.append(DEFAULT_ROLE)
        now = self.clock.now()
        framework = FrameworkRecord(framework_id, stored, "", None, now, disconnected_at=now)
        self._keep_completed_tasks(framework)
        self.frameworks[framework_id] = framework
        self._add_to_allocator(stored, active=False)
        self.registry.store_framework(stored, disconnected_since=self.wall_clock())
        self.observers.framework_added(framework)
        log.info("framework recovered from agent", framework_id=framework_id)
        return framework

    def _allocator_used(self, agent: AgentRecord) -> dict[str, dict[str, Resources]]:
        return {
            framework_id: by_role
            for framework_id, by_role in agent.used_by_framework().items()
            if framework_id in self.frameworks
        }

    def _keep_completed_tasks(self, framework: FrameworkRecord) -> None:
        """Bound the framework's completed tasks by `--max_completed_tasks_per_framework`."""
        framework.completed_tasks = deque(
            framework.completed_tasks, maxlen=self.config.max_completed_tasks_per_framework)

    def _remove_framework(self, framework: FrameworkRecord, why: str) -> None:
        framework_id = framework.framework_id
        self.offers.discard(framework.offers)
        framework.offers.clear()
        self.allocator.remove_framework(framework_id)
        self.tasks.remove_framework(framework)
        del self.frameworks[framework_id]
        if framework.disconnected_at is None:
            framework.disconnected_at = self.clock.now()
        self.completed_frameworks.append(framework)
        self.registry.remove_framework(framework_id, self.wall_clock())
        self.observers.framework_removed(framework)
        log.info("framework removed", framework_id=framework_id, why=why)


_OPERATIONS = frozenset({
    mesos_pb2.Offer.Operation.LAUNCH,
    mesos_pb2.Offer.Operation.RESERVE,
    mesos_pb2.Offer.Operation.UNRESERVE,
})


def _offer_filters(info: mesos_pb2.FrameworkInfo) -> dict[str, list[Resources]]:
    """The framework's per-role minimum offers (validated on subscription)."""
    return {
        role: [
            Resources.from_scalars(dict(alternative.quantities))
            for alternative in filters.min_allocatable_resources.quantities
        ]
        for role, filters in info.offer_filters.items()
    }


def _gpu_aware(info: mesos_pb2.FrameworkInfo) -> bool:
    return any(c.type == Capability.GPU_RESOURCES for c in info.capabilities)


def _error_event(message: str) -> scheduler_pb2.Event:
    return scheduler_pb2.Event(
        type=EventType.ERROR, error=scheduler_pb2.Event.Error(message=message)
    )

