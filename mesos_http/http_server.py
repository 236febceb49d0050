"""Serve an ASGI app (uvicorn) inside an existing event loop, alongside the process's own work.

    await serve_while(app, host, port, lambda bound_port: service.run(http_port=bound_port))

The process handles SIGINT/SIGTERM itself (by cancelling its main task), so uvicorn's own signal
handling is off. With port 0 the system picks a free port; `body` receives the bound one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import uvicorn
from starlette.types import Scope
from uvicorn.protocols.http.h11_impl import H11Protocol

from mesos_runtime.tasks import wait_ended
from mesos_security.tls import TlsConfig

GRACEFUL_SHUTDOWN_SECONDS = 2
"""How long a stopping server waits for open requests (event streams) to end."""

DEFAULT_KEEP_ALIVE_SECONDS = 5
"""uvicorn's own idle keep-alive timeout, kept for the components that do not choose one."""

__all__ = ["DEFAULT_KEEP_ALIVE_SECONDS", "serve_while", "tls_peer_principal"]


_PEERS: dict[tuple[str, int], str] = {}
"""The verified client certificate's common name of each open TLS connection, by the client's
address: ASGI scopes carry no TLS details, so the protocol below records them here."""


def tls_peer_principal(scope: Scope) -> str | None:
    """The common name of the client certificate the TLS handshake of this request's
    connection verified (mutual TLS, ADR 0013), if any."""
    client = scope.get("client")
    return _PEERS.get((client[0], client[1])) if client else None


class _TlsPeerProtocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol, noting each connection's verified client certificate."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert() if ssl_object is not None else None
        names = [value for rdn in (certificate or {}).get("subject", ())
                 for key, value in rdn if key == "commonName"]
        if names and self.client is not None:
            _PEERS[self.client] = names[0]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client is not None:
            _PEERS.pop(self.client, None)
        super().connection_lost(exc)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve_while(
    app: Any, host: str, port: int, body: Callable[[int], Awaitable[None]], *,
    keep_alive: int = DEFAULT_KEEP_ALIVE_SECONDS, tls: TlsConfig | None = None,
) -> None:
    """Serve `app` on `host:port` while `body(bound_port)` runs; OSError if it cannot listen.
    An idle keep-alive connection is closed after `keep_alive` seconds. With a `tls` that
    has a certificate, only HTTPS is served (ADR 0013)."""
    server = _Server(uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, lifespan="off",
        timeout_keep_alive=keep_alive, **(tls.uvicorn_options() if tls else {}),
        http=_TlsPeerProtocol if tls is not None and tls.serves_tls else "auto",
        # Open event streams (/v2/events, a web UI page) must not hold a shutdown up for long.
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    ))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if serving.done():
                with contextlib.suppress(SystemExit):  # uvicorn exits when it cannot bind
                    await serving
                raise OSError(f"cannot listen on {host}:{port}")
            await asyncio.sleep(0.01)
        await body(server.servers[0].sockets[0].getsockname()[1])
    finally:
        server.should_exit = True
        await wait_ended(serving)
