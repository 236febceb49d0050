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

from mesos_security.tls import TlsConfig

GRACEFUL_SHUTDOWN_SECONDS = 2
"""How long a stopping server waits for open requests (event streams) to end."""

DEFAULT_KEEP_ALIVE_SECONDS = 5
"""uvicorn's own idle keep-alive timeout, kept for the components that do not choose one."""

__all__ = ["DEFAULT_KEEP_ALIVE_SECONDS", "serve_while"]


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
        with contextlib.suppress(asyncio.CancelledError):
            await serving
