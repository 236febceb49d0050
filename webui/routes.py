"""The routes that serve a component's web UI from the package's static assets (offline).

    GET /ui/                       the component's page (the master's also at `/`)
    GET /ui/static/{file}          shared and per-page CSS and JavaScript modules
    GET /                          Marathon and batch: 307 to /ui/, as Marathon does
    GET /ui/agent/{id}/{endpoint}  master only: an agent's `state`, `monitor/statistics` or
                                   `files/browse|read|download`

The master's page reads task usage and sandboxes through the master (the last route) rather
than from the agents: the page's origin is the master, agents may not be reachable from the
operator's browser, and the agents' endpoints need no cross-origin headers. Only read-only GET
endpoints are passed on, with their query string and the browser's `Authorization` (agents
with `--authenticate_http_readonly` check the operator's own credentials and ACLs, and a 401
comes back with its challenge); an unknown agent answers 404, an unreachable one 502.
"""

from __future__ import annotations

import mimetypes
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Literal

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["AGENT_ENDPOINTS", "STATIC_DIR", "Component", "ui_routes"]

Component = Literal["master", "marathon", "batch"]
STATIC_DIR = Path(__file__).resolve().parent / "static"
AGENT_ENDPOINTS = frozenset({"state", "monitor/statistics", "files/browse", "files/read",
                             "files/download"})
"""The agent endpoints the master passes on for its page."""
_PASSED_HEADERS = ("content-type", "content-disposition", "last-modified", "www-authenticate")
_AGENT_TIMEOUT = httpx.Timeout(10.0)

# Browsers load ES modules only with a JavaScript type, whatever the host's mime.types says.
mimetypes.add_type("text/javascript", ".js")


def ui_routes(
    component: Component, *, agent_url: Callable[[str], str | None] | None = None,
    agent_verify: ssl.SSLContext | bool = True,
) -> list[BaseRoute]:
    """The UI routes of `component`; the master passes `agent_url`, which maps an agent id to
    the base URL of that agent's HTTP endpoints (None when unknown), and `agent_verify`, how
    their certificates are checked over HTTPS."""
    page = STATIC_DIR / f"{component}.html"
    if not page.is_file():
        raise ValueError(f"no web UI for {component!r}")

    async def serve_page(request: Request) -> Response:
        return FileResponse(page, media_type="text/html", headers={"Cache-Control": "no-cache"})

    async def to_page(request: Request) -> Response:
        return RedirectResponse("/ui/", status_code=307)

    routes: list[BaseRoute] = [
        Route("/ui/", serve_page, methods=["GET", "HEAD"]),
        Route("/ui", to_page, methods=["GET", "HEAD"]),
        Mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static"),
    ]
    if component == "master":
        routes.append(Route("/", serve_page, methods=["GET", "HEAD"]))
        if agent_url is not None:
            routes.append(Route("/ui/agent/{agent_id}/{endpoint:path}",
                                _agent_proxy(agent_url, agent_verify), methods=["GET"]))
    else:
        routes.append(Route("/", to_page, methods=["GET", "HEAD"]))
    return routes


def _agent_proxy(
    agent_url: Callable[[str], str | None], verify: ssl.SSLContext | bool,
) -> Callable[[Request], Awaitable[Response]]:
    async def proxy(request: Request) -> Response:
        agent_id = request.path_params["agent_id"]
        endpoint = request.path_params["endpoint"]
        if endpoint not in AGENT_ENDPOINTS:
            return PlainTextResponse(f"/{endpoint} is not passed on to agents", status_code=404)
        base = agent_url(agent_id)
        if base is None:
            return PlainTextResponse(f"agent {agent_id} is not known to this master",
                                     status_code=404)
        # Only registered agents' own endpoints; a redirect is passed back, never followed.
        client = httpx.AsyncClient(timeout=_AGENT_TIMEOUT, verify=verify,
                                   follow_redirects=False)
        try:
            credentials = request.headers.get("authorization")
            upstream = await client.send(
                client.build_request(
                    "GET", f"{base}/{endpoint}", params=request.query_params,
                    headers={"Authorization": credentials} if credentials else None),
                stream=True,
            )
        except httpx.HTTPError as exc:
            await client.aclose()
            return PlainTextResponse(f"agent {agent_id} at {base} cannot be reached: {exc}",
                                     status_code=502)

        async def close() -> None:
            await upstream.aclose()
            await client.aclose()

        headers = {name: upstream.headers[name] for name in _PASSED_HEADERS
                   if name in upstream.headers}
        return StreamingResponse(upstream.aiter_bytes(), status_code=upstream.status_code,
                                 headers=headers, background=BackgroundTask(close))

    return proxy
