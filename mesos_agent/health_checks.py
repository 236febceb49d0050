"""Health checks the built-in command executor runs for a task (Mesos' `HealthCheck`).

    HealthPolicy (the TaskInfo's check, Mesos' defaults) + HealthJudge (pure: results ->
    what to report) <-- run_health_checks (the loop: delay, interval, timeout) <-- a probe

A COMMAND check runs in the task's container (`Containerizer.run_check`: inside an image
container's root filesystem and namespaces); HTTP and TCP checks reach the task's port on the
agent's loopback address (tasks share the host's network). Mesos' rules: the first check runs
`delay_seconds` after the task started, then every `interval_seconds`; a check that outlasts
`timeout_seconds` failed; failures during `grace_period_seconds` are ignored until a check has
succeeded; the framework hears of every change of health (a TASK_RUNNING update with
`healthy`), and after `consecutive_failures` failures in a row the task is killed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from protos import mesos_pb2

__all__ = ["HealthDecision", "HealthJudge", "HealthPolicy", "probe_http", "probe_tcp",
           "run_health_checks"]

_HealthCheck = mesos_pb2.HealthCheck
_HEALTHY_STATUSES = range(200, 400)


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """A task's health check with Mesos' defaults applied."""

    delay: float = 15.0
    interval: float = 10.0
    timeout: float = 20.0
    consecutive_failures: int = 3
    grace_period: float = 10.0

    @classmethod
    def of(cls, check: mesos_pb2.HealthCheck) -> HealthPolicy:
        defaults = cls()
        return cls(
            delay=check.delay_seconds if check.HasField("delay_seconds") else defaults.delay,
            interval=(check.interval_seconds if check.HasField("interval_seconds")
                      else defaults.interval),
            timeout=(check.timeout_seconds if check.HasField("timeout_seconds")
                     else defaults.timeout),
            consecutive_failures=(check.consecutive_failures
                                  if check.HasField("consecutive_failures")
                                  else defaults.consecutive_failures),
            grace_period=(check.grace_period_seconds if check.HasField("grace_period_seconds")
                          else defaults.grace_period),
        )


@dataclass(frozen=True, slots=True)
class HealthDecision:
    """What one result means: a health to report (None: no change) and whether to kill."""

    report: bool | None
    kill: bool = False


class HealthJudge:
    """Mesos' health rules over a task's check results (pure; times in seconds)."""

    def __init__(self, policy: HealthPolicy, started_at: float) -> None:
        self._policy = policy
        self._started_at = started_at
        self._healthy: bool | None = None
        self._ever_healthy = False
        self._failures = 0

    def result(self, healthy: bool, at: float) -> HealthDecision:
        if healthy:
            self._failures = 0
            self._ever_healthy = True
            return HealthDecision(self._changed(True))
        if not self._ever_healthy and at - self._started_at < self._policy.grace_period:
            return HealthDecision(None)  # still starting: not counted
        self._failures += 1
        kill = 0 < self._policy.consecutive_failures <= self._failures
        return HealthDecision(self._changed(False), kill)

    def _changed(self, healthy: bool) -> bool | None:
        if self._healthy == healthy:
            return None
        self._healthy = healthy
        return healthy


async def run_health_checks(
    policy: HealthPolicy,
    probe: Callable[[], Awaitable[bool]],
    on_decision: Callable[[HealthDecision], None],
    *,
    started_at: float,
) -> None:
    """Probe on the policy's schedule (a probe that outlasts the timeout is cancelled: a
    failure) and hand each decision on, until a kill is decided (or cancelled)."""
    judge = HealthJudge(policy, started_at)
    await asyncio.sleep(max(0.0, policy.delay - (time.monotonic() - started_at)))
    while True:
        try:
            async with asyncio.timeout(policy.timeout):
                healthy = await probe()
        except TimeoutError:
            healthy = False
        decision = judge.result(healthy, time.monotonic())
        if decision.report is not None or decision.kill:
            on_decision(decision)
        if decision.kill:
            return
        await asyncio.sleep(policy.interval)


async def probe_http(info: mesos_pb2.HealthCheck.HTTPCheckInfo) -> bool:
    """GET the task's port on loopback: healthy for `statuses` (default 200-399). Its
    certificate is not checked (as Mesos does not)."""
    scheme = info.scheme or "http"
    url = f"{scheme}://127.0.0.1:{info.port}{info.path or '/'}"
    try:
        async with httpx.AsyncClient(timeout=None, verify=False) as client:
            status = (await client.get(url)).status_code
    except httpx.HTTPError:
        return False
    return status in (info.statuses or _HEALTHY_STATUSES)


async def probe_tcp(port: int) -> bool:
    """Connect to the task's port on loopback."""
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    return True
