"""The task book as a pure core: no processes, no event loop; a recording runner and journal."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mesos_agent.completed import CompletedWork
from mesos_agent.containers import ContainerProcess
from mesos_agent.recovered import TaskCheckpoint
from mesos_agent.status_updates import (
    AckRecord,
    ContainerRecord,
    LogRecord,
    StatusUpdateManager,
    UpdateRecord,
)
from mesos_agent.task_book import NoJournal, Task, TaskBook
from mesos_runtime.clock import FakeClock
from protos import agent_pb2, mesos_pb2

FW = "fw-1"
WALL = FakeClock(start=1_700_000_000.0)
KILLING_STATE = mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE


@dataclass
class Journal:
    """Records every write; each write gets the ticket of the batch being collected."""

    ticket: int = 1
    writes: list[tuple[str, object]] = field(default_factory=list)

    @property
    def next_ticket(self) -> int:
        return self.ticket

    def _write(self, kind: str, what: object) -> int:
        self.writes.append((kind, what))
        return self.ticket

    def save_framework(self, framework_info: mesos_pb2.FrameworkInfo) -> int:
        return self._write("framework", framework_info.id.value)

    def remove_framework(self, framework_id: str) -> int:
        return self._write("framework gone", framework_id)

    def save_task(self, framework_id: str, task: mesos_pb2.TaskInfo, executor_id: str) -> int:
        return self._write("task", task.task_id.value)

    def append(self, framework_id: str, task_id: str, record: LogRecord) -> int:
        return self._write(type(record).__name__, task_id)

    def remove_task(self, framework_id: str, task_id: str) -> int:
        return self._write("task gone", task_id)


@dataclass
class Runner:
    """Records what the book hands over; custom executors of `executors` are "still here"."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    policies: list[mesos_pb2.KillPolicy | None] = field(default_factory=list)
    executors: set[str] = field(default_factory=set)

    def launch(self, task: Task, ticket: int) -> None:
        self.calls.append(("launch", task.id))

    def kill(self, task: Task, policy: mesos_pb2.KillPolicy | None) -> None:
        self.calls.append(("kill", task.id))
        self.policies.append(policy)

    def stop_framework(self, framework_id: str) -> None:
        self.calls.append(("stop", framework_id))

    def holds_framework(self, framework_id: str) -> bool:
        return framework_id in self.executors

    def executor_sandbox(self, framework_id: str, executor_id: str) -> Path | None:
        return Path("/sandboxes") / executor_id


@dataclass
class Setup:
    book: TaskBook
    updates: StatusUpdateManager
    journal: Journal
    runner: Runner
    completed: CompletedWork
    wakes: list[None]

    def sent(self) -> list[tuple[str, str]]:
        """(task id, state name) of each update due now."""
        return [(p.status.task_id.value, mesos_pb2.TaskState.Name(p.status.state))
                for p in self.updates.due()]

    def ack_all(self) -> None:
        while due := self.updates.due():
            for pending in due:
                self.book.acknowledge(pending.framework_id, pending.status.task_id.value,
                                      pending.status.uuid)


def make(journal: Journal | None = None, *, agent_id: str = "agent-1") -> Setup:
    updates = StatusUpdateManager(FakeClock())
    journal = journal or Journal()
    runner = Runner()
    completed = CompletedWork()
    wakes: list[None] = []
    info = mesos_pb2.AgentInfo(hostname="h", id=mesos_pb2.AgentID(value=agent_id))
    book = TaskBook(info, updates, journal, runner, wake=lambda: wakes.append(None),
                    wall_clock=WALL, completed=completed)
    return Setup(book, updates, journal, runner, completed, wakes)


@pytest.fixture
def setup() -> Setup:
    return make()


def framework(*capabilities: mesos_pb2.FrameworkInfo.Capability.Type.ValueType
              ) -> mesos_pb2.FrameworkInfo:
    return mesos_pb2.FrameworkInfo(
        id=mesos_pb2.FrameworkID(value=FW), name="f", user="u",
        capabilities=[mesos_pb2.FrameworkInfo.Capability(type=c) for c in capabilities],
    )


def task_info(task_id: str, executor_id: str = "") -> mesos_pb2.TaskInfo:
    info = mesos_pb2.TaskInfo(name=task_id, task_id=mesos_pb2.TaskID(value=task_id),
                              command=mesos_pb2.CommandInfo(value="sleep 1"))
    if executor_id:
        info.executor.executor_id.value = executor_id
    return info


def run(setup: Setup, task_id: str, *, executor_id: str = "",
        info: mesos_pb2.FrameworkInfo | None = None) -> Task:
    setup.book.run_task(info or framework(), task_info(task_id, executor_id))
    task = setup.book.task(FW, task_id)
    assert task is not None
    return task


def test_run_task_checkpoints_the_task_and_hands_it_to_the_runner_once(setup: Setup) -> None:
    task = run(setup, "t1")
    setup.book.run_task(framework(), task_info("t1"))

    assert setup.runner.calls == [("launch", "t1")]
    assert setup.journal.writes == [("framework", FW), ("task", "t1")]
    assert (task.executor_id, task.custom_executor) == ("t1", False)
    assert run(setup, "t2", executor_id="e1").executor_id == "e1"


def test_master_messages_about_tasks_are_taken_and_others_left_to_the_caller(
    setup: Setup,
) -> None:
    run_task = agent_pb2.MasterMessage()
    run_task.run_task.framework_info.CopyFrom(framework())
    run_task.run_task.task.CopyFrom(task_info("t1"))
    kill = agent_pb2.MasterMessage()
    kill.kill_task.framework_id.value = FW
    kill.kill_task.task_id.value = "t1"
    kill.kill_task.kill_policy.grace_period.nanoseconds = 2_000_000_000
    to_executor = agent_pb2.MasterMessage()
    to_executor.framework_to_executor.framework_id.value = FW

    assert setup.book.receive(run_task) and setup.book.receive(kill)
    assert not setup.book.receive(to_executor)
    assert setup.runner.calls == [("launch", "t1"), ("kill", "t1")]
    [policy] = setup.runner.policies
    assert policy is not None and policy.grace_period.nanoseconds == 2_000_000_000


def test_updates_wait_for_their_journal_batch_and_a_journal_of_nothing_sends_at_once() -> None:
    setup = make(Journal(ticket=7))
    task = run(setup, "t1")
    setup.book.update(task, mesos_pb2.TASK_STARTING)
    assert setup.sent() == []
    setup.book.synced(7)
    assert setup.sent() == [("t1", "TASK_STARTING")]

    hollow = make()
    hollow.book = TaskBook(mesos_pb2.AgentInfo(), hollow.updates, NoJournal(), hollow.runner,
                           wake=lambda: hollow.wakes.append(None), wall_clock=WALL)
    hollow.book.run_task(framework(), task_info("t1"))
    hollow_task = hollow.book.task(FW, "t1")
    assert hollow_task is not None
    hollow.book.update(hollow_task, mesos_pb2.TASK_RUNNING)
    assert hollow.wakes and hollow.sent() == [("t1", "TASK_RUNNING")]


def test_launched_logs_the_container_in_the_batch_of_task_running(setup: Setup) -> None:
    task = run(setup, "t1")
    container = ContainerProcess("c1", 42, 1.0, Path("/sandboxes/c1"))
    setup.book.launched(task, container)

    assert task.container == container
    assert setup.journal.writes[-2:] == [(ContainerRecord.__name__, "t1"),
                                         (UpdateRecord.__name__, "t1")]
    assert task.state == mesos_pb2.TASK_RUNNING
    assert setup.book.views()[0].sandbox == Path("/sandboxes/c1")


def test_a_kill_of_an_unknown_task_is_answered_task_lost(setup: Setup) -> None:
    setup.book.kill_task(FW, "nope", None)
    assert setup.updates.due() == []  # the journal batch is not durable yet
    setup.book.synced(1)
    (pending,) = setup.updates.due()
    status = pending.status
    assert status.state == mesos_pb2.TASK_LOST
    assert status.reason == mesos_pb2.TaskStatus.REASON_TASK_UNKNOWN
    assert status.source == mesos_pb2.TaskStatus.SOURCE_AGENT
    assert not status.HasField("executor_id")
    assert status.timestamp == WALL.now()  # stamped by the injected wall clock
    assert setup.runner.calls == []


def test_kills_reach_the_runner_only_for_tasks_that_are_not_terminal(setup: Setup) -> None:
    task = run(setup, "t1")
    policy = mesos_pb2.KillPolicy()
    policy.grace_period.nanoseconds = 5
    setup.book.kill_task(FW, "t1", policy)
    setup.book.update(task, mesos_pb2.TASK_FINISHED)
    setup.book.kill_task(FW, "t1", None)

    assert setup.runner.calls == [("launch", "t1"), ("kill", "t1")]
    assert setup.runner.policies == [policy]


def test_task_killing_only_for_frameworks_that_asked_for_it(setup: Setup) -> None:
    plain = run(setup, "t1")
    setup.book.killing(plain)
    assert plain.state == mesos_pb2.TASK_STAGING
    wants_it = run(setup, "t2", info=framework(KILLING_STATE))
    setup.book.killing(wants_it)
    assert wants_it.state == mesos_pb2.TASK_KILLING


def test_the_ack_of_the_terminal_update_forgets_the_task_into_the_completed(
    setup: Setup,
) -> None:
    task = run(setup, "t1")
    setup.book.update(task, mesos_pb2.TASK_RUNNING)
    setup.book.update(task, mesos_pb2.TASK_FAILED, "exit 1")
    setup.book.synced(1)
    setup.ack_all()

    assert setup.book.task(FW, "t1") is None
    assert [v.task.task_id.value for v in setup.completed.tasks] == ["t1"]
    assert setup.completed.tasks[0].task.state == mesos_pb2.TASK_FAILED
    assert [kind for kind, _ in setup.journal.writes].count(AckRecord.__name__) == 1
    assert setup.journal.writes[-1] == ("task gone", "t1")
    assert setup.book.terminal_tasks == {mesos_pb2.TASK_FAILED: 1}


def test_a_framework_shut_down_is_forgotten_once_its_runners_are_done(setup: Setup) -> None:
    done = run(setup, "t1")
    running = run(setup, "t2")
    setup.book.update(done, mesos_pb2.TASK_FINISHED)
    setup.runner.executors.add(FW)
    setup.book.shutdown_framework(FW)

    assert setup.runner.calls[-1] == ("stop", FW)
    assert setup.book.task(FW, "t1") is None  # terminal: forgotten at once
    setup.book.update(running, mesos_pb2.TASK_KILLED)
    assert setup.updates.streams() == []  # updates of a framework being shut down are dropped
    setup.book.finished(running)
    assert setup.book.tasks() == []
    assert FW in setup.book.framework_infos()  # its executor is still here
    setup.runner.executors.clear()
    setup.book.forget_framework_if_done(FW)
    assert setup.book.framework_infos() == {}
    assert setup.journal.writes[-1] == ("framework gone", FW)


def test_hello_registers_without_an_id_and_reregisters_with_everything() -> None:
    new = make(agent_id="")
    assert new.book.hello("1.0", []).HasField("register")

    setup = make()
    run(setup, "t1")
    run(setup, "t2", executor_id="e1")
    other = mesos_pb2.ExecutorInfo(executor_id=mesos_pb2.ExecutorID(value="e2"),
                                   framework_id=mesos_pb2.FrameworkID(value="fw-2"))
    reregister = setup.book.hello("1.0", [other]).reregister

    assert [t.task_id.value for t in reregister.tasks] == ["t1", "t2"]
    assert [t.executor_id.value for t in reregister.tasks] == ["", "e1"]
    assert [e.executor_id.value for e in reregister.executors] == ["e2"]
    assert [f.id.value for f in reregister.frameworks] == [FW]  # fw-2's info is unknown here
    assert reregister.version == "1.0"


def test_recovery_resumes_the_command_tasks_that_are_not_terminal(setup: Setup) -> None:
    def checkpoint(task_id: str, *states: mesos_pb2.TaskState.ValueType, executor_id: str = "",
                   container: str = "", lost: bool = False) -> TaskCheckpoint:
        updates: list[LogRecord] = [
            UpdateRecord(mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value=task_id),
                                              state=state, uuid=f"{task_id}{state}".encode()))
            for state in states
        ]
        process = ContainerProcess(container, 1, 1.0, Path("/s")) if container else None
        return TaskCheckpoint(FW, task_info(task_id, executor_id), executor_id or task_id,
                              process, updates, updates_lost=lost)

    acked_terminal = checkpoint("done", mesos_pb2.TASK_FINISHED)
    acked_terminal.updates.append(AckRecord(f"done{mesos_pb2.TASK_FINISHED}".encode()))
    resume = setup.book.recover(
        {FW: framework()},
        [acked_terminal,
         checkpoint("starting", mesos_pb2.TASK_STARTING, container="c1"),
         checkpoint("gone", mesos_pb2.TASK_RUNNING, container="c2"),
         checkpoint("custom", mesos_pb2.TASK_RUNNING, executor_id="e1"),
         checkpoint("lost", mesos_pb2.TASK_STARTING, lost=True)],
        alive={"c1"},
    )

    assert [(task.id, alive) for task, alive in resume] == [("starting", True), ("gone", False)]
    assert setup.book.task(FW, "done") is None
    assert ("task gone", "done") in setup.journal.writes
    states = {t.id: mesos_pb2.TaskState.Name(t.state) for t in setup.book.tasks()}
    assert states == {"starting": "TASK_RUNNING", "gone": "TASK_RUNNING",
                      "custom": "TASK_RUNNING", "lost": "TASK_FAILED"}


def test_the_report_version_moves_whenever_the_report_changes() -> None:
    """The hollow agents resume on it (ADR 0018): a report that changed under an unchanged
    version would have a master adopt a stale snapshot."""
    setup = make(Journal(ticket=0))  # updates go at once
    book = setup.book
    steps: list[tuple[str, tuple[int, str], bytes]] = []

    def look(step: str) -> None:
        report = book.hello("v", []).SerializeToString(deterministic=True)
        steps.append((step, book.report_version, report))

    look("empty")
    task = run(setup, "t1")
    look("run t1")
    book.update(task, mesos_pb2.TASK_STARTING)
    look("starting")
    book.update(task, mesos_pb2.TASK_RUNNING)
    look("running")
    setup.ack_all()
    look("acknowledged")
    run(setup, "t2", executor_id="e1")
    look("run t2")
    book.kill_task(FW, "t2", None)
    look("kill t2")
    other = task_info("t3")
    book.run_task(mesos_pb2.FrameworkInfo(id=mesos_pb2.FrameworkID(value="fw-2"), name="g"),
                  other)
    look("run t3 of another framework")
    book.update(task, mesos_pb2.TASK_FINISHED)
    look("t1 finished")
    setup.ack_all()
    look("t1 acknowledged and forgotten")
    book.shutdown_framework("fw-2")
    look("shutdown fw-2")
    book.forget_updates()
    look("updates forgotten")
    book.kill_task(FW, "unknown", None)
    look("kill of an unknown task")
    setup.book._agent_info.id.value = "agent-2"
    look("new agent id")

    for (step, version, report), (_, before_version, before_report) in zip(
            steps[1:], steps, strict=False):
        if report != before_report:
            assert version != before_version, step


def test_a_reconnection_with_nothing_to_resend_wakes_nothing(setup: Setup) -> None:
    task = run(setup, "t1")
    setup.book.update(task, mesos_pb2.TASK_RUNNING)
    setup.book.synced(1)
    setup.ack_all()
    setup.wakes.clear()
    assert setup.book.reconnected() == []
    assert setup.wakes == []
    setup.book.update(task, mesos_pb2.TASK_FINISHED)
    setup.book.synced(1)
    setup.wakes.clear()
    assert [p.status.state for p in setup.book.reconnected()] == [mesos_pb2.TASK_FINISHED]
    assert setup.wakes
