"""Requests a browser can forge (ADR 0013): an ASGI wrapper for the JSON APIs.

A web page may make a visitor's browser send a cross-site `POST` without asking anyone first
as long as its body is a "simple" type (`text/plain`, a form); only other types need a CORS
preflight, which these servers never grant. So:

    request with a body whose Content-Type is not JSON  -> 415, the app never sees it
    state-changing request (POST, PUT, PATCH, DELETE) whose Origin is another site and not
    one of `allowed_origins`                            -> 403

A request without a body, and one without an `Origin` (curl, the CLI, the SDK, other
servers), passes. An `Origin` naming the server itself (its `Host`) is the server's own UI.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["BrowserGuard", "is_json_media_type", "json_message", "origins_flag"]

_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def origins_flag(text: str) -> tuple[str, ...]:
    """`--http_allowed_origins`: comma-separated origins, blanks dropped."""
    return tuple(origin.strip() for origin in text.split(",") if origin.strip())


def json_message(status: int, message: str) -> Response:
    """`{"message": message}` (Marathon's and Metronome's error shape)."""
    return JSONResponse({"message": message}, status_code=status)


def is_json_media_type(content_type: str) -> bool:
    """`application/json`, or any `+json` type, with or without parameters."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/")
                                           and media.endswith("+json"))


class BrowserGuard:
    """`app` refusing bodies that are not JSON (415) and changes from other sites (403)."""

    def __init__(self, app: ASGIApp, *, allowed_origins: Collection[str] = (),
                 answer: Callable[[int, str], Response] = json_message) -> None:
        self.app = app
        self.allowed_origins = frozenset(o.rstrip("/").lower() for o in allowed_origins)
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        refusal = self._refusal(scope["method"], headers)
        if refusal is not None:
            await self.answer(*refusal)(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _refusal(self, method: str, headers: Headers) -> tuple[int, str] | None:
        has_body = headers.get("content-length", "0") not in ("", "0") \
            or "transfer-encoding" in headers
        content_type = headers.get("content-type", "")
        if has_body and not is_json_media_type(content_type):
            return 415, (f"Unsupported Media Type: the body must be application/json, not "
                         f"{content_type or 'untyped'}")
        origin = headers.get("origin")
        if method in _CHANGING and origin is not None and not self._allowed(origin, headers):
            return 403, (f"Cross-origin request from {origin} refused (allow it with "
                         f"--http_allowed_origins)")
        return None

    def _allowed(self, origin: str, headers: Headers) -> bool:
        normalized = origin.rstrip("/").lower()
        if normalized in self.allowed_origins or "*" in self.allowed_origins:
            return True
        return urlsplit(normalized).netloc == headers.get("host", "").lower()
