"""The containerizer's own CPU per launch, isolated or not (issue 22; ADR 0014, decision 9).

    python bench/isolated_agent_cost.py [--containers 1000] [--rounds 2] [--isolations
        posix/cpu,posix/mem:cgroups/cpu,namespaces/pid:cgroups/cpu,cgroups/mem,namespaces/pid]

Launches `--containers` containers of `sleep 600` at once through a `PosixContainerizer` built
as the agent builds it (`create_containerizer`, its cgroup pool kept, the spawn server), in
this process, and prints this process's CPU (its threads' included) per container from the
first launch until every launch has returned and, with `cgroups/mem`, every container's OOM
eventfd is registered; and how many registrations were tried (a try before the container's
process has made its memory cgroup finds none and is tried again). Sandboxes go to /dev/shm
(the disk's file system left out). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from mesos_agent.config import IsolationConfig
from mesos_agent.containerizer import ContainerConfig
from mesos_agent.containerizer import isolators as isolators_module
from mesos_agent.containerizer.create import create_containerizer
from mesos_values.resources import Resources

_tries = {"all": 0, "missing": 0}
_register = isolators_module._register_oom_event


def _counted(cgroup: str) -> int:
    _tries["all"] += 1
    try:
        return _register(cgroup)
    except FileNotFoundError:
        _tries["missing"] += 1
        raise


isolators_module._register_oom_event = _counted


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _round(count: int, isolation: tuple[str, ...]) -> str:
    _tries.update(all=0, missing=0)
    root = f"agent-cost-{os.getpid()}"
    containerizer = create_containerizer(
        IsolationConfig(isolation=isolation, cgroups_root=root),
        Path("/nonexistent"))
    keeper = asyncio.ensure_future(containerizer.run())
    await asyncio.sleep(2.0)  # the cgroup pool made (ADR 0014, decision 8)
    work = Path(tempfile.mkdtemp(prefix="agent-cost-", dir="/dev/shm"))
    configs = [ContainerConfig(container_id=str(uuid.uuid4()), argv=("sleep", "600"),
                               environment={"PATH": os.environ["PATH"]},
                               sandbox=work / str(index),
                               resources=Resources.parse("cpus:0.01;mem:32"), user="")
               for index in range(count)]
    watched = "cgroups/mem" in isolation
    cpu, started = _cpu(), time.perf_counter()
    await asyncio.gather(*(containerizer.launch(config) for config in configs))
    launched = time.perf_counter() - started
    while watched and _tries["all"] - _tries["missing"] < count:  # noqa: ASYNC110 (a counter)
        await asyncio.sleep(0.01)
    registered = time.perf_counter() - started
    cpu = _cpu() - cpu
    await asyncio.gather(*(containerizer.destroy(config.container_id) for config in configs))
    keeper.cancel()
    await asyncio.gather(keeper, return_exceptions=True)
    shutil.rmtree(work, ignore_errors=True)
    for hierarchy in ("cpu", "cpuacct", "memory"):  # the (now empty) --cgroups_root
        with contextlib.suppress(OSError):
            os.rmdir(f"/sys/fs/cgroup/{hierarchy}/{root}")
    return (f"launched in {launched:.2f} s, OOM eventfds registered at {registered:.2f} s; "
            f"containerizer CPU {1000 * cpu / count:.3f} ms/container; registrations tried "
            f"{_tries['all']} ({_tries['missing']} before the cgroup existed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--isolations", default="posix/cpu,posix/mem:cgroups/cpu,namespaces/pid:"
                        "cgroups/cpu,cgroups/mem,namespaces/pid",
                        help="isolator lists separated by ':'")
    args = parser.parse_args()
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    for round_number in range(1, args.rounds + 1):
        for isolation in args.isolations.split(":"):
            time.sleep(2.0)  # the previous round's teardown
            load = os.getloadavg()[0]
            result = asyncio.run(_round(args.containers, tuple(isolation.split(","))))
            print(f"round {round_number} {isolation} (load {load:.2f}): {result}", flush=True)


if __name__ == "__main__":
    main()
