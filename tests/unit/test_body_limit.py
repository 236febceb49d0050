"""BodyLimit: bodies up to the bound reach the app whole; a larger one is 413, declared or
streamed, and the app never sees it."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from mesos_http.body_limit import BodyLimit
from mesos_runtime.flags import parse_positive_int

seen: list[int] = []


async def echo(request: Request) -> Response:
    body = await request.body()
    seen.append(len(body))
    return PlainTextResponse(str(len(body)))


APP = BodyLimit(Starlette(routes=[Route("/", echo, methods=["GET", "POST"])]), 10)


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=APP), base_url="http://test")


async def test_a_body_within_the_bound_reaches_the_app_whole() -> None:
    async with client() as http:
        assert (await http.post("/", content=b"0123456789")).text == "10"
        assert (await http.get("/")).text == "0"


async def test_a_declared_body_over_the_bound_is_413() -> None:
    seen.clear()
    async with client() as http:
        answer = await http.post("/", content=b"0123456789a")
    assert answer.status_code == 413
    assert answer.json() == {"message": "Request body too large: 11 bytes; at most 10 bytes "
                                        "(--http_max_request_bytes)"}
    assert seen == []


async def test_a_streamed_body_over_the_bound_is_413() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"012345"
        yield b"6789ab"

    seen.clear()
    async with client() as http:
        assert (await http.post("/", content=chunks())).status_code == 413
    assert seen == []


@pytest.mark.parametrize("text", ["0", "-1", "1MB", ""])
def test_the_bound_is_a_positive_integer(text: str) -> None:
    assert parse_positive_int("1048576") == 1048576
    with pytest.raises(argparse.ArgumentTypeError, match="is not an integer of at least 1"):
        parse_positive_int(text)
