"""What a new leader's CPU costs per agent resuming over its passive stream (ADR 0018).

    python bench/resumption_cost.py [--agents 10000] [--early SECONDS] [--profile FILE]
    python bench/resumption_cost.py --gate_only [--agents 10000]
    python bench/resumption_cost.py --core_only [--agents 10000]

A master shell (the real `AgentLinkServicer` and `LeaderGate`, grpc.aio with the master's
server options) runs in a child process, standing by. This process opens `--agents` passive
streams over one channel (as the hollow agents of one process do), each sending a `Standby`
snapshot (one running task, its framework's info) and waiting for `StandingBy`. Then the child
is made leader with a core recovered from a registry that holds the agents, as a master elected
after a failover is, and every agent sends `Resume` and waits for `Reregistered`: the failover's
wave without ZooKeeper, the other masters or the agents' own work. With `--early S` the Resumes
are sent S seconds before the election and wait in the master's `LeaderGate`, as they do when
the agents' detector sees the election first. Prints the wall time and the CPU of both sides
for the wave, the leader's split per agent: its event loop thread in `reregister_agent` (the
core), the rest of that thread (gRPC's Python side, the servicer, asyncio), and gRPC's own
threads. With `--profile FILE`, py-spy records the child during the wave (raw collapsed
stacks). `--gate_only` measures the waits in `LeaderGate` alone: the CPU per call waiting
for the core; `--core_only` the core alone, `Master.reregister_agent` from held snapshots.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import resource
import shutil
import signal
import subprocess
import time
from multiprocessing.queues import Queue
from pathlib import Path
from typing import Any

import grpc

from mesos_master.config import MasterConfig
from mesos_master.interceptors import interceptor_chain
from mesos_master.master import Master
from mesos_master.registry import RegistryState
from mesos_master.server import SERVER_OPTIONS, AgentLinkServicer, LeaderGate, QueueOutbox
from mesos_master.standby import StandbyAgents
from mesos_runtime.clock import SystemClock, WallClock
from mesos_runtime.gc_tuning import GC_YOUNG_THRESHOLD
from mesos_runtime.logging import configure_logging
from mesos_values.resources import Resources
from protos import agent_pb2, agent_pb2_grpc, mesos_pb2, registry_pb2

FRAMEWORK_ID = "bench-framework"
RESOURCES = Resources.parse("cpus:4;mem:4096").to_proto()
TASK_RESOURCES = Resources.parse("cpus:0.1;mem:16").to_proto()
INFO = mesos_pb2.MasterInfo(id="bench-master", hostname="localhost", address="127.0.0.1",
                            port=1)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def agent_info(index: int) -> mesos_pb2.AgentInfo:
    return mesos_pb2.AgentInfo(id=mesos_pb2.AgentID(value=f"agent-{index}"),
                               hostname=f"hollow-{index}", resources=RESOURCES)


def snapshot(index: int) -> agent_pb2.AgentMessage.Reregister:
    """An agent's `Reregister` with one running task."""
    task = mesos_pb2.Task(
        name="sleep", task_id=mesos_pb2.TaskID(value=f"task-{index}"),
        framework_id=mesos_pb2.FrameworkID(value=FRAMEWORK_ID),
        agent_id=mesos_pb2.AgentID(value=f"agent-{index}"), state=mesos_pb2.TASK_RUNNING,
        resources=TASK_RESOURCES)
    framework = mesos_pb2.FrameworkInfo(
        id=mesos_pb2.FrameworkID(value=FRAMEWORK_ID), name="bench", user="root")
    return agent_pb2.AgentMessage.Reregister(
        agent_info=agent_info(index), tasks=[task], frameworks=[framework], version="bench")


Cpu = tuple[float, float, float]
"""The leader's CPU seconds so far: the process's, its event loop thread's, and that thread's
in `Master.reregister_agent` (since the election)."""


def serve(agents: int, to_client: Queue[Cpu], from_client: Queue[str]) -> None:
    """The master's shell: stands by, leads on "elect"; answers every command with its CPU."""
    configure_logging("WARNING")  # as the failover bench runs its masters
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])  # as a master does
    in_core = [0.0]

    def elect(gate: LeaderGate, recovered: RegistryState) -> None:
        gc.freeze()  # as a new leader does (MasterServer._lead)
        gate.leader = INFO
        master = Master(INFO, SystemClock(), MasterConfig(), recovered=recovered,
                        wall_clock=WallClock().now)
        reregister = master.reregister_agent

        def timed(*args: Any, **kwargs: Any) -> str:
            started = time.thread_time()
            try:
                return reregister(*args, **kwargs)
            finally:
                in_core[0] += time.thread_time() - started

        master.reregister_agent = timed  # type: ignore[method-assign]
        gate.master = master

    async def main() -> None:
        gate = LeaderGate(lambda: None, INFO.id)
        server = grpc.aio.server(interceptors=interceptor_chain(), options=SERVER_OPTIONS)
        agent_pb2_grpc.add_AgentLinkServicer_to_server(AgentLinkServicer(gate, info=INFO), server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        recovered = RegistryState(agents={
            f"agent-{i}": registry_pb2.AgentEntry(info=agent_info(i)) for i in range(agents)})
        to_client.put((float(port), 0.0, 0.0))
        loop = asyncio.get_running_loop()
        while (command := await loop.run_in_executor(None, from_client.get)) != "stop":
            if command == "elect":
                elect(gate, recovered)
            to_client.put((cpu_seconds(), time.thread_time(), in_core[0]))
        await server.stop(None)

    asyncio.run(main())


async def measure(agents: int, port: int, server_pid: int, to_client: Queue[Cpu],
                  from_client: Queue[str], profile: Path | None, early: float) -> None:
    loop = asyncio.get_running_loop()

    async def ask(command: str) -> Cpu:
        from_client.put(command)
        return await loop.run_in_executor(None, to_client.get)

    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = agent_pb2_grpc.AgentLinkStub(channel)
        Call = grpc.aio.StreamStreamCall[agent_pb2.AgentMessage, agent_pb2.MasterMessage]
        calls: list[Call] = []

        async def stand_by(index: int) -> None:
            call: Call = stub.Connect()
            await call.write(agent_pb2.AgentMessage(
                standby=agent_pb2.AgentMessage.Standby(seq=1, snapshot=snapshot(index))))
            answer = await call.read()
            assert isinstance(answer, agent_pb2.MasterMessage) and answer.HasField("standing_by")
            calls.append(call)

        async def resume(call: Call) -> None:
            await call.write(agent_pb2.AgentMessage(resume=agent_pb2.AgentMessage.Resume(seq=1)))
            answer = await call.read()
            assert isinstance(answer, agent_pb2.MasterMessage), answer
            assert answer.HasField("reregistered"), answer

        started = time.perf_counter()
        await asyncio.gather(*(stand_by(i) for i in range(agents)))
        print(f"{agents} passive streams held after {time.perf_counter() - started:.1f} s")
        recorder = None
        if profile is not None:
            recorder = await start_profiler(server_pid, profile)
        before, client_before = await ask("cpu"), cpu_seconds()
        started = time.perf_counter()
        if early:
            # The agents' detector names the new leader before that master has built its
            # core: their Resumes wait in its gate until it has.
            resumed = asyncio.gather(*(resume(call) for call in calls))
            await asyncio.sleep(early)
            await ask("elect")
            await resumed
        else:
            await ask("elect")
            await asyncio.gather(*(resume(call) for call in calls))
        wall = time.perf_counter() - started
        after, client = await ask("cpu"), cpu_seconds() - client_before
        if recorder is not None:
            recorder.send_signal(signal.SIGINT)
            await asyncio.to_thread(recorder.wait, 30)
        process, loop_thread, core = (a - b for a, b in zip(after, before, strict=True))

        def each(seconds: float) -> str:
            return f"{1000 * seconds / agents:.3f} ms"

        print(f"wave: {agents} resumed in {wall:.2f} s (Resumes sent {early:g} s before the "
              f"election); leader CPU {process:.2f} s, {each(process)} per agent: event loop "
              f"{each(loop_thread)} (re-registering {each(core)}, the rest "
              f"{each(loop_thread - core)}), other threads {each(process - loop_thread)}; "
              f"agents' CPU {client:.2f} s")
        for call in calls:
            call.cancel()


async def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` (raw collapsed stacks), given a second to attach."""
    executable = shutil.which("py-spy")
    if executable is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    recorder = subprocess.Popen(  # noqa: ASYNC220 - a child left running, never waited here
        [executable, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
         "--nonblocking", "--output", str(output)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    await asyncio.sleep(1.0)
    return recorder


async def gate_cost(waiters: int) -> None:
    """The gate alone: `waiters` calls wait in `LeaderGate.core` (as resumptions that reach a
    master before its election), then it learns it is elected, then gets its core."""
    gate = LeaderGate(lambda: None, INFO.id)
    core = object()  # never acted on: only handed to the waiters

    async def resumption() -> None:
        assert await gate.core(patience=gate.RECOVERY_WAIT) is core

    started = time.process_time()
    waiting = [asyncio.create_task(resumption()) for _ in range(waiters)]
    if hasattr(gate, "waiting"):
        while gate.waiting < waiters:  # noqa: ASYNC110 - a counter, no event to wait on
            await asyncio.sleep(0.001)
    else:  # a gate from before the count: give the waiters time to wait
        await asyncio.sleep(0.1)
    entered = time.process_time()
    gate.leader = INFO
    await asyncio.sleep(0.01)
    elected = time.process_time()
    gate.master = core  # type: ignore[assignment]
    await asyncio.gather(*waiting)
    done = time.process_time()

    def each(seconds: float) -> str:
        return f"{1e6 * seconds / waiters:.1f} µs"

    print(f"gate: {waiters} waiters; CPU per waiter: to wait {each(entered - started)}, at "
          f"the election {each(elected - entered)}, at the core {each(done - elected)}; "
          f"in all {each(done - started)}")


def core_cost(agents: int) -> None:
    """The core alone: `agents` snapshots held as a standby holds them, then each taken and
    re-registered with a core recovered from a registry of the agents (no gRPC, no asyncio)."""
    configure_logging("WARNING")
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    standbys = StandbyAgents()
    outboxes = [QueueOutbox[agent_pb2.MasterMessage]() for _ in range(agents)]
    for index, outbox in enumerate(outboxes):
        standbys.hold(agent_pb2.AgentMessage.Standby(seq=1, snapshot=snapshot(index)), outbox,
                      None)
    recovered = RegistryState(agents={
        f"agent-{i}": registry_pb2.AgentEntry(info=agent_info(i)) for i in range(agents)})
    gc.freeze()
    master = Master(INFO, SystemClock(), MasterConfig(), recovered=recovered,
                    wall_clock=WallClock().now)
    started = time.process_time()
    for index, outbox in enumerate(outboxes):
        held = standbys.take(f"agent-{index}", outbox, 1)
        master.reregister_agent(held.snapshot, outbox, None, decoded=held.decoded)
    each = 1e6 * (time.process_time() - started) / agents
    print(f"core: {agents} resumptions, {each:.1f} µs of CPU each")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--early", type=float, default=0.0,
                        help="send the Resumes this many seconds before the master is elected "
                             "(they wait in its gate, as when agents see the election first)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record a py-spy profile of the leader's wave into this file")
    parser.add_argument("--gate_only", action="store_true",
                        help="measure only the waits in LeaderGate, without gRPC or a core")
    parser.add_argument("--core_only", action="store_true",
                        help="measure only Master.reregister_agent from held snapshots")
    args = parser.parse_args()
    if args.gate_only:
        asyncio.run(gate_cost(args.agents))
        return
    if args.core_only:
        core_cost(args.agents)
        return
    to_client: Queue[Cpu] = multiprocessing.Queue()
    from_client: Queue[str] = multiprocessing.Queue()
    server = multiprocessing.Process(target=serve, args=(args.agents, to_client, from_client))
    server.start()
    try:
        port = int(to_client.get(timeout=60)[0])
        assert server.pid is not None
        asyncio.run(measure(args.agents, port, server.pid, to_client, from_client, args.profile,
                             args.early))
    finally:
        from_client.put("stop")
        server.join(timeout=10)
        if server.is_alive():
            server.kill()


if __name__ == "__main__":
    main()
