"""SchedulerDriver against scripted masters: real gRPC servers on loopback.

Each test starts private `ScriptedMaster` gRPC servers (tests/integration/scripted_master.py)
on free 127.0.0.1 ports and points an unmodified driver (its real gRPC transport) at them.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
import pytest

from frameworks import DriverStatus, Scheduler, SchedulerDriver
from protos import mesos_pb2, scheduler_pb2
from tests.integration.scripted_master import (
    WAIT,
    EventStream,
    Failure,
    Received,
    Recorder,
    ScriptedMaster,
    call_type,
    offers_event,
    serving,
    task,
    update_event,
)

pytestmark = pytest.mark.integration

Call = scheduler_pb2.Call
Event = scheduler_pb2.Event
StatusCode = grpc.StatusCode
Context = grpc.aio.ServicerContext[Any, Any]


# ----------------------------------------------------------------------- fixtures

MakeDriver = Callable[..., SchedulerDriver]


@pytest.fixture
async def master() -> AsyncIterator[ScriptedMaster]:
    async with serving("m1") as scripted:
        yield scripted


@pytest.fixture
async def make_driver(master: ScriptedMaster) -> AsyncIterator[MakeDriver]:
    """Drivers pointed at `master` (or the master given); aborted and joined afterwards."""
    drivers: list[SchedulerDriver] = []

    def make(scheduler: Scheduler, at: ScriptedMaster | None = None,
             **kwargs: Any) -> SchedulerDriver:
        address = str((at or master).address)
        driver = SchedulerDriver(scheduler, {"name": "test", "user": "u"}, address, **kwargs)
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.abort()
        await asyncio.wait_for(driver.join(), WAIT)


@dataclass(frozen=True)
class Connected:
    scheduler: Recorder
    driver: SchedulerDriver
    stream: EventStream
    subscribe: Received


@pytest.fixture
async def running(master: ScriptedMaster, make_driver: MakeDriver) -> Connected:
    """A driver subscribed as fw1 whose `registered` callback has run."""
    scheduler = Recorder()
    driver = make_driver(scheduler)
    assert await driver.start() is DriverStatus.RUNNING
    pending = await master.next_subscribe()
    stream = pending.accept()
    await scheduler.expect("registered")
    return Connected(scheduler, driver, stream, pending.received)


# -------------------------------------------------------------------------- tests


async def test_registers_and_sends_calls_in_order_with_stream_id(
    running: Connected, master: ScriptedMaster
) -> None:
    driver, first = running.driver, running.subscribe
    assert call_type(first) == "SUBSCRIBE"
    assert first.call.subscribe.framework_info.name == "test"
    assert not first.call.subscribe.framework_info.id.value
    assert driver.framework_id == mesos_pb2.FrameworkID(value="fw1")
    driver.launch_tasks("o1", [task("t1")])
    driver.decline_offer(["o2", "o3"], filters=10)
    driver.kill_task("t1", "a1")
    driver.reconcile_tasks([])
    driver.send_framework_message("e1", "a1", b"hi")
    sent = [await master.next_call() for _ in range(5)]
    assert [call_type(received) for received in sent] == [
        "ACCEPT", "DECLINE", "KILL", "RECONCILE", "MESSAGE"
    ]
    assert {received.stream_id for received in sent} == {running.stream.stream_id}
    assert all(received.call.framework_id.value == "fw1" for received in sent)
    assert sent[1].call.decline.filters.refuse_seconds == 10.0
    assert sent[0].call.accept.operations[0].launch.task_infos[0].task_id.value == "t1"


async def test_callbacks_receive_each_event_type(running: Connected) -> None:
    scheduler = running.scheduler
    running.stream.push(
        offers_event("o1", "o2"),
        Event(type=Event.RESCIND, rescind=Event.Rescind(offer_id=mesos_pb2.OfferID(value="o1"))),
        Event(type=Event.MESSAGE, message=Event.Message(
            agent_id=mesos_pb2.AgentID(value="a1"),
            executor_id=mesos_pb2.ExecutorID(value="e1"), data=b"x")),
        Event(type=Event.FAILURE, failure=Event.Failure(
            agent_id=mesos_pb2.AgentID(value="a1"),
            executor_id=mesos_pb2.ExecutorID(value="e1"), status=3)),
        Event(type=Event.FAILURE, failure=Event.Failure(agent_id=mesos_pb2.AgentID(value="a2"))),
        Event(type=Event.HEARTBEAT),
        update_event("t1", mesos_pb2.TASK_RUNNING),
    )
    (offers,) = await scheduler.expect("resource_offers")
    assert [offer.id.value for offer in offers] == ["o1", "o2"]
    assert (await scheduler.expect("offer_rescinded"))[0].value == "o1"
    executor_id, agent_id, data = await scheduler.expect("framework_message")
    assert (executor_id.value, agent_id.value, data) == ("e1", "a1", b"x")
    executor_id, agent_id, status = await scheduler.expect("executor_lost")
    assert (executor_id.value, agent_id.value, status) == ("e1", "a1", 3)
    assert (await scheduler.expect("agent_lost"))[0].value == "a2"
    (update,) = await scheduler.expect("status_update")  # the heartbeat caused no callback
    assert (update.task_id.value, update.state) == ("t1", mesos_pb2.TASK_RUNNING)


async def test_a_batch_event_is_handled_as_its_events_in_order(
    running: Connected, master: ScriptedMaster
) -> None:
    scheduler = running.scheduler
    running.stream.push(Event(type=Event.BATCH, batch=Event.Batch(events=[
        update_event("t1", mesos_pb2.TASK_RUNNING, uuid=b"u1"),
        offers_event("o1"),
        update_event("t2", mesos_pb2.TASK_FINISHED, uuid=b"u2"),
    ])))
    (first,) = await scheduler.expect("status_update")
    (offers,) = await scheduler.expect("resource_offers")
    (second,) = await scheduler.expect("status_update")
    assert (first.task_id.value, [o.id.value for o in offers], second.task_id.value) == (
        "t1", ["o1"], "t2")
    acknowledged: list[tuple[str, bytes]] = []
    while len(acknowledged) < 2:  # one ACKNOWLEDGE call each, or both merged into one
        ack = await master.next_call()
        assert call_type(ack) == "ACKNOWLEDGE"
        acknowledged += [(a.task_id.value, a.uuid)
                         for a in (ack.call.acknowledge, *ack.call.acknowledgements)]
    assert acknowledged == [("t1", b"u1"), ("t2", b"u2")]


async def test_events_beyond_grpc_default_size_limit_arrive(running: Connected) -> None:
    event = offers_event("o1")
    event.offers.offers[0].hostname = "h" * (5 * 2**20)  # gRPC refuses over 4 MiB by default
    running.stream.push(event)
    (offers,) = await running.scheduler.expect("resource_offers")
    assert len(offers[0].hostname) == 5 * 2**20


async def test_implicit_acknowledgement_only_for_updates_with_uuid(
    running: Connected, master: ScriptedMaster
) -> None:
    scheduler, driver = running.scheduler, running.driver
    running.stream.push(
        update_event("t0", mesos_pb2.TASK_LOST),  # master-generated: no uuid
        update_event("t1", mesos_pb2.TASK_RUNNING, uuid=b"u1"),
    )
    await scheduler.expect("status_update")
    await scheduler.expect("status_update")
    ack = await master.next_call()
    assert call_type(ack) == "ACKNOWLEDGE"
    assert (ack.call.acknowledge.task_id.value, ack.call.acknowledge.uuid) == ("t1", b"u1")
    assert (ack.call.acknowledge.agent_id.value, ack.stream_id) == ("a1", running.stream.stream_id)
    driver.revive_offers()  # the next call proves no second ACKNOWLEDGE was queued
    assert call_type(await master.next_call()) == "REVIVE"


async def test_acknowledgements_do_not_wait_behind_unanswered_calls(
    running: Connected, master: ScriptedMaster
) -> None:
    scheduler, driver = running.scheduler, running.driver
    master.gates[Call.ACCEPT] = accept_answered = asyncio.Event()
    driver.launch_tasks("o1", [task("t1")])
    driver.revive_offers()
    assert call_type(await master.next_call()) == "ACCEPT"  # held by the master
    running.stream.push(update_event("t0", mesos_pb2.TASK_RUNNING, uuid=b"u0"))
    await scheduler.expect("status_update")
    ack = await master.next_call()
    assert (call_type(ack), ack.call.acknowledge.uuid, ack.in_flight) == (
        "ACKNOWLEDGE", b"u0", 1
    )
    assert master.calls.empty()  # REVIVE still waits for the ACCEPT's answer: order is kept
    accept_answered.set()
    revive = await master.next_call()
    assert (call_type(revive), revive.in_flight) == ("REVIVE", 0)


async def test_acknowledgement_window_does_not_hold_other_calls(
    master: ScriptedMaster, make_driver: MakeDriver
) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler)
    driver._acknowledgement_window = 2  # at most 2 ACKNOWLEDGE calls in flight
    await driver.start()
    stream = await master.accept()
    await scheduler.expect("registered")
    master.gates[Call.ACKNOWLEDGE] = acks_answered = asyncio.Event()
    stream.push(*(
        update_event(f"t{index}", mesos_pb2.TASK_RUNNING, uuid=f"u{index}".encode())
        for index in range(3)
    ))
    for _ in range(3):
        await scheduler.expect("status_update")
    first_two = [await master.next_call() for _ in range(2)]
    assert [call_type(received) for received in first_two] == ["ACKNOWLEDGE"] * 2
    driver.kill_task("t9")
    kill = await master.next_call()  # not held by the full window
    assert (call_type(kill), kill.in_flight) == ("KILL", 2)
    assert master.calls.empty()  # the third ACKNOWLEDGE waits for room in the window
    asyncio.get_running_loop().call_later(0.1, acks_answered.set)
    third = await master.next_call()
    assert call_type(third) == "ACKNOWLEDGE"
    assert third.in_flight < 2
    uuids = {received.call.acknowledge.uuid for received in [*first_two, third]}
    assert uuids == {b"u0", b"u1", b"u2"}


async def test_stop_sends_pending_acknowledgements_before_teardown(
    master: ScriptedMaster, make_driver: MakeDriver
) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler, implicit_acknowledgements=False)
    await driver.start()
    stream = await master.accept()
    await scheduler.expect("registered")
    stream.push(update_event("t1", mesos_pb2.TASK_FINISHED, uuid=b"u1"))
    (status,) = await scheduler.expect("status_update")
    master.gates[Call.ACKNOWLEDGE] = ack_answered = asyncio.Event()
    driver.acknowledge_status_update(status)
    assert call_type(await master.next_call()) == "ACKNOWLEDGE"  # held by the master
    driver.stop()
    # A driver that did not wait would send TEARDOWN while the acknowledgement is held.
    asyncio.get_running_loop().call_later(0.1, ack_answered.set)
    teardown = await master.next_call()
    assert (call_type(teardown), teardown.in_flight) == ("TEARDOWN", 0)
    assert await driver.join() is DriverStatus.STOPPED


async def test_no_acknowledgement_when_the_callback_raises(
    master: ScriptedMaster, make_driver: MakeDriver
) -> None:
    class Failing(Recorder):
        def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
            self._record("status_update", status)
            raise RuntimeError("boom")

    scheduler = Failing()
    driver = make_driver(scheduler)
    await driver.start()
    stream = await master.accept()
    await scheduler.expect("registered")
    stream.push(update_event("t1", mesos_pb2.TASK_RUNNING, uuid=b"u1"))
    await scheduler.expect("status_update")
    driver.suppress_offers()
    assert call_type(await master.next_call()) == "SUPPRESS"
    driver.stop()
    assert call_type(await master.next_call()) == "TEARDOWN"
    assert await driver.join() is DriverStatus.STOPPED


async def test_explicit_acknowledgements(
    master: ScriptedMaster, make_driver: MakeDriver
) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler, implicit_acknowledgements=False)
    await driver.start()
    stream = await master.accept()
    await scheduler.expect("registered")
    stream.push(update_event("t1", mesos_pb2.TASK_RUNNING, uuid=b"u1"))
    (status,) = await scheduler.expect("status_update")
    driver.suppress_offers()
    assert call_type(await master.next_call()) == "SUPPRESS"  # nothing acknowledged yet
    driver.acknowledge_status_update(status)
    ack = await master.next_call()
    assert (call_type(ack), ack.call.acknowledge.uuid) == ("ACKNOWLEDGE", b"u1")
    assert driver.abort() is DriverStatus.ABORTED
    assert await driver.join() is DriverStatus.ABORTED
    await stream.wait_cancelled()


async def test_async_callbacks_are_awaited_and_may_call_the_driver(
    master: ScriptedMaster, make_driver: MakeDriver
) -> None:
    class AsyncScheduler(Scheduler):
        async def resource_offers(self, driver: SchedulerDriver,
                                  offers: list[mesos_pb2.Offer]) -> None:
            await asyncio.sleep(0)
            driver.launch_tasks([offer.id for offer in offers], [task("t1")])

    driver = make_driver(AsyncScheduler())
    await driver.start()
    stream = await master.accept()
    stream.push(offers_event("o1"))
    accept = await master.next_call()
    assert call_type(accept) == "ACCEPT"
    assert [offer_id.value for offer_id in accept.call.accept.offer_ids] == ["o1"]
    assert accept.call.accept.operations[0].launch.task_infos[0].task_id.value == "t1"


@pytest.mark.parametrize("how", ["ended", "broken"])
async def test_a_lost_stream_resubscribes_with_framework_id(
    running: Connected, master: ScriptedMaster, how: str
) -> None:
    scheduler, driver = running.scheduler, running.driver
    if how == "ended":
        running.stream.end()
    else:
        running.stream.break_off(StatusCode.UNAVAILABLE)
    await scheduler.expect("disconnected")
    pending = await master.next_subscribe()
    framework_info = pending.received.call.subscribe.framework_info
    assert (framework_info.id.value, framework_info.name) == ("fw1", "test")
    second = pending.accept()
    assert second.stream_id != running.stream.stream_id
    await scheduler.expect("reregistered")
    driver.revive_offers()
    revive = await master.next_call()
    assert revive.call == Call(
        type=Call.REVIVE, framework_id=mesos_pb2.FrameworkID(value="fw1"), revive=Call.Revive()
    )
    assert revive.stream_id == second.stream_id


async def test_missing_heartbeats_break_the_connection(
    master: ScriptedMaster, make_driver: MakeDriver
) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler)
    await driver.start()
    silent = await master.accept(heartbeat=0.05)  # then nothing: 3 x 0.05 s without an event
    await scheduler.expect("registered")
    await scheduler.expect("disconnected")
    await silent.wait_cancelled()  # the driver let go of the silent stream
    pending = await master.next_subscribe()
    assert pending.received.call.subscribe.framework_info.id.value == "fw1"
    pending.accept()
    await scheduler.expect("reregistered")
    assert driver.status is DriverStatus.RUNNING


async def test_an_unanswered_subscribe_is_cancelled_and_retried(
    master: ScriptedMaster, make_driver: MakeDriver
) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler)
    driver._subscribe_timeout = 0.2  # the master's answer is overdue after 0.2 s
    await driver.start()
    unanswered = await master.next_subscribe()
    await asyncio.wait_for(unanswered.cancelled.wait(), WAIT)  # not left open on the master
    (await master.next_subscribe()).accept()
    await scheduler.expect("registered")


async def test_a_stream_without_stream_id_is_dropped_and_retried(
    master: ScriptedMaster, make_driver: MakeDriver
) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler)
    await driver.start()
    nameless = (await master.next_subscribe()).accept(stream_id="")
    await nameless.wait_cancelled()
    pending = await master.next_subscribe()
    assert not pending.received.call.subscribe.framework_info.id.value
    stream = pending.accept()
    await scheduler.expect("registered")  # the stream without an id did not count
    driver.kill_task("t1")
    assert (await master.next_call()).stream_id == stream.stream_id


async def test_the_driver_reaches_a_master_restarted_on_the_same_port(
    make_driver: MakeDriver
) -> None:
    scheduler = Recorder()
    async with serving("before") as before:
        driver = make_driver(scheduler, at=before)
        await driver.start()
        await before.accept()
        await scheduler.expect("registered")
    await scheduler.expect("disconnected")  # the server went away with the stream

    attempts: asyncio.Queue[None] = asyncio.Queue()

    def refuse_connection(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        attempts.put_nowait(None)
        writer.close()

    port = before.address.port
    dead = await asyncio.start_server(refuse_connection, "127.0.0.1", port)
    # The driver keeps trying at its own pace (about 1 s for these 4 attempts), not at gRPC's
    # default reconnect backoff (1 s growing by 1.6x to 120 s: over 4 s for 4 attempts).
    async with dead, asyncio.timeout(3.0):
        for _ in range(4):
            await attempts.get()
    async with serving("after", port) as after:
        pending = await after.next_subscribe()
        assert pending.received.call.subscribe.framework_info.id.value == "fw1"
        stream = pending.accept()
        await scheduler.expect("reregistered")
        driver.kill_task("t1")
        assert (await after.next_call()).stream_id == stream.stream_id


async def test_calls_while_disconnected(running: Connected, master: ScriptedMaster) -> None:
    scheduler, driver = running.scheduler, running.driver
    running.stream.end()
    await scheduler.expect("disconnected")
    (await master.next_subscribe()).refuse(StatusCode.UNAVAILABLE, "down")
    held = await master.next_subscribe()  # unanswered: the driver stays disconnected
    driver.launch_tasks("o1", [task("t1"), task("t2")])
    driver.decline_offer("o2")
    driver.kill_task("t9")
    dropped = [(await scheduler.expect("status_update"))[0] for _ in range(2)]
    assert [(s.task_id.value, mesos_pb2.TaskState.Name(s.state)) for s in dropped] == [
        ("t1", "TASK_DROPPED"), ("t2", "TASK_DROPPED")
    ]
    assert master.calls.empty()
    second = held.accept()
    await scheduler.expect("reregistered")
    kill = await master.next_call()  # the launch and decline were never sent
    assert (call_type(kill), kill.call.kill.task_id.value) == ("KILL", "t9")
    assert kill.stream_id == second.stream_id


async def test_send_errors_go_to_error_callback_and_retryable_ones_are_retried(
    running: Connected, master: ScriptedMaster
) -> None:
    scheduler, driver = running.scheduler, running.driver
    master.send_failures = [Failure(StatusCode.INVALID_ARGUMENT, "no such role"),
                            Failure(StatusCode.UNAVAILABLE, "try again")]
    driver.revive_offers("nope")
    driver.kill_task("t1")
    (message,) = await scheduler.expect("error")
    assert "REVIVE refused by the master: INVALID_ARGUMENT: no such role" in message
    received = [await master.next_call() for _ in range(3)]
    assert [call_type(r) for r in received] == ["REVIVE", "KILL", "KILL"]  # one retry
    assert received[0].call.revive.roles == ["nope"]
    assert {r.stream_id for r in received} == {running.stream.stream_id}
    assert driver.status is DriverStatus.RUNNING
    assert scheduler.calls.empty()


async def test_error_event_aborts(running: Connected) -> None:
    scheduler, driver = running.scheduler, running.driver
    running.stream.push(Event(type=Event.ERROR, error=Event.Error(message="framework removed")))
    assert await scheduler.expect("error") == ("framework removed",)
    assert await driver.join() is DriverStatus.ABORTED
    await running.stream.wait_cancelled()
    assert driver.kill_task("t1") is DriverStatus.ABORTED


@pytest.mark.parametrize("code", [StatusCode.INVALID_ARGUMENT, StatusCode.PERMISSION_DENIED])
async def test_refused_subscription_aborts(
    master: ScriptedMaster, make_driver: MakeDriver, code: grpc.StatusCode
) -> None:
    scheduler = Recorder()
    driver = make_driver(scheduler)
    await driver.start()
    (await master.next_subscribe()).refuse(code, "bad role")
    (message,) = await scheduler.expect("error")
    assert f"{code.name}: bad role" in message
    assert await driver.join() is DriverStatus.ABORTED
    assert master.subscribes.empty()


async def test_unavailable_subscription_follows_the_named_leader(
    master: ScriptedMaster, make_driver: MakeDriver
) -> None:
    async with serving("m2") as leader:
        scheduler = Recorder()
        driver = make_driver(scheduler)
        await driver.start()
        (await master.next_subscribe()).refuse(StatusCode.UNAVAILABLE, "no leader yet", "")
        (await master.next_subscribe()).refuse(
            StatusCode.UNAVAILABLE, "not the leader", str(leader.address)
        )
        stream = await leader.accept()
        await scheduler.expect("registered")
        driver.reconcile_tasks([])
        reconcile = await leader.next_call()
        assert (call_type(reconcile), reconcile.stream_id) == ("RECONCILE", stream.stream_id)
        assert master.subscribes.empty()
        assert master.calls.empty()


async def test_stop_sends_earlier_calls_then_teardown(
    running: Connected, master: ScriptedMaster
) -> None:
    driver = running.driver
    driver.kill_task("t1")
    assert await driver.stop() is DriverStatus.STOPPED
    assert driver.kill_task("t2") is DriverStatus.STOPPED  # refused after stop
    sent = [await master.next_call() for _ in range(2)]
    assert [call_type(received) for received in sent] == ["KILL", "TEARDOWN"]
    assert sent[1].call.framework_id.value == "fw1"
    assert sent[1].stream_id == running.stream.stream_id
    assert await driver.join() is DriverStatus.STOPPED
    assert master.calls.empty()
    await running.stream.wait_cancelled()


async def test_stop_for_failover_sends_no_teardown(
    running: Connected, master: ScriptedMaster
) -> None:
    driver = running.driver
    driver.suppress_offers()
    driver.stop(failover=True)
    assert await driver.join() is DriverStatus.STOPPED
    assert call_type(await master.next_call()) == "SUPPRESS"
    assert master.calls.empty()
    await running.stream.wait_cancelled()


@pytest.mark.parametrize("master_answer", ["none", "unavailable"])
async def test_stop_before_subscribing_finishes(
    master: ScriptedMaster, make_driver: MakeDriver, master_answer: str
) -> None:
    if master_answer == "unavailable":
        master.refuse_all = Failure(StatusCode.UNAVAILABLE, "down")
    driver = make_driver(Recorder())
    await driver.start()
    driver.reconcile_tasks([])  # waits for a subscription that never comes
    await master.next_subscribe()
    driver.stop()
    assert await asyncio.wait_for(driver.join(), WAIT) is DriverStatus.STOPPED
    assert master.calls.empty()


async def test_plain_script_mode_runs_on_a_thread(master: ScriptedMaster) -> None:
    """run() blocks its thread; sync callbacks and other threads may call the driver."""
    updates: queue.Queue[str] = queue.Queue()
    callers: list[threading.Thread] = []

    class Script(Scheduler):
        def registered(self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
                       master_info: mesos_pb2.MasterInfo) -> None:
            caller = threading.Thread(target=driver.kill_task, args=("from-thread",))
            callers.append(caller)
            caller.start()

        def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
            updates.put(status.task_id.value)
            driver.stop()

    driver = SchedulerDriver(Script(), mesos_pb2.FrameworkInfo(name="s"), str(master.address))
    async with asyncio.TaskGroup() as group:
        run = group.create_task(asyncio.to_thread(driver.run))
        try:
            stream = await master.accept()
            kill = await master.next_call()
            assert (call_type(kill), kill.call.kill.task_id.value) == ("KILL", "from-thread")
            stream.push(update_event("t1", mesos_pb2.TASK_FINISHED, uuid=b"u"))
            teardown = await master.next_call()
            assert (call_type(teardown), teardown.stream_id) == ("TEARDOWN", stream.stream_id)
            assert await asyncio.wait_for(asyncio.shield(run), WAIT) is DriverStatus.STOPPED
        finally:
            driver.abort()  # unblocks run() if the script went wrong; no-op once stopped
    assert updates.get_nowait() == "t1"
    assert await asyncio.to_thread(driver.join) is DriverStatus.STOPPED  # blocking join
    for caller in callers:
        caller.join(WAIT)


async def test_run_inside_a_loop_is_refused() -> None:
    driver = SchedulerDriver(Recorder(), {"name": "x"}, "127.0.0.1:5050")
    with pytest.raises(RuntimeError, match=r"await driver\.start"):
        driver.run()
    assert driver.status is DriverStatus.NOT_STARTED


def test_bad_master_addresses_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="a path is required"):
        SchedulerDriver(Scheduler(), {"name": "x"}, "zk://127.0.0.1:2181")
    with pytest.raises(ValueError, match="HOST:PORT"):
        SchedulerDriver(Scheduler(), {"name": "x"}, "nonsense")


def test_not_started_driver() -> None:
    driver = SchedulerDriver(Scheduler(), {"name": "x"})
    assert driver.join() is DriverStatus.NOT_STARTED
    assert driver.launch_tasks("o1", []) is DriverStatus.NOT_STARTED
    assert driver.stop() is DriverStatus.NOT_STARTED
    assert driver.framework_id is None
