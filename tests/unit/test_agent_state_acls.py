"""The agent's `/state` filtered by the viewing ACLs (`agent_state(..., can_view=...)`), and
the users those ACLs are asked about (`mesos_values.users`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from mesos_agent.http import agent_state
from mesos_agent.views import AgentSnapshot
from mesos_values.users import executor_user, own_user, task_user
from protos import mesos_pb2
from tests.unit.test_agent_completed import executor_view, task_view

FRAMEWORK = mesos_pb2.FrameworkInfo(id=mesos_pb2.FrameworkID(value="F0"), user="bob")


def snapshot() -> AgentSnapshot:
    """F0 (user bob): command task `cmd`, and task `custom` (as alice) on executor `ex`
    (as carol)."""
    ex = executor_view("ex")
    ex.info.command.user = "carol"
    custom = replace(task_view("custom", state=mesos_pb2.TASK_RUNNING, executor="ex"),
                     user="alice")
    return AgentSnapshot(
        info=mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value="S0"), hostname="h"),
        master=None, registered=True, frameworks={"F0": FRAMEWORK},
        tasks=(task_view("cmd", state=mesos_pb2.TASK_RUNNING), custom), executors=(ex,),
        terminal_tasks={}, sandboxes_root=Path("/work/slaves"),
    )


def state(allowed: set[tuple[str, str | None]]) -> dict[str, Any]:
    return agent_state(snapshot(), pid="slave(1)@h:5051", start_time=0.0, flags={"a": "b"},
                       can_view=lambda action, target: (action, target) in allowed)


def layout(found: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    return {f["id"]: {e["id"]: [t["id"] for t in e["tasks"]] for e in f["executors"]}
            for f in found["frameworks"]}


def test_everything_is_shown_to_whom_may_view_it() -> None:
    everything = {("view_frameworks", "bob"), ("view_executors", "bob"),
                  ("view_executors", "carol"), ("view_tasks", "bob"), ("view_tasks", "alice"),
                  ("view_flags", None)}
    found = state(everything)
    assert layout(found) == {"F0": {"cmd": ["cmd"], "ex": ["custom"]}}
    assert found["flags"] == {"a": "b"}


def test_frameworks_executors_and_tasks_are_judged_by_the_user_they_run_as() -> None:
    assert state(set())["frameworks"] == []
    assert state(set())["flags"] == {}
    assert layout(state({("view_frameworks", "bob")})) == {"F0": {}}
    # The executor runs as carol, its task as alice, the command task as bob (its framework's).
    assert layout(state({("view_frameworks", "bob"), ("view_executors", "carol"),
                         ("view_tasks", "bob")})) == {"F0": {"ex": []}}
    assert layout(state({("view_frameworks", "bob"), ("view_executors", "bob"),
                         ("view_executors", "carol"), ("view_tasks", "alice")})) == {
        "F0": {"cmd": [], "ex": ["custom"]}}


def test_a_hidden_executor_does_not_leak_its_tasks_elsewhere() -> None:
    found = state({("view_frameworks", "bob"), ("view_tasks", "alice")})
    assert layout(found) == {"F0": {}}
    assert found["completed_frameworks"] == []


def test_users_as_mesos_decides_them() -> None:
    command = mesos_pb2.TaskInfo(command=mesos_pb2.CommandInfo(user="alice"))
    on_executor = mesos_pb2.TaskInfo(executor=mesos_pb2.ExecutorInfo(
        command=mesos_pb2.CommandInfo(user="carol")))
    assert own_user(command) == task_user(command, FRAMEWORK) == "alice"
    assert own_user(on_executor) == task_user(on_executor, FRAMEWORK) == "carol"
    assert own_user(mesos_pb2.TaskInfo()) == ""
    assert task_user(mesos_pb2.TaskInfo(), FRAMEWORK) == "bob"
    assert task_user(mesos_pb2.TaskInfo(), None) == ""
    assert executor_user(on_executor.executor, FRAMEWORK) == "carol"
    assert executor_user(mesos_pb2.ExecutorInfo(), FRAMEWORK) == "bob"
