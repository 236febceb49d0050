"""The role hierarchy (pure helpers; names are checked by `mesos_master.validation`).

Roles are paths: `eng/backend` is a child of `eng`. A role's allocation counts towards every
ancestor, for fairness and for quota.
"""

from __future__ import annotations

__all__ = ["ancestors", "parent"]


def parent(role: str) -> str | None:
    """`eng/backend` -> `eng`; a top-level role has no parent (None)."""
    head, sep, _ = role.rpartition("/")
    return head if sep else None


def ancestors(role: str) -> list[str]:
    """`role` followed by each of its ancestors, nearest first: `a/b/c` -> [a/b/c, a/b, a]."""
    chain = [role]
    while (up := parent(chain[-1])) is not None:
        chain.append(up)
    return chain
