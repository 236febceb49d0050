"""A master's `LeaderGate` over real gRPC on loopback: agents' resumptions that reach a master
before it knows of its election, or before it has built its core, wait in the gate (all on one
event and one timer: ADR 0018, "The gate at the election") and are served once it leads; they
are refused with the leader's address when another master is elected instead, and once their
wait is over."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest

from mesos_master.config import MasterConfig
from mesos_master.interceptors import interceptor_chain
from mesos_master.master import Master
from mesos_master.server import SERVER_OPTIONS, AgentLinkServicer, LeaderGate
from mesos_runtime.channels import LEADER_METADATA_KEY
from mesos_runtime.clock import SystemClock, WallClock
from mesos_values.resources import Resources
from protos import agent_pb2, agent_pb2_grpc, mesos_pb2

pytestmark = pytest.mark.integration

WAIT = 30.0
AGENTS = 50
ME = mesos_pb2.MasterInfo(id="m-gate", hostname="localhost", address="127.0.0.1", port=1)
OTHER = mesos_pb2.MasterInfo(id="m-other", hostname="localhost", address="127.0.0.2", port=2)
Call = grpc.aio.StreamStreamCall[agent_pb2.AgentMessage, agent_pb2.MasterMessage]


def standby(index: int) -> agent_pb2.AgentMessage:
    info = mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value=f"gate-agent-{index}"),
                               hostname=f"gate-host-{index}",
                               resources=Resources.parse("cpus:1;mem:256").to_proto())
    return agent_pb2.AgentMessage(standby=agent_pb2.AgentMessage.Standby(
        seq=1, snapshot=agent_pb2.AgentMessage.Reregister(agent_info=info)))


RESUME = agent_pb2.AgentMessage(resume=agent_pb2.AgentMessage.Resume(seq=1))


def core() -> Master:
    return Master(ME, SystemClock(), MasterConfig(), wall_clock=WallClock().now)


@pytest.fixture
async def standing_by() -> AsyncIterator[tuple[LeaderGate, agent_pb2_grpc.AgentLinkStub]]:
    """A master standing by (the real servicer and gate, the master's interceptors and server
    options), and a stub to it."""
    gate = LeaderGate(lambda: None, ME.id)
    server = grpc.aio.server(interceptors=interceptor_chain(), options=SERVER_OPTIONS)
    agent_pb2_grpc.add_AgentLinkServicer_to_server(AgentLinkServicer(gate, info=ME), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield gate, agent_pb2_grpc.AgentLinkStub(channel)
    finally:
        await server.stop(None)


async def passive_streams(stub: agent_pb2_grpc.AgentLinkStub, count: int) -> list[Call]:
    """`count` agents' passive streams, each answered StandingBy."""

    async def one(index: int) -> Call:
        call: Call = stub.Connect()
        await call.write(standby(index))
        answer = await call.read()
        assert isinstance(answer, agent_pb2.MasterMessage)
        assert answer.HasField("standing_by")
        return call

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def resume(call: Call) -> agent_pb2.MasterMessage:
    await call.write(RESUME)
    answer = await call.read()
    assert isinstance(answer, agent_pb2.MasterMessage), answer
    return answer


async def until_waiting(gate: LeaderGate, calls: list[Call]) -> None:
    """Until every stream's Resume waits in the gate."""
    async with asyncio.timeout(WAIT):
        while gate.waiting < len(calls):  # noqa: ASYNC110 - a counter, no event to wait on
            await asyncio.sleep(0.01)


async def test_resumptions_before_the_election_are_served_once_the_core_is_built(
    standing_by: tuple[LeaderGate, agent_pb2_grpc.AgentLinkStub],
) -> None:
    gate, stub = standing_by
    calls = await passive_streams(stub, AGENTS)
    answers = asyncio.gather(*(resume(call) for call in calls))
    await until_waiting(gate, calls)
    gate.leader = ME  # the election is known; the core is not built yet
    await asyncio.sleep(0)
    assert not answers.done()
    master = core()
    gate.master = master
    async with asyncio.timeout(WAIT):
        replies = await answers
    assert all(reply.HasField("reregistered") for reply in replies)
    assert len(master.agents) == AGENTS
    assert gate.standbys.resumed == AGENTS and len(gate.standbys) == 0


async def test_resumptions_waiting_when_another_master_is_elected_are_sent_to_it(
    standing_by: tuple[LeaderGate, agent_pb2_grpc.AgentLinkStub],
) -> None:
    gate, stub = standing_by
    gate.RECOVERY_WAIT = 10 * WAIT  # only the lost election can end their wait in time
    calls = await passive_streams(stub, AGENTS)
    answers = asyncio.gather(*(resume(call) for call in calls), return_exceptions=True)
    await until_waiting(gate, calls)
    gate.leader = ME
    gate.leader = OTHER  # elected, then not any more, before the core was built
    async with asyncio.timeout(WAIT):
        refusals = await answers
    for refusal in refusals:
        assert isinstance(refusal, grpc.aio.AioRpcError), refusal
        assert refusal.code() == grpc.StatusCode.UNAVAILABLE
        trailing = dict(refusal.trailing_metadata() or ())
        assert trailing[LEADER_METADATA_KEY] == "127.0.0.2:2"
    assert gate.standbys.resumed == 0


async def test_a_resumption_gives_up_when_its_wait_is_over(
    standing_by: tuple[LeaderGate, agent_pb2_grpc.AgentLinkStub],
) -> None:
    gate, stub = standing_by
    gate.TICK = 0.05  # waiters look at their deadlines this often
    gate.RECOVERY_WAIT = 0.2  # the patience of a resumption, and the recovery wait
    [call] = await passive_streams(stub, 1)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        async with asyncio.timeout(WAIT):
            await resume(call)
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no leader is elected" in (refused.value.details() or "")
