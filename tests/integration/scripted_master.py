"""A scripted master for SchedulerDriver tests: a real gRPC server on a free 127.0.0.1 port
whose every Subscribe and call the test answers itself, the event builders the tests push,
and a scheduler that records its callbacks (tests/integration/test_sdk_driver.py).

    driver ── Subscribe ──▶ ScriptedMaster ──▶ PendingSubscribe ──▶ the test accepts it (an
                                                                    EventStream it pushes
                                                                    events into, ends, breaks
                                                                    or leaves silent) or
                                                                    refuses it (status code,
                                                                    `mesos-leader`)
    driver ── Send ───────▶ ScriptedMaster ──▶ `calls` (with metadata); may answer an error
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import grpc.aio

from frameworks import Scheduler, SchedulerDriver
from mesos_runtime.channels import LEADER_METADATA_KEY, STREAM_ID_METADATA_KEY
from mesos_values.addresses import HostPort
from protos import mesos_pb2, scheduler_pb2, scheduler_pb2_grpc

Call = scheduler_pb2.Call
Event = scheduler_pb2.Event
StatusCode = grpc.StatusCode
Context = grpc.aio.ServicerContext[Any, Any]
WAIT = 5.0


@dataclass(frozen=True)
class Received:
    """A call as the master received it, with its invocation metadata and the number of
    earlier calls the master had not answered yet when it arrived."""

    call: scheduler_pb2.Call
    metadata: dict[str, str]
    in_flight: int = 0

    @property
    def stream_id(self) -> str | None:
        return self.metadata.get(STREAM_ID_METADATA_KEY)


def _received(request: scheduler_pb2.Call, context: Context, in_flight: int = 0) -> Received:
    metadata = {
        key: value.decode() if isinstance(value, bytes) else value
        for key, value in context.invocation_metadata() or ()
    }
    return Received(request, metadata, in_flight)


@dataclass(frozen=True)
class Failure:
    """A gRPC error status, naming a leader in trailing metadata when `leader` is set."""

    code: grpc.StatusCode
    details: str
    leader: str | None = None

    async def abort(self, context: Context) -> NoReturn:
        trailing = () if self.leader is None else ((LEADER_METADATA_KEY, self.leader),)
        await context.abort(self.code, self.details, trailing_metadata=trailing)


class EventStream:
    """An accepted subscription: push events into it, end it (OK) or break it (an error)."""

    def __init__(self, stream_id: str, cancelled: asyncio.Event) -> None:
        self.stream_id = stream_id
        self.cancelled = cancelled  # the driver cancelled the RPC
        self._items: asyncio.Queue[Event | Failure | None] = asyncio.Queue()

    def push(self, *events: Event) -> None:
        for event in events:
            self._items.put_nowait(event)

    def end(self) -> None:
        self._items.put_nowait(None)

    def break_off(self, code: grpc.StatusCode = StatusCode.UNAVAILABLE) -> None:
        self._items.put_nowait(Failure(code, "the stream broke"))

    async def next_item(self) -> Event | Failure | None:
        return await self._items.get()

    async def wait_cancelled(self) -> None:
        await asyncio.wait_for(self.cancelled.wait(), WAIT)


class PendingSubscribe:
    """A Subscribe the master holds (sends nothing) until the test accepts or refuses it."""

    def __init__(self, received: Received, stream_id: str) -> None:
        self.received = received
        self.cancelled = asyncio.Event()  # the driver cancelled the RPC
        self._stream_id = stream_id
        self._answer: asyncio.Future[EventStream | Failure] = (
            asyncio.get_running_loop().create_future()
        )

    def accept(self, framework_id: str = "fw1", heartbeat: float = 15.0,
               stream_id: str | None = None) -> EventStream:
        """Open the stream (under `stream_id`, default a fresh one); SUBSCRIBED (announcing
        `heartbeat` seconds) is its first event."""
        stream = EventStream(self._stream_id if stream_id is None else stream_id, self.cancelled)
        stream.push(subscribed(framework_id, heartbeat))
        self._answer.set_result(stream)
        return stream

    def refuse(self, code: grpc.StatusCode, details: str, leader: str | None = None) -> None:
        self._answer.set_result(Failure(code, details, leader))

    async def answer(self) -> EventStream | Failure:
        return await self._answer


class ScriptedMaster(scheduler_pb2_grpc.SchedulerServicer):
    """A Scheduler service the test drives; `address` is where it listens."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.address = HostPort("127.0.0.1", 0)
        self.subscribes: asyncio.Queue[PendingSubscribe] = asyncio.Queue()
        self.calls: asyncio.Queue[Received] = asyncio.Queue()
        self.send_failures: list[Failure] = []
        self.refuse_all: Failure | None = None  # answer every Subscribe at once with this
        self.gates: dict[int, asyncio.Event] = {}  # Send of these call types waits for the gate
        self._streams = 0
        self._in_flight = 0

    async def next_subscribe(self) -> PendingSubscribe:
        return await asyncio.wait_for(self.subscribes.get(), WAIT)

    async def accept(self, framework_id: str = "fw1", heartbeat: float = 15.0) -> EventStream:
        """Accept the next Subscribe."""
        return (await self.next_subscribe()).accept(framework_id, heartbeat)

    async def next_call(self) -> Received:
        return await asyncio.wait_for(self.calls.get(), WAIT)

    async def Subscribe(
        self, request: scheduler_pb2.Call, context: Context
    ) -> AsyncIterator[scheduler_pb2.Event]:
        self._streams += 1
        pending = PendingSubscribe(_received(request, context), f"{self.name}-{self._streams}")
        self.subscribes.put_nowait(pending)
        try:
            if self.refuse_all is not None:
                await self.refuse_all.abort(context)
            answer = await pending.answer()
            if isinstance(answer, Failure):
                await answer.abort(context)
            await context.send_initial_metadata(((STREAM_ID_METADATA_KEY, answer.stream_id),))
            while (item := await answer.next_item()) is not None:
                if isinstance(item, Failure):
                    await item.abort(context)
                yield item
        except asyncio.CancelledError:
            pending.cancelled.set()
            raise

    async def Send(self, request: scheduler_pb2.Call, context: Context) -> scheduler_pb2.Response:
        self.calls.put_nowait(_received(request, context, self._in_flight))
        self._in_flight += 1
        try:
            gate = self.gates.get(request.type)
            if gate is not None:
                await gate.wait()
            if self.send_failures:
                await self.send_failures.pop(0).abort(context)
            return scheduler_pb2.Response()
        finally:
            self._in_flight -= 1


@contextlib.asynccontextmanager
async def serving(name: str, port: int = 0) -> AsyncIterator[ScriptedMaster]:
    """A ScriptedMaster on 127.0.0.1:`port` (0: a free port)."""
    master = ScriptedMaster(name)
    server = grpc.aio.server()
    scheduler_pb2_grpc.add_SchedulerServicer_to_server(master, server)
    port = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    master.address = HostPort("127.0.0.1", port)
    try:
        yield master
    finally:
        await server.stop(None)


# ------------------------------------------------------------------------- events


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


def call_type(received: Received) -> str:
    return Call.Type.Name(received.call.type)


# ---------------------------------------------------------------------- scheduler


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
