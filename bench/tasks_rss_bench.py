"""Master memory benchmark: one real master, 10,000 hollow agents, 100,000 running tasks.

    python bench/tasks_rss_bench.py [--agents 10000] [--tasks-per-agent 10]
        [--agent_processes 4] [--frameworks 4] [--log_level WARNING] [--keep]
        [--memory_report [--memory_trace]]

Against one `mesos-master` process (at --log_level WARNING unless told otherwise):

(a) registration: `--agent_processes` `bench/hollow_agents.py` processes register `--agents`
    simulated agents over the real gRPC protocol (from the earliest `starting` to the latest
    `all_registered` line they print); the master's RSS is read once it has settled.
(b) launch: `--frameworks` SDK schedulers (one event loop, this process) pack
    `--tasks-per-agent` tasks of `sleep infinity` (0.1 cpus, 32 MB each) into the offer of every
    agent, declining the rest of each offer for an hour; a hollow agent runs such a task until it
    is killed. The clock runs from the first `launch_tasks` call to the last task's first
    TASK_RUNNING update at its scheduler (status updates acknowledged, implicitly).
(c) the master's RSS (psutil) with every task running, once it has settled, against the
    <= 512 MiB target (issue 22; it was 1 GiB), and what each 1,000 tasks added to it since (a).

An RSS reading is "settled" when the last `SETTLE_SECONDS` of readings (every 0.25 s) differ by
less than 1 MiB, or after `SETTLE_LIMIT` seconds (then the last reading, marked as unsettled).
Every process started here is killed on exit, Ctrl-C and SIGTERM included; the frameworks are
aborted, not torn down, so the master does not kill the tasks first. Prints figures only.
With `--memory_report` the bench prints the master's memory report after (a) and (c): malloc's
and pymalloc's figures and live objects by type (`mesos_runtime.memory_report`); with
`--memory_trace` also its Python allocations by line (tracing inflates its RSS and CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import psutil
from _cluster import BenchCluster, finish_work_dir, machine
from scale_bench import HollowFleet

from frameworks import (
    OfferBudget,
    Scheduler,
    SchedulerDriver,
    command_task,
    is_terminal,
    state_name,
)
from mesos_runtime.logging import configure_logging
from mesos_runtime.memory_report import ENVIRONMENT_VARIABLE, TRACE_VARIABLE
from protos import mesos_pb2

TARGET_RSS_MIB = 512.0
FOREVER = "sleep infinity"  # not `sleep N`: a hollow agent runs it until killed
TASK_CPUS = 0.1
TASK_MEM = 32.0
REFUSE_SECONDS = 3600.0
SETTLE_SECONDS = 2.0
SETTLE_LIMIT = 30.0
PROGRESS_EVERY = 30.0


@dataclass
class LaunchPlan:
    """What the frameworks share: the tasks still to place and those running."""

    agents: int
    per_agent: int
    frameworks: int
    subscribed: int = 0
    all_subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    next_task: int = 0
    placed: Counter[str] = field(default_factory=Counter)  # tasks per agent id
    first_launch: float | None = None
    running: set[str] = field(default_factory=set)
    last_running: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)
    problems: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.agents * self.per_agent

    @property
    def pending(self) -> int:
        return self.total - self.next_task


class PackingScheduler(Scheduler):
    """Fills each offered agent up to `per_agent` tasks; declines everything else for an hour."""

    def __init__(self, plan: LaunchPlan) -> None:
        self.plan = plan
        self.suppressed = False

    def registered(self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
                   master_info: mesos_pb2.MasterInfo) -> None:
        self.plan.subscribed += 1
        if self.plan.subscribed == self.plan.frameworks:
            self.plan.all_subscribed.set()

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        plan = self.plan
        for offer in offers:
            agent_id = offer.agent_id.value
            budget = OfferBudget(offer)
            tasks: list[mesos_pb2.TaskInfo] = []
            while (plan.pending and plan.placed[agent_id] < plan.per_agent
                   and budget.fits(cpus=TASK_CPUS, mem=TASK_MEM)):
                tasks.append(command_task(f"task-{plan.next_task:07d}", budget, FOREVER,
                                          cpus=TASK_CPUS, mem=TASK_MEM))
                plan.next_task += 1
                plan.placed[agent_id] += 1
            if not tasks:
                driver.decline_offer(offer.id, filters=REFUSE_SECONDS)
                continue
            if plan.first_launch is None:
                plan.first_launch = time.perf_counter()
            driver.launch_tasks(offer.id, tasks, filters=REFUSE_SECONDS)
        if not plan.pending and not self.suppressed:
            self.suppressed = True
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        plan = self.plan
        task_id = status.task_id.value
        if status.state == mesos_pb2.TASK_RUNNING and task_id not in plan.running:
            plan.running.add(task_id)
            if len(plan.running) == plan.total:
                plan.last_running = time.perf_counter()
                plan.done.set()
        elif is_terminal(status):
            plan.problems.append(f"{task_id}: {state_name(status)} {status.message}")
            plan.done.set()

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.plan.problems.append(f"scheduler error: {message}")
        self.plan.done.set()


def mib(process: psutil.Process) -> float:
    return process.memory_info().rss / 2**20


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def settled_rss(process: psutil.Process) -> str:
    """The process's RSS in MiB once stable (see the module docstring), formatted."""
    readings: list[tuple[float, float]] = []
    started = time.monotonic()
    while True:
        now = time.monotonic()
        readings.append((now, mib(process)))
        recent = [rss for at, rss in readings if at >= now - SETTLE_SECONDS]
        if now - started >= SETTLE_SECONDS and max(recent) - min(recent) < 1.0:
            return f"{readings[-1][1]:.0f} MiB"
        if now - started >= SETTLE_LIMIT:
            return f"{readings[-1][1]:.0f} MiB (still changing)"
        await asyncio.sleep(0.25)


async def wait_or_fail(event: asyncio.Event, what: str, limit: float) -> None:
    try:
        async with asyncio.timeout(limit):
            await event.wait()
    except TimeoutError:
        raise RuntimeError(f"timed out after {limit:.0f} s waiting for {what}") from None


async def register_agents(
    args: argparse.Namespace, cluster: BenchCluster, fleet: HollowFleet
) -> None:
    fleet.start(cluster.master_address, args.agents, args.agent_processes, args.agent_resources)
    deadline = time.monotonic() + args.timeout
    while len(fleet.times("all_registered")) < len(fleet.processes):
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the hollow agents to register")
        await asyncio.sleep(0.05)
        fleet.poll()
    elapsed = max(fleet.times("all_registered")) - min(fleet.times("starting"))
    print(f"  (a) register {args.agents} agents ({len(fleet.processes)} processes): "
          f"{elapsed:.2f} s", flush=True)


async def launch_tasks(
    args: argparse.Namespace, cluster: BenchCluster, master: psutil.Process,
    drivers: list[SchedulerDriver],
) -> LaunchPlan:
    plan = LaunchPlan(args.agents, args.tasks_per_agent, args.frameworks)
    for index in range(args.frameworks):
        driver = SchedulerDriver(
            PackingScheduler(plan), mesos_pb2.FrameworkInfo(name=f"rss-{index}", user=""),
            cluster.master_address,
        )
        drivers.append(driver)
        await driver.start()
    cpu_before = cpu_seconds(master)
    await wait_or_fail(plan.all_subscribed, f"{args.frameworks} frameworks to subscribe",
                       args.timeout)
    deadline = time.monotonic() + args.timeout
    while not plan.done.is_set():
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PROGRESS_EVERY):
                await plan.done.wait()
        if not plan.done.is_set():
            print(f"      ... {plan.next_task} launched, {len(plan.running)} running", flush=True)
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(plan.running)}/{plan.total} tasks running after "
                               f"{args.timeout:.0f} s")
    if plan.problems:
        raise RuntimeError("tasks failed: " + "; ".join(plan.problems[:5]))
    assert plan.first_launch is not None and plan.last_running is not None
    elapsed = plan.last_running - plan.first_launch
    print(f"  (b) launch {plan.total} tasks ({args.tasks_per_agent} per agent, "
          f"{args.frameworks} frameworks), first launch to last TASK_RUNNING: {elapsed:.1f} s "
          f"({plan.total / elapsed:.0f} tasks/s), master CPU "
          f"{cpu_seconds(master) - cpu_before:.1f} s", flush=True)
    return plan


def read_memory_report(master: psutil.Process, path: Path) -> str:
    """Ask the master for its memory report (`--memory_report`) and wait for it."""
    path.unlink(missing_ok=True)
    master.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 120.0
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)  # written in one call; let it finish
    return path.read_text() if path.exists() else "(no report)\n"


async def print_memory_report(master: psutil.Process, path: Path | None) -> None:
    if path is not None:
        report = await asyncio.to_thread(read_memory_report, master, path)
        print("      " + report.replace("\n", "\n      "), flush=True)


async def measure(args: argparse.Namespace, cluster: BenchCluster, fleet: HollowFleet) -> None:
    drivers: list[SchedulerDriver] = []
    try:
        cluster.start_master()
        assert cluster.master is not None
        master = psutil.Process(cluster.master.pid)
        print(f"  master RSS, no agents: {await settled_rss(master)}", flush=True)
        await register_agents(args, cluster, fleet)
        print(f"      master RSS with {args.agents} agents registered: "
              f"{await settled_rss(master)}", flush=True)
        registered_rss = mib(master)
        await print_memory_report(master, args.memory_report)
        plan = await launch_tasks(args, cluster, master, drivers)
        reading = await settled_rss(master)
        final_rss = mib(master)
        meets = "meets" if final_rss <= TARGET_RSS_MIB else "MISSES"
        print(f"  (c) master RSS with {args.agents} agents and {len(plan.running)} running "
              f"tasks: {reading}  [{meets} the <= {TARGET_RSS_MIB:.0f} MiB target]")
        growth = (final_rss - registered_rss) / len(plan.running) * 1000
        print(f"      growth since (a): {final_rss - registered_rss:.0f} MiB, "
              f"{growth:.2f} MiB per 1,000 tasks")
        hollow_rss = sum(mib(psutil.Process(process.pid)) for process in fleet.processes)
        print(f"      hollow agent processes RSS (sum): {hollow_rss:.0f} MiB, "
              f"this process (frameworks): {mib(psutil.Process()):.0f} MiB", flush=True)
        await print_memory_report(master, args.memory_report)
    finally:
        for driver in drivers:
            driver.abort()
        for driver in drivers:
            with contextlib.suppress(Exception):
                await driver.join()


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--tasks-per-agent", "--tasks_per_agent", type=int, default=10)
    parser.add_argument("--agent_processes", "--agent-processes", type=int, default=4)
    parser.add_argument("--agent_resources", default="cpus:8;mem:16384;disk:100000;"
                                                     "ports:[31000-32000]")
    parser.add_argument("--frameworks", type=int, default=4)
    parser.add_argument("--log_level", default="WARNING", help="log level of the master")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up a phase after (s)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--memory_report", "--memory-report", action="store_true",
                        help="print the master's memory report after (a) and (c)")
    parser.add_argument("--memory_trace", "--memory-trace", action="store_true",
                        help="with --memory_report: trace the master's Python allocations")
    args = parser.parse_args()
    if min(args.agents, args.tasks_per_agent, args.agent_processes, args.frameworks) <= 0:
        parser.error("--agents, --tasks-per-agent, --agent_processes and --frameworks must be "
                     "positive")
    configure_logging("ERROR")
    for signum in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored
        signal.signal(signum, _interrupt)

    print(f"machine: {machine()}")
    print(f"{args.agents} hollow agents of {args.agent_resources} in {args.agent_processes} "
          f"processes, {args.tasks_per_agent} tasks each ({TASK_CPUS} cpus, {TASK_MEM:.0f} MB), "
          f"{args.frameworks} frameworks, master at {args.log_level}", flush=True)
    work_dir = Path(tempfile.mkdtemp(prefix="tasks-rss-bench-"))
    args.memory_report = work_dir / "master-memory.txt" if args.memory_report else None
    if args.memory_report is not None:
        os.environ[ENVIRONMENT_VARIABLE] = str(args.memory_report)  # only the master reads it
        if args.memory_trace:
            os.environ[TRACE_VARIABLE] = "1"
    cluster = BenchCluster(work_dir, args.log_level)
    fleet = HollowFleet(work_dir)
    try:
        asyncio.run(measure(args, cluster, fleet))
    finally:
        fleet.close()
        cluster.close()
        finish_work_dir(work_dir, args.keep)


if __name__ == "__main__":
    main()
