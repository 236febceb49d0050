"""Adopting an agent's report from what a standby read of it ahead (ADR 0018: `DecodedReport`,
`ReadReport`) against the adoption read straight from the report's messages: over any reports
(tasks of known and unknown frameworks, with or without executors, statuses, allocation roles,
labels, resources that do not parse, repeated task ids), adopted by a new leader and then again
by the same master, every task record equals the one built from the report as the master
built it before the standby read anything: `TaskRecord(TaskInfo(...))`, then its state and
latest status; and the allocator books what the records hold."""

from __future__ import annotations

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_master.records import TaskRecord
from mesos_master.registry import RegistryState
from mesos_master.standby import DecodedReport
from mesos_master.tasks import task_resources
from mesos_master.validation import DEFAULT_ROLE
from mesos_values.resources import Resources
from mesos_values.task_states import TERMINAL_STATES
from protos import agent_pb2, mesos_pb2, registry_pb2
from tests.unit.test_master import Cluster, RecordingOutbox

AGENT = "a1"
INFO = mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value=AGENT), hostname="h1",
                           resources=Resources.parse("cpus:64;mem:65536").to_proto())
STATES = st.sampled_from([mesos_pb2.TASK_STAGING, mesos_pb2.TASK_RUNNING,
                          mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_FAILED,
                          mesos_pb2.TASK_UNREACHABLE])
FRAMEWORKS = st.sampled_from(["known", "reported", "unreported"])
"""A framework the master knows (roles `r1`), one it learns of from the report's infos
(roles `r2`), and one it knows only by id."""


@st.composite
def resources(draw: st.DrawFn) -> list[mesos_pb2.Resource]:
    entries = []
    for name in draw(st.lists(st.sampled_from(["cpus", "mem", "bad"]), max_size=3)):
        entry = mesos_pb2.Resource(name="cpus" if name == "bad" else name,
                                   type=mesos_pb2.Value.SCALAR)
        entry.scalar.value = -1 if name == "bad" else draw(st.sampled_from([0.1, 0.5, 16]))
        role = draw(st.sampled_from(["", "", "r3"]))
        if role:
            entry.allocation_info.role = role
        entries.append(entry)
    return entries


@st.composite
def tasks(draw: st.DrawFn) -> mesos_pb2.Task:
    task = mesos_pb2.Task(
        name=draw(st.sampled_from(["", "n"])),
        task_id=mesos_pb2.TaskID(value=draw(st.sampled_from(["t1", "t2", "t3"]))),
        framework_id=mesos_pb2.FrameworkID(value=draw(FRAMEWORKS)),
        agent_id=mesos_pb2.AgentID(value=AGENT), state=draw(STATES), resources=draw(resources()))
    executor = draw(st.sampled_from(["", "e1", "e2"]))
    if executor:
        task.executor_id.value = executor
    if draw(st.booleans()):
        task.labels.labels.add(key="k", value="v")
    for state in draw(st.lists(STATES, max_size=3)):
        task.statuses.add(task_id=task.task_id, state=state,
                          timestamp=draw(st.floats(0, 1e9, allow_nan=False)))
    return task


@st.composite
def reports(draw: st.DrawFn) -> agent_pb2.AgentMessage.Reregister:
    report = agent_pb2.AgentMessage.Reregister(agent_info=INFO,
                                               tasks=draw(st.lists(tasks(), max_size=5)))
    report.frameworks.add(id=mesos_pb2.FrameworkID(value="reported"), name="r", roles=["r2"])
    for framework_id in draw(st.lists(FRAMEWORKS, max_size=2, unique=True)):
        executor = report.executors.add(
            executor_id=mesos_pb2.ExecutorID(value="e1"),
            framework_id=mesos_pb2.FrameworkID(value=framework_id),
            command=mesos_pb2.CommandInfo(value="exec"))
        executor.resources.extend(Resources.parse("cpus:0.1").to_proto())
    return report


def new_leader() -> Cluster:
    """A core recovered from a registry holding the agent and the framework `known`."""
    known = mesos_pb2.FrameworkInfo(id=mesos_pb2.FrameworkID(value="known"), name="k",
                                    user="u", roles=["r1"])
    return Cluster(recovered=RegistryState(
        agents={AGENT: registry_pb2.AgentEntry(info=INFO)},
        frameworks={"known": registry_pb2.FrameworkEntry(info=known)}))


def expected_records(
    cluster: Cluster, report: agent_pb2.AgentMessage.Reregister,
) -> dict[tuple[str, str], TaskRecord]:
    """The records the adoption leaves, built from the report's messages as the master built
    them before the standby read anything (run before the adoption: it reads which frameworks
    and records the master has)."""
    agent = cluster.master.agents[AGENT]
    executors = {(e.framework_id.value, e.executor_id.value): e.executor_id.value
                 for e in report.executors}
    executors |= {key: record.info.executor_id.value for key, record in agent.executors.items()
                  if key not in executors}
    infos = {f.id.value: f for f in report.frameworks}
    roles = {framework_id: list(f.info.roles) for framework_id, f in
             cluster.master.frameworks.items()}
    records = dict(agent.tasks)
    for task in report.tasks:
        key = (task.framework_id.value, task.task_id.value)
        record = records.get(key)
        if record is None:
            info = mesos_pb2.TaskInfo(name=task.name, task_id=task.task_id,
                                      resources=task.resources, labels=task.labels)
            executor = next((e for e in report.executors
                             if (e.framework_id.value, e.executor_id.value)
                             == (key[0], task.executor_id.value)), None)
            if executor is None and (key[0], task.executor_id.value) in agent.executors:
                executor = agent.executors[(key[0], task.executor_id.value)].info
            if executor is not None:
                info.executor.CopyFrom(executor)
            role = next((r.allocation_info.role for r in task.resources
                         if r.allocation_info.role), None)
            if role is None:
                role = roles[key[0]][0] if key[0] in roles else DEFAULT_ROLE
            record = TaskRecord(info, key[0], AGENT, task_resources(task), role, task.state)
            records[key] = record
        else:  # the master's own record: a copy, its state and statuses moved as the report's
            record = records[key] = copy.copy(record)
        record.state = task.state
        if task.statuses:
            record.record_status(task.statuses[-1])
        if key[0] not in roles:
            reported = infos.get(key[0])
            roles[key[0]] = list(reported.roles) if reported and reported.roles else ["*"]
    return records


def snapshot_of(record: TaskRecord) -> tuple[object, ...]:
    return (record.info, record.task_id, record.executor_id, record.framework_id,
            record.agent_id, record.resources, record.role, record.state,
            record.latest_status, record.earlier_states, record.to_proto())


def adopt(cluster: Cluster, report: agent_pb2.AgentMessage.Reregister, ahead: bool) -> None:
    expected = expected_records(cluster, report)
    outbox: RecordingOutbox[agent_pb2.MasterMessage] = RecordingOutbox()
    cluster.master.reregister_agent(
        report, outbox, decoded=DecodedReport.of(report) if ahead else None)
    assert outbox.messages[-1].HasField("reregistered")
    agent = cluster.master.agents[AGENT]
    reported = {(t.framework_id.value, t.task_id.value) for t in report.tasks}
    for key in reported:
        assert snapshot_of(agent.tasks[key]) == snapshot_of(expected[key])
    for key in agent.tasks:  # unreported running ones ended (lost in transit): forgotten
        assert key in reported or expected[key].state in TERMINAL_STATES
    held = cluster.master.allocator._agents[AGENT]
    in_use = Resources.EMPTY
    for by_role in cluster.master._allocator_used(agent).values():
        for used in by_role.values():
            in_use += used
    assert held.available == held.total - in_use


@settings(max_examples=200, deadline=None)
@given(first=reports(), second=reports(), ahead=st.booleans())
def test_an_adoption_read_ahead_leaves_the_records_built_from_the_report(
    first: agent_pb2.AgentMessage.Reregister, second: agent_pb2.AgentMessage.Reregister,
    ahead: bool,
) -> None:
    cluster = new_leader()
    adopt(cluster, first, ahead)  # a new leader: no records yet
    adopt(cluster, second, not ahead)  # the same master again: its own records, updated
