"""Container image benchmark (issue 19): image task launches per second beside plain ones,
the first pull of a 5-layer image, and the disk 100 tasks of one image use.

    python bench/image_bench.py [--tasks 200] [--rounds 2] [--layer_mb 4]

A real `docker-registry` on loopback serves an image built here: Debian's static busybox and
four more layers of `--layer_mb` MB of random bytes each (so five layers). Each round is a
fresh master and two agents with `--image_providers=docker` (cgroups isolation, the default
where the agent is root) and runs `--tasks` tasks of `touch $MESOS_SANDBOX/started; exec
sleep 300`: in the image (once the image is in both agents' stores: each agent first runs one
task of it, not counted) and, alternating, as plain processes. The rate counts from the first
launch to the moment every task's command has run (its `started` file exists; TASK_RUNNING
comes as soon as the runtime is started, before the container is up). Then:

- first pull: a fresh agent runs one task of the image; the time from the launch to its
  command running, beside the same for an agent that has the image;
- disk: 100 tasks of the image on one agent; the store's and the containers' disk use (du)
  beside what 100 copies of the image's root filesystem would take.

Prints figures only; nothing here is asserted. Needs root, runc, docker-registry, skopeo.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _cluster import BenchCluster, file_system, finish_work_dir, machine, run_tasks, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests' helpers

from mesos_runtime.logging import configure_logging
from tests.integration.registries import File, Image, Registry, build_image

TARGET_LAUNCHES_PER_SECOND = 30.0
CMD = "touch $MESOS_SANDBOX/started; exec sleep 300"
PLAIN_CMD = "touch started; exec sleep 300"
RESOURCES = "cpus:1000;mem:1000000;ports:[31000-32000]"


def five_layer_image(directory: Path, layer_mb: int) -> Image:
    layers = [{f"data/layer-{index}.bin": File(os.urandom(layer_mb * 2**20))}
              for index in range(4)]
    return build_image(directory, layers=layers, tag="v1")


def started(cluster: BenchCluster) -> int:
    return sum(1 for _ in cluster.work_dir.glob(
        "agent-*/slaves/*/frameworks/*/executors/*/runs/*/started"))


def du(*paths: Path) -> int:
    """Bytes on disk under `paths` (du -s, hard links counted once)."""
    existing = [str(p) for p in paths if p.exists()]
    if not existing:
        return 0
    out = subprocess.run(["du", "-s", "-B1", "-c", *existing], capture_output=True, text=True,
                         check=True).stdout
    return int(out.splitlines()[-1].split()[0])


def image_flags(registry: Registry) -> list[str]:
    return ["--image_providers=docker", f"--docker_registry={registry.url}"]


def launch_round(work_dir: Path, registry: Registry, tasks: int, *, in_image: bool,
                 log_level: str) -> float:
    """Tasks per second from the first launch to every command running."""
    work_dir.mkdir(parents=True)
    cluster = BenchCluster(work_dir, log_level, agent_flags=image_flags(registry))
    driver = None
    try:
        cluster.start_master()
        cluster.start_agent(RESOURCES)
        cluster.start_agent(RESOURCES)
        image = "bench/app:v1" if in_image else None
        if in_image:  # each agent pulls the image once, before the clock
            _, warm_driver = run_tasks(cluster, 10, CMD, 300, cpus=0.01, mem=1, image=image)
            wait_for(lambda: started(cluster) >= 10, "the warm-up tasks", 300)
            warm_driver.stop()
            warm_driver.join()
        before = started(cluster)
        scheduler, driver = run_tasks(cluster, tasks, CMD if in_image else PLAIN_CMD, 600,
                                      cpus=0.01, mem=1, image=image)
        wait_for(lambda: started(cluster) >= before + tasks, "every command to run", 600)
        assert scheduler.first_launch is not None
        return tasks / (time.perf_counter() - scheduler.first_launch)
    finally:
        if driver is not None:
            driver.stop()
            driver.join()
        cluster.close()


def first_pull(work_dir: Path, registry: Registry, log_level: str) -> tuple[float, float]:
    """Seconds from launch to the command running: on a fresh agent, then once more (cached)."""
    work_dir.mkdir(parents=True)
    cluster = BenchCluster(work_dir, log_level, agent_flags=image_flags(registry))
    try:
        cluster.start_master()
        cluster.start_agent(RESOURCES)
        times = []
        for count in (1, 2):
            scheduler, driver = run_tasks(cluster, 1, CMD, 300, cpus=0.01, mem=1,
                                          image="bench/app:v1")
            wait_for(lambda count=count: started(cluster) >= count,  # type: ignore[misc]
                     "the command to run", 300)
            assert scheduler.first_launch is not None
            times.append(time.perf_counter() - scheduler.first_launch)
            driver.stop()
            driver.join()
        return times[0], times[1]
    finally:
        cluster.close()


def disk_use(work_dir: Path, registry: Registry, log_level: str) -> tuple[int, int, int]:
    """(store bytes, containers' bytes, 100 copies' bytes) with 100 tasks running."""
    work_dir.mkdir(parents=True)
    cluster = BenchCluster(work_dir, log_level, agent_flags=image_flags(registry))
    driver = None
    try:
        cluster.start_master()
        cluster.start_agent(RESOURCES)
        _, driver = run_tasks(cluster, 100, CMD, 600, cpus=0.01, mem=1, image="bench/app:v1")
        wait_for(lambda: started(cluster) >= 100, "100 commands to run", 600)
        agent = work_dir / "agent-1"
        store = du(agent / "store")
        containers = du(*((agent / "runtime").glob("*/upper")))
        one_copy = du(agent / "store" / "docker" / "layers")  # the image's root filesystem
        return store, containers, 100 * one_copy
    finally:
        if driver is not None:
            driver.stop()
            driver.join()
        cluster.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--layer_mb", type=int, default=4)
    parser.add_argument("--log_level", default="INFO")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()
    configure_logging("WARNING")
    work_dir = Path(tempfile.mkdtemp(prefix="image-bench-"))
    print(f"machine: {machine()}")
    print(f"work dir on: {file_system(work_dir)}")
    try:
        with Registry(work_dir / "registry") as registry:
            image = five_layer_image(work_dir / "layout", args.layer_mb)
            registry.push(image, "bench/app")
            print(f"image: 5 layers (busybox + 4 x {args.layer_mb} MB), "
                  f"{sum(image.blob(d).stat().st_size for d in image.layer_digests) / 2**20:.1f}"
                  " MB compressed")
            rates: dict[bool, list[float]] = {False: [], True: []}
            for round_number in range(args.rounds):
                for in_image in (False, True) if round_number % 2 == 0 else (True, False):
                    os.sync()
                    rate = launch_round(work_dir / f"round-{round_number}-{in_image}",
                                        registry, args.tasks, in_image=in_image,
                                        log_level=args.log_level)
                    rates[in_image].append(rate)
                    kind = "image (cached)" if in_image else "plain"
                    print(f"round {round_number + 1}, {kind}: {args.tasks} tasks with their "
                          f"command running at {rate:.1f} tasks/s")
            plain, imaged = statistics.median(rates[False]), statistics.median(rates[True])
            verdict = "meets" if imaged >= TARGET_LAUNCHES_PER_SECOND else "misses"
            print(f"medians: plain {plain:.1f}, image {imaged:.1f} tasks/s "
                  f"({verdict} the >= {TARGET_LAUNCHES_PER_SECOND:g}/s target)")
            fresh, cached = first_pull(work_dir / "pull", registry, args.log_level)
            print(f"first task of the image on a fresh agent: {fresh:.2f} s to its command "
                  f"(pull of 5 layers included); the next one: {cached:.2f} s")
            store, containers, copies = disk_use(work_dir / "disk", registry, args.log_level)
            print(f"100 tasks of the image on one agent: store {store / 2**20:.1f} MB + "
                  f"containers' writable layers {containers / 2**20:.1f} MB; 100 copies of "
                  f"the image would take {copies / 2**20:.0f} MB")
    finally:
        finish_work_dir(work_dir, args.keep)


if __name__ == "__main__":
    main()
