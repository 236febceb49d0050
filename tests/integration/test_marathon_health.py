"""Health probes against real loopback servers, and the HealthChecker loop end to end."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from marathon.app_definition import AppDefinition, parse_app
from marathon.health import (
    HealthChecker,
    HealthTracker,
    KillDecision,
    Outcome,
    ProbeResult,
    probe_check,
    probe_http,
    probe_tcp,
)
from tests.integration.cluster import free_port

LOOPBACK = "127.0.0.1"


@dataclass
class HttpServer:
    """A raw HTTP/1.1 server on loopback: the path picks the answer.

    `/ok` 200, `/moved` 302, `/fail` 500, `/processing` a lone `102 Processing`, `/silent`
    never answers, `/toggle` answers `toggle_status`.
    """

    port: int = 0
    toggle_status: str = "200 OK"
    requests: list[str] = field(default_factory=list)
    _hang: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            request_line = head.split(b"\r\n", 1)[0].decode()
            self.requests.append(head.decode())
            path = request_line.split(" ")[1]
            if path == "/silent":
                await self._hang.wait()
                return
            status = {"/ok": "200 OK", "/moved": "302 Found", "/fail": "500 Oops",
                      "/processing": "102 Processing", "/toggle": self.toggle_status,
                      }.get(path, "404 Not Found")
            body = b"" if status.startswith("1") else b"body\n"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
                         f"Connection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


async def serve(server: HttpServer, tls: ssl.SSLContext | None = None) -> asyncio.Server:
    listening = await asyncio.start_server(server.handle, LOOPBACK, 0, ssl=tls)
    server.port = listening.sockets[0].getsockname()[1]
    return listening


@pytest.fixture
async def http_server() -> AsyncIterator[HttpServer]:
    server = HttpServer()
    listening = await serve(server)
    yield server
    server._hang.set()
    listening.close()
    await listening.wait_closed()


@pytest.fixture
def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A key and a self-signed certificate for a name that is not this host."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=not-this-host", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return key, cert


@pytest.fixture
async def https_server(self_signed: tuple[Path, Path]) -> AsyncIterator[HttpServer]:
    key, cert = self_signed
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server = HttpServer()
    listening = await serve(server, tls)
    yield server
    server._hang.set()
    listening.close()
    await listening.wait_closed()


# ------------------------------------------------------------------------------ HTTP


@pytest.mark.parametrize(("path", "outcome", "cause"), [
    ("/ok", Outcome.HEALTHY, None),
    ("moved", Outcome.HEALTHY, None),  # Marathon adds the missing leading slash
    ("/fail", Outcome.UNHEALTHY, "500 Internal Server Error"),
    ("/nowhere", Outcome.UNHEALTHY, "404 Not Found"),
    ("/processing", Outcome.UNHEALTHY, "102 Processing"),
], ids=["200", "302", "500", "404", "1xx-counts"])
async def test_http_status_decides(http_server: HttpServer, path: str, outcome: Outcome,
                                   cause: str | None) -> None:
    result = await probe_http(LOOPBACK, http_server.port, path, 5)
    assert result == ProbeResult(outcome, cause)


async def test_http_sends_a_get_with_host_and_connection_close(http_server: HttpServer) -> None:
    await probe_http(LOOPBACK, http_server.port, "/ok?x=1", 5)
    (head,) = http_server.requests
    lines = head.split("\r\n")
    assert lines[0] == "GET /ok?x=1 HTTP/1.1"
    assert f"Host: {LOOPBACK}:{http_server.port}" in lines
    assert "Connection: close" in lines


async def test_http_1xx_is_ignored_when_asked(http_server: HttpServer) -> None:
    result = await probe_http(LOOPBACK, http_server.port, "/processing", 5, ignore_1xx=True)
    assert result == ProbeResult.ignored("102 Processing")


async def test_http_times_out_on_a_silent_server(http_server: HttpServer) -> None:
    started = time.monotonic()
    result = await probe_http(LOOPBACK, http_server.port, "/silent", 0.3)
    assert time.monotonic() - started < 3
    assert result == ProbeResult.unhealthy("TimeoutError: no response within 0.3 seconds")


async def test_http_to_a_closed_port_is_unhealthy_with_a_cause() -> None:
    result = await probe_http(LOOPBACK, free_port(), "/", 5)
    assert result.outcome is Outcome.UNHEALTHY
    assert result.cause is not None and result.cause.startswith("ConnectionRefusedError")


async def test_https_accepts_a_certificate_it_cannot_verify(https_server: HttpServer) -> None:
    assert await probe_http(LOOPBACK, https_server.port, "/ok", 5, https=True) == \
        ProbeResult.healthy()
    failed = await probe_http(LOOPBACK, https_server.port, "/fail", 5, https=True)
    assert failed == ProbeResult.unhealthy("500 Internal Server Error")


async def test_plain_http_against_a_tls_port_is_unhealthy(https_server: HttpServer) -> None:
    result = await probe_http(LOOPBACK, https_server.port, "/ok", 2)
    assert result.outcome is Outcome.UNHEALTHY


# ------------------------------------------------------------------------------- TCP


async def test_tcp_healthy_when_a_listener_accepts() -> None:
    listening = await asyncio.start_server(lambda _r, w: w.close(), LOOPBACK, 0)
    port = listening.sockets[0].getsockname()[1]
    try:
        assert await probe_tcp(LOOPBACK, port, 5) == ProbeResult.healthy()
    finally:
        listening.close()
        await listening.wait_closed()


async def test_tcp_closed_port_is_unhealthy() -> None:
    result = await probe_tcp(LOOPBACK, free_port(), 5)
    assert result.outcome is Outcome.UNHEALTHY
    assert result.cause is not None and "ConnectionRefusedError" in result.cause


# ----------------------------------------------------------------- checks by protocol


def app_with(*checks: dict[str, Any], ports: int = 1) -> AppDefinition:
    return parse_app({"id": "/web", "cmd": "serve", "version": "2015-09-30T09:09:17.614Z",
                      "portDefinitions": [{"port": 0} for _ in range(ports)],
                      "healthChecks": list(checks)})


@pytest.mark.parametrize("protocol", ["HTTP", "MESOS_HTTP"])
async def test_probe_check_runs_http_checks_on_the_tasks_port(
        http_server: HttpServer, protocol: str) -> None:
    (check,) = app_with({"protocol": protocol, "path": "/fail"}).health_checks
    result = await probe_check(check, address=LOOPBACK, port=http_server.port)
    assert result == ProbeResult.unhealthy("500 Internal Server Error")


@pytest.mark.parametrize("protocol", ["TCP", "MESOS_TCP"])
async def test_probe_check_runs_tcp_checks(protocol: str) -> None:
    (check,) = app_with({"protocol": protocol}).health_checks
    result = await probe_check(check, address=LOOPBACK, port=free_port())
    assert result.outcome is Outcome.UNHEALTHY


async def test_probe_check_without_a_port_is_unhealthy() -> None:
    (check,) = app_with({"protocol": "HTTP"}).health_checks
    result = await probe_check(check, address=LOOPBACK, port=None)
    assert result == ProbeResult.unhealthy(
        "Health check failed: unable to get the task's effective port")


# ----------------------------------------------------------------- HealthChecker loop


class WallClock:
    def now(self) -> float:
        return time.time()


@dataclass
class Recorder:
    events: list[dict[str, Any]] = field(default_factory=list)
    kills: list[KillDecision] = field(default_factory=list)
    health: list[tuple[str, bool]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def publish(self, item: dict[str, Any]) -> None:
        self.events.append(item)
        self.changed.set()

    def decide(self, decision: KillDecision) -> None:
        self.kills.append(decision)
        self.changed.set()

    def health_changed(self, instance_id: str, healthy: bool) -> None:
        self.health.append((instance_id, healthy))
        self.changed.set()

    async def until(self, condition: Callable[[], object]) -> None:
        async with asyncio.timeout(20):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def checker() -> AsyncIterator[tuple[HealthChecker, Recorder]]:
    recorder = Recorder()
    health_checker = HealthChecker(HealthTracker(WallClock()), recorder.decide,
                                   recorder.publish, on_health_changed=recorder.health_changed,
                                   max_concurrent_probes=4)
    runner = asyncio.create_task(health_checker.run())
    yield health_checker, recorder
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner


async def test_checker_reports_health_then_kills_an_instance_that_turns_unhealthy(
        http_server: HttpServer, checker: tuple[HealthChecker, Recorder]) -> None:
    health_checker, recorder = checker
    app = app_with({"protocol": "HTTP", "path": "/toggle", "intervalSeconds": 1,
                    "gracePeriodSeconds": 0, "maxConsecutiveFailures": 1})
    health_checker.add_instance(app, "web.instance-1", "web.instance-1._app.1", "agent-a",
                                [http_server.port], time.time() - 1, agent_id="agent-id-a",
                                address=LOOPBACK)
    await recorder.until(lambda: recorder.health == [("web.instance-1", True)])
    assert health_checker.tracker.is_healthy("web.instance-1") is True

    http_server.toggle_status = "503 Service Unavailable"
    await recorder.until(lambda: recorder.kills)
    assert recorder.kills == [KillDecision(
        app_id="/web", instance_id="web.instance-1", task_id="web.instance-1._app.1",
        agent_id="agent-id-a", host="agent-a", version=app.version or "",
        reason="503 Service Unavailable")]
    assert recorder.health == [("web.instance-1", True), ("web.instance-1", False)]
    assert [(e["eventType"], e.get("alive")) for e in recorder.events] == [
        ("health_status_changed_event", True),
        ("failed_health_check_event", None),
        ("health_status_changed_event", False),
        ("failed_health_check_event", None),
        ("unhealthy_instance_kill_event", None),
    ]
    (entry,) = health_checker.tracker.health_json("web.instance-1")
    assert (entry["alive"], entry["consecutiveFailures"], entry["lastFailureCause"]) == (
        False, 2, "503 Service Unavailable")


async def test_checker_takes_command_results_from_the_agent(
        checker: tuple[HealthChecker, Recorder]) -> None:
    """COMMAND checks run on the agent: the checker reports what its status updates say."""
    health_checker, recorder = checker
    app = app_with({"protocol": "COMMAND", "delaySeconds": 0, "command": {"value": "true"}})
    health_checker.add_instance(app, "web.instance-2", "web.instance-2._app.1", "agent-b",
                                [31555], time.time())
    assert health_checker.tracker.next_check_at() is None  # nothing for Marathon to probe
    health_checker.agent_result("web.instance-2", "web.instance-2._app.1", True)
    await recorder.until(lambda: recorder.health == [("web.instance-2", True)])


async def test_checker_stops_checking_a_removed_instance(
        http_server: HttpServer, checker: tuple[HealthChecker, Recorder]) -> None:
    health_checker, recorder = checker
    app = app_with({"protocol": "HTTP", "path": "/ok", "intervalSeconds": 1})
    health_checker.add_instance(app, "web.instance-3", "web.instance-3._app.1", LOOPBACK,
                                [http_server.port], time.time() - 1)
    await recorder.until(lambda: recorder.health)
    health_checker.remove_instance("web.instance-3")
    assert health_checker.tracker.next_check_at() is None
    assert "web.instance-3" not in health_checker.tracker
