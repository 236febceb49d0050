"""Allocator benchmark: the DRF allocator alone, no master, no network.

    python bench/allocator_bench.py [--agents 10000] [--frameworks 1000] [--samples 2000]

(a) cold start: every agent and framework added, then one `allocate()` that offers every agent;
(b) steady state: delay from `recover_resources(...)` to the offer callback inside the following
    `allocate()`, alternating a declined agent (with a 5 s filter) and a finished task;
(c) a full pass over every agent after a revive, with all agents already allocated;
(d) worst case for filters: one agent declined (60 s filter) by one framework after another, so
    each offer has to skip every framework that declined before it.
Prints figures only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import statistics
import time
from collections.abc import Sequence

from mesos_master.allocator import Allocator, Grant
from mesos_runtime.clock import SystemClock
from mesos_values.resources import Resources

AGENT = Resources.parse("cpus:16;mem:65536;disk:100000;ports:[31000-32000]")
TASK = Resources.parse("cpus:1;mem:1024;disk:100;ports:[31000-31000]")


def machine() -> str:
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()}"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--frameworks", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    offered_at: list[float] = []

    def on_offer(framework_id: str, grants: Sequence[Grant]) -> None:
        if not offered_at:
            offered_at.append(time.perf_counter())

    allocator = Allocator(clock=SystemClock(), offer_callback=on_offer)
    print(f"machine: {machine()}")
    print(f"cluster: {args.agents} agents x {AGENT}, {args.frameworks} frameworks")

    started = time.perf_counter()
    for i in range(args.agents):
        allocator.add_agent(f"agent-{i}", AGENT)
    frameworks = [f"framework-{i}" for i in range(args.frameworks)]
    for framework_id in frameworks:
        allocator.add_framework(framework_id)
    added = time.perf_counter()
    offers = allocator.allocate()
    first_round = time.perf_counter() - added
    print(f"setup (add agents + frameworks): {added - started:.3f} s")
    print(f"(a) cold start, one allocate() offering {offers} agents: {first_round:.3f} s")

    delays: list[float] = []
    for sample in range(args.samples):
        framework_id = rng.choice(frameworks)
        held = allocator.allocation(framework_id)
        while not held:
            framework_id = rng.choice(frameworks)
            held = allocator.allocation(framework_id)
        agent_id = rng.choice(list(held))
        offered_at.clear()
        if sample % 2 == 0 or not held[agent_id].contains(TASK):
            begin = time.perf_counter()
            allocator.recover_resources(framework_id, "*", agent_id, held[agent_id], 5.0)
        else:
            begin = time.perf_counter()
            allocator.recover_resources(framework_id, "*", agent_id, TASK)
        allocator.allocate()
        if offered_at:
            delays.append(offered_at[0] - begin)
    if delays:
        print(
            f"(b) recover_resources + allocate() -> offer, {len(delays)} samples: "
            f"p50 {statistics.median(delays) * 1e3:.3f} ms, "
            f"p99 {percentile(delays, 0.99) * 1e3:.3f} ms, max {max(delays) * 1e3:.3f} ms"
        )

    allocator.revive(frameworks[0])
    begin = time.perf_counter()
    allocator.allocate()
    print(f"(c) full pass after a revive: {(time.perf_counter() - begin) * 1e3:.1f} ms")

    agent_id = "agent-0"
    chain: list[float] = []
    for _ in range(args.frameworks - 1):
        holder = next(f for f in frameworks if agent_id in allocator.allocation(f))
        offered_at.clear()
        begin = time.perf_counter()
        held_here = allocator.allocation(holder)[agent_id]
        allocator.recover_resources(holder, "*", agent_id, held_here, 60)
        allocator.allocate()
        if not offered_at:
            break
        chain.append(offered_at[0] - begin)
    print(
        f"(d) decline chain on one agent, {len(chain)} declines: "
        f"p50 {statistics.median(chain) * 1e3:.3f} ms, p99 {percentile(chain, 0.99) * 1e3:.3f} ms, "
        f"last {chain[-1] * 1e3:.3f} ms"
    )


if __name__ == "__main__":
    main()
