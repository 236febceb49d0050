"""ExecutorDriver construction and the example executor's task data (no agent, no I/O)."""

from __future__ import annotations

import os

import pytest

from frameworks.driver import DriverStatus
from frameworks.examples.custom_executor import Work
from frameworks.executor import Executor, ExecutorDriver

ENV = {
    "MESOS_AGENT_ENDPOINT": "127.0.0.1:5051",
    "MESOS_FRAMEWORK_ID": "fw-1",
    "MESOS_EXECUTOR_ID": "ex-1",
    "MESOS_AGENT_ID": "agent-1",
    "MESOS_SANDBOX": "/sandbox",
    "MESOS_RECOVERY_TIMEOUT": "2mins",
}


def test_driver_reads_its_identity_from_the_environment() -> None:
    driver = ExecutorDriver(Executor(), environment=ENV)
    assert driver.agent_endpoint == "127.0.0.1:5051"
    assert driver.framework_id.value == "fw-1"
    assert driver.executor_id.value == "ex-1"
    assert driver.agent_id.value == "agent-1"
    assert driver.sandbox == "/sandbox"
    assert driver.recovery_timeout == 120.0
    assert driver.status is DriverStatus.NOT_STARTED


def test_driver_names_missing_variables() -> None:
    with pytest.raises(ValueError, match="MESOS_AGENT_ENDPOINT, MESOS_EXECUTOR_ID"):
        ExecutorDriver(Executor(), environment={"MESOS_FRAMEWORK_ID": "fw"})


def test_calls_before_start_are_refused() -> None:
    driver = ExecutorDriver(Executor(), environment=ENV)
    assert driver.send_framework_message(b"x") is DriverStatus.NOT_STARTED
    assert driver.stop() is DriverStatus.NOT_STARTED
    assert driver.join() is DriverStatus.NOT_STARTED


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", Work()),
        (b'{"sleep": 1.5, "echo": "hi"}', Work(1.5, "hi", False)),
        (b'{"fail": true}', Work(0.0, None, True)),
    ],
    ids=["empty", "sleep-echo", "fail"],
)
def test_example_task_data(data: bytes, expected: Work) -> None:
    assert Work.parse(data) == expected


@pytest.mark.parametrize(
    "data", [b"not json", b"[1]", b'{"sleep": -1}', b'{"sleep": "1"}', b'{"echo": 3}'],
)
def test_example_rejects_bad_task_data(data: bytes) -> None:
    with pytest.raises(ValueError):
        Work.parse(data)


def test_driver_sends_its_token_and_takes_it_out_of_os_environ(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert ExecutorDriver(Executor(), environment=ENV)._metadata == ()
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MESOS_EXECUTOR_AUTHENTICATION_TOKEN", "tok")
    driver = ExecutorDriver(Executor())
    assert driver._metadata == (("authorization", "Bearer tok"),)
    assert "MESOS_EXECUTOR_AUTHENTICATION_TOKEN" not in os.environ  # children do not inherit it
