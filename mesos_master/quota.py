"""Role weights and quota limits, as operators set them (Mesos' weights and quota handlers).

Flow::

    operator ── UPDATE_WEIGHTS / UPDATE_QUOTA ──▶ Master ──▶ QuotaAndWeights
    QuotaAndWeights ── checked, then applied ──▶ Allocator (the weights and quotas in force)
                    └─ kept ─────────────────▶ Registry (weights/<role>, quotas/<role>)
    new leader: registry weights (--weights win) and quotas ──▶ recover ──▶ Allocator
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping

from mesos_master.allocator import Allocator
from mesos_master.errors import ErrorCode, MasterError
from mesos_master.registry import Registry
from mesos_master.validation import DEFAULT_ROLE, validate_role
from mesos_values.resources import Resources
from protos import registry_pb2


class QuotaAndWeights:
    """Checks operators' weights and quotas, hands them to the allocator and the registry."""

    def __init__(self, allocator: Allocator, registry: Registry) -> None:
        self._allocator = allocator
        self._registry = registry

    def recover(
        self, weights: Mapping[str, float], quotas: Mapping[str, registry_pb2.Quota]
    ) -> None:
        """Put recovered (or configured) weights and recovered quotas in force; a quota whose
        limits no longer parse is dropped."""
        for role, weight in weights.items():
            self._allocator.set_weight(role, weight)
        for role, quota in quotas.items():
            with contextlib.suppress(ValueError):
                self._allocator.set_quota(role, Resources.from_proto(quota.limits))

    def update_weights(self, weights: Mapping[str, float]) -> None:
        """Set role weights (all or nothing); they are kept in the registry."""
        for role, weight in weights.items():
            if problem := validate_role(role):
                raise MasterError(ErrorCode.INVALID_ARGUMENT, problem)
            if not (math.isfinite(weight) and weight > 0):
                raise MasterError(ErrorCode.INVALID_ARGUMENT,
                                  f"weight of role {role!r} must be positive and finite")
        for role, weight in weights.items():
            self._allocator.set_weight(role, weight)
            self._registry.set_weight(role, weight)

    def update_quota(self, role: str, limits: Resources | None, *, force: bool = False) -> None:
        """Set (or with None remove) `role`'s quota limits; a limit below what the role
        already consumes is refused unless `force`."""
        if problem := validate_role(role):
            raise MasterError(ErrorCode.INVALID_ARGUMENT, problem)
        if role == DEFAULT_ROLE:
            raise MasterError(ErrorCode.INVALID_ARGUMENT, "the default role '*' takes no quota")
        if limits is not None:
            if limits.names() - frozenset(limits.scalars):
                raise MasterError(
                    ErrorCode.INVALID_ARGUMENT, "quota limits must be scalar resources"
                )
            consumed = self._allocator.consumed(role)
            over = {
                name: consumed.scalar(name)
                for name, limit in limits.scalars.items()
                if consumed.scalar(name) > limit
            }
            if over and not force:
                above = ", ".join(f"{name} {value:g}" for name, value in sorted(over.items()))
                raise MasterError(
                    ErrorCode.FAILED_PRECONDITION,
                    f"role {role!r} already consumes more than the new limits ({above}); "
                    "set force to apply them anyway",
                )
        self._allocator.set_quota(role, limits)
        self._registry.set_quota(role, limits)
