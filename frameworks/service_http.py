"""The HTTP side of an elected framework service (Marathon, the batch framework): one
`HttpError`, and the `LeaderGuard` that every route of the service's API goes through.

    request ──▶ LeaderGuard.wrap(handler)
      not leading, a leader known, a forwarded path ──▶ LeaderForwarder ──▶ the leader's answer
      otherwise ──▶ handler ──HttpError──▶ JSON answer (`{"message": ...}` or the error's body)
      every answer carries `leader_header: http://<leader>` when the service names one
    handler ──guard.core()──▶ the leader's core, or HttpError 503 naming the leader (or none)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, Protocol, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from frameworks.authorization import Action, Authorization
from frameworks.set_aside import SetAside
from mesos_http.http_auth import request_principal
from mesos_http.http_error import HttpError
from mesos_http.http_forward import LeaderForwarder
from mesos_security.tls import TlsConfig

__all__ = [
    "Authorizer",
    "ElectedService",
    "Handler",
    "LeaderGuard",
    "RecordsSetAside",
    "set_aside_records",
]

Handler = Callable[[Request], Awaitable[Response]]
CoreT = TypeVar("CoreT")
CoreT_co = TypeVar("CoreT_co", covariant=True)


class ElectedService(Protocol[CoreT_co]):
    """What a service's API reads of the process (`frameworks.service_host.ServiceHost`)."""

    @property
    def core(self) -> CoreT_co | None:
        """The leader's core; None while this process does not lead."""
        ...

    @property
    def leader_address(self) -> str | None:
        """`host:port` of the leader's API, when known."""
        ...

    @property
    def leader_url(self) -> str | None:
        """The leader's base URL when another process leads (requests are forwarded there)."""
        ...

    @property
    def tls(self) -> TlsConfig:
        """The process's TLS: the scheme of URLs and how the leader's certificate is checked."""
        ...

    async def durable(self) -> None:
        """Wait until every change made so far is durable."""
        ...


class LeaderGuard(Generic[CoreT]):
    """Forwards a standby's requests to the leader and turns `HttpError` into answers.

    `forwarded(path)` says which paths a standby forwards (the others it answers itself);
    `not_leader` opens the 503 message; `via_header`/`via` mark forwarded requests (see
    `LeaderForwarder`); `leader_header`, when given, names the leader on every answer.
    """

    def __init__(
        self,
        service: ElectedService[CoreT],
        *,
        forwarded: Callable[[str], bool],
        via_header: str,
        via: str,
        not_leader: str = "not the leader",
        leader_header: str | None = None,
    ) -> None:
        self.service = service
        self.forwarded = forwarded
        self.not_leader = not_leader
        self.leader_header = leader_header
        tls = service.tls
        self._scheme = tls.http_scheme
        self._forwarder = LeaderForwarder(
            via_header, via, verify=tls.client_context() if tls.dials_tls else True)

    def wrap(self, handler: Handler) -> Handler:
        """`handler` behind the guard."""
        async def guarded(request: Request) -> Response:
            response = await self._answer(handler, request)
            leader = self.service.leader_address
            if self.leader_header is not None and leader is not None:
                response.headers[self.leader_header] = f"{self._scheme}://{leader}"
            return response

        return guarded

    def core(self) -> CoreT:
        """The leader's core; HttpError 503 naming the leader while this process does not lead."""
        core = self.service.core
        if core is None:
            leader = self.service.leader_address
            raise HttpError(503, self.not_leader + (
                f"; the leader is at {self._scheme}://{leader}" if leader
                else "; no leader is elected"))
        return core

    async def _answer(self, handler: Handler, request: Request) -> Response:
        try:
            leader = self.service.leader_url
            if self.service.core is None and leader and self.forwarded(request.url.path):
                return await self._forwarder.forward(request, leader)
            return await handler(request)
        except HttpError as error:
            return JSONResponse(error.body, status_code=error.status)


class RecordsSetAside(Protocol):
    """A core that keeps the records its recovery set aside (`frameworks.set_aside`)."""

    set_aside: list[SetAside]

    def discard_record(self, key: str) -> bool:
        """Delete set-aside record `key` from the store; False if none has that key."""
        ...


async def set_aside_records(request: Request, core: RecordsSetAside,
                            service: ElectedService[Any]) -> Response:
    """`GET` lists the records the leader's recovery set aside; `DELETE ?key=` removes one
    from the store and answers, once that is durable, with those left (400 without `key`,
    404 for a key not set aside)."""
    if request.method == "DELETE":
        key = request.query_params.get("key")
        if not key:
            raise HttpError(400, "Query parameter 'key' (a set-aside record's key) is required")
        if not core.discard_record(key):
            raise HttpError(404, f"No set-aside record '{key}'")
        await service.durable()
    return JSONResponse({"setAsideRecords": [record.to_json() for record in core.set_aside]})


class Authorizer:
    """The API's side of `--http_authorization`: refuses a request (403 naming the rule or
    reason) unless its user may do every wanted action, and filters lists to what it may
    view."""

    def __init__(self, authorization: Authorization) -> None:
        self.authorization = authorization

    def require(self, request: Request, wanted: Iterable[tuple[Action, str]]) -> None:
        """HttpError 403 unless the request's user may do each (action, path) of `wanted`."""
        if not self.authorization.enabled:
            return
        refusal = self.authorization.first_refusal(request_principal(request), wanted)
        if refusal is not None:
            raise HttpError(403, f"Access denied: {refusal.reason}")

    @staticmethod
    def reading(request: Request) -> Action:
        """`view` for a GET or HEAD, `update` otherwise."""
        return "view" if request.method in ("GET", "HEAD") else "update"

    def may_view(self, request: Request, path: str) -> bool:
        """Whether the request's user may view `path`."""
        return (not self.authorization.enabled
                or self.authorization.may_view(request_principal(request), path))

    def may_view_all(self, request: Request, paths: Iterable[str]) -> bool:
        """Whether the request's user may view every one of `paths`."""
        return all(self.may_view(request, path) for path in paths)
