"""What the CLI shows, from the JSON the components answer (Mesos' `/state`, Marathon's and
Metronome's conformance payloads)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mesos_cli.errors import CliError
from mesos_cli.views import (
    agent_rows,
    agent_url,
    app_rows,
    app_task_rows,
    cluster_summary,
    framework_rows,
    job_rows,
    leader_url,
    locate_task,
    run_rows,
    schedule_rows,
    select_tasks,
    shorten,
    task_agents,
    task_rows,
    task_statistics,
)
from mesos_http.sandbox_files import agent_task

CONFORMANCE = Path(__file__).resolve().parents[1] / "fixtures" / "conformance"
MASTER = "http://127.0.0.1:5080"


def task(task_id: str, state: str = "TASK_RUNNING", agent: str = "S0",
         framework: str = "F0") -> dict[str, Any]:
    return {"id": task_id, "name": task_id.split(".")[0], "framework_id": framework,
            "executor_id": "", "slave_id": agent, "state": state,
            "resources": {"cpus": 0.5, "mem": 64.0, "disk": 0.0, "gpus": 0.0}}


def master_state() -> dict[str, Any]:
    """A leading master's `/state` with two agents, two frameworks and a few tasks."""
    return {
        "version": "0.1.0",
        "pid": "master@127.0.0.1:5080",
        "leader": "master@127.0.0.1:5080",
        "slaves": [
            {"id": "S0", "hostname": "host1", "pid": "slave(1)@127.0.0.1:5051",
             "http_port": 5051, "active": True, "attributes": {"rack": "r1", "zone": "a"},
             "resources": {"cpus": 4.0, "mem": 4096.0, "disk": 10000.0},
             "used_resources": {"cpus": 1.0, "mem": 128.0, "disk": 0.0}},
            {"id": "S1", "hostname": "host2", "pid": "slave(1)@127.0.0.2:5052",
             "http_port": 5052, "active": False, "attributes": {},
             "resources": {"cpus": 2.0, "mem": 2048.0, "disk": 1000.0},
             "used_resources": {"cpus": 0.0, "mem": 0.0, "disk": 0.0}},
        ],
        "frameworks": [
            {"id": "F0", "name": "marathon", "role": "*", "active": True,
             "dominant_share": 0.25, "used_resources": {"cpus": 1.0, "mem": 128.0},
             "tasks": [task("web.instance-1._app.1"), task("web.instance-2._app.1")],
             "unreachable_tasks": [],
             "completed_tasks": [task("web.instance-0._app.1", "TASK_KILLED")]},
            {"id": "F1", "name": "batch", "role": "batch", "active": False,
             "dominant_share": 0.0, "used_resources": {"cpus": 0.0, "mem": 0.0},
             "tasks": [], "unreachable_tasks": [],
             "completed_tasks": [task("hello_1.0.0", "TASK_FINISHED", "S1", "F1")]},
        ],
    }


METRICS = {"master/slaves_active": 1, "master/frameworks_active": 1,
           "master/tasks_running": 2, "master/cpus_used": 1.0, "master/cpus_total": 6.0,
           "master/mem_used": 128.0, "master/mem_total": 6144.0, "master/disk_used": 0.0,
           "master/disk_total": 11000.0}


def test_the_cluster_summary_adds_up_state_and_metrics() -> None:
    summary = cluster_summary(master_state(), METRICS)
    assert (summary.agents_active, summary.agents) == (1, 2)
    assert (summary.frameworks_active, summary.frameworks) == (1, 2)
    assert (summary.tasks_running, summary.tasks) == (2, 2)
    assert summary.to_json()["cpus_total"] == 6.0
    assert summary.render().splitlines() == [
        "leader      master@127.0.0.1:5080",
        "version     0.1.0",
        "agents      1 active / 2",
        "frameworks  1 active / 2",
        "tasks       2 running / 2",
        "cpus        1/6 (16.67%)",
        "mem         128 MB/6 GB (2.08%)",
        "disk        0 MB/10.74 GB (0%)",
    ]


def test_agents_show_address_usage_tasks_and_attributes() -> None:
    rows = agent_rows(master_state())
    assert rows[0] == ["S0", "host1", "127.0.0.1:5051", True, 2, "1/4", "128 MB/4 GB",
                       "0 MB/9.77 GB", "rack:r1;zone:a"]
    assert rows[1][2:5] == ["127.0.0.2:5052", False, 0]


def test_frameworks_show_tasks_and_dominant_share() -> None:
    assert framework_rows(master_state()) == [
        ["F0", "marathon", "*", True, 2, 1.0, "128 MB", "25%"],
        ["F1", "batch", "batch", False, 0, 0.0, "0 MB", "0%"],
    ]


def test_tasks_are_live_ones_unless_all_are_asked_for() -> None:
    state = master_state()
    assert [t["id"] for t in select_tasks(state)] == [
        "web.instance-1._app.1", "web.instance-2._app.1"]
    assert len(select_tasks(state, include_completed=True)) == 4
    by_name = select_tasks(state, include_completed=True, framework="batch")
    assert [t["id"] for t in by_name] == ["hello_1.0.0"]
    assert select_tasks(state, include_completed=True, framework="F1") == by_name
    with pytest.raises(CliError, match="no framework has the id or name 'nope'"):
        select_tasks(state, framework="nope")
    rows = task_rows(state, by_name)
    assert rows == [["hello_1.0.0", "hello_1", "batch", "TASK_FINISHED", "host2", 0.5, "64 MB",
                     None, None]]


def test_live_tasks_show_their_usage_from_their_agents_statistics() -> None:
    state = master_state()
    live = select_tasks(state)
    assert task_agents(live) == {"S0"}
    assert task_agents(select_tasks(state, include_completed=True)) == {"S0"}  # live only
    usage: dict[str, list[dict[str, Any]] | None] = {"S0": [
        {"framework_id": "F0", "executor_id": "web.instance-1._app.1", "statistics": {
            "timestamp": 1.0, "cpus_user_time_secs": 1.5, "cpus_system_time_secs": 0.25,
            "mem_rss_bytes": 21 * 1024 * 1024, "mem_limit_bytes": 64 * 1024 * 1024}},
        {"framework_id": "F9", "executor_id": "web.instance-2._app.1", "statistics": {
            "timestamp": 1.0, "cpus_user_time_secs": 9.0, "mem_rss_bytes": 1}},
    ]}
    rows = task_rows(state, live, usage)
    assert [row[-2:] for row in rows] == [["1.75s", "21 MB/64 MB"], [None, None]]
    assert task_statistics(live[0], usage) == usage["S0"][0]["statistics"]  # type: ignore[index]
    # An agent that did not answer: its tasks' usage is unknown, and shown as such.
    assert [row[-2:] for row in task_rows(state, live, {"S0": None})] == [[None, None]] * 2
    only_rss = {"S0": [{"framework_id": "F0", "executor_id": "web.instance-2._app.1",
                        "statistics": {"mem_rss_bytes": 2 * 1024 * 1024}}]}
    assert task_rows(state, live, only_rss)[1][-2:] == [None, "2 MB"]
    # A custom executor's container is found by the task's executor_id.
    on_executor = {**live[0], "executor_id": "ex"}
    shared = {"S0": [{"framework_id": "F0", "executor_id": "ex", "statistics": {"x": 1}}]}
    assert task_statistics(on_executor, shared) == {"x": 1}
    ended = {**live[0], "state": "TASK_FINISHED"}
    assert task_statistics(ended, usage) is None


@pytest.mark.parametrize(
    ("query", "found"),
    [("web.instance-1._app.1", "web.instance-1._app.1"),   # exact
     ("instance-2", "web.instance-2._app.1"),              # a unique part
     ("instance-0", "web.instance-0._app.1"),              # finished, when no live one matches
     ("hello", "hello_1.0.0")],
)
def test_a_task_is_found_by_its_id_or_a_unique_part(query: str, found: str) -> None:
    location = locate_task(master_state(), query)
    assert location.task_id == found
    assert location.agent_url in ("http://127.0.0.1:5051", "http://127.0.0.2:5052")


def test_a_task_query_names_what_went_wrong() -> None:
    state = master_state()
    with pytest.raises(CliError, match=r"'web' matches 2 tasks .*give more of the id"):
        locate_task(state, "web")
    with pytest.raises(CliError, match="no task id matches 'zzz'"):
        locate_task(state, "zzz")
    state["slaves"] = state["slaves"][:1]
    with pytest.raises(CliError, match="agent S1, which is not registered"):
        locate_task(state, "hello")


def test_the_leader_is_this_master_or_the_one_a_standby_names() -> None:
    assert leader_url(master_state(), MASTER) == MASTER
    standby = {"pid": "master@127.0.0.1:5081", "leader": "master@127.0.0.1:5080",
               "leader_info": {"hostname": "m1", "http_port": 5080,
                               "address": {"ip": "127.0.0.9", "port": 5080}}}
    assert leader_url(standby, "http://127.0.0.1:5081") == "http://127.0.0.9:5080"
    with pytest.raises(CliError, match="knows no leading master"):
        leader_url({"pid": "master@127.0.0.1:5081"}, "http://127.0.0.1:5081")


def test_an_agents_url_comes_from_its_pid_and_http_port() -> None:
    assert agent_url({"pid": "slave(1)@10.0.0.1:5051"}) == "http://10.0.0.1:5051"
    assert agent_url({"pid": "slave(1)@10.0.0.1:40000", "http_port": 5051}) == \
        "http://10.0.0.1:5051"
    with pytest.raises(CliError):
        agent_url({"id": "S9"})


def agent_state(state: str) -> dict[str, Any]:
    return {"frameworks": [{"id": "F0", "executors": [
        {"id": "other", "directory": "/sandbox/other", "tasks": [task("other")]},
        {"id": "t1", "directory": "/sandbox/t1", "tasks": [], "queued_tasks": [],
         "completed_tasks": [task("t1", state)]},
    ]}]}


def test_a_tasks_sandbox_and_state_come_from_its_agent() -> None:
    found = agent_task(agent_state("TASK_FINISHED"), "F0", "t1")
    assert found is not None and found.directory == "/sandbox/t1" and found.terminal
    running = agent_task(agent_state("TASK_RUNNING"), "F0", "t1")
    assert running is not None and not running.terminal
    assert agent_task(agent_state("TASK_RUNNING"), "F1", "t1") is None
    assert agent_task({"frameworks": []}, "F0", "t1") is None


def test_a_finished_tasks_sandbox_comes_from_the_agents_completed_frameworks() -> None:
    finished = {"id": "t1", "directory": "/sandbox/t1", "tasks": [], "queued_tasks": [],
                "completed_tasks": [task("t1", "TASK_FINISHED")]}
    state = {"frameworks": [], "completed_frameworks": [
        {"id": "F0", "executors": [], "completed_executors": [finished]}]}
    found = agent_task(state, "F0", "t1")
    assert found is not None and found.directory == "/sandbox/t1" and found.terminal


def test_marathon_apps_and_tasks() -> None:
    app = json.loads((CONFORMANCE / "marathon" / "app.json").read_text())
    app.update(tasksRunning=1, tasksHealthy=1, deployments=[{"id": "d"}])
    assert app_rows([app]) == [["/foo", "1/2", "1/2", 0.1, "16 MB", "10019", True,
                                "sleep 1000"]]
    del app["healthChecks"]
    assert app_rows([app])[0][2] is None
    del app["container"]  # then the port definitions' ports: 0 is none assigned
    assert app_rows([app])[0][5] is None
    app["portDefinitions"] = [{"port": 10000}, {"port": 10001}]
    assert app_rows([app])[0][5] == "10000,10001"
    tasks = json.loads((CONFORMANCE / "marathon" / "app_tasks.json").read_text())["tasks"]
    rows = app_task_rows(tasks)
    assert rows[0][1:] == ["srv7.hw.ca1.mesosphere.com", "31756", "TASK_STAGING", None,
                           "2015-08-26T20:23:44.678Z"]
    checked = {**tasks[0], "healthCheckResults": [{"alive": True}, {"alive": False}]}
    assert app_task_rows([checked])[0][4] == "unhealthy"


def test_metronome_jobs_runs_and_schedules() -> None:
    metronome = CONFORMANCE / "metronome"
    jobs = json.loads((metronome / "job_list.json").read_text())
    jobs[0]["historySummary"] = {"successCount": 3, "failureCount": 1}
    jobs[0]["activeRuns"] = [{"id": "r"}]
    jobs[0]["schedules"] = [json.loads((metronome / "schedule.json").read_text())]
    rows = job_rows(jobs)
    assert rows[0] == ["prod.email.summary", "* * * * *", 1, 3, 1, "sendSummary"]
    assert rows[1] == ["cleanDb --force", "", 0, 0, 0, "false"]
    active = json.loads((metronome / "run_list.json").read_text())
    history = {
        "successfulFinishedRuns": [{"id": "ok", "createdAt": "c1", "finishedAt": "2"}],
        "failedFinishedRuns": [{"id": "bad", "createdAt": "c2", "finishedAt": "3"}],
    }
    runs = run_rows(active[:1], history)
    assert runs == [["20160715130259A34HX", "STARTING", "2016-07-15T13:02:59.735+0000", None],
                    ["bad", "FAILED", "c2", "3"], ["ok", "SUCCESS", "c1", "2"]]
    schedule = json.loads((metronome / "schedule.json").read_text())
    assert schedule_rows([schedule]) == [
        ["everyminute", "* * * * *", "America/Chicago", True, "ALLOW", None]]


def test_long_commands_are_shortened_on_one_line() -> None:
    assert shorten("echo a;\n  echo b", 40) == "echo a; echo b"
    assert shorten("x" * 50, 10) == "xxxxxxx..."
