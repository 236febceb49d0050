"""SchedulerDriver behaviour against an in-memory master (no network).

`FakeMaster` stands in for the gRPC transport: tests push events into the open stream and read
the calls the driver sent, with the stream id each carried.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest

from frameworks import DriverStatus, Scheduler, SchedulerDriver
from frameworks._transport import CallError, MasterTransport, Subscription
from mesos_common.addresses import HostPort
from protos import mesos_pb2, scheduler_pb2

Call = scheduler_pb2.Call
Event = scheduler_pb2.Event
WAIT = 5.0


class FakeStream:
    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.items: asyncio.Queue[Event | CallError | None] = asyncio.Queue()
        self.cancelled = False

    async def next_event(self) -> Event | None:
        item = await self.items.get()
        if isinstance(item, CallError):
            raise item
        return item

    def cancel(self) -> None:
        self.cancelled = True

    def push(self, event: Event) -> None:
        self.items.put_nowait(event)

    def end(self) -> None:
        self.items.put_nowait(None)


class FakeMaster:
    """Scripted master: answers subscriptions with a new stream (or a queued error)."""

    def __init__(self) -> None:
        self.subscribes: asyncio.Queue[tuple[HostPort, Call]] = asyncio.Queue()
        self.streams: asyncio.Queue[FakeStream] = asyncio.Queue()
        self.sent: asyncio.Queue[tuple[Call, str]] = asyncio.Queue()
        self.subscribe_errors: list[CallError] = []
        self.send_errors: list[CallError] = []
        self._count = 0

    def transport(self, address: HostPort) -> MasterTransport:
        return FakeTransport(self, address)

    async def next_stream(self) -> FakeStream:
        return await asyncio.wait_for(self.streams.get(), WAIT)

    async def next_call(self) -> tuple[Call, str]:
        return await asyncio.wait_for(self.sent.get(), WAIT)

    async def accept_subscription(self, framework_id: str = "fw1",
                                  heartbeat: float = 15.0) -> FakeStream:
        stream = await self.next_stream()
        stream.push(subscribed(framework_id, heartbeat))
        return stream

    def _open(self, address: HostPort, call: Call) -> FakeStream:
        self.subscribes.put_nowait((address, call))
        if self.subscribe_errors:
            raise self.subscribe_errors.pop(0)
        self._count += 1
        stream = FakeStream(f"stream-{self._count}")
        self.streams.put_nowait(stream)
        return stream


class FakeTransport:
    def __init__(self, master: FakeMaster, address: HostPort) -> None:
        self.master = master
        self.address = address

    async def subscribe(self, call: Call) -> Subscription:
        return self.master._open(self.address, call)

    async def send(self, call: Call, stream_id: str) -> None:
        if self.master.send_errors:
            raise self.master.send_errors.pop(0)
        self.master.sent.put_nowait((call, stream_id))

    async def close(self) -> None:
        return None


def subscribed(framework_id: str, heartbeat: float = 15.0) -> Event:
    return Event(type=Event.SUBSCRIBED, subscribed=Event.Subscribed(
        framework_id=mesos_pb2.FrameworkID(value=framework_id),
        heartbeat_interval_seconds=heartbeat,
        master_info=mesos_pb2.MasterInfo(id="m1", address="127.0.0.1", port=5050),
    ))


def offers_event(*offer_ids: str) -> Event:
    event = Event(type=Event.OFFERS)
    for offer_id in offer_ids:
        event.offers.offers.add(id=mesos_pb2.OfferID(value=offer_id),
                                agent_id=mesos_pb2.AgentID(value="a1"))
    return event


def update_event(task_id: str, state: mesos_pb2.TaskState.ValueType, uuid: bytes = b"") -> Event:
    return Event(type=Event.UPDATE, update=Event.Update(status=mesos_pb2.TaskStatus(
        task_id=mesos_pb2.TaskID(value=task_id), agent_id=mesos_pb2.AgentID(value="a1"),
        state=state, uuid=uuid,
    )))


def task(task_id: str) -> mesos_pb2.TaskInfo:
    return mesos_pb2.TaskInfo(task_id=mesos_pb2.TaskID(value=task_id),
                              agent_id=mesos_pb2.AgentID(value="a1"))


class Recorder(Scheduler):
    """Records every callback as (name, args) on an asyncio queue."""

    def __init__(self) -> None:
        self.calls: asyncio.Queue[tuple[str, tuple[Any, ...]]] = asyncio.Queue()

    def _record(self, name: str, *args: Any) -> None:
        self.calls.put_nowait((name, args))

    async def expect(self, name: str) -> tuple[Any, ...]:
        """The arguments of the next callback, which must be `name`."""
        got, args = await asyncio.wait_for(self.calls.get(), WAIT)
        assert got == name, f"expected {name}, got {got}{args}"
        return args

    def registered(self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
                   master_info: mesos_pb2.MasterInfo) -> None:
        self._record("registered", framework_id, master_info)

    def reregistered(self, driver: SchedulerDriver, master_info: mesos_pb2.MasterInfo) -> None:
        self._record("reregistered", master_info)

    def disconnected(self, driver: SchedulerDriver) -> None:
        self._record("disconnected")

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        self._record("resource_offers", offers)

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: mesos_pb2.OfferID) -> None:
        self._record("offer_rescinded", offer_id)

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        self._record("status_update", status)

    def framework_message(self, driver: SchedulerDriver, executor_id: mesos_pb2.ExecutorID,
                          agent_id: mesos_pb2.AgentID, data: bytes) -> None:
        self._record("framework_message", executor_id, agent_id, data)

    def agent_lost(self, driver: SchedulerDriver, agent_id: mesos_pb2.AgentID) -> None:
        self._record("agent_lost", agent_id)

    def executor_lost(self, driver: SchedulerDriver, executor_id: mesos_pb2.ExecutorID,
                      agent_id: mesos_pb2.AgentID, status: int | None) -> None:
        self._record("executor_lost", executor_id, agent_id, status)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self._record("error", message)


def make_driver(scheduler: Scheduler, master: FakeMaster, **kwargs: Any) -> SchedulerDriver:
    driver = SchedulerDriver(scheduler, {"name": "test", "user": "u"}, "127.0.0.1:5050", **kwargs)
    driver._open_transport = master.transport
    driver._backoff_cap = 0.01
    return driver


@pytest.fixture
def master() -> FakeMaster:
    return FakeMaster()


@pytest.fixture
async def running(
    master: FakeMaster,
) -> AsyncIterator[tuple[Recorder, SchedulerDriver, FakeStream]]:
    """A driver subscribed as fw1 whose `registered` callback has run."""
    scheduler = Recorder()
    driver = make_driver(scheduler, master)
    assert await driver.start() is DriverStatus.RUNNING
    stream = await master.accept_subscription()
    await scheduler.expect("registered")
    yield scheduler, driver, stream
    driver.abort()
    await driver.join()


async def test_registers_and_sends_calls_in_order_with_stream_id(
    running: tuple[Recorder, SchedulerDriver, FakeStream], master: FakeMaster
) -> None:
    _, driver, _ = running
    assert driver.framework_id == mesos_pb2.FrameworkID(value="fw1")
    driver.launch_tasks("o1", [task("t1")])
    driver.decline_offer(["o2", "o3"], filters=10)
    driver.kill_task("t1", "a1")
    driver.reconcile_tasks([])
    driver.send_framework_message("e1", "a1", b"hi")
    sent = [await master.next_call() for _ in range(5)]
    assert [Call.Type.Name(call.type) for call, _ in sent] == [
        "ACCEPT", "DECLINE", "KILL", "RECONCILE", "MESSAGE"
    ]
    assert {stream_id for _, stream_id in sent} == {"stream-1"}
    assert all(call.framework_id.value == "fw1" for call, _ in sent)
    assert sent[1][0].decline.filters.refuse_seconds == 10.0


async def test_callbacks_receive_each_event_type(
    running: tuple[Recorder, SchedulerDriver, FakeStream]
) -> None:
    scheduler, _, stream = running
    stream.push(offers_event("o1", "o2"))
    stream.push(Event(type=Event.RESCIND, rescind=Event.Rescind(
        offer_id=mesos_pb2.OfferID(value="o1"))))
    stream.push(Event(type=Event.MESSAGE, message=Event.Message(
        agent_id=mesos_pb2.AgentID(value="a1"), executor_id=mesos_pb2.ExecutorID(value="e1"),
        data=b"x")))
    stream.push(Event(type=Event.FAILURE, failure=Event.Failure(
        agent_id=mesos_pb2.AgentID(value="a1"), executor_id=mesos_pb2.ExecutorID(value="e1"),
        status=3)))
    stream.push(Event(type=Event.FAILURE, failure=Event.Failure(
        agent_id=mesos_pb2.AgentID(value="a2"))))
    stream.push(Event(type=Event.HEARTBEAT))
    (offers,) = await scheduler.expect("resource_offers")
    assert [offer.id.value for offer in offers] == ["o1", "o2"]
    assert (await scheduler.expect("offer_rescinded"))[0].value == "o1"
    executor_id, agent_id, data = await scheduler.expect("framework_message")
    assert (executor_id.value, agent_id.value, data) == ("e1", "a1", b"x")
    executor_id, agent_id, status = await scheduler.expect("executor_lost")
    assert (executor_id.value, agent_id.value, status) == ("e1", "a1", 3)
    assert (await scheduler.expect("agent_lost"))[0].value == "a2"


async def test_implicit_acknowledgement_only_for_updates_with_uuid(
    running: tuple[Recorder, SchedulerDriver, FakeStream], master: FakeMaster
) -> None:
    scheduler, driver, stream = running
    stream.push(update_event("t0", mesos_pb2.TASK_LOST))  # master-generated: no uuid
    stream.push(update_event("t1", mesos_pb2.TASK_RUNNING, uuid=b"u1"))
    await scheduler.expect("status_update")
    await scheduler.expect("status_update")
    call, _ = await master.next_call()
    assert call.type == Call.ACKNOWLEDGE
    assert (call.acknowledge.task_id.value, call.acknowledge.uuid) == ("t1", b"u1")
    driver.revive_offers()  # the next call proves no second ACKNOWLEDGE was queued
    assert (await master.next_call())[0].type == Call.REVIVE


async def test_no_acknowledgement_when_the_callback_raises(master: FakeMaster) -> None:
    class Failing(Recorder):
        def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
            self._record("status_update", status)
            raise RuntimeError("boom")

    scheduler = Failing()
    driver = make_driver(scheduler, master)
    await driver.start()
    stream = await master.accept_subscription()
    await scheduler.expect("registered")
    stream.push(update_event("t1", mesos_pb2.TASK_RUNNING, uuid=b"u1"))
    await scheduler.expect("status_update")
    driver.suppress_offers()
    assert (await master.next_call())[0].type == Call.SUPPRESS
    driver.stop()
    assert (await master.next_call())[0].type == Call.TEARDOWN
    assert await driver.join() is DriverStatus.STOPPED


async def test_explicit_acknowledgements(master: FakeMaster) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler, master, implicit_acknowledgements=False)
    await driver.start()
    stream = await master.accept_subscription()
    await scheduler.expect("registered")
    stream.push(update_event("t1", mesos_pb2.TASK_RUNNING, uuid=b"u1"))
    (status,) = await scheduler.expect("status_update")
    driver.suppress_offers()
    assert (await master.next_call())[0].type == Call.SUPPRESS  # nothing acknowledged yet
    driver.acknowledge_status_update(status)
    call, _ = await master.next_call()
    assert (call.type, call.acknowledge.uuid) == (Call.ACKNOWLEDGE, b"u1")
    driver.abort()
    assert await driver.join() is DriverStatus.ABORTED


async def test_async_callbacks_are_awaited_and_may_call_the_driver(master: FakeMaster) -> None:
    class AsyncScheduler(Scheduler):
        async def resource_offers(self, driver: SchedulerDriver,
                                  offers: list[mesos_pb2.Offer]) -> None:
            await asyncio.sleep(0)
            driver.launch_tasks([offer.id for offer in offers], [task("t1")])

    driver = make_driver(AsyncScheduler(), master)
    await driver.start()
    stream = await master.accept_subscription()
    stream.push(offers_event("o1"))
    call, _ = await master.next_call()
    assert call.type == Call.ACCEPT
    assert call.accept.operations[0].launch.task_infos[0].task_id.value == "t1"
    driver.abort()
    await driver.join()


async def test_broken_stream_resubscribes_with_framework_id(
    running: tuple[Recorder, SchedulerDriver, FakeStream], master: FakeMaster
) -> None:
    scheduler, driver, stream = running
    _, first_call = await master.subscribes.get()
    assert not first_call.subscribe.framework_info.id.value
    stream.end()
    await scheduler.expect("disconnected")
    second = await master.accept_subscription()
    _, call = await master.subscribes.get()
    assert call.subscribe.framework_info.id.value == "fw1"
    assert call.subscribe.framework_info.name == "test"
    await scheduler.expect("reregistered")
    driver.revive_offers()
    assert await master.next_call() == (scheduler_pb2.Call(
        type=Call.REVIVE, framework_id=mesos_pb2.FrameworkID(value="fw1"),
        revive=Call.Revive()), second.stream_id)
    assert stream.cancelled


async def test_missing_heartbeats_break_the_connection(master: FakeMaster) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler, master)
    await driver.start()
    await master.accept_subscription(heartbeat=0.02)  # silent: no event within 3 x 0.02 s
    await scheduler.expect("registered")
    await scheduler.expect("disconnected")
    await master.accept_subscription()
    await scheduler.expect("reregistered")
    driver.abort()
    await driver.join()


async def test_calls_while_disconnected(
    running: tuple[Recorder, SchedulerDriver, FakeStream], master: FakeMaster
) -> None:
    scheduler, driver, stream = running
    master.subscribe_errors = [CallError("UNAVAILABLE", "down")] * 2
    stream.end()
    await scheduler.expect("disconnected")
    driver.launch_tasks("o1", [task("t1"), task("t2")])
    driver.decline_offer("o2")
    driver.kill_task("t9")
    dropped = [(await scheduler.expect("status_update"))[0] for _ in range(2)]
    assert [(s.task_id.value, mesos_pb2.TaskState.Name(s.state)) for s in dropped] == [
        ("t1", "TASK_DROPPED"), ("t2", "TASK_DROPPED")
    ]
    second = await master.accept_subscription()
    await scheduler.expect("reregistered")
    call, stream_id = await master.next_call()  # the launch and decline were not sent
    assert (call.type, call.kill.task_id.value, stream_id) == (Call.KILL, "t9", second.stream_id)


async def test_send_errors_go_to_error_callback_and_retryable_ones_are_retried(
    running: tuple[Recorder, SchedulerDriver, FakeStream], master: FakeMaster
) -> None:
    scheduler, driver, _ = running
    master.send_errors = [CallError("INVALID_ARGUMENT", "no such role"),
                          CallError("UNAVAILABLE", "try again")]
    driver.revive_offers("nope")
    driver.kill_task("t1")
    (message,) = await scheduler.expect("error")
    assert "REVIVE refused by the master: INVALID_ARGUMENT: no such role" in message
    call, _ = await master.next_call()
    assert call.type == Call.KILL  # sent after one retry
    assert driver.status is DriverStatus.RUNNING


async def test_error_event_aborts(
    running: tuple[Recorder, SchedulerDriver, FakeStream]
) -> None:
    scheduler, driver, stream = running
    stream.push(Event(type=Event.ERROR, error=Event.Error(message="framework removed")))
    assert await scheduler.expect("error") == ("framework removed",)
    assert await driver.join() is DriverStatus.ABORTED


async def test_refused_subscription_aborts(master: FakeMaster) -> None:
    scheduler = Recorder()
    master.subscribe_errors = [CallError("INVALID_ARGUMENT", "bad role")]
    driver = make_driver(scheduler, master)
    await driver.start()
    (message,) = await scheduler.expect("error")
    assert "INVALID_ARGUMENT: bad role" in message
    assert await driver.join() is DriverStatus.ABORTED


async def test_unavailable_subscription_is_retried_at_the_named_leader(
    master: FakeMaster
) -> None:
    scheduler = Recorder()
    leader = HostPort("127.0.0.2", 5051)
    master.subscribe_errors = [CallError("UNAVAILABLE", "connection refused"),
                               CallError("UNAVAILABLE", "not the leader", leader=leader)]
    driver = make_driver(scheduler, master)
    await driver.start()
    await master.accept_subscription()
    await scheduler.expect("registered")
    addresses = [(await master.subscribes.get())[0] for _ in range(3)]
    assert addresses == [HostPort("127.0.0.1", 5050), HostPort("127.0.0.1", 5050), leader]
    driver.abort()
    await driver.join()


async def test_stop_sends_earlier_calls_then_teardown(
    running: tuple[Recorder, SchedulerDriver, FakeStream], master: FakeMaster
) -> None:
    _, driver, _ = running
    driver.kill_task("t1")
    assert await driver.stop() is DriverStatus.STOPPED
    assert driver.kill_task("t2") is DriverStatus.STOPPED  # refused after stop
    assert [(await master.next_call())[0].type for _ in range(2)] == [Call.KILL, Call.TEARDOWN]
    assert await driver.join() is DriverStatus.STOPPED
    assert master.sent.empty()


async def test_stop_for_failover_sends_no_teardown(
    running: tuple[Recorder, SchedulerDriver, FakeStream], master: FakeMaster
) -> None:
    _, driver, _ = running
    driver.suppress_offers()
    driver.stop(failover=True)
    assert await driver.join() is DriverStatus.STOPPED
    assert (await master.next_call())[0].type == Call.SUPPRESS
    assert master.sent.empty()


async def test_stop_before_subscribing_finishes(master: FakeMaster) -> None:
    master.subscribe_errors = [CallError("UNAVAILABLE", "down")] * 1000
    driver = make_driver(Recorder(), master)
    await driver.start()
    driver.reconcile_tasks([])  # waits for a subscription that never comes
    await master.subscribes.get()
    driver.stop()
    assert await driver.join() is DriverStatus.STOPPED
    assert master.sent.empty()


def test_plain_script_mode_runs_on_a_thread() -> None:
    """run() blocks; sync callbacks and other threads may call the driver."""
    opened: queue.Queue[tuple[FakeMaster, asyncio.AbstractEventLoop]] = queue.Queue()
    updates: queue.Queue[str] = queue.Queue()

    class Script(Scheduler):
        def registered(self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
                       master_info: mesos_pb2.MasterInfo) -> None:
            threading.Thread(target=driver.kill_task, args=("from-thread",)).start()

        def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
            updates.put(status.task_id.value)
            driver.stop()

    driver = SchedulerDriver(Script(), mesos_pb2.FrameworkInfo(name="s"), "127.0.0.1:5050")

    def transport(address: HostPort) -> MasterTransport:
        master = FakeMaster()  # called on the driver's own loop, where the fake must live
        opened.put((master, asyncio.get_running_loop()))
        return master.transport(address)

    driver._open_transport = transport

    async def play_master(master: FakeMaster) -> list[int]:
        stream = await master.accept_subscription()
        kill, _ = await master.next_call()
        stream.push(update_event("t1", mesos_pb2.TASK_FINISHED, uuid=b"u"))
        return [kill.type, (await master.next_call())[0].type]

    results: queue.Queue[list[int]] = queue.Queue()

    def master_side() -> None:
        master, loop = opened.get(timeout=WAIT)
        results.put(asyncio.run_coroutine_threadsafe(play_master(master), loop).result(WAIT))

    helper = threading.Thread(target=master_side)
    helper.start()
    assert driver.run() is DriverStatus.STOPPED
    helper.join(WAIT)
    assert updates.get_nowait() == "t1"
    assert results.get_nowait() == [Call.KILL, Call.TEARDOWN]
    assert driver.join() is DriverStatus.STOPPED


async def test_run_inside_a_loop_is_refused(master: FakeMaster) -> None:
    with pytest.raises(RuntimeError, match=r"await driver\.start"):
        make_driver(Recorder(), master).run()


def test_bad_master_addresses_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="not supported yet"):
        SchedulerDriver(Scheduler(), {"name": "x"}, "zk://127.0.0.1:2181/mesos")
    with pytest.raises(ValueError, match="HOST:PORT"):
        SchedulerDriver(Scheduler(), {"name": "x"}, "nonsense")


def test_not_started_driver() -> None:
    driver = SchedulerDriver(Scheduler(), {"name": "x"})
    assert driver.join() is DriverStatus.NOT_STARTED
    assert driver.launch_tasks("o1", []) is DriverStatus.NOT_STARTED
    assert driver.stop() is DriverStatus.NOT_STARTED
    assert driver.framework_id is None
