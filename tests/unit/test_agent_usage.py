"""Per-container usage as the agent's endpoints show it (`mesos_agent.usage`): which containers
are monitored for whom, Mesos' JSON of `/monitor/statistics` and `/containers`, and the
Prometheus families of `/metrics`."""

from __future__ import annotations

import re
from dataclasses import replace

from mesos_agent.containers import ContainerProcess
from mesos_agent.usage import (
    USAGE_METRICS,
    MonitoredContainer,
    container_json,
    monitor_json,
    monitored_containers,
    statistics_json,
    usage_samples,
)
from mesos_http.operator_http import prometheus_family
from protos import mesos_pb2
from tests.unit.test_agent_completed import executor_view, task_view
from tests.unit.test_agent_state_acls import snapshot

EVERYTHING: set[tuple[str, str | None]] = {
    ("view_frameworks", "bob"), ("view_executors", "bob"), ("view_executors", "carol"),
    ("view_tasks", "bob"), ("view_tasks", "alice")}


def processes() -> list[ContainerProcess]:
    """The containers of `snapshot()`'s command task `cmd` and executor `ex`."""
    view = snapshot()
    [command] = [t for t in view.tasks if not t.custom_executor]
    [executor] = view.executors
    assert command.sandbox is not None and executor.sandbox is not None
    return [ContainerProcess("cmd-run", 101, 1.0, command.sandbox),
            ContainerProcess(executor.container_id, 102, 1.0, executor.sandbox)]


def monitored(allowed: set[tuple[str, str | None]]) -> list[MonitoredContainer]:
    return monitored_containers(snapshot(), processes(),
                                lambda action, target: (action, target) in allowed)


def test_live_executors_are_monitored_as_mesos_names_them() -> None:
    assert monitored(EVERYTHING) == [
        MonitoredContainer("cmd-run", "F0", "cmd", "Command Executor (Task: cmd)", "cmd",
                           "cmd", 101),
        MonitoredContainer("ex-run", "F0", "ex", "ex executor", "ex", "", 102),
    ]


def test_containers_are_shown_to_whom_may_view_them_in_state() -> None:
    assert monitored(set()) == []
    # The command task runs as bob (its framework's user), the executor as carol.
    assert [c.executor_id for c in monitored(EVERYTHING - {("view_tasks", "bob")})] == ["ex"]
    assert [c.executor_id for c in monitored(EVERYTHING - {("view_executors", "carol")})] == [
        "cmd"]
    assert monitored(EVERYTHING - {("view_frameworks", "bob")}) == []


def test_ended_tasks_and_unknown_containers_are_not_monitored() -> None:
    view = snapshot()
    ended = replace(view, tasks=(task_view("cmd", state=mesos_pb2.TASK_FINISHED),))
    assert [c.executor_id for c in monitored_containers(ended, processes())] == ["ex"]
    assert monitored_containers(view, []) == []
    other = replace(view, executors=(executor_view("other"),), tasks=())
    assert monitored_containers(other, processes()) == []


STATISTICS = mesos_pb2.ResourceStatistics(
    timestamp=1700000000.5, cpus_user_time_secs=1.25, cpus_system_time_secs=0.5,
    cpus_limit=0.5, mem_rss_bytes=20 << 20, mem_limit_bytes=64 << 20, processes=0)


def test_statistics_show_the_known_fields_only() -> None:
    assert statistics_json(STATISTICS) == {
        "timestamp": 1700000000.5, "cpus_user_time_secs": 1.25, "cpus_system_time_secs": 0.5,
        "cpus_limit": 0.5, "mem_rss_bytes": 20 << 20, "mem_limit_bytes": 64 << 20,
        "processes": 0,  # known, even though zero
    }
    assert statistics_json(mesos_pb2.ResourceStatistics()) == {"timestamp": 0.0}


def test_monitor_and_container_entries_in_mesos_shapes() -> None:
    [command, _] = monitored(EVERYTHING)
    assert monitor_json(command, STATISTICS) == {
        "framework_id": "F0", "executor_id": "cmd", "executor_name": "Command Executor (Task: cmd)",
        "source": "cmd", "statistics": statistics_json(STATISTICS)}
    assert container_json(command, STATISTICS) == {
        **monitor_json(command, STATISTICS), "container_id": "cmd-run",
        "status": {"container_id": {"value": "cmd-run"}, "executor_pid": 101}}
    assert "statistics" not in container_json(command, None)


def test_prometheus_families_label_each_container() -> None:
    command, executor = monitored(EVERYTHING)
    only_cpu = mesos_pb2.ResourceStatistics(timestamp=1.0, cpus_user_time_secs=3.0)
    text = "".join(prometheus_family(metric.name, metric.kind, metric.help, samples)
                   for metric, samples in usage_samples([(command, STATISTICS),
                                                         (executor, only_cpu)]))
    assert ('mesos_container_cpu_user_seconds_total{framework_id="F0",executor_id="cmd",'
            'task_id="cmd",container_id="cmd-run"} 1.25') in text
    assert ('mesos_container_cpu_user_seconds_total{framework_id="F0",executor_id="ex",'
            'task_id="",container_id="ex-run"} 3.0') in text
    assert 'mesos_container_memory_limit_bytes{framework_id="F0",executor_id="cmd",' \
           f'task_id="cmd",container_id="cmd-run"}} {64 << 20}' in text
    assert "# TYPE mesos_container_cpu_user_seconds_total counter" in text
    assert "# TYPE mesos_container_memory_rss_bytes gauge" in text
    # Unmeasured fields have no samples, and a family without samples is left out.
    assert text.count("mesos_container_memory_rss_bytes{") == 1
    assert "mesos_container_disk_used_bytes" not in text
    families = re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE)
    assert len(families) == len({name for name, _ in families}) == 6
    assert all(kind == ("counter" if name.endswith("_total") else "gauge")
               for name, kind in families)


def test_every_statistics_field_but_the_timestamp_has_a_family() -> None:
    fields = {f.name for f in mesos_pb2.ResourceStatistics.DESCRIPTOR.fields} - {"timestamp"}
    assert {metric.field for metric in USAGE_METRICS} == fields


def test_label_values_are_escaped() -> None:
    text = prometheus_family("m", "gauge", "A metric.", [({"id": 'a"b\\c\nd'}, 1)])
    assert text == '# HELP m A metric.\n# TYPE m gauge\nm{id="a\\"b\\\\c\\nd"} 1\n'
    assert prometheus_family("m", "gauge", "A metric.", []) == ""
