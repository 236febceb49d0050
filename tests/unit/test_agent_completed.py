"""Finished tasks and executors the agent keeps for `/state` after forgetting them: the bounds,
and where `/state` files them (Mesos' `completed_frameworks` / `completed_executors`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mesos_agent.completed import CompletedWork
from mesos_agent.http import agent_state
from mesos_agent.views import AgentSnapshot, ExecutorView, TaskView
from protos import mesos_pb2

SANDBOXES = Path("/work/slaves/S0/frameworks")


def task_view(task_id: str, framework: str = "F0",
              state: mesos_pb2.TaskState.ValueType = mesos_pb2.TASK_FINISHED,
              executor: str | None = None) -> TaskView:
    executor_id = executor or task_id
    run = f"{executor_id}-run"
    return TaskView(
        mesos_pb2.Task(name=task_id, task_id=mesos_pb2.TaskID(value=task_id),
                       framework_id=mesos_pb2.FrameworkID(value=framework),
                       executor_id=mesos_pb2.ExecutorID(value=executor or ""),
                       state=state),
        executor_id, executor is not None,
        SANDBOXES / framework / "executors" / executor_id / "runs" / run,
    )


def executor_view(executor_id: str, framework: str = "F0") -> ExecutorView:
    return ExecutorView(
        framework,
        mesos_pb2.ExecutorInfo(executor_id=mesos_pb2.ExecutorID(value=executor_id),
                               name=f"{executor_id} executor"),
        f"{executor_id}-run",
        SANDBOXES / framework / "executors" / executor_id / "runs" / f"{executor_id}-run",
        subscribed=True,
    )


def framework_info(name: str) -> mesos_pb2.FrameworkInfo:
    return mesos_pb2.FrameworkInfo(name=name, user="root", roles=["web"])


def task_ids(completed: CompletedWork) -> list[str]:
    return [t.task.task_id.value for t in completed.tasks]


def test_the_latest_tasks_of_each_framework_are_kept() -> None:
    completed = CompletedWork(per_framework=2, total=10)
    for task_id in ("a1", "a2", "a3"):
        completed.add_task(task_view(task_id, "A"), framework_info("a"))
    completed.add_task(task_view("b1", "B"), framework_info("b"))
    assert task_ids(completed) == ["a2", "a3", "b1"]
    completed.add_task(task_view("a2", "A"), None)  # again: it becomes the latest
    completed.add_task(task_view("a4", "A"), None)
    assert task_ids(completed) == ["b1", "a2", "a4"]
    assert completed.frameworks["A"].name == "a"  # the info given before is kept


def test_the_oldest_go_first_past_the_total_and_their_frameworks_with_them() -> None:
    completed = CompletedWork(per_framework=5, total=3)
    completed.add_task(task_view("a1", "A"), framework_info("a"))
    for task_id in ("b1", "b2", "b3"):
        completed.add_task(task_view(task_id, "B"), framework_info("b"))
    assert task_ids(completed) == ["b1", "b2", "b3"]
    assert set(completed.frameworks) == {"B"}


def test_executors_are_bounded_and_name_their_latest_sandbox() -> None:
    completed = CompletedWork(per_framework=2, total=10)
    for executor_id in ("e1", "e2", "e3"):
        completed.add_executor(executor_view(executor_id), framework_info("f"))
    assert [e.info.executor_id.value for e in completed.executors] == ["e2", "e3"]
    assert completed.executor_sandbox("F0", "e3") == executor_view("e3").sandbox
    assert completed.executor_sandbox("F0", "e1") is None
    assert completed.executor_sandbox("F1", "e3") is None


def view(**changes: Any) -> AgentSnapshot:
    fields: dict[str, Any] = {
        "info": mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value="S0"), hostname="h"),
        "master": None, "registered": True, "frameworks": {}, "tasks": (), "executors": (),
        "terminal_tasks": {}, "sandboxes_root": Path("/work/slaves"),
    }
    return AgentSnapshot(**{**fields, **changes})


def state_of(agent: AgentSnapshot) -> dict[str, Any]:
    return agent_state(agent, pid="slave(1)@127.0.0.1:1", start_time=0.0, flags={})


def test_a_framework_whose_work_all_ended_is_a_completed_framework() -> None:
    done = task_view("done")
    state = state_of(view(completed_tasks=(done,),
                          completed_frameworks={"F0": framework_info("batch")}))
    assert state["frameworks"] == []
    [framework] = state["completed_frameworks"]
    assert (framework["id"], framework["name"], framework["executors"]) == ("F0", "batch", [])
    [executor] = framework["completed_executors"]
    assert executor["directory"] == str(done.sandbox)
    assert (executor["tasks"], [t["id"] for t in executor["completed_tasks"]]) == ([], ["done"])
    assert executor["completed_tasks"][0]["state"] == "TASK_FINISHED"


def test_ended_executors_of_a_live_framework_are_its_completed_executors() -> None:
    running = task_view("running", state=mesos_pb2.TASK_RUNNING)
    state = state_of(view(
        frameworks={"F0": framework_info("marathon")}, tasks=(running,),
        completed_tasks=(task_view("old"),),
    ))
    assert state["completed_frameworks"] == []
    [framework] = state["frameworks"]
    assert framework["name"] == "marathon"
    assert [t["id"] for e in framework["executors"] for t in e["tasks"]] == ["running"]
    assert [t["id"] for e in framework["completed_executors"]
            for t in e["completed_tasks"]] == ["old"]


def test_a_custom_executors_finished_tasks_stay_with_its_run() -> None:
    executor = executor_view("exec")
    live = task_view("live", state=mesos_pb2.TASK_RUNNING, executor="exec")
    finished = task_view("finished", executor="exec")
    orphan = task_view("orphan", executor="forgotten")
    state = state_of(view(
        tasks=(live,), executors=(executor,), completed_tasks=(finished, orphan),
        completed_frameworks={"F0": framework_info("custom")},
    ))
    [framework] = state["frameworks"]
    [running] = framework["executors"]
    assert running["directory"] == str(executor.sandbox)
    assert [t["id"] for t in running["tasks"]] == ["live"]
    assert [t["id"] for t in running["completed_tasks"]] == ["finished"]
    [kept] = framework["completed_executors"]  # its executor was forgotten: the task's sandbox
    assert (kept["id"], kept["directory"]) == ("forgotten", str(orphan.sandbox))
    assert [t["id"] for t in kept["completed_tasks"]] == ["orphan"]

    ended = state_of(view(completed_executors=(executor,), completed_tasks=(finished,)))
    [gone] = ended["completed_frameworks"][0]["completed_executors"]
    assert (gone["name"], gone["directory"]) == ("exec executor", str(executor.sandbox))
    assert [t["id"] for t in gone["completed_tasks"]] == ["finished"]
