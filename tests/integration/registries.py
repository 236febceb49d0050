"""Container images and registries for the image puller's tests, built from real parts.

    build_image() ──> OCI image layout (pure Python: busybox root filesystem + given layers)
         │
         ├── Registry.push()  ── skopeo copy ──> docker-registry serve (127.0.0.1, optional
         │                                        htpasswd or token auth with a TokenServer)
         └── save_archive()   ── skopeo copy ──> docker-archive / oci-archive tarball

Needs Debian's `busybox-static`, `docker-registry` and `skopeo`; basic auth hashes passwords
with the `bcrypt` package, or with `htpasswd` (apache2-utils) where it is not installed.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import gzip
import hashlib
import io
import json
import os
import platform
import secrets
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from tests.integration.cluster import free_port

BUSYBOX = Path("/bin/busybox")
BUSYBOX_APPLETS = (
    *("sh", "ls", "cat", "echo", "id", "sleep", "env", "true", "false"),
    *("ps", "mount", "touch", "grep", "wc", "head"),
)
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OPAQUE_WHITEOUT = ".wh..wh..opq"
"""The last part of a layer key that marks its directory opaque, as in `"dir/.wh..wh..opq"`."""

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"
CREATED = "1970-01-01T00:00:00Z"
ARCHITECTURES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}

ArchiveFormat = Literal["docker-archive", "oci-archive"]
ManifestFormat = Literal["v2s2", "oci"]


@dataclass(frozen=True)
class File:
    """A regular file of a layer with an explicit mode (plain `bytes` are mode 0644)."""

    content: bytes
    mode: int = 0o644


@dataclass(frozen=True)
class Symlink:
    """A symbolic link of a layer."""

    target: str


@dataclass(frozen=True)
class Directory:
    """A directory of a layer (parents of other entries are added on their own)."""

    mode: int = 0o755


LayerEntry = bytes | File | Symlink | Directory | None
"""What a layer holds at a path; `None` deletes the path (a `.wh.` whiteout)."""


@dataclass(frozen=True)
class Image:
    """An image in an OCI image layout, as `build_image` wrote it."""

    layout: Path
    tag: str
    manifest_digest: str
    config_digest: str
    layer_digests: tuple[str, ...]
    """Digests of the gzipped layer blobs, lowest layer first."""
    diff_ids: tuple[str, ...]
    """Digests of the uncompressed layer tars, lowest layer first."""

    @property
    def reference(self) -> str:
        """The image as skopeo names it: `oci:LAYOUT:TAG`."""
        return f"oci:{self.layout}:{self.tag}"

    def blob(self, digest: str) -> Path:
        """The file of a blob of the layout."""
        algorithm, _, hex_digest = digest.partition(":")
        return self.layout / "blobs" / algorithm / hex_digest


def build_image(
    directory: Path,
    *,
    layers: Sequence[Mapping[str, LayerEntry]] | None = None,
    entrypoint: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    env: Mapping[str, str] | None = None,
    working_dir: str = "",
    user: str = "",
    tag: str = "latest",
) -> Image:
    """Write an image to the OCI layout `directory` (created, or extended with another tag):
    a busybox root filesystem, then one layer per mapping of `layers` (path -> entry)."""
    blobs = directory / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    tars = [_busybox_layer(), *(_upper_layer(layer) for layer in layers or ())]
    gzipped = [_busybox_layer_gzipped(), *(gzip.compress(tar, mtime=0) for tar in tars[1:])]
    layer_descriptors = [_write_blob(blobs, blob, LAYER_TYPE) for blob in gzipped]
    diff_ids = [_digest(tar) for tar in tars]
    environment = {"PATH": DEFAULT_PATH, **(env or {})}
    container: dict[str, Any] = {"Env": [f"{key}={value}" for key, value in environment.items()]}
    if entrypoint is not None:
        container["Entrypoint"] = list(entrypoint)
    if cmd is not None:
        container["Cmd"] = list(cmd)
    if working_dir:
        container["WorkingDir"] = working_dir
    if user:
        container["User"] = user
    config = {
        "created": CREATED,
        "architecture": ARCHITECTURES.get(platform.machine(), platform.machine()),
        "os": "linux",
        "config": container,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [
            {"created": CREATED, "created_by": "busybox root filesystem"},
            *({"created": CREATED, "created_by": f"layer {n}"} for n in range(1, len(tars))),
        ],
    }
    config_descriptor = _write_blob(blobs, _json_bytes(config), CONFIG_TYPE)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": config_descriptor,
        "layers": layer_descriptors,
    }
    manifest_descriptor = _write_blob(blobs, _json_bytes(manifest), MANIFEST_TYPE)
    _add_to_index(directory, {**manifest_descriptor, "annotations": {REF_NAME: tag}})
    return Image(
        layout=directory,
        tag=tag,
        manifest_digest=manifest_descriptor["digest"],
        config_digest=config_descriptor["digest"],
        layer_digests=tuple(descriptor["digest"] for descriptor in layer_descriptors),
        diff_ids=tuple(diff_ids),
    )


def save_archive(image: Image, path: Path, reference: str, *, format: ArchiveFormat) -> None:
    """Write `image` to the tarball `path` with skopeo: `docker save` style (`docker-archive`,
    `reference` like `name:tag`) or an OCI archive (`reference` is its ref name); replaces
    a file at `path`."""
    path.unlink(missing_ok=True)
    _skopeo("copy", image.reference, f"{format}:{path}:{reference}")


class Registry:
    """A real `docker-registry serve` on 127.0.0.1 with its storage in `workdir` (a temporary
    directory removed on exit when not given); deletes are enabled. Optionally behind basic
    auth (`htpasswd=(user, password)`) or token auth (`token_auth=True`, with a `TokenServer`
    whose credentials are `credentials`). The log is `log_path`."""

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        htpasswd: tuple[str, str] | None = None,
        token_auth: bool = False,
    ) -> None:
        if htpasswd and token_auth:
            raise ValueError("the registry takes one kind of authentication")
        self._exits = contextlib.ExitStack()
        if workdir is None:
            workdir = Path(self._exits.enter_context(tempfile.TemporaryDirectory("-registry")))
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "registry.log"
        self.credentials: tuple[str, str] | None = htpasswd
        if token_auth:
            self.credentials = ("puller", secrets.token_urlsafe(12))
        self.token_server: TokenServer | None = None
        self._htpasswd = htpasswd
        self._token_auth = token_auth

    @property
    def host(self) -> str:
        """`127.0.0.1:PORT`, the registry part of image names."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The registry's base URL (plain HTTP)."""
        return f"http://{self.host}"

    def __enter__(self) -> Registry:
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start()
        except BaseException:
            self._exits.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._exits.close()

    def push(
        self, image: Image, name: str, *, format: ManifestFormat = "v2s2", tag: str | None = None
    ) -> str:
        """Copy `image` to `NAME:TAG` here (TAG defaults to the image's) with skopeo, as a
        Docker v2 schema 2 or an OCI manifest; returns the digest of the pushed manifest."""
        digest_file = self.workdir / f"push-{secrets.token_hex(4)}.digest"
        _skopeo(
            "copy",
            "--dest-tls-verify=false",
            *self._creds_flags("--dest-creds"),
            "--format",
            format,
            "--digestfile",
            str(digest_file),
            image.reference,
            f"docker://{self.host}/{name}:{tag or image.tag}",
        )
        return digest_file.read_text().strip()

    def inspect(self, name: str, tag: str, *, config: bool = False, raw: bool = False) -> str:
        """`skopeo inspect` of `NAME:TAG` here (its JSON output, as text)."""
        flags = [*(["--config"] if config else []), *(["--raw"] if raw else [])]
        return _skopeo(
            "inspect",
            "--tls-verify=false",
            *self._creds_flags("--creds"),
            *flags,
            f"docker://{self.host}/{name}:{tag}",
        )

    def _creds_flags(self, flag: str) -> list[str]:
        return [flag, ":".join(self.credentials)] if self.credentials else []

    def _start(self) -> None:
        auth: dict[str, Any] = {}
        if self._htpasswd:
            htpasswd_file = self.workdir / "htpasswd"
            htpasswd_file.write_text(htpasswd_line(*self._htpasswd) + "\n")
            auth = {"htpasswd": {"realm": "test-registry", "path": str(htpasswd_file)}}
        if self._token_auth and self.credentials:
            token_server = TokenServer(self.workdir, self.credentials)
            self.token_server = self._exits.enter_context(token_server)
            auth = {"token": token_server.registry_config()}
        config = {
            "version": "0.1",
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "storage")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": secrets.token_hex(16)},
            **({"auth": auth} if auth else {}),
        }
        config_file = self.workdir / "registry.yml"
        config_file.write_text(json.dumps(config, indent=2))  # YAML reads JSON
        environment = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                ["docker-registry", "serve", str(config_file)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        self._exits.callback(_stop, process)
        self._wait_until_serving(process)

    def _wait_until_serving(self, process: subprocess.Popen[bytes], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"docker-registry exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"{self.url}/v2/", timeout=1)
                return
            time.sleep(0.05)
        raise TimeoutError(f"docker-registry not serving: {self.log_path.read_text()[-2000:]}")


class TokenServer:
    """A Docker token server on 127.0.0.1 (`GET /token?service=...&scope=...`): for the Basic
    `credentials` it grants every scope asked for, in a JWT signed with ES256 by a key whose
    self-signed certificate (`cert_path`) the registry trusts. `scopes` records each request's
    scopes."""

    service = "test-registry"
    issuer = "test-token-server"

    def __init__(self, directory: Path, credentials: tuple[str, str]) -> None:
        self.credentials = credentials
        self.scopes: list[list[str]] = []
        self.cert_path = directory / "token-signer.pem"
        self._key = ec.generate_private_key(ec.SECP256R1())
        certificate = _self_signed_certificate(self._key)
        self.cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        self._x5c = base64.b64encode(certificate.public_bytes(serialization.Encoding.DER))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def realm(self) -> str:
        """The URL clients fetch tokens from."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/token"

    def registry_config(self) -> dict[str, str]:
        """The registry's `auth: token:` section for this server."""
        return {
            "realm": self.realm,
            "service": self.service,
            "issuer": self.issuer,
            "rootcertbundle": str(self.cert_path),
        }

    def answer(self, path: str, authorization: str | None) -> tuple[int, dict[str, Any]]:
        """The status and JSON body for a token request."""
        url = urlsplit(path)
        if url.path != "/token":
            return 404, {"error": "not found"}
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        if authorization is None or not secrets.compare_digest(authorization, f"Basic {expected}"):
            return 401, {"error": "credentials required"}
        query = parse_qs(url.query)
        scopes = [scope for value in query.get("scope", []) for scope in value.split()]
        self.scopes.append(scopes)
        token = self.token(query.get("service", [""])[0], scopes)
        return 200, {"token": token, "access_token": token, "expires_in": 300}

    def token(self, audience: str, scopes: Sequence[str]) -> str:
        """A signed JWT granting `scopes` (`type:name:action,action`) for `audience`."""
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "sub": self.credentials[0],
            "aud": audience,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": [_access(scope) for scope in scopes],
        }
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c.decode()]}
        signing_input = f"{_b64url(_json_bytes(header))}.{_b64url(_json_bytes(claims))}"
        r, s = decode_dss_signature(
            self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256()))
        )
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def __enter__(self) -> TokenServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        token_server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                status, body = token_server.answer(self.path, self.headers.get("Authorization"))
                data = _json_bytes(body)
                self.send_response(status)
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Basic realm="token"')
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


def htpasswd_line(user: str, password: str) -> str:
    """`user:bcrypt-hash`, the only htpasswd form docker-registry accepts."""
    try:
        import bcrypt
    except ImportError:
        if shutil.which("htpasswd") is None:
            raise RuntimeError("basic auth needs the bcrypt package or apache2-utils") from None
        output = subprocess.run(
            ["htpasswd", "-nbB", "-C", "4", user, password],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return output.strip()
    return f"{user}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}"


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _skopeo(*args: str) -> str:
    """Run skopeo (any signature policy accepted); its stdout, or an error with its stderr."""
    command = ["skopeo", "--insecure-policy", *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")
    return result.stdout


@functools.cache
def _busybox_layer() -> bytes:
    """The first layer: static busybox with its applet links, the usual directories, and
    root and nobody in etc/passwd and etc/group."""
    members = [_member(name, tarfile.DIRTYPE, mode) for name, mode in _BASE_DIRS.items()]
    members.append(_member("bin/busybox", tarfile.REGTYPE, 0o755, BUSYBOX.read_bytes()))
    members += [_member(f"bin/{name}", tarfile.SYMTYPE, link="busybox") for name in BUSYBOX_APPLETS]
    members.append(_member("etc/passwd", tarfile.REGTYPE, 0o644, _PASSWD))
    members.append(_member("etc/group", tarfile.REGTYPE, 0o644, _GROUP))
    return _tar(members)


@functools.cache
def _busybox_layer_gzipped() -> bytes:
    return gzip.compress(_busybox_layer(), mtime=0)


_BASE_DIRS = {
    "bin": 0o755,
    "dev": 0o755,
    "etc": 0o755,
    "mnt": 0o755,
    "proc": 0o555,
    "root": 0o700,
    "sys": 0o555,
    "tmp": 0o1777,
    "usr": 0o755,
}
_PASSWD = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
_GROUP = b"root:x:0:\nnogroup:x:65534:\n"


def _upper_layer(layer: Mapping[str, LayerEntry]) -> bytes:
    """A layer's tar: each entry after its parent directories (their modes as in the
    busybox layer, else 0755); `None` becomes a `.wh.NAME` whiteout beside NAME."""
    members: list[tuple[tarfile.TarInfo, bytes]] = []
    directories: set[str] = set()
    for key, entry in layer.items():
        path = key.strip("/")
        if not path or ".." in path.split("/"):
            raise ValueError(f"bad layer path {key!r}")
        parent, _, name = path.rpartition("/")
        parts = parent.split("/") if parent else []
        for depth in range(1, len(parts) + 1):
            directory = "/".join(parts[:depth])
            if directory not in directories:
                directories.add(directory)
                members.append(
                    _member(directory, tarfile.DIRTYPE, _BASE_DIRS.get(directory, 0o755))
                )
        if name.startswith(".wh."):
            members.append(_member(path, tarfile.REGTYPE, 0o644))
        elif entry is None:
            members.append(_member(f"{parent}/.wh.{name}".lstrip("/"), tarfile.REGTYPE, 0o644))
        elif isinstance(entry, bytes):
            members.append(_member(path, tarfile.REGTYPE, 0o644, entry))
        elif isinstance(entry, File):
            members.append(_member(path, tarfile.REGTYPE, entry.mode, entry.content))
        elif isinstance(entry, Symlink):
            members.append(_member(path, tarfile.SYMTYPE, link=entry.target))
        else:
            directories.add(path)
            members.append(_member(path, tarfile.DIRTYPE, entry.mode))
    return _tar(members)


def _member(
    name: str, kind: bytes, mode: int = 0o777, content: bytes = b"", link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = len(content)
    info.linkname = link
    info.uname = info.gname = "root"
    return info, content


def _tar(members: Sequence[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, content in members:
            tar.addfile(info, io.BytesIO(content) if info.isreg() else None)
    return buffer.getvalue()


def _write_blob(blobs: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = _digest(data)
    (blobs / digest.removeprefix("sha256:")).write_bytes(data)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _add_to_index(directory: Path, descriptor: dict[str, Any]) -> None:
    """Point the layout's index.json at `descriptor`, in place of an image with its tag."""
    index_file = directory / "index.json"
    manifests: list[dict[str, Any]] = []
    if index_file.exists():
        tag = descriptor["annotations"][REF_NAME]
        old = json.loads(index_file.read_text())["manifests"]
        manifests = [entry for entry in old if entry.get("annotations", {}).get(REF_NAME) != tag]
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [*manifests, descriptor],
    }
    index_file.write_bytes(_json_bytes(index))
    (directory / "oci-layout").write_bytes(_json_bytes({"imageLayoutVersion": "1.0.0"}))


def _self_signed_certificate(key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test token signer")])
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )


def _access(scope: str) -> dict[str, Any]:
    """`repository:name:pull,push` as a token's access entry."""
    kind, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return {"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]}


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _json_bytes(value: object) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
