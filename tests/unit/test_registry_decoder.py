"""A standby's registry decode kept as the entries change (`RegistryDecoder`, ADR 0018): at the
election it is exactly the full decode of the entries the takeover read."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_coordination.store import StoreError, store_key
from mesos_master.records import AgentRecord
from mesos_master.registry import (
    AGENTS,
    FRAMEWORKS,
    GONE_AGENTS,
    QUOTAS,
    REMOVED_FRAMEWORKS,
    WEIGHTS,
    RegistryDecoder,
    RegistryState,
)
from mesos_values.resources import Resources
from protos import mesos_pb2, registry_pb2

SMALL = Resources.parse("cpus:2;mem:1024").to_proto()
LARGE = Resources.parse("cpus:8;mem:16384;disk:100000;ports:[31000-32000]").to_proto()
RESERVED = [mesos_pb2.Resource(
    name="cpus", type=mesos_pb2.Value.SCALAR, scalar=mesos_pb2.Value.Scalar(value=1),
    reservations=[mesos_pb2.Resource.ReservationInfo(
        type=mesos_pb2.Resource.ReservationInfo.DYNAMIC, role="web", principal="ops")])]


def agent_value(index: int, variant: int) -> bytes:
    """One of several registry entries of agent `index` (reachable or not, reserved, ...)."""
    entry = registry_pb2.AgentEntry(
        info=mesos_pb2.AgentInfo(
            id=mesos_pb2.AgentID(value=f"a{index}"), hostname=f"host-{index}",
            resources=LARGE if variant % 2 else SMALL),
        unreachable_since=100.0 if variant == 2 else 0.0,
        deactivated=variant == 3,
        reserved=RESERVED if variant >= 4 else [],
        principal="agent" if variant == 5 else "",
    )
    if variant == 3:
        entry.drain.state = registry_pb2.DrainInfo.DRAINING
    return entry.SerializeToString()


def other_value(kind: str, variant: int) -> bytes:
    if kind == FRAMEWORKS:
        return registry_pb2.FrameworkEntry(
            info=mesos_pb2.FrameworkInfo(name=f"f{variant}", user="root"),
            disconnected_since=float(variant)).SerializeToString()
    if kind == REMOVED_FRAMEWORKS:
        return registry_pb2.RemovedFramework(removed_at=float(variant)).SerializeToString()
    if kind == WEIGHTS:
        return registry_pb2.Weight(weight=1.0 + variant).SerializeToString()
    if kind == QUOTAS:
        limits = Resources.parse(f"cpus:{1 + variant}").to_proto()
        return registry_pb2.Quota(limits=limits).SerializeToString()
    return registry_pb2.GoneAgent(gone_at=float(variant)).SerializeToString()


KEYS = [store_key(AGENTS, f"a{index}") for index in range(6)] + [
    store_key(kind, name) for kind in (FRAMEWORKS, REMOVED_FRAMEWORKS, WEIGHTS, QUOTAS,
                                       GONE_AGENTS) for name in ("x", "y/z")]


def value(key: str, variant: int) -> bytes:
    kind, _, name = key.partition("/")
    if kind == AGENTS:
        return agent_value(int(name[1:]), variant)
    # A new object each time, as a copy read again from ZooKeeper holds.
    return bytes(bytearray(other_value(kind, variant)))


registries = st.dictionaries(st.sampled_from(KEYS), st.integers(0, 5)).map(
    lambda chosen: {key: value(key, variant) for key, variant in chosen.items()})


def record_fields(record: AgentRecord) -> tuple[object, ...]:
    return (record.agent_id, record.encoded_info, record.total, record.outbox,
            record.last_seen, record.registered_at, record.reachable,
            record.awaiting_reregistration, record.deactivated, record.drain, record.principal)


def assert_same(state: RegistryState, expected: RegistryState) -> None:
    assert state == expected
    records, wanted = state.agent_records(5.0), expected.agent_records(5.0)
    assert {k: record_fields(r) for k, r in records.items()} == {
        k: record_fields(r) for k, r in wanted.items()}
    for agent_id, record in records.items():
        assert record.total == wanted[agent_id].total  # Resources compare by value


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(registries, st.none() | st.integers(1, 4)), max_size=5), registries)
def test_the_decode_taken_is_the_full_decode_of_the_entries(
    copies: list[tuple[dict[str, bytes], int | None]], final: dict[str, bytes]
) -> None:
    decoder = RegistryDecoder()
    for entries, budget in copies:  # copies read while standing by, some decoded in part
        decoder.update(entries, budget)
    assert_same(decoder.take(final), RegistryState.decode(final))
    assert decoder.take({}) == RegistryState()  # handed over: it starts again empty


def test_only_the_entries_that_changed_are_decoded_again() -> None:
    decoder = RegistryDecoder()
    entries = {key: value(key, 1) for key in KEYS}
    assert decoder.update(entries)
    before = decoder.take(dict(entries)).agents  # taken at once: nothing left to decode
    decoder.update(entries)
    reread = {key: bytes(bytearray(data)) for key, data in entries.items()}
    reread[KEYS[0]] = value(KEYS[0], 2)
    kept = decoder._state.agents.copy()
    assert decoder.update(reread)
    assert decoder.decoded == 1
    agents = decoder.take(reread).agents
    assert decoder.decoded == 0
    assert all(agents[name] is kept[name] for name in ("a1", "a2", "a3", "a4", "a5"))
    assert agents["a0"] is not kept["a0"] and agents["a0"].unreachable_since == 100.0
    assert agents == {**before, "a0": agents["a0"]}


def test_a_budget_decodes_the_entries_a_few_at_a_time() -> None:
    decoder = RegistryDecoder()
    entries = {key: value(key, 0) for key in KEYS}
    passes = 1
    while not decoder.update(entries, budget=4):
        passes += 1
    assert passes == -(-len(KEYS) // 4)
    assert decoder.update(entries, budget=0)  # nothing changed: nothing to decode
    assert_same(decoder.take(entries), RegistryState.decode(entries))


def test_the_records_prepared_are_handed_over_once_with_the_election_s_times() -> None:
    decoder = RegistryDecoder()
    entries = {KEYS[0]: value(KEYS[0], 4), KEYS[1]: value(KEYS[1], 3)}
    state = decoder.take(entries)
    prepared = state.prepared["a0"]
    assert prepared.entry is state.agents["a0"]
    assert prepared.record.total == Resources.from_proto(SMALL) - Resources.parse("cpus:1") + \
        Resources.from_proto(RESERVED)
    records = state.agent_records(7.0)
    assert records["a0"] is prepared.record
    assert (records["a0"].last_seen, records["a0"].registered_at) == (7.0, 7.0)
    assert records["a1"].deactivated and records["a1"].draining
    # A later call builds new records: the ones handed over belong to their core.
    again = state.agent_records(8.0)
    assert again["a0"] is not records["a0"] and records["a0"].last_seen == 7.0
    assert record_fields(again["a0"])[:4] == record_fields(records["a0"])[:4]


def test_a_record_is_not_prepared_from_an_entry_replaced_since() -> None:
    state = RegistryDecoder().take({KEYS[0]: value(KEYS[0], 4)})
    state.agents["a0"] = registry_pb2.AgentEntry.FromString(value(KEYS[0], 0))
    assert state.agent_records(1.0)["a0"].total == Resources.from_proto(SMALL)


def test_a_corrupt_entry_fails_the_take_as_it_fails_the_full_decode() -> None:
    decoder = RegistryDecoder()
    entries = {key: value(key, 1) for key in KEYS[:3]}
    decoder.update(entries)
    corrupt = {**entries, KEYS[0]: b"\xff\xff\xff"}
    with pytest.raises(StoreError, match="corrupt"):
        RegistryState.decode(corrupt)
    with pytest.raises(StoreError, match="corrupt"):
        decoder.update(corrupt)
    with pytest.raises(StoreError, match="corrupt"):
        decoder.take(corrupt)
    # What the corrupt entry held before is gone, not kept: without it the decode is right.
    del corrupt[KEYS[0]]
    assert_same(decoder.take(corrupt), RegistryState.decode(corrupt))
    with pytest.raises(StoreError, match="unknown registry entry"):
        RegistryDecoder().update({"nonsense/x": b""})
