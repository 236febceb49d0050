"""The leader guard every elected framework service's API goes through
(`frameworks.service_http`): errors become JSON answers, a process that does not lead answers 503
naming the leader, and a standby forwards to the leader (a real one, listening on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from frameworks.service_http import LeaderGuard
from mesos_http.http_error import HttpError
from mesos_http.http_server import serve_while
from mesos_security.tls import TlsConfig

VIA_HEADER = "X-Test-Via"
LEADER_HEADER = "X-Test-Leader"


@dataclass
class Process:
    """What the guard reads of a service: its core (None unless leading) and the leader."""

    core: str | None = None
    leader_address: str | None = None
    leader_url: str | None = None
    tls: TlsConfig = field(default_factory=TlsConfig)

    async def durable(self) -> None:
        return None


def guarded_app(process: Process) -> Starlette:
    guard: LeaderGuard[str] = LeaderGuard(
        process, forwarded=lambda path: path.startswith("/v1/"), via_header=VIA_HEADER,
        via="standby", not_leader="Test is not the leader", leader_header=LEADER_HEADER,
    )

    async def core(request: Request) -> Response:
        return JSONResponse({"core": guard.core(), "via": request.headers.get(VIA_HEADER)})

    async def refused(request: Request) -> Response:
        raise HttpError(409, "taken", {"message": "taken", "details": ["x"]})

    async def missing(request: Request) -> Response:
        raise HttpError(404, "no such thing")

    return Starlette(routes=[
        Route(path, guard.wrap(handler)) for path, handler in (
            ("/v1/core", core), ("/local/core", core), ("/v1/refused", refused),
            ("/v1/missing", missing),
        )
    ])


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.fixture
async def leader() -> AsyncIterator[str]:
    """A leading process's API on a free loopback port; yields its base URL."""
    bound: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def body(port: int) -> None:
        bound.set_result(port)
        await stop.wait()

    serving = asyncio.create_task(
        serve_while(guarded_app(Process(core="leader-core")), "127.0.0.1", 0, body))
    port = await bound
    yield f"http://127.0.0.1:{port}"
    stop.set()
    await serving


async def test_the_leader_answers_with_its_core_and_names_itself() -> None:
    process = Process(core="mine", leader_address="me:1")
    async with client(guarded_app(process)) as http:
        answer = await http.get("/v1/core")
    assert answer.status_code == 200 and answer.json() == {"core": "mine", "via": None}
    assert answer.headers[LEADER_HEADER] == "http://me:1"


async def test_http_errors_are_json_answers_with_their_message_or_body() -> None:
    async with client(guarded_app(Process(core="mine"))) as http:
        refused, missing = await http.get("/v1/refused"), await http.get("/v1/missing")
    assert (refused.status_code, refused.json()) == (409, {"message": "taken", "details": ["x"]})
    assert (missing.status_code, missing.json()) == (404, {"message": "no such thing"})
    assert LEADER_HEADER not in missing.headers  # no leader known


async def test_without_a_leader_the_core_is_a_503_saying_so() -> None:
    async with client(guarded_app(Process())) as http:
        answer = await http.get("/v1/core")
    assert answer.status_code == 503
    assert answer.json() == {"message": "Test is not the leader; no leader is elected"}


async def test_a_standby_answers_local_paths_itself_with_503_naming_the_leader(
    leader: str,
) -> None:
    standby = Process(leader_address="leader:5", leader_url=leader)
    async with client(guarded_app(standby)) as http:
        answer = await http.get("/local/core")
    assert answer.status_code == 503
    assert answer.json() == {"message": "Test is not the leader; the leader is at http://leader:5"}
    assert answer.headers[LEADER_HEADER] == "http://leader:5"


async def test_a_standby_forwards_to_the_leader(leader: str) -> None:
    standby = Process(leader_address="leader:5", leader_url=leader)
    async with client(guarded_app(standby)) as http:
        answer = await http.get("/v1/core")
    assert answer.status_code == 200
    assert answer.json() == {"core": "leader-core", "via": "standby"}
    assert answer.headers[LEADER_HEADER] == "http://leader:5"


async def test_a_forwarded_request_is_not_forwarded_again(leader: str) -> None:
    standby = Process(leader_address="leader:5", leader_url=leader)
    async with client(guarded_app(standby)) as http:
        answer = await http.get("/v1/core", headers={VIA_HEADER: "another standby"})
    assert answer.status_code == 503
