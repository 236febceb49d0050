"""Placement: does this offer satisfy these constraints, and if not, why.

    offer --OfferView.of(offer)--> agent (hostname, attributes as text), unreserved resources,
                                   roles: built once per offer, shared by all that is tried on it
    constraints x agent x Spread --check()--> one small checker per operator --> Verdict
                                   (accepted, or the first constraint that said no, and why)

A constraint names a *field* of the agent. Under `FieldScheme.MARATHON` a field is `hostname`
or `@hostname` (the agent's host), `@region`, `@zone` or an attribute; under
`FieldScheme.ATTRIBUTES` it is an attribute, `hostname` standing for the host unless the agent
has an attribute of that name. An agent without the field satisfies only `UNLIKE`. Attribute
values compare as text, in the form the view was built with (Mesos' by default).

UNIQUE, CLUSTER, GROUP_BY and MAX_PER look at where the app's instances already are: a `Spread`
counts them per value of each field asked about and grows as instances are placed, so no check
rescans them; `Spreads` keeps one per app (or job) for an offer round.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Generic, TypeVar

from mesos_values.attributes import format_attribute_value
from mesos_values.resources import Resources
from protos import mesos_pb2

__all__ = [
    "UNFULFILLED_CONSTRAINT",
    "AgentView",
    "Constraint",
    "FieldScheme",
    "OfferView",
    "Operator",
    "Spread",
    "Spreads",
    "Verdict",
    "check",
    "count_value",
    "meets",
]

UNFULFILLED_CONSTRAINT = "UnfulfilledConstraint"
"""The reason of every rejection by a constraint."""

_INT32_MAX = 2**31 - 1
_JAVA_INT = re.compile(r"[+-]?\d+")
_HOSTNAME_FIELDS = ("hostname", "@hostname")
_REGION_FIELD = "@region"
_ZONE_FIELD = "@zone"

AttributeText = Callable[[mesos_pb2.Attribute], str]
"""How an attribute's value reads as text, for comparing with constraint values."""


class Operator(enum.StrEnum):
    """The constraint operators (Marathon's)."""

    UNIQUE = "UNIQUE"
    CLUSTER = "CLUSTER"
    GROUP_BY = "GROUP_BY"
    LIKE = "LIKE"
    UNLIKE = "UNLIKE"
    MAX_PER = "MAX_PER"
    IS = "IS"


def count_value(text: str) -> int | None:
    """The 32-bit integer `text` reads as (the value of GROUP_BY, MAX_PER), None if none.

    As Java's `Integer.parseInt`: an optional sign and digits, no spaces or underscores."""
    if not _JAVA_INT.fullmatch(text):
        return None
    try:
        number = int(text)
    except ValueError:  # more digits than int() takes: not 32 bits anyway
        return None
    return number if -(2**31) <= number <= _INT32_MAX else None


@dataclass(frozen=True)
class Constraint:
    """One placement rule: `field OPERATOR [value]`, e.g. `rack GROUP_BY 3`."""

    field: str
    operator: Operator
    value: str | None = None

    def __str__(self) -> str:
        parts = [self.field, self.operator.value]
        return ":".join(parts if self.value is None else [*parts, self.value])


class FieldScheme(enum.Enum):
    """Which fields a constraint may name; see the module docstring."""

    MARATHON = "marathon"
    ATTRIBUTES = "attributes"


@dataclass(frozen=True)
class AgentView:
    """An agent as constraints see it: its host, attributes as text, region and zone."""

    hostname: str
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    region: str | None = None
    zone: str | None = None
    scheme: FieldScheme = FieldScheme.MARATHON

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    @classmethod
    def of_offer(cls, offer: mesos_pb2.Offer, *, text: AttributeText = format_attribute_value,
                 scheme: FieldScheme = FieldScheme.MARATHON) -> AgentView:
        """The offer's agent, its attributes read as `text`."""
        return cls(offer.hostname, {a.name: text(a) for a in offer.attributes}, scheme=scheme)

    def value_of(self, field_name: str) -> str | None:
        """The agent's value for a constraint field, None when it has none."""
        if self.scheme is FieldScheme.ATTRIBUTES:
            if field_name == "hostname":
                return self.attributes.get(field_name, self.hostname)
            return self.attributes.get(field_name)
        if field_name in _HOSTNAME_FIELDS:
            return self.hostname
        if field_name == _REGION_FIELD:
            return self.region
        if field_name == _ZONE_FIELD:
            return self.zone
        return self.attributes.get(field_name)


@dataclass(frozen=True)
class OfferView:
    """What placement needs of one offer, read once: its agent, unreserved resources, roles."""

    offer: mesos_pb2.Offer
    agent: AgentView
    unreserved: Resources
    """The resources of role `*` without reservations."""
    roles: frozenset[str]
    """The roles of the offer's resources (`*` for unreserved ones)."""

    @classmethod
    def of(cls, offer: mesos_pb2.Offer, *, text: AttributeText = format_attribute_value,
           scheme: FieldScheme = FieldScheme.MARATHON) -> OfferView:
        """Read `offer`; attribute values as `text` under `scheme` (see `AgentView`)."""
        unreserved = Resources.from_proto(
            r for r in offer.resources if (r.role or "*") == "*" and not r.reservations)
        return cls(offer, AgentView.of_offer(offer, text=text, scheme=scheme), unreserved,
                   frozenset(r.role or "*" for r in offer.resources))


class Spread:
    """Where an app's instances are placed, counted per value of each field asked about.

    Counts for a field are made on first use from the agents placed so far and kept up to
    date by `add`, so each check costs the number of distinct values, not of instances.
    """

    def __init__(self, agents: Iterable[AgentView] = ()) -> None:
        self._agents = list(agents)
        self._counts: dict[str, Counter[str | None]] = {}
        self._first: dict[str, str | None] = {}

    def __len__(self) -> int:
        return len(self._agents)

    def add(self, agent: AgentView) -> None:
        """One more instance placed on `agent`."""
        if not self._agents:
            self._first = {name: agent.value_of(name) for name in self._counts}
        self._agents.append(agent)
        for name, counts in self._counts.items():
            counts[agent.value_of(name)] += 1

    def counts(self, field_name: str) -> Counter[str | None]:
        """Placed instances per value of the field (None: agents without it)."""
        counts = self._counts.get(field_name)
        if counts is None:
            counts = Counter(agent.value_of(field_name) for agent in self._agents)
            self._counts[field_name] = counts
            if self._agents:
                self._first[field_name] = self._agents[0].value_of(field_name)
        return counts

    def first(self, field_name: str) -> str | None:
        """The field's value on the agent of the first instance placed (None if none)."""
        self.counts(field_name)
        return self._first.get(field_name)


K = TypeVar("K", bound=Hashable)


class Spreads(Generic[K]):
    """One `Spread` per app (or job) for an offer round, each loaded on first use.

    `placed(key)` lists where the key's instances are. `add` counts a new instance in a
    spread already loaded; a spread loaded later must find it in `placed(key)`.
    """

    def __init__(self, placed: Callable[[K], Iterable[AgentView]]) -> None:
        self._placed = placed
        self._spreads: dict[K, Spread] = {}

    def of(self, key: K) -> Spread:
        """The key's spread."""
        spread = self._spreads.get(key)
        if spread is None:
            spread = self._spreads[key] = Spread(self._placed(key))
        return spread

    def add(self, key: K, agent: AgentView) -> None:
        """One more instance of `key` placed on `agent`."""
        spread = self._spreads.get(key)
        if spread is not None:
            spread.add(agent)


@dataclass(frozen=True)
class Verdict:
    """Whether an offer is acceptable; if not, the reason, the constraint and why."""

    accepted: bool
    reason: str | None = None
    constraint: Constraint | None = None
    detail: str = ""

    @classmethod
    def accept(cls) -> Verdict:
        """The verdict that lets the offer through."""
        return cls(True)

    def __bool__(self) -> bool:
        return self.accepted


def _limit(text: str | None) -> int:
    if text == "inf":
        return _INT32_MAX
    number = None if text is None else count_value(text)
    return 0 if number is None else number


def _unique(constraint: Constraint, value: str, spread: Spread) -> bool:
    return spread.counts(constraint.field)[value] == 0


def _cluster(constraint: Constraint, value: str, spread: Spread) -> bool:
    if constraint.value:
        return value == constraint.value
    return not spread or spread.first(constraint.field) == value


def _group_by(constraint: Constraint, value: str, spread: Spread) -> bool:
    sizes = spread.counts(constraint.field)
    if not sizes[value]:
        return True
    return len(sizes) >= max(0, _limit(constraint.value)) and sizes[value] == min(sizes.values())


def _max_per(constraint: Constraint, value: str, spread: Spread) -> bool:
    return spread.counts(constraint.field)[value] < _limit(constraint.value)


def _like(constraint: Constraint, value: str, spread: Spread) -> bool:
    return bool(constraint.value) and re.fullmatch(constraint.value or "", value) is not None


def _unlike(constraint: Constraint, value: str, spread: Spread) -> bool:
    return bool(constraint.value) and re.fullmatch(constraint.value or "", value) is None


def _is(constraint: Constraint, value: str, spread: Spread) -> bool:
    return value == constraint.value


_CHECKERS: Mapping[Operator, Callable[[Constraint, str, Spread], bool]] = {
    Operator.UNIQUE: _unique,
    Operator.CLUSTER: _cluster,
    Operator.GROUP_BY: _group_by,
    Operator.MAX_PER: _max_per,
    Operator.LIKE: _like,
    Operator.UNLIKE: _unlike,
    Operator.IS: _is,
}



def meets(constraint: Constraint, agent: AgentView, spread: Spread | None = None) -> Verdict:
    """Whether placing one more instance on `agent` keeps `constraint`, given `spread`
    (nothing placed yet when None)."""
    value = agent.value_of(constraint.field)
    if value is None:
        if constraint.operator is Operator.UNLIKE:
            return Verdict.accept()
        return Verdict(False, UNFULFILLED_CONSTRAINT, constraint,
                       f"agent {agent.hostname} has no {constraint.field}")
    if _CHECKERS[constraint.operator](constraint, value, Spread() if spread is None else spread):
        return Verdict.accept()
    return Verdict(False, UNFULFILLED_CONSTRAINT, constraint,
                   f"{constraint.field}={value} fails {constraint}")


def check(constraints: Iterable[Constraint], agent: AgentView,
          spread: Spread | None = None) -> Verdict:
    """Run the constraints in order against `agent`; the first rejection is the verdict."""
    for constraint in constraints:
        verdict = meets(constraint, agent, spread)
        if not verdict:
            return verdict
    return Verdict.accept()
