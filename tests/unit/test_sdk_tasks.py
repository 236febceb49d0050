"""Building TaskInfos and ExecutorInfos (frameworks.tasks)."""

from __future__ import annotations

import pytest

from frameworks import (
    OfferBudget,
    command_task,
    executor_info,
    executor_task,
    is_terminal,
    kill_policy,
    offer_resources,
    state_name,
)
from mesos_values.resources import Resources
from protos import mesos_pb2


def make_offer(resources: str = "cpus:1;mem:128;ports:[31000-31010]") -> mesos_pb2.Offer:
    offer = mesos_pb2.Offer(
        id=mesos_pb2.OfferID(value="o1"), agent_id=mesos_pb2.AgentID(value="a1")
    )
    offer.resources.extend(Resources.parse(resources).to_proto())
    return offer


def env_of(command: mesos_pb2.CommandInfo) -> dict[str, str]:
    return {variable.name: variable.value for variable in command.environment.variables}


def test_command_task_from_offer() -> None:
    task = command_task(
        "t1", make_offer(), "sleep 1", cpus=0.5, mem=64, ports=2, env={"A": "b"},
        kill_grace_period=2.5, labels={"team": "x"},
    )
    assert task.task_id.value == "t1"
    assert task.name == "t1"
    assert task.agent_id.value == "a1"
    assert Resources.from_proto(task.resources) == Resources.parse(
        "cpus:0.5;mem:64;ports:[31000-31001]"
    )
    assert task.command.value == "sleep 1"
    assert task.command.shell is True
    assert env_of(task.command) == {"A": "b", "PORT0": "31000", "PORT1": "31001", "PORT": "31000"}
    assert task.kill_policy.grace_period.nanoseconds == 2_500_000_000
    assert [(label.key, label.value) for label in task.labels.labels] == [("team", "x")]
    assert not task.HasField("executor")


def test_command_task_argv_and_explicit_port_env_wins() -> None:
    task = command_task(
        mesos_pb2.TaskID(value="t2"), "agent-7", ["/bin/echo", "hi"], ports=[8080],
        env={"PORT0": "custom"}, name="echo",
    )
    assert task.agent_id.value == "agent-7"
    assert task.name == "echo"
    assert (task.command.shell, task.command.value, list(task.command.arguments)) == (
        False, "/bin/echo", ["/bin/echo", "hi"]
    )
    assert env_of(task.command) == {"PORT0": "custom", "PORT": "8080"}
    assert Resources.from_proto(task.resources).ranges_of("ports") == ((8080, 8080),)


def test_command_tasks_share_a_budget() -> None:
    budget = OfferBudget(make_offer())
    first = command_task("t1", budget, "true", cpus=0.5, ports=1)
    second = command_task("t2", budget, "true", cpus=0.5, ports=1)
    ports = [Resources.from_proto(t.resources).ranges_of("ports") for t in (first, second)]
    assert ports == [((31000, 31000),), ((31001, 31001),)]
    with pytest.raises(ValueError, match="does not fit"):
        command_task("t3", budget, "true", cpus=0.5)


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"on": "a1", "cmd": "true", "ports": 1}, "ports as numbers"),
        ({"on": make_offer("cpus:0.05;mem:128"), "cmd": "true"}, "does not fit"),
        ({"on": "a1", "cmd": "  "}, "must not be empty"),
        ({"on": "a1", "cmd": []}, "must not be empty"),
        ({"on": "", "cmd": "true"}, "AgentID must not be empty"),
        ({"on": "a1", "cmd": "true", "kill_grace_period": -1}, "at least 0"),
    ],
    ids=["port-count-without-offer", "too-big", "blank-cmd", "empty-argv", "empty-agent",
         "negative-grace"],
)
def test_command_task_rejects_bad_input(kwargs: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        command_task("t1", **kwargs)  # type: ignore[arg-type]


def test_executor_task_charges_the_executor_once() -> None:
    executor = executor_info("e1", ["/usr/bin/python3", "-m", "x"], cpus=0.2, mem=32,
                             data=b"cfg", framework_id="fw1", labels={"k": "v"})
    assert executor.type == mesos_pb2.ExecutorInfo.CUSTOM
    assert executor.name == "e1"
    assert executor.framework_id.value == "fw1"
    assert executor.command.shell is False
    assert Resources.from_proto(executor.resources) == Resources.parse("cpus:0.2;mem:32")
    offer = make_offer("cpus:1;mem:128")
    budget = OfferBudget(offer)
    first = executor_task("t1", budget, executor, cpus=0.3, mem=32, data=b"work")
    second = executor_task("t2", budget, executor, cpus=0.3, mem=32)
    assert first.executor == executor
    assert first.data == b"work"
    assert not first.HasField("command")
    # 0.2 (executor, once) + 2 x 0.3 (tasks) = 0.8 cpus; 32 + 2 x 32 = 96 MB
    assert budget.remaining == offer_resources(offer) - Resources.parse("cpus:0.8;mem:96")
    assert Resources.from_proto(second.resources) == Resources.parse("cpus:0.3;mem:32")


def test_executor_task_checks_the_executor_share_fits() -> None:
    executor = executor_info("e1", "run-executor", cpus=0.5, mem=32)
    with pytest.raises(ValueError, match="plus its executor"):
        executor_task("t1", make_offer("cpus:0.6;mem:128"), executor, cpus=0.3)


def test_kill_policy() -> None:
    assert kill_policy(0.25).grace_period.nanoseconds == 250_000_000
    delayed = kill_policy(None, sigterm_delay=1.5)
    assert not delayed.HasField("grace_period")
    assert delayed.sigterm_delay.nanoseconds == 1_500_000_000
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="at least 0"):
            kill_policy(bad)
    task = command_task("t1", "agent-1", "serve", sigterm_delay=2)
    assert task.kill_policy.sigterm_delay.nanoseconds == 2_000_000_000
    assert not command_task("t2", "agent-1", "serve").HasField("kill_policy")


@pytest.mark.parametrize(
    ("state", "terminal"),
    [
        (mesos_pb2.TASK_STAGING, False),
        (mesos_pb2.TASK_RUNNING, False),
        (mesos_pb2.TASK_KILLING, False),
        (mesos_pb2.TASK_UNREACHABLE, False),
        (mesos_pb2.TASK_FINISHED, True),
        (mesos_pb2.TASK_FAILED, True),
        (mesos_pb2.TASK_KILLED, True),
        (mesos_pb2.TASK_LOST, True),
        (mesos_pb2.TASK_DROPPED, True),
        (mesos_pb2.TASK_ERROR, True),
        (mesos_pb2.TASK_GONE, True),
    ],
    ids=lambda state: mesos_pb2.TaskState.Name(state),
)
def test_is_terminal(state: mesos_pb2.TaskState.ValueType, terminal: bool) -> None:
    assert is_terminal(state) is terminal
    assert is_terminal(mesos_pb2.TaskStatus(state=state)) is terminal


def test_state_name() -> None:
    assert state_name(mesos_pb2.TaskStatus(state=mesos_pb2.TASK_RUNNING)) == "TASK_RUNNING"
    assert state_name(mesos_pb2.TASK_LOST) == "TASK_LOST"
