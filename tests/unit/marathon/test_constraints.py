"""Placement constraints: each operator on hostname and attributes, and scale-down picks."""

from __future__ import annotations

import re

import pytest

from marathon.constraints import (
    UNFULFILLED_CONSTRAINT,
    Agent,
    Constraint,
    InstanceCondition,
    KillSelection,
    Operator,
    PlacedInstance,
    check_offer,
    constraint_errors,
    format_attribute,
    meets_constraint,
    select_instances_to_kill,
)
from mesos_values.attributes import parse_attributes

RACK_A1 = Agent.parse("a1", "rack:ra;level:10")
RACK_A2 = Agent.parse("a2", "rack:ra;level:10")
RACK_B1 = Agent.parse("b1", "rack:rb;level:2.5")
BARE = Agent.parse("bare")


def placed(*agents: Agent) -> list[PlacedInstance]:
    return [PlacedInstance(f"i{n}", agent) for n, agent in enumerate(agents)]


def c(text: str) -> Constraint:
    return Constraint.from_json(text.split(":"))


CASES = [
    # (constraint, offer, placed agents, accepted)
    ("hostname:UNIQUE", RACK_A1, [], True),
    ("hostname:UNIQUE", RACK_A1, [RACK_A1], False),
    ("hostname:UNIQUE", RACK_A2, [RACK_A1], True),
    ("rack:UNIQUE", RACK_A2, [RACK_A1], False),          # same rack value
    ("rack:UNIQUE", RACK_B1, [RACK_A1], True),
    ("hostname:CLUSTER:a1", RACK_A1, [], True),
    ("hostname:CLUSTER:a1", RACK_A2, [], False),
    ("hostname:CLUSTER", RACK_A2, [], True),              # first instance picks the host
    ("hostname:CLUSTER", RACK_A2, [RACK_A1], False),
    ("rack:CLUSTER", RACK_A2, [RACK_A1], True),            # same rack, other host
    ("rack:CLUSTER", RACK_B1, [RACK_A1], False),
    ("rack:CLUSTER:rb", RACK_B1, [], True),
    ("rack:GROUP_BY", RACK_B1, [RACK_A1], True),           # rb not used yet
    ("rack:GROUP_BY", RACK_A2, [RACK_A1], True),           # only group is the smallest
    ("rack:GROUP_BY", RACK_A2, [RACK_A1, RACK_B1], True),  # 1 vs 1: ra is a smallest group
    ("rack:GROUP_BY", RACK_A2, [RACK_A1, RACK_A2, RACK_B1], False),  # ra(2) > rb(1)
    ("rack:GROUP_BY:2", RACK_A2, [RACK_A1], False),        # needs 2 groups before reusing ra
    ("hostname:GROUP_BY", RACK_A1, [RACK_A1, RACK_A2], True),
    ("rack:MAX_PER:2", RACK_A2, [RACK_A1], True),
    ("rack:MAX_PER:2", RACK_A2, [RACK_A1, RACK_A2], False),
    ("hostname:MAX_PER:1", RACK_A1, [RACK_A1], False),
    ("hostname:LIKE:a.*", RACK_A1, [], True),
    ("hostname:LIKE:a", RACK_A1, [], False),               # whole-value match
    ("rack:LIKE:r[ab]", RACK_B1, [], True),
    ("rack:UNLIKE:ra", RACK_A1, [], False),
    ("rack:UNLIKE:ra", RACK_B1, [], True),
    ("rack:IS:rb", RACK_B1, [], True),
    ("rack:IS:rb", RACK_A1, [], False),
    ("level:IS:10", RACK_A1, [], True),                    # scalar 10.0 formats as 10
    ("level:IS:2.5", RACK_B1, [], True),
    ("@hostname:IS:b1", RACK_B1, [], True),
]


@pytest.mark.parametrize(("text", "offer", "agents", "accepted"), CASES,
                         ids=[f"{case[0]}-{n}" for n, case in enumerate(CASES)])
def test_operator_semantics(text: str, offer: Agent, agents: list[Agent],
                            accepted: bool) -> None:
    assert bool(meets_constraint(c(text), offer, placed(*agents))) is accepted


@pytest.mark.parametrize("operator", [op for op in Operator if op is not Operator.UNLIKE])
def test_missing_attribute_is_refused_except_by_unlike(operator: Operator) -> None:
    value = {Operator.MAX_PER: "3", Operator.LIKE: ".*", Operator.IS: "x"}.get(operator)
    constraint = Constraint("rack", operator, value)
    verdict = meets_constraint(constraint, BARE, [])
    assert not verdict
    assert verdict.reason == UNFULFILLED_CONSTRAINT
    assert "has no rack" in verdict.detail


def test_unlike_accepts_agents_without_the_attribute() -> None:
    assert meets_constraint(c("rack:UNLIKE:.*"), BARE, [])


def test_placed_instances_without_the_attribute_form_their_own_group() -> None:
    # Marathon groups instances by Option[value]: those on agents lacking the field count as
    # one more group, so ra (1 instance) is as small as the None group (1 instance).
    assert meets_constraint(c("rack:GROUP_BY"), RACK_A2, placed(RACK_A1, BARE))


@pytest.mark.parametrize(("attributes", "text"), [
    ("level:10", "10"),
    ("level:0.5", "0.5"),
    ("level:1000", "1,000"),
    ("level:1.23456", "1.235"),
    ("ids:[7-9,1-5]", "[1-5,7-9]"),
    ("tags:{y,x}", "{x,y}"),
    ("rack:r1", "r1"),
], ids=["int-scalar", "fraction", "grouping", "three-decimals", "ranges", "set", "text"])
def test_attribute_text_form_matches_marathon(attributes: str, text: str) -> None:
    assert format_attribute(parse_attributes(attributes)[0]) == text


def test_check_offer_stops_at_first_rejection_and_names_it() -> None:
    constraints = [c("hostname:LIKE:a.*"), c("rack:IS:ra"), c("hostname:UNIQUE")]
    assert check_offer(constraints, RACK_A2, placed(RACK_A1))
    verdict = check_offer(constraints, RACK_A1, placed(RACK_A1))
    assert not verdict
    assert verdict.constraint == c("hostname:UNIQUE")
    assert verdict.reason == "UnfulfilledConstraint"
    assert check_offer(constraints, RACK_B1, []).constraint == c("hostname:LIKE:a.*")


@pytest.mark.parametrize(("raw", "error"), [
    (["hostname", "UNIQUE", "x"], "Value specified but not used"),
    (["hostname"], "Each constraint must have either 2 or 3 fields"),
    (["a", "b", "c", "d"], "Each constraint must have either 2 or 3 fields"),
    (["", "UNIQUE"], "Missing field and operator"),
    (["rack", "NEAR"], "Constraint operator must be one of the following UNIQUE, CLUSTER, "
                       "GROUP_BY, LIKE, UNLIKE, MAX_PER or IS"),
    (["rack", "GROUP_BY", "three"], "Value was specified but is not a number"),
    (["rack", "MAX_PER"], "Value was not specified or is not a number"),
    (["rack", "MAX_PER", "x"], "Value was not specified or is not a number"),
    (["rack", "LIKE"], "A regular expression value must be provided"),
    (["rack", "UNLIKE", "[a-"], "'[a-' is not a valid regular expression"),
    (["rack", "IS"], "Missing value"),
], ids=lambda v: "-".join(v) if isinstance(v, list) else "")
def test_malformed_constraints(raw: list[str], error: str) -> None:
    assert constraint_errors(raw) == [error]
    with pytest.raises(ValueError, match=re.escape(error)):
        Constraint.from_json(raw)


@pytest.mark.parametrize("raw", [
    ["hostname", "UNIQUE"], ["rack", "CLUSTER"], ["rack", "CLUSTER", "r1"],
    ["rack", "GROUP_BY"], ["rack", "GROUP_BY", "3"], ["rack", "MAX_PER", "2"],
    ["rack", "LIKE", "r[0-9]+"], ["rack", "UNLIKE", "x"], ["rack", "IS", "r1"],
])
def test_well_formed_constraints_round_trip(raw: list[str]) -> None:
    assert constraint_errors(raw) == []
    assert Constraint.from_json(raw).to_json() == raw


def instance(name: str, agent: Agent, started: float,
             condition: InstanceCondition = InstanceCondition.RUNNING) -> PlacedInstance:
    return PlacedInstance(name, agent, condition, staged_at=started, started_at=started)


def test_kill_selection_without_constraints() -> None:
    instances = [instance("old", RACK_A1, 1), instance("mid", RACK_A1, 2),
                 instance("new", RACK_A1, 3)]
    youngest = select_instances_to_kill([], instances, 2, KillSelection.YOUNGEST_FIRST)
    oldest = select_instances_to_kill([], instances, 2, KillSelection.OLDEST_FIRST)
    assert [i.instance_id for i in youngest] == ["new", "mid"]
    assert [i.instance_id for i in oldest] == ["old", "mid"]


def test_unhealthy_conditions_go_before_running_ones() -> None:
    instances = [instance("running", RACK_A1, 5),
                 instance("staging", RACK_A1, 1, InstanceCondition.STAGING),
                 instance("lost", RACK_A1, 0, InstanceCondition.UNREACHABLE)]
    chosen = select_instances_to_kill([], instances, 2, KillSelection.OLDEST_FIRST)
    assert [i.instance_id for i in chosen] == ["lost", "staging"]


def test_group_by_balance_wins_over_kill_selection() -> None:
    # ra holds 3 instances, rb holds 1: killing 2 must take both from ra even though the
    # youngest instance runs on rb.
    instances = [instance("ra-1", RACK_A1, 1), instance("ra-2", RACK_A2, 2),
                 instance("ra-3", RACK_A1, 3), instance("rb-1", RACK_B1, 9)]
    chosen = select_instances_to_kill([c("rack:GROUP_BY")], instances, 2)
    assert sorted(i.instance_id for i in chosen) == ["ra-2", "ra-3"]
    assert [i.instance_id for i in chosen] == ["ra-3", "ra-2"]  # youngest first within ra


def test_balanced_groups_stay_balanced_and_follow_kill_selection() -> None:
    instances = [instance("ra-old", RACK_A1, 1), instance("rb-old", RACK_B1, 2),
                 instance("ra-new", RACK_A2, 3), instance("rb-new", RACK_B1, 4)]
    chosen = select_instances_to_kill([c("rack:GROUP_BY")], instances, 2,
                                      KillSelection.OLDEST_FIRST)
    assert [i.instance_id for i in chosen] == ["ra-old", "rb-old"]


def test_kill_count_bounds() -> None:
    instances = [instance("a", RACK_A1, 1)]
    assert select_instances_to_kill([c("rack:GROUP_BY")], instances, 1) == instances
    assert select_instances_to_kill([], instances, 0) == []
    with pytest.raises(ValueError, match="cannot kill 2 of 1"):
        select_instances_to_kill([], instances, 2)
