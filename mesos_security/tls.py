"""TLS for every listener and client of a process (ADR 0013).

One `TlsConfig` per process, from its flags or Mesos' libprocess environment variables (flags
win)::

    --ssl_cert_file   LIBPROCESS_SSL_CERT_FILE     this process's certificate chain (PEM)
    --ssl_key_file    LIBPROCESS_SSL_KEY_FILE      its private key (PEM)
    --ssl_ca_file     LIBPROCESS_SSL_CA_FILE       the CA certificates peers are verified with
    --ssl_require_client_cert                      servers demand and verify a client
                      LIBPROCESS_SSL_REQUIRE_CERT  certificate (mutual TLS)
                      LIBPROCESS_SSL_ENABLED       must be true for the variables to count

With a certificate and key a process serves TLS only (gRPC and HTTP alike; no plain
fallback) and dials its peers over TLS, verifying them against the CA file (else the
system's store) and presenting its own certificate, which a peer that requires client
certificates checks. A CA file alone makes a pure client (the CLI, the SDK) dial TLS.
"""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from mesos_runtime.flags import parse_bool

__all__ = [
    "TlsConfig",
    "add_listener",
    "add_tls_flags",
    "open_channel",
    "peer_principal",
    "tls_from_args",
    "tls_from_environment",
]

_ENV = "LIBPROCESS_SSL_"


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """Where a process's TLS material is; all None: plain TCP."""

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    require_client_cert: bool = False

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("TLS needs both a certificate (--ssl_cert_file) and its key "
                             "(--ssl_key_file)")
        if self.require_client_cert and self.cert_file is None:
            raise ValueError("--ssl_require_client_cert needs --ssl_cert_file and "
                             "--ssl_key_file")
        for path in (self.cert_file, self.key_file, self.ca_file):
            if path is not None and not Path(path).is_file():
                raise ValueError(f"TLS file {path} does not exist")

    @property
    def serves_tls(self) -> bool:
        """Whether this process's listeners speak TLS."""
        return self.cert_file is not None

    @property
    def dials_tls(self) -> bool:
        """Whether this process dials its peers over TLS."""
        return self.cert_file is not None or self.ca_file is not None

    @property
    def http_scheme(self) -> str:
        return "https" if self.serves_tls else "http"

    def server_credentials(self) -> grpc.ServerCredentials:
        """gRPC credentials of a TLS listener."""
        assert self.cert_file is not None and self.key_file is not None
        return grpc.ssl_server_credentials(
            [(_read(self.key_file), _read(self.cert_file))],
            root_certificates=_read(self.ca_file) if self.ca_file else None,
            require_client_auth=self.require_client_cert,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        """gRPC credentials of a TLS client: the CA to verify with, and this process's own
        certificate to present."""
        return grpc.ssl_channel_credentials(
            root_certificates=_read(self.ca_file) if self.ca_file else None,
            private_key=_read(self.key_file) if self.key_file else None,
            certificate_chain=_read(self.cert_file) if self.cert_file else None,
        )

    def uvicorn_options(self) -> dict[str, Any]:
        """The keyword arguments that make uvicorn serve TLS (empty for plain HTTP)."""
        if not self.serves_tls:
            return {}
        return {
            "ssl_certfile": self.cert_file, "ssl_keyfile": self.key_file,
            "ssl_ca_certs": self.ca_file,
            "ssl_cert_reqs": ssl.CERT_REQUIRED if self.require_client_cert else ssl.CERT_NONE,
        }

    def client_context(self) -> ssl.SSLContext:
        """An SSL context for HTTP clients (httpx `verify=`): verifies servers against the
        CA (else the system's store) and presents this process's certificate."""
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


def add_tls_flags(parser: argparse.ArgumentParser) -> None:
    """The `--ssl_*` flags."""
    group = parser.add_argument_group("TLS (also LIBPROCESS_SSL_* as in Mesos)")
    group.add_argument("--ssl_cert_file", default=None,
                       help="certificate (PEM) this process presents; with --ssl_key_file "
                            "every listener serves TLS only")
    group.add_argument("--ssl_key_file", default=None, help="private key of --ssl_cert_file")
    group.add_argument("--ssl_ca_file", default=None,
                       help="CA certificates (PEM) peers are verified with (default: the "
                            "system's)")
    group.add_argument("--ssl_require_client_cert", type=parse_bool, default=None,
                       help="demand a client certificate signed by the CA (mutual TLS)")


def tls_from_args(args: argparse.Namespace,
                  environ: Mapping[str, str] | None = None) -> TlsConfig:
    """The process's `TlsConfig`: its `--ssl_*` flags, else the `LIBPROCESS_SSL_*`
    variables when `LIBPROCESS_SSL_ENABLED` is true. ValueError for an incomplete set."""
    env = os.environ if environ is None else environ
    from_env = _env_bool(env, "ENABLED")

    def pick(flag: str, variable: str) -> str | None:
        value: str | None = getattr(args, flag, None)
        if value is None and from_env:
            value = env.get(f"{_ENV}{variable}") or None
        return value

    require = getattr(args, "ssl_require_client_cert", None)
    if require is None:
        require = from_env and _env_bool(env, "REQUIRE_CERT")
    return TlsConfig(
        cert_file=pick("ssl_cert_file", "CERT_FILE"),
        key_file=pick("ssl_key_file", "KEY_FILE"),
        ca_file=pick("ssl_ca_file", "CA_FILE"),
        require_client_cert=bool(require),
    )


def tls_from_environment(environ: Mapping[str, str] | None = None) -> TlsConfig:
    """The `TlsConfig` of `LIBPROCESS_SSL_*` alone: for the SDK's drivers and executors,
    which have no flags of their own."""
    return tls_from_args(argparse.Namespace(), environ)


def open_channel(target: str, tls: TlsConfig | None,
                 options: Sequence[tuple[str, Any]] = ()) -> grpc.aio.Channel:
    """A gRPC channel to `target`: over TLS when `tls` dials TLS, else plain."""
    if tls is not None and tls.dials_tls:
        return grpc.aio.secure_channel(target, tls.channel_credentials(), options=options)
    return grpc.aio.insecure_channel(target, options=options)


def add_listener(server: grpc.aio.Server, address: str, tls: TlsConfig | None) -> int:
    """Listen on `address` (TLS only when `tls` serves TLS); the bound port, 0 if none."""
    if tls is not None and tls.serves_tls:
        return server.add_secure_port(address, tls.server_credentials())
    return server.add_insecure_port(address)


def peer_principal(context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
    """The common name of the client certificate the TLS handshake verified, if any: with
    mutual TLS (`--ssl_require_client_cert`; gRPC asks for no certificate otherwise), the
    caller's principal."""
    names = list(context.auth_context().get("x509_common_name") or ())
    return names[0].decode("utf-8", "replace") if names else None


def _env_bool(env: Mapping[str, str], variable: str) -> bool:
    try:
        return parse_bool(env.get(f"{_ENV}{variable}", "false"))
    except argparse.ArgumentTypeError as error:
        raise ValueError(f"{_ENV}{variable}: {error}") from None


def _read(path: str) -> bytes:
    return Path(path).read_bytes()
