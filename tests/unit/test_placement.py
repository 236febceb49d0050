"""The SDK's placement kit: each operator's checker, the field schemes, spreads and offer views."""

from __future__ import annotations

import pytest

from frameworks.placement import (
    UNFULFILLED_CONSTRAINT,
    AgentView,
    Constraint,
    FieldScheme,
    OfferView,
    Operator,
    Spread,
    Spreads,
    check,
    count_value,
    meets,
)
from mesos_values.attributes import parse_attributes
from mesos_values.resources import Resources
from protos import mesos_pb2

RACK_A1 = AgentView("a1", {"rack": "ra", "level": "10"})
RACK_A2 = AgentView("a2", {"rack": "ra", "level": "10"})
RACK_B1 = AgentView("b1", {"rack": "rb", "level": "2.5"})
BARE = AgentView("bare")


def rule(text: str) -> Constraint:
    field, operator, *value = text.split(":")
    return Constraint(field, Operator(operator), value[0] if value else None)


CASES = [
    # (id, constraint, offered agent, agents of the instances placed, accepted)
    ("unique-first", "hostname:UNIQUE", RACK_A1, [], True),
    ("unique-taken", "hostname:UNIQUE", RACK_A1, [RACK_A1], False),
    ("unique-other-host", "hostname:UNIQUE", RACK_A2, [RACK_A1], True),
    ("unique-same-rack", "rack:UNIQUE", RACK_A2, [RACK_A1], False),
    ("unique-other-rack", "rack:UNIQUE", RACK_B1, [RACK_A1], True),
    ("cluster-value-match", "hostname:CLUSTER:a1", RACK_A1, [], True),
    ("cluster-value-miss", "hostname:CLUSTER:a1", RACK_A2, [], False),
    ("cluster-first-picks", "hostname:CLUSTER", RACK_A2, [], True),
    ("cluster-follows-first", "hostname:CLUSTER", RACK_A2, [RACK_A1], False),
    ("cluster-same-rack", "rack:CLUSTER", RACK_A2, [RACK_A1], True),
    ("cluster-other-rack", "rack:CLUSTER", RACK_B1, [RACK_A1], False),
    ("cluster-first-lacks-field", "rack:CLUSTER", RACK_A1, [BARE, RACK_A1], False),
    ("group-by-new-group", "rack:GROUP_BY", RACK_B1, [RACK_A1], True),
    ("group-by-only-group", "rack:GROUP_BY", RACK_A2, [RACK_A1], True),
    ("group-by-tie", "rack:GROUP_BY", RACK_A2, [RACK_A1, RACK_B1], True),
    ("group-by-larger", "rack:GROUP_BY", RACK_A2, [RACK_A1, RACK_A2, RACK_B1], False),
    ("group-by-minimum", "rack:GROUP_BY:2", RACK_A2, [RACK_A1], False),
    ("group-by-hostname", "hostname:GROUP_BY", RACK_A1, [RACK_A1, RACK_A2], True),
    ("group-by-missing-is-a-group", "rack:GROUP_BY", RACK_A2, [RACK_A1, BARE], True),
    ("max-per-room", "rack:MAX_PER:2", RACK_A2, [RACK_A1], True),
    ("max-per-full", "rack:MAX_PER:2", RACK_A2, [RACK_A1, RACK_A2], False),
    ("max-per-host", "hostname:MAX_PER:1", RACK_A1, [RACK_A1], False),
    ("like", "hostname:LIKE:a.*", RACK_A1, [], True),
    ("like-whole-value", "hostname:LIKE:a", RACK_A1, [], False),
    ("like-class", "rack:LIKE:r[ab]", RACK_B1, [], True),
    ("like-empty-pattern", "rack:LIKE:", RACK_B1, [], False),
    ("unlike-match", "rack:UNLIKE:ra", RACK_A1, [], False),
    ("unlike-no-match", "rack:UNLIKE:ra", RACK_B1, [], True),
    ("unlike-ignores-placed", "rack:UNLIKE:ra", RACK_B1, [RACK_B1, RACK_B1], True),
    ("unlike-missing-field", "rack:UNLIKE:.*", BARE, [], True),
    ("unlike-empty-pattern", "rack:UNLIKE:", RACK_B1, [], False),
    ("is", "rack:IS:rb", RACK_B1, [], True),
    ("is-ignores-placed", "rack:IS:rb", RACK_B1, [RACK_A1], True),
    ("is-other", "rack:IS:rb", RACK_A1, [], False),
    ("is-number-text", "level:IS:2.5", RACK_B1, [], True),
    ("at-hostname", "@hostname:IS:b1", RACK_B1, [], True),
]


@pytest.mark.parametrize(("text", "offer", "placed", "accepted"),
                         [case[1:] for case in CASES], ids=[case[0] for case in CASES])
def test_operator_semantics(text: str, offer: AgentView, placed: list[AgentView],
                            accepted: bool) -> None:
    assert bool(meets(rule(text), offer, Spread(placed))) is accepted


@pytest.mark.parametrize("operator", [op for op in Operator if op is not Operator.UNLIKE],
                         ids=str)
def test_missing_field_is_refused_except_by_unlike(operator: Operator) -> None:
    value = {Operator.MAX_PER: "3", Operator.LIKE: ".*", Operator.IS: "x"}.get(operator)
    verdict = meets(Constraint("rack", operator, value), BARE)
    assert not verdict
    assert verdict.reason == UNFULFILLED_CONSTRAINT
    assert verdict.detail == "agent bare has no rack"


@pytest.mark.parametrize(("scheme", "field", "value"), [
    (FieldScheme.MARATHON, "hostname", "h1"),
    (FieldScheme.MARATHON, "@hostname", "h1"),
    (FieldScheme.MARATHON, "@zone", "z1"),
    (FieldScheme.MARATHON, "@region", None),
    (FieldScheme.MARATHON, "rack", "r1"),
    (FieldScheme.ATTRIBUTES, "hostname", "named"),
    (FieldScheme.ATTRIBUTES, "@hostname", None),
    (FieldScheme.ATTRIBUTES, "@zone", None),
    (FieldScheme.ATTRIBUTES, "rack", "r1"),
], ids=lambda v: str(v.value if isinstance(v, FieldScheme) else v))
def test_field_schemes(scheme: FieldScheme, field: str, value: str | None) -> None:
    agent = AgentView("h1", {"rack": "r1", "hostname": "named"}, zone="z1", scheme=scheme)
    assert agent.value_of(field) == value


def test_attributes_scheme_falls_back_to_the_host() -> None:
    assert AgentView("h1", scheme=FieldScheme.ATTRIBUTES).value_of("hostname") == "h1"


def test_check_stops_at_the_first_rejection_and_says_why() -> None:
    constraints = [rule("hostname:LIKE:a.*"), rule("rack:IS:ra"), rule("hostname:UNIQUE")]
    assert check(constraints, RACK_A2, Spread([RACK_A1]))
    verdict = check(constraints, RACK_A1, Spread([RACK_A1]))
    assert not verdict
    assert verdict.constraint == rule("hostname:UNIQUE")
    assert verdict.detail == "hostname=a1 fails hostname:UNIQUE"
    assert check(constraints, RACK_B1).constraint == rule("hostname:LIKE:a.*")
    assert check([], BARE)


def test_spread_counts_what_is_added_after_a_field_was_counted() -> None:
    spread = Spread()
    assert spread.counts("rack") == {}
    spread.add(RACK_A1)
    spread.add(BARE)
    assert spread.counts("rack") == {"ra": 1, None: 1}
    assert spread.first("rack") == "ra"
    assert spread.counts("hostname") == {"a1": 1, "bare": 1}
    assert spread.first("hostname") == "a1"
    assert len(spread) == 2


def test_spreads_load_on_first_use_and_count_later_placements() -> None:
    loaded: list[str] = []

    def placed(key: str) -> list[AgentView]:
        loaded.append(key)
        return [RACK_A1]

    spreads: Spreads[str] = Spreads(placed)
    spreads.add("app", RACK_B1)  # not loaded yet: `placed` must list it by then
    assert loaded == []
    assert spreads.of("app").counts("rack") == {"ra": 1}
    spreads.add("app", RACK_B1)
    assert spreads.of("app").counts("rack") == {"ra": 1, "rb": 1}
    assert loaded == ["app"]


@pytest.mark.parametrize(("text", "number"), [
    ("3", 3), ("-2", -2), ("2147483647", 2**31 - 1), ("2147483648", None), ("x", None),
], ids=["small", "negative", "int32-max", "too-large", "text"])
def test_count_value(text: str, number: int | None) -> None:
    assert count_value(text) == number


def test_offer_view_reads_the_offer_once() -> None:
    offer = mesos_pb2.Offer(hostname="h1")
    offer.attributes.extend(parse_attributes("rack:r1;level:1000"))
    for name, role, value in (("cpus", "*", 2.0), ("mem", "ads", 512.0)):
        offer.resources.add(name=name, type=mesos_pb2.Value.SCALAR, role=role).scalar.value = value
    view = OfferView.of(offer)
    assert view.agent == AgentView("h1", {"rack": "r1", "level": "1000"})
    assert view.unreserved == Resources.from_scalars({"cpus": 2.0})
    assert view.roles == frozenset({"*", "ads"})
    assert OfferView.of(offer, text=lambda a: "x").agent.attributes == {"rack": "x", "level": "x"}
