"""The master core tells its observers of each change as it records it (the hook behind the
operator API's SUBSCRIBE stream)."""

from __future__ import annotations

from mesos_master.records import AgentRecord, FrameworkRecord, TaskRecord
from protos import mesos_pb2
from tests.unit.test_master import Cluster, agent_status, task


class RecordingObserver:
    """Notes each notification with the state the record had when it came."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.is_closed = False

    def task_added(self, task: TaskRecord) -> None:
        self.seen.append(("task_added", f"{task.task_id}:{mesos_pb2.TaskState.Name(task.state)}"))

    def task_updated(self, task: TaskRecord) -> None:
        self.seen.append(
            ("task_updated", f"{task.task_id}:{mesos_pb2.TaskState.Name(task.state)}"))

    def agent_added(self, agent: AgentRecord) -> None:
        self.seen.append(("agent_added", agent.info.hostname))

    def agent_removed(self, agent: AgentRecord) -> None:
        self.seen.append(("agent_removed", agent.info.hostname))

    def framework_added(self, framework: FrameworkRecord) -> None:
        self.seen.append(("framework_added", framework.info.name))

    def framework_updated(self, framework: FrameworkRecord) -> None:
        self.seen.append(("framework_updated", framework.info.name))

    def framework_removed(self, framework: FrameworkRecord) -> None:
        self.seen.append(("framework_removed", framework.info.name))

    def closed(self) -> None:
        self.is_closed = True

    def take(self) -> list[tuple[str, str]]:
        seen, self.seen = self.seen, []
        return seen


def test_observers_hear_agents_frameworks_and_task_states_as_they_change() -> None:
    cluster = Cluster(agent_ping_timeout=1.0, max_agent_ping_timeouts=1)
    observer = RecordingObserver()
    cluster.master.observers.add(observer)

    agent_id = cluster.add_agent(hostname="h1")
    framework = cluster.subscribe("web", failover_timeout=0)
    assert observer.take() == [("agent_added", "h1"), ("framework_added", "web")]

    cluster.launch(framework, cluster.offers(framework), task("t1"))
    assert observer.take() == [("task_added", "t1:TASK_STAGING")]
    for state in (mesos_pb2.TASK_RUNNING, mesos_pb2.TASK_KILLING, mesos_pb2.TASK_KILLED):
        cluster.master.status_update(
            agent_id, framework.framework_id, agent_status(framework, "t1", state, b"u%d" % state))
    assert observer.take() == [("task_updated", "t1:TASK_RUNNING"),
                               ("task_updated", "t1:TASK_KILLING"),
                               ("task_updated", "t1:TASK_KILLED")]

    cluster.launch(framework, cluster.offers(framework), task("t2"))
    cluster.master.status_update(agent_id, framework.framework_id,
                                 agent_status(framework, "t2", mesos_pb2.TASK_RUNNING, b"r"))
    observer.take()
    cluster.clock.advance(5.0)
    cluster.master.tick()  # the agent missed its heartbeats
    assert observer.take() == [("task_updated", "t2:TASK_UNREACHABLE"), ("agent_removed", "h1")]

    cluster.master.framework_disconnected(framework.framework_id, framework.stream_id)
    assert observer.take() == [("framework_removed", "web")]

    cluster.master.close_streams()
    assert observer.is_closed
    assert len(cluster.master.observers) == 0


def test_a_removed_observer_hears_nothing_more() -> None:
    cluster = Cluster()
    observer = RecordingObserver()
    cluster.master.observers.add(observer)
    cluster.add_agent(hostname="h1")
    cluster.master.observers.remove(observer)
    cluster.add_agent(hostname="h2")
    assert observer.take() == [("agent_added", "h1")]
