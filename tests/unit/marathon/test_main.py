"""`marathon.main`: the HTTP server is started as Marathon's Jetty runs (30 s idle keep-alive)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from marathon import main
from marathon.service import MarathonConfig
from mesos_http.http_server import DEFAULT_KEEP_ALIVE_SECONDS


def test_marathon_keeps_idle_connections_open_for_30_seconds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, Any] = {}

    async def serve_service(service: object, app: object, name: str, *,
                            keep_alive: int = DEFAULT_KEEP_ALIVE_SECONDS) -> None:
        seen.update(name=name, keep_alive=keep_alive)

    monkeypatch.setattr(main, "serve_service", serve_service)
    args = main.parse_service_flags(main.build_parser(), ["--master", "127.0.0.1:5050"],
                                    "MARATHON")
    asyncio.run(main.serve(MarathonConfig.from_flags(args, role="*", user=None)))
    assert seen == {"name": "marathon", "keep_alive": 30}
    assert DEFAULT_KEEP_ALIVE_SECONDS == 5  # the master, agent and batch framework keep uvicorn's


def test_local_port_flags_set_the_service_port_range() -> None:
    def parsed(*flags: str) -> range:
        return main.service_port_range(main.parse_service_flags(
            main.build_parser(), ["--master", "127.0.0.1:5050", *flags], "MARATHON"))

    assert parsed() == range(10000, 20001)
    assert parsed("--local_port_min", "15000", "--local_port_max", "15009") == \
        range(15000, 15010)
    with pytest.raises(SystemExit):
        parsed("--local_port_min", "15000", "--local_port_max", "14000")
    with pytest.raises(SystemExit):
        parsed("--local_port_max", "70000")
