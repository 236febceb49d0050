"""Mesos' ACLs and its local authorizer's rule (ADR 0013), as a pure core.

An ACL file (`--acls`) is Mesos' JSON: `permissive` (default true) and, per action, a list of
entries, each naming its subjects (`principals`) and its objects (`roles`, `users`, ...), each
an entity `{"values": [...]}`, `{"type": "ANY"}` or `{"type": "NONE"}`::

    {"permissive": false,
     "register_frameworks": [{"principals": {"values": ["marathon"]},
                              "roles": {"values": ["web", "*"]}}],
     "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}]}

A request (a principal, or none when unauthenticated, and an object, or none for "any")
is checked against the action's entries in order. The first entry whose subjects and objects
both *match* the request decides: the request is allowed when both also *allow* it (an
entity of type NONE matches everything but allows nothing, so such an entry denies). When no
entry matches, `permissive` decides. These are the match and allow tables of Mesos' local
authorizer, so an ACL file written for Mesos means the same here.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ACTIONS", "Acls", "Decision", "Entity", "EntityType", "Rule", "parse_acls"]


ACTIONS: Mapping[str, str] = {
    "register_frameworks": "roles",
    "run_tasks": "users",
    "teardown_frameworks": "framework_principals",
    "reserve_resources": "roles",
    "unreserve_resources": "reserver_principals",
    "create_volumes": "roles",
    "destroy_volumes": "creator_principals",
    "get_quotas": "roles",
    "update_quotas": "roles",
    "view_roles": "roles",
    "update_weights": "roles",
    "get_endpoints": "paths",
    "view_frameworks": "users",
    "view_tasks": "users",
    "view_executors": "users",
    "view_agents": "agents",
    "access_sandboxes": "users",
    "access_mesos_logs": "logs",
    "view_flags": "flags",
    "set_log_level": "level",
    "register_agents": "agents",
    "update_maintenance_schedules": "machines",
    "get_maintenance_schedules": "machines",
    "start_maintenances": "machines",
    "stop_maintenances": "machines",
    "get_maintenance_statuses": "machines",
    "drain_agents": "agents",
    "deactivate_agents": "agents",
    "reactivate_agents": "agents",
    "mark_agents_gone": "agents",
}
"""Every action an ACL file may list, with the name of its objects' field (Mesos' names;
`view_agents` is ours: which agents' details `/state` shows)."""


class EntityType(enum.Enum):
    SOME = "SOME"
    ANY = "ANY"
    NONE = "NONE"


@dataclass(frozen=True, slots=True)
class Entity:
    """The subjects or the objects of an entry, or of a request."""

    type: EntityType
    values: frozenset[str] = frozenset()

    @classmethod
    def of(cls, value: str | None) -> Entity:
        """A request's entity: `value`, or ANY when there is none (no principal, say)."""
        return cls(EntityType.ANY) if value is None else cls(EntityType.SOME,
                                                             frozenset((value,)))

    def matches(self, request: Entity) -> bool:
        """Mesos' match table: whether this entry entity applies to `request` at all."""
        if request.type is EntityType.NONE:
            return self.type is EntityType.NONE
        if request.type is EntityType.ANY:
            return self.type in (EntityType.ANY, EntityType.NONE)
        return self.type is not EntityType.SOME or request.values <= self.values

    def allows(self, request: Entity) -> bool:
        """Mesos' allow table: whether this entry entity lets `request` through."""
        if self.type is EntityType.NONE:
            return request.type is EntityType.NONE
        if self.type is EntityType.ANY:
            return True
        return request.type is EntityType.SOME and request.values <= self.values

    def to_json(self) -> dict[str, Any]:
        if self.type is EntityType.SOME:
            return {"values": sorted(self.values)}
        return {"type": self.type.value}


@dataclass(frozen=True, slots=True)
class Rule:
    """One entry of an action's list."""

    subjects: Entity
    objects: Entity


@dataclass(frozen=True, slots=True)
class Decision:
    """An authorization's outcome, and the reason to give when it refuses."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True, slots=True)
class Acls:
    """A parsed ACL file. The default (no `--acls`) allows everything."""

    permissive: bool = True
    rules: Mapping[str, Sequence[Rule]] = field(default_factory=dict)

    def authorize(self, action: str, principal: str | None, target: str | None) -> Decision:
        """Whether `principal` (None: unauthenticated) may do `action` on `target` (None:
        on anything, e.g. viewing flags)."""
        if action not in ACTIONS:
            raise KeyError(f"unknown ACL action {action!r}")
        subject, obj = Entity.of(principal), Entity.of(target)
        who = f"principal {principal!r}" if principal is not None else "an anonymous client"
        what = f"{action} {ACTIONS[action]} {target!r}" if target is not None else action
        for index, rule in enumerate(self.rules.get(action, ())):
            if rule.subjects.matches(subject) and rule.objects.matches(obj):
                if rule.subjects.allows(subject) and rule.objects.allows(obj):
                    return Decision(True, f"{action}[{index}] allows {who}")
                return Decision(False, f"{who} may not {what}: refused by ACL "
                                       f"{action}[{index}]")
        if self.permissive:
            return Decision(True, f"no ACL of {action} matches; permissive")
        return Decision(False, f"{who} may not {what}: no ACL of {action} allows it and "
                               f"the ACLs are not permissive")


def parse_acls(text: str | bytes) -> Acls:
    """Mesos' ACL JSON; ValueError naming the offending place for anything else."""
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ValueError(f"ACLs are not JSON: {error}") from None
    if not isinstance(document, dict):
        raise ValueError("ACLs must be a JSON object")
    permissive = document.get("permissive", True)
    if not isinstance(permissive, bool):
        raise ValueError("ACLs: 'permissive' must be true or false")
    rules: dict[str, list[Rule]] = {}
    for action, entries in document.items():
        if action == "permissive":
            continue
        if action not in ACTIONS:
            raise ValueError(f"ACLs: unknown action {action!r}; known: "
                             f"{', '.join(sorted(ACTIONS))}")
        if not isinstance(entries, list):
            raise ValueError(f"ACLs: {action!r} must be a list of entries")
        rules[action] = [_rule(action, index, entry) for index, entry in enumerate(entries)]
    return Acls(permissive, rules)


def _rule(action: str, index: int, entry: object) -> Rule:
    where = f"ACLs: {action}[{index}]"
    object_field = ACTIONS[action]
    if not isinstance(entry, dict):
        raise ValueError(f"{where} must be an object")
    unknown = set(entry) - {"principals", object_field}
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}; expected "
                         f"'principals' and {object_field!r}")
    for name in ("principals", object_field):  # required, as in Mesos' proto
        if name not in entry:
            raise ValueError(f"{where}: {name!r} is required")
    return Rule(_entity(f"{where}.principals", entry["principals"]),
                _entity(f"{where}.{object_field}", entry[object_field]))


def _entity(where: str, value: object) -> Entity:
    if not isinstance(value, dict) or set(value) - {"type", "values"}:
        raise ValueError(f"{where} must be {{\"values\": [...]}} or {{\"type\": \"ANY\"|\"NONE\"}}")
    kind = value.get("type", "SOME")
    if kind not in ("SOME", "ANY", "NONE"):
        raise ValueError(f"{where}: type must be SOME, ANY or NONE, not {kind!r}")
    values = value.get("values", [])
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ValueError(f"{where}: values must be a list of strings")
    if kind == "SOME" and not values:
        raise ValueError(f"{where}: values are required (or type ANY or NONE)")
    return Entity(EntityType(kind), frozenset(values) if kind == "SOME" else frozenset())
