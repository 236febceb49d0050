"""A thin HTTP client for the components' APIs: JSON in and out, failures as `CliError`s.

Connection failures exit with `EXIT_UNREACHABLE` (`cannot reach master at URL: connection
refused`); error answers with `EXIT_FAILED` and the message and details the component gave.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

import httpx

from mesos_cli.errors import (
    EXIT_FAILED,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    connection_failure_reason,
    http_error_message,
)
from mesos_cli.progress import ServerSentEvent, SseDecoder

__all__ = ["ApiClient", "normalize_base_url"]

Params = Mapping[str, str | int | list[str]]


def normalize_base_url(text: str, option: str) -> str:
    """`http://host:port` from what a user typed for `option` (`host:port` gets `http://`)."""
    url = text.strip()
    if url.startswith("zk://"):
        raise CliError(f"{option} takes the HTTP address of a component (http://HOST:PORT), "
                       f"not a ZooKeeper URL: {text}", EXIT_USAGE)
    scheme, _, rest = url.partition("://") if "://" in url else ("http", "", url)
    rest = rest.rstrip("/")
    if scheme not in ("http", "https") or not rest:
        raise CliError(f"{option} needs an http:// or https:// URL, not {text!r}", EXIT_USAGE)
    return f"{scheme}://{rest}"


class ApiClient:
    """One component's HTTP API (`service` names it in messages: "master", "Marathon", ...)."""

    def __init__(self, service: str, base_url: str, *, timeout: float,
                 verify: ssl.SSLContext | bool = True,
                 auth: tuple[str, str] | None = None) -> None:
        """`verify` checks HTTPS servers' certificates (and presents the CLI's own); `auth`
        is the HTTP Basic user and password, if any (ADR 0013)."""
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, verify=verify,
                                       auth=auth)

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def get(self, path: str, params: Params | None = None) -> Any:
        """The JSON answer of `GET path`."""
        return await self.send("GET", path, params=params)

    async def get_optional(self, path: str, params: Params | None = None) -> Any | None:
        """The JSON answer of `GET path`, None when it is 404."""
        response = await self._request("GET", path, params=params)
        if response.status_code == 404:
            return None
        return self._answer(response)

    async def send(self, method: str, path: str, *, body: Any = None,
                   params: Params | None = None) -> Any:
        """`method path` with the JSON `body`; the JSON answer (None for an empty one)."""
        return self._answer(await self._request(method, path, body=body, params=params))

    async def events(self, path: str, params: Params | None,
                     opened: asyncio.Event) -> AsyncIterator[ServerSentEvent]:
        """The server-sent events of `GET path`; sets `opened` once the stream is attached."""
        try:
            async with self._http.stream(
                "GET", path, params=params, headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(self.timeout, read=None),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._refusal(response)
                opened.set()
                decoder = SseDecoder()
                async for line in response.aiter_lines():
                    event = decoder.feed(line.rstrip("\r"))
                    if event is not None:
                        yield event
        except httpx.HTTPError as error:
            raise self._failure(error) from error

    async def _request(self, method: str, path: str, *, body: Any = None,
                       params: Params | None = None) -> httpx.Response:
        try:
            return await self._http.request(
                method, path, params=params,
                content=None if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
            )
        except httpx.HTTPError as error:
            raise self._failure(error) from error

    def _answer(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise self._refusal(response)
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise CliError(f"{self.service} at {self.base_url} answered {response.request.method}"
                           f" {response.request.url.path} with something that is not JSON"
                           ) from None

    def _refusal(self, response: httpx.Response) -> CliError:
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        return CliError(http_error_message(
            self.service, response.request.method, response.request.url.path,
            response.status_code, body))

    def _failure(self, error: httpx.HTTPError) -> CliError:
        where = f"{self.service} at {self.base_url}"
        if isinstance(error, httpx.ConnectTimeout):
            return CliError(f"cannot reach {where}: timed out", EXIT_UNREACHABLE)
        if isinstance(error, httpx.TimeoutException):
            return CliError(f"{where} did not answer within {self.timeout:g}s", EXIT_FAILED)
        if isinstance(error, httpx.ConnectError):
            reason = connection_failure_reason(error)
            return CliError(f"cannot reach {where}: {reason}", EXIT_UNREACHABLE)
        if isinstance(error, httpx.TransportError):
            reason = connection_failure_reason(error)
            return CliError(f"lost the connection to {where}: {reason}", EXIT_UNREACHABLE)
        return CliError(f"{where}: {error}", EXIT_FAILED)
