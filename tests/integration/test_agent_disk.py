"""Disk: the `disk/du` quota, an agent on a work directory that fills up, and sandbox GC, with
real agents on a small tmpfs (mounted per test; we are root) and a real master.

- A batch of checkpoint writes that does not fit is undone and retried (`apply_batch` on a
  full file system), so the agent keeps serving instead of exiting.
- A task writing past its `disk` ends TASK_FAILED with REASON_CONTAINER_LIMITATION_DISK.
- A task filling the whole work directory does not take the agent down, nor a restart of it.
- Sandboxes of finished containers are deleted after `--gc_delay`, live ones never.
"""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from frameworks import OfferBudget, SchedulerDriver, command_task
from mesos_agent.containerizer import ContainerConfig, PosixContainerizer
from mesos_agent.containerizer.disk import DiskDuIsolator
from mesos_agent.group_commit import Append, FileOp, OutOfSpace, Replace, apply_batch
from mesos_values.resources import Resources
from protos import mesos_pb2
from tests.integration.cluster import Cluster, free_port, running_cluster, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import running, sleep_pids

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root"),
]

DISK_REASON = mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION_DISK
AGENT_RESOURCES = "cpus:4;mem:4096;disk:30;ports:[31000-31099]"


def mount_tmpfs(path: Path, size: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                   check=True)


def unmount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 32 MB tmpfs for an agent's work directory (unmounted after the cluster stopped)."""
    mount = tmp_path / "small-disk"
    mount_tmpfs(mount, "32m")
    try:
        yield mount
    finally:
        unmount(mount)


@pytest.fixture
def cluster(small_disk: Path, tmp_path: Path) -> Iterator[Cluster]:
    """A master; agents run with the POSIX isolators (what is tested here needs no cgroups;
    under cgroups a tmpfs' pages also count as the writing task's memory) and look at their
    disk for sandboxes to collect often."""
    with running_cluster(tmp_path, FAST_MASTER_FLAGS) as started:
        started.agent_flags += ["--isolation=posix/cpu,posix/mem", "--disk_watch_interval=0.2secs"]
        yield started


def fill(path: Path) -> None:
    """Write zeros to `path` until the file system is full."""
    chunk = b"\0" * 65536
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    return
                chunk = chunk[: len(chunk) // 2]
    finally:
        os.close(fd)


class Launcher(RecordingScheduler):
    """Launches the tasks queued with `launch`, one per offer, each with `disk` MB; what a
    launch leaves of an offer comes back at once (no refuse filter)."""

    def __init__(self, disk: float = 0.0) -> None:
        super().__init__(on_offers=self._offers)
        self.queue: list[tuple[str, str]] = []
        self.disk = disk

    def launch(self, task_id: str, cmd: str) -> None:
        with self.lock:
            self.queue.append((task_id, cmd))

    def _offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            with self.lock:
                task = self.queue.pop(0) if self.queue else None
            if task is None:
                driver.decline_offer(offer.id, filters=1)
                continue
            driver.launch_tasks(offer.id, [command_task(
                task[0], OfferBudget(offer), task[1], cpus=0.1, mem=256, disk=self.disk)],
                filters=0)


def run_dirs(work_dir: Path) -> dict[str, Path]:
    """The sandboxes under `work_dir`, by task (executor) id."""
    return {run.parents[1].name: run
            for run in (work_dir / "slaves").glob("*/frameworks/*/executors/*/runs/*")}


# ------------------------------------------------------------------ checkpoints on a full disk


def test_a_batch_that_does_not_fit_is_undone_and_fits_once_space_is_freed(tmp_path: Path) -> None:
    disk = tmp_path / "tiny"
    mount_tmpfs(disk, "1m")
    try:
        log, state = disk / "meta/tasks.log", disk / "meta/state.json"
        apply_batch([Append(log, b"kept\n"), Replace(state, b"old")], syncfs=None)
        filler = disk / "filler"
        fill(filler)
        before = {path: path.read_bytes() for path in (log, state)}
        batch: list[FileOp] = [Append(log, b"a" * 4096), Append(disk / "meta/new.log", b"b"),
                 Replace(state, b"n" * 200_000), Append(log, b"c" * 200_000)]

        with pytest.raises(OutOfSpace) as raised:
            apply_batch(batch, syncfs=None)
        assert raised.value.errno == errno.ENOSPC
        assert {path: path.read_bytes() for path in (log, state)} == before
        assert sorted(p.name for p in (disk / "meta").iterdir()) == ["state.json", "tasks.log"]

        filler.unlink()
        apply_batch(batch, syncfs=None)  # the same batch, tried again
        assert log.read_bytes() == b"kept\n" + b"a" * 4096 + b"c" * 200_000
        assert state.read_bytes() == b"n" * 200_000
        assert (disk / "meta/new.log").read_bytes() == b"b"
    finally:
        unmount(disk)


# ------------------------------------------------------------------ disk/du


async def test_du_measures_a_sandbox_and_without_enforcement_limits_nothing(
    tmp_path: Path,
) -> None:
    containerizer = PosixContainerizer([DiskDuIsolator(enforce=False, interval=0.05)])
    config = ContainerConfig(
        container_id=str(uuid.uuid4()),
        argv=("/bin/sh", "-c", "dd if=/dev/zero of=data bs=1M count=12 && touch written; "
                               "sleep 600"),
        environment={"PATH": os.environ["PATH"]}, sandbox=tmp_path / "sandbox",
        resources=Resources.parse("cpus:0.1;mem:32;disk:10"))
    await containerizer.launch(config)
    try:
        async with asyncio.timeout(20):
            while True:
                usage = await containerizer.usage(config.container_id)
                if (config.sandbox / "written").exists() and usage.disk_used_bytes >= 12 << 20:
                    break
                await asyncio.sleep(0.05)
        assert usage.disk_limit_bytes == 10 << 20
        await asyncio.sleep(0.2)  # a few more measurements over the quota: nothing is killed
        waiting = asyncio.ensure_future(containerizer.wait(config.container_id))
        assert not waiting.done()
        waiting.cancel()
    finally:
        termination = await containerizer.destroy(config.container_id)
    assert termination.limitation is None


# ------------------------------------------------------------------ agents


def test_a_task_writing_past_its_disk_fails_with_the_disk_reason_and_the_agent_stays_up(
    cluster: Cluster, small_disk: Path
) -> None:
    cluster.agent_flags[:] = ["--isolation=posix/cpu,posix/mem,disk/du",
                            "--enforce_container_disk_quota=true",
                            "--container_disk_watch_interval=100ms"]
    agent = cluster.start_agent(AGENT_RESOURCES, work_dir=small_disk)
    scheduler = Launcher(disk=8)
    scheduler.launch("hog", "dd if=/dev/zero of=hog bs=1M count=16; sleep 600")
    with running(cluster, scheduler):
        failed = scheduler.wait_for_state("hog", "TASK_FAILED")
        assert failed.reason == DISK_REASON, failed
        assert failed.source == mesos_pb2.TaskStatus.SOURCE_AGENT
        assert "exceeds quota (8MB)" in failed.message and "Disk usage (" in failed.message
        assert not sleep_pids(small_disk)  # the container was destroyed

        scheduler.launch("modest", "dd if=/dev/zero of=small bs=1M count=2")
        scheduler.wait_for_state("modest", "TASK_FINISHED")
        assert agent.alive(), agent.log()


def test_a_restarted_agent_enforces_the_quota_of_a_task_it_recovered(
    cluster: Cluster, small_disk: Path
) -> None:
    cluster.agent_flags[:] = ["--isolation=posix/cpu,posix/mem,disk/du",
                              "--enforce_container_disk_quota=true",
                              "--container_disk_watch_interval=100ms"]
    port = free_port()
    agent = cluster.start_agent(AGENT_RESOURCES, work_dir=small_disk, port=port,
                                hostname="disk-host")
    scheduler = Launcher(disk=8)
    scheduler.launch("late-hog", "while [ ! -e go ]; do sleep 0.1; done; "
                                 "dd if=/dev/zero of=hog bs=1M count=16; sleep 600")
    with running(cluster, scheduler, capabilities=[mesos_pb2.FrameworkInfo.Capability(
            type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)]):
        scheduler.wait_for_state("late-hog", "TASK_RUNNING")
        agent.kill9()
        restarted = cluster.start_agent(AGENT_RESOURCES, work_dir=small_disk, port=port,
                                        hostname="disk-host")
        restarted.wait_for_log("registered with master")
        (run_dirs(small_disk)["late-hog"] / "go").touch()
        failed = scheduler.wait_for_state("late-hog", "TASK_FAILED")
        assert failed.reason == DISK_REASON, failed
        assert "exceeds quota (8MB)" in failed.message


def test_a_task_filling_the_work_directory_leaves_the_agent_serving_and_restartable(
    cluster: Cluster, small_disk: Path
) -> None:
    port = free_port()
    agent = cluster.start_agent(AGENT_RESOURCES, work_dir=small_disk, port=port,
                                  hostname="disk-host")
    scheduler = Launcher()
    with running(cluster, scheduler, capabilities=[mesos_pb2.FrameworkInfo.Capability(
            type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)]) as driver:
        # It ends as dd does on a full disk; less than --gc_disk_headroom is free, so its
        # sandbox is collected at once (and so is space for checkpoints that did not fit).
        scheduler.launch("filler", "dd if=/dev/zero of=fill bs=1M")
        failed = scheduler.wait_for_state("filler", "TASK_FAILED")
        assert failed.reason == mesos_pb2.TaskStatus.REASON_COMMAND_EXECUTOR_FAILED
        assert "Command exited with status 1" in failed.message
        wait_for(lambda: "filler" not in run_dirs(small_disk), "the filler's sandbox GC")
        scheduler.launch("after", "echo fine")
        scheduler.wait_for_state("after", "TASK_FINISHED")

        # A live task fills the disk and stays, so nothing can be freed: a launch whose
        # checkpoint cannot fit in what is left (a big command) waits, the agent serving on,
        # and runs once the filling task is killed and its sandbox collected.
        fill_and_hold = ("while [ ! -e go ]; do sleep 0.1; done; "
                         "dd if=/dev/zero of=fill bs=1M; sleep 600")
        hold(scheduler, small_disk, "holder", fill_and_hold)
        scheduler.launch("big", f": {'x' * 16384}; echo big")
        agent.wait_for_log("does not fit on the disk")
        assert agent.alive(), agent.log()
        assert scheduler.states("big") == []  # not even TASK_STARTING: it is not durable
        driver.kill_task("holder")
        scheduler.wait_for_state("holder", "TASK_KILLED")
        scheduler.wait_for_state("big", "TASK_FINISHED")
        agent.wait_for_log("checkpoints fit on the disk again")

        # The agent is killed on a full disk and restarts on it.
        hold(scheduler, small_disk, "holder-2", fill_and_hold)
        agent.kill9()
        restarted = cluster.start_agent(AGENT_RESOURCES, work_dir=small_disk, port=port,
                                        hostname="disk-host")
        restarted.wait_for_log("registered with master")
        assert _free_bytes(small_disk) < 1024 * 1024 and sleep_pids(small_disk)
        driver.kill_task("holder-2")
        scheduler.wait_for_state("holder-2", "TASK_KILLED")
        wait_for(lambda: "holder-2" not in run_dirs(small_disk), "the holder's sandbox GC")
        scheduler.launch("later", "echo fine")
        scheduler.wait_for_state("later", "TASK_FINISHED")
        assert restarted.alive(), restarted.log()


def hold(scheduler: Launcher, disk: Path, task_id: str, cmd: str) -> None:
    """Run `cmd`, which fills the disk and stays, once its TASK_RUNNING got through."""
    scheduler.launch(task_id, cmd)
    scheduler.wait_for_state(task_id, "TASK_RUNNING")
    (run_dirs(disk)[task_id] / "go").touch()
    wait_for(lambda: _free_bytes(disk) < 1024 * 1024, "the disk to fill")
    wait_for(lambda: sleep_pids(disk), f"{task_id} to sleep on the full disk")


def _free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def test_finished_sandboxes_are_collected_after_gc_delay_and_live_ones_kept(
    cluster: Cluster, small_disk: Path
) -> None:
    port = free_port()
    agent = cluster.start_agent(AGENT_RESOURCES, work_dir=small_disk, port=port,
                                  hostname="disk-host")
    scheduler = Launcher()
    with running(cluster, scheduler, capabilities=[mesos_pb2.FrameworkInfo.Capability(
            type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)]):
        scheduler.launch("live", "sleep 600")
        scheduler.wait_for_state("live", "TASK_RUNNING")
        scheduler.launch("done", "echo done")
        scheduler.wait_for_state("done", "TASK_FINISHED")
        assert set(run_dirs(small_disk)) == {"live", "done"}  # the default delay is a week

        agent.kill9()
        cluster.agent_flags += ["--gc_delay=1secs"]
        restarted = cluster.start_agent(AGENT_RESOURCES, work_dir=small_disk, port=port,
                                  hostname="disk-host")
        wait_for(lambda: "done" not in run_dirs(small_disk), "the finished sandbox's GC")
        restarted.wait_for_log("deleted the sandbox of a finished container")
        assert "live" in run_dirs(small_disk) and sleep_pids(small_disk)

        scheduler.launch("again", "echo again")
        scheduler.wait_for_state("again", "TASK_FINISHED")
        wait_for(lambda: "again" not in run_dirs(small_disk), "the next finished sandbox's GC")
        assert "live" in run_dirs(small_disk) and sleep_pids(small_disk)
