"""Who is calling an HTTP API (ADR 0013): an ASGI wrapper that authenticates requests with
HTTP Basic, as Mesos' `--authenticate_http_readonly` / `--authenticate_http_readwrite` do, or
with the client certificate that mutual TLS verified (its common name is the principal).

    request --HttpAuthentication--> principal (or anonymous) in request.state.principal
                                   401 + WWW-Authenticate: Basic when required and missing,
                                   or when the credential is wrong

GET and HEAD requests are read-only, everything else read-write; each kind requires a
principal only when its flag is on. `open_paths` (health checks, the UI's static files) never
do. Handlers read the principal with `request_principal(request)` and authorize it with the
ACLs (`mesos_security.acls`).
"""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mesos_http.http_server import tls_peer_principal
from mesos_security.authentication import AuthenticationFailed, Authenticator

__all__ = ["READ_ONLY_METHODS", "HttpAuthentication", "request_principal"]

READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


class HttpAuthentication:
    """`app` behind HTTP Basic authentication."""

    def __init__(self, app: ASGIApp, authenticator: Authenticator, *, readonly: bool,
                 readwrite: bool, realm: str, open_paths: Collection[str] = (),
                 open_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.authenticator = authenticator
        self.readonly = readonly
        self.readwrite = readwrite
        self.realm = realm
        self.open_paths = frozenset(open_paths)
        self.open_prefixes = open_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        required = (self.readonly if scope["method"] in READ_ONLY_METHODS else self.readwrite)
        if path in self.open_paths or path.startswith(self.open_prefixes):
            required = False
        authorization = Request(scope).headers.get("authorization")
        try:
            principal = self.authenticator.principal(authorization, tls_peer_principal(scope),
                                                     required=required)
        except AuthenticationFailed as failure:
            answer = PlainTextResponse(
                f"401 Unauthorized: {failure.message}", status_code=401,
                headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'})
            await answer(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def request_principal(request: Request) -> str | None:
    """The principal `HttpAuthentication` found for `request` (None: anonymous)."""
    principal: str | None = request.scope.get("state", {}).get("principal")
    return principal
