"""What a gRPC stream costs in Python, without any master logic: the floor under a failover.

    python bench/grpc_stream_cost.py [--streams 10000]

A bare `AgentLink` server (grpc.aio, the master's server options) in a child process answers
every `Connect` stream's first message with one message and echoes every later one. This
process opens `--streams` streams over one channel (gRPC carries them on one connection, as it
does for the hollow agents of one process), sends one message on each and waits for the answer,
like an agent re-registering; then one more round trip on every open stream. Prints wall time
and the CPU of both sides for each step, and the server's RSS before and after each (what the
open streams hold: the floor under the master's memory per agent). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import resource
import time
from collections.abc import AsyncIterator, Coroutine
from multiprocessing.queues import Queue
from typing import Any

import grpc
import psutil

from mesos_master.server import SERVER_OPTIONS
from protos import agent_pb2, agent_pb2_grpc

ANSWER = agent_pb2.MasterMessage(reregistered=agent_pb2.MasterMessage.Reregistered())
HELLO = agent_pb2.AgentMessage(heartbeat=agent_pb2.AgentMessage.Heartbeat())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class EchoLink(agent_pb2_grpc.AgentLinkServicer):
    async def Connect(
        self, request_iterator: AsyncIterator[agent_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[agent_pb2.MasterMessage]:
        async for _message in request_iterator:
            yield ANSWER


def serve(to_client: Queue[float], from_client: Queue[str]) -> None:
    """The server process: reports its port, then its CPU each time the client asks."""

    async def main() -> None:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        agent_pb2_grpc.add_AgentLinkServicer_to_server(EchoLink(), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        to_client.put(float(port))
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, from_client.get) == "cpu":
            to_client.put(cpu_seconds())
        await server.stop(None)

    asyncio.run(main())


async def measure(streams: int, port: int, server_pid: int, to_client: Queue[float],
                  from_client: Queue[str]) -> None:
    loop = asyncio.get_running_loop()
    server_process = psutil.Process(server_pid)

    def server_rss() -> str:
        return f"{server_process.memory_info().rss / 2**20:.0f} MiB"

    async def server_cpu() -> float:
        from_client.put("cpu")
        return await loop.run_in_executor(None, to_client.get)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = agent_pb2_grpc.AgentLinkStub(channel)
        calls: list[grpc.aio.StreamStreamCall[agent_pb2.AgentMessage, agent_pb2.MasterMessage]]
        calls = []

        async def open_one() -> None:
            call = stub.Connect()
            await call.write(HELLO)
            await call.read()
            calls.append(call)

        async def round_trip(
            call: grpc.aio.StreamStreamCall[agent_pb2.AgentMessage, agent_pb2.MasterMessage],
        ) -> None:
            await call.write(HELLO)
            await call.read()

        def opening() -> list[Coroutine[Any, Any, None]]:
            return [open_one() for _ in range(streams)]

        def round_trips() -> list[Coroutine[Any, Any, None]]:
            return [round_trip(call) for call in calls]

        print(f"server RSS with no stream: {server_rss()}")
        steps = [("open a stream, one message each way", opening),
                 ("one more round trip on each open stream", round_trips)]
        for name, make in steps:
            server_before, client_before, started = await server_cpu(), cpu_seconds(), (
                time.perf_counter())
            await asyncio.gather(*make())
            wall = time.perf_counter() - started
            client, server = cpu_seconds() - client_before, await server_cpu() - server_before
            print(f"{name}: {streams} in {wall:.2f} s; CPU client {client:.2f} s "
                  f"({1000 * client / streams:.3f} ms each), server {server:.2f} s "
                  f"({1000 * server / streams:.3f} ms each); server RSS {server_rss()}")
        for call in calls:
            call.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=10_000)
    args = parser.parse_args()
    to_client: Queue[float] = multiprocessing.Queue()
    from_client: Queue[str] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(to_client, from_client))
    server.start()
    try:
        port = int(to_client.get(timeout=30))
        assert server.pid is not None
        asyncio.run(measure(args.streams, port, server.pid, to_client, from_client))
    finally:
        from_client.put("stop")
        server.join(timeout=10)
        if server.is_alive():
            server.kill()


if __name__ == "__main__":
    main()
