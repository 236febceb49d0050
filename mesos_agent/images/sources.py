"""Where images come from: a Docker registry (HTTP API v2) or a local directory of archives.

    ImageStore.get --> source.fetch(reference, staging, have) --> FetchedImage
                       (manifest, configuration, and the layer blobs the store lacks)

`RegistrySource` speaks the Docker Registry HTTP API v2: manifests (an index resolved to this
machine's platform), blobs streamed to disk with their digests checked, and the registry's
authentication: a bearer token from the realm its `WWW-Authenticate` challenge names (with the
registry's credentials, if any, from a Docker config file: `--docker_config`) or basic
authentication. `ArchiveSource` reads `docker save` and OCI-layout archives from a directory,
named `<repository>:<tag>.tar` as Mesos names them.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ipaddress
import json
import os
import re
import tarfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

import httpx

from mesos_agent.images.manifest import (
    ACCEPTED_MANIFEST_TYPES,
    Descriptor,
    ImageConfig,
    ImageError,
    ImageIndex,
    ImageManifest,
    Platform,
    check_digest,
    check_platform,
    parse_config,
    parse_manifest,
    select_platform,
)
from mesos_agent.images.reference import DOCKER_HUB, ImageReference

__all__ = [
    "ArchiveSource",
    "FetchedImage",
    "FetchedLayer",
    "ImageSource",
    "RegistryCredentials",
    "RegistrySource",
    "load_docker_config",
]

_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
_CHUNK = 1 << 20
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_TOKEN_SLACK_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class FetchedLayer:
    """One layer, bottom first: its uncompressed digest, and its blob in the staging directory
    (None when the store said it has the layer already)."""

    diff_id: str
    blob: Path | None
    compression: str


@dataclass(frozen=True, slots=True)
class FetchedImage:
    """An image as fetched: the digest of its manifest, its configuration and layers."""

    manifest_digest: str
    config: ImageConfig
    layers: tuple[FetchedLayer, ...]


class ImageSource(Protocol):
    """Fetches an image's manifest and configuration, and the layer blobs `have` says are
    missing, into `staging`; raises ImageError saying what failed."""

    async def fetch(
        self, reference: ImageReference, staging: Path, have: Callable[[str], bool]
    ) -> FetchedImage: ...


@dataclass(frozen=True, slots=True)
class RegistryCredentials:
    """A registry's user name and password."""

    username: str
    password: str


def load_docker_config(source: str | Path) -> dict[str, RegistryCredentials]:
    """Credentials by registry host from a Docker config (`{"auths": {host: {"auth":
    base64("user:password")}}}`, or `username`/`password` fields): a file, or the JSON itself
    when `source` is a string starting with `{` (as Mesos' `--docker_config` takes either);
    raises ValueError saying what is wrong with it."""
    inline = isinstance(source, str) and source.lstrip().startswith("{")
    path = "given as JSON" if inline else source
    try:
        document = json.loads(str(source) if inline else Path(source).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the Docker config {path}: {exc}") from None
    auths = document.get("auths", {}) if isinstance(document, dict) else None
    if not isinstance(auths, dict):
        raise ValueError(f"Docker config {path}: 'auths' is not an object")
    found: dict[str, RegistryCredentials] = {}
    for server, entry in auths.items():
        if not isinstance(entry, dict):
            continue
        if isinstance(entry.get("auth"), str):
            try:
                user, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise ValueError(f"Docker config {path}: the auth of {server} is not "
                                 "base64 of user:password") from None
        else:
            user, password = str(entry.get("username", "")), str(entry.get("password", ""))
        host = re.sub(r"^https?://", "", server).split("/")[0]
        found[DOCKER_HUB if host in ("index.docker.io", "docker.io") else host] = (
            RegistryCredentials(user, password))
    return found


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0].strip("[]") if not host.startswith("[") or "]:" in host \
        else host.strip("[]")
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class RegistrySource:
    """Images from Docker registries: `default_registry` (a URL) for names that give none,
    else the registry a name gives (HTTPS; plain HTTP for loopback hosts, as Docker allows)."""

    def __init__(
        self,
        default_registry: str,
        credentials: Mapping[str, RegistryCredentials] | None = None,
        *,
        platform: Platform,
        verify: bool | str = True,
    ) -> None:
        self._default = default_registry.rstrip("/")
        self._credentials = dict(credentials or {})
        self._platform = platform
        self._verify = verify
        self._tokens: dict[tuple[str, str, str], tuple[str, float]] = {}

    def _base(self, reference: ImageReference) -> tuple[str, str]:
        """The registry's base URL and the host its credentials are kept under."""
        if not reference.registry:
            host = re.sub(r"^https?://", "", self._default).split("/")[0]
            return self._default, host
        scheme = "http" if _is_loopback(reference.registry) else "https"
        return f"{scheme}://{reference.registry}", reference.registry

    async def fetch(
        self, reference: ImageReference, staging: Path, have: Callable[[str], bool]
    ) -> FetchedImage:
        base, host = self._base(reference)
        async with httpx.AsyncClient(timeout=_TIMEOUT, verify=self._verify,
                                     follow_redirects=True) as client:
            session = _RegistrySession(client, base, host, reference.repository,
                                       self._credentials.get(host), self._tokens)
            digest, body, media_type = await session.manifest(reference.reference)
            if reference.digest:
                check_digest(reference.digest, body, f"the manifest of {reference}")
            manifest = parse_manifest(media_type, body)
            if isinstance(manifest, ImageIndex):
                entry = select_platform(manifest, self._platform)
                digest, body, media_type = await session.manifest(entry.digest)
                check_digest(entry.digest, body, f"the {self._platform} manifest of {reference}")
                manifest = parse_manifest(media_type, body)
                if isinstance(manifest, ImageIndex):
                    raise ImageError(f"the {self._platform} entry of {reference}'s index is "
                                     "another index")
            config = parse_config(await session.blob_bytes(manifest.config))
            check_platform(config, self._platform, f"image {reference}")
            layers: list[FetchedLayer] = []
            for descriptor, diff_id, needed in _layers_to_fetch(manifest, config, have):
                blob = _blob_path(staging, descriptor) if needed else None
                if blob is not None:
                    await session.blob_to_file(descriptor, blob)
                layers.append(FetchedLayer(diff_id, blob, descriptor.compression))
            return FetchedImage(digest, config, tuple(layers))


def _layers_to_fetch(
    manifest: ImageManifest, config: ImageConfig, have: Callable[[str], bool]
) -> list[tuple[Descriptor, str, bool]]:
    """Each layer, bottom first: its descriptor, its diff_id, and whether it must be fetched."""
    if len(config.diff_ids) != len(manifest.layers):
        raise ImageError(f"the image has {len(manifest.layers)} layers but its configuration "
                         f"lists {len(config.diff_ids)} diff_ids")
    return [(descriptor, diff_id, not have(diff_id))
            for descriptor, diff_id in zip(manifest.layers, config.diff_ids, strict=True)]


def _blob_path(staging: Path, descriptor: Descriptor) -> Path:
    return staging / descriptor.digest.replace(":", "-")


class _RegistrySession:
    """Requests to one repository of one registry, authenticating as its challenges ask."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        base: str,
        host: str,
        repository: str,
        credentials: RegistryCredentials | None,
        tokens: dict[tuple[str, str, str], tuple[str, float]],
    ) -> None:
        self._client = client
        self._base = base
        self._host = host
        self._repository = repository
        self._credentials = credentials
        self._tokens = tokens
        self._authorization: str | None = None

    async def manifest(self, reference: str) -> tuple[str, bytes, str]:
        """The manifest's digest, body and media type."""
        response = await self._get(f"/v2/{self._repository}/manifests/{reference}",
                                   {"Accept": ", ".join(ACCEPTED_MANIFEST_TYPES)})
        try:
            if response.status_code == 404:
                await response.aread()
                raise ImageError(f"image {self._host}/{self._repository}:{reference} not found "
                                 f"in the registry ({_registry_message(response)})")
            _raise_for(response, f"the manifest of {self._repository}:{reference}")
            body = await response.aread()
        finally:
            await response.aclose()
        return ("sha256:" + hashlib.sha256(body).hexdigest(), body,
                response.headers.get("content-type", ""))

    async def blob_bytes(self, descriptor: Descriptor) -> bytes:
        response = await self._get(f"/v2/{self._repository}/blobs/{descriptor.digest}", {})
        try:
            _raise_for(response, f"blob {descriptor.digest}")
            body = await response.aread()
        finally:
            await response.aclose()
        check_digest(descriptor.digest, body, f"blob {descriptor.digest}")
        return body

    async def blob_to_file(self, descriptor: Descriptor, path: Path) -> None:
        """Stream the blob to `path`, checking its digest (a mismatch removes it)."""
        response = await self._get(f"/v2/{self._repository}/blobs/{descriptor.digest}", {})
        digest = hashlib.sha256()
        try:
            _raise_for(response, f"layer {descriptor.digest}")
            out = await asyncio.to_thread(open, path, "wb")  # disk writes off the event loop
            try:
                async for chunk in response.aiter_bytes(_CHUNK):
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            finally:
                await asyncio.to_thread(out.close)
        finally:
            await response.aclose()
        actual = "sha256:" + digest.hexdigest()
        if actual != descriptor.digest:
            await asyncio.to_thread(path.unlink, missing_ok=True)
            raise ImageError(f"layer {descriptor.digest} does not match its digest "
                             f"(got {actual})")

    async def _get(self, path: str, headers: dict[str, str]) -> httpx.Response:
        """GET `path`, answering one authentication challenge; the response is open
        (streamed): the caller closes it."""
        url = self._base + path
        for attempt in range(2):
            request_headers = dict(headers)
            if self._authorization:
                request_headers["Authorization"] = self._authorization
            try:
                response = await self._client.send(
                    self._client.build_request("GET", url, headers=request_headers),
                    stream=True)
            except httpx.HTTPError as exc:
                raise ImageError(f"registry {self._base} cannot be reached: {exc}") from None
            if response.status_code != 401 or attempt == 1:
                if response.status_code == 401:
                    await response.aclose()
                    who = (f"the credentials of {self._credentials.username!r}"
                           if self._credentials else "anonymous access")
                    raise ImageError(f"registry {self._host} refused {who} to "
                                     f"{self._repository}")
                return response
            challenge = response.headers.get("www-authenticate", "")
            await response.aclose()
            self._authorization = await self._answer(challenge)
        raise AssertionError("unreachable")

    async def _answer(self, challenge: str) -> str:
        scheme, _, parameters = challenge.partition(" ")
        if scheme.lower() == "basic":
            if self._credentials is None:
                raise ImageError(f"registry {self._host} needs credentials for "
                                 f"{self._repository} (give them in --docker_config)")
            return _basic(self._credentials)
        if scheme.lower() != "bearer":
            raise ImageError(f"registry {self._host} asks for unsupported authentication "
                             f"{challenge!r}")
        fields = dict(_CHALLENGE.findall(parameters))
        realm = fields.get("realm", "")
        if not realm:
            raise ImageError(f"registry {self._host} sent a bearer challenge without a realm")
        service = fields.get("service", "")
        scope = fields.get("scope", f"repository:{self._repository}:pull")
        key = (realm, service, scope)
        cached = self._tokens.get(key)
        if cached is not None and cached[1] > time.monotonic():
            return f"Bearer {cached[0]}"
        params = {name: value for name, value in (("service", service), ("scope", scope))
                  if value}
        auth = (self._credentials.username, self._credentials.password) \
            if self._credentials else None
        try:
            answer = await self._client.get(realm, params=params, auth=auth)
        except httpx.HTTPError as exc:
            raise ImageError(f"the token service {realm} of registry {self._host} cannot be "
                             f"reached: {exc}") from None
        if answer.status_code in (401, 403):
            who = (f"the credentials of {self._credentials.username!r}"
                   if self._credentials else "anonymous access")
            raise ImageError(f"the token service of registry {self._host} refused {who} "
                             f"({answer.status_code})")
        _raise_for(answer, f"a token from {realm}")
        try:
            document = answer.json()
            token = str(document.get("token") or document.get("access_token") or "")
            lifetime = float(document.get("expires_in", 60))
        except (ValueError, AttributeError):
            token, lifetime = "", 0.0
        if not token:
            raise ImageError(f"the token service {realm} of registry {self._host} sent no token")
        self._tokens[key] = (token, time.monotonic() + max(0.0, lifetime - _TOKEN_SLACK_SECONDS))
        return f"Bearer {token}"


def _basic(credentials: RegistryCredentials) -> str:
    pair = f"{credentials.username}:{credentials.password}".encode()
    return "Basic " + base64.b64encode(pair).decode()


def _registry_message(response: httpx.Response) -> str:
    """The registry's own error message (its JSON `errors`), else the status."""
    try:
        body = json.loads(response.content)
    except (ValueError, httpx.ResponseNotRead):
        body = None
    if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
        first = body["errors"][0]
        if isinstance(first, dict):
            return f"{first.get('code', '')}: {first.get('message', '')}".strip(": ")
    return f"HTTP {response.status_code}"


def _raise_for(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        raise ImageError(f"registry refused {what}: HTTP {response.status_code}")


class ArchiveSource:
    """Images saved as archives in `directory`: `<repository>:<tag>.tar`, where the repository
    is as the image is named (`busybox:latest.tar`, `team/app:1.0.tar`; Docker Hub's
    `library/` may be left out), holding `docker save` output or an OCI image layout."""

    def __init__(self, directory: Path, *, platform: Platform) -> None:
        self._directory = directory
        self._platform = platform

    def archive_for(self, reference: ImageReference) -> Path:
        """The archive of `reference`; raises ImageError naming the files looked for."""
        if reference.digest and not reference.tag:
            raise ImageError(f"image {reference}: images in a local directory are found by "
                             "tag, not digest")
        names = [reference.repository]
        if reference.repository.startswith("library/"):
            names.insert(0, reference.repository.removeprefix("library/"))
        candidates = [self._directory / f"{name}:{reference.tag}.tar" for name in names]
        for candidate in candidates:
            if candidate.is_file():
                return candidate
        raise ImageError(f"image {reference} not found: no "
                         f"{' or '.join(str(c) for c in candidates)}")

    async def fetch(
        self, reference: ImageReference, staging: Path, have: Callable[[str], bool]
    ) -> FetchedImage:
        archive = self.archive_for(reference)
        return await asyncio.to_thread(self._read, archive, staging, have)

    def _read(self, archive: Path, staging: Path, have: Callable[[str], bool]) -> FetchedImage:
        try:
            with tarfile.open(archive) as tar:
                names = set(tar.getnames())
                if "manifest.json" in names and "index.json" not in names:
                    fetched = _read_docker_save(tar, staging, have)
                elif "index.json" in names:
                    fetched = _read_oci_layout(tar, staging, have, self._platform)
                else:
                    raise ImageError(f"image archive {archive} is neither `docker save` output "
                                     "(manifest.json) nor an OCI image layout (index.json)")
        except (tarfile.TarError, OSError) as exc:
            raise ImageError(f"image archive {archive} cannot be read: {exc}") from None
        check_platform(fetched.config, self._platform, f"image archive {archive}")
        return fetched


def _member(tar: tarfile.TarFile, name: str) -> IO[bytes]:
    """The content of member `name`; ImageError when the archive lacks it."""
    try:
        source = tar.extractfile(name)
    except KeyError:
        source = None
    if source is None:
        raise ImageError(f"image archive lacks {name!r}")
    return source


def _member_bytes(tar: tarfile.TarFile, name: str) -> bytes:
    return _member(tar, name).read()


def _member_to_file(tar: tarfile.TarFile, name: str, path: Path) -> str:
    """Copy member `name` to `path`; its sha256 digest."""
    source = _member(tar, name)
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return "sha256:" + digest.hexdigest()


def _read_docker_save(
    tar: tarfile.TarFile, staging: Path, have: Callable[[str], bool]
) -> FetchedImage:
    try:
        entries = json.loads(_member_bytes(tar, "manifest.json"))
        entry = entries[0]
        config_name, layer_names = str(entry["Config"]), [str(n) for n in entry["Layers"]]
    except (ValueError, KeyError, IndexError, TypeError):
        raise ImageError("image archive: manifest.json is not `docker save` output") from None
    config_body = _member_bytes(tar, config_name)
    config = parse_config(config_body)
    if len(config.diff_ids) != len(layer_names):
        raise ImageError(f"image archive has {len(layer_names)} layers but its configuration "
                         f"lists {len(config.diff_ids)} diff_ids")
    layers: list[FetchedLayer] = []
    for index, (name, diff_id) in enumerate(zip(layer_names, config.diff_ids, strict=True)):
        if have(diff_id):
            layers.append(FetchedLayer(diff_id, None, ""))
            continue
        blob = staging / f"layer-{index}"
        _member_to_file(tar, name, blob)
        with open(blob, "rb") as probe:
            compression = "gzip" if probe.read(2) == b"\x1f\x8b" else ""
        layers.append(FetchedLayer(diff_id, blob, compression))
    # docker save names no manifest digest; the configuration's identifies the image.
    return FetchedImage("sha256:" + hashlib.sha256(config_body).hexdigest(), config,
                        tuple(layers))


def _read_oci_layout(
    tar: tarfile.TarFile, staging: Path, have: Callable[[str], bool], platform: Platform
) -> FetchedImage:
    def blob_name(digest: str) -> str:
        return "blobs/" + digest.replace(":", "/")

    index = parse_manifest("", _member_bytes(tar, "index.json"))
    digest = ""
    manifest: ImageIndex | ImageManifest = index
    while isinstance(manifest, ImageIndex):
        if not manifest.manifests:
            raise ImageError("image archive: its index lists no manifest")
        entry = (manifest.manifests[0] if len(manifest.manifests) == 1
                 else select_platform(manifest, platform))
        body = _member_bytes(tar, blob_name(entry.digest))
        check_digest(entry.digest, body, f"manifest {entry.digest}")
        digest, manifest = entry.digest, parse_manifest(entry.media_type, body)
    config_body = _member_bytes(tar, blob_name(manifest.config.digest))
    check_digest(manifest.config.digest, config_body, "the image configuration")
    config = parse_config(config_body)

    def copy(descriptor: Descriptor, path: Path) -> None:
        actual = _member_to_file(tar, blob_name(descriptor.digest), path)
        if actual != descriptor.digest:
            os.unlink(path)
            raise ImageError(f"layer {descriptor.digest} does not match its digest "
                             f"(got {actual})")

    layers: list[FetchedLayer] = []
    for descriptor, diff_id, needed in _layers_to_fetch(manifest, config, have):
        blob = _blob_path(staging, descriptor) if needed else None
        if blob is not None:
            copy(descriptor, blob)
        layers.append(FetchedLayer(diff_id, blob, descriptor.compression))
    return FetchedImage(digest, config, tuple(layers))
