"""Placement constraints: each operator on hostname and attributes, and scale-down picks."""

from __future__ import annotations

import re

import pytest

from frameworks.placement import AgentView, check
from marathon.constraints import (
    AppConstraint,
    InstanceCondition,
    KillSelection,
    PlacedInstance,
    agent_view,
    constraint_errors,
    format_attribute,
    offer_view,
    select_instances_to_kill,
)
from mesos_values.attributes import parse_attributes
from protos import mesos_pb2


def agent(hostname: str, attributes: str = "") -> AgentView:
    return agent_view(hostname, parse_attributes(attributes))


RACK_A1 = agent("a1", "rack:ra;level:10")
RACK_A2 = agent("a2", "rack:ra;level:10")
RACK_B1 = agent("b1", "rack:rb;level:2.5")


def c(text: str) -> AppConstraint:
    return AppConstraint.from_json(text.split(":"))


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


@pytest.mark.parametrize(("text", "accepted"), [
    ("level:IS:1,000", True), ("level:IS:1000", False), ("hostname:IS:h1", True),
    ("@hostname:IS:h1", True), ("@zone:UNLIKE:z", True), ("@zone:LIKE:.*", False),
], ids=["jvm-number", "plain-number", "hostname", "at-hostname", "zone-unlike", "zone-like"])
def test_offers_are_seen_with_marathon_text_and_fields(text: str, accepted: bool) -> None:
    offer = mesos_pb2.Offer(hostname="h1")
    offer.attributes.extend(parse_attributes("level:1000;hostname:other"))
    assert bool(check([c(text)], offer_view(offer).agent)) is accepted


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
        AppConstraint.from_json(raw)


@pytest.mark.parametrize("raw", [
    ["hostname", "UNIQUE"], ["rack", "CLUSTER"], ["rack", "CLUSTER", "r1"],
    ["rack", "GROUP_BY"], ["rack", "GROUP_BY", "3"], ["rack", "MAX_PER", "2"],
    ["rack", "LIKE", "r[0-9]+"], ["rack", "UNLIKE", "x"], ["rack", "IS", "r1"],
])
def test_well_formed_constraints_round_trip(raw: list[str]) -> None:
    assert constraint_errors(raw) == []
    assert AppConstraint.from_json(raw).to_json() == raw


def instance(name: str, agent: AgentView, started: float,
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
