"""The master's registry (ADRs 0004 and 0011): what a newly elected leader recovers.

Pure part: the recovered `RegistryState` (and the agent and framework records a new leader
starts from), and `Registry`, which turns the core's decisions (agent admitted, agent
unreachable, framework stored or removed, weight set) into key/value `Mutation`s handed to a
`Sink`. The sink (`mesos_coordination.store.BatchWriter` in the process)
makes them durable in order and then runs each mutation's `then` callback, so the core
can hold back what must not happen before the write is durable (an agent's admission).
A standby keeps its copy of the registry decoded with a `RegistryDecoder`, the recovered agents'
records built (`PreparedAgent`), and hands the decode to the core it builds when elected
(ADR 0018, "The registry at the election").

Keys: `agents/<id>`, `frameworks/<id>`, `removed_frameworks/<id>`, `weights/<role>`,
`quotas/<role>`, `gone_agents/<id>`, ids percent-encoded; values are the messages of
`protos/registry.proto`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from google.protobuf.message import DecodeError

from mesos_coordination.store import MemorySink, Mutation, Sink, StoreError, split_key, store_key
from mesos_master.records import AgentRecord, FrameworkRecord
from mesos_values.resources import Resources
from protos import mesos_pb2, registry_pb2

log = structlog.get_logger("mesos_master")

AGENTS = "agents"
FRAMEWORKS = "frameworks"
REMOVED_FRAMEWORKS = "removed_frameworks"
WEIGHTS = "weights"
QUOTAS = "quotas"
GONE_AGENTS = "gone_agents"
KINDS = (AGENTS, FRAMEWORKS, REMOVED_FRAMEWORKS, WEIGHTS, QUOTAS, GONE_AGENTS)

# Removed frameworks are remembered (and refused when they subscribe again) up to this many.
MAX_REMOVED_FRAMEWORKS = 1000


@dataclass(slots=True)
class RegistryState:
    """The registry's content, as recovered by a new leader."""

    agents: dict[str, registry_pb2.AgentEntry] = field(default_factory=dict)
    frameworks: dict[str, registry_pb2.FrameworkEntry] = field(default_factory=dict)
    removed_frameworks: dict[str, float] = field(default_factory=dict)
    weights: dict[str, float] = field(default_factory=dict)
    quotas: dict[str, registry_pb2.Quota] = field(default_factory=dict)
    gone_agents: dict[str, float] = field(default_factory=dict)
    prepared: dict[str, PreparedAgent] = field(default_factory=dict, compare=False, repr=False)
    """Agents' records prepared before the election (`RegistryDecoder`), by agent id."""

    @classmethod
    def decode(cls, entries: Mapping[str, bytes]) -> RegistryState:
        """The state stored as `entries`; StoreError names an entry that does not parse."""
        state = cls()
        for key, value in entries.items():
            state.apply(Mutation(key, value))
        return state

    def encode(self) -> dict[str, bytes]:
        """The entries that store this state (the inverse of `decode`)."""
        entries: dict[str, bytes] = {}
        for agent_id, agent in self.agents.items():
            entries[store_key(AGENTS, agent_id)] = agent.SerializeToString()
        for framework_id, framework in self.frameworks.items():
            entries[store_key(FRAMEWORKS, framework_id)] = framework.SerializeToString()
        for framework_id, removed_at in self.removed_frameworks.items():
            removed = registry_pb2.RemovedFramework(removed_at=removed_at)
            entries[store_key(REMOVED_FRAMEWORKS, framework_id)] = removed.SerializeToString()
        for role, weight in self.weights.items():
            entries[store_key(WEIGHTS, role)] = registry_pb2.Weight(
                weight=weight
            ).SerializeToString()
        for role, quota in self.quotas.items():
            entries[store_key(QUOTAS, role)] = quota.SerializeToString()
        for agent_id, gone_at in self.gone_agents.items():
            gone = registry_pb2.GoneAgent(gone_at=gone_at)
            entries[store_key(GONE_AGENTS, agent_id)] = gone.SerializeToString()
        return entries

    def agent_records(self, now: float) -> dict[str, AgentRecord]:
        """The recorded agents as a new leader starts with them: disconnected, with their
        maintenance state and dynamic reservations; the reachable ones await re-registration.
        The records `prepared` from the very entries are handed over (once: later calls build
        new ones)."""
        agents: dict[str, AgentRecord] = {}
        decoded: dict[bytes, Resources] = {}  # agents are often alike: decode each kind once
        prepared = self.prepared
        for agent_id, entry in self.agents.items():
            parts = prepared.pop(agent_id, None)
            if parts is None or parts.entry is not entry:
                parts = PreparedAgent.of(agent_id, entry, decoded)
            agent = parts.record
            agent.last_seen = agent.registered_at = now
            agents[agent_id] = agent
        return agents

    def framework_records(self, now: float, wall_now: float) -> dict[str, FrameworkRecord]:
        """The recorded frameworks, disconnected until they re-subscribe; their failover
        timeouts run from when their schedulers disconnected (from `now` for those connected
        when the previous leader stopped). `wall_now` is the wall-clock time at `now`."""
        frameworks: dict[str, FrameworkRecord] = {}
        for framework_id, entry in self.frameworks.items():
            since = entry.disconnected_since
            disconnected_at = now if since == 0 else now - max(0.0, wall_now - since)
            frameworks[framework_id] = FrameworkRecord(
                framework_id, entry.info, "", None, now, disconnected_at=disconnected_at
            )
        return frameworks

    def apply(self, mutation: Mutation) -> None:
        """Apply one mutation; StoreError when its key or value is not a registry entry."""
        kind, name = split_key(mutation.key)
        self._apply(mutation.key, kind, name, mutation.value)

    def _apply(self, key: str, kind: str, name: str, value: bytes | None) -> None:
        tables: dict[str, dict[str, Any]] = {
            AGENTS: self.agents,
            FRAMEWORKS: self.frameworks,
            REMOVED_FRAMEWORKS: self.removed_frameworks,
            WEIGHTS: self.weights,
            QUOTAS: self.quotas,
            GONE_AGENTS: self.gone_agents,
        }
        entries = tables.get(kind)
        if entries is None or not name:
            raise StoreError(f"unknown registry entry {key!r}")
        if kind == AGENTS:
            self.prepared.pop(name, None)
        if value is None:
            entries.pop(name, None)
            return
        try:
            if kind == AGENTS:
                self.agents[name] = registry_pb2.AgentEntry.FromString(value)
            elif kind == FRAMEWORKS:
                self.frameworks[name] = registry_pb2.FrameworkEntry.FromString(value)
            elif kind == REMOVED_FRAMEWORKS:
                removed = registry_pb2.RemovedFramework.FromString(value)
                self.removed_frameworks[name] = removed.removed_at
            elif kind == WEIGHTS:
                self.weights[name] = registry_pb2.Weight.FromString(value).weight
            elif kind == QUOTAS:
                self.quotas[name] = registry_pb2.Quota.FromString(value)
            else:
                self.gone_agents[name] = registry_pb2.GoneAgent.FromString(value).gone_at
        except DecodeError as exc:
            raise StoreError(f"registry entry {key!r} is corrupt: {exc}") from exc


@dataclass(frozen=True, slots=True)
class PreparedAgent:
    """A recorded agent's record as a new leader starts with it, built from `entry` (for that
    entry only) before the election (ADR 0018, "The registry at the election"): its times are
    set when `RegistryState.agent_records` hands it over, once."""

    entry: registry_pb2.AgentEntry
    record: AgentRecord

    @classmethod
    def of(cls, agent_id: str, entry: registry_pb2.AgentEntry,
           decoded: dict[bytes, Resources]) -> PreparedAgent:
        """The record of `entry`; `decoded` holds the advertised resources decoded so far, by
        their encoding (agents are often alike: each kind is decoded once)."""
        info = entry.info
        key = b"".join(map(_ENCODE_RESOURCE, info.resources))
        advertised = decoded.get(key)
        if advertised is None:
            try:
                advertised = Resources.from_proto(info.resources)
            except ValueError:
                advertised = Resources.EMPTY
            decoded[key] = advertised
        agent = AgentRecord(
            agent_id, info.SerializeToString(),
            with_reservations(advertised, entry.reserved, agent_id), None, 0.0, 0.0,
            reachable=entry.unreachable_since == 0,
        )
        agent.awaiting_reregistration = agent.reachable
        agent.deactivated = entry.deactivated
        agent.principal = entry.principal
        if entry.drain.state != registry_pb2.DrainInfo.UNKNOWN:
            agent.drain = entry.drain
        return cls(entry, agent)


_ENCODE_RESOURCE = mesos_pb2.Resource.SerializeToString


class RegistryDecoder:
    """The decode of a registry's entries, kept as they change (a standby's copy of the
    registry, ADR 0018): `update` decodes only the entries whose value changed since it last
    looked and prepares the records of the agents among them (`PreparedAgent`); `take` hands
    the decode of exactly the entries given over to a new leader and starts again empty."""

    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}  # entry key -> the value its decode is of
        self._state = RegistryState()
        self._resources: dict[bytes, Resources] = {}  # advertised resources by encoding
        self.decoded = 0
        """How many values the last `update` (or `take`) decoded."""

    def update(self, entries: Mapping[str, bytes], budget: int | None = None) -> bool:
        """Decode what changed in `entries` (at most `budget` values: False when some are
        left for the next call); StoreError names an entry that does not parse (nothing of
        it is kept: it is decoded again next time)."""
        values, state = self._values, self._state
        count = self.decoded = 0
        for key, value in entries.items():
            if values.get(key) == value:
                continue
            if budget is not None and count >= budget:
                return False
            count += 1
            self.decoded = count
            kind, name = split_key(key)
            if key in values:  # what it held before, gone even if its new value does not parse
                del values[key]
                state._apply(key, kind, name, None)
            state._apply(key, kind, name, value)
            values[key] = value
            if kind == AGENTS:
                if len(self._resources) > 2 * len(state.agents) + 64:
                    self._resources.clear()  # kinds of agents long gone
                state.prepared[name] = PreparedAgent.of(
                    name, state.agents[name], self._resources)
        for key in [key for key in values if key not in entries]:
            kind, name = split_key(key)
            state._apply(key, kind, name, None)
            del values[key]
        return True

    def take(self, entries: Mapping[str, bytes]) -> RegistryState:
        """The decode of `entries` (what `RegistryState.decode(entries)` returns, decoding
        only what changed since the last `update`), no longer kept here."""
        self.update(entries)
        state = self._state
        self._values, self._state, self._resources = {}, RegistryState(), {}
        return state


def with_reservations(
    advertised: Resources, reserved: Sequence[mesos_pb2.Resource], agent_id: str
) -> Resources:
    """An agent's advertised resources with its recorded dynamic reservations applied; those
    that no longer fit what it advertises (it restarted with less) are dropped."""
    if not reserved:
        return advertised
    try:
        dynamic = Resources.from_proto(reserved)
    except ValueError:
        dynamic = Resources.EMPTY
    if not dynamic:
        return advertised
    base = dynamic.without_dynamic()
    if not advertised.contains(base):
        log.warning("dropping dynamic reservations the agent no longer has resources for",
                    agent_id=agent_id, reserved=str(dynamic), advertised=str(advertised))
        return advertised
    return advertised - base + dynamic



class Registry:
    """The core's writes to the registry, in domain terms; each becomes one `Mutation`."""

    def __init__(
        self,
        sink: Sink,
        removed_frameworks: Mapping[str, float],
        gone_agents: Mapping[str, float] | None = None,
    ) -> None:
        self._sink = sink
        self._removed = dict(removed_frameworks)
        self._gone = dict(gone_agents or {})

    def store_agent(
        self,
        info: mesos_pb2.AgentInfo,
        *,
        unreachable_since: float | None = None,
        deactivated: bool = False,
        drain: registry_pb2.DrainInfo | None = None,
        reserved: Resources = Resources.EMPTY,
        principal: str = "",
        then: Callable[[], None] | None = None,
    ) -> None:
        """Record an admitted agent (reachable unless `unreachable_since` is given) with its
        maintenance state, dynamic reservations and the principal it registered as."""
        entry = registry_pb2.AgentEntry(
            info=info, unreachable_since=unreachable_since or 0.0, deactivated=deactivated,
            reserved=reserved.to_proto(), principal=principal,
        )
        if drain is not None:
            entry.drain.CopyFrom(drain)
        self._sink.write(
            Mutation(store_key(AGENTS, info.id.value), entry.SerializeToString()), then
        )

    def store_framework(
        self, info: mesos_pb2.FrameworkInfo, *, disconnected_since: float | None = None
    ) -> None:
        """Record a framework (connected unless `disconnected_since` is given)."""
        entry = registry_pb2.FrameworkEntry(info=info, disconnected_since=disconnected_since or 0.0)
        self._sink.write(
            Mutation(store_key(FRAMEWORKS, info.id.value), entry.SerializeToString())
        )

    def remove_framework(self, framework_id: str, removed_at: float) -> None:
        """Forget a framework and remember that it was removed (the oldest such memory goes
        once there are more than `MAX_REMOVED_FRAMEWORKS`)."""
        self._sink.write(Mutation(store_key(FRAMEWORKS, framework_id), None))
        removed = registry_pb2.RemovedFramework(removed_at=removed_at)
        self._sink.write(
            Mutation(store_key(REMOVED_FRAMEWORKS, framework_id), removed.SerializeToString())
        )
        self._removed[framework_id] = removed_at
        while len(self._removed) > MAX_REMOVED_FRAMEWORKS:
            oldest = min(self._removed, key=self._removed.__getitem__)
            del self._removed[oldest]
            self._sink.write(Mutation(store_key(REMOVED_FRAMEWORKS, oldest), None))

    def is_removed(self, framework_id: str) -> bool:
        """Whether `framework_id` was removed (and is still remembered)."""
        return framework_id in self._removed

    def mark_agent_gone(self, agent_id: str, gone_at: float) -> None:
        """Forget an agent and remember that it may never come back."""
        self._sink.write(Mutation(store_key(AGENTS, agent_id), None))
        gone = registry_pb2.GoneAgent(gone_at=gone_at)
        self._sink.write(Mutation(store_key(GONE_AGENTS, agent_id), gone.SerializeToString()))
        self._gone[agent_id] = gone_at

    def is_gone(self, agent_id: str) -> bool:
        """Whether an operator marked `agent_id` gone."""
        return agent_id in self._gone

    def set_quota(self, role: str, limits: Resources | None) -> None:
        """Record a role's quota limits (None removes them)."""
        key = store_key(QUOTAS, role)
        if limits is None:
            self._sink.write(Mutation(key, None))
        else:
            quota = registry_pb2.Quota(limits=limits.to_proto())
            self._sink.write(Mutation(key, quota.SerializeToString()))

    def set_weight(self, role: str, weight: float) -> None:
        """Record an operator-set weight."""
        self._sink.write(
            Mutation(store_key(WEIGHTS, role), registry_pb2.Weight(weight=weight)
                     .SerializeToString())
        )


class ImmediateSink(MemorySink):
    """A `MemorySink` whose content reads back as a `RegistryState` (the registry of a master
    run without --zk and --work_dir, and of unit tests)."""

    @property
    def state(self) -> RegistryState:
        return RegistryState.decode(self.entries)
