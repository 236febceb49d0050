"""Resources: parsing (text, JSON, proto), arithmetic, containment and formatting."""

from __future__ import annotations

import pytest

from mesos_values.resources import Reservation, Resources
from protos import mesos_pb2

R = Resources.parse


def test_parse_text_all_kinds() -> None:
    r = R("cpus:4;mem:4096;disk:10000;ports:[31000-32000];gpus:1;zones:{a,b}")
    assert r.scalar("cpus") == 4.0
    assert r.scalar("mem") == 4096.0
    assert r.scalar("gpus") == 1.0
    assert r.scalar("absent") == 0.0
    assert r.ranges_of("ports") == ((31000, 32000),)
    assert r.ranges_of("absent") == ()
    assert r.set_of("zones") == frozenset({"a", "b"})
    assert dict(r.scalars) == {"cpus": 4.0, "mem": 4096.0, "disk": 10000.0, "gpus": 1.0}


def test_parse_tolerates_whitespace_and_trailing_separator() -> None:
    r = R(" cpus : 2 ; ports: [ 1-2 , 5 - 6 ] ; ")
    assert r == R("cpus:2;ports:[1-2,5-6]")


def test_ranges_are_sorted_and_merged() -> None:
    # 5-6 and 1-3 sort; 3-4 overlaps/adjoins both; 10 is a single-port range
    r = R("ports:[5-6,1-3,3-4,10]")
    assert r.ranges_of("ports") == ((1, 6), (10, 10))
    assert str(r) == "ports:[1-6,10-10]"


def test_same_name_adds_up() -> None:
    assert R("cpus:1;cpus:2.5") == R("cpus:3.5")


def test_zero_scalars_and_empty_collections_vanish() -> None:
    assert R("cpus:0;ports:[];s:{}").is_empty()
    assert R("") == Resources.EMPTY
    assert not Resources.EMPTY
    assert R("cpus:1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cpus:-1", "negative"),
        ("ports:[32000-31000]", "begin is greater than end"),
        ("ports:[a-b]", "malformed range"),
        ("ports:[1-2", "unbalanced"),
        ("cpus:1;cpus:[1-2]", "both as scalar and as ranges"),
        ("x:{a};x:1", "both as set and as scalar"),
        ("cpus(ads:8", "malformed reservation"),
        ("cpus", "expected 'name:value'"),
        ("cpus:four", "cannot parse value"),
        ("cpus:nan", "non-finite"),
        ("bad name:1", "invalid resource name"),
        ("s:{a,,b}", "empty set item"),
        ("cpus:1e308", "over the largest allowed, 1e\\+15"),
        ("cpus:6e14;cpus:6e14", "over the largest allowed"),
    ],
    ids=["negative", "begin>end", "range-syntax", "unbalanced", "type-clash", "type-clash-set",
         "reservation", "no-colon", "not-a-number", "nan", "bad-name", "empty-item", "huge",
         "huge-sum"],
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        R(text)


def test_parse_json() -> None:
    r = R(
        '[{"name":"cpus","type":"SCALAR","scalar":{"value":4}},'
        ' {"name":"ports","type":"RANGES","ranges":{"range":[{"begin":31000,"end":32000}]}},'
        ' {"name":"zones","type":"SET","set":{"item":["a"]}, "role": "*"}]'
    )
    assert r == R("cpus:4;ports:[31000-32000];zones:{a}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1", "do not parse"),
        ("[1]", "expected a resource object"),
        ('[{"type":"SCALAR","scalar":{"value":1}}]', "without a string 'name'"),
        ('[{"name":"cpus","type":"SCALAR","scalar":{"value":-1}}]', "negative"),
        ('[{"name":"cpus","type":"SCALAR","scalar":{"value":"1"}}]', "expected a number"),
        ('[{"name":"p","type":"RANGES","ranges":{"range":[{"begin":5,"end":1}]}}]',
         "begin is greater than end"),
        ('[{"name":"cpus","type":"SCALAR","scalar":{"value":1},"reservations":[{}]}]',
         "needs a string 'role'"),
        ('[{"name":"cpus","type":"TEXT","text":{"value":"x"}}]', "unknown type"),
    ],
    ids=["bad-json", "not-object", "no-name", "negative", "string-value", "begin>end",
         "reservation", "unknown-type"],
)
def test_parse_json_rejects(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        R(text)


def test_fixed_point_arithmetic() -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in binary floating point; Mesos' fixed point gives 0.3
    assert (R("cpus:0.1") + R("cpus:0.2")).scalar("cpus") == 0.3
    assert R("cpus:0.3") - R("cpus:0.1") - R("cpus:0.2") == Resources.EMPTY
    assert R("cpus:0.0001").is_empty()  # below 0.001 rounds away


def test_add_and_subtract_mixed() -> None:
    total = R("cpus:4;mem:1024;ports:[1-10];zones:{a,b}")
    used = R("cpus:1.5;mem:1024;ports:[3-4,10-10];zones:{a}")
    left = total - used
    assert left == R("cpus:2.5;ports:[1-2,5-9];zones:{b}")
    assert left.scalar("mem") == 0.0  # fully used scalars disappear
    assert left + used == total


def test_add_merges_ranges_and_sets() -> None:
    assert R("ports:[1-2]") + R("ports:[3-5,9-9]") == R("ports:[1-5,9-9]")
    assert R("s:{a}") + R("s:{b}") == R("s:{a,b}")
    with pytest.raises(ValueError, match="different types"):
        R("x:1") + R("x:[1-2]")


def test_subtract_requires_containment() -> None:
    with pytest.raises(ValueError, match="not contained"):
        R("cpus:1") - R("cpus:2")
    with pytest.raises(ValueError, match="not contained"):
        R("ports:[1-5]") - R("ports:[5-6]")


@pytest.mark.parametrize(
    ("outer", "inner", "expected"),
    [
        ("cpus:2;mem:10", "cpus:2", True),
        ("cpus:2;mem:10", "cpus:2.001", False),
        ("cpus:2", "gpus:1", False),
        ("ports:[1-5,10-20]", "ports:[2-3,10-20]", True),
        ("ports:[1-5,10-20]", "ports:[5-10]", False),
        ("ports:[1-5,6-8]", "ports:[4-7]", True),  # 1-5 and 6-8 merge into 1-8
        ("s:{a,b}", "s:{a}", True),
        ("s:{a,b}", "s:{c}", False),
        ("cpus:1", "", True),
    ],
)
def test_contains(outer: str, inner: str, expected: bool) -> None:
    assert R(outer).contains(R(inner)) is expected


def test_proto_round_trip() -> None:
    r = R("cpus:2.5;mem:512;ports:[1-2,4-5];zones:{b,a}")
    messages = r.to_proto()
    assert [m.name for m in messages] == ["cpus", "mem", "ports", "zones"]
    assert all(m.role == "*" for m in messages)
    assert messages[2].type == mesos_pb2.Value.RANGES
    assert [(x.begin, x.end) for x in messages[2].ranges.range] == [(1, 2), (4, 5)]
    assert list(messages[3].set.item) == ["a", "b"]
    assert Resources.from_proto(messages) == r


def test_legacy_role_field_is_a_static_reservation() -> None:
    reserved = mesos_pb2.Resource(name="cpus", type=mesos_pb2.Value.SCALAR, role="ads")
    reserved.scalar.value = 1
    assert Resources.from_proto([reserved]) == R("cpus(ads):1")


def test_reservations_are_kept_apart_but_counted_under_their_name() -> None:
    mixed = R("cpus:2;cpus(ads):8;mem(ads):1024;ports(ads):[31000-31009];ports:[32000-32000]")
    assert str(mixed) == "cpus:2;cpus(ads):8;mem(ads):1024;ports(ads):[31000-31009];" \
        "ports:[32000-32000]"
    assert mixed.scalar("cpus") == 10 and mixed.scalars == {"cpus": 10, "mem": 1024}
    assert mixed.ranges_of("ports") == ((31000, 31009), (32000, 32000))
    assert mixed.names() == {"cpus", "mem", "ports"}
    assert mixed.scalar_quantities() == R("cpus:10;mem:1024")
    assert mixed.unreserved() == R("cpus:2;ports:[32000-32000]")
    assert mixed.reservation_roles() == {"ads"}
    assert not mixed.contains(R("cpus:3"))  # reserved cpus are not plain cpus
    assert mixed.contains(R("cpus(ads):3"))
    assert (mixed - R("cpus(ads):8")).scalar("cpus") == 2
    assert Resources.from_proto(mixed.to_proto()) == mixed


def test_allocatable_to_follows_the_role_hierarchy() -> None:
    bag = R("cpus:1;cpus(eng):2;cpus(ads):4")
    assert bag.allocatable_to("*") == R("cpus:1")
    assert bag.allocatable_to("eng") == R("cpus:1;cpus(eng):2")
    assert bag.allocatable_to("eng/backend") == R("cpus:1;cpus(eng):2")
    assert bag.allocatable_to("engineering") == R("cpus:1")


def test_dynamic_reservations_push_and_pop_with_principal_and_labels() -> None:
    dynamic = Reservation("eng/backend", dynamic=True, principal="ops", labels=(("k", "v"),))
    reserved = R("cpus(eng):2;mem:64").pushed(dynamic)
    [cpus] = [r for r in reserved.to_proto() if r.name == "cpus"]
    assert [(r.role, r.type) for r in cpus.reservations] == [
        ("eng", mesos_pb2.Resource.ReservationInfo.STATIC),
        ("eng/backend", mesos_pb2.Resource.ReservationInfo.DYNAMIC)]
    assert cpus.reservations[1].principal == "ops"
    assert cpus.reservations[1].labels.labels[0].key == "k"
    assert Resources.from_proto(reserved.to_proto()) == reserved
    assert reserved.popped() == R("cpus(eng):2;mem:64").unreserved() + R("cpus(eng):2")
    with pytest.raises(ValueError, match="unreserve unreserved"):
        R("cpus:1").popped()


def test_covering_takes_unreserved_first_then_reservations() -> None:
    offer = R("cpus:1;cpus(ads):4;mem(ads):512;ports(ads):[31000-31001]")
    assert offer.covering(R("cpus:0.5")) == R("cpus:0.5")
    assert offer.covering(R("cpus:3;mem:100;ports:[31001-31001]")) == R(
        "cpus:1;cpus(ads):2;mem(ads):100;ports(ads):[31001-31001]")
    assert offer.covering(R("cpus:6")) is None
    assert offer.covering(R("cpus(ads):1;cpus:1")) == R("cpus(ads):1;cpus:1")


def test_text_round_trip_and_format() -> None:
    text = "cpus:0.5;mem:4096;ports:[31000-32000];zones:{a,b}"
    assert str(R(text)) == text
    assert R(str(R(text))) == R(text)
    assert repr(R("cpus:1")) == "Resources.parse('cpus:1')"


def test_equality_and_hash_ignore_order() -> None:
    a = R("cpus:1;mem:2;ports:[1-2]")
    b = R("ports:[1-2];mem:2;cpus:1")
    assert a == b
    assert hash(a) == hash(b)
    assert a != R("cpus:1;mem:2")


def test_scalar_quantities_and_from_scalars() -> None:
    r = R("cpus:1;mem:2;ports:[1-2]")
    assert r.scalar_quantities() == Resources.from_scalars({"cpus": 1, "mem": 2})
    assert r.names() == {"cpus", "mem", "ports"}


def test_immutable() -> None:
    r = R("cpus:1")
    with pytest.raises(AttributeError):
        r._scalars = {}  # type: ignore[misc]
    scalars = r.scalars
    with pytest.raises(TypeError):
        scalars["cpus"] = 2  # type: ignore[index]


def test_from_proto_shared_gives_one_value_per_encoding_and_remembers_no_error() -> None:
    protos = Resources.parse("cpus:0.1;mem:32;ports:[31000-31001]").to_proto()
    first = Resources.from_proto_shared(protos)
    assert first == Resources.from_proto(protos)
    again = Resources.from_proto_shared([type(p).FromString(p.SerializeToString()) for p in protos])
    assert again is first  # the same encoded messages: the same (immutable) value
    other = Resources.from_proto_shared(Resources.parse("cpus:0.2;mem:32").to_proto())
    assert other is not first and other == Resources.parse("cpus:0.2;mem:32")
    bad = Resources.parse("cpus:1").to_proto()
    bad[0].scalar.value = -1.0
    for _ in range(2):  # raised each time, as from_proto raises it
        with pytest.raises(ValueError):
            Resources.from_proto_shared(bad)
