"""Reservations of resources to roles, and the internal keys that tell reserved resources
apart: a resource's name plus its encoded reservation stack (`mesos_values.resources`)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from protos import mesos_pb2

__all__ = [
    "KEY_SEPARATOR",
    "Reservation",
    "ReservationStack",
    "is_reserved_key",
    "key_label",
    "key_parts",
    "reserved_within",
    "resource_key",
]

KEY_SEPARATOR = "\x1f"
"""Separates a resource's name from its encoded reservation stack in internal keys."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """One level of a reservation stack: for `role`, static or dynamic (with its principal and
    labels, as given to RESERVE)."""

    role: str
    dynamic: bool = False
    principal: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    def to_proto(self) -> mesos_pb2.Resource.ReservationInfo:
        info = mesos_pb2.Resource.ReservationInfo(
            type=mesos_pb2.Resource.ReservationInfo.DYNAMIC if self.dynamic
            else mesos_pb2.Resource.ReservationInfo.STATIC,
            role=self.role,
            principal=self.principal,
        )
        for key, value in self.labels:
            info.labels.labels.add(key=key, value=value)
        return info

    @classmethod
    def from_proto(cls, info: mesos_pb2.Resource.ReservationInfo) -> Reservation:
        if not info.role:
            raise ValueError("a reservation needs a role")
        return cls(
            role=info.role,
            dynamic=info.type == mesos_pb2.Resource.ReservationInfo.DYNAMIC,
            principal=info.principal,
            labels=tuple((label.key, label.value) for label in info.labels.labels),
        )


ReservationStack = tuple[Reservation, ...]
"""Reservations from the least to the most refined; empty for unreserved resources."""


def resource_key(name: str, stack: ReservationStack) -> str:
    """The internal key of resource `name` under `stack`: the name alone when unreserved."""
    if not stack:
        return name
    encoded = json.dumps(
        [[r.role, r.dynamic, r.principal, [list(label) for label in r.labels]] for r in stack],
        separators=(",", ":"),
    )
    return f"{name}{KEY_SEPARATOR}{encoded}"


@functools.lru_cache(maxsize=4096)
def key_parts(key: str) -> tuple[str, ReservationStack]:
    """(name, reservation stack) of an internal key."""
    name, sep, encoded = key.partition(KEY_SEPARATOR)
    if not sep:
        return name, ()
    return name, tuple(
        Reservation(role, dynamic, principal, tuple((k, v) for k, v in labels))
        for role, dynamic, principal, labels in json.loads(encoded)
    )


def is_reserved_key(key: str) -> bool:
    """Whether `key` names a reserved resource."""
    return KEY_SEPARATOR in key


def key_label(key: str) -> str:
    """A key as Mesos writes it: `cpus`, `cpus(ads)`, `cpus(eng,eng/backend)` for a stack."""
    name, stack = key_parts(key)
    return f"{name}({','.join(r.role for r in stack)})" if stack else name


def reserved_within(reserved_for: str, role: str) -> bool:
    """Whether resources reserved for `reserved_for` may go to `role` (itself or a subrole)."""
    return role == reserved_for or role.startswith(reserved_for + "/")
