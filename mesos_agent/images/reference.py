"""Docker image references as Docker names them: `busybox`, `library/busybox:1.36`,
`registry:5000/team/app@sha256:...` (pure).

A name whose first component has a `.` or a `:`, or is `localhost`, names its registry; other
names are in the default registry (Docker Hub's, or the agent's `--docker_registry`), where a
one-component name is an official image (`busybox` is `library/busybox`). No tag and no digest
means `latest`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["DOCKER_HUB", "ImageReference", "InvalidReference", "parse_reference"]

DOCKER_HUB = "registry-1.docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", DOCKER_HUB})
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_DOMAIN = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:]+\])(?::[0-9]+)?")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}")
_MAX_NAME = 255


class InvalidReference(ValueError):
    """A string that is not a Docker image reference; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class ImageReference:
    """An image: its registry (`host[:port]`, `DOCKER_HUB` for Docker Hub, "" for the
    agent's default), its repository, and a tag or a digest (or both: the digest wins)."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What the registry's manifest endpoint is asked for: the digest, else the tag."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        name = f"{self.registry}/{self.repository}" if self.registry else self.repository
        if self.tag:
            name += f":{self.tag}"
        if self.digest:
            name += f"@{self.digest}"
        return name


def parse_reference(text: str) -> ImageReference:
    """`text` as an image reference; raises InvalidReference saying why it is not one.

    The registry is "" when the name does not give one (the agent's default registry)."""
    name, digest = text, None
    if "@" in text:
        name, digest = text.split("@", 1)
        if not _DIGEST.fullmatch(digest):
            raise InvalidReference(f"invalid digest {digest!r} in image {text!r} "
                                   "(expected e.g. sha256:<64 hex digits>)")
    tag = None
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name, tag = name[:colon], name[colon + 1:]
        if not _TAG.fullmatch(tag):
            raise InvalidReference(f"invalid tag {tag!r} in image {text!r}")
    registry = ""
    first, _, rest = name.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        if not _DOMAIN.fullmatch(first):
            raise InvalidReference(f"invalid registry {first!r} in image {text!r}")
        registry, name = first, rest
    if not name:
        raise InvalidReference(f"image {text!r} has no repository name")
    for component in name.split("/"):
        if not _COMPONENT.fullmatch(component):
            raise InvalidReference(
                f"invalid repository name {name!r} in image {text!r}: components are lowercase "
                "letters and digits, separated by '.', '_', '__' or dashes")
    if len(name) > _MAX_NAME:
        raise InvalidReference(f"repository name of image {text!r} is longer than {_MAX_NAME}")
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
    if registry in ("", DOCKER_HUB) and "/" not in name:
        name = f"library/{name}"
    if tag is None and digest is None:
        tag = "latest"
    return ImageReference(registry, name, tag, digest)
