"""The agent's master link against scripted gRPC masters: which master it tries next."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from mesos_agent.master_link import MasterLink
from mesos_coordination.detector import MasterDetector
from mesos_runtime.channels import LEADER_METADATA_KEY
from mesos_values.addresses import HostPort
from protos import agent_pb2, agent_pb2_grpc, mesos_pb2

pytestmark = pytest.mark.integration

WAIT = 15.0


def registered(heartbeat_interval: float = 60) -> agent_pb2.MasterMessage:
    """A fake master's answer registering the agent as `agent-1`."""
    return agent_pb2.MasterMessage(registered=agent_pb2.MasterMessage.Registered(
        agent_id=mesos_pb2.AgentID(value="agent-1"),
        heartbeat_interval_seconds=heartbeat_interval))


class ScriptedMaster(agent_pb2_grpc.AgentLinkServicer):
    """Answers its first `refusals` Connect calls with UNAVAILABLE (naming `leader` when
    given, as a master that does not lead does; without any leader metadata otherwise, as
    gRPC reports a master it cannot reach), then registers the agent."""

    def __init__(self, refusals: int, leader: str | None = None) -> None:
        self.refusals = refusals
        self.leader = leader
        self.calls = 0

    async def Connect(
        self, request_iterator: AsyncIterator[agent_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[agent_pb2.MasterMessage]:
        self.calls += 1
        await anext(aiter(request_iterator))
        if self.calls <= self.refusals:
            if self.leader is not None:
                context.set_trailing_metadata(((LEADER_METADATA_KEY, self.leader),))
            await context.abort(grpc.StatusCode.UNAVAILABLE, "refused by the script")
        yield registered()
        async for _message in request_iterator:
            pass


class ElectionDetector:
    """Names `old` until asked for a leader other than it, then `new` (what a ZooKeeper
    detector does once it has seen the election)."""

    def __init__(self, old: HostPort, new: HostPort) -> None:
        self.old, self.new = old, new

    async def detect(self, previous: HostPort | None = None) -> HostPort:
        return self.old if previous is None else self.new

    async def leader_other_than(self, previous: HostPort) -> HostPort:
        if self.new == previous:
            await asyncio.get_running_loop().create_future()  # no other is named: waits
        return self.new

    async def close(self) -> None:
        return None


class Handler:
    def __init__(self) -> None:
        self.registered_event = asyncio.Event()

    def registered(self, message: agent_pb2.MasterMessage) -> None:
        self.registered_event.set()

    def received(self, message: agent_pb2.MasterMessage) -> None:
        pass

    def disconnected(self) -> None:
        pass

    async def refused(self, reason: str, *, reregistering: bool) -> None:
        pass


async def serve(servicer: agent_pb2_grpc.AgentLinkServicer) -> tuple[grpc.aio.Server, HostPort]:
    server = grpc.aio.server()
    agent_pb2_grpc.add_AgentLinkServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, HostPort("127.0.0.1", port)


def start_link(detector: MasterDetector) -> tuple[MasterLink, Handler, asyncio.Task[None]]:
    """A link with short backoffs, running, and the handler of what it reports."""
    handler = Handler()
    link = MasterLink(detector, handler,
                      lambda: agent_pb2.AgentMessage(register=agent_pb2.AgentMessage.Register()),
                      initial_backoff=0.01, max_backoff=0.05)
    return link, handler, asyncio.create_task(link.run())


@contextlib.asynccontextmanager
async def registered_link(
    detector: MasterDetector, *servers: grpc.aio.Server
) -> AsyncIterator[MasterLink]:
    """A running link once it has registered with one of `servers` (all stopped after)."""
    link, handler, running = start_link(detector)
    try:
        async with asyncio.timeout(WAIT):
            await handler.registered_event.wait()
        yield link
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        for server in servers:
            await server.stop(None)


async def test_a_stale_hint_to_an_unreachable_master_is_not_followed() -> None:
    # The old leader's connection breaks; the detector then names the new leader, which has
    # not yet seen its own election and still names the old one.
    old_master = ScriptedMaster(refusals=10)
    old_server, old = await serve(old_master)
    new_master = ScriptedMaster(refusals=1, leader=str(old))
    new_server, new = await serve(new_master)
    async with registered_link(ElectionDetector(old, new), old_server, new_server) as link:
        assert link.leader == new
        assert new_master.calls == 2
        assert old_master.calls == 1  # the hint back to it was not followed


async def test_a_hint_to_a_master_not_known_unreachable_is_followed() -> None:
    leader_master = ScriptedMaster(refusals=0)
    leader_server, leader = await serve(leader_master)
    standby_master = ScriptedMaster(refusals=10, leader=str(leader))
    standby_server, standby = await serve(standby_master)
    detector = ElectionDetector(standby, standby)
    async with registered_link(detector, leader_server, standby_server) as link:
        assert link.leader == leader
        assert (standby_master.calls, leader_master.calls) == (1, 1)


class EndingMaster(agent_pb2_grpc.AgentLinkServicer):
    """Registers the agent, then closes the stream when `end` is set."""

    def __init__(self) -> None:
        self.end = asyncio.Event()

    async def Connect(
        self, request_iterator: AsyncIterator[agent_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[agent_pb2.MasterMessage]:
        await anext(aiter(request_iterator))
        yield registered()
        await self.end.wait()


class CountingDetector:
    """Always names `master`; `asked` is set on every question."""

    def __init__(self, master: HostPort) -> None:
        self.master = master
        self.asked = asyncio.Event()

    async def detect(self, previous: HostPort | None = None) -> HostPort:
        self.asked.set()
        return self.master

    async def leader_other_than(self, previous: HostPort) -> HostPort:
        self.asked.set()
        if self.master == previous:
            await asyncio.get_running_loop().create_future()  # no other is named: waits
        return self.master

    async def close(self) -> None:
        return None


async def test_a_link_cancelled_while_it_cleans_up_a_closed_stream_ends_cancelled() -> None:
    # The master closes the stream; the link is cancelled (the agent got SIGTERM) while it
    # stops the stream's writer and heartbeat tasks. It must end, not go on to retry.
    master = EndingMaster()
    server, address = await serve(master)
    detector = CountingDetector(address)
    link, handler, running = start_link(detector)
    try:
        async with asyncio.timeout(WAIT):
            await handler.registered_event.wait()
        detector.asked.clear()
        master.end.set()
        # Checked every loop turn, to cancel the link as it starts its clean-up.
        while link.connected:  # noqa: ASYNC110 (a plain attribute, and the turn matters)
            await asyncio.sleep(0)
        running.cancel()
        asked = asyncio.create_task(detector.asked.wait())  # the link went on to retry
        async with asyncio.timeout(WAIT):
            await asyncio.wait({running, asked}, return_when=asyncio.FIRST_COMPLETED)
        assert running.cancelled(), "the link outlived its cancellation and retried"
        asked.cancel()
    finally:
        running.cancel()
        await asyncio.gather(running, return_exceptions=True)
        await server.stop(None)


def writer_tasks() -> list[asyncio.Task[Any]]:
    return [task for task in asyncio.all_tasks()
            if getattr(task.get_coro(), "__qualname__", "") == "_SessionOutbox._write"]


async def test_a_sessions_writer_starts_with_its_first_message() -> None:
    # 10,000 agents resume at once after a failover: one with nothing to send starts no task
    # until its first heartbeat (ADR 0018).
    master = EndingMaster()
    server, address = await serve(master)
    async with registered_link(CountingDetector(address), server) as link:
        assert link.connected and writer_tasks() == []
        assert link.send(agent_pb2.AgentMessage(heartbeat=agent_pb2.AgentMessage.Heartbeat()))
        assert len(writer_tasks()) == 1


async def test_a_sessions_writer_ends_with_the_session_without_being_cancelled() -> None:
    # The session tells its writer to end (ADR 0018): no cancellation per agent when 10,000
    # agents lose their master at once.
    master = EndingMaster()
    server, address = await serve(master)
    detector = CountingDetector(address)
    async with registered_link(detector, server) as link:
        link.send(agent_pb2.AgentMessage(heartbeat=agent_pb2.AgentMessage.Heartbeat()))
        [writer] = writer_tasks()
        assert not writer.done()
        detector.asked.clear()
        master.end.set()
        async with asyncio.timeout(WAIT):
            await detector.asked.wait()  # the session ended; the link retries
            while not writer.done():  # noqa: ASYNC110 (a task's state, no event to wait on)
                await asyncio.sleep(0.01)
        assert not writer.cancelled() and writer.exception() is None


class RecordingMaster(agent_pb2_grpc.AgentLinkServicer):
    """Registers the agent with a short heartbeat interval and records every message it gets
    after the registration (batches unpacked), in order."""

    def __init__(self, heartbeat_interval: float) -> None:
        self.heartbeat_interval = heartbeat_interval
        self.kinds: list[str] = []
        self.updates: list[str] = []
        self.changed = asyncio.Event()

    async def Connect(
        self, request_iterator: AsyncIterator[agent_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[agent_pb2.MasterMessage]:
        await anext(aiter(request_iterator))
        yield registered(self.heartbeat_interval)
        async for message in request_iterator:
            batch = (message.batch.messages if message.WhichOneof("message") == "batch"
                     else [message])
            for inner in batch:
                kind = inner.WhichOneof("message") or ""
                self.kinds.append(kind)
                if kind == "status_update":
                    self.updates.append(inner.status_update.status.task_id.value)
            self.changed.set()

    async def until(self, condition: Any) -> None:
        async with asyncio.timeout(WAIT):
            while not condition():
                self.changed.clear()
                await self.changed.wait()


def _update(number: int) -> agent_pb2.AgentMessage:
    return agent_pb2.AgentMessage(status_update=agent_pb2.AgentMessage.StatusUpdate(
        status=mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value=str(number)))))


async def test_heartbeats_are_sent_when_idle_and_among_other_messages_none_lost() -> None:
    # The stream's one writer task also sends the heartbeats (ADR 0018): they must go out
    # every interval whether the link is idle or busy, and no queued message may be lost.
    master = RecordingMaster(heartbeat_interval=0.05)
    server, address = await serve(master)
    async with registered_link(CountingDetector(address), server) as link:
        await master.until(lambda: master.kinds.count("heartbeat") >= 3)  # idle
        before = master.kinds.count("heartbeat")
        sent = 0

        async def busy() -> None:
            nonlocal sent
            while True:
                assert link.send(_update(sent))
                sent += 1
                await asyncio.sleep(0.001)

        sender = asyncio.create_task(busy())
        try:
            await master.until(lambda: master.kinds.count("heartbeat") >= before + 3)
        finally:
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
        await master.until(lambda: len(master.updates) == sent)
        assert master.updates == [str(number) for number in range(sent)]
        assert sent > 0
