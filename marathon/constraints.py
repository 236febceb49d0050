"""Marathon's placement constraints: their JSON form and validation, the text attributes
compare as, and which instances go when an app scales down.

Constraints are checked by the SDK's placement kit (`frameworks.placement`): `offer_view`
reads an offer once, with attributes in Marathon's text form (see `format_attribute`), and
`check` runs the app's constraints against it and the app's `Spread`; a rejection names the
constraint and carries the reason `UnfulfilledConstraint` that `/v2/queue` counts in
`processedOffersSummary`.

`select_instances_to_kill` picks which instances go when an app scales down: first those whose
removal evens out `GROUP_BY` spreads, then the rest in `killSelection` order.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from frameworks import placement
from frameworks.placement import UNFULFILLED_CONSTRAINT, AgentView, OfferView, Operator, count_value
from protos import mesos_pb2

__all__ = [
    "UNFULFILLED_CONSTRAINT",
    "AppConstraint",
    "InstanceCondition",
    "KillSelection",
    "Operator",
    "PlacedInstance",
    "agent_view",
    "constraint_errors",
    "format_attribute",
    "offer_view",
    "select_instances_to_kill",
]


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

_OPERATOR_LIST = "UNIQUE, CLUSTER, GROUP_BY, LIKE, UNLIKE, MAX_PER or IS"


@dataclass(frozen=True)
class AppConstraint(placement.Constraint):
    """One `[field, operator, value?]` placement rule, as Marathon's app JSON writes it."""

    @classmethod
    def from_json(cls, raw: Sequence[str]) -> AppConstraint:
        """Build from Marathon's array form; ValueError with Marathon's message when malformed."""
        errors = constraint_errors(raw)
        if errors:
            raise ValueError(errors[0])
        return cls(raw[0], Operator(raw[1]), raw[2] if len(raw) == 3 else None)

    def to_json(self) -> list[str]:
        """Marathon's array form."""
        return [self.field, self.operator.value] + ([] if self.value is None else [self.value])


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
        case Operator.GROUP_BY if value is not None and count_value(value) is None:
            return ["Value was specified but is not a number"]
        case Operator.MAX_PER if value is None or count_value(value) is None:
            return ["Value was not specified or is not a number"]
        case Operator.IS if not value:
            return ["Missing value"]
        case Operator.LIKE | Operator.UNLIKE if value is None:
            return ["A regular expression value must be provided"]
        case Operator.LIKE | Operator.UNLIKE if value is not None and not _compiles(value):
            return [f"'{value}' is not a valid regular expression"]
    return []


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


def agent_view(hostname: str, attributes: Iterable[mesos_pb2.Attribute]) -> AgentView:
    """An agent as Marathon's constraints see it, from its protobuf attributes."""
    return AgentView(hostname, {a.name: format_attribute(a) for a in attributes})


def offer_view(offer: mesos_pb2.Offer) -> OfferView:
    """An offer read once for placement, its attributes in Marathon's text form."""
    return OfferView.of(offer, text=format_attribute)


@dataclass(frozen=True)
class PlacedInstance:
    """An instance of the app already placed on `agent`; timestamps order scale-down."""

    instance_id: str
    agent: AgentView
    condition: InstanceCondition = InstanceCondition.RUNNING
    staged_at: float = 0.0
    started_at: float | None = None


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


def select_instances_to_kill(constraints: Iterable[AppConstraint],
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


def _balance_by_group(constraints: Iterable[AppConstraint], instances: Sequence[PlacedInstance],
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
