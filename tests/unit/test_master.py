"""The master's state machine, driven directly with a fake clock and recording outboxes."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import pytest

from mesos_master.config import MasterConfig
from mesos_master.errors import ErrorCode, MasterError
from mesos_master.master import Master
from mesos_master.offers import MAX_OFFERS_PER_EVENT
from mesos_master.records import FrameworkRecord
from mesos_master.registry import ImmediateSink, RegistryState
from mesos_runtime.clock import FakeClock
from mesos_values.resources import Resources
from protos import agent_pb2, mesos_pb2, scheduler_pb2

T = TypeVar("T")
EventType = scheduler_pb2.Event.Type
Capability = mesos_pb2.FrameworkInfo.Capability


@dataclass
class RecordingOutbox(Generic[T]):
    messages: list[T] = field(default_factory=list)
    closed: bool = False

    def send(self, message: T) -> None:
        assert not self.closed, "sent on a closed stream"
        self.messages.append(message)

    def close(self) -> None:
        self.closed = True

    def take(self) -> list[T]:
        taken, self.messages = self.messages, []
        return taken


class Cluster:
    """A master plus helpers to act as agents and schedulers."""

    def __init__(
        self,
        *,
        sink: ImmediateSink | None = None,
        recovered: RegistryState | None = None,
        wall_clock: FakeClock | None = None,
        **config: object,
    ) -> None:
        self.clock = FakeClock()
        self.sink = sink or ImmediateSink()
        self.wall = wall_clock or FakeClock(start=1_700_000_000.0)
        self.master = Master(
            mesos_pb2.MasterInfo(id="m1", hostname="localhost", address="127.0.0.1", port=5050),
            self.clock,
            MasterConfig(**config),  # type: ignore[arg-type]
            registry=self.sink,
            recovered=recovered,
            wall_clock=self.wall.now,
        )
        self.agent_outboxes: dict[str, RecordingOutbox[agent_pb2.MasterMessage]] = {}
        self.framework_outboxes: dict[str, RecordingOutbox[scheduler_pb2.Event]] = {}

    def add_agent(self, resources: str = "cpus:4;mem:4096", hostname: str = "h1") -> str:
        outbox: RecordingOutbox[agent_pb2.MasterMessage] = RecordingOutbox()
        info = mesos_pb2.AgentInfo(
            hostname=hostname, resources=Resources.parse(resources).to_proto()
        )
        agent_id = self.master.register_agent(info, outbox)
        assert outbox.take()[0].registered.agent_id.value == agent_id
        self.agent_outboxes[agent_id] = outbox
        return agent_id

    def subscribe(self, name: str = "fw", **fields: object) -> FrameworkRecord:
        outbox: RecordingOutbox[scheduler_pb2.Event] = RecordingOutbox()
        info = mesos_pb2.FrameworkInfo(name=name, user="u", **fields)  # type: ignore[arg-type]
        framework_id, _ = self.master.subscribe(info, outbox)
        assert outbox.take()[0].type == EventType.SUBSCRIBED
        self.framework_outboxes[framework_id] = outbox
        return self.master.frameworks[framework_id]

    def events(self, framework: FrameworkRecord) -> list[scheduler_pb2.Event]:
        return self.framework_outboxes[framework.framework_id].take()

    def offers(self, framework: FrameworkRecord) -> list[mesos_pb2.Offer]:
        self.master.allocate()
        return [
            o for e in self.events(framework) if e.type == EventType.OFFERS for o in e.offers.offers
        ]

    def updates(self, framework: FrameworkRecord) -> list[mesos_pb2.TaskStatus]:
        return [e.update.status for e in self.events(framework) if e.type == EventType.UPDATE]

    def launch(
        self,
        framework: FrameworkRecord,
        offers: list[mesos_pb2.Offer],
        *tasks: mesos_pb2.TaskInfo,
        refuse_seconds: float | None = None,
    ) -> None:
        operation = mesos_pb2.Offer.Operation(
            type=mesos_pb2.Offer.Operation.LAUNCH,
            launch=mesos_pb2.Offer.Operation.Launch(task_infos=tasks),
        )
        filters = mesos_pb2.Filters()
        if refuse_seconds is not None:
            filters.refuse_seconds = refuse_seconds
        self.master.accept(framework, [o.id.value for o in offers], [operation], filters)


def task(
    task_id: str, resources: str = "cpus:1;mem:128", cmd: str = "sleep 10"
) -> mesos_pb2.TaskInfo:
    return mesos_pb2.TaskInfo(
        name=task_id,
        task_id=mesos_pb2.TaskID(value=task_id),
        resources=Resources.parse(resources).to_proto(),
        command=mesos_pb2.CommandInfo(value=cmd),
    )


def agent_status(
    framework: FrameworkRecord, task_id: str, state: int, uuid: bytes
) -> mesos_pb2.TaskStatus:
    return mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value=task_id),
        state=state,
        uuid=uuid,  # type: ignore[arg-type]
        source=mesos_pb2.TaskStatus.SOURCE_EXECUTOR,
    )


def test_offer_launch_and_unused_resources_return() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent("cpus:4;mem:4096")
    framework = cluster.subscribe()
    [offer] = cluster.offers(framework)
    assert Resources.from_proto(offer.resources) == Resources.parse("cpus:4;mem:4096")
    assert offer.hostname == "h1"

    cluster.launch(framework, [offer], task("t1", "cpus:1;mem:1024"), refuse_seconds=0)
    [run] = cluster.agent_outboxes[agent_id].take()
    assert run.run_task.task.task_id.value == "t1"
    assert run.run_task.task.agent_id.value == agent_id
    assert run.run_task.framework_info.id.value == framework.framework_id

    [again] = cluster.offers(framework)  # the unused part comes straight back (no filter)
    assert Resources.from_proto(again.resources) == Resources.parse("cpus:3;mem:3072")


def test_offers_for_many_agents_are_split_into_events_of_bounded_size() -> None:
    cluster = Cluster()
    agents = 2 * MAX_OFFERS_PER_EVENT + 1
    agent_ids = {cluster.add_agent("cpus:1;mem:128", hostname=f"h{i}") for i in range(agents)}
    framework = cluster.subscribe()
    cluster.master.allocate()
    events = cluster.events(framework)
    assert [event.type for event in events] == [EventType.OFFERS] * 3
    assert [len(event.offers.offers) for event in events] == [
        MAX_OFFERS_PER_EVENT, MAX_OFFERS_PER_EVENT, 1
    ]
    offers = [offer for event in events for offer in event.offers.offers]
    assert {offer.agent_id.value for offer in offers} == agent_ids
    assert {offer.id.value for offer in offers} == set(cluster.master.offers.outstanding)
    assert len(cluster.master.offers.outstanding) == agents


def test_decline_filters_for_refuse_seconds() -> None:
    cluster = Cluster()
    cluster.add_agent()
    framework = cluster.subscribe()
    [offer] = cluster.offers(framework)
    cluster.master.decline(framework, [offer.id.value], mesos_pb2.Filters(refuse_seconds=10))
    assert cluster.offers(framework) == []
    cluster.clock.advance(10.5)
    assert len(cluster.offers(framework)) == 1


@pytest.mark.parametrize("filters", [
    mesos_pb2.Filters(), mesos_pb2.Filters(refuse_seconds=-1),
    mesos_pb2.Filters(refuse_seconds=math.nan), mesos_pb2.Filters(refuse_seconds=math.inf),
    mesos_pb2.Filters(refuse_seconds=1e308),
], ids=["absent", "negative", "nan", "inf", "1e308"])
def test_decline_defaults_to_five_seconds(filters: mesos_pb2.Filters) -> None:
    """As Mesos does, the default also stands in for a value that is not a duration."""
    cluster = Cluster()
    cluster.add_agent()
    framework = cluster.subscribe()
    [offer] = cluster.offers(framework)
    cluster.master.decline(framework, [offer.id.value], filters)
    cluster.clock.advance(4.9)
    assert cluster.offers(framework) == []
    cluster.clock.advance(0.2)
    assert len(cluster.offers(framework)) == 1


@pytest.mark.parametrize(
    ("tasks", "expected_state", "reason_fragment"),
    [
        ([task("big", "cpus:8;mem:128")], mesos_pb2.TASK_ERROR, "more resources"),
        ([task("a"), task("a")], mesos_pb2.TASK_ERROR, "already used"),
        ([task("")], mesos_pb2.TASK_ERROR, "task id is empty"),
        ([task("x/y")], mesos_pb2.TASK_ERROR, "must not"),
        ([task("nores", "")], mesos_pb2.TASK_ERROR, "no resources"),
    ],
    ids=["exceeds-offer", "duplicate-id", "empty-id", "slash-in-id", "no-resources"],
)
def test_invalid_launches_are_answered_with_reasons(
    tasks: list[mesos_pb2.TaskInfo], expected_state: int, reason_fragment: str
) -> None:
    cluster = Cluster()
    cluster.add_agent("cpus:4;mem:4096")
    framework = cluster.subscribe()
    offers = cluster.offers(framework)
    cluster.launch(framework, offers, *tasks)
    bad = [u for u in cluster.updates(framework) if u.state == expected_state]
    assert bad, "no update for the invalid task"
    assert all(u.reason == mesos_pb2.TaskStatus.REASON_TASK_INVALID for u in bad)
    assert reason_fragment in bad[-1].message
    assert all(u.source == mesos_pb2.TaskStatus.SOURCE_MASTER and not u.uuid for u in bad)


def test_unknown_offer_drops_tasks_with_reason() -> None:
    cluster = Cluster()
    cluster.add_agent()
    framework = cluster.subscribe()
    [offer] = cluster.offers(framework)
    cluster.launch(framework, [offer], task("t1"))
    cluster.updates(framework)
    cluster.launch(framework, [offer], task("t2"))  # the offer was used already
    [update] = cluster.updates(framework)
    assert update.state == mesos_pb2.TASK_LOST
    assert update.reason == mesos_pb2.TaskStatus.REASON_INVALID_OFFERS
    assert "no longer valid" in update.message


def test_offers_from_several_agents_are_refused_and_partition_aware_get_dropped() -> None:
    cluster = Cluster()
    first, second = cluster.add_agent(hostname="a"), cluster.add_agent(hostname="b")
    framework = cluster.subscribe(
        capabilities=[mesos_pb2.FrameworkInfo.Capability(type=Capability.PARTITION_AWARE)]
    )
    offers = cluster.offers(framework)
    assert {o.agent_id.value for o in offers} == {first, second}
    cluster.launch(framework, offers, task("t1"))
    [update] = cluster.updates(framework)
    assert update.state == mesos_pb2.TASK_DROPPED
    assert "several agents" in update.message
    assert cluster.agent_outboxes[first].take() == []
    assert len(cluster.offers(framework)) == 2  # both offers were recovered without a filter


def test_status_updates_forwarded_acknowledged_and_resources_recovered() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent("cpus:1;mem:128")
    framework = cluster.subscribe()
    cluster.launch(framework, cluster.offers(framework), task("t1", "cpus:1;mem:128"))
    cluster.agent_outboxes[agent_id].take()
    assert cluster.offers(framework) == []  # everything is in use

    cluster.master.status_update(
        agent_id,
        framework.framework_id,
        agent_status(framework, "t1", mesos_pb2.TASK_RUNNING, b"u1"),
    )
    [running] = cluster.updates(framework)
    assert running.state == mesos_pb2.TASK_RUNNING and running.uuid == b"u1"
    cluster.master.tasks.acknowledge(framework, agent_id, "t1", b"u1")
    [ack] = cluster.agent_outboxes[agent_id].take()
    assert ack.status_update_acknowledgement.uuid == b"u1"

    cluster.master.status_update(
        agent_id,
        framework.framework_id,
        agent_status(framework, "t1", mesos_pb2.TASK_FINISHED, b"u2"),
    )
    assert cluster.updates(framework)[0].state == mesos_pb2.TASK_FINISHED
    assert len(cluster.offers(framework)) == 1  # the finished task's resources are offered again
    assert "t1" in framework.tasks
    cluster.master.tasks.acknowledge(framework, agent_id, "t1", b"u2")
    assert "t1" not in framework.tasks  # an acknowledged terminal task is forgotten


def test_batched_acknowledgements_apply_each_and_report_the_first_refusal() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent("cpus:2;mem:128")
    framework = cluster.subscribe()
    cluster.launch(framework, cluster.offers(framework),
                   task("t1", "cpus:1;mem:64"), task("t2", "cpus:1;mem:64"))
    cluster.agent_outboxes[agent_id].take()
    for task_id, uuid in (("t1", b"u1"), ("t2", b"u2")):
        cluster.master.status_update(
            agent_id, framework.framework_id,
            agent_status(framework, task_id, mesos_pb2.TASK_FINISHED, uuid),
        )
    with pytest.raises(MasterError, match="unknown agent 'nowhere'"):
        cluster.master.tasks.acknowledge_all(framework, [
            (agent_id, "t1", b"u1"), ("nowhere", "t9", b"u9"), (agent_id, "t2", b"u2"),
        ])
    acks = cluster.agent_outboxes[agent_id].take()
    assert [a.status_update_acknowledgement.uuid for a in acks] == [b"u1", b"u2"]
    assert "t1" not in framework.tasks and "t2" not in framework.tasks


def test_missed_heartbeats_make_tasks_lost_and_agent_lost() -> None:
    cluster = Cluster(agent_ping_timeout=1.0, max_agent_ping_timeouts=3)
    agent_id = cluster.add_agent()
    plain = cluster.subscribe("plain")
    aware = cluster.subscribe(
        "aware", capabilities=[mesos_pb2.FrameworkInfo.Capability(type=Capability.PARTITION_AWARE)]
    )
    for framework, task_id in ((plain, "p1"), (aware, "a1")):
        offers = cluster.offers(framework)
        if offers:
            cluster.launch(framework, offers, task(task_id), refuse_seconds=0)
        cluster.master.allocate()
    launched = {m.run_task.task.task_id.value for m in cluster.agent_outboxes[agent_id].take()}
    assert launched == {"p1", "a1"}
    cluster.events(plain), cluster.events(aware)

    cluster.clock.advance(2.0)
    cluster.master.agent_heartbeat(agent_id)
    cluster.clock.advance(2.9)
    cluster.master.tick()
    assert cluster.master.agents[agent_id].reachable  # 2.9 s of silence < 3 x 1 s

    cluster.clock.advance(0.2)
    cluster.master.tick()
    assert not cluster.master.agents[agent_id].reachable
    plain_events, aware_events = cluster.events(plain), cluster.events(aware)
    [lost] = [e.update.status for e in plain_events if e.type == EventType.UPDATE]
    assert lost.state == mesos_pb2.TASK_LOST and lost.task_id.value == "p1"
    [unreachable] = [e.update.status for e in aware_events if e.type == EventType.UPDATE]
    assert unreachable.state == mesos_pb2.TASK_UNREACHABLE
    assert any(
        e.type == EventType.FAILURE and e.failure.agent_id.value == agent_id for e in plain_events
    )


def test_reregistering_agent_keeps_its_tasks() -> None:
    cluster = Cluster(agent_ping_timeout=1.0, max_agent_ping_timeouts=1)
    agent_id = cluster.add_agent()
    framework = cluster.subscribe()
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    cluster.clock.advance(1.5)
    cluster.master.tick()
    cluster.events(framework)

    outbox: RecordingOutbox[agent_pb2.MasterMessage] = RecordingOutbox()
    info = cluster.master.agents[agent_id].info
    running = mesos_pb2.Task(
        task_id=mesos_pb2.TaskID(value="t1"),
        framework_id=framework.info.id,
        agent_id=info.id,
        state=mesos_pb2.TASK_RUNNING,
        resources=Resources.parse("cpus:1;mem:128").to_proto(),
    )
    cluster.master.reregister_agent(
        agent_pb2.AgentMessage.Reregister(
            agent_info=info, tasks=[running], frameworks=[framework.info]
        ),
        outbox,
    )
    assert outbox.take()[0].HasField("reregistered")
    assert cluster.master.agents[agent_id].reachable
    assert framework.tasks["t1"].state == mesos_pb2.TASK_RUNNING
    [update] = cluster.updates(framework)
    assert update.state == mesos_pb2.TASK_RUNNING
    [offer] = cluster.offers(framework)  # the running task's resources are not offered again
    assert Resources.from_proto(offer.resources) == Resources.parse("cpus:3;mem:3968")


def test_task_unknown_to_reregistering_agent_is_lost() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    framework = cluster.subscribe()
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    info = cluster.master.agents[agent_id].info
    cluster.master.reregister_agent(
        agent_pb2.AgentMessage.Reregister(agent_info=info), RecordingOutbox()
    )
    [update] = cluster.updates(framework)
    assert update.state == mesos_pb2.TASK_LOST
    assert "t1" not in framework.tasks


def test_offer_timeout_rescinds() -> None:
    cluster = Cluster(offer_timeout=2.0)
    cluster.add_agent()
    framework = cluster.subscribe()
    [offer] = cluster.offers(framework)
    cluster.clock.advance(2.0)
    cluster.master.tick()
    [rescind] = cluster.events(framework)
    assert rescind.type == EventType.RESCIND and rescind.rescind.offer_id == offer.id
    assert len(cluster.offers(framework)) == 1  # rescinded resources carry no filter


def test_agent_disconnect_rescinds_offers() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    framework = cluster.subscribe()
    cluster.offers(framework)
    cluster.master.agent_disconnected(agent_id, cluster.agent_outboxes[agent_id])
    assert [e.type for e in cluster.events(framework)] == [EventType.RESCIND]
    assert cluster.master.agents[agent_id].reachable  # not unreachable until heartbeats are missed


def test_failover_timeout_removes_framework_and_kills_tasks() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    framework = cluster.subscribe(failover_timeout=30)
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    cluster.agent_outboxes[agent_id].take()
    cluster.master.framework_disconnected(framework.framework_id, framework.stream_id)
    cluster.clock.advance(29)
    cluster.master.tick()
    assert framework.framework_id in cluster.master.frameworks
    cluster.clock.advance(1)
    cluster.master.tick()
    assert framework.framework_id not in cluster.master.frameworks
    [shutdown] = cluster.agent_outboxes[agent_id].take()
    assert shutdown.shutdown_framework.framework_id.value == framework.framework_id
    with pytest.raises(MasterError) as refused:
        cluster.master.subscribe(framework.info, RecordingOutbox())
    assert refused.value.code == ErrorCode.FAILED_PRECONDITION


def test_resubscribe_within_failover_timeout_keeps_tasks() -> None:
    cluster = Cluster()
    cluster.add_agent()
    framework = cluster.subscribe(failover_timeout=30)
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    cluster.master.framework_disconnected(framework.framework_id, framework.stream_id)
    cluster.clock.advance(10)
    outbox: RecordingOutbox[scheduler_pb2.Event] = RecordingOutbox()
    framework_id, stream_id = cluster.master.subscribe(framework.info, outbox)
    assert framework_id == framework.framework_id
    assert outbox.messages[0].subscribed.framework_id.value == framework_id
    assert "t1" in cluster.master.check_stream(framework_id, stream_id).tasks


def test_stream_id_must_match() -> None:
    cluster = Cluster()
    framework = cluster.subscribe()
    with pytest.raises(MasterError) as refused:
        cluster.master.check_stream(framework.framework_id, "not-the-stream")
    assert refused.value.code == ErrorCode.PERMISSION_DENIED


def test_reconcile_explicit_and_implicit() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    framework = cluster.subscribe()
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    cluster.master.tasks.reconcile(framework, [])
    [implicit] = cluster.updates(framework)
    assert implicit.state == mesos_pb2.TASK_STAGING
    assert implicit.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION and not implicit.uuid

    cluster.master.tasks.reconcile(
        framework, [("t1", agent_id), ("ghost", agent_id), ("other", "")]
    )
    states = {u.task_id.value: u.state for u in cluster.updates(framework)}
    assert states == {
        "t1": mesos_pb2.TASK_STAGING,
        "ghost": mesos_pb2.TASK_LOST,
        "other": mesos_pb2.TASK_LOST,
    }


def test_kill_known_and_unknown_tasks() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    framework = cluster.subscribe()
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    cluster.agent_outboxes[agent_id].take()
    cluster.master.tasks.kill(framework, "t1", None)
    [kill] = cluster.agent_outboxes[agent_id].take()
    assert kill.kill_task.task_id.value == "t1"
    cluster.master.tasks.kill(framework, "nope", None)
    [update] = cluster.updates(framework)
    assert update.state == mesos_pb2.TASK_LOST and update.task_id.value == "nope"
    assert update.timestamp == cluster.wall.now()  # the injected wall clock, not the real one


def test_reconciliation_answers_carry_the_injected_wall_time() -> None:
    cluster = Cluster()
    cluster.add_agent()
    framework = cluster.subscribe()
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    cluster.wall.advance(42.0)
    cluster.master.tasks.reconcile(framework, [])
    [answer] = cluster.updates(framework)
    assert answer.task_id.value == "t1" and answer.timestamp == cluster.wall.now()


def test_teardown_shuts_framework_down_on_agents() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    framework = cluster.subscribe()
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    cluster.agent_outboxes[agent_id].take()
    cluster.master.teardown(framework)
    [shutdown] = cluster.agent_outboxes[agent_id].take()
    assert shutdown.HasField("shutdown_framework")
    assert cluster.framework_outboxes[framework.framework_id].closed


def test_removed_frameworks_are_kept_with_their_tasks_up_to_the_limits() -> None:
    cluster = Cluster(max_completed_frameworks=2, max_completed_tasks_per_framework=1)
    cluster.add_agent()
    removed = []
    for number in range(3):
        framework = cluster.subscribe()
        cluster.launch(framework, cluster.offers(framework), task(f"t{number}a"),
                       task(f"t{number}b"))
        cluster.master.teardown(framework)
        removed.append(framework.framework_id)
    kept = list(cluster.master.completed_frameworks)
    assert [f.framework_id for f in kept] == removed[1:]  # the oldest went first
    [last] = kept[-1].completed_tasks  # one task kept per framework
    assert last.state == mesos_pb2.TASK_KILLED and not kept[-1].tasks
    assert last.latest_status is not None
    assert last.latest_status.reason == mesos_pb2.TaskStatus.REASON_FRAMEWORK_REMOVED
    assert last.latest_status.message == "Framework removed"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"name": ""}, "name is required"),
        ({"name": "x", "failover_timeout": -1}, "must be a number of seconds from 0"),
        ({"name": "x", "failover_timeout": math.nan}, "nan must be a number of seconds"),
        ({"name": "x", "failover_timeout": math.inf}, "inf must be a number of seconds"),
        ({"name": "x", "failover_timeout": 1e308}, "to 9223372037"),
        ({"name": "x", "roles": ["a b"]}, "whitespace"),
        ({"name": "x", "roles": ["a", "a"]}, "more than once"),
        ({"name": "x", "roles": ["a/../b"]}, "invalid component"),
    ],
    ids=["no-name", "negative-failover", "nan-failover", "inf-failover", "huge-failover",
         "role-space", "duplicate-role", "role-dotdot"],
)
def test_invalid_framework_info_is_refused(fields: dict[str, object], fragment: str) -> None:
    cluster = Cluster()
    with pytest.raises(MasterError) as refused:
        cluster.master.subscribe(mesos_pb2.FrameworkInfo(**fields), RecordingOutbox())  # type: ignore[arg-type]
    assert refused.value.code == ErrorCode.INVALID_ARGUMENT
    assert fragment in refused.value.message


def test_drf_paper_example_through_the_master() -> None:
    """DRF paper: <9 cpus, 18 GB>; A's tasks <1, 4>, B's <3, 1>; each takes one task per offer."""
    cluster = Cluster()
    cluster.add_agent("cpus:9;mem:18432")
    frameworks = {"A": cluster.subscribe("A"), "B": cluster.subscribe("B")}
    shapes = {"A": "cpus:1;mem:4096", "B": "cpus:3;mem:1024"}
    launched = {"A": 0, "B": 0}
    progressed = True
    while progressed:  # until no framework receives an offer any more
        cluster.master.allocate()
        progressed = False
        for name, framework in frameworks.items():
            for event in cluster.events(framework):
                for offer in event.offers.offers:
                    progressed = True
                    if Resources.from_proto(offer.resources).contains(
                        Resources.parse(shapes[name])
                    ):
                        launched[name] += 1
                        cluster.launch(
                            framework,
                            [offer],
                            task(f"{name}{launched[name]}", shapes[name]),
                            refuse_seconds=0,
                        )
                    else:  # what is left does not fit: refuse it for good
                        cluster.master.decline(
                            framework, [offer.id.value], mesos_pb2.Filters(refuse_seconds=3600)
                        )
    assert launched == {"A": 3, "B": 2}


def test_counters_count_each_task_once_in_its_terminal_state() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent("cpus:4;mem:4096")
    framework = cluster.subscribe()
    offers = cluster.offers(framework)
    cluster.launch(framework, offers, task("ok"), task("bad"), task("big", "cpus:8;mem:64"))
    counters = cluster.master.counters
    assert counters.terminal_tasks[mesos_pb2.TASK_ERROR] == 1  # refused launch of "big"

    def update(task_id: str, state: int, uuid: bytes) -> None:
        cluster.master.status_update(
            agent_id, framework.framework_id, agent_status(framework, task_id, state, uuid)
        )

    update("ok", mesos_pb2.TASK_RUNNING, b"r1")
    update("ok", mesos_pb2.TASK_FINISHED, b"f1")
    update("ok", mesos_pb2.TASK_FINISHED, b"f1")  # the agent retries until acknowledged
    update("bad", mesos_pb2.TASK_FAILED, b"f2")
    update("ghost", mesos_pb2.TASK_RUNNING, b"g1")  # a task the master does not know
    assert counters.terminal_tasks[mesos_pb2.TASK_FINISHED] == 1
    assert counters.terminal_tasks[mesos_pb2.TASK_FAILED] == 1
    assert counters.terminal_tasks[mesos_pb2.TASK_RUNNING] == 0  # only terminal states count
    assert (counters.valid_status_updates, counters.invalid_status_updates) == (4, 1)
    assert counters.agent_registrations == 1


def test_refused_launches_on_invalid_offers_count_as_lost_or_dropped() -> None:
    cluster = Cluster()
    cluster.add_agent()
    framework = cluster.subscribe()
    [offer] = cluster.offers(framework)
    cluster.launch(framework, [offer], task("t1"))
    cluster.launch(framework, [offer], task("t2"), task("t3"))  # the offer was used already
    assert cluster.master.counters.terminal_tasks[mesos_pb2.TASK_LOST] == 2


def test_acknowledged_terminal_tasks_move_to_completed_tasks() -> None:
    cluster = Cluster()
    agent_id = cluster.add_agent()
    framework = cluster.subscribe()
    cluster.launch(framework, cluster.offers(framework), task("t1"))
    cluster.master.status_update(
        agent_id, framework.framework_id,
        agent_status(framework, "t1", mesos_pb2.TASK_KILLED, b"k1"),
    )
    assert list(framework.completed_tasks) == []  # not acknowledged yet: still a task
    cluster.master.tasks.acknowledge(framework, agent_id, "t1", b"k1")
    assert [t.task_id for t in framework.completed_tasks] == ["t1"]
    assert framework.completed_tasks[0].state == mesos_pb2.TASK_KILLED
    assert cluster.master.counters.terminal_tasks[mesos_pb2.TASK_KILLED] == 1


def test_agents_marked_unreachable_and_reregistrations_are_counted() -> None:
    cluster = Cluster(agent_ping_timeout=1.0, max_agent_ping_timeouts=1)
    agent_id = cluster.add_agent()
    cluster.clock.advance(1.5)
    cluster.master.tick()
    counters = cluster.master.counters
    assert counters.agents_marked_unreachable == 1
    info = cluster.master.agents[agent_id].info
    cluster.master.reregister_agent(
        agent_pb2.AgentMessage.Reregister(agent_info=info), RecordingOutbox()
    )
    assert (counters.agent_registrations, counters.agent_reregistrations) == (1, 1)
