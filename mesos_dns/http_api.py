"""Mesos-DNS' HTTP API (Starlette), a thin shell over the record table.

    GET /v1/version             {"Service", "URL", "Version"}
    GET /v1/config              the configuration, with Mesos-DNS' key names
    GET /v1/hosts/{host}        [{"host": "<name>.", "ip": ...}] (A records)
    GET /v1/services/{service}  [{"service", "host", "ip", "port"}] (SRV records, resolved)
    GET /v1/enumerate           every record: {"records": [{"name", "rtype", "host"}]}

Unknown names answer one empty entry (`[{"host": "", "ip": ""}]`), as Mesos-DNS does.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mesos_dns.records import RecordTable

__all__ = ["VERSION", "http_app"]

VERSION = "0.1.0"


def http_app(table: RecordTable, config: Mapping[str, Any]) -> Starlette:
    async def version(request: Request) -> JSONResponse:
        return JSONResponse({"Service": "Mesos-DNS", "URL": "https://github.com/mesosphere/mesos-dns",
                             "Version": VERSION})

    async def show_config(request: Request) -> JSONResponse:
        return JSONResponse(dict(config))

    async def hosts(request: Request) -> JSONResponse:
        host = request.path_params["host"]
        name = host.lower().rstrip(".") + "."
        found = [{"host": name, "ip": ip} for ip in table.a(host)]
        return JSONResponse(found or [{"host": "", "ip": ""}])

    async def services(request: Request) -> JSONResponse:
        service = request.path_params["service"]
        name = service.lower().rstrip(".") + "."
        found = [
            {"service": name, "host": target + ".", "ip": ip, "port": str(port)}
            for target, port in table.srv(service)
            for ip in table.a(target) or [""]
        ]
        return JSONResponse(found or [{"service": "", "host": "", "ip": "", "port": ""}])

    async def enumerate_records(request: Request) -> JSONResponse:
        return JSONResponse({"records": [
            {"name": record.name + ".", "rtype": record.type,
             "host": f"{record.target}.:{record.port}" if record.type == "SRV"
             else record.target}
            for record in table.records()
        ]})

    return Starlette(routes=[
        Route("/v1/version", version),
        Route("/v1/config", show_config),
        Route("/v1/hosts/{host}", hosts),
        Route("/v1/services/{service}", services),
        Route("/v1/enumerate", enumerate_records),
    ])
