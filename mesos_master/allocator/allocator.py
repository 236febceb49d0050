"""The allocator: decides which framework, in which role, is offered each agent's resources.

A pure, synchronous core (no I/O, injected clock) that the master's shell drives from one
asyncio task::

    master events ──> add_framework / add_agent / recover_resources / suppress / revive / ...
                          │  mark agents dirty (or all agents, when a framework became eligible)
                          ▼
    shell: if allocator.pending (or at next_wakeup()) ──> allocate()
                          │  for each dirty, active agent with allocatable resources:
                          │    walk the role tree in sorter order, then the role's frameworks;
                          │    the first (framework, role) that may take the agent gets it,
                          │    cut down to the role's quota headroom
                          ▼
                      offer_callback(framework_id, [Grant(agent_id, role, resources), ...])

Fairness is two-level, as in Mesos' hierarchical DRF: roles form a tree (`eng` is the parent of
`eng/backend`); at each level the role sorter orders siblings by the weighted dominant share of
everything allocated in their subtree, and a role's own frameworks (a virtual child, as Mesos'
`eng/.`) are ordered by the framework sorter. Weights belong to roles. A role's quota limit caps
what its subtree may hold: offers are cut down to fit, and a role that has reached its limit in
a resource the agent offers is passed over (rather than offered the agent's other resources
alone, which would strand them). A role at its limit in cpus or mem leaves its parent's sorter
until it is below the limit again, so passes over a cluster of roles at their limits stay
cheap.
Agents offering `gpus` are offered only to frameworks that declared the GPU capability.
Reserved resources go only to their role and its subroles (`Resources.allocatable_to`).

Allocation is event-driven: a single `recover_resources` followed by `allocate()` looks at that
one agent only.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from mesos_master.allocator.roles import parent
from mesos_master.allocator.sorter import ClusterTotal, DRFSorter, Sorter
from mesos_runtime.clock import Clock
from mesos_values.resources import Resources

__all__ = [
    "DEFAULT_MIN_ALLOCATABLE",
    "Allocator",
    "Grant",
    "OfferCallback",
    "SorterFactory",
]


class Grant(NamedTuple):
    """Resources of one agent allocated to a framework in one of its roles."""

    agent_id: str
    role: str
    resources: Resources


OfferCallback = Callable[[str, Sequence[Grant]], None]
"""`offer_callback(framework_id, grants)`."""

class SorterFactory(Protocol):
    """Builds a sorter over a shared cluster total, ignoring the excluded resource names."""

    def __call__(
        self, total: ClusterTotal, excluded: frozenset[str], *, per_agent: bool = True
    ) -> Sorter: ...

DEFAULT_MIN_ALLOCATABLE: tuple[Resources, ...] = (
    Resources.parse("cpus:0.01"),
    Resources.parse("mem:32"),
)
"""As in Mesos: an agent's available resources are offered if they hold any one of these."""

_BLOCKING = ("cpus", "mem")
"""A role at its quota limit in one of these is left out of sorting altogether."""

_OWN = "."
"""The client standing for a role's own frameworks in that role's sorter (Mesos' `role/.`)."""


@dataclass(slots=True, eq=False)
class _Filter:
    """`refused` resources on one agent are not offered again until `expires_at`."""

    refused: Resources
    expires_at: float


@dataclass(slots=True, eq=False)
class _Framework:
    roles: tuple[str, ...]
    active: bool
    gpu_aware: bool = False
    suppressed: set[str] = field(default_factory=set)  # roles
    # Known only because an agent reported its tasks (`add_agent(used=...)`): it holds
    # resources but gets no offers until `add_framework` adopts it.
    recovered: bool = False
    filters: dict[str, _Filter] = field(default_factory=dict)  # by agent id
    held: set[str] = field(default_factory=set)  # roles whose framework sorter has it
    # The framework's own smallest acceptable offers, per role (alternatives)
    min_offers: Mapping[str, Sequence[Resources]] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class _Agent:
    total: Resources
    available: Resources
    active: bool = True
    has_gpus: bool = False

    def __post_init__(self) -> None:
        self.has_gpus = self.total.scalar("gpus") > 0


@dataclass(slots=True, eq=False)
class _Role:
    """A node of the role tree; the root has the empty path."""

    path: str
    parent: _Role | None
    sorter: Sorter  # this role's child roles and `_OWN`
    frameworks: Sorter  # the frameworks allocated or subscribed in exactly this role
    children: dict[str, _Role] = field(default_factory=dict)  # by path
    active_frameworks: set[str] = field(default_factory=set)
    active_children: set[str] = field(default_factory=set)

    @property
    def consumed(self) -> Resources:
        """The scalar quantities held in this role's subtree (as its parent's sorter books)."""
        assert self.parent is not None
        return self.parent.sorter.quantities(self.path)


class Allocator:
    """Hierarchical DRF over roles, then frameworks, with weights and quota limits per role.

    Unknown framework or agent ids raise KeyError, except in `remove_framework`,
    `remove_agent` and `recover_resources`, which ignore ids already removed (the master may
    learn of a removal while resources are still on their way back).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        offer_callback: OfferCallback,
        role_sorter: SorterFactory = DRFSorter,
        framework_sorter: SorterFactory = DRFSorter,
        min_allocatable: Sequence[Resources] = DEFAULT_MIN_ALLOCATABLE,
        fair_sharing_excluded: frozenset[str] = frozenset(),
    ) -> None:
        self._clock = clock
        self._offer_callback = offer_callback
        self._role_sorter = role_sorter
        self._framework_sorter = framework_sorter
        self._excluded = fair_sharing_excluded
        self._total = ClusterTotal()
        self._min_allocatable = tuple(min_allocatable)
        self._frameworks: dict[str, _Framework] = {}
        self._agents: dict[str, _Agent] = {}
        self._root = self._new_role("", None)
        self._roles: dict[str, _Role] = {}
        self._weights: dict[str, float] = {}
        self._quotas: dict[str, dict[str, float]] = {}  # role -> scalar limits
        # Roles at their limit in cpus or mem: out of their parent's sorting until below it.
        self._blocked: set[str] = set()
        self._dirty: dict[str, None] = {}  # agents to look at, in the order they changed
        self._all_dirty = False
        self._expiries: list[tuple[float, int, str, str, _Filter]] = []  # heap
        self._filter_seq = 0

    # Frameworks.

    def add_framework(
        self,
        framework_id: str,
        roles: Sequence[str] = ("*",),
        *,
        active: bool = True,
        gpu_aware: bool = False,
        min_offers: Mapping[str, Sequence[Resources]] | None = None,
    ) -> None:
        """Add a framework subscribed to `roles`; `min_offers` are its offer filters: per role,
        alternatives one of which an offer must hold.

        A framework first seen in an agent's `used` report is adopted here.
        """
        if not roles:
            raise ValueError(f"framework {framework_id!r} needs at least one role")
        existing = self._frameworks.get(framework_id)
        if existing is not None and not existing.recovered:
            raise ValueError(f"framework {framework_id!r} already added")
        if existing is None:
            framework = self._frameworks[framework_id] = _Framework(
                roles=tuple(roles), active=active, gpu_aware=gpu_aware
            )
        else:
            framework = existing
            framework.recovered = False
            framework.roles = tuple(roles)
            framework.active = active
            framework.gpu_aware = gpu_aware
        framework.min_offers = dict(min_offers or {})
        self._sync(framework_id, framework)
        if active:
            self._all_dirty = True

    def update_framework(
        self,
        framework_id: str,
        roles: Sequence[str],
        *,
        gpu_aware: bool = False,
        min_offers: Mapping[str, Sequence[Resources]] | None = None,
    ) -> None:
        """A re-subscribing framework may change its roles, capabilities and offer filters.

        What it holds in roles it left stays accounted there until given back.
        """
        if not roles:
            raise ValueError(f"framework {framework_id!r} needs at least one role")
        framework = self._framework(framework_id)
        framework.roles = tuple(roles)
        framework.gpu_aware = gpu_aware
        framework.min_offers = dict(min_offers or {})
        framework.suppressed &= set(roles)
        self._sync(framework_id, framework)
        self._all_dirty = True

    def remove_framework(self, framework_id: str) -> None:
        """Forget a framework; everything it held becomes available again."""
        framework = self._frameworks.pop(framework_id, None)
        if framework is None:
            return
        for role in list(framework.held):
            node = self._roles[role]
            for agent_id, resources in list(node.frameworks.allocation(framework_id).items()):
                self._unallocate(node, framework_id, agent_id, resources)
                self._agents[agent_id].available += resources
                self._dirty[agent_id] = None
            self._set_framework_active(node, framework_id, False)
            node.frameworks.remove(framework_id)

    def activate_framework(self, framework_id: str) -> None:
        """Make a (re)connected framework eligible for offers again."""
        framework = self._framework(framework_id)
        framework.active = True
        self._sync(framework_id, framework)
        self._all_dirty = True

    def deactivate_framework(self, framework_id: str) -> None:
        """No offers while inactive (disconnected); what it holds stays allocated."""
        framework = self._framework(framework_id)
        framework.active = False
        self._sync(framework_id, framework)

    def suppress(self, framework_id: str, roles: Sequence[str] | None = None) -> None:
        """No offers to this framework in `roles` (default: all its roles) until `revive`."""
        framework = self._framework(framework_id)
        framework.suppressed.update(framework.roles if roles is None else roles)
        framework.suppressed &= set(framework.roles)
        self._sync(framework_id, framework)

    def revive(self, framework_id: str, roles: Sequence[str] | None = None) -> None:
        """Un-suppress the framework in `roles` (default: all) and drop all its filters."""
        framework = self._framework(framework_id)
        framework.suppressed.difference_update(framework.roles if roles is None else roles)
        framework.filters.clear()
        self._sync(framework_id, framework)
        self._all_dirty = True

    # Roles.

    def set_weight(self, role: str, weight: float) -> None:
        """Set a role's weight (> 0): its subtree's dominant share is divided by it."""
        if not weight > 0:
            raise ValueError(f"weight must be positive, got {weight}")
        self._weights[role] = weight
        node = self._roles.get(role)
        if node is not None:
            assert node.parent is not None
            node.parent.sorter.update_weight(role, weight)
        self._all_dirty = True

    def weight(self, role: str) -> float:
        """The role's weight (1.0 unless set)."""
        return self._weights.get(role, 1.0)

    def set_quota(self, role: str, limits: Resources | None) -> None:
        """Cap what `role`'s subtree may hold to `limits`' scalars; None removes the quota."""
        if limits is None or limits.is_empty():
            self._quotas.pop(role, None)
        else:
            self._quotas[role] = dict(limits.scalars)
        node = self._roles.get(role)
        if node is not None:
            self._check_blocked(node)
        self._all_dirty = True

    def quota(self, role: str) -> Resources | None:
        """The role's quota limits, or None."""
        limits = self._quotas.get(role)
        return None if limits is None else Resources.from_scalars(limits)

    def consumed(self, role: str) -> Resources:
        """The scalar quantities allocated in `role`'s subtree (what quota counts)."""
        node = self._roles.get(role)
        return Resources.EMPTY if node is None else node.consumed

    def roles(self) -> list[str]:
        """Every role known (subscribed, holding resources, weighted or with quota), sorted."""
        return sorted(set(self._roles) | set(self._weights) | set(self._quotas))

    def role_share(self, role: str) -> float:
        """The role's weighted dominant share among its siblings (0.0 for unknown roles)."""
        node = self._roles.get(role)
        if node is None:
            return 0.0
        assert node.parent is not None
        return node.parent.sorter.share(role)

    # Agents.

    def add_agent(
        self,
        agent_id: str,
        total: Resources,
        used: Mapping[str, Mapping[str, Resources]] | None = None,
    ) -> None:
        """Add an agent; `used` maps framework ids to {role: resources} its tasks already use."""
        if agent_id in self._agents:
            raise ValueError(f"agent {agent_id!r} already added")
        in_use = Resources.EMPTY
        for by_role in (used or {}).values():
            for resources in by_role.values():
                in_use += resources
        try:
            available = total - in_use
        except ValueError:  # not contained
            raise ValueError(
                f"agent {agent_id!r} reports {in_use} in use but has only {total}") from None
        self._agents[agent_id] = _Agent(total=total, available=available)
        self._total.add(total)
        for framework_id, by_role in (used or {}).items():
            framework = self._frameworks.get(framework_id)
            if framework is None:
                framework = self._frameworks[framework_id] = _Framework(
                    roles=tuple(by_role), active=False, recovered=True
                )
            for role, resources in by_role.items():
                if resources:
                    node = self._hold(framework_id, framework, role)
                    self._allocate(node, framework_id, agent_id, resources)
        self._dirty[agent_id] = None

    def remove_agent(self, agent_id: str) -> None:
        """Forget an agent and everything allocated on it."""
        agent = self._agents.pop(agent_id, None)
        if agent is None:
            return
        self._dirty.pop(agent_id, None)
        self._total.remove(agent.total)
        for framework_id, framework in list(self._frameworks.items()):
            framework.filters.pop(agent_id, None)
            for role in list(framework.held):
                node = self._roles[role]
                held = node.frameworks.allocation(framework_id).get(agent_id)
                if held is not None:
                    self._unallocate(node, framework_id, agent_id, held)
                    self._release_if_idle(framework_id, framework, role)
            self._forget_if_recovered_and_idle(framework_id, framework)

    def deactivate_agent(self, agent_id: str) -> None:
        """No more offers of this agent (drained or deactivated); its allocation stays."""
        self._agent(agent_id).active = False

    def activate_agent(self, agent_id: str) -> None:
        """Offer this agent again."""
        self._agent(agent_id).active = True
        self._dirty[agent_id] = None

    def convert_available(self, agent_id: str, old: Resources, new: Resources) -> None:
        """Free resources of the agent change shape (an operator's RESERVE or UNRESERVE):
        `old` (available) becomes `new`, of the same quantities."""
        agent = self._agent(agent_id)
        if not agent.available.contains(old):
            raise ValueError(f"agent {agent_id!r} has {agent.available} available, not {old}")
        agent.available = agent.available - old + new
        agent.total = agent.total - old + new
        self._dirty[agent_id] = None

    def convert_allocation(
        self, framework_id: str, role: str, agent_id: str, old: Resources, new: Resources
    ) -> None:
        """Resources the framework holds change shape (RESERVE or UNRESERVE in an ACCEPT):
        `old` becomes `new`, of the same quantities, still held by the framework."""
        node = self._roles[role]
        self._framework(framework_id)
        agent = self._agent(agent_id)
        node.frameworks.unallocated(framework_id, agent_id, old)
        node.frameworks.allocated(framework_id, agent_id, new)
        agent.total = agent.total - old + new

    # Resources.

    def recover_resources(
        self,
        framework_id: str,
        role: str,
        agent_id: str,
        resources: Resources,
        refuse_seconds: float | None = None,
    ) -> None:
        """Resources the framework held in `role` (offered or used) come back to the agent.

        `refuse_seconds > 0` installs a filter: the framework is not offered this agent again
        until it expires, unless the agent's available resources are no longer contained in
        the refused ones. Ids already removed are ignored.
        """
        framework = self._frameworks.get(framework_id)
        agent = self._agents.get(agent_id)
        if framework is None or agent is None:
            return
        node = self._roles.get(role)
        if resources and node is not None and role in framework.held:
            self._unallocate(node, framework_id, agent_id, resources)
            agent.available += resources
            self._dirty[agent_id] = None
            self._release_if_idle(framework_id, framework, role)
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
        """One pass over pending work; returns the number of grants made.

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

        grants: dict[str, list[Grant]] = {}
        for agent_id in candidates:
            agent = self._agents[agent_id]
            if not agent.active:
                continue
            granted: set[tuple[str, str]] = set()  # (framework, role) pairs given this agent
            while self._allocatable(agent.available):
                grant = self._pick(agent_id, agent, now, granted)
                if grant is None:
                    break
                framework_id, node, resources = grant
                self._allocate(node, framework_id, agent_id, resources)
                whole = resources is agent.available
                agent.available = Resources.EMPTY if whole else agent.available - resources
                granted.add((framework_id, node.path))
                grants.setdefault(framework_id, []).append(Grant(agent_id, node.path, resources))
        for framework_id, made in grants.items():
            self._offer_callback(framework_id, made)
        return sum(len(made) for made in grants.values())

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
        """What the framework holds (offered + used) over all its roles, by agent id."""
        framework = self._framework(framework_id)
        if len(framework.held) == 1:
            (role,) = framework.held
            return self._roles[role].frameworks.allocation(framework_id)
        total: dict[str, Resources] = {}
        for role in framework.held:
            for agent_id, resources in self._roles[role].frameworks.allocation(
                framework_id
            ).items():
                total[agent_id] = total.get(agent_id, Resources.EMPTY) + resources
        return total

    def allocation_by_role(self, framework_id: str) -> Mapping[str, Mapping[str, Resources]]:
        """What the framework holds, by role and then agent id."""
        framework = self._framework(framework_id)
        return {
            role: self._roles[role].frameworks.allocation(framework_id)
            for role in sorted(framework.held)
        }

    def available(self, agent_id: str) -> Resources:
        """The agent's resources that nobody holds."""
        return self._agent(agent_id).available

    def dominant_share(self, framework_id: str) -> float:
        """The framework's dominant share of the cluster (its largest over its roles)."""
        framework = self._framework(framework_id)
        return max(
            (self._roles[role].frameworks.share(framework_id) for role in framework.held),
            default=0.0,
        )

    # Internals: the role tree.

    def _new_role(self, path: str, parent_node: _Role | None) -> _Role:
        return _Role(
            path=path,
            parent=parent_node,
            sorter=self._role_sorter(self._total, self._excluded, per_agent=False),
            frameworks=self._framework_sorter(self._total, self._excluded),
        )

    def _role(self, path: str) -> _Role:
        """The node for `path`, created with its ancestors when missing."""
        node = self._roles.get(path)
        if node is not None:
            return node
        up = parent(path)
        parent_node = self._root if up is None else self._role(up)
        node = self._new_role(path, parent_node)
        node.sorter.add(_OWN)
        node.sorter.deactivate(_OWN)
        if parent_node.parent is not None and not parent_node.children:
            # The parent's own frameworks now compete with a child: start booking them as `_OWN`
            # (a role without children leaves its `_OWN` books empty: it would be alone there).
            own = Resources.EMPTY
            for framework_id in self._frameworks_of(parent_node):
                own = own + parent_node.frameworks.quantities(framework_id)
            parent_node.sorter.allocated(_OWN, "", own)
        parent_node.sorter.add(path, self._weights.get(path, 1.0))
        parent_node.sorter.deactivate(path)
        parent_node.children[path] = node
        self._roles[path] = node
        if path in self._quotas:
            self._check_blocked(node)
        return node

    def _hold(self, framework_id: str, framework: _Framework, role: str) -> _Role:
        """Make sure `role`'s framework sorter has the framework (inactive when added)."""
        node = self._role(role)
        if role not in framework.held:
            node.frameworks.add(framework_id)
            node.frameworks.deactivate(framework_id)
            framework.held.add(role)
        return node

    def _sync(self, framework_id: str, framework: _Framework) -> None:
        """Bring the framework's activity in every role in line with its state."""
        for role in framework.roles:
            self._hold(framework_id, framework, role)
        for role in list(framework.held):
            eligible = (
                framework.active
                and not framework.recovered
                and role in framework.roles
                and role not in framework.suppressed
            )
            self._set_framework_active(self._roles[role], framework_id, eligible)
            self._release_if_idle(framework_id, framework, role)

    def _release_if_idle(self, framework_id: str, framework: _Framework, role: str) -> None:
        """Drop the framework from a role it left once it holds nothing there."""
        node = self._roles[role]
        if role in framework.roles or node.frameworks.allocation(framework_id):
            return
        self._set_framework_active(node, framework_id, False)
        node.frameworks.remove(framework_id)
        framework.held.discard(role)

    def _set_framework_active(self, node: _Role, framework_id: str, active: bool) -> None:
        if (framework_id in node.active_frameworks) == active:
            return
        if active:
            node.frameworks.activate(framework_id)
            node.active_frameworks.add(framework_id)
            node.sorter.activate(_OWN)
        else:
            node.frameworks.deactivate(framework_id)
            node.active_frameworks.discard(framework_id)
            if not node.active_frameworks:
                node.sorter.deactivate(_OWN)
        self._propagate(node)

    def _propagate(self, node: _Role) -> None:
        """A role takes part in its parent's sorting while its subtree has an active framework
        and it is not at its quota limit in cpus or mem."""
        while node.parent is not None:
            up = node.parent
            active_now = bool(node.active_frameworks or node.active_children) and \
                node.path not in self._blocked
            if (node.path in up.active_children) == active_now:
                return
            if active_now:
                up.active_children.add(node.path)
                up.sorter.activate(node.path)
            else:
                up.active_children.discard(node.path)
                up.sorter.deactivate(node.path)
            node = up

    def _allocate(self, node: _Role, framework_id: str, agent_id: str, res: Resources) -> None:
        node.frameworks.allocated(framework_id, agent_id, res)
        quantities = res.scalar_quantities()
        if node.children:
            node.sorter.allocated(_OWN, agent_id, quantities)
        walk = node
        while walk.parent is not None:
            walk.parent.sorter.allocated(walk.path, agent_id, quantities)
            walk = walk.parent
        if self._quotas:
            self._check_blocked_chain(node)

    def _unallocate(self, node: _Role, framework_id: str, agent_id: str, res: Resources) -> None:
        node.frameworks.unallocated(framework_id, agent_id, res)
        quantities = res.scalar_quantities()
        if node.children:
            node.sorter.unallocated(_OWN, agent_id, quantities)
        walk = node
        while walk.parent is not None:
            walk.parent.sorter.unallocated(walk.path, agent_id, quantities)
            walk = walk.parent
        if self._quotas:
            self._check_blocked_chain(node)

    def _check_blocked_chain(self, node: _Role) -> None:
        walk: _Role | None = node
        while walk is not None and walk.parent is not None:
            if walk.path in self._quotas or walk.path in self._blocked:
                self._check_blocked(walk)
            walk = walk.parent

    def _check_blocked(self, node: _Role) -> None:
        """Take a role out of its parent's sorting while it is at its quota limit in cpus or
        mem (every useful offer holds one of them), so that a cluster full of roles at their
        limits is not walked role by role for each agent; limits on other resources are
        applied per agent (`_within_quota`)."""
        limits = self._quotas.get(node.path)
        blocked = False
        if limits is not None:
            consumed = node.consumed
            blocked = any(
                name in limits and limits[name] - consumed.scalar(name) < 0.001
                for name in _BLOCKING
            )
        if blocked == (node.path in self._blocked):
            return
        if blocked:
            self._blocked.add(node.path)
        else:
            self._blocked.discard(node.path)
            self._all_dirty = True  # agents not touched since may now go to this role
        self._propagate(node)

    def _candidate_pairs(self) -> Iterable[tuple[_Role, str]]:
        """(role, framework) pairs in allocation order; without generators when a single leaf
        role takes part (the common cluster with every framework in `*`)."""
        top = self._root.sorter.ordered()
        if len(top) == 1:
            leaf = self._root.children[top[0]]
            if not leaf.children:
                return zip(itertools.repeat(leaf), leaf.frameworks.ordered(), strict=False)
        return self._candidates(self._root)

    def _candidates(self, node: _Role) -> Iterator[tuple[_Role, str]]:
        """(role, framework) pairs in allocation order below `node`."""
        # `ordered()` may hand out the sorters' own lists: `_pick` stops iterating before it
        # changes any allocation.
        for client in node.sorter.ordered():
            if client == _OWN:
                for framework_id in node.frameworks.ordered():
                    yield node, framework_id
                continue
            child = node.children[client]
            if child.children:
                yield from self._candidates(child)
            else:  # a leaf role: its sorter holds only `_OWN`
                for framework_id in child.frameworks.ordered():
                    yield child, framework_id

    def _pick(
        self, agent_id: str, agent: _Agent, now: float, granted: set[tuple[str, str]]
    ) -> tuple[str, _Role, Resources] | None:
        """The first (framework, role) that may take the agent now, with what it may take."""
        everything = agent.available
        reserved = everything.reserved
        has_gpus = agent.has_gpus
        frameworks = self._frameworks
        quotas = self._quotas
        for node, framework_id in self._candidate_pairs():
            if granted and (framework_id, node.path) in granted:
                continue
            available = everything.allocatable_to(node.path) if reserved else everything
            framework = frameworks[framework_id]
            if has_gpus and not framework.gpu_aware:
                continue
            refusal = framework.filters.get(agent_id)
            if (refusal is not None and refusal.expires_at > now
                    and refusal.refused.contains(available)):
                continue
            offered = self._within_quota(node, available) if quotas else available
            if not (offered is everything or self._allocatable(offered)):
                continue
            wanted = framework.min_offers.get(node.path)
            if wanted and not any(
                offered.scalar_quantities().contains(minimum) for minimum in wanted
            ):
                continue
            return framework_id, node, offered
        return None

    def _within_quota(self, node: _Role, available: Resources) -> Resources:
        """`available` cut down to what `node` and its ancestors may still take."""
        if not self._quotas:
            return available
        offered = available
        walk: _Role | None = node
        while walk is not None and walk.parent is not None:
            limits = self._quotas.get(walk.path)
            if limits is not None:
                consumed = walk.consumed
                headroom = {name: limit - consumed.scalar(name) for name, limit in limits.items()}
                if any(room < 0.001 and available.scalar(name) > 0
                       for name, room in headroom.items()):
                    return Resources.EMPTY  # at its limit in something this agent offers
                offered = offered.capped(headroom)
            walk = walk.parent
        return offered

    def _frameworks_of(self, node: _Role) -> list[str]:
        """The frameworks with books in exactly this role."""
        return [fid for fid, framework in self._frameworks.items() if node.path in framework.held]

    # Internals: frameworks and agents.

    def _framework(self, framework_id: str) -> _Framework:
        try:
            return self._frameworks[framework_id]
        except KeyError:
            raise KeyError(f"unknown framework {framework_id!r}") from None

    def _agent(self, agent_id: str) -> _Agent:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise KeyError(f"unknown agent {agent_id!r}") from None

    def _forget_if_recovered_and_idle(self, framework_id: str, framework: _Framework) -> None:
        if not framework.recovered:
            return
        for role in list(framework.held):
            node = self._roles[role]
            if node.frameworks.allocation(framework_id):
                return
        for role in list(framework.held):
            node = self._roles[role]
            self._set_framework_active(node, framework_id, False)
            node.frameworks.remove(framework_id)
        framework.held.clear()
        del self._frameworks[framework_id]

    def _allocatable(self, available: Resources) -> bool:
        if available.is_empty():
            return False
        if available.reserved:
            available = available.scalar_quantities()
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
