"""One raw gRPC call to a master, as a scheduler or an agent would make it, and its outcome:
for tests of what the master lets in (authentication, ownership, rate limits)."""

from __future__ import annotations

import grpc
import grpc.aio

from protos import agent_pb2, agent_pb2_grpc, mesos_pb2, scheduler_pb2, scheduler_pb2_grpc

Metadata = tuple[tuple[str, str], ...]


async def subscribe(target: str, info: mesos_pb2.FrameworkInfo,
                    credentials: Metadata = ()) -> tuple[str, str]:
    """Subscribe and hang up after the first event: (outcome, framework id or '')."""
    async with grpc.aio.insecure_channel(target) as channel:
        stub = scheduler_pb2_grpc.SchedulerStub(channel)  # type: ignore[no-untyped-call]
        call = scheduler_pb2.Call(type=scheduler_pb2.Call.SUBSCRIBE,
                                  subscribe=scheduler_pb2.Call.Subscribe(framework_info=info))
        stream = stub.Subscribe(call, metadata=credentials, timeout=10)
        try:
            event = await stream.read()
        except grpc.aio.AioRpcError as error:
            return f"{error.code().name}: {error.details()}", ""
        return (scheduler_pb2.Event.Type.Name(event.type),
                event.subscribed.framework_id.value)


async def connect_agent(target: str, info: mesos_pb2.AgentInfo,
                        credentials: Metadata) -> str:
    """Register (without an id) or re-register (with one) as an agent; the master's answer."""
    if info.id.value:
        hello = agent_pb2.AgentMessage(
            reregister=agent_pb2.AgentMessage.Reregister(agent_info=info))
    else:
        hello = agent_pb2.AgentMessage(register=agent_pb2.AgentMessage.Register(agent_info=info))
    async with grpc.aio.insecure_channel(target) as channel:
        stub = agent_pb2_grpc.AgentLinkStub(channel)  # type: ignore[no-untyped-call]
        call = stub.Connect(metadata=credentials, timeout=10)
        await call.write(hello)
        try:
            answer = await call.read()
        except grpc.aio.AioRpcError as error:
            return f"{error.code().name}: {error.details()}"
        return str(answer.WhichOneof("message"))
