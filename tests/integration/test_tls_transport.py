"""`TlsConfig` on real sockets: gRPC and HTTP listeners serve TLS only, verify clients when
asked (mutual TLS), and a verified client certificate names its principal."""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from mesos_http.http_auth import HttpAuthentication, request_principal
from mesos_http.http_server import serve_while
from mesos_security.authentication import Authenticator
from mesos_security.pki import CertificateAuthority
from mesos_security.tls import TlsConfig, peer_principal, tls_from_args

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, TlsConfig]]:
    directory = tmp_path_factory.mktemp("pki")
    ca = CertificateAuthority.create(directory)
    other = CertificateAuthority.create(directory / "other", name="another CA")
    server, client, stranger = ca.issue("server"), ca.issue("alice"), other.issue("mallory")
    yield {
        "server": TlsConfig(str(server.cert_file), str(server.key_file), str(ca.cert_file)),
        "mtls server": TlsConfig(str(server.cert_file), str(server.key_file), str(ca.cert_file),
                                 require_client_cert=True),
        "client": TlsConfig(str(client.cert_file), str(client.key_file), str(ca.cert_file)),
        "anonymous client": TlsConfig(ca_file=str(ca.cert_file)),
        "stranger": TlsConfig(str(stranger.cert_file), str(stranger.key_file),
                              str(ca.cert_file)),
    }


def _echo_handler() -> grpc.GenericRpcHandler:
    async def who(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return (peer_principal(context) or "-").encode()

    return grpc.method_handlers_generic_handler("test.Echo", {
        "Who": grpc.unary_unary_rpc_method_handler(who),
    })


async def _grpc_call(server_tls: TlsConfig, client_tls: TlsConfig | None) -> str:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_echo_handler(),))
    port = server.add_secure_port("127.0.0.1:0", server_tls.server_credentials())
    await server.start()
    try:
        target = f"127.0.0.1:{port}"
        channel = (grpc.aio.insecure_channel(target) if client_tls is None
                   else grpc.aio.secure_channel(target, client_tls.channel_credentials()))
        async with channel:
            who: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
                "/test.Echo/Who")
            try:
                answer: bytes = await who(b"", timeout=5)
            except grpc.aio.AioRpcError as error:
                return f"refused: {error.code().name}"
            return answer.decode()
    finally:
        await server.stop(None)


def test_grpc_serves_tls_only_and_names_verified_clients(pki: dict[str, TlsConfig]) -> None:
    assert asyncio.run(_grpc_call(pki["server"], pki["anonymous client"])) == "-"
    # gRPC asks for a client certificate only when it requires one.
    assert asyncio.run(_grpc_call(pki["server"], pki["client"])) == "-"
    assert asyncio.run(_grpc_call(pki["server"], None)) == "refused: UNAVAILABLE"
    assert asyncio.run(_grpc_call(pki["mtls server"], pki["client"])) == "alice"
    assert asyncio.run(_grpc_call(pki["mtls server"], pki["anonymous client"])) \
        == "refused: UNAVAILABLE"
    assert asyncio.run(_grpc_call(pki["mtls server"], pki["stranger"])) \
        == "refused: UNAVAILABLE"


async def _http_get(server_tls: TlsConfig, client_tls: TlsConfig | None,
                    scheme: str = "https", *, who: bool = False) -> str:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request_principal(request)) if who else "hello")

    app: ASGIApp = Starlette(routes=[Route("/", hello)])
    if who:  # a principal is required: the client certificate names it
        app = HttpAuthentication(app, Authenticator(), readonly=True, readwrite=True,
                                 realm="test")
    result = ""

    async def body(port: int) -> None:
        nonlocal result
        verify: ssl.SSLContext | bool = client_tls.client_context() if client_tls else False
        try:
            async with httpx.AsyncClient(verify=verify, timeout=5) as client:
                result = (await client.get(f"{scheme}://127.0.0.1:{port}/")).text
        except (httpx.HTTPError, ssl.SSLError) as error:
            result = f"refused: {type(error).__name__}"

    await serve_while(app, "127.0.0.1", 0, body, tls=server_tls)
    return result


def test_http_serves_tls_only_and_checks_client_certificates(
    pki: dict[str, TlsConfig],
) -> None:
    assert asyncio.run(_http_get(pki["server"], pki["anonymous client"])) == "hello"
    assert asyncio.run(_http_get(pki["server"], None, scheme="http")).startswith("refused")
    assert asyncio.run(_http_get(pki["mtls server"], pki["client"])) == "hello"
    assert asyncio.run(_http_get(pki["mtls server"], pki["anonymous client"])).startswith(
        "refused")
    assert asyncio.run(_http_get(pki["mtls server"], pki["stranger"])).startswith("refused")


def test_a_verified_client_certificate_names_the_http_principal(
    pki: dict[str, TlsConfig],
) -> None:
    assert asyncio.run(_http_get(pki["mtls server"], pki["client"], who=True)) == "alice"
    # Without mutual TLS no certificate is asked for: no principal, so 401.
    assert asyncio.run(_http_get(pki["server"], pki["client"], who=True)).startswith(
        "401 Unauthorized")


def test_flags_win_over_libprocess_variables(pki: dict[str, TlsConfig], tmp_path: Path
                                             ) -> None:
    server = pki["server"]
    env = {"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": str(server.cert_file),
           "LIBPROCESS_SSL_KEY_FILE": str(server.key_file),
           "LIBPROCESS_SSL_CA_FILE": str(server.ca_file),
           "LIBPROCESS_SSL_REQUIRE_CERT": "true"}
    none = argparse.Namespace(ssl_cert_file=None, ssl_key_file=None, ssl_ca_file=None,
                              ssl_require_client_cert=None)
    assert tls_from_args(none, env) == TlsConfig(server.cert_file, server.key_file,
                                                 server.ca_file, require_client_cert=True)
    assert tls_from_args(none, {**env, "LIBPROCESS_SSL_ENABLED": "false"}) == TlsConfig()
    flags = argparse.Namespace(**{**vars(none), "ssl_require_client_cert": False})
    assert not tls_from_args(flags, env).require_client_cert
    with pytest.raises(ValueError, match="both a certificate"):
        tls_from_args(argparse.Namespace(**{**vars(none), "ssl_cert_file": server.cert_file}),
                      {})
    with pytest.raises(ValueError, match="does not exist"):
        TlsConfig(ca_file=str(tmp_path / "missing.pem"))
