"""Marathon path ids: `/prod/group/app`, relative ids resolved against a group, segment rules.

A path id is a sequence of segments and an `absolute` flag. `PathId.parse` accepts Marathon's
text form (leading and trailing slashes are trimmed, empty segments dropped); `canonical`
resolves `.` and `..` against a base group the way Marathon does when it reads a relative id
inside a group or an app's relative dependencies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "RESERVED_KEYWORDS",
    "ROOT",
    "SEGMENT_PATTERN",
    "PathId",
    "path_id_errors",
    "segment_errors",
]

SEGMENT_PATTERN = (
    r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$"
)
"""Each segment of an id must fully match this (Marathon's own pattern, quoted in its errors)."""

RESERVED_KEYWORDS = ("restart", "tasks", "versions")
"""An app id may not end with one of these: they are sub-resources of `/v2/apps/{id}`."""

_SEGMENT = re.compile(SEGMENT_PATTERN)


@dataclass(frozen=True, order=True)
class PathId:
    """An app or group id: `segments` below the root, absolute or relative to some group."""

    segments: tuple[str, ...] = ()
    absolute: bool = True

    @classmethod
    def parse(cls, text: str) -> PathId:
        """Read Marathon's text form: `/a/b`, `a/b` (relative), `/` (root), `../x`."""
        return cls(tuple(part for part in text.strip("/").split("/") if part),
                   absolute=text.startswith("/"))

    def __str__(self) -> str:
        joined = "/".join(self.segments)
        return "/" + joined if self.absolute else joined

    @property
    def is_root(self) -> bool:
        """True for the root group `/` (and for the empty relative id)."""
        return not self.segments

    @property
    def parent(self) -> PathId:
        """The enclosing group; the root is its own parent."""
        return PathId(self.segments[:-1], self.absolute)

    @property
    def name(self) -> str:
        """The last segment (`""` for the root)."""
        return self.segments[-1] if self.segments else ""

    def child(self, name: str) -> PathId:
        """This id extended by the segments of `name` (`"a/b"` adds two)."""
        return PathId(self.segments + PathId.parse(name).segments, self.absolute)

    def canonical(self, base: PathId | None = None) -> PathId:
        """The absolute id, resolving a relative id against `base` (default root), `.` and `..`."""
        base = ROOT if base is None else base
        if not base.absolute:
            raise ValueError(f"base group {base} is not absolute")
        raw = self.segments if self.absolute else base.segments + self.segments
        resolved: list[str] = []
        for segment in raw:
            if segment == ".":
                continue
            if segment == "..":
                if resolved:
                    resolved.pop()
                continue
            resolved.append(segment)
        return PathId(tuple(resolved), absolute=True)

    def includes(self, other: PathId) -> bool:
        """True when `other` is this id or lies below it (a group includes its apps)."""
        return other.segments[: len(self.segments)] == self.segments

    @property
    def safe_path(self) -> str:
        """Segments joined by `_`, as Marathon's task ids start (`/a/b` -> `a_b`)."""
        return "_".join(self.segments)

    @classmethod
    def from_safe_path(cls, text: str) -> PathId:
        """The inverse of `safe_path`."""
        return cls(tuple(text.split("_")) if text else ())


ROOT = PathId()
"""The root group `/`."""


def segment_errors(path: PathId) -> list[str]:
    """Marathon's complaint when a segment of `path` breaks `SEGMENT_PATTERN` (empty if none)."""
    if all(_SEGMENT.fullmatch(segment) for segment in path.segments):
        return []
    return [f"must fully match regular expression '{SEGMENT_PATTERN}'"]


def path_id_errors(path: PathId, *, base: PathId | None = None) -> list[str]:
    """Marathon's complaints about an app id (empty when valid).

    `path` is the id as written; `base` is the group it was written in (root when None):
    the id it resolves to must have valid segments too, so a group no body may name cannot
    smuggle an app in.
    """
    errors: list[str] = []
    parent = path.parent if base is None else base
    if parent.absolute and path.canonical(parent).parent != parent and base is not None:
        errors.append(f"Identifier is not child of {parent}. Hint: use relative paths.")
    resolved = path.canonical(base) if base is not None and base.absolute else path
    errors += segment_errors(PathId(path.segments + resolved.segments))
    if path.segments and path.segments[-1] in RESERVED_KEYWORDS:
        errors.append("must not end with any of the following reserved keywords: "
                      + ", ".join(RESERVED_KEYWORDS))
    if not path.canonical(ROOT if base is None else base).segments:
        errors.append("Path must contain at least one path element")
    return errors
