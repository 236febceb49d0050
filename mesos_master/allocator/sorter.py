"""Sorters decide the order in which clients (frameworks today, roles later) are offered resources.

Every sorter keeps the same books: each client's weight, whether it is active, what it holds on
each agent, and the cluster total. A client's dominant share is

    max over scalar names r of (allocated_r / total_r), divided by the client's weight

`DRFSorter` orders active clients by that share (Dominant Resource Fairness), ties broken by the
order in which clients were added; it keeps the order incrementally, repositioning only the
client whose allocation changed. `RandomSorter` returns a weighted random order.

A sorter built with `per_agent=False` keeps only each client's quantities, not where they are:
the allocator's role sorters need shares only. Resource names in `excluded` (e.g. `gpus`,
Mesos' `--fair_sharing_excluded_resource_names`) do not count towards shares. Several sorters
may share one `ClusterTotal` (the allocator's role tree does): a change of the total is then
made once, and each sorter notices it by its version. The sums (the total, each client's
quantities) add what they are given when next read (`FOLD_AT`), as if added one by one.
"""

from __future__ import annotations

import random
from bisect import bisect_left, insort
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mesos_values.resources import Resources

__all__ = ["SORTERS", "ClusterTotal", "DRFSorter", "RandomSorter", "Sorter"]


FOLD_AT = 256
"""Quantities added to a sum (the cluster total, a client's allocation) are kept aside and
added up when the sum is next read, or once this many wait: a new leader adds 10,000 agents
and their tasks' allocations before it reads any share (ADR 0018)."""


class _Sum:
    """A sum of scalar quantities whose additions are added up when it is read, as if added
    one by one (`Resources.sum_of`)."""

    __slots__ = ("_pending", "_value")

    def __init__(self) -> None:
        self._value = Resources.EMPTY
        self._pending: list[Resources] = []

    @property
    def value(self) -> Resources:
        if self._pending:
            self._value = Resources.sum_of(self._value, self._pending)
            self._pending.clear()
        return self._value

    @value.setter
    def value(self, value: Resources) -> None:
        self._pending.clear()
        self._value = value

    def add(self, quantities: Resources) -> None:
        self._pending.append(quantities)
        if len(self._pending) >= FOLD_AT:
            self.value  # noqa: B018 -- added up now


class ClusterTotal:
    """The scalar quantities shares are computed against, with a version bumped on change."""

    __slots__ = ("_sum", "version")

    def __init__(self) -> None:
        self._sum = _Sum()
        self.version = 0

    @property
    def quantities(self) -> Resources:
        return self._sum.value

    def add(self, resources: Resources) -> None:
        """Grow the total by `resources`' scalar quantities."""
        self._sum.add(resources.scalar_quantities())
        self.version += 1

    def remove(self, resources: Resources) -> None:
        """Shrink the total by `resources`' scalar quantities."""
        self._sum.value = self._sum.value - resources.scalar_quantities()
        self.version += 1


class Sorter(Protocol):
    """Orders clients for allocation and keeps their allocation books."""

    def add(self, client: str, weight: float = 1.0) -> None:
        """Add an active client with nothing allocated; ValueError if already present."""
        ...

    def remove(self, client: str) -> None:
        """Forget `client` and whatever it holds."""
        ...

    def activate(self, client: str) -> None:
        """Let `client` appear in `sort()` (idempotent)."""
        ...

    def deactivate(self, client: str) -> None:
        """Keep `client`'s books but leave it out of `sort()` (idempotent)."""
        ...

    def update_weight(self, client: str, weight: float) -> None:
        """Change `client`'s weight (> 0); its share is divided by it."""
        ...

    def allocated(self, client: str, agent_id: str, resources: Resources) -> None:
        """Record that `client` now also holds `resources` on `agent_id`."""
        ...

    def unallocated(self, client: str, agent_id: str, resources: Resources) -> None:
        """Record that `client` gave back `resources` on `agent_id` (must be held)."""
        ...

    def add_total(self, resources: Resources) -> None:
        """Grow the cluster total that shares are computed against."""
        ...

    def remove_total(self, resources: Resources) -> None:
        """Shrink the cluster total."""
        ...

    def sort(self) -> list[str]:
        """Active clients, the one to offer to first at the front."""
        ...

    def ordered(self) -> Sequence[str]:
        """What `sort()` returns, possibly the sorter's own list: valid only until the next
        change to the sorter (for a caller that stops iterating before changing it)."""
        ...

    def allocation(self, client: str) -> Mapping[str, Resources]:
        """What `client` holds, by agent id (read-only; empty when built with
        `per_agent=False`, which keeps only the quantities shares need)."""
        ...

    def share(self, client: str) -> float:
        """`client`'s weighted dominant share."""
        ...

    def quantities(self, client: str) -> Resources:
        """The scalar quantities `client` holds over all agents."""
        ...

    def __contains__(self, client: object) -> bool: ...


@dataclass(slots=True, eq=False)
class _Client:
    seq: int
    weight: float
    active: bool = True
    allocation: dict[str, Resources] = field(default_factory=dict)
    held: _Sum = field(default_factory=_Sum)  # scalar sum over all agents

    @property
    def quantities(self) -> Resources:
        return self.held.value


def _check_weight(weight: float) -> None:
    if not weight > 0:
        raise ValueError(f"weight must be positive, got {weight}")


class _Books:
    """The accounting every sorter shares; subclasses react to changes through the hooks."""

    def __init__(
        self,
        total: ClusterTotal | None = None,
        excluded: frozenset[str] = frozenset(),
        *,
        per_agent: bool = True,
    ) -> None:
        self._clients: dict[str, _Client] = {}
        self._next_seq = 0
        self._total = total if total is not None else ClusterTotal()
        self._excluded = excluded
        self._per_agent = per_agent

    def _client(self, client: str) -> _Client:
        try:
            return self._clients[client]
        except KeyError:
            raise KeyError(f"unknown sorter client {client!r}") from None

    def add(self, client: str, weight: float = 1.0) -> None:
        if client in self._clients:
            raise ValueError(f"sorter client {client!r} already added")
        _check_weight(weight)
        self._clients[client] = _Client(seq=self._next_seq, weight=weight)
        self._next_seq += 1
        self._entered(client)

    def remove(self, client: str) -> None:
        if self._client(client).active:
            self._left(client)
        del self._clients[client]

    def activate(self, client: str) -> None:
        state = self._client(client)
        if not state.active:
            state.active = True
            self._entered(client)

    def deactivate(self, client: str) -> None:
        state = self._client(client)
        if state.active:
            self._left(client)
            state.active = False

    def update_weight(self, client: str, weight: float) -> None:
        _check_weight(weight)
        state = self._client(client)
        if state.active:
            self._left(client)
            state.weight = weight
            self._entered(client)
        else:
            state.weight = weight

    def allocated(self, client: str, agent_id: str, resources: Resources) -> None:
        state = self._client(client)
        if not resources:
            return
        if self._per_agent:
            held = state.allocation.get(agent_id)
            state.allocation[agent_id] = resources if held is None else held + resources
        self._changing(client, state)
        state.held.add(resources.scalar_quantities())
        self._changed(client, state)

    def unallocated(self, client: str, agent_id: str, resources: Resources) -> None:
        state = self._client(client)
        quantities = resources.scalar_quantities()
        try:
            remaining = state.quantities - quantities
            if self._per_agent:
                held = state.allocation.get(agent_id, Resources.EMPTY)
                if held is resources or held == resources:
                    del state.allocation[agent_id]  # the usual case: all of it comes back
                elif left := held - resources:
                    state.allocation[agent_id] = left
                else:
                    del state.allocation[agent_id]
        except ValueError:
            held_here = state.allocation.get(agent_id) if self._per_agent else state.quantities
            raise ValueError(
                f"{client!r} holds {held_here or 'nothing'}"
                + (f" on agent {agent_id!r}" if self._per_agent else "")
                + f", cannot give back {resources}"
            ) from None
        self._changing(client, state)
        state.held.value = remaining
        self._changed(client, state)

    def add_total(self, resources: Resources) -> None:
        self._total.add(resources)

    def remove_total(self, resources: Resources) -> None:
        self._total.remove(resources)

    def allocation(self, client: str) -> Mapping[str, Resources]:
        return self._client(client).allocation

    def share(self, client: str) -> float:
        return self._share(self._client(client))

    def quantities(self, client: str) -> Resources:
        return self._client(client).quantities

    def _share(self, state: _Client) -> float:
        return state.quantities.max_share(self._total.quantities, self._excluded) / state.weight

    def __contains__(self, client: object) -> bool:
        return client in self._clients

    def _entered(self, client: str) -> None:
        """`client` became active (added, activated, or weight changed)."""

    def _left(self, client: str) -> None:
        """`client` stops being active (called while its books are unchanged)."""

    def _changing(self, client: str, state: _Client) -> None:
        """`client`'s allocation is about to change."""

    def _changed(self, client: str, state: _Client) -> None:
        """`client`'s allocation changed."""


class DRFSorter(_Books):
    """Dominant Resource Fairness: lowest weighted dominant share first, ties by age.

    Keys are recomputed lazily: a client whose allocation changed leaves the order and is put
    back by the next `sort()`, so a burst of changes to one client (an agent's worth of
    declines) costs one reposition, and a sorter with a single active client computes no
    shares at all.
    """

    def __init__(
        self,
        total: ClusterTotal | None = None,
        excluded: frozenset[str] = frozenset(),
        *,
        per_agent: bool = True,
    ) -> None:
        super().__init__(total, excluded, per_agent=per_agent)
        self._order: list[str] = []  # active clients with current keys, sorted by them
        self._pending: dict[str, None] = {}  # active clients whose keys are out of date
        self._keys: dict[str, tuple[float, int]] = {}
        self._version = self._total.version  # of the total the keys were computed against

    @property
    def _stale(self) -> bool:
        """The total changed since the keys were computed: every key needs recomputing."""
        return self._version != self._total.version

    def sort(self) -> list[str]:
        return list(self.ordered())

    def ordered(self) -> Sequence[str]:
        if self._stale:
            self._resort()
        elif self._pending:
            if not self._order and len(self._pending) == 1:
                return list(self._pending)  # alone: no share needed
            self._flush()
        return self._order

    def _resort(self) -> None:
        self._order.extend(self._pending)
        self._pending.clear()
        for name in self._order:
            self._keys[name] = self._key(name)
        self._order.sort(key=self._keys.__getitem__)
        self._version = self._total.version

    def _flush(self) -> None:
        for name in self._pending:
            self._keys[name] = self._key(name)
            insort(self._order, name, key=self._keys.__getitem__)
        self._pending.clear()

    def _key(self, client: str) -> tuple[float, int]:
        state = self._clients[client]
        return self._share(state), state.seq

    def _entered(self, client: str) -> None:
        if self._stale:
            self._pending[client] = None  # the next sort recomputes everything
            return
        self._flush()
        self._keys[client] = self._key(client)
        insort(self._order, client, key=self._keys.__getitem__)

    def _left(self, client: str) -> None:
        if client in self._pending:
            del self._pending[client]
        elif self._stale:
            self._order.remove(client)
        else:
            del self._order[self._position(client)]
        self._keys.pop(client, None)

    def _changing(self, client: str, state: _Client) -> None:
        if not state.active or client in self._pending or self._stale:
            return  # (with a stale total the next sort recomputes every key anyway)
        del self._order[self._position(client)]
        self._pending[client] = None

    def _position(self, client: str) -> int:
        return bisect_left(self._order, self._keys[client], key=self._keys.__getitem__)


class RandomSorter(_Books):
    """A weighted random order: a client of weight 2 tends to come before one of weight 1."""

    def __init__(
        self,
        total: ClusterTotal | None = None,
        excluded: frozenset[str] = frozenset(),
        rng: random.Random | None = None,
        *,
        per_agent: bool = True,
    ) -> None:
        super().__init__(total, excluded, per_agent=per_agent)
        self._rng = rng or random.Random()

    def ordered(self) -> Sequence[str]:
        return self.sort()

    def sort(self) -> list[str]:
        # Efraimidis-Spirakis: sorting by u ** (1 / weight) descending is a weighted shuffle.
        draws = {
            name: self._rng.random() ** (1.0 / state.weight)
            for name, state in self._clients.items()
            if state.active
        }
        return sorted(draws, key=draws.__getitem__, reverse=True)


SORTERS: dict[str, type[DRFSorter] | type[RandomSorter]] = {
    "drf": DRFSorter,
    "random": RandomSorter,
}
"""Sorters by the names `--role_sorter` and `--framework_sorter` take."""
