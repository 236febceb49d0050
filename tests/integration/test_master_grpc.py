"""The master's gRPC surface over real loopback gRPC: clear errors for bad input, and the
interceptor chain where authentication will plug in."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence

import grpc
import pytest

from mesos_master.interceptors import CallRefused
from mesos_master.server import MasterServer
from protos import (
    agent_pb2,
    agent_pb2_grpc,
    mesos_pb2,
    scheduler_pb2,
    scheduler_pb2_grpc,
)

Call = scheduler_pb2.Call


class RefuseMallory:
    """A policy: calls made as principal `mallory` are refused."""

    def check(self, method: str, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        if ("mesos-principal", "mallory") in metadata:
            raise CallRefused(f"principal mallory may not call {method}")


@contextlib.asynccontextmanager
async def master_server() -> AsyncIterator[tuple[MasterServer, grpc.aio.Channel]]:
    server = MasterServer(ip="127.0.0.1", port=0, policies=(RefuseMallory(),))
    task = asyncio.create_task(server.run())
    try:
        await asyncio.wait_for(server.started.wait(), 10)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.info.port}") as channel:
            yield server, channel
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def subscribe_call(name: str = "fw") -> scheduler_pb2.Call:
    return Call(
        type=Call.SUBSCRIBE,
        subscribe=Call.Subscribe(framework_info=mesos_pb2.FrameworkInfo(name=name, user="u")),
    )


async def test_events_queued_together_arrive_as_one_batch_after_a_lone_subscribed() -> None:
    async with master_server() as (_, channel):
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        stream = stub.Subscribe(subscribe_call())
        stream_id = dict(await stream.initial_metadata())["mesos-stream-id"]
        subscribed = await stream.read()
        assert subscribed.type == scheduler_pb2.Event.SUBSCRIBED
        reconcile = Call(framework_id=subscribed.subscribed.framework_id, type=Call.RECONCILE)
        for index in range(5):  # one call: the master queues the five answers at once
            reconcile.reconcile.tasks.add(task_id=mesos_pb2.TaskID(value=f"t{index}"),
                                          agent_id=mesos_pb2.AgentID(value="gone"))
        await stub.Send(reconcile, metadata=(("mesos-stream-id", stream_id),))
        batch = await stream.read()
        assert batch.type == scheduler_pb2.Event.BATCH
        assert [(e.type, e.update.status.task_id.value) for e in batch.batch.events] == [
            (scheduler_pb2.Event.UPDATE, f"t{index}") for index in range(5)]


async def test_subscribe_then_send_with_stream_id() -> None:
    async with master_server() as (_, channel):
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        stream = stub.Subscribe(subscribe_call())
        metadata = dict(await stream.initial_metadata())
        subscribed = await stream.read()
        assert subscribed.type == scheduler_pb2.Event.SUBSCRIBED
        framework_id = subscribed.subscribed.framework_id
        stream_id = metadata["mesos-stream-id"]

        revive = Call(framework_id=framework_id, type=Call.REVIVE)
        await stub.Send(revive, metadata=(("mesos-stream-id", stream_id),))

        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await stub.Send(revive)
        assert missing.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "mesos-stream-id" in (missing.value.details() or "")

        with pytest.raises(grpc.aio.AioRpcError) as wrong:
            await stub.Send(revive, metadata=(("mesos-stream-id", "not-mine"),))
        assert wrong.value.code() == grpc.StatusCode.PERMISSION_DENIED

        with pytest.raises(grpc.aio.AioRpcError) as bad_type:
            await stub.Send(Call(framework_id=framework_id, type=Call.SUBSCRIBE),
                            metadata=(("mesos-stream-id", stream_id),))
        assert bad_type.value.code() == grpc.StatusCode.INVALID_ARGUMENT

        with pytest.raises(grpc.aio.AioRpcError) as no_offers:
            await stub.Send(Call(framework_id=framework_id, type=Call.ACCEPT),
                            metadata=(("mesos-stream-id", stream_id),))
        assert no_offers.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no offers" in (no_offers.value.details() or "")
        stream.cancel()


async def test_invalid_framework_info_is_refused() -> None:
    async with master_server() as (_, channel):
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Subscribe(subscribe_call(name="")).read()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "name is required" in (refused.value.details() or "")


async def test_policy_in_the_interceptor_chain_refuses_calls() -> None:
    async with master_server() as (server, channel):
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Subscribe(
                subscribe_call(), metadata=(("mesos-principal", "mallory"),)
            ).read()
        assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "mallory" in (refused.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await stub.Send(Call(type=Call.REVIVE), metadata=(("mesos-principal", "mallory"),))
        assert unary.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert server.master.frameworks == {}


async def test_agent_must_register_first() -> None:
    async with master_server() as (server, channel):
        stub = agent_pb2_grpc.AgentLinkStub(channel)
        stream = stub.Connect()
        await stream.write(agent_pb2.AgentMessage(heartbeat=agent_pb2.AgentMessage.Heartbeat()))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.read()
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert server.master.agents == {}


async def test_agent_with_invalid_resources_is_refused() -> None:
    async with master_server() as (server, channel):
        stub = agent_pb2_grpc.AgentLinkStub(channel)
        stream = stub.Connect()
        bad = mesos_pb2.Resource(name="cpus", type=mesos_pb2.Value.SCALAR,
                                 scalar=mesos_pb2.Value.Scalar(value=-4))
        await stream.write(agent_pb2.AgentMessage(register=agent_pb2.AgentMessage.Register(
            agent_info=mesos_pb2.AgentInfo(hostname="h", resources=[bad]))))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stream.read()
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "invalid agent resources" in (refused.value.details() or "")
        assert server.master.agents == {}
