"""Marathon's health checks: a pure tracker of results and a thin asyncio prober.

    HealthChecker (shell, one asyncio task)
        │  tracker.due() ──▶ DueCheck ──▶ probe_http / probe_tcp (bounded)
        │                                      │
        │  tracker.record(due, ProbeResult) ◀──┘
        ▼
    HealthUpdate: events ──▶ publish        (failed_health_check_event, health_status_changed_event,
                  kill   ──▶ on_decision     unhealthy_instance_kill_event)
                  healthy changed ──▶ on_health_changed

`HealthTracker` keeps, per instance and per health check, what Marathon's `Health` keeps
(first/last success, last failure and its cause, consecutive failures; alive when the last
success is later than the last failure) and applies Marathon's rules:

- a failure is ignored (not counted, no event) while the instance is not running, and during
  `gracePeriodSeconds` after it started running as long as no check has succeeded yet;
- Marathon-level checks (HTTP, HTTPS, TCP) kill an instance at a counted failure that comes
  after `maxConsecutiveFailures` counted failures, as Marathon's HealthCheckActor does (it
  compares the count from before the failure); agent-level checks (COMMAND, MESOS_*) kill at the
  `maxConsecutiveFailures`-th failure, as the Mesos health checker does; 0 never kills;
- Marathon-level checks first run `min(intervalSeconds, 5)` seconds after the instance started
  running (Marathon's first tick), agent-level ones after `delaySeconds` (Mesos' delay); then
  every `intervalSeconds`.

COMMAND checks run on the agent, as in Marathon: the app's first COMMAND check goes into its
tasks' `TaskInfo.health_check`, the agent runs it in the task's container (inside an image
task's root filesystem) and kills a task that fails it `maxConsecutiveFailures` times; its
results come back as TASK_RUNNING updates with `healthy` (`HealthTracker.agent_result`), and
Marathon keeps the check's JSON and events from them. Deviation from Marathon: MESOS_HTTP(S)
and MESOS_TCP checks run from Marathon's process, probing the task's address and port like
their Marathon-level twins.

The tracker's clock must be a wall clock (seconds since the epoch): its readings show in the
task JSON, and `started_at` is read on the same scale.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any

from marathon import events
from marathon.app_definition import AppDefinition
from marathon.app_parts import HealthCheck
from mesos_runtime.clock import Clock
from mesos_values.timestamps import format_timestamp

__all__ = [
    "FIRST_CHECK_AFTER_SECONDS",
    "MARATHON_LEVEL_PROTOCOLS",
    "MIN_INTERVAL_SECONDS",
    "DueCheck",
    "Health",
    "HealthChecker",
    "HealthTracker",
    "HealthUpdate",
    "KillDecision",
    "Outcome",
    "ProbeResult",
    "probe_check",
    "probe_http",
    "probe_tcp",
    "probe_timeout",
]

FIRST_CHECK_AFTER_SECONDS = 5.0
"""Marathon runs its first check at most this long after it starts checking an app."""

MARATHON_LEVEL_PROTOCOLS = frozenset({"HTTP", "HTTPS", "TCP"})
"""Checks Marathon itself runs; the others (COMMAND, MESOS_*) run on the agent in Marathon."""

MIN_INTERVAL_SECONDS = 1.0
"""Shorter (and zero) intervals are run at this interval."""
_CAUSE_LIMIT = 200


class Outcome(enum.Enum):
    """What one probe found."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    IGNORED = "ignored"
    """Neither (an HTTP 1xx answer with `ignoreHttp1xx`): the health stays as it was."""


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The outcome of one probe and, unless healthy, why."""

    outcome: Outcome
    cause: str | None = None

    @classmethod
    def healthy(cls) -> ProbeResult:
        return cls(Outcome.HEALTHY)

    @classmethod
    def unhealthy(cls, cause: str) -> ProbeResult:
        return cls(Outcome.UNHEALTHY, cause)

    @classmethod
    def ignored(cls, cause: str) -> ProbeResult:
        return cls(Outcome.IGNORED, cause)


@dataclass(frozen=True, slots=True)
class Health:
    """The record of one health check of one instance (Marathon's `Health`)."""

    first_success: float | None = None
    last_success: float | None = None
    last_failure: float | None = None
    last_failure_cause: str | None = None
    consecutive_failures: int = 0

    @property
    def alive(self) -> bool:
        """True when the last success is later than the last failure."""
        if self.last_success is None:
            return False
        return self.last_failure is None or self.last_success > self.last_failure

    def succeeded(self, at: float) -> Health:
        return replace(self, first_success=self.first_success if self.first_success is not None
                       else at, last_success=at, consecutive_failures=0)

    def failed(self, at: float, cause: str) -> Health:
        return replace(self, last_failure=at, last_failure_cause=cause,
                       consecutive_failures=self.consecutive_failures + 1)

    def to_json(self, instance_id: str, task_id: str) -> dict[str, Any]:
        """One entry of a task's `healthCheckResults`."""
        return {
            "alive": self.alive,
            "consecutiveFailures": self.consecutive_failures,
            "firstSuccess": _timestamp(self.first_success),
            "lastFailure": _timestamp(self.last_failure),
            "lastSuccess": _timestamp(self.last_success),
            "lastFailureCause": self.last_failure_cause,
            "instanceId": instance_id,
            "taskId": task_id,
        }


def _timestamp(seconds: float | None) -> str | None:
    return None if seconds is None else format_timestamp(seconds)


@dataclass(frozen=True, slots=True)
class DueCheck:
    """One probe to run now: which check of which instance, and where to aim it.

    `port` is None for COMMAND checks and when the check's port cannot be resolved.
    """

    instance_id: str
    task_id: str
    check_index: int
    check: HealthCheck
    address: str
    port: int | None


@dataclass(frozen=True, slots=True)
class KillDecision:
    """An instance failed its health checks too often: the caller kills (and replaces) it."""

    app_id: str
    instance_id: str
    task_id: str
    agent_id: str
    host: str
    version: str
    reason: str


@dataclass(frozen=True, slots=True)
class HealthUpdate:
    """What recording one probe result asks of the caller."""

    events: tuple[events.Event, ...] = ()
    kill: KillDecision | None = None
    healthy: bool | None = None
    """The instance's health after the result (see `HealthTracker.is_healthy`)."""
    health_changed: bool = False
    """`healthy` differs from what it was before the result."""


@dataclass(slots=True)
class _Instance:
    app: AppDefinition
    instance_id: str
    task_id: str
    host: str
    address: str
    ports: tuple[int, ...]
    agent_id: str
    started_at: float | None
    health: list[Health]
    next_due: list[float | None]
    in_flight: list[bool]
    killed: bool = False

    def healthy(self) -> bool | None:
        if not self.app.health_checks:
            return None
        return all(h.alive for h in self.health)


def _interval(check: HealthCheck) -> float:
    return max(float(check.interval_seconds), MIN_INTERVAL_SECONDS)


def _first_check_at(check: HealthCheck, started_at: float) -> float | None:
    if check.runs_on_agent:
        return None  # the agent's results arrive as status updates
    if check.protocol in MARATHON_LEVEL_PROTOCOLS:
        return started_at + min(_interval(check), FIRST_CHECK_AFTER_SECONDS)
    return started_at + check.delay_seconds


def _resolve_port(check: HealthCheck, ports: Sequence[int]) -> int | None:
    if check.protocol == "COMMAND":
        return None
    if check.port is not None:
        return check.port
    index = 0 if check.port_index is None else check.port_index
    return ports[index] if index < len(ports) else None


def probe_timeout(check: HealthCheck) -> float:
    """How long one probe of `check` may take: `timeoutSeconds`, or the interval when 0."""
    return float(check.timeout_seconds) if check.timeout_seconds > 0 else _interval(check)


class HealthTracker:
    """Health of every checked instance, with Marathon's rules (see the module docstring)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._instances: dict[str, _Instance] = {}

    # ----------------------------------------------------------- instances

    def add_instance(
        self, app: AppDefinition, instance_id: str, task_id: str, *, host: str,
        ports: Sequence[int], started_at: float | None, agent_id: str = "",
        address: str | None = None,
    ) -> None:
        """Track an instance of `app` (the app version it runs).

        `started_at` is when it started running (None while staging: nothing is checked and
        failures are ignored). `host` is the agent's hostname as events show it, `address`
        where probes connect (default: `host`). Adding a known instance again updates it and
        keeps its health while its task stays the same.
        """
        checks = app.health_checks
        address = address if address is not None else host
        known = self._instances.get(instance_id)
        if known is not None and known.task_id == task_id and known.app == app:
            known.host, known.address, known.ports = host, address, tuple(ports)
            known.agent_id = agent_id
            if known.started_at is None and started_at is not None:
                known.started_at = started_at
                known.next_due = [_first_check_at(c, started_at) for c in checks]
            return
        self._instances[instance_id] = _Instance(
            app=app, instance_id=instance_id, task_id=task_id, host=host, address=address,
            ports=tuple(ports), agent_id=agent_id, started_at=started_at,
            health=[Health() for _ in checks],
            next_due=[None if started_at is None else _first_check_at(c, started_at)
                      for c in checks],
            in_flight=[False for _ in checks],
        )

    def remove_instance(self, instance_id: str) -> None:
        """Forget an instance (it terminated); results still in flight are dropped."""
        self._instances.pop(instance_id, None)

    def __contains__(self, instance_id: object) -> bool:
        return instance_id in self._instances

    # ---------------------------------------------------------- scheduling

    def due(self) -> list[DueCheck]:
        """The checks to run now; each is taken (not due again) until its result is recorded."""
        now = self.clock.now()
        taken: list[DueCheck] = []
        for instance in self._instances.values():
            if instance.killed:
                continue
            for index, check in enumerate(instance.app.health_checks):
                next_due = instance.next_due[index]
                if next_due is None or instance.in_flight[index] or next_due > now:
                    continue
                following = next_due + _interval(check)
                instance.next_due[index] = following if following > now else now + _interval(
                    check)
                instance.in_flight[index] = True
                taken.append(DueCheck(
                    instance.instance_id, instance.task_id, index, check, instance.address,
                    _resolve_port(check, instance.ports)))
        return taken

    def next_check_at(self) -> float | None:
        """When the next check falls due (clock reading), or None when nothing is scheduled."""
        times = [
            next_due
            for instance in self._instances.values() if not instance.killed
            for next_due, busy in zip(instance.next_due, instance.in_flight, strict=True)
            if next_due is not None and not busy
        ]
        return min(times, default=None)

    # ------------------------------------------------------------- results

    def agent_result(self, instance_id: str, task_id: str, healthy: bool) -> HealthUpdate:
        """Apply what the agent's check of the instance's task said (its first COMMAND
        check). The agent kills a task that fails it too often: no kill is decided here."""
        instance = self._instances.get(instance_id)
        if instance is None or instance.task_id != task_id:
            return HealthUpdate()
        for index, check in enumerate(instance.app.health_checks):
            if check.runs_on_agent:
                due = DueCheck(instance_id, task_id, index, check, instance.address, None)
                result = (ProbeResult.healthy() if healthy
                          else ProbeResult.unhealthy("the agent's health check failed"))
                return self.record(due, result, may_kill=False)
        return HealthUpdate()

    def record(self, due: DueCheck, result: ProbeResult, *, may_kill: bool = True
               ) -> HealthUpdate:
        """Apply the result of probing `due`, at the clock's current time (`may_kill`: a
        kill may be decided)."""
        instance = self._instances.get(due.instance_id)
        index = due.check_index
        if (instance is None or instance.task_id != due.task_id
                or instance.app.health_checks[index:index + 1] != (due.check,)):
            return HealthUpdate()
        instance.in_flight[index] = False
        healthy_before = instance.healthy()
        if result.outcome is Outcome.IGNORED:
            return HealthUpdate(healthy=healthy_before)
        now = self.clock.now()
        check = instance.app.health_checks[index]
        before = instance.health[index]
        published: list[events.Event] = []
        kill: KillDecision | None = None
        if result.outcome is Outcome.HEALTHY:
            after = before.succeeded(now)
        elif self._ignores_failure(instance, check, before, now):
            after = before
        else:
            cause = result.cause or "unknown"
            after = before.failed(now, cause)
            published.append(events.failed_health_check_event(
                app_id=str(instance.app.id), task_id=instance.task_id,
                instance_id=instance.instance_id, health_check=check.to_json()))
            if may_kill and not instance.killed and _kill_due(check, before, after):
                instance.killed = True
                kill = KillDecision(
                    app_id=str(instance.app.id), instance_id=instance.instance_id,
                    task_id=instance.task_id, agent_id=instance.agent_id, host=instance.host,
                    version=instance.app.version or "", reason=cause)
                published.append(events.unhealthy_instance_kill_event(
                    app_id=kill.app_id, task_id=kill.task_id, instance_id=kill.instance_id,
                    version=kill.version, reason=kill.reason, host=kill.host,
                    agent_id=kill.agent_id))
        instance.health[index] = after
        if before.alive != after.alive:
            published.append(events.health_status_changed_event(
                app_id=str(instance.app.id), instance_id=instance.instance_id,
                task_id=instance.task_id, version=instance.app.version or "",
                alive=after.alive))
        healthy_after = instance.healthy()
        return HealthUpdate(tuple(published), kill, healthy_after,
                            healthy_after != healthy_before)

    @staticmethod
    def _ignores_failure(instance: _Instance, check: HealthCheck, health: Health,
                         now: float) -> bool:
        if instance.started_at is None:
            return True
        in_grace = instance.started_at + check.grace_period_seconds > now
        return health.first_success is None and in_grace

    # ------------------------------------------------------------- queries

    def is_healthy(self, instance_id: str) -> bool | None:
        """True when every health check of the instance is alive; None when its app has no
        health checks (or the instance is unknown)."""
        instance = self._instances.get(instance_id)
        return None if instance is None else instance.healthy()

    def health(self, instance_id: str) -> tuple[Health, ...]:
        """The instance's health per check, in the app's `healthChecks` order."""
        instance = self._instances.get(instance_id)
        return () if instance is None else tuple(instance.health)

    def health_json(self, instance_id: str) -> list[dict[str, Any]]:
        """The task's `healthCheckResults` (one entry per health check; empty if unknown)."""
        instance = self._instances.get(instance_id)
        if instance is None:
            return []
        return [h.to_json(instance.instance_id, instance.task_id) for h in instance.health]


def _kill_due(check: HealthCheck, before: Health, after: Health) -> bool:
    limit = check.max_consecutive_failures
    if limit <= 0:
        return False
    if check.protocol in MARATHON_LEVEL_PROTOCOLS:
        return before.consecutive_failures >= limit
    return after.consecutive_failures >= limit


# ------------------------------------------------------------------------------ probes


def _describe(error: BaseException) -> str:
    text = str(error) or error.__class__.__name__
    return _short(f"{error.__class__.__name__}: {text}")


def _short(text: str) -> str:
    return text if len(text) <= _CAUSE_LIMIT else text[: _CAUSE_LIMIT - 3] + "..."


@functools.cache
def _insecure_tls() -> ssl.SSLContext:
    """TLS that accepts any certificate and host name, as Marathon's HTTPS checks do."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def _http_status(line: bytes) -> tuple[int, str] | None:
    parts = line.decode("latin-1").strip().split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not (
            parts[1].isascii() and parts[1].isdigit() and len(parts[1]) <= 3):
        return None
    code = int(parts[1])
    try:
        reason = HTTPStatus(code).phrase
    except ValueError:
        reason = parts[2] if len(parts) > 2 else ""
    return code, f"{code} {reason}".strip()


async def probe_http(host: str, port: int, path: str, timeout_seconds: float, *,
                     https: bool = False, ignore_1xx: bool = False) -> ProbeResult:
    """GET `path`; healthy for a status in 200-399 within `timeout_seconds`.

    The first status line decides (a 1xx answer is unhealthy, or ignored with `ignore_1xx`).
    HTTPS does not verify the certificate, as Marathon does not. Never raises.
    """
    target = path if path.startswith("/") else f"/{path}"
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    request = (f"GET {target} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: marathon-health\r\n"
               "Accept: */*\r\nConnection: close\r\n\r\n").encode("latin-1")
    status_line: bytes | None = None
    try:
        async with asyncio.timeout(timeout_seconds):
            reader, writer = await asyncio.open_connection(
                host, port, ssl=_insecure_tls() if https else None)
            try:
                writer.write(request)
                await writer.drain()
                status_line = await reader.readline()
                while await reader.read(65536):
                    pass
            finally:
                writer.close()
    except TimeoutError:
        if status_line is None:
            return ProbeResult.unhealthy(
                f"TimeoutError: no response within {timeout_seconds:g} seconds")
    except Exception as error:  # never raise: every failure is a cause
        if status_line is None:
            return ProbeResult.unhealthy(_describe(error))
    if not status_line:
        return ProbeResult.unhealthy("The connection was closed before a response arrived")
    status = _http_status(status_line)
    if status is None:
        return ProbeResult.unhealthy(_short(f"Invalid HTTP status line: {status_line!r}"))
    code, text = status
    if 200 <= code < 400:
        return ProbeResult.healthy()
    if 100 <= code < 200 and ignore_1xx:
        return ProbeResult.ignored(text)
    return ProbeResult.unhealthy(text)


async def probe_tcp(host: str, port: int, timeout_seconds: float) -> ProbeResult:
    """Healthy when a TCP connection opens within `timeout_seconds`. Never raises."""
    try:
        async with asyncio.timeout(timeout_seconds):
            _, writer = await asyncio.open_connection(host, port)
            writer.close()
    except TimeoutError:
        return ProbeResult.unhealthy(
            f"TimeoutError: no connection within {timeout_seconds:g} seconds")
    except Exception as error:  # never raise: every failure is a cause
        return ProbeResult.unhealthy(_describe(error))
    return ProbeResult.healthy()


async def probe_check(check: HealthCheck, *, address: str, port: int | None) -> ProbeResult:
    """Run one probe of `check` (HTTP, HTTPS, TCP or MESOS_*) against a task at
    `address:port`."""
    timeout = probe_timeout(check)
    if port is None:
        return ProbeResult.unhealthy("Health check failed: unable to get the task's effective "
                                     "port")
    if check.protocol in ("TCP", "MESOS_TCP"):
        return await probe_tcp(address, port, timeout)
    return await probe_http(address, port, check.path or "/", timeout,
                            https=check.protocol in ("HTTPS", "MESOS_HTTPS"),
                            ignore_1xx=check.ignore_http1xx)


# ------------------------------------------------------------------------------ shell


class HealthChecker:
    """Runs due checks of a `HealthTracker` (at most `max_concurrent_probes` at once) and
    reports what they decide.

    `on_decision` receives each `KillDecision`, `publish` every event, and `on_health_changed`
    (optional) `(instance_id, healthy)` whenever `tracker.is_healthy(instance_id)` changes
    because of a result. All callbacks run in the loop that runs `run()`; an exception from
    one ends `run()`.
    """

    def __init__(
        self, tracker: HealthTracker, on_decision: Callable[[KillDecision], None],
        publish: Callable[[events.Event], None], *,
        on_health_changed: Callable[[str, bool], None] | None = None,
        max_concurrent_probes: int = 32,
    ) -> None:
        self.tracker = tracker
        self._on_decision = on_decision
        self._publish = publish
        self._on_health_changed = on_health_changed
        self._max_concurrent = max_concurrent_probes
        self._wakeup = asyncio.Event()

    def add_instance(
        self, app: AppDefinition, instance_id: str, task_id: str, host: str,
        ports: Sequence[int], started_at: float | None, *, agent_id: str = "",
        address: str | None = None,
    ) -> None:
        """Check an instance (see `HealthTracker.add_instance`)."""
        self.tracker.add_instance(app, instance_id, task_id, host=host, ports=ports,
                                  started_at=started_at, agent_id=agent_id, address=address)
        self._wakeup.set()

    def remove_instance(self, instance_id: str) -> None:
        """Stop checking an instance."""
        self.tracker.remove_instance(instance_id)

    def agent_result(self, instance_id: str, task_id: str, healthy: bool) -> None:
        """What the agent's check of the instance said (`HealthTracker.agent_result`)."""
        self._report(instance_id, self.tracker.agent_result(instance_id, task_id, healthy))

    async def run(self) -> None:
        """Check instances until cancelled."""
        slots = asyncio.Semaphore(self._max_concurrent)
        async with asyncio.TaskGroup() as probes:
            while True:
                for due in self.tracker.due():
                    await slots.acquire()
                    probes.create_task(self._probe(due, slots))
                await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        wakeup = self._wakeup
        next_at = self.tracker.next_check_at()
        delay = None if next_at is None else max(0.0, next_at - self.tracker.clock.now())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await wakeup.wait()
        wakeup.clear()

    async def _probe(self, due: DueCheck, slots: asyncio.Semaphore) -> None:
        try:
            result = await probe_check(due.check, address=due.address, port=due.port)
        finally:
            slots.release()
        self._report(due.instance_id, self.tracker.record(due, result))
        self._wakeup.set()

    def _report(self, instance_id: str, update: HealthUpdate) -> None:
        for item in update.events:
            self._publish(item)
        if update.kill is not None:
            self._on_decision(update.kill)
        if update.health_changed and self._on_health_changed is not None:
            self._on_health_changed(instance_id, bool(update.healthy))
