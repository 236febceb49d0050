"""Health tracker: scheduling, grace period, consecutive failures, kills, events and JSON."""

from __future__ import annotations

from typing import Any

import pytest

from marathon.app_definition import AppDefinition, parse_app
from marathon.health import (
    DueCheck,
    HealthTracker,
    HealthUpdate,
    KillDecision,
    ProbeResult,
    probe_timeout,
)
from mesos_runtime.clock import FakeClock

START = 1456677701.090  # 2016-02-28T16:41:41.090Z
VERSION = "2015-09-30T09:09:17.614Z"


def app(*checks: dict[str, Any], ports: int = 1) -> AppDefinition:
    return parse_app({"id": "/web", "cmd": "serve", "version": VERSION,
                      "portDefinitions": [{"port": 0} for _ in range(ports)],
                      "healthChecks": list(checks)})


def check(protocol: str = "HTTP", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"protocol": protocol, "gracePeriodSeconds": 0,
                            "intervalSeconds": 10, "maxConsecutiveFailures": 3, **fields}
    if protocol == "COMMAND":
        body.setdefault("command", {"value": "true"})
    return body


def tracker_with(definition: AppDefinition, *, started_at: float | None = START,
                 clock: FakeClock | None = None, instance: str = "web.instance-1",
                 task: str = "web.instance-1._app.1") -> tuple[HealthTracker, FakeClock]:
    clock = clock or FakeClock(START)
    tracker = HealthTracker(clock)
    tracker.add_instance(definition, instance, task, host="agent-a", ports=[31000, 31001],
                         started_at=started_at, agent_id="agent-id-a", address="127.0.0.1")
    return tracker, clock


def take_one(tracker: HealthTracker, clock: FakeClock) -> DueCheck:
    """Advance the clock to the next due check and take it."""
    next_at = tracker.next_check_at()
    assert next_at is not None
    clock.advance(max(0.0, next_at - clock.now()))
    (due,) = tracker.due()
    return due


def probe(tracker: HealthTracker, clock: FakeClock, result: ProbeResult) -> HealthUpdate:
    return tracker.record(take_one(tracker, clock), result)


def event_types(update: HealthUpdate) -> list[str]:
    return [e["eventType"] for e in update.events]


FAIL = ProbeResult.unhealthy("500 Internal Server Error")
OK = ProbeResult.healthy()


# ------------------------------------------------------------------------- scheduling


@pytest.mark.parametrize(("fields", "first_after"), [
    (check("HTTP", intervalSeconds=10), 5.0),       # Marathon's first tick: min(interval, 5 s)
    (check("HTTPS", intervalSeconds=2), 2.0),
    (check("TCP", intervalSeconds=30, delaySeconds=0), 5.0),  # delaySeconds is Mesos-only
    (check("MESOS_HTTP", delaySeconds=3), 3.0),     # Mesos waits delaySeconds
    (check("MESOS_TCP", delaySeconds=0), 0.0),
], ids=["http", "https-short-interval", "tcp-ignores-delay", "mesos-http",
        "mesos-tcp-no-delay"])
def test_first_check_falls_due_after_the_protocols_initial_delay(
        fields: dict[str, Any], first_after: float) -> None:
    tracker, clock = tracker_with(app(fields))
    assert tracker.next_check_at() == START + first_after
    if first_after > 0:
        clock.advance(first_after - 0.001)
        assert tracker.due() == []
        clock.advance(0.001)
    (due,) = tracker.due()
    assert due.check_index == 0
    assert due.check.protocol == fields["protocol"]


def test_a_taken_check_is_not_due_again_until_its_result_is_recorded() -> None:
    tracker, clock = tracker_with(app(check(intervalSeconds=10, timeoutSeconds=30)))
    due = take_one(tracker, clock)
    assert tracker.next_check_at() is None  # the only check is in flight
    clock.advance(25)  # a slow probe: two intervals pass
    assert tracker.due() == []
    tracker.record(due, OK)
    assert tracker.next_check_at() == START + 15  # overdue: runs at once
    (again,) = tracker.due()
    tracker.record(again, OK)
    assert tracker.next_check_at() == clock.now() + 10


def test_checks_repeat_every_interval_at_a_fixed_rate() -> None:
    tracker, clock = tracker_with(app(check(intervalSeconds=10)))
    due_times = []
    for _ in range(3):
        due = take_one(tracker, clock)
        due_times.append(clock.now())
        clock.advance(1)  # the probe takes a second
        tracker.record(due, OK)
    assert [t - START for t in due_times] == [5, 15, 25]


def test_next_check_is_the_earliest_over_instances_and_checks() -> None:
    definition = app(check("HTTP", intervalSeconds=4), check("MESOS_TCP", delaySeconds=1))
    tracker, _ = tracker_with(definition)
    tracker.add_instance(definition, "web.instance-2", "web.instance-2._app.1", host="b",
                         ports=[31005, 31006], started_at=START - 3)
    assert tracker.next_check_at() == START - 2  # instance 2's MESOS_TCP check


def test_command_checks_run_on_the_agent_and_their_results_come_from_it() -> None:
    definition = app(check("COMMAND", maxConsecutiveFailures=1, delaySeconds=0,
                           gracePeriodSeconds=0))
    tracker, clock = tracker_with(definition)
    clock.advance(100)
    assert tracker.due() == [] and tracker.next_check_at() is None  # Marathon never probes
    healthy = tracker.agent_result("web.instance-1", "web.instance-1._app.1", True)
    assert healthy.health_changed and healthy.healthy is True
    unhealthy = tracker.agent_result("web.instance-1", "web.instance-1._app.1", False)
    assert unhealthy.healthy is False and unhealthy.kill is None  # the agent kills it
    assert event_types(unhealthy) == ["failed_health_check_event",
                                      "health_status_changed_event"]
    assert tracker.agent_result("web.instance-1", "an-older-task", True) == HealthUpdate()


def test_a_staging_instance_is_not_checked_until_it_runs_and_keeps_its_record() -> None:
    definition = app(check(intervalSeconds=2))
    tracker, clock = tracker_with(definition, started_at=None)
    assert tracker.next_check_at() is None
    clock.advance(100)
    assert tracker.due() == []
    running_at = clock.now()
    tracker.add_instance(definition, "web.instance-1", "web.instance-1._app.1",
                         host="agent-a", ports=[31000, 31001], started_at=running_at)
    assert tracker.next_check_at() == running_at + 2
    tracker.record(take_one(tracker, clock), OK)
    tracker.add_instance(definition, "web.instance-1", "web.instance-1._app.1",
                         host="agent-a", ports=[31000, 31001], started_at=running_at)
    assert tracker.is_healthy("web.instance-1") is True


@pytest.mark.parametrize(("fields", "expected_port"), [
    (check("HTTP"), 31000),                  # portIndex defaults to 0
    (check("TCP", portIndex=1), 31001),
    (check("HTTP", port=8080), 8080),
    (check("MESOS_TCP", portIndex=1), 31001),
], ids=["default-index", "index-1", "fixed-port", "mesos-index"])
def test_due_checks_aim_at_the_tasks_address_and_port(
        fields: dict[str, Any], expected_port: int | None) -> None:
    tracker, clock = tracker_with(app(fields, ports=2))
    due = take_one(tracker, clock)
    assert (due.address, due.port) == ("127.0.0.1", expected_port)


def test_a_port_index_beyond_the_tasks_ports_resolves_to_no_port() -> None:
    definition = app(check("HTTP", portIndex=1), ports=2)
    tracker, clock = tracker_with(definition)
    tracker.add_instance(definition, "web.instance-9", "t9", host="h", ports=[31000],
                         started_at=START)
    clock.advance(5)
    ports = {d.instance_id: d.port for d in tracker.due()}
    assert ports == {"web.instance-1": 31001, "web.instance-9": None}


@pytest.mark.parametrize(("fields", "timeout"), [
    (check(timeoutSeconds=20), 20.0),
    (check(timeoutSeconds=0, intervalSeconds=7), 7.0),
    (check(timeoutSeconds=0, intervalSeconds=0), 1.0),
], ids=["configured", "zero-means-interval", "never-zero"])
def test_probe_timeout(fields: dict[str, Any], timeout: float) -> None:
    assert probe_timeout(app(fields).health_checks[0]) == timeout


# ------------------------------------------------------------------------- grace period


def test_failures_in_the_grace_period_are_ignored_before_any_success() -> None:
    tracker, clock = tracker_with(app(check(gracePeriodSeconds=60, intervalSeconds=10)))
    for _ in range(5):  # at 5, 15, ..., 45 s: all inside the grace period
        update = probe(tracker, clock, FAIL)
        assert update.events == () and update.kill is None
    (health,) = tracker.health("web.instance-1")
    assert health.consecutive_failures == 0 and health.last_failure is None
    clock.advance(60 + START - clock.now())  # the grace period is over
    update = probe(tracker, clock, FAIL)
    assert event_types(update) == ["failed_health_check_event"]
    assert tracker.health("web.instance-1")[0].consecutive_failures == 1


def test_after_a_first_success_failures_count_even_in_the_grace_period() -> None:
    tracker, clock = tracker_with(app(check(gracePeriodSeconds=300, intervalSeconds=10)))
    probe(tracker, clock, OK)
    update = probe(tracker, clock, FAIL)
    assert event_types(update) == ["failed_health_check_event", "health_status_changed_event"]
    assert tracker.health("web.instance-1")[0].consecutive_failures == 1


def test_a_staging_instance_ignores_failures() -> None:
    tracker, _ = tracker_with(app(check()), started_at=None)
    stray = DueCheck("web.instance-1", "web.instance-1._app.1", 0,
                     app(check()).health_checks[0], "127.0.0.1", 31000)
    assert tracker.record(stray, FAIL).events == ()
    assert tracker.health("web.instance-1")[0].consecutive_failures == 0


# ---------------------------------------------------------------------- failures & kills


def test_marathon_level_check_kills_on_the_failure_after_max_consecutive_failures() -> None:
    # HealthCheckActor compares the count from *before* the failure with the maximum.
    tracker, clock = tracker_with(app(check("HTTP", maxConsecutiveFailures=3)))
    for count in (1, 2, 3):
        update = probe(tracker, clock, ProbeResult.unhealthy(f"cause {count}"))
        assert update.kill is None
        assert tracker.health("web.instance-1")[0].consecutive_failures == count
    update = probe(tracker, clock, ProbeResult.unhealthy("cause 4"))
    assert update.kill == KillDecision(
        app_id="/web", instance_id="web.instance-1", task_id="web.instance-1._app.1",
        agent_id="agent-id-a", host="agent-a", version=VERSION, reason="cause 4")
    assert event_types(update) == ["failed_health_check_event", "unhealthy_instance_kill_event"]
    kill_event = update.events[1]
    assert {k: kill_event[k] for k in ("appId", "taskId", "instanceId", "version", "reason",
                                       "host", "slaveId")} == {
        "appId": "/web", "taskId": "web.instance-1._app.1", "instanceId": "web.instance-1",
        "version": VERSION, "reason": "cause 4", "host": "agent-a", "slaveId": "agent-id-a"}


@pytest.mark.parametrize("protocol", ["MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP"])
def test_agent_level_check_kills_at_max_consecutive_failures(protocol: str) -> None:
    # The Mesos health checker kills once the count reaches consecutive_failures.
    tracker, clock = tracker_with(app(check(protocol, maxConsecutiveFailures=2,
                                            delaySeconds=0)))
    assert probe(tracker, clock, FAIL).kill is None
    update = probe(tracker, clock, FAIL)
    assert update.kill is not None and update.kill.reason == FAIL.cause


def test_zero_max_consecutive_failures_never_kills() -> None:
    tracker, clock = tracker_with(app(check(maxConsecutiveFailures=0)))
    updates = [probe(tracker, clock, FAIL) for _ in range(10)]
    assert all(u.kill is None for u in updates)
    assert tracker.health("web.instance-1")[0].consecutive_failures == 10


def test_a_success_resets_consecutive_failures() -> None:
    tracker, clock = tracker_with(app(check(maxConsecutiveFailures=2)))
    for result in (FAIL, FAIL, OK, FAIL, FAIL):
        assert probe(tracker, clock, result).kill is None
    assert tracker.health("web.instance-1")[0].consecutive_failures == 2
    assert probe(tracker, clock, FAIL).kill is not None


def test_a_killed_instance_is_not_checked_again_nor_killed_twice() -> None:
    definition = app(check("MESOS_TCP", maxConsecutiveFailures=1, delaySeconds=0),
                     check("HTTP", maxConsecutiveFailures=1, intervalSeconds=5))
    tracker, clock = tracker_with(definition)
    clock.advance(5)
    first, second = tracker.due()
    assert tracker.record(first, FAIL).kill is not None
    update = tracker.record(second, FAIL)
    assert update.kill is None
    assert event_types(update) == ["failed_health_check_event"]
    assert tracker.next_check_at() is None
    clock.advance(100)
    assert tracker.due() == []


def test_failed_health_check_event_carries_the_check_definition() -> None:
    definition = app(check("HTTP", path="/health", maxConsecutiveFailures=5))
    tracker, clock = tracker_with(definition)
    (failed,) = probe(tracker, clock, FAIL).events
    assert failed["eventType"] == "failed_health_check_event"
    assert failed["appId"] == "/web"
    assert failed["instanceId"] == "web.instance-1"
    assert failed["taskId"] == "web.instance-1._app.1"
    assert failed["healthCheck"] == definition.health_checks[0].to_json()


# ------------------------------------------------------------------- alive & healthiness


def test_alive_flips_publish_health_status_changed() -> None:
    tracker, clock = tracker_with(app(check(maxConsecutiveFailures=0)))
    became_alive = probe(tracker, clock, OK)
    assert event_types(became_alive) == ["health_status_changed_event"]
    changed = became_alive.events[0]
    assert (changed["alive"], changed["appId"], changed["instanceId"], changed["version"]) == (
        True, "/web", "web.instance-1", VERSION)
    assert became_alive.health_changed and became_alive.healthy is True
    still_alive = probe(tracker, clock, OK)
    assert still_alive.events == () and not still_alive.health_changed
    became_dead = probe(tracker, clock, FAIL)
    assert event_types(became_dead) == ["failed_health_check_event",
                                        "health_status_changed_event"]
    assert became_dead.events[1]["alive"] is False
    assert became_dead.health_changed and became_dead.healthy is False


def test_an_instance_is_healthy_only_when_every_check_is_alive() -> None:
    tracker, clock = tracker_with(app(check("HTTP"), check("TCP")))
    assert tracker.is_healthy("web.instance-1") is False  # nothing succeeded yet
    clock.advance(5)
    http, tcp = tracker.due()
    update = tracker.record(http, OK)
    assert (update.healthy, update.health_changed) == (False, False)
    update = tracker.record(tcp, OK)
    assert (update.healthy, update.health_changed) == (True, True)
    assert tracker.is_healthy("web.instance-1") is True


def test_health_is_none_without_health_checks_or_for_unknown_instances() -> None:
    tracker, _ = tracker_with(app())
    assert tracker.is_healthy("web.instance-1") is None
    assert tracker.is_healthy("nobody") is None
    assert tracker.next_check_at() is None
    assert tracker.health_json("web.instance-1") == []


def test_an_ignored_result_changes_nothing_but_frees_the_check() -> None:
    tracker, clock = tracker_with(app(check(ignoreHttp1xx=True)))
    probe(tracker, clock, OK)
    before = tracker.health("web.instance-1")
    update = probe(tracker, clock, ProbeResult.ignored("102 Processing"))
    assert update == HealthUpdate(healthy=True)
    assert tracker.health("web.instance-1") == before
    assert tracker.next_check_at() is not None


# --------------------------------------------------------------------- instance churn


def test_results_for_removed_or_replaced_instances_are_dropped() -> None:
    definition = app(check(maxConsecutiveFailures=1))
    tracker, clock = tracker_with(definition)
    due = take_one(tracker, clock)
    tracker.remove_instance("web.instance-1")
    assert "web.instance-1" not in tracker
    assert tracker.record(due, FAIL) == HealthUpdate()
    tracker.add_instance(definition, "web.instance-1", "web.instance-1._app.2", host="a",
                         ports=[31000], started_at=clock.now())
    assert tracker.record(due, FAIL) == HealthUpdate()  # a result for the previous task
    assert tracker.health("web.instance-1")[0].consecutive_failures == 0


def test_a_new_app_version_for_the_same_task_starts_a_new_record() -> None:
    tracker, clock = tracker_with(app(check("HTTP")))
    due = take_one(tracker, clock)
    tracker.add_instance(app(check("TCP")), "web.instance-1", "web.instance-1._app.1",
                         host="a", ports=[31000], started_at=START)
    assert tracker.record(due, OK) == HealthUpdate()
    assert tracker.is_healthy("web.instance-1") is False


# ------------------------------------------------------------------------------- JSON


def test_health_json_before_any_result() -> None:
    tracker, _ = tracker_with(app(check("HTTP"), check("TCP")))
    assert tracker.health_json("web.instance-1") == [{
        "alive": False, "consecutiveFailures": 0, "firstSuccess": None, "lastFailure": None,
        "lastSuccess": None, "lastFailureCause": None, "instanceId": "web.instance-1",
        "taskId": "web.instance-1._app.1",
    }] * 2


def test_health_json_records_successes_and_failures_with_marathon_timestamps() -> None:
    tracker, clock = tracker_with(app(check(intervalSeconds=10, maxConsecutiveFailures=0)))
    probe(tracker, clock, OK)      # at +5 s
    probe(tracker, clock, OK)      # at +15 s
    probe(tracker, clock, FAIL)    # at +25 s
    assert tracker.health_json("web.instance-1") == [{
        "alive": False,
        "consecutiveFailures": 1,
        "firstSuccess": "2016-02-28T16:41:46.090Z",
        "lastFailure": "2016-02-28T16:42:06.090Z",
        "lastSuccess": "2016-02-28T16:41:56.090Z",
        "lastFailureCause": "500 Internal Server Error",
        "instanceId": "web.instance-1",
        "taskId": "web.instance-1._app.1",
    }]
    probe(tracker, clock, OK)      # at +35 s
    (entry,) = tracker.health_json("web.instance-1")
    assert (entry["alive"], entry["consecutiveFailures"], entry["lastSuccess"]) == (
        True, 0, "2016-02-28T16:42:16.090Z")
    assert entry["lastFailureCause"] == "500 Internal Server Error"  # kept, as Marathon does
