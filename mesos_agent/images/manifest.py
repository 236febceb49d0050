"""Image manifests, indexes and configurations as registries and archives hold them (pure).

    index (OCI index / Docker manifest list) --platform--> manifest --> config + layers

Docker's manifest v2 schema 2 and its manifest list, and OCI's image manifest and index, are
read; schema 1 and layers this agent cannot unpack are refused with a message that says so.
An index entry is picked for this machine's platform (`machine_platform`).
"""

from __future__ import annotations

import hashlib
import json
import platform
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACCEPTED_MANIFEST_TYPES",
    "Descriptor",
    "ImageConfig",
    "ImageError",
    "ImageIndex",
    "ImageManifest",
    "Platform",
    "check_digest",
    "check_platform",
    "machine_platform",
    "parse_config",
    "parse_manifest",
    "select_platform",
]

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
ACCEPTED_MANIFEST_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST, OCI_MANIFEST, DOCKER_MANIFEST)
"""What a registry is asked for (its `Accept` header), indexes first."""
_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws")
_LAYER_TYPES = {
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar": "",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "",
}
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
_MACHINES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64",
             "armv7l": "arm", "armv6l": "arm", "i686": "386", "i386": "386",
             "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}


class ImageError(ValueError):
    """An image this agent cannot use; the message says why (it becomes the task's)."""


@dataclass(frozen=True, slots=True)
class Platform:
    """An image's operating system and CPU architecture (Go's names: linux, amd64, arm64)."""

    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def machine_platform() -> Platform:
    """This machine's platform, as images name it."""
    machine = platform.machine().lower()
    return Platform("linux", _MACHINES.get(machine, machine))


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A blob an image refers to: its media type, digest and size (and platform, in an
    index)."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None

    @property
    def compression(self) -> str:
        """How a layer blob is compressed: "gzip" or "" (none)."""
        return _LAYER_TYPES[self.media_type]


@dataclass(frozen=True, slots=True)
class ImageIndex:
    """Manifests of one image for several platforms."""

    manifests: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """One platform's image: its configuration blob and its layers, bottom first."""

    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """What an image's configuration says about running it, and its layers' uncompressed
    digests (`diff_ids`, bottom first)."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    diff_ids: tuple[str, ...] = ()
    platform: Platform | None = None

    def environment(self) -> dict[str, str]:
        """`env` (`NAME=value` strings) as a mapping."""
        pairs = (item.partition("=") for item in self.env)
        return {name: value for name, _, value in pairs if name}


def check_digest(digest: str, data: bytes, what: str) -> None:
    """Raise ImageError unless `data`'s sha256 is `digest`."""
    if not _DIGEST.fullmatch(digest):
        raise ImageError(f"{what} has an unsupported digest {digest!r} (only sha256 is)")
    actual = "sha256:" + hashlib.sha256(data).hexdigest()
    if actual != digest:
        raise ImageError(f"{what} does not match its digest: expected {digest}, got {actual}")


def check_platform(config: ImageConfig, wanted: Platform, what: str) -> None:
    """Raise ImageError when `config` names an operating system or CPU architecture other than
    `wanted`'s: its programs could not run here (Docker only warns, and the container then
    fails with "exec format error"). A configuration that names none is taken as it is."""
    found = config.platform
    if found is None or not found.os or not found.architecture:
        return
    if (found.os, found.architecture) != (wanted.os, wanted.architecture):
        raise ImageError(f"{what} is built for {found}, not for this machine ({wanted})")


def parse_manifest(media_type: str, body: bytes) -> ImageIndex | ImageManifest:
    """A manifest or index of `media_type` (the registry's Content-Type; the document's own
    `mediaType` when that is missing or generic)."""
    document = _json(body, "image manifest")
    kind = str(document.get("mediaType") or media_type.split(";")[0].strip())
    if kind in _SCHEMA1 or document.get("schemaVersion") == 1:
        raise ImageError("image manifest schema 1 is not supported (push the image again with "
                         "a current client: schema 2 or OCI)")
    if kind in (OCI_INDEX, DOCKER_MANIFEST_LIST) or (
            "manifests" in document and "layers" not in document):
        return ImageIndex(tuple(_descriptor(item, "index entry", with_platform=True)
                                for item in _list(document, "manifests")))
    if kind not in (OCI_MANIFEST, DOCKER_MANIFEST) and "layers" not in document:
        raise ImageError(f"unsupported image manifest type {kind!r}")
    config = _descriptor(_object(document, "config"), "config")
    layers = tuple(_descriptor(item, "layer") for item in _list(document, "layers"))
    for layer in layers:
        if layer.media_type not in _LAYER_TYPES:
            raise ImageError(f"layer {layer.digest} has an unsupported media type "
                             f"{layer.media_type!r} (supported: tar, tar+gzip)")
    return ImageManifest(config, layers)


def select_platform(index: ImageIndex, wanted: Platform) -> Descriptor:
    """The index entry for `wanted` (any variant when it names none); raises ImageError
    listing the platforms there are."""
    for entry in index.manifests:
        found = entry.platform
        if found is not None and (found.os, found.architecture) == (wanted.os,
                                                                    wanted.architecture) and (
                not wanted.variant or found.variant == wanted.variant):
            return entry
    offered = ", ".join(str(e.platform) for e in index.manifests if e.platform) or "none"
    raise ImageError(f"the image has no manifest for {wanted} (it has: {offered})")


def parse_config(body: bytes) -> ImageConfig:
    """An image configuration blob (Docker's and OCI's are the same JSON)."""
    document = _json(body, "image configuration")
    run = document.get("config") or {}
    if not isinstance(run, Mapping):
        raise ImageError("image configuration: 'config' is not an object")
    rootfs = document.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, Mapping) else None
    os_name, architecture = document.get("os"), document.get("architecture")
    return ImageConfig(
        entrypoint=_strings(run.get("Entrypoint"), "Entrypoint"),
        cmd=_strings(run.get("Cmd"), "Cmd"),
        env=_strings(run.get("Env"), "Env"),
        working_dir=str(run.get("WorkingDir") or ""),
        user=str(run.get("User") or ""),
        diff_ids=_strings(diff_ids, "rootfs.diff_ids"),
        platform=(Platform(os_name, architecture, str(document.get("variant") or ""))
                  if isinstance(os_name, str) and isinstance(architecture, str) else None),
    )


def _json(body: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageError(f"{what} is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise ImageError(f"{what} is not a JSON object")
    return document


def _object(document: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = document.get(key)
    if not isinstance(value, Mapping):
        raise ImageError(f"image manifest: {key!r} is missing or not an object")
    return value


def _list(document: Mapping[str, Any], key: str) -> Sequence[Any]:
    value = document.get(key)
    if not isinstance(value, list):
        raise ImageError(f"image manifest: {key!r} is missing or not a list")
    return value


def _descriptor(item: Any, what: str, *, with_platform: bool = False) -> Descriptor:
    if not isinstance(item, Mapping):
        raise ImageError(f"image manifest: a {what} is not an object")
    digest, size, media_type = item.get("digest"), item.get("size"), item.get("mediaType")
    if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
        raise ImageError(f"image manifest: a {what} has no sha256 digest ({digest!r})")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ImageError(f"image manifest: {what} {digest} has no valid size")
    found = item.get("platform") if with_platform else None
    return Descriptor(
        str(media_type or ""), digest, size,
        Platform(str(found.get("os", "")), str(found.get("architecture", "")),
                 str(found.get("variant") or "")) if isinstance(found, Mapping) else None)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ImageError(f"image configuration: {what} is not a list of strings")
    return tuple(value)
