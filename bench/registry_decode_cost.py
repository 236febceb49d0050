"""What building a new leader's core from the registry costs (ADR 0018, "The registry at the
election").

    python bench/registry_decode_cost.py [--agents 10000] [--frameworks 100] [--repeat 5]
        [--profile FILE]

Builds a registry of `--agents` agents (the hollow agents' AgentInfo: `--resources`, their
dynamic reservations as none) and `--frameworks` frameworks with the core's own `Registry`
writes, then times, in CPU seconds (the best of `--repeat`):

    decode   `RegistryState.decode(entries)` then `Master(...)`: the election as it reads the
             entries itself (no standby copy, or a stale one)
    decoded  `RegistryDecoder.take(entries)` then `Master(...)`, the decoder having decoded the
             same entries before (a standby's copy, decoded while standing by): the election
             when the takeover used the copy
    standby  the standby's share: `RegistryDecoder.update(entries)` from empty (its first copy)
             and after one agent entry changed

Runs against an older tree too (`PYTHONPATH=<tree>`): without `RegistryDecoder` only `decode`
is printed. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import time
from collections.abc import Callable
from pathlib import Path

from mesos_coordination.store import MemorySink
from mesos_master import registry
from mesos_master.config import MasterConfig
from mesos_master.master import Master
from mesos_master.registry import Registry, RegistryState
from mesos_runtime.clock import SystemClock, WallClock
from mesos_runtime.logging import configure_logging
from mesos_values.resources import Resources
from protos import mesos_pb2

INFO = mesos_pb2.MasterInfo(id="bench-master", hostname="localhost", address="127.0.0.1",
                            port=1)


def registry_entries(agents: int, frameworks: int, resources: Resources) -> dict[str, bytes]:
    sink = MemorySink()
    writes = Registry(sink, {})
    for index in range(agents):
        writes.store_agent(mesos_pb2.AgentInfo(
            id=mesos_pb2.AgentID(value=f"master-S{index}"), hostname=f"hollow-{index}",
            address="127.0.0.1", port=5051, resources=resources.to_proto()))
    for index in range(frameworks):
        writes.store_framework(mesos_pb2.FrameworkInfo(
            id=mesos_pb2.FrameworkID(value=f"framework-{index}"), name=f"bench-{index}",
            user="root", roles=["*"],
            capabilities=[mesos_pb2.FrameworkInfo.Capability(
                type=mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE)]))
    return sink.entries


def best(repeat: int, run: Callable[[], object]) -> float:
    """The least CPU seconds of `repeat` runs (the collector frozen as at the election)."""
    times = []
    for _ in range(repeat):
        gc.collect()
        gc.freeze()
        started = time.process_time()
        run()
        times.append(time.process_time() - started)
        gc.unfreeze()
    return min(times)


def core(recovered: RegistryState) -> Master:
    return Master(INFO, SystemClock(), MasterConfig(), recovered=recovered,
                  wall_clock=WallClock().now)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--frameworks", type=int, default=100)
    parser.add_argument("--resources", default="cpus:8;mem:16384;disk:100000;ports:[31000-32000]")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--profile", type=Path, default=None,
                        help="cProfile the `decode` path once into this file")
    args = parser.parse_args()
    configure_logging("WARNING")
    entries = registry_entries(args.agents, args.frameworks, Resources.parse(args.resources))
    print(f"{args.agents} agents, {args.frameworks} frameworks, best of {args.repeat} "
          "(CPU seconds):")
    if args.profile is not None:
        cProfile.runctx("core(RegistryState.decode(entries))", globals(),
                        {"core": core, "RegistryState": RegistryState, "entries": entries},
                        str(args.profile))
    decode = best(args.repeat, lambda: core(RegistryState.decode(entries)))
    print(f"  decode   {decode:.3f} s (RegistryState.decode + Master)")
    RegistryDecoder = getattr(registry, "RegistryDecoder", None)  # absent from older trees
    if RegistryDecoder is None:
        return

    def decoded() -> None:
        decoder = RegistryDecoder()
        decoder.update(entries)
        gc.collect()
        gc.freeze()
        started = time.process_time()
        core(decoder.take(dict(entries)))
        times.append(time.process_time() - started)
        gc.unfreeze()

    times: list[float] = []
    for _ in range(args.repeat):
        decoded()
    print(f"  decoded  {min(times):.3f} s (RegistryDecoder.take + Master)")
    first = best(args.repeat, lambda: RegistryDecoder().update(entries))
    decoder = RegistryDecoder()
    decoder.update(entries)
    # A copy read again: every value another object (compared, not decoded), one agent changed.
    again = {key: bytes(bytearray(value)) for key, value in entries.items()}
    key = next(k for k in entries if k.startswith("agents/"))
    again[key] = entries[next(k for k in entries if k.startswith("agents/") and k != key)]
    reread = best(args.repeat, lambda: decoder.update(again))
    print(f"  standby  {first:.3f} s (first copy), {1000 * reread:.1f} ms (a copy read again, "
          "one agent changed)")


if __name__ == "__main__":
    main()
