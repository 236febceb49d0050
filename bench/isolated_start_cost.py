"""What an isolated container's start costs, step by step (issue 22; ADR 0014, 0019).

    python bench/isolated_start_cost.py [--containers 1000] [--variants full,cgroups,pid,plain]
                                        [--helper PATH] [--rounds 2]

Spawns `--containers` containers of `sleep 600` through one spawn server (`mesos-launch
--serve`, `SpawnServer.spawn`, as the agent does: the child makes the sandbox) with the
`mesos-launch` options the isolators produce for `cgroups/cpu,cgroups/mem,namespaces/pid`
(`full`: three premade cgroups renamed, a cpu share and a memory limit written, three
`cgroup.procs` joins, a pid namespace with its /proc), or with some of them left out:

    plain     no options (the command exec'd by the server's child)
    cgroups   -k -k -k -w -w -c -c -c
    nolimits  -k -k -k -c -c -c (no limit writes)
    joins     -c -c -c into cgroups made beforehand (no rename, no writes)
    mount     -m (a private mount namespace only)
    pid       -p (pid and mount namespaces, /proc mounted)
    full      cgroups + pid

`--helper` picks a `mesos-launch` binary (default: the one built from this tree), so variants
of the program (a step compiled out) can be compared; `--helpers A,B` alternates two.

For each variant and round it prints: the wall time from the first request until every
command has exec'd (`/proc/PID/comm` is `sleep`), the CPU of every container's processes
(the server's child, the namespace's init, the command: `/proc/PID/schedstat`, exact) per
container, the server's CPU per container, and the whole machine's busy time (/proc/stat,
less this process's own CPU; other users of the machine count too) per container, for the
start and, separately, for the teardown (SIGKILL, wait, rmdir of the cgroups). Nothing is
asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import os
import resource
import shutil
import signal
import statistics
import tempfile
import time
from pathlib import Path

from mesos_agent.containerizer.cgroups import Cgroups, mounts_under
from mesos_agent.containerizer.launch_helper import launch_helper
from mesos_agent.containerizer.spawn_server import Spawned, SpawnServer

CONTROLLERS = ("cpu", "cpuacct", "memory")
VARIANTS = ("plain", "cgroups", "nolimits", "joins", "mount", "pid", "full")


def _busy_seconds() -> float:
    """The machine's busy CPU seconds since boot (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    busy = sum(fields[:8]) - fields[3] - fields[4]
    return busy / os.sysconf("SC_CLK_TCK")


def _own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _run_time(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/schedstat") as stat:
            return int(stat.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as listing:
            return [int(p) for p in listing.read().split()]
    except OSError:
        return []


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as comm:
            return comm.read().strip()
    except OSError:
        return ""


def _tree(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        p = pending.pop()
        found.append(p)
        pending += _children(p)
    return found


def _commands_running(pid: int) -> bool:
    return any(_comm(p) == "sleep" for p in _tree(pid))


async def _remove(cgroup: str) -> None:
    """rmdir a cgroup, waiting while its last processes exit (EBUSY)."""
    while True:
        try:
            os.rmdir(cgroup)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno != errno.EBUSY:
                raise
            await asyncio.sleep(0.01)


def _options(variant: str, cgroups: Cgroups, container: str, premade: dict[str, str]) -> list[str]:
    options: list[str] = []
    if variant in ("cgroups", "nolimits", "full"):
        for controller in CONTROLLERS:
            options += ["-k", f"{cgroups.base(controller)}/{container}", premade[controller]]
    if variant in ("cgroups", "full"):
        options += ["-w", cgroups.control_file("cpu", container, "cpu.shares"), "10",
                    "-w", cgroups.control_file("memory", container, "memory.limit_in_bytes"),
                    str(32 << 20)]
    if variant in ("cgroups", "nolimits", "joins", "full"):
        for controller in CONTROLLERS:
            options += ["-c", cgroups.procs_file(controller, container)]
    if variant == "mount":
        options.append("-m")
    if variant in ("pid", "full"):
        options.append("-p")
    return options


async def _round(helper: str, variant: str, count: int, work: Path, cgroups: Cgroups,
                 tag: str) -> dict[str, float]:
    server = SpawnServer(helper)
    environment = dict(os.environ, MESOS_TASK_ID="task", MESOS_SANDBOX="/x", LANG="C.UTF-8")
    premade: list[dict[str, str]] = []
    uses_cgroups = variant in ("cgroups", "nolimits", "joins", "full")
    if uses_cgroups:  # the agent's pool (ADR 0014, decision 8), or the cgroups themselves
        for index in range(count):
            names = {}
            for controller in CONTROLLERS:
                name = f"{tag}-{index}" if variant == "joins" else f"pool-{tag}-{index}"
                os.mkdir(f"{cgroups.base(controller)}/{name}")
                names[controller] = name
            premade.append(names)
    # the server started and warm before the clock
    warm = await server.spawn(["--", "true"], environment, str(work / "warm"), None,
                              report_exec_errors=False, pwd_from_cwd=True)
    await warm.exit_code
    await asyncio.sleep(0.5)
    assert server._process is not None
    server_pid = server._process.pid
    server_before = _run_time(server_pid)
    busy, own = _busy_seconds(), _own_seconds()
    started_at = time.perf_counter()
    spawned: list[Spawned] = await asyncio.gather(*(
        server.spawn([*_options(variant, cgroups, f"{tag}-{index}",
                                premade[index] if uses_cgroups else {}),
                      "--", "sleep", "600"],
                     environment, str(work / f"sandbox-{index}"), None,
                     report_exec_errors=False, pwd_from_cwd=True)
        for index in range(count)))
    answered = time.perf_counter() - started_at
    waiting = [s.pid for s in spawned]
    while waiting:
        waiting = [pid for pid in waiting if not _commands_running(pid)]
        if waiting:
            await asyncio.sleep(0.02)
    running = time.perf_counter() - started_at
    start_busy = _busy_seconds() - busy - (_own_seconds() - own)
    server_cpu = _run_time(server_pid) - server_before
    per_container = [sum(_run_time(p) for p in _tree(s.pid)) for s in spawned]
    processes = sum(len(_tree(s.pid)) for s in spawned)
    # teardown: as the agent's destroy does it (the process group, then the cgroups)
    busy, own = _busy_seconds(), _own_seconds()
    torn_at = time.perf_counter()
    for s in spawned:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(s.pid, signal.SIGKILL)
    await asyncio.gather(*(s.exit_code for s in spawned))
    if uses_cgroups:
        for index in range(count):
            for controller in CONTROLLERS:
                for name in (f"{tag}-{index}", f"pool-{tag}-{index}"):
                    await _remove(f"{cgroups.base(controller)}/{name}")
    torn = time.perf_counter() - torn_at
    teardown_busy = _busy_seconds() - busy - (_own_seconds() - own)
    server.close()
    shutil.rmtree(work, ignore_errors=True)
    return {"answered": answered, "running": running, "rate": count / running,
            "container_ms": 1000 * statistics.fmean(per_container),
            "container_median_ms": 1000 * statistics.median(per_container),
            "processes": processes / count,
            "server_ms": 1000 * server_cpu / count,
            "machine_ms": 1000 * start_busy / count,
            "teardown_s": torn, "teardown_machine_ms": 1000 * teardown_busy / count}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--containers", type=int, default=1000)
    parser.add_argument("--variants", default="full,cgroups,pid,plain")
    parser.add_argument("--helper", default=None, help="a mesos-launch binary")
    parser.add_argument("--helpers", default=None,
                        help="two or more mesos-launch binaries, alternated per variant")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pause", type=float, default=3.0,
                        help="seconds between two measurements (the last one's teardown)")
    parser.add_argument("--work_dir", default=None,
                        help="where the sandboxes go (default: a new directory in the "
                        "system's temporary directory; e.g. /dev/shm to leave the disk's "
                        "file system out)")
    parser.add_argument("--cgroups_root", default=f"isolated-start-{os.getpid()}")
    args = parser.parse_args()
    helpers = (args.helpers.split(",") if args.helpers
               else [args.helper or launch_helper() or ""])
    if not all(helpers):
        raise SystemExit("no mesos-launch (it needs a C compiler)")
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants: {', '.join(sorted(unknown))}")
    cgroups = Cgroups(mounts_under(Path("/sys/fs/cgroup")), args.cgroups_root)
    for controller in CONTROLLERS:
        cgroups.check(controller)
    print(f"load average at the start: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{args.containers} containers of `sleep 600` per round, helpers: "
          + ", ".join(Path(h).name for h in helpers))
    root = Path(tempfile.mkdtemp(prefix="isolated-start-", dir=args.work_dir))
    print(f"sandboxes under {root}")
    try:
        for round_number in range(1, args.rounds + 1):
            for variant in variants:
                for helper_index, helper in enumerate(helpers):
                    time.sleep(args.pause)
                    load = os.getloadavg()[0]
                    tag = f"r{round_number}-{variant}-{helper_index}"
                    result = asyncio.run(_round(helper, variant, args.containers,
                                                root / tag, cgroups, tag))
                    print(f"round {round_number} {variant:8} {Path(helper).name}: load {load:.2f}; "
                          f"all running in {result['running']:.2f} s "
                          f"({result['rate']:.0f}/s; answered {result['answered']:.2f} s); "
                          f"containers' processes {result['container_ms']:.2f} ms each "
                          f"(median {result['container_median_ms']:.2f}, "
                          f"{result['processes']:.0f} processes); server "
                          f"{result['server_ms']:.3f} ms; machine {result['machine_ms']:.2f} "
                          f"ms/container; teardown {result['teardown_s']:.2f} s, machine "
                          f"{result['teardown_machine_ms']:.2f} ms/container", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        for controller in CONTROLLERS:
            with contextlib.suppress(OSError):
                os.rmdir(cgroups.base(controller))


if __name__ == "__main__":
    main()
