"""Placement constraints: Marathon's operators as a chain of small checkers, and scale-down picks.

Flow for one offer::

    Constraint x Agent(offer) x placed instances --> checker for the operator --> Verdict

`check_offer` runs one checker per constraint of the app and stops at the first rejection; the
rejection names the constraint and carries the reason `UnfulfilledConstraint` that `/v2/queue`
counts in `processedOffersSummary`. A field is `hostname` (or `@hostname`), `@region`, `@zone` or
an agent attribute; attribute values compare in Marathon's text form (see `format_attribute`).
An agent lacking the attribute satisfies only `UNLIKE`.

`select_instances_to_kill` picks which instances go when an app scales down: first those whose
removal evens out `GROUP_BY` spreads, then the rest in `killSelection` order.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType

from mesos_values.attributes import parse_attributes
from protos import mesos_pb2

__all__ = [
    "UNFULFILLED_CONSTRAINT",
    "Agent",
    "Constraint",
    "InstanceCondition",
    "KillSelection",
    "Operator",
    "PlacedInstance",
    "Verdict",
    "check_offer",
    "constraint_errors",
    "format_attribute",
    "meets_constraint",
    "select_instances_to_kill",
]

UNFULFILLED_CONSTRAINT = "UnfulfilledConstraint"
"""The reject reason `/v2/queue` reports for offers that fail a placement constraint."""


class Operator(enum.StrEnum):
    """Marathon's constraint operators."""

    UNIQUE = "UNIQUE"
    CLUSTER = "CLUSTER"
    GROUP_BY = "GROUP_BY"
    LIKE = "LIKE"
    UNLIKE = "UNLIKE"
    MAX_PER = "MAX_PER"
    IS = "IS"


class KillSelection(enum.StrEnum):
    """Which instances an app loses first when it scales down."""

    YOUNGEST_FIRST = "YOUNGEST_FIRST"
    OLDEST_FIRST = "OLDEST_FIRST"


class InstanceCondition(enum.StrEnum):
    """The conditions that order scale-down (unreachable first, running last).

    `UNREACHABLE_INACTIVE` is an instance unreachable for longer than its app's
    `unreachableStrategy.inactiveAfterSeconds`: it no longer counts, so it is never chosen.
    """

    UNREACHABLE = "Unreachable"
    UNREACHABLE_INACTIVE = "UnreachableInactive"
    STAGING = "Staging"
    STARTING = "Starting"
    RUNNING = "Running"
    OTHER = "Other"


_KILL_WEIGHT = {
    InstanceCondition.UNREACHABLE: 1,
    InstanceCondition.STAGING: 2,
    InstanceCondition.STARTING: 3,
    InstanceCondition.RUNNING: 4,
    InstanceCondition.UNREACHABLE_INACTIVE: 5,
    InstanceCondition.OTHER: 5,
}

_HOSTNAME_FIELDS = frozenset({"hostname", "@hostname"})
_REGION_FIELD = "@region"
_ZONE_FIELD = "@zone"
_OPERATOR_LIST = "UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS"


@dataclass(frozen=True)
class Constraint:
    """One `[field, operator, value?]` placement rule."""

    field: str
    operator: Operator
    value: str | None = None

    @classmethod
    def from_json(cls, raw: Sequence[str]) -> Constraint:
        """Build from Marathon's array form; ValueError with Marathon's message when malformed."""
        errors = constraint_errors(raw)
        if errors:
            raise ValueError(errors[0])
        return cls(raw[0], Operator(raw[1]), raw[2] if len(raw) == 3 else None)

    def to_json(self) -> list[str]:
        """Marathon's array form."""
        return [self.field, self.operator.value] + ([] if self.value is None else [self.value])

    def __str__(self) -> str:
        return ":".join(self.to_json())


def constraint_errors(raw: Sequence[object]) -> list[str]:
    """Marathon's validation messages for one constraint array (empty when well-formed)."""
    if not all(isinstance(part, str) for part in raw):
        return ["Constraint definition must be an array of strings in format: "
                "<key>, <operator>[, value]"]
    if len(raw) < 2 or len(raw) > 3:
        return ["Each constraint must have either 2 or 3 fields"]
    field_name, operator, value = raw[0], raw[1], raw[2] if len(raw) == 3 else None
    assert isinstance(field_name, str) and isinstance(operator, str)
    assert value is None or isinstance(value, str)
    if not field_name:
        return ["Missing field and operator"]
    if operator not in Operator.__members__:
        return [f"Constraint operator must be one of the following {_OPERATOR_LIST}"]
    match Operator(operator):
        case Operator.UNIQUE if value is not None:
            return ["Value specified but not used"]
        case Operator.GROUP_BY if value is not None and not _is_int(value):
            return ["Value was specified but is not a number"]
        case Operator.MAX_PER if value is None or not _is_int(value):
            return ["Value was not specified or is not a number"]
        case Operator.IS if not value:
            return ["Missing value"]
        case Operator.LIKE | Operator.UNLIKE if value is None:
            return ["A regular expression value must be provided"]
        case Operator.LIKE | Operator.UNLIKE if value is not None and not _compiles(value):
            return [f"'{value}' is not a valid regular expression"]
    return []


def _is_int(text: str) -> bool:
    try:
        number = int(text)
    except ValueError:
        return False
    return -(2**31) <= number < 2**31


def _compiles(pattern: str) -> bool:
    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def format_attribute(attribute: mesos_pb2.Attribute) -> str:
    """An attribute value in the text Marathon compares constraints against.

    TEXT as is; RANGES `[b-e,...]` sorted by begin; SET `{a,b}` sorted. SCALAR as Marathon's
    JVM formats it (en-US `NumberFormat`): at most three decimals, half-even rounding and a
    thousands separator, so `1000` reads `1,000` and `0.5` reads `0.5`.
    """
    if attribute.type == mesos_pb2.Value.SCALAR:
        return _format_jvm_number(attribute.scalar.value)
    if attribute.type == mesos_pb2.Value.RANGES:
        ranges = sorted(attribute.ranges.range, key=lambda r: r.begin)
        return "[" + ",".join(f"{r.begin}-{r.end}" for r in ranges) + "]"
    if attribute.type == mesos_pb2.Value.SET:
        return "{" + ",".join(sorted(attribute.set.item)) + "}"
    return attribute.text.value


def _format_jvm_number(value: float) -> str:
    rounded = Decimal(repr(value)).quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)
    text = f"{rounded:,f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


@dataclass(frozen=True)
class Agent:
    """What constraints see of an agent: its hostname, attributes (as text), region and zone."""

    hostname: str
    attributes: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    region: str | None = None
    zone: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "attributes", MappingProxyType(dict(self.attributes)))

    @classmethod
    def from_attributes(cls, hostname: str, attributes: Iterable[mesos_pb2.Attribute], *,
                        region: str | None = None, zone: str | None = None) -> Agent:
        """From an offer's or agent's protobuf attributes."""
        return cls(hostname, {a.name: format_attribute(a) for a in attributes}, region, zone)

    @classmethod
    def parse(cls, hostname: str, attributes: str = "") -> Agent:
        """From `--attributes` text, e.g. `Agent.parse("h1", "rack:r1;level:10")`."""
        return cls.from_attributes(hostname, parse_attributes(attributes))

    def value_of(self, field_name: str) -> str | None:
        """The agent's value for a constraint field, None when it has none."""
        if field_name in _HOSTNAME_FIELDS:
            return self.hostname
        if field_name == _REGION_FIELD:
            return self.region
        if field_name == _ZONE_FIELD:
            return self.zone
        return self.attributes.get(field_name)


@dataclass(frozen=True)
class PlacedInstance:
    """An instance of the app already placed on `agent`; timestamps order scale-down."""

    instance_id: str
    agent: Agent
    condition: InstanceCondition = InstanceCondition.RUNNING
    staged_at: float = 0.0
    started_at: float | None = None


@dataclass(frozen=True)
class Verdict:
    """Whether an offer is acceptable; if not, the reason and the constraint that said no."""

    accepted: bool
    reason: str | None = None
    constraint: Constraint | None = None
    detail: str = ""

    @classmethod
    def accept(cls) -> Verdict:
        return cls(True)

    def __bool__(self) -> bool:
        return self.accepted


def _group_sizes(constraint: Constraint, placed: Sequence[PlacedInstance]) -> Counter[str | None]:
    return Counter(p.agent.value_of(constraint.field) for p in placed)


def _unique(constraint: Constraint, offer: str, placed: Sequence[PlacedInstance]) -> bool:
    return all(p.agent.value_of(constraint.field) != offer for p in placed)


def _cluster(constraint: Constraint, offer: str, placed: Sequence[PlacedInstance]) -> bool:
    if constraint.value:
        return offer == constraint.value
    return not placed or placed[0].agent.value_of(constraint.field) == offer


def _group_by(constraint: Constraint, offer: str, placed: Sequence[PlacedInstance]) -> bool:
    minimum = max(0, _int_value(constraint.value, default=0))
    sizes = _group_sizes(constraint, placed)
    if offer not in sizes:
        return True
    return len(sizes) >= minimum and sizes[offer] == min(sizes.values())


def _max_per(constraint: Constraint, offer: str, placed: Sequence[PlacedInstance]) -> bool:
    return _group_sizes(constraint, placed)[offer] < _int_value(constraint.value, default=0)


def _like(constraint: Constraint, offer: str, placed: Sequence[PlacedInstance]) -> bool:
    return bool(constraint.value) and re.fullmatch(constraint.value or "", offer) is not None


def _unlike(constraint: Constraint, offer: str, placed: Sequence[PlacedInstance]) -> bool:
    return bool(constraint.value) and re.fullmatch(constraint.value or "", offer) is None


def _is(constraint: Constraint, offer: str, placed: Sequence[PlacedInstance]) -> bool:
    return offer == constraint.value


_CHECKERS = {
    Operator.UNIQUE: _unique,
    Operator.CLUSTER: _cluster,
    Operator.GROUP_BY: _group_by,
    Operator.MAX_PER: _max_per,
    Operator.LIKE: _like,
    Operator.UNLIKE: _unlike,
    Operator.IS: _is,
}


def _int_value(text: str | None, *, default: int) -> int:
    if text == "inf":
        return 2**31 - 1
    return int(text) if text is not None and _is_int(text) else default


def meets_constraint(constraint: Constraint, offer: Agent,
                     placed: Sequence[PlacedInstance]) -> Verdict:
    """Whether placing one more instance on `offer` keeps `constraint`, given `placed`."""
    value = offer.value_of(constraint.field)
    if value is None:
        if constraint.operator is Operator.UNLIKE:
            return Verdict.accept()
        return Verdict(False, UNFULFILLED_CONSTRAINT, constraint,
                       f"agent {offer.hostname} has no {constraint.field}")
    if _CHECKERS[constraint.operator](constraint, value, placed):
        return Verdict.accept()
    return Verdict(False, UNFULFILLED_CONSTRAINT, constraint,
                   f"{constraint.field}={value} fails {constraint}")


def check_offer(constraints: Iterable[Constraint], offer: Agent,
                placed: Sequence[PlacedInstance]) -> Verdict:
    """Run every constraint of an app against an offer; the first rejection wins."""
    for constraint in constraints:
        verdict = meets_constraint(constraint, offer, placed)
        if not verdict:
            return verdict
    return Verdict.accept()


def _kill_order_key(selection: KillSelection) -> Callable[[PlacedInstance], tuple[int, int, float]]:
    def key(instance: PlacedInstance) -> tuple[int, int, float]:
        weight = _KILL_WEIGHT[instance.condition]
        if instance.condition in (InstanceCondition.STAGING, InstanceCondition.STARTING):
            moment: float | None = instance.staged_at
        else:
            moment = instance.started_at
        if moment is None:
            return (weight, 0, 0.0)
        youngest_first = selection is KillSelection.YOUNGEST_FIRST
        return (weight, 1, -moment if youngest_first else moment)
    return key


def select_instances_to_kill(constraints: Iterable[Constraint],
                             instances: Sequence[PlacedInstance], count: int,
                             kill_selection: KillSelection = KillSelection.YOUNGEST_FIRST,
                             ) -> list[PlacedInstance]:
    """The `count` instances to stop when scaling down, in the order to stop them.

    Instances whose removal evens out a `GROUP_BY` spread go first (Marathon's distribution
    balancing); the rest follow by condition (unreachable, staging, starting, then running)
    and then by `kill_selection` on their start time. Unlike Marathon, which balances in
    arbitrary order, ties inside the balancing step are also broken by that kill order.
    """
    if count < 0 or count > len(instances):
        raise ValueError(f"cannot kill {count} of {len(instances)} instances")
    ordered = sorted(instances, key=_kill_order_key(kill_selection))
    balancing = _balance_by_group(constraints, ordered, count)
    chosen = {i.instance_id for i in balancing}
    return (balancing + [i for i in ordered if i.instance_id not in chosen])[:count]


@dataclass(frozen=True)
class _Distribution:
    groups: tuple[tuple[str, ...], ...]

    def difference(self, without: set[str]) -> int:
        sizes = {len([i for i in group if i not in without]) for group in self.groups}
        return max(sizes) - min(sizes)

    def more_even_without(self, without: set[str]) -> bool:
        after = self.difference(without)
        return after <= 1 or self.difference(set()) > after

    def candidates(self, without: set[str]) -> list[str]:
        remaining = [[i for i in group if i not in without] for group in self.groups]
        sizes = {len(group) for group in remaining}
        if len(sizes) == 1:
            return []
        largest = max(sizes)
        return [i for group in remaining if len(group) == largest for i in group]


def _balance_by_group(constraints: Iterable[Constraint], instances: Sequence[PlacedInstance],
                      count: int) -> list[PlacedInstance]:
    if count == len(instances):
        return list(instances)
    by_id = {i.instance_id: i for i in instances}
    rank = {i.instance_id: position for position, i in enumerate(instances)}
    distributions = []
    for constraint in constraints:
        if constraint.operator is not Operator.GROUP_BY:
            continue
        groups: dict[str | None, list[str]] = {}
        for instance in instances:
            groups.setdefault(instance.agent.value_of(constraint.field), []).append(
                instance.instance_id)
        distributions.append(_Distribution(tuple(tuple(g) for g in groups.values())))
    if not distributions:
        return []
    selected: list[str] = []
    while len(selected) < count:
        taken = set(selected)
        ordered = sorted(distributions, key=lambda d: d.difference(taken), reverse=True)
        tried = [i for d in ordered for i in sorted(d.candidates(taken), key=rank.__getitem__)]
        tried += [i.instance_id for i in instances if i.instance_id not in taken]
        match = next((i for i in tried
                      if all(d.more_even_without(taken | {i}) for d in distributions)), None)
        if match is None:
            break
        selected.append(match)
    return [by_id[i] for i in selected]
