"""Batch benchmark: short tasks of one array job completed per second, end to end.

    python bench/batch_bench.py [--tasks 10000] [--repeat 1] [--agents 2] [--variant real]
        [--cmd true] [--cpus 0.01] [--mem 32] [--profile DIR]

A real master (`python -m mesos_master`), `--agents` agents of `--agent_resources` and the batch
framework (`python -m frameworks.batch`). One job of `run.arraySize: --tasks` short commands is
created and each of `--repeat` runs is started with `POST /v1/jobs/{id}/runs`; a run counts from
its `createdAt` to its `completedAt` (both stamped by the batch framework) once it is SUCCESS.
The steady rate is the slope between 10 % and 90 % of the tasks finished, read from the batch
framework's `/metrics` (`batch_tasks_finished_total`) every `--poll` seconds. CPU per task is
user+sys time of each component over the run, divided by the tasks.

Variants: `real` runs real agents (each task is a process the agent forks); `hollow` runs
`bench/hollow_agents.py` agents instead (the real agent protocol, no fork: `true` finishes at
once), to show what the master and the batch framework manage without the agents' fork limit.
For scale, the machine's raw rate of spawning `/bin/sh -c CMD` from one Python process is
measured first (`launch_bench.spawn_popen`). Every process started is killed before exit.
Prints figures only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import shlex
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import psutil
from _cluster import BenchCluster, Profilers, finish_work_dir, free_port, machine, wait_for
from launch_bench import spawn_popen

from mesos_runtime.logging import configure_logging

TARGET_TASKS_PER_SECOND = 300.0
JOB_ID = "bench"
HOLLOW = Path(__file__).resolve().parent / "hollow_agents.py"
METRIC = re.compile(r"^batch_(tasks_finished|runs_succeeded|runs_failed)_total (\d+)$", re.M)


class BatchBenchCluster(BenchCluster):
    """A `BenchCluster` that also runs the batch framework and hollow agents."""

    def start_master(self) -> None:
        """The base class's master, with its HTTP port picked free (`MESOS_HTTP_PORT=0`) so
        that it never collides with another master on the default port."""
        previous = os.environ.get("MESOS_HTTP_PORT")
        os.environ["MESOS_HTTP_PORT"] = "0"
        try:
            super().start_master()
        finally:
            if previous is None:
                del os.environ["MESOS_HTTP_PORT"]
            else:
                os.environ["MESOS_HTTP_PORT"] = previous

    def start_batch(self) -> tuple[psutil.Process, httpx.Client]:
        """Start the batch framework; returns it and a client once it has registered."""
        port = free_port()
        process = self.start_process("batch", [
            "-m", "frameworks.batch", "--master", self.master_address, "--http_port", str(port),
            "--work_dir", str(self.work_dir / "batch"),
        ])
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

        def registered() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the batch framework exited:\n{self.log('batch')}")
            try:
                return bool(client.get("/info").json()["frameworkId"])
            except httpx.HTTPError:
                return False

        wait_for(registered, "the batch framework to register", 60.0)
        return psutil.Process(process.pid), client

    def start_hollow_agents(self, count: int, resources: str) -> psutil.Process:
        """Start `count` hollow agents in one process; returns once all have registered."""
        process = self.start_process("hollow", [
            str(HOLLOW), "--master", self.master_address, "--agents", str(count),
            "--resources", resources,
        ])

        def registered() -> bool:
            if process.poll() is not None:
                raise RuntimeError(f"the hollow agents exited:\n{self.log('hollow')}")
            return '"all_registered"' in self.log("hollow")

        wait_for(registered, "the hollow agents to register", 60.0)
        return psutil.Process(process.pid)


@dataclass(frozen=True)
class RunFigures:
    """One measured run."""

    variant: str
    tasks: int
    seconds: float
    steady_rate: float
    cpu_ms_per_task: dict[str, float]

    @property
    def rate(self) -> float:
        return self.tasks / self.seconds


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _counters(client: httpx.Client) -> dict[str, int]:
    """Tasks finished and runs ended so far, from the batch framework's `/metrics`."""
    return {name: int(value) for name, value in METRIC.findall(client.get("/metrics").text)}


def _steady_rate(samples: list[tuple[float, int]], first: int, tasks: int) -> float:
    """Tasks per second between 10 % and 90 % finished (interpolated between samples)."""

    def crossing(goal: float) -> float:
        for (t0, n0), (t1, n1) in itertools.pairwise(samples):
            if n0 - first < goal <= n1 - first:
                return t0 + (t1 - t0) * (goal - (n0 - first)) / (n1 - n0)
        return samples[-1][0]

    low, high = crossing(0.1 * tasks), crossing(0.9 * tasks)
    return 0.8 * tasks / (high - low) if high > low else float("nan")


def _parse_time(text: str) -> float:
    """Seconds since the epoch of a Metronome timestamp (`2016-07-15T13:02:59.735+0000`)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()


def measure_run(variant: str, client: httpx.Client, components: dict[str, psutil.Process],
                args: argparse.Namespace) -> RunFigures:
    """Start one run of the job and follow it to SUCCESS."""
    before = _counters(client)
    first = before["tasks_finished"]
    cpu_before = {name: _cpu_seconds(process) for name, process in components.items()}
    started = client.post(f"/v1/jobs/{JOB_ID}/runs")
    if started.status_code != 201:
        raise RuntimeError(f"starting a run: {started.status_code} {started.text}")
    run_id = started.json()["id"]
    samples: list[tuple[float, int]] = []
    deadline = time.monotonic() + args.timeout
    ended = before["runs_succeeded"] + before["runs_failed"] + 1
    while True:
        counters = _counters(client)
        samples.append((time.monotonic(), counters["tasks_finished"]))
        if counters["runs_succeeded"] + counters["runs_failed"] >= ended:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"run {run_id} not done after {args.timeout} s: "
                               f"{samples[-1][1] - first}/{args.tasks} tasks finished")
        time.sleep(args.poll)
    cpu = {name: _cpu_seconds(p) - cpu_before[name] for name, p in components.items()}
    run: dict[str, Any] = client.get(f"/v1/jobs/{JOB_ID}/runs/{run_id}").json()
    if run["status"] != "SUCCESS":
        raise RuntimeError(f"run {run_id} is {run['status']}: {run['tasks'][-5:]}")
    seconds = _parse_time(run["completedAt"]) - _parse_time(run["createdAt"])
    return RunFigures(variant, args.tasks, seconds, _steady_rate(samples, first, args.tasks),
                      {name: 1000 * value / args.tasks for name, value in cpu.items()})


def bench_variant(variant: str, args: argparse.Namespace, work_dir: Path) -> list[RunFigures]:
    """Start a cluster of the variant, create the job, measure `--repeat` runs."""
    work_dir.mkdir(parents=True)
    cluster = BatchBenchCluster(work_dir, args.log_level)
    profilers = Profilers(args.profile / variant if args.profile else None)
    client: httpx.Client | None = None
    try:
        cluster.start_master()
        assert cluster.master is not None
        components = {"master": psutil.Process(cluster.master.pid)}
        if variant == "hollow":
            components["hollow agents"] = cluster.start_hollow_agents(args.agents,
                                                                      args.agent_resources)
        else:
            for index in range(args.agents):
                agent = cluster.start_agent(args.agent_resources)
                components[f"agent-{index + 1}"] = psutil.Process(agent.pid)
        components["batch"], client = cluster.start_batch()
        job = {"id": JOB_ID, "run": {"cmd": args.cmd, "cpus": args.cpus, "mem": args.mem,
                                     "disk": 0, "arraySize": args.tasks}}
        created = client.post("/v1/jobs", json=job)
        if created.status_code != 201:
            raise RuntimeError(f"creating the job: {created.status_code} {created.text}")
        for name, process in components.items():
            profilers.attach(name.replace(" ", "-"), process.pid)
        return [measure_run(variant, client, components, args) for _ in range(args.repeat)]
    finally:
        profilers.stop()
        if client is not None:
            client.close()
        cluster.close()


def print_table(results: list[RunFigures]) -> None:
    names = list(dict.fromkeys(name for result in results for name in result.cpu_ms_per_task))
    header = ["variant", "tasks", "start->SUCCESS s", "tasks/s", "steady tasks/s",
              *(f"{name} CPU ms/task" for name in names)]
    rows = [[r.variant, str(r.tasks), f"{r.seconds:.2f}", f"{r.rate:.0f}", f"{r.steady_rate:.0f}",
             *(f"{r.cpu_ms_per_task[n]:.2f}" if n in r.cpu_ms_per_task else "-" for n in names)]
            for r in results]
    for variant in dict.fromkeys(r.variant for r in results):
        rates = [r.rate for r in results if r.variant == variant]
        if len(rates) > 1:
            rows.append([f"{variant} (min/median/max)", "", "",
                         f"{min(rates):.0f}/{statistics.median(rates):.0f}/{max(rates):.0f}",
                         *[""] * (len(header) - 4)])
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)))


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000, help="arraySize of the job")
    parser.add_argument("--repeat", type=int, default=1, help="runs measured per variant")
    parser.add_argument("--variant", choices=("real", "hollow", "both"), default="real")
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--agent_resources", default="cpus:1000;mem:1000000;ports:[31000-32000]")
    parser.add_argument("--cmd", default="true", help="shell command of every task")
    parser.add_argument("--cpus", type=float, default=0.01, help="CPUs per task")
    parser.add_argument("--mem", type=float, default=32.0,
                        help="memory (MB) per task (the job spec's minimum is 32)")
    parser.add_argument("--raw_count", type=int, default=2_000,
                        help="processes spawned for the raw rate (0: skip)")
    parser.add_argument("--poll", type=float, default=0.2, help="seconds between progress reads")
    parser.add_argument("--log_level", default="INFO",
                        help="log level of every component")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up on a run after (s)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record py-spy profiles (collapsed stacks) of every component here")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    args = parser.parse_args()
    configure_logging("WARNING")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _terminate)

    print(f"command: python bench/batch_bench.py {shlex.join(sys.argv[1:])}")
    print(f"machine: {machine()}")
    print("load average at start (1/5/15 min): "
          + " / ".join(f"{load:.2f}" for load in os.getloadavg()))
    print(f"job: arraySize {args.tasks} of `{args.cmd}` (cpus {args.cpus}, mem {args.mem}); "
          f"{args.agents} agents of {args.agent_resources}; components at {args.log_level}")
    work_dir = Path(tempfile.mkdtemp(prefix="batch-bench-"))
    try:
        if args.raw_count > 0:
            raw = spawn_popen(args.raw_count, args.cmd, work_dir / "raw")
            print(f"raw spawn of `/bin/sh -c {args.cmd}` from one Python process "
                  f"(subprocess.Popen): {raw:.0f} processes/s")
        variants = ("real", "hollow") if args.variant == "both" else (args.variant,)
        results = [result for variant in variants
                   for result in bench_variant(variant, args, work_dir / variant)]
        print_table(results)
        print("load average at end (1/5/15 min): "
              + " / ".join(f"{load:.2f}" for load in os.getloadavg()))
        real = [r.rate for r in results if r.variant == "real"]
        if real:
            verdict = "meets" if statistics.median(real) >= TARGET_TASKS_PER_SECOND else "MISSES"
            print(f"real agents: median {statistics.median(real):.0f} tasks/s ({verdict} the "
                  f">= {TARGET_TASKS_PER_SECOND:.0f} tasks/s target)")
    finally:
        finish_work_dir(work_dir, args.keep)


if __name__ == "__main__":
    main()
