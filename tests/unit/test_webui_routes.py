"""The web UI routes in process (over httpx's ASGI transport): pages, redirects, assets that
work offline, and the master's pass-through to agents refusing what it must not pass on."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from starlette.applications import Starlette

from webui.routes import STATIC_DIR, Component, ui_routes

PAGES: tuple[Component, ...] = ("master", "marathon", "batch")
_HTML_REFERENCE = re.compile(r"""(?:src|href)="([^"]*)\"""")
_JS_IMPORT = re.compile(r"""(?:from\s+|import\s*\(\s*)"([^"]*)\"""")
_CSS_REFERENCE = re.compile(r"""url\(|@import""")


async def get(component: Component, path: str,
              agent_url: Callable[[str], str | None] | None = None) -> httpx.Response:
    app = Starlette(routes=ui_routes(component, agent_url=agent_url))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://ui.test") as client:
        return await client.get(path)


@pytest.mark.parametrize("component", PAGES)
async def test_the_page_is_served_at_ui_and_loads_its_module(component: Component) -> None:
    answer = await get(component, "/ui/")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert f'src="/ui/static/{component}.js"' in answer.text
    assert (await get(component, "/ui")).headers["location"] == "/ui/"


async def test_the_master_serves_its_page_at_the_root_as_mesos_does() -> None:
    assert (await get("master", "/")).text == (await get("master", "/ui/")).text


@pytest.mark.parametrize("component", ["marathon", "batch"])
async def test_frameworks_redirect_the_root_to_their_ui(component: Component) -> None:
    answer = await get(component, "/")
    assert (answer.status_code, answer.headers["location"]) == (307, "/ui/")


@pytest.mark.parametrize(("name", "media_type"), [
    ("common.js", "text/javascript"), ("master.js", "text/javascript"),
    ("common.css", "text/css"),
])
async def test_assets_have_the_types_browsers_require(name: str, media_type: str) -> None:
    answer = await get("batch", f"/ui/static/{name}")
    assert answer.status_code == 200
    assert answer.headers["content-type"].split(";")[0] == media_type


def test_pages_load_only_assets_that_ship_in_the_package() -> None:
    files = {path.name: path.read_text() for path in STATIC_DIR.iterdir() if path.is_file()}
    assert {name.rsplit(".", 1)[1] for name in files} == {"html", "js", "css"}
    for name, text in files.items():
        if name.endswith(".html"):
            references = [ref for ref in _HTML_REFERENCE.findall(text) if ref != "data:,"]
            assert all(ref.startswith("/ui/static/") for ref in references), (name, references)
            assert all(ref.removeprefix("/ui/static/") in files for ref in references), name
        elif name.endswith(".js"):
            imports = _JS_IMPORT.findall(text)
            assert all(ref.startswith("./") and ref[2:] in files for ref in imports), name
        else:
            assert not _CSS_REFERENCE.search(text), f"{name} loads something"


async def test_the_agent_pass_through_refuses_other_endpoints_and_unknown_agents() -> None:
    known = {"agent-1": "http://127.0.0.1:1"}
    refused = await get("master", "/ui/agent/agent-1/flags", agent_url=known.get)
    assert refused.status_code == 404 and "not passed on" in refused.text
    unknown = await get("master", "/ui/agent/agent-2/state", agent_url=known.get)
    assert unknown.status_code == 404 and "agent-2 is not known" in unknown.text


@pytest.mark.parametrize("component", PAGES)
async def test_without_agent_urls_nothing_is_passed_to_agents(component: Component) -> None:
    assert (await get(component, "/ui/agent/agent-1/state")).status_code == 404


def test_an_unknown_component_has_no_ui() -> None:
    with pytest.raises(ValueError, match="no web UI"):
        ui_routes("scheduler")  # type: ignore[arg-type]
