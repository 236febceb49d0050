"""Where a master core's bytes go: a `Master` with many agents and running tasks, no gRPC.

    python bench/master_core_memory.py [--agents 10000] [--tasks-per-agent 10]
        [--frameworks 4] [--top 25] [--no-tracemalloc] [--state N]

Builds one pure `Master` core (fake clock, outboxes that drop what they are sent) the way the
tasks RSS bench fills a real master: `--agents` agents of `cpus:8;mem:16384;disk:100000;
ports:[31000-32000]` register, `--frameworks` frameworks subscribe and launch
`--tasks-per-agent` tasks of `sleep infinity` (0.1 cpus, 32 MB) on each agent's offer, and each
task's TASK_STARTING and TASK_RUNNING updates arrive inside `AgentMessage`s parsed from bytes
(as gRPC hands them to the master), each acknowledged. Prints the RSS after each step and,
unless `--no-tracemalloc`, the Python allocations still held at the end grouped by file and
line (tracemalloc sees Python objects and protobuf's upb arenas, not gRPC's C memory nor
malloc's fragmentation: the difference from the real master's RSS is theirs).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import time
import tracemalloc
import uuid
from typing import Generic, TypeVar

import psutil

from frameworks import OfferBudget, command_task
from mesos_http.operator_http import JsonFragments
from mesos_master.config import MasterConfig
from mesos_master.http import master_state
from mesos_master.master import Master
from mesos_master.registry import ImmediateSink
from mesos_runtime.clock import FakeClock
from mesos_runtime.gc_tuning import GC_YOUNG_THRESHOLD
from mesos_runtime.memory_report import malloc_summary, pymalloc_summary
from mesos_values.resources import Resources
from protos import agent_pb2, mesos_pb2, scheduler_pb2

T = TypeVar("T")
AGENT_RESOURCES = "cpus:8;mem:16384;disk:100000;ports:[31000-32000]"
EventType = scheduler_pb2.Event.Type


class KeepLastOutbox(Generic[T]):
    """An outbox keeping only what a step needs to read back: its messages since `take`."""

    def __init__(self) -> None:
        self.messages: list[T] = []

    def send(self, message: T) -> None:
        self.messages.append(message)

    def close(self) -> None:
        pass

    def take(self) -> list[T]:
        taken, self.messages = self.messages, []
        return taken


def print_allocators() -> None:
    """malloc's and pymalloc's figures (pymalloc's only when not tracing)."""
    for line in [malloc_summary(), *pymalloc_summary()]:
        print(f"      {line}")


def rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / 2**20


def status_message(framework_id: str, agent_id: str, task_id: str,
                   state: mesos_pb2.TaskState.ValueType, now: float) -> agent_pb2.AgentMessage:
    """An agent's status update as the master's servicer receives it (parsed from bytes)."""
    sent = agent_pb2.AgentMessage(status_update=agent_pb2.AgentMessage.StatusUpdate(
        framework_id=mesos_pb2.FrameworkID(value=framework_id),
        status=mesos_pb2.TaskStatus(
            task_id=mesos_pb2.TaskID(value=task_id), state=state,
            source=mesos_pb2.TaskStatus.SOURCE_EXECUTOR,
            agent_id=mesos_pb2.AgentID(value=agent_id), timestamp=now,
            uuid=uuid.uuid4().bytes,
        ),
    ))
    return agent_pb2.AgentMessage.FromString(sent.SerializeToString())


def build(args: argparse.Namespace) -> Master:
    clock, wall = FakeClock(), FakeClock(start=1_700_000_000.0)
    master = Master(
        mesos_pb2.MasterInfo(id="bench", hostname="localhost", address="127.0.0.1", port=5050),
        clock, MasterConfig(), registry=ImmediateSink(), wall_clock=wall.now,
    )
    resources = Resources.parse(AGENT_RESOURCES).to_proto()
    agent_outboxes: dict[str, KeepLastOutbox[agent_pb2.MasterMessage]] = {}
    for index in range(args.agents):
        outbox: KeepLastOutbox[agent_pb2.MasterMessage] = KeepLastOutbox()
        info = agent_pb2.AgentMessage(register=agent_pb2.AgentMessage.Register(
            agent_info=mesos_pb2.AgentInfo(hostname=f"hollow-{index:05d}", port=5051,
                                           resources=resources),
        ))
        parsed = agent_pb2.AgentMessage.FromString(info.SerializeToString())
        agent_id = master.register_agent(parsed.register.agent_info, outbox)
        outbox.take()
        agent_outboxes[agent_id] = outbox
    gc.collect()
    print(f"  {args.agents} agents registered: RSS {rss_mib():.0f} MiB", flush=True)
    print_allocators()

    framework_outboxes: list[tuple[str, KeepLastOutbox[scheduler_pb2.Event]]] = []
    for index in range(args.frameworks):
        events: KeepLastOutbox[scheduler_pb2.Event] = KeepLastOutbox()
        framework_id, _ = master.subscribe(
            mesos_pb2.FrameworkInfo(name=f"rss-{index}", user=""), events)
        events.take()
        framework_outboxes.append((framework_id, events))
    next_task = 0
    placed: dict[str, int] = {}
    total = args.agents * args.tasks_per_agent
    while next_task < total:
        master.allocate()
        offered = 0
        for framework_id, events in framework_outboxes:
            framework = master.frameworks[framework_id]
            for event in events.take():
                if event.type != EventType.OFFERS:
                    continue
                for offer in event.offers.offers:
                    offered += 1
                    agent_id = offer.agent_id.value
                    budget = OfferBudget(offer)
                    tasks = []
                    while (next_task < total and placed.get(agent_id, 0) < args.tasks_per_agent
                           and budget.fits(cpus=0.1, mem=32.0)):
                        tasks.append(command_task(f"task-{next_task:07d}", budget,
                                                  "sleep infinity", cpus=0.1, mem=32.0))
                        next_task += 1
                        placed[agent_id] = placed.get(agent_id, 0) + 1
                    operation = mesos_pb2.Offer.Operation(
                        type=mesos_pb2.Offer.Operation.LAUNCH,
                        launch=mesos_pb2.Offer.Operation.Launch(task_infos=tasks))
                    call = scheduler_pb2.Call.FromString(scheduler_pb2.Call(
                        accept=scheduler_pb2.Call.Accept(
                            offer_ids=[offer.id], operations=[operation] if tasks else [],
                            filters=mesos_pb2.Filters(refuse_seconds=3600.0)),
                    ).SerializeToString())
                    master.accept(framework, [o.value for o in call.accept.offer_ids],
                                  call.accept.operations, call.accept.filters)
        if not offered:
            raise RuntimeError(f"no offers with {next_task}/{total} tasks placed")
    now = 1_700_000_100.0
    for agent_id, outbox in agent_outboxes.items():
        for message in outbox.take():
            if not message.HasField("run_task"):
                continue
            framework_id = message.run_task.framework_info.id.value
            task_id = message.run_task.task.task_id.value
            for state in (mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING):
                update = status_message(framework_id, agent_id, task_id, state, now).status_update
                master.status_update(agent_id, framework_id, update.status)
                master.tasks.acknowledge(master.frameworks[framework_id], agent_id, task_id,
                                         update.status.uuid)
        outbox.take()
    for _, events in framework_outboxes:
        events.take()
    return master


def time_state(master: Master, rounds: int) -> None:
    """Render the master's `/state` `rounds` times as its HTTP handler does (tasks encoded as
    they are made, then the whole document), with the collector set as `mesos-master` sets it."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    info = mesos_pb2.MasterInfo(id="bench", hostname="localhost", port=5050, version="bench")
    for _ in range(rounds):
        started, cpu = time.perf_counter(), time.process_time()
        fragments = JsonFragments()
        state = master_state(master, info, info, start_time=0.0, flags={}, fragments=fragments)
        rendered = time.perf_counter() - started
        body = fragments.encode(state)
        print(f"  /state: built in {rendered:.2f} s, {time.perf_counter() - started:.2f} s "
              f"with JSON ({len(body) / 2**20:.0f} MiB, CPU "
              f"{time.process_time() - cpu:.2f} s); RSS {rss_mib():.0f} MiB", flush=True)
        del state, body, fragments
        gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks-per-agent", "--tasks_per_agent", type=int, default=10)
    parser.add_argument("--frameworks", type=int, default=4)
    parser.add_argument("--top", type=int, default=25, help="lines of the allocation table")
    parser.add_argument("--no-tracemalloc", action="store_true",
                        help="RSS only (tracemalloc's own bookkeeping inflates RSS)")
    parser.add_argument("--state", type=int, default=0, metavar="N",
                        help="also render /state N times (tasks are decoded on read) and "
                             "print the time and the RSS it leaves")
    args = parser.parse_args()
    import structlog  # the core logs at INFO per agent and task: keep it quiet

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    gc.collect()
    print(f"  empty process: RSS {rss_mib():.0f} MiB", flush=True)
    if not args.no_tracemalloc:
        tracemalloc.start(1)
    master = build(args)
    gc.collect()
    tasks = sum(len(framework.tasks) for framework in master.frameworks.values())
    print(f"  {args.agents} agents, {tasks} running tasks: RSS {rss_mib():.0f} MiB", flush=True)
    print_allocators()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    print(f"  the same after malloc_trim(0) (freed memory returned): RSS {rss_mib():.0f} MiB",
          flush=True)
    if args.state:
        time_state(master, args.state)
    if args.no_tracemalloc:
        return
    snapshot = tracemalloc.take_snapshot()
    stats = snapshot.statistics("lineno")
    held = sum(stat.size for stat in stats)
    print(f"  Python allocations held: {held / 2**20:.1f} MiB "
          f"({held / max(tasks, 1):.0f} bytes per task, {held / args.agents:.0f} per agent)")
    for stat in stats[:args.top]:
        frame = stat.traceback[0]
        print(f"    {stat.size / 2**20:7.1f} MiB {stat.count:9d}  "
              f"{frame.filename.split('/work/')[-1]}:{frame.lineno}")


if __name__ == "__main__":
    main()
