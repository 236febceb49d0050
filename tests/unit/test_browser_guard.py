"""Requests a browser can forge: bodies that are not JSON get 415, changes from other sites
403; everything a non-browser client sends passes."""

from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mesos_http.browser_guard import BrowserGuard, is_json_media_type, origins_flag


def client(*allowed: str) -> httpx.AsyncClient:
    async def echo(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{request.method} {len(await request.body())}")

    app = Starlette(routes=[Route("/x", echo, methods=["GET", "POST", "DELETE"])])
    transport = httpx.ASGITransport(app=BrowserGuard(app, allowed_origins=allowed))
    return httpx.AsyncClient(transport=transport, base_url="http://api:8080")


async def test_bodies_must_be_json() -> None:
    api = client()
    assert (await api.post("/x", json={"a": 1})).text == "POST 7"
    patch = await api.post("/x", content=b"{}", headers={
        "content-type": "application/merge-patch+json; charset=utf-8"})
    assert patch.status_code == 200
    for content_type in ("text/plain", "application/x-www-form-urlencoded",
                         "multipart/form-data; boundary=x", ""):
        refused = await api.post("/x", content=b'{"a": 1}',
                                 headers={"content-type": content_type})
        assert refused.status_code == 415, content_type
        assert "must be application/json" in refused.json()["message"]
    assert (await api.post("/x")).status_code == 200  # no body: nothing to read
    assert (await api.delete("/x")).status_code == 200


async def test_changes_from_other_sites_are_refused_unless_allowed() -> None:
    api = client("https://ui.example.com")
    evil = {"origin": "https://evil.example"}
    refused = await api.post("/x", json={}, headers=evil)
    assert refused.status_code == 403 and "evil.example" in refused.json()["message"]
    assert (await api.delete("/x", headers=evil)).status_code == 403
    assert (await api.delete("/x", headers={"origin": "null"})).status_code == 403
    assert (await api.get("/x", headers=evil)).status_code == 200  # reading changes nothing
    for own_or_allowed in ("https://ui.example.com/", "http://api:8080"):
        answer = await api.post("/x", json={}, headers={"origin": own_or_allowed})
        assert answer.status_code == 200, own_or_allowed
    assert (await client("*").post("/x", json={}, headers=evil)).status_code == 200


def test_helpers() -> None:
    assert is_json_media_type("Application/JSON; charset=utf-8")
    assert not is_json_media_type("text/json") and not is_json_media_type("")
    assert origins_flag(" https://a , ,https://b") == ("https://a", "https://b")
