"""Properties of the master's validation of what schedulers and operators send
(`mesos_master.validation`).

- roles and ids are accepted exactly when a model of Mesos' rules accepts them;
- a task's resources are refused, with a message, exactly when a scalar is not a finite number
  from 0 to MAX_SCALAR or a name is outside the resource name grammar; anything else it asks
  for is launched when the offers hold it;
- durations (failover_timeout, refuse_seconds) are exactly the finite ones Mesos can hold;
- RESERVE and UNRESERVE of arbitrary reservation stacks either convert resources into the same
  quantities or raise MasterError(INVALID_ARGUMENT): never another exception.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_master.errors import ErrorCode, MasterError
from mesos_master.offers import DEFAULT_REFUSE_SECONDS, refuse_seconds
from mesos_master.operator_api import _BadCall, _limits
from mesos_master.validation import (
    MAX_DURATION_SECONDS,
    is_duration,
    plan_conversions,
    reserve_conversion,
    unreserve_conversion,
    validate_framework_info,
    validate_id,
    validate_role,
    validate_task,
)
from mesos_values.resources import MAX_SCALAR, Resources
from protos import mesos_pb2
from tests.unit.test_master import Cluster

ReservationInfo = mesos_pb2.Resource.ReservationInfo

_name_chars = st.sampled_from(list("ab/.-* _\t\n\r\x00\x1f\x7f\\\u00a0\u2028"))


def _role_model(role: str) -> bool:
    """Mesos' role rules: `*`, or `/`-separated components, none empty, `.`, `..` or `*`, none
    starting with `-`, without whitespace, control characters or DEL."""
    if role == "*":
        return True
    components = role.split("/")
    return bool(role) and all(
        c and c not in (".", "..", "*") and not c.startswith("-")
        and not any(ch.isspace() or ord(ch) < 0x20 or ch == "\x7f" for ch in c)
        for c in components)


@given(st.text(_name_chars, max_size=8) | st.sampled_from(["eng/backend", "a\n", "-a", "a/-b"]))
def test_roles_follow_mesos_rules(role: str) -> None:
    problem = validate_role(role)
    assert (problem is None) == _role_model(role), problem
    assert problem is None or problem


@given(st.text(_name_chars, max_size=6))
def test_ids_are_directory_names(value: str) -> None:
    problem = validate_id("task id", value)
    model = bool(value) and value not in (".", "..") and not any(
        ch in "/\\\x7f" or ord(ch) < 0x20 for ch in value)
    assert (problem is None) == model, problem


_OFFERED = Resources.parse("cpus:1000000;mem:1000000;ports:[0-65535];zones:{a,b}")


def _task(resources: list[mesos_pb2.Resource], task_id: str = "t1") -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(name="t")
    task.task_id.value = task_id
    task.command.value = "true"
    task.resources.extend(resources)
    return task


def _check(task: mesos_pb2.TaskInfo) -> tuple[str | None, Resources]:
    return validate_task(task, framework_id="f", agent_id="a", remaining=_OFFERED,
                         task_id_in_use=False, running_executor=None)


def _scalar(name: str, value: float) -> mesos_pb2.Resource:
    resource = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.SCALAR)
    resource.scalar.value = value
    return resource


_scalar_values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -0.0, 0.001, MAX_SCALAR,
                     MAX_SCALAR * (1 + 1e-12), 2.0**63]),
    st.integers(0, 10**6).map(lambda n: n / 1000),
)


@given(st.lists(st.tuples(st.sampled_from(["cpus", "mem", "gpus"]), _scalar_values),
                min_size=1, max_size=3))
def test_task_scalars_are_refused_unless_finite_and_in_range(
        scalars: list[tuple[str, float]]) -> None:
    problem, needed = _check(_task([_scalar(name, value) for name, value in scalars]))
    totals: dict[str, float] = {}
    for name, value in scalars:
        totals[name] = totals.get(name, 0.0) + value
    bad = any(not math.isfinite(v) or v < 0 for _, v in scalars) or any(
        t > MAX_SCALAR for t in totals.values())
    if bad:
        assert problem is not None and "invalid resources" in problem and needed.is_empty()
    elif problem is None:
        assert _OFFERED.contains(needed) and not needed.is_empty()
        for name, total in totals.items():
            assert needed.scalar(name) == round(total * 1000) / 1000 or math.isclose(
                needed.scalar(name), total, abs_tol=0.002)
    else:  # nothing left once rounded to Mesos' thousandths, or more than offered
        assert "uses no resources" in problem or "more resources" in problem


@given(st.text(st.sampled_from(list("cpus\x1f\n ([\"]),*/")), min_size=0, max_size=8))
def test_task_resource_names_outside_the_grammar_are_refused(name: str) -> None:
    problem, needed = _check(_task([_scalar(name, 1.0)]))
    valid_name = bool(name) and all(c.isascii() and (c.isalnum() or c in "_./-") for c in name)
    if not valid_name:
        assert problem is not None and "invalid resources" in problem
    else:
        assert problem is None or "more resources" in problem
        assert problem is not None or needed.scalar(name) == 1.0


@given(st.integers(0, 70000), st.integers(0, 70000), st.text("abc", max_size=2))
def test_task_ranges_and_sets_launch_only_within_the_offers(begin: int, end: int,
                                                            item: str) -> None:
    ports = mesos_pb2.Resource(name="ports", type=mesos_pb2.Value.RANGES)
    ports.ranges.range.add(begin=begin, end=end)
    zones = mesos_pb2.Resource(name="zones", type=mesos_pb2.Value.SET)
    zones.set.item.append(item)
    problem, needed = _check(_task([_scalar("cpus", 0.1), ports, zones]))
    fits = begin <= end <= 65535 and item in ("a", "b")
    assert (problem is None) == fits, problem
    if fits:
        assert needed.ranges_of("ports") == ((begin, end),) and needed.set_of("zones") == {item}


@given(st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [MAX_DURATION_SECONDS, math.nextafter(MAX_DURATION_SECONDS, math.inf), -0.0, 5e-324]))
def test_durations_are_the_finite_ones_mesos_holds(seconds: float) -> None:
    holds = math.isfinite(seconds) and 0 <= seconds <= (2**63 - 1) / 1e9
    assert is_duration(seconds) == holds
    info = mesos_pb2.FrameworkInfo(name="f", failover_timeout=seconds)
    problem = validate_framework_info(info)
    assert (problem is None) == holds, problem
    filters = mesos_pb2.Filters(refuse_seconds=seconds)
    assert refuse_seconds(filters) == (seconds if holds else DEFAULT_REFUSE_SECONDS)


_roles = st.sampled_from(["ads", "ads/x", "eng", "*", "", "a b", "a\n", "-x", "ads/x/y"])


_VALID_STACKS = (
    (("ads", ReservationInfo.DYNAMIC),),
    (("ads", ReservationInfo.STATIC), ("ads/x", ReservationInfo.DYNAMIC)),
    (("ads", ReservationInfo.DYNAMIC), ("ads/x", ReservationInfo.DYNAMIC)),
)


@st.composite
def reservations(draw: st.DrawFn) -> list[mesos_pb2.Resource]:
    """Resources with reservation stacks, about half of them well-formed."""
    resources = []
    shared = draw(st.sampled_from(_VALID_STACKS))
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(["cpus", "mem", "ports"]))
        if name == "ports":
            resource = mesos_pb2.Resource(name=name, type=mesos_pb2.Value.RANGES)
            begin = draw(st.integers(31000, 31016))
            resource.ranges.range.add(begin=begin, end=begin + draw(st.integers(0, 3)))
        else:
            resource = _scalar(name, draw(st.integers(1, 4000).map(lambda n: n / 1000)
                                          | _scalar_values))
        stack = draw(st.sampled_from([shared, shared, shared, (), *_VALID_STACKS]))
        for stack_role, kind in stack:
            resource.reservations.add(type=kind, role=stack_role, principal="p")
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            resource.reservations.add(
                type=draw(st.sampled_from([ReservationInfo.STATIC, ReservationInfo.DYNAMIC])),
                role=draw(_roles), principal=draw(st.sampled_from(["", "p", "q"])))
        resources.append(resource)
    return resources


@given(reservations(), st.sampled_from(["ads", "ads/x", "eng"]), st.sampled_from(["p", "q"]))
def test_reserve_and_unreserve_convert_or_refuse(resources: list[mesos_pb2.Resource], role: str,
                                                 principal: str) -> None:
    try:
        old, new = reserve_conversion(resources, "operation 0", role=role, principal=principal)
    except MasterError as error:
        assert error.code is ErrorCode.INVALID_ARGUMENT and error.message
    else:
        assert new.popped() == old
        assert old.scalar_quantities() == new.scalar_quantities()
        assert all(stack and stack[-1].dynamic and stack[-1].role == role
                   for stack in new.stacks())
    try:
        held, released = unreserve_conversion(resources, "operation 0")
    except MasterError as error:
        assert error.code is ErrorCode.INVALID_ARGUMENT and error.message
    else:
        assert held.popped() == released
        assert held.scalar_quantities() == released.scalar_quantities()


@given(st.lists(st.tuples(st.booleans(), reservations()), max_size=4),
       st.sampled_from(["ads", "ads/x"]))
def test_a_sequence_of_operations_keeps_the_offered_quantities(
        operations: list[tuple[bool, list[mesos_pb2.Resource]]], role: str) -> None:
    offered = Resources.parse("cpus:8;mem:1024;ports:[31000-31020]")
    messages = []
    for reserve, resources in operations:
        operation = mesos_pb2.Offer.Operation(
            type=mesos_pb2.Offer.Operation.RESERVE if reserve
            else mesos_pb2.Offer.Operation.UNRESERVE)
        (operation.reserve if reserve else operation.unreserve).resources.extend(resources)
        messages.append(operation)
    try:
        conversions = plan_conversions(messages, offered, role=role, principal="p")
    except MasterError as error:
        assert error.code is ErrorCode.INVALID_ARGUMENT and error.message
        return
    remaining = offered
    for old, new in conversions:
        assert remaining.contains(old)
        remaining = remaining - old + new
    assert remaining.scalar_quantities() == offered.scalar_quantities()
    assert remaining.ranges_of("ports") == offered.ranges_of("ports")


_weights = st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                     st.sampled_from([0.0, -0.0, 1e-300, 1e308, math.inf, math.nan, 2.5]))


@given(st.dictionaries(st.sampled_from(["a", "b/c", "a b", "*"]), _weights, min_size=1,
                       max_size=3))
def test_weights_are_finite_and_positive_or_all_refused(weights: dict[str, float]) -> None:
    cluster = Cluster()
    valid = all(validate_role(role) is None and math.isfinite(weight) and weight > 0
                for role, weight in weights.items())
    try:
        cluster.master.update_weights(weights)
    except MasterError as error:
        assert not valid and error.code is ErrorCode.INVALID_ARGUMENT and error.message
        assert all(cluster.master.allocator.weight(role) == 1.0 for role in weights)
    else:
        assert valid and all(cluster.master.allocator.weight(role) == weight
                             for role, weight in weights.items())


_amounts = st.one_of(st.integers(-(10**400), 10**400), st.floats(allow_nan=False,
                                                                 allow_infinity=False),
                     st.booleans(), st.text(max_size=2), st.none())


@given(st.dictionaries(st.sampled_from(["cpus", "mem", "a b", ""]),
                       _amounts | st.fixed_dictionaries({"value": _amounts}), max_size=3))
def test_operator_quota_limits_are_resources_or_a_bad_call(limits: dict[str, object]) -> None:
    """SET_QUOTA/UPDATE_QUOTA limits as the operator API reads them from a JSON body."""
    try:
        resources = _limits(limits, "limits")
    except _BadCall as error:
        assert str(error).startswith("limits")
        return
    for name, amount in limits.items():
        value = amount["value"] if isinstance(amount, dict) else amount
        assert isinstance(value, int | float) and 0 <= value <= MAX_SCALAR
        assert resources.scalar(name) == pytest.approx(value, abs=1e-3)
