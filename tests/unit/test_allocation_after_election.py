"""A new leader's allocation loop and its agents' resumption wave (ADR 0018, "The allocation
after an election"): the shell (`MasterServer`) around a real core, in one event loop.

Resumptions request allocations as every servicer call does, but the loop is not woken for
each: it allocates once, when a request finds the wave over (every held agent back) or when
the wave stalls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from mesos_master.config import MasterConfig
from mesos_master.master import Master
from mesos_master.server import MasterServer
from mesos_runtime.clock import FakeClock, WallClock
from mesos_runtime.tasks import cancel_and_wait
from mesos_values.resources import Resources
from protos import agent_pb2, mesos_pb2, scheduler_pb2

WAIT = 30.0
OFFERS = scheduler_pb2.Event.OFFERS


class Outbox:
    def __init__(self) -> None:
        self.sent: list[object] = []

    def send(self, message: object) -> None:
        self.sent.append(message)

    def close(self) -> None:
        pass


def standby(index: int) -> agent_pb2.AgentMessage.Standby:
    info = mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value=f"wave-agent-{index}"),
                               hostname=f"wave-host-{index}",
                               resources=Resources.parse("cpus:1;mem:256").to_proto())
    return agent_pb2.AgentMessage.Standby(
        seq=1, snapshot=agent_pb2.AgentMessage.Reregister(agent_info=info))


def offered_agents(framework: Outbox) -> set[str]:
    return {offer.agent_id.value for event in framework.sent
            if isinstance(event, scheduler_pb2.Event) and event.type == OFFERS
            for offer in event.offers.offers}


async def until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - the core's outbox has no event to wait on
            await asyncio.sleep(0.01)
    assert condition(), what


async def leading(count: int) -> tuple[MasterServer, Master, list[Outbox], Outbox]:
    """A master shell elected with `count` agents' snapshots held, its core with a framework
    subscribed (none of the agents back yet). The core's clock stands still unless advanced:
    the wave does not stall meanwhile."""
    server = MasterServer(ip="127.0.0.1", port=0)
    streams = [Outbox() for _ in range(count)]
    for index, stream in enumerate(streams):
        server.gate.standbys.hold(standby(index), stream, None)
    master = Master(server.info, FakeClock(), MasterConfig(), wall_clock=WallClock().now)
    framework = Outbox()
    master.subscribe(mesos_pb2.FrameworkInfo(user="u", name="wave"), framework)
    server.gate.master = master
    return server, master, streams, framework


def resume(server: MasterServer, master: Master, index: int, stream: Outbox) -> None:
    """What the servicer does for an agent's Resume (`AgentLinkServicer._follow_passive`)."""
    held = server.gate.standbys.take(f"wave-agent-{index}", stream, 1)
    master.reregister_agent(held.snapshot, stream, None, decoded=held.decoded)
    server.gate.request_allocation()


async def test_the_new_leader_allocates_once_every_held_agent_is_back() -> None:
    server, master, streams, framework = await leading(3)
    loop = asyncio.create_task(server._allocation_loop(master))
    await asyncio.sleep(0)  # the loop holds allocation for the wave
    try:
        for index in range(2):
            resume(server, master, index, streams[index])
            # The request does not wake the loop (it would wake on its own at the wave's
            # deadline only, 2 s away on the event loop's clock).
            assert not server._allocation_wanted.is_set()
            for _ in range(10):  # loop passes: an allocation requested now would run
                await asyncio.sleep(0)
        assert offered_agents(framework) == set(), "allocated before the wave is over"
        resume(server, master, 2, streams[2])
        assert server._allocation_wanted.is_set(), "the request ending the wave wakes the loop"
        await until(lambda: len(offered_agents(framework)) == 3, "every agent offered")
    finally:
        await cancel_and_wait(loop)


async def test_a_stalled_wave_ends_and_the_agents_back_are_offered() -> None:
    """One agent never resumes: after `ResumptionWave`'s stall (2 s without a resumption)
    the loop allocates the agents that are back, without any further request."""
    server, master, streams, framework = await leading(3)
    clock = master.clock
    assert isinstance(clock, FakeClock)
    loop = asyncio.create_task(server._allocation_loop(master))
    await asyncio.sleep(0)  # the loop holds allocation for the wave
    try:
        for index in range(2):
            resume(server, master, index, streams[index])
        for _ in range(10):
            await asyncio.sleep(0)
        assert offered_agents(framework) == set(), "allocated before the wave stalled"
        clock.advance(2.0)  # the loop looks again at its deadline (2 s on the event loop)
        await until(lambda: offered_agents(framework) == {"wave-agent-0", "wave-agent-1"},
                    "the agents back offered once the wave stalled")
        assert len(server.gate.standbys) == 1
    finally:
        await cancel_and_wait(loop)
