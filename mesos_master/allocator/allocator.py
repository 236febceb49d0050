"""The allocator: decides which framework is offered each agent's available resources.

A pure, synchronous core (no I/O, injected clock) that the master's shell drives from one
asyncio task::

    master events ──> add_framework / add_agent / recover_resources / suppress / revive / ...
                          │  mark agents dirty (or all agents, when a framework became eligible)
                          ▼
    shell: if allocator.pending (or at next_wakeup()) ──> allocate()
                          │  for each dirty agent with allocatable resources:
                          │    first framework in sorter order not filtered for that agent
                          ▼
                      offer_callback(framework_id, {agent_id: resources})   once per framework

Allocation is event-driven: a single `recover_resources` followed by `allocate()` looks at that one
agent only. The sorter (DRF by default) holds every framework's allocation and orders frameworks
by dominant share; roles will add a second sorter level above the framework sorter.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from mesos_common.clock import Clock
from mesos_common.resources import Resources
from mesos_master.allocator.sorter import DRFSorter, Sorter

__all__ = ["DEFAULT_MIN_ALLOCATABLE", "Allocator", "OfferCallback"]

OfferCallback = Callable[[str, Mapping[str, Resources]], None]
"""`offer_callback(framework_id, {agent_id: resources})`."""

DEFAULT_MIN_ALLOCATABLE: tuple[Resources, ...] = (
    Resources.parse("cpus:0.01"),
    Resources.parse("mem:32"),
)
"""As in Mesos: an agent's available resources are offered if they hold any one of these."""


@dataclass(slots=True, eq=False)
class _Filter:
    """`refused` resources on one agent are not offered again until `expires_at`."""

    refused: Resources
    expires_at: float


@dataclass(slots=True, eq=False)
class _Framework:
    active: bool
    suppressed: bool = False
    # Known only because an agent reported its tasks (`add_agent(used=...)`): it holds
    # resources but gets no offers until `add_framework` adopts it.
    recovered: bool = False
    filters: dict[str, _Filter] = field(default_factory=dict)  # by agent id


@dataclass(slots=True, eq=False)
class _Agent:
    total: Resources
    available: Resources


class Allocator:
    """Hierarchical-DRF-style allocator, one level (frameworks).

    Unknown framework or agent ids raise KeyError, except in `remove_framework`,
    `remove_agent` and `recover_resources`, which ignore ids already removed (the master may
    learn of a removal while resources are still on their way back).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        offer_callback: OfferCallback,
        sorter_factory: Callable[[], Sorter] = DRFSorter,
        min_allocatable: Sequence[Resources] = DEFAULT_MIN_ALLOCATABLE,
    ) -> None:
        self._clock = clock
        self._offer_callback = offer_callback
        self._sorter = sorter_factory()
        self._min_allocatable = tuple(min_allocatable)
        self._frameworks: dict[str, _Framework] = {}
        self._agents: dict[str, _Agent] = {}
        self._dirty: dict[str, None] = {}  # agents to look at, in the order they changed
        self._all_dirty = False
        self._expiries: list[tuple[float, int, str, str, _Filter]] = []  # heap
        self._filter_seq = 0

    # Frameworks.

    def add_framework(
        self,
        framework_id: str,
        *,
        weight: float = 1.0,
        used: Mapping[str, Resources] | None = None,
        active: bool = True,
    ) -> None:
        """Add a framework; `used` is what it already holds by agent id (after a failover).

        A framework first seen in an agent's `used` report is adopted here; for agents that
        already reported its resources, `used` is not counted again.
        """
        existing = self._frameworks.get(framework_id)
        if existing is not None and not existing.recovered:
            raise ValueError(f"framework {framework_id!r} already added")
        held = self._sorter.allocation(framework_id) if existing is not None else {}
        extra = {
            agent_id: resources
            for agent_id, resources in (used or {}).items()
            if agent_id in self._agents and agent_id not in held and resources
        }
        for agent_id, resources in extra.items():
            if not self._agents[agent_id].available.contains(resources):
                raise ValueError(
                    f"framework {framework_id!r} claims {resources} on agent {agent_id!r}, "
                    f"which has only {self._agents[agent_id].available} available"
                )
        if existing is None:
            self._sorter.add(framework_id, weight)
            framework = self._frameworks[framework_id] = _Framework(active=active)
        else:
            self._sorter.update_weight(framework_id, weight)
            framework = existing
            framework.recovered = False
            framework.active = active
        for agent_id, resources in extra.items():
            self._agents[agent_id].available -= resources
            self._sorter.allocated(framework_id, agent_id, resources)
        self._sync_sorter(framework_id, framework)
        if active:
            self._all_dirty = True

    def remove_framework(self, framework_id: str) -> None:
        """Forget a framework; everything it held becomes available again."""
        if self._frameworks.pop(framework_id, None) is None:
            return
        for agent_id, resources in self._sorter.allocation(framework_id).items():
            self._agents[agent_id].available += resources
            self._dirty[agent_id] = None
        self._sorter.remove(framework_id)

    def activate_framework(self, framework_id: str) -> None:
        """Make a (re)connected framework eligible for offers again."""
        framework = self._framework(framework_id)
        framework.active = True
        self._sync_sorter(framework_id, framework)
        self._all_dirty = True

    def deactivate_framework(self, framework_id: str) -> None:
        """No offers while inactive (disconnected); what it holds stays allocated."""
        framework = self._framework(framework_id)
        framework.active = False
        self._sync_sorter(framework_id, framework)

    def update_weight(self, framework_id: str, weight: float) -> None:
        """Change a framework's weight: its dominant share is divided by it."""
        self._framework(framework_id)
        self._sorter.update_weight(framework_id, weight)
        self._all_dirty = True

    def suppress(self, framework_id: str) -> None:
        """No offers to this framework until `revive`."""
        framework = self._framework(framework_id)
        framework.suppressed = True
        self._sync_sorter(framework_id, framework)

    def revive(self, framework_id: str) -> None:
        """Un-suppress the framework and drop all its filters."""
        framework = self._framework(framework_id)
        framework.suppressed = False
        framework.filters.clear()
        self._sync_sorter(framework_id, framework)
        self._all_dirty = True

    # Agents.

    def add_agent(
        self, agent_id: str, total: Resources, used: Mapping[str, Resources] | None = None
    ) -> None:
        """Add an agent; `used` maps framework ids to resources its tasks already use."""
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id!r} already added")
        in_use = Resources.EMPTY
        for resources in (used or {}).values():
            in_use += resources
        if not total.contains(in_use):
            raise ValueError(f"agent {agent_id!r} reports {in_use} in use but has only {total}")
        self._agents[agent_id] = _Agent(total=total, available=total - in_use)
        self._sorter.add_total(total)
        for framework_id, resources in (used or {}).items():
            if not resources:
                continue
            if framework_id not in self._frameworks:
                self._sorter.add(framework_id)
                self._frameworks[framework_id] = _Framework(active=False, recovered=True)
                self._sync_sorter(framework_id, self._frameworks[framework_id])
            self._sorter.allocated(framework_id, agent_id, resources)
        self._dirty[agent_id] = None

    def remove_agent(self, agent_id: str) -> None:
        """Forget an agent and everything allocated on it."""
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        self._dirty.pop(agent_id, None)
        self._sorter.remove_total(agent.total)
        for framework_id, framework in list(self._frameworks.items()):
            framework.filters.pop(agent_id, None)
            held = self._sorter.allocation(framework_id).get(agent_id)
            if held is not None:
                self._sorter.unallocated(framework_id, agent_id, held)
                self._forget_if_recovered_and_idle(framework_id, framework)

    # Resources.

    def recover_resources(
        self,
        framework_id: str,
        agent_id: str,
        resources: Resources,
        refuse_seconds: float | None = None,
    ) -> None:
        """Resources the framework held (offered or used) come back to the agent.

        `refuse_seconds > 0` installs a filter: the framework is not offered this agent again
        until it expires, unless the agent's available resources are no longer contained in
        the refused ones. Ids already removed are ignored.
        """
        framework = self._frameworks.get(framework_id)
        agent = self._agents.get(agent_id)
        if framework is None or agent is None:
            return
        if resources:
            self._sorter.unallocated(framework_id, agent_id, resources)
            agent.available += resources
            self._dirty[agent_id] = None
        if refuse_seconds is not None and refuse_seconds > 0:
            expiry = _Filter(refused=resources, expires_at=self._clock.now() + refuse_seconds)
            framework.filters[agent_id] = expiry
            self._filter_seq += 1
            heapq.heappush(
                self._expiries,
                (expiry.expires_at, self._filter_seq, framework_id, agent_id, expiry),
            )
        self._forget_if_recovered_and_idle(framework_id, framework)

    # Allocation.

    def allocate(self) -> int:
        """One pass over pending work; returns the number of (framework, agent) offers made.

        The offer callback runs after the pass, once per framework; it may call back into the
        allocator (e.g. to decline at once) but must not raise: the resources are allocated.
        """
        now = self._clock.now()
        self._expire_filters(now)
        if self._all_dirty:
            candidates: Sequence[str] = list(self._agents)
            self._all_dirty = False
        else:
            candidates = list(self._dirty)
        self._dirty.clear()

        sorter = self._sorter
        frameworks = self._frameworks
        offers: dict[str, dict[str, Resources]] = {}
        for agent_id in candidates:
            agent = self._agents[agent_id]
            available = agent.available
            if not self._allocatable(available):
                continue
            for framework_id in sorter.sort():
                refusal = frameworks[framework_id].filters.get(agent_id)
                if (refusal is not None and refusal.expires_at > now
                        and refusal.refused.contains(available)):
                    continue
                sorter.allocated(framework_id, agent_id, available)
                agent.available = Resources.EMPTY
                offers.setdefault(framework_id, {})[agent_id] = available
                break
        for framework_id, by_agent in offers.items():
            self._offer_callback(framework_id, by_agent)
        return sum(len(by_agent) for by_agent in offers.values())

    @property
    def pending(self) -> bool:
        """Whether an `allocate()` call would have anything to consider now."""
        if self._dirty or self._all_dirty:
            return True
        wakeup = self.next_wakeup()
        return wakeup is not None and wakeup <= self._clock.now()

    def next_wakeup(self) -> float | None:
        """Clock time at which the earliest filter expires, or None without filters."""
        self._drop_stale_expiries()
        return self._expiries[0][0] if self._expiries else None

    # Queries.

    def allocation(self, framework_id: str) -> Mapping[str, Resources]:
        """What the framework holds (offered + used), by agent id."""
        self._framework(framework_id)
        return self._sorter.allocation(framework_id)

    def available(self, agent_id: str) -> Resources:
        """The agent's resources that nobody holds."""
        try:
            return self._agents[agent_id].available
        except KeyError:
            raise KeyError(f"unknown agent {agent_id!r}") from None

    def dominant_share(self, framework_id: str) -> float:
        """The framework's dominant share divided by its weight."""
        self._framework(framework_id)
        return self._sorter.share(framework_id)

    # Internals.

    def _framework(self, framework_id: str) -> _Framework:
        try:
            return self._frameworks[framework_id]
        except KeyError:
            raise KeyError(f"unknown framework {framework_id!r}") from None

    def _sync_sorter(self, framework_id: str, framework: _Framework) -> None:
        if framework.active and not framework.suppressed and not framework.recovered:
            self._sorter.activate(framework_id)
        else:
            self._sorter.deactivate(framework_id)

    def _forget_if_recovered_and_idle(self, framework_id: str, framework: _Framework) -> None:
        if framework.recovered and not self._sorter.allocation(framework_id):
            del self._frameworks[framework_id]
            self._sorter.remove(framework_id)

    def _allocatable(self, available: Resources) -> bool:
        if available.is_empty():
            return False
        return any(available.contains(minimum) for minimum in self._min_allocatable)

    def _expire_filters(self, now: float) -> None:
        expiries = self._expiries
        while expiries and expiries[0][0] <= now:
            _, _, framework_id, agent_id, expiry = heapq.heappop(expiries)
            framework = self._frameworks.get(framework_id)
            if framework is not None and framework.filters.get(agent_id) is expiry:
                del framework.filters[agent_id]
                if agent_id in self._agents:
                    self._dirty[agent_id] = None

    def _drop_stale_expiries(self) -> None:
        expiries = self._expiries
        while expiries:
            _, _, framework_id, agent_id, expiry = expiries[0]
            framework = self._frameworks.get(framework_id)
            if framework is not None and framework.filters.get(agent_id) is expiry:
                return
            heapq.heappop(expiries)
