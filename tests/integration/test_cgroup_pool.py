"""The pool of premade cgroups (`cgroup_pool`) on the kernel's real cgroup v1 hierarchies:
containers take their cgroups from it with their limits and OOM limitation intact, it refills
once launches pause, and nothing of it outlives its agent or is mistaken for a container."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mesos_agent.config import IsolationConfig
from mesos_agent.containerizer import ContainerConfig
from mesos_agent.containerizer.cgroup_pool import CgroupPool, process_identity
from mesos_agent.containerizer.cgroups import Cgroups, mounts_under
from mesos_agent.containerizer.create import create_containerizer
from mesos_agent.containers import ContainerProcess
from mesos_values.resources import Resources
from protos import mesos_pb2

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="cgroups need root")]

HIERARCHY = Path("/sys/fs/cgroup")
CONTROLLERS = ("cpu", "cpuacct", "memory")


@pytest.fixture
def cgroups() -> Iterator[Cgroups]:
    """Cgroups under a root of the test's own; the root must be empty at the end (anything
    left in it is removed, and fails the test)."""
    cgroups = Cgroups(mounts_under(HIERARCHY), f"pool-test-{uuid.uuid4().hex[:8]}")
    for controller in CONTROLLERS:
        cgroups.check(controller)
    yield cgroups
    left = {c: cgroups.containers(c) for c in CONTROLLERS}
    for controller in CONTROLLERS:
        for name in left[controller]:
            cgroups.destroy(controller, name)
        os.rmdir(cgroups.base(controller))
    assert left == {c: set() for c in CONTROLLERS}


def bases(cgroups: Cgroups) -> list[str]:
    return [cgroups.base(c) for c in CONTROLLERS]


async def filled(pool: CgroupPool, cgroups: Cgroups, count: int) -> None:
    async with asyncio.timeout(30):
        while any(pool.ready(base) < count for base in bases(cgroups)):  # noqa: ASYNC110
            await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def kept(pool: CgroupPool) -> AsyncIterator[asyncio.Task[None]]:
    keeper = asyncio.create_task(pool.keep())
    try:
        yield keeper
    finally:
        keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await keeper


async def test_a_taken_cgroup_is_renamed_and_the_pool_refills_once_launches_pause(
        cgroups: Cgroups) -> None:
    pool = CgroupPool(bases(cgroups), 4, idle=0.2)
    cgroups.premade = pool
    async with kept(pool):
        await filled(pool, cgroups, 4)
        before = {c: cgroups.containers(c) for c in CONTROLLERS}
        for controller in CONTROLLERS:
            cgroups.create(controller, "c1")
        after = {c: cgroups.containers(c) for c in CONTROLLERS}
        for controller in CONTROLLERS:
            assert "c1" in after[controller]
            assert len(after[controller]) == 4  # one of the pool's, renamed: none made
            assert before[controller] - after[controller] != set()
        assert pool.ready(cgroups.base("memory")) == 3
        await filled(pool, cgroups, 4)
        for controller in CONTROLLERS:
            cgroups.destroy(controller, "c1")
        assert all(len(cgroups.containers(c)) == 4 for c in CONTROLLERS)
    # Its keeper ended (the agent stopping): what the pool held is gone.
    assert all(cgroups.containers(c) == set() for c in CONTROLLERS)


def test_an_empty_pool_makes_the_cgroup(cgroups: Cgroups) -> None:
    cgroups.premade = CgroupPool(bases(cgroups), 4)  # never kept: never filled
    path = cgroups.create("memory", "c1")
    assert path == f"{cgroups.base('memory')}/c1" and os.path.isdir(path)
    cgroups.destroy("memory", "c1")


def dead_process_identity() -> str:
    """The identity a process had that has ended since."""
    child = subprocess.Popen(["true"])
    identity = process_identity(child.pid)
    child.wait()
    assert identity is not None and process_identity(child.pid) is None
    return identity


async def test_keep_removes_the_pools_of_owners_that_no_longer_run_and_only_those(
        cgroups: Cgroups) -> None:
    init = process_identity(1)
    assert init is not None
    other_agent = CgroupPool(bases(cgroups), 2, idle=0.0, owner=init)  # it runs
    async with kept(other_agent):
        await filled(other_agent, cgroups, 2)
        for controller in CONTROLLERS:
            cgroups.create(controller, "a-container")
        earlier = CgroupPool(bases(cgroups), 3, idle=0.0, owner=dead_process_identity())
        keeper = asyncio.create_task(earlier.keep())
        await filled(earlier, cgroups, 3)
        keeper.cancel()  # as kill -9 would, without cleaning up: its cgroups stay
        earlier.close = lambda: None  # type: ignore[method-assign]
        with contextlib.suppress(asyncio.CancelledError):
            await keeper
        assert all(len(cgroups.containers(c)) == 3 + 2 + 1 for c in CONTROLLERS)

        later = CgroupPool(bases(cgroups), 1, idle=0.0)
        async with kept(later):
            await filled(later, cgroups, 1)
            # The dead owner's three are gone; the live one's pool and the container are not.
            assert all(len(cgroups.containers(c)) == 1 + 2 + 1 for c in CONTROLLERS)
            assert all("a-container" in cgroups.containers(c) for c in CONTROLLERS)
    for controller in CONTROLLERS:
        assert cgroups.containers(controller) == {"a-container"}
        cgroups.destroy(controller, "a-container")


def test_a_process_identity_names_one_process() -> None:
    assert process_identity(os.getpid()) == process_identity(os.getpid())
    assert process_identity(os.getpid()) != process_identity(1)


def shell(sandbox: Path, script: str, resources: str) -> ContainerConfig:
    return ContainerConfig(
        container_id=str(uuid.uuid4()), argv=("/bin/sh", "-c", script),
        environment={"PATH": os.environ["PATH"]}, sandbox=sandbox,
        resources=Resources.parse(resources))


async def test_containers_in_premade_cgroups_keep_their_limits_and_leave_nothing(
        tmp_path: Path, cgroups: Cgroups) -> None:
    config = IsolationConfig(isolation=("cgroups/cpu", "cgroups/mem"),
                             cgroups_root=cgroups.root, cgroups_pool_size=4)
    isolated = create_containerizer(config, tmp_path / "work")
    running = asyncio.create_task(isolated.run())
    try:
        await asyncio.sleep(0)
        pool_names = await _pool_names(cgroups, 4)
        hog = shell(tmp_path / "hog",
                    f"exec {sys.executable} -c 'b = bytearray(300 * 2**20)'", "cpus:0.5;mem:64")
        sleeper = shell(tmp_path / "sleeper", "sleep 300", "cpus:0.25;mem:128")
        for container in (hog, sleeper):
            await isolated.launch(container)
        for controller in CONTROLLERS:  # both took premade cgroups: no new ones were made
            assert len(cgroups.containers(controller)) == 4
            assert not pool_names[controller] & {hog.container_id, sleeper.container_id}
        pid = next(c.pid for c in isolated.containers()
                   if c.container_id == sleeper.container_id)
        async with asyncio.timeout(30):  # it makes, limits and joins them after its answer
            while pid not in cgroups.pids("memory", sleeper.container_id):  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert cgroups.read("memory", sleeper.container_id,
                            "memory.limit_in_bytes").strip() == str(128 * 2**20)
        assert cgroups.read("cpu", sleeper.container_id, "cpu.shares").strip() == "256"

        async with asyncio.timeout(60):
            termination = await isolated.wait(hog.container_id)
        assert termination.limitation is not None
        assert (termination.limitation.reason
                == mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION_MEMORY)
        assert "Requested: 64MB" in termination.limitation.message
        for container in (hog, sleeper):
            await isolated.destroy(container.container_id)
            assert not any(cgroups.exists(c, container.container_id) for c in CONTROLLERS)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert all(cgroups.containers(c) == set() for c in CONTROLLERS)


FIRST_INCARNATION = """
import asyncio, json, sys, uuid
from pathlib import Path
from mesos_agent.config import IsolationConfig
from mesos_agent.containerizer import ContainerConfig
from mesos_agent.containerizer.cgroups import Cgroups, mounts_under
from mesos_agent.containerizer.create import create_containerizer
from mesos_agent.containers import ContainerProcess
from mesos_values.resources import Resources

async def pool_full(cgroups: Cgroups) -> None:
    while not all(sum(n.startswith("pool-") for n in cgroups.containers(c)) == 3
                  for c in ("cpu", "cpuacct", "memory")):
        await asyncio.sleep(0.01)

async def main() -> None:
    root, work = sys.argv[1], Path(sys.argv[2])
    cgroups = Cgroups(mounts_under(Path("/sys/fs/cgroup")), root)
    containerizer = create_containerizer(IsolationConfig(
        isolation=("cgroups/cpu", "cgroups/mem"), cgroups_root=root, cgroups_pool_size=3), work)
    upkeep = asyncio.create_task(containerizer.run())
    await pool_full(cgroups)
    config = ContainerConfig(str(uuid.uuid4()), ("sleep", "300"), {"PATH": "/usr/bin:/bin"},
                             work / "sandbox", Resources.parse("cpus:0.5;mem:64"))
    process = await containerizer.launch(config)
    await pool_full(cgroups)  # the pool refills behind the launch
    print(json.dumps([process.container_id, process.pid, process.start_time,
                      str(process.sandbox)]), flush=True)
    await upkeep

asyncio.run(main())
"""


async def test_recovery_ignores_the_pools_cgroups_and_the_new_pool_removes_them(
        tmp_path: Path, cgroups: Cgroups) -> None:
    first = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FIRST_INCARNATION, cgroups.root, str(tmp_path / "work"),
        stdout=asyncio.subprocess.PIPE)
    assert first.stdout is not None
    async with asyncio.timeout(60):
        line = await first.stdout.readline()
    first.kill()  # kill -9: nothing removes the cgroups its pool held
    await first.wait()
    container_id, pid, start_time, sandbox = json.loads(line)
    stale = {c: cgroups.containers(c) - {container_id} for c in CONTROLLERS}
    assert all(len(names) == 3 and all(n.startswith("pool-") for n in names)
               for names in stale.values())

    config = IsolationConfig(isolation=("cgroups/cpu", "cgroups/mem"),
                             cgroups_root=cgroups.root, cgroups_pool_size=3)
    second = create_containerizer(config, tmp_path / "work")  # the same agent, restarted
    process = ContainerProcess(container_id, pid, start_time, Path(sandbox))
    alive = await second.recover([process], owned={container_id})
    assert alive == {container_id}
    for controller in CONTROLLERS:  # recovery took the pool's cgroups for no container's
        assert stale[controller] <= cgroups.containers(controller)
    running = asyncio.create_task(second.run())
    try:
        fresh = await _pool_names(cgroups, 3, excluding=stale)
        for controller in CONTROLLERS:
            assert cgroups.containers(controller) == fresh[controller] | {container_id}
        assert pid in cgroups.pids("memory", container_id)
        await second.destroy(container_id)
        assert not any(cgroups.exists(c, container_id) for c in CONTROLLERS)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    assert all(cgroups.containers(c) == set() for c in CONTROLLERS)


async def _pool_names(cgroups: Cgroups, count: int,
                      excluding: dict[str, set[str]] | None = None) -> dict[str, set[str]]:
    """The pool's cgroups, once `count` are ready in every hierarchy (none of `excluding`)."""
    async with asyncio.timeout(30):
        while True:
            names = {c: {n for n in cgroups.containers(c) if n.startswith("pool-")
                         and n not in (excluding or {}).get(c, set())} for c in CONTROLLERS}
            if all(len(found) >= count for found in names.values()):
                return names
            await asyncio.sleep(0.01)
