"""The `text/plain` task listing in Marathon's format (what HAProxy bridge scripts read)."""

from __future__ import annotations

import dataclasses

from marathon.app_definition import parse_app
from marathon.endpoints import endpoints_text
from marathon.paths import PathId
from marathon.state import Instance


def instance(app_id: str, n: int, host: str, ports: tuple[int, ...],
             state: str = "TASK_RUNNING") -> Instance:
    return Instance(instance_id=f"i{n}", task_id=f"t{n}", app_id=PathId.parse(app_id),
                    version="v", config_version="v", agent_id="a", host=host, ports=ports,
                    attributes={}, staged_at=0.0, state=state)


def test_one_line_per_service_port_with_the_running_instances_host_ports() -> None:
    web = parse_app({"id": "/shop/web", "cmd": "serve",
                     "portDefinitions": [{"port": 10000}, {"port": 10001}]})
    plain = parse_app({"id": "/batchy", "cmd": "work", "portDefinitions": []})
    running = instance("/shop/web", 1, "h1", (31000, 31001))
    staging = instance("/shop/web", 2, "h2", (31002, 31003), state="TASK_STAGING")
    killing = dataclasses.replace(instance("/shop/web", 3, "h3", (31004, 31005)), killing=True)
    text = endpoints_text([(web, [running, staging, killing, instance("/shop/web", 4, "h2",
                                                                       (31006, 31007))]),
                           (plain, [instance("/batchy", 5, "h9", ())])])
    assert text == ("shop_web\t10000\th1:31000\th2:31006\t\n"
                    "shop_web\t10001\th1:31001\th2:31007\t\n"
                    "batchy\t \th9\t\n")
    assert endpoints_text([]) == ""
