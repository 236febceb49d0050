"""Readiness checks: a deployment counts a new instance only once its app says it is ready.

    instance running ──add()──▶ ReadinessTracker (pure: what is due, results, ready or not)
                                      │ due()                ▲ record()
                                      ▼                      │
                      ReadinessChecker.run(): probe_readiness(HTTP/HTTPS GET) ──▶ on_ready(id)

An instance of an app with readiness checks is ready once every check has answered with one of
its `httpStatusCodesForReady`; it is then no longer checked (as in Marathon). The checks'
latest results show in `/v2/deployments` (`currentActions[].readinessCheckResults`), with the
last response when `preserveLastResponse` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import httpx

from marathon.app_definition import AppDefinition
from marathon.app_parts import ReadinessCheck
from marathon.deployments import ReadinessCheckResult
from marathon.paths import PathId
from mesos_runtime.clock import Clock

FIRST_CHECK_AFTER_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class DueReadiness:
    """One readiness check to run now against `address:port`."""

    instance_id: str
    check: ReadinessCheck
    address: str
    port: int | None


@dataclass(frozen=True, slots=True)
class Response:
    """What a readiness probe got back (`status` None: no answer, see `cause`)."""

    status: int | None
    content_type: str = ""
    body: str = ""
    cause: str = ""


@dataclass(slots=True)
class _Watched:
    app_id: PathId
    task_id: str
    address: str
    ports: Mapping[str, int]
    checks: tuple[ReadinessCheck, ...]
    next_at: float
    results: dict[str, ReadinessCheckResult] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)

    @property
    def ready(self) -> bool:
        return all(
            (result := self.results.get(check.name)) is not None and result.ready
            for check in self.checks
        )


class ReadinessTracker:
    """Instances being checked for readiness and their latest results (pure; wall clock)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._watched: dict[str, _Watched] = {}

    def add(self, app: AppDefinition, instance_id: str, task_id: str, *, address: str,
            host_ports: Sequence[int]) -> bool:
        """Start checking a running instance; False when its app has no readiness checks."""
        if not app.readiness_checks:
            return False
        ports = {
            definition.name: port
            for definition, port in zip(app.port_definitions, host_ports, strict=False)
            if definition.name
        }
        self._watched[instance_id] = _Watched(
            app.id, task_id, address, ports, app.readiness_checks,
            self.clock.now() + FIRST_CHECK_AFTER_SECONDS,
        )
        return True

    def remove(self, instance_id: str) -> None:
        self._watched.pop(instance_id, None)

    def due(self) -> list[DueReadiness]:
        """Checks to run now (each check of an instance at most once at a time)."""
        now = self.clock.now()
        due = []
        for instance_id, watched in self._watched.items():
            if watched.next_at > now or watched.ready:
                continue
            interval = min(check.interval_seconds for check in watched.checks)
            watched.next_at = now + max(1.0, float(interval))
            for check in watched.checks:
                if check.name in watched.in_flight:
                    continue
                watched.in_flight.add(check.name)
                due.append(DueReadiness(instance_id, check, watched.address,
                                        watched.ports.get(check.port_name)))
        return due

    def next_check_at(self) -> float | None:
        pending = [w.next_at for w in self._watched.values() if not w.ready]
        return min(pending) if pending else None

    def record(self, due: DueReadiness, response: Response) -> bool:
        """Note a probe's answer; True when the instance has just become ready."""
        watched = self._watched.get(due.instance_id)
        if watched is None:
            return False
        watched.in_flight.discard(due.check.name)
        was_ready = watched.ready
        ready = response.status in due.check.http_status_codes_for_ready
        keep = due.check.preserve_last_response
        watched.results[due.check.name] = ReadinessCheckResult(
            due.check.name, watched.task_id, ready,
            response.status if keep else None,
            response.content_type if keep else None,
            response.body if keep else None,
        )
        return watched.ready and not was_ready

    def results(self) -> dict[PathId, list[ReadinessCheckResult]]:
        """The latest results per app, for `/v2/deployments`."""
        by_app: dict[PathId, list[ReadinessCheckResult]] = {}
        for watched in self._watched.values():
            by_app.setdefault(watched.app_id, []).extend(watched.results.values())
        return by_app


async def probe_readiness(check: ReadinessCheck, address: str, port: int | None,
                          client: httpx.AsyncClient) -> Response:
    """GET the check's path; never raises (a failure is a Response without a status)."""
    if port is None:
        return Response(None, cause=f"the app has no port named {check.port_name!r}")
    scheme = "https" if check.protocol == "HTTPS" else "http"
    path = check.path if check.path.startswith("/") else f"/{check.path}"
    try:
        answer = await client.get(f"{scheme}://{address}:{port}{path}",
                                  timeout=float(check.timeout_seconds))
    except httpx.HTTPError as exc:
        return Response(None, cause=f"{type(exc).__name__}: {exc}")
    return Response(answer.status_code, answer.headers.get("content-type", ""), answer.text)


class ReadinessChecker:
    """Runs due readiness checks and reports instances that become ready."""

    def __init__(self, tracker: ReadinessTracker, on_ready: Callable[[str], None]) -> None:
        self.tracker = tracker
        self._on_ready = on_ready
        self._wakeup = asyncio.Event()

    def add(self, app: AppDefinition, instance_id: str, task_id: str, *, address: str,
            host_ports: Sequence[int]) -> bool:
        added = self.tracker.add(app, instance_id, task_id, address=address,
                                 host_ports=host_ports)
        self._wakeup.set()
        return added

    def remove(self, instance_id: str) -> None:
        self.tracker.remove(instance_id)

    async def run(self) -> None:
        """Check until cancelled."""
        async with httpx.AsyncClient(verify=False) as client, asyncio.TaskGroup() as probes:
            while True:
                for due in self.tracker.due():
                    probes.create_task(self._probe(due, client))
                wake_at = self.tracker.next_check_at()
                delay = 1.0 if wake_at is None else max(0.05, wake_at - self.tracker.clock.now())
                self._wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._wakeup.wait()

    async def _probe(self, due: DueReadiness, client: httpx.AsyncClient) -> None:
        response = await probe_readiness(due.check, due.address, due.port, client)
        if self.tracker.record(due, response):
            self._on_ready(due.instance_id)
