"""Agent memory benchmark: how much an agent's memory grows per 1,000 running command tasks.

    python bench/agent_memory_bench.py [--tasks 1000] [--cmd "sleep 600"]

A real master and one agent process; the agent's resident set size (RSS, psutil) is read once
it has registered with no tasks, and again once `--tasks` command tasks are TASK_RUNNING and
their status updates acknowledged (each reading taken when RSS has stopped moving). Reported:
the agent process alone, and the agent plus its children that are not tasks (a task is a
child leading its own session; there should be no other children), as MB per 1,000 tasks.
Also counts the agent's children that are Python interpreters: with the built-in command
executor there must be none (ADR 0012). Every process started is killed before exit.
Prints figures only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
from _cluster import BenchCluster, finish_work_dir, machine, run_tasks

from mesos_runtime.logging import configure_logging

MB = 1024 * 1024
TARGET_MB_PER_1000 = 50.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The agent's memory and children at one moment."""

    agent_rss: int
    non_task_children_rss: int
    tasks: int
    non_task_children: int
    python_children: int
    threads: int
    fds: int

    @property
    def total_rss(self) -> int:
        return self.agent_rss + self.non_task_children_rss


def _is_python(process: psutil.Process) -> bool:
    with contextlib.suppress(psutil.Error):
        names = [process.name(), *process.cmdline()[:1]]
        return any("python" in os.path.basename(name).lower() for name in names)
    return False


def snapshot(agent: psutil.Process) -> Snapshot:
    """Read RSS, children and resources of `agent` now."""
    tasks = 0
    non_task: list[psutil.Process] = []
    python = 0
    for child in agent.children(recursive=True):
        with contextlib.suppress(psutil.Error, ProcessLookupError):
            python += _is_python(child)
            if os.getsid(child.pid) == child.pid:  # a task's root (the agent's or its spawn
                # server's child)
                tasks += 1
            elif os.getsid(child.pid) == os.getsid(agent.pid):
                non_task.append(child)  # not inside any task's session
    children_rss = 0
    for child in non_task:
        with contextlib.suppress(psutil.Error):
            children_rss += child.memory_info().rss
    return Snapshot(
        agent_rss=agent.memory_info().rss,
        non_task_children_rss=children_rss,
        tasks=tasks,
        non_task_children=len(non_task),
        python_children=python,
        threads=agent.num_threads(),
        fds=agent.num_fds(),
    )


def settled(agent: psutil.Process, timeout: float = 20.0) -> Snapshot:
    """A snapshot once the agent's RSS has not changed by more than 64 KiB for 1 s."""
    deadline = time.monotonic() + timeout
    previous = snapshot(agent)
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        current = snapshot(agent)
        if abs(current.agent_rss - previous.agent_rss) > 64 * 1024:
            stable_since = time.monotonic()
        previous = current
        if time.monotonic() - stable_since >= 1.0:
            break
    return previous


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--agent_resources", default="cpus:1000;mem:1000000;ports:[31000-32000]")
    parser.add_argument("--cpus", type=float, default=0.01, help="CPUs per task")
    parser.add_argument("--mem", type=float, default=1.0, help="memory (MB) per task")
    parser.add_argument("--cmd", default="sleep 600", help="shell command of every task")
    parser.add_argument("--log_level", default="INFO", help="log level of master and agent")
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after (s)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument("--isolation", default=None,
                        help="the agent's --isolation (default: its own, cgroups where root)")
    args = parser.parse_args()
    configure_logging("WARNING")

    print(f"machine: {machine()}")
    print(f"{args.tasks} tasks of `{args.cmd}` on one agent of {args.agent_resources}, "
          f"components at {args.log_level}, isolation {args.isolation or 'default'}")
    work_dir = Path(tempfile.mkdtemp(prefix="agent-memory-bench-"))
    cluster = BenchCluster(work_dir, args.log_level, isolation=args.isolation)
    try:
        cluster.start_master()
        agent = psutil.Process(cluster.start_agent(args.agent_resources).pid)
        idle = settled(agent)
        _, driver = run_tasks(
            cluster, args.tasks, args.cmd, args.timeout, cpus=args.cpus, mem=args.mem
        )
        busy = settled(agent)
        cluster.task_processes()
        driver.abort()
        driver.join()
    finally:
        cluster.close()
        finish_work_dir(work_dir, args.keep)

    per_1000 = 1000 / args.tasks
    own = (busy.agent_rss - idle.agent_rss) / MB * per_1000
    total = (busy.total_rss - idle.total_rss) / MB * per_1000
    verdict = "meets" if max(own, total) <= TARGET_MB_PER_1000 else "MISSES"
    print(f"agent RSS: {idle.agent_rss / MB:.1f} MB registered and idle -> "
          f"{busy.agent_rss / MB:.1f} MB with {busy.tasks} tasks running")
    print(f"growth per 1,000 tasks: agent alone {own:.1f} MB, agent + non-task children "
          f"{total:.1f} MB ({verdict} the <= {TARGET_MB_PER_1000:.0f} MB target)")
    print(f"non-task children: {idle.non_task_children} -> {busy.non_task_children} "
          f"({busy.non_task_children_rss / MB:.1f} MB); Python interpreters among the agent's "
          f"children: {idle.python_children} -> {busy.python_children}")
    print(f"agent threads: {idle.threads} -> {busy.threads}; open fds: {idle.fds} -> {busy.fds}")


if __name__ == "__main__":
    main()
