"""A bound on request bodies: an ASGI wrapper that answers 413 to a body over `max_bytes`.

    request --BodyLimit(app, max_bytes, answer)--> Content-Length or bytes read > max_bytes?
                 yes: answer(message) (413), the app never sees the request
                 no:  app, the body replayed as read

The body is read before the app runs (at most `max_bytes` of it is kept), so no handler can
be handed more; requests without a body pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["DEFAULT_MAX_REQUEST_BYTES", "BodyLimit", "json_message"]

DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024
"""The default bound: 1 MiB, many times the largest valid app, group or job definition."""


def json_message(message: str) -> Response:
    """A 413 answer `{"message": message}` (Marathon's and Metronome's shape)."""
    return JSONResponse({"message": message}, status_code=413)


class BodyLimit:
    """`app` behind a bound of `max_bytes` on request bodies; `answer(message)` is the 413."""

    def __init__(self, app: ASGIApp, max_bytes: int,
                 answer: Callable[[str], Response] = json_message) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send, declared.decode("latin-1"))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, f"more than {size}")
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replaying(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        answer = self.answer(f"Request body too large: {size} bytes; at most "
                             f"{self.max_bytes} bytes (--http_max_request_bytes)")
        answer.headers["Connection"] = "close"
        await answer(scope, receive, send)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` that first hands out `body` (whole), then what the client sends next."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed
