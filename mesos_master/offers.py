"""The offer book: the master's outstanding offers, from the allocator's grant to their end.

Flow::

    Allocator ── grants ──▶ OfferBook.send ── OFFERS ──────────────────────▶ scheduler outbox
    ACCEPT ───▶ OfferBook.take ──▶ Master (launches, reservations)
    DECLINE ──▶ OfferBook.decline ── resources, with a filter ──▶ Allocator
    offer timeout, agent or framework gone, maintenance
          ──▶ OfferBook.rescind ── resources ──▶ Allocator
                                 └─ RESCIND (if asked) ──────────────────▶ scheduler outbox

The book is the only writer of the offers and of their per-agent and per-framework indexes
(`AgentRecord.offers`, `FrameworkRecord.offers`); it reads the master's agents and frameworks.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Mapping, Sequence

import structlog

from mesos_master.allocator import Allocator, Grant
from mesos_master.records import AgentRecord, FrameworkRecord, OfferRecord
from mesos_master.validation import is_duration
from mesos_runtime.clock import Clock
from mesos_values.resources import Resources
from protos import mesos_pb2, scheduler_pb2

log = structlog.get_logger("mesos_master")

DEFAULT_REFUSE_SECONDS = 5.0
# Offers per OFFERS event. One allocation may hand a framework an offer for each of 10,000
# agents: about 2.4 MB in one event, close to gRPC's default 4 MB limit on a received message.
# 500 offers (about 120 KB of plain offers) keep every event far below any limit and let the
# scheduler start on the first offers while later events are still on the wire.
MAX_OFFERS_PER_EVENT = 500
# Distinct offered resources whose encoding is kept (see `OfferBook._encoded_resources`).
_MAX_ENCODED_RESOURCES = 4096

EventType = scheduler_pb2.Event.Type


def refuse_seconds(filters: mesos_pb2.Filters) -> float:
    """How long declined resources stay filtered from the framework: as Mesos does, the
    default when the value given is not a duration (negative, NaN, infinite, too long)."""
    if filters.HasField("refuse_seconds") and is_duration(filters.refuse_seconds):
        return filters.refuse_seconds
    return DEFAULT_REFUSE_SECONDS


class OfferBook:
    """Outstanding offers: made from the allocator's grants, taken by ACCEPT, returned to the
    allocator when declined or rescinded."""

    def __init__(
        self,
        master_id: str,
        clock: Clock,
        allocator: Allocator,
        agents: Mapping[str, AgentRecord],
        frameworks: Mapping[str, FrameworkRecord],
    ) -> None:
        """`agents` and `frameworks` are the master's own (read, never changed, here)."""
        self._clock = clock
        self._allocator = allocator
        self._agents = agents
        self._frameworks = frameworks
        self._offers: dict[str, OfferRecord] = {}
        self._id_prefix = f"{master_id}-O"
        self._ids = itertools.count()
        self._encoded: dict[Resources, bytes] = {}

    @property
    def outstanding(self) -> Mapping[str, OfferRecord]:
        """Every outstanding offer by id."""
        return self._offers

    def send(self, framework_id: str, grants: Sequence[Grant]) -> None:
        """Record an offer per grant and send them to the framework, at most
        `MAX_OFFERS_PER_EVENT` per OFFERS event (the allocator's offer callback)."""
        framework = self._frameworks[framework_id]
        events: list[scheduler_pb2.Event] = []
        now = self._clock.now()
        # Offered resources name their role only when the framework has several (`Offer.role`
        # always does); launched tasks' resources always do (`ClusterTasks.launch`).
        multi_role = len(framework.info.roles) > 1
        for index, (agent_id, role, resources) in enumerate(grants):
            if index % MAX_OFFERS_PER_EVENT == 0:
                events.append(scheduler_pb2.Event(type=EventType.OFFERS))
            event = events[-1]
            agent = self._agents[agent_id]
            offer_id = f"{self._id_prefix}{next(self._ids)}"
            record = OfferRecord(offer_id, framework_id, agent_id, resources, now, role)
            self._offers[offer_id] = record
            framework.offers.add(offer_id)
            agent.offers.add(offer_id)
            offer = event.offers.offers.add()
            offer.MergeFromString(agent.offer_template())
            offer.MergeFromString(self._encoded_resources(resources))
            offer.id.value = offer_id
            offer.framework_id.value = framework_id
            offer.role = role
            if multi_role:
                for resource in offer.resources:
                    resource.allocation_info.role = role
            for executor_framework, executor_id in agent.executors:
                if executor_framework == framework_id:
                    offer.executor_ids.add(value=executor_id)
        if framework.outbox is None:
            self.rescind(framework.offers, notify=False)
            return
        for event in events:
            framework.outbox.send(event)

    def take(
        self, framework: FrameworkRecord, offer_ids: Sequence[str]
    ) -> tuple[list[OfferRecord], str | None]:
        """Remove the named offers for an ACCEPT; return the valid ones and the first problem
        found. The caller owns the taken offers' resources (launched, or recovered)."""
        problem: str | None = None
        offers: list[OfferRecord] = []
        if len(set(offer_ids)) != len(offer_ids):
            problem = "the same offer is named more than once"
        for offer_id in dict.fromkeys(offer_ids):
            offer = self._offers.get(offer_id)
            if offer is None:
                problem = problem or f"offer {offer_id} is no longer valid"
            elif offer.framework_id != framework.framework_id:
                problem = problem or f"offer {offer_id} belongs to another framework"
            else:
                self._remove(offer)
                offers.append(offer)
        if len({offer.agent_id for offer in offers}) > 1:
            problem = problem or "the offers come from several agents"
        if len({offer.role for offer in offers}) > 1:
            problem = problem or "the offers are allocated to several roles"
        return offers, problem

    def decline(
        self, framework: FrameworkRecord, offer_ids: Sequence[str], refuse: float
    ) -> None:
        """Return the framework's named offers, filtered from it for `refuse` seconds."""
        for offer_id in offer_ids:
            offer = self._offers.get(offer_id)
            if offer is None or offer.framework_id != framework.framework_id:
                log.info(
                    "decline of unknown offer",
                    framework_id=framework.framework_id,
                    offer_id=offer_id,
                )
                continue
            self._remove(offer)
            self._allocator.recover_resources(
                framework.framework_id, offer.role, offer.agent_id, offer.resources, refuse
            )

    def rescind(self, offer_ids: Collection[str], *, notify: bool) -> None:
        """Withdraw offers (typically all of an agent's or a framework's) and return their
        resources to the allocator; with `notify`, tell each framework (RESCIND)."""
        for offer_id in list(offer_ids):
            self._rescind(self._offers[offer_id], notify=notify)

    def rescind_expired(self, timeout: float) -> None:
        """Rescind (with RESCIND) every offer outstanding for `timeout` seconds or longer."""
        now = self._clock.now()
        for offer in list(self._offers.values()):
            if now - offer.created_at >= timeout:
                self._rescind(offer, notify=True)

    def discard(self, offer_ids: Collection[str]) -> None:
        """Forget offers whose resources the allocator no longer tracks (their framework was
        removed from it)."""
        for offer_id in list(offer_ids):
            self._remove(self._offers[offer_id])

    def _rescind(self, offer: OfferRecord, *, notify: bool) -> None:
        self._remove(offer)
        self._allocator.recover_resources(
            offer.framework_id, offer.role, offer.agent_id, offer.resources
        )
        framework = self._frameworks.get(offer.framework_id)
        if notify and framework is not None and framework.outbox is not None:
            framework.outbox.send(
                scheduler_pb2.Event(
                    type=EventType.RESCIND,
                    rescind=scheduler_pb2.Event.Rescind(
                        offer_id=mesos_pb2.OfferID(value=offer.offer_id)
                    ),
                )
            )

    def _remove(self, offer: OfferRecord) -> None:
        del self._offers[offer.offer_id]
        framework = self._frameworks.get(offer.framework_id)
        if framework is not None:
            framework.offers.discard(offer.offer_id)
        agent = self._agents.get(offer.agent_id)
        if agent is not None:
            agent.offers.discard(offer.offer_id)

    def _encoded_resources(self, resources: Resources) -> bytes:
        """`resources` encoded as the resources of an `Offer` (cached: agents of one kind offer
        the same resources over and over)."""
        encoded = self._encoded.get(resources)
        if encoded is None:
            if len(self._encoded) >= _MAX_ENCODED_RESOURCES:
                self._encoded.clear()
            encoded = mesos_pb2.Offer(resources=resources.to_proto()).SerializeToString()
            self._encoded[resources] = encoded
        return encoded
