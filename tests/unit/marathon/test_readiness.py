"""Readiness tracking (pure) and its effect on deployments in the core."""

from __future__ import annotations

from marathon.app_definition import parse_app
from marathon.readiness import FIRST_CHECK_AFTER_SECONDS, ReadinessTracker, Response
from mesos_runtime.clock import FakeClock
from protos import mesos_pb2
from tests.unit.marathon.test_core import APP, World

CHECKED = {
    **APP, "instances": 1,
    "portDefinitions": [{"port": 0, "name": "http"}],
    "readinessChecks": [{"name": "ready", "protocol": "HTTP", "path": "/ready",
                         "portName": "http", "intervalSeconds": 5, "timeoutSeconds": 2,
                         "httpStatusCodesForReady": [200], "preserveLastResponse": True}],
}


def test_an_instance_is_ready_once_its_check_answers_a_ready_status() -> None:
    clock = FakeClock()
    tracker = ReadinessTracker(clock)
    app = parse_app(CHECKED)
    assert tracker.add(app, "i1", "t1", address="h", host_ports=[31005])
    assert not tracker.add(parse_app(APP), "i2", "t2", address="h", host_ports=[1])
    assert tracker.due() == []
    clock.advance(FIRST_CHECK_AFTER_SECONDS)
    [due] = tracker.due()
    assert (due.port, due.check.path) == (31005, "/ready")
    assert tracker.due() == []  # one probe of a check at a time
    assert not tracker.record(due, Response(503, "text/plain", "warming up"))
    [result] = tracker.results()[app.id]
    assert not result.ready and result.last_response_status == 503
    assert result.to_json()["lastResponse"]["body"] == "warming up"

    clock.advance(5)
    [again] = tracker.due()
    assert tracker.record(again, Response(200))
    clock.advance(60)
    assert tracker.due() == []  # ready instances are not checked any more


def test_a_deployment_waits_for_readiness() -> None:
    world = World()
    world.deploy_app(CHECKED)
    [task] = world.offer()
    world.update(task.task_id.value, mesos_pb2.TASK_RUNNING)
    assert world.core.deployments  # running, not ready yet
    [instance] = world.core.instances.values()
    world.core.instance_ready(instance.instance_id)
    assert not world.core.deployments
