"""cgroups: finding the hierarchies, and what the isolators write and read on a unified (v2)
hierarchy, on a directory tree shaped like one (these machines have v1, which the integration
tests use for real)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mesos_agent.containerizer.base import NoopIsolator
from mesos_agent.containerizer.cgroups import (
    Cgroups,
    CgroupsUnavailable,
    Mounts,
    make_cgroup,
    make_cgroups,
    parse_mounts,
)
from mesos_agent.containerizer.isolators import (
    CgroupsCpuIsolator,
    CgroupsMemIsolator,
    _register_oom_events,
)
from mesos_agent.containers import ContainerConfig, LaunchInfo
from mesos_values.resources import Resources
from protos import mesos_pb2

HYBRID = """\
tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/cpuacct cgroup rw,relatime,cpuacct 0 0
cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
/dev/vda / ext4 rw,relatime 0 0
"""
CO_MOUNTED = "cgroup /sys/fs/cgroup/cpu,cpuacct cgroup rw,nosuid,cpu,cpuacct 0 0\n"
V2_ONLY = "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev,noexec,relatime 0 0\n"


def test_hybrid_mounts_map_each_controller_to_its_hierarchy() -> None:
    mounts = parse_mounts(HYBRID)
    assert mounts.v1 == {"cpu": Path("/sys/fs/cgroup/cpu"),
                         "cpuacct": Path("/sys/fs/cgroup/cpuacct"),
                         "memory": Path("/sys/fs/cgroup/memory")}
    assert mounts.v2 == Path("/sys/fs/cgroup/unified")


def test_co_mounted_controllers_share_a_hierarchy() -> None:
    mounts = parse_mounts(CO_MOUNTED)
    assert mounts.v1["cpu"] == mounts.v1["cpuacct"] == Path("/sys/fs/cgroup/cpu,cpuacct")


def test_v2_only_mount_is_the_unified_hierarchy() -> None:
    assert parse_mounts(V2_ONLY) == Mounts({}, Path("/sys/fs/cgroup"))


def unified(tmp_path: Path, controllers: str = "cpu memory pids") -> Cgroups:
    """A directory shaped like a unified hierarchy offering `controllers`."""
    (tmp_path / "cgroup.controllers").write_text(controllers + "\n")
    for level in (tmp_path, tmp_path / "mesos"):  # as the kernel makes them, with the cgroup
        level.mkdir(exist_ok=True)
        (level / "cgroup.subtree_control").write_text("")
    return Cgroups(Mounts({}, tmp_path), "mesos")


def test_a_controller_missing_everywhere_is_unavailable_with_what_there_is(
        tmp_path: Path) -> None:
    cgroups = unified(tmp_path, "cpu")
    assert cgroups.version("cpu") == cgroups.version("cpuacct") == 2
    with pytest.raises(CgroupsUnavailable, match=r"'memory' cgroup controller is not available"
                       r".*offers cpu"):
        cgroups.version("memory")


def test_v1_wins_for_controllers_it_mounts(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("pids hugetlb\n")
    cgroups = Cgroups(Mounts({"memory": tmp_path / "memory"}, tmp_path), "mesos")
    assert cgroups.version("memory") == 1 and cgroups.version("pids") == 2


def test_v2_enables_the_controller_top_down_and_makes_the_cgroup(tmp_path: Path) -> None:
    cgroups = unified(tmp_path)
    path = Path(cgroups.create("memory", "c1"))
    assert path == tmp_path / "mesos" / "c1" and path.is_dir()
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+memory"
    assert (tmp_path / "mesos" / "cgroup.subtree_control").read_text() == "+memory"
    assert cgroups.procs_file("memory", "c1") == str(path / "cgroup.procs")
    assert cgroups.containers("memory") == {"c1"}


def config(container_id: str, resources: str) -> ContainerConfig:
    return ContainerConfig(container_id, ("true",), {}, Path("/nonexistent"),
                           Resources.parse(resources))


async def launched(isolator: NoopIsolator, container: ContainerConfig) -> LaunchInfo:
    """Prepare the container and make its cgroups as its launch would, before it isolates."""
    info = await isolator.prepare(container)
    assert info is not None
    make_cgroups(info.cgroups, info.cgroup_writes)
    await isolator.isolate(container.container_id, 1)
    return info


async def test_prepare_plans_the_cgroups_without_making_them(tmp_path: Path) -> None:
    isolator = CgroupsMemIsolator(unified(tmp_path))
    info = await isolator.prepare(config("c1", "mem:64"))
    cgroup = tmp_path / "mesos" / "c1"
    assert info is not None and not cgroup.exists()  # the container's process makes it
    assert info.cgroups == ((str(cgroup), ""),)
    assert info.cgroup_writes == ((str(cgroup / "memory.max"), str(64 * 2**20)),)
    assert info.cgroup_procs == (str(cgroup / "cgroup.procs"),)


async def test_a_resize_during_the_launch_is_written_once_the_cgroup_exists(
        tmp_path: Path) -> None:
    isolator = CgroupsMemIsolator(unified(tmp_path))
    info = await isolator.prepare(config("c1", "mem:64"))
    assert info is not None
    await isolator.update("c1", Resources.parse("mem:128"))  # no cgroup yet: nothing fails
    make_cgroups(info.cgroups, info.cgroup_writes)
    limit = tmp_path / "mesos" / "c1" / "memory.max"
    assert limit.read_text() == str(64 * 2**20)
    (tmp_path / "mesos" / "c1" / "cgroup.procs").write_text("1\n")  # the process joined
    await isolator.isolate("c1", 1)
    assert limit.read_text() == str(128 * 2**20)
    await isolator.update("c1", Resources.parse("mem:256"))
    assert limit.read_text() == str(256 * 2**20)


def test_make_cgroup_renames_a_premade_one_or_makes_it(tmp_path: Path) -> None:
    (tmp_path / "pool-1").mkdir()
    (tmp_path / "pool-1" / "marker").write_text("")
    make_cgroup(str(tmp_path / "c1"), "pool-1")
    assert (tmp_path / "c1" / "marker").exists() and not (tmp_path / "pool-1").exists()
    make_cgroup(str(tmp_path / "c2"), "pool-gone")  # removed behind the pool's back
    assert (tmp_path / "c2").is_dir()
    (tmp_path / "pool-2").mkdir()
    (tmp_path / "c3").mkdir()
    (tmp_path / "c3" / "marker").write_text("")
    make_cgroup(str(tmp_path / "c3"), "pool-2")  # c3 exists (not empty): pool-2 not leaked
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1", "c2", "c3"]


async def test_v2_memory_limit_usage_and_oom(tmp_path: Path) -> None:
    isolator = CgroupsMemIsolator(unified(tmp_path))
    info = await launched(isolator, config("c1", "mem:64"))
    assert info.cgroup_procs == (str(tmp_path / "mesos" / "c1" / "cgroup.procs"),)
    cgroup = tmp_path / "mesos" / "c1"
    assert (cgroup / "memory.max").read_text() == str(64 * 2**20)
    (cgroup / "memory.stat").write_text("anon 1000\nfile 2000\n")
    (cgroup / "memory.current").write_text("3000\n")
    (cgroup / "memory.peak").write_text("4000\n")
    usage = await isolator.usage("c1")
    assert (usage.mem_rss_bytes, usage.mem_cache_bytes, usage.mem_total_bytes,
            usage.mem_limit_bytes, usage.mem_max_usage_bytes) == (
        1000, 2000, 3000, 64 * 2**20, 4000)
    assert await isolator.limitation("c1") is None
    (cgroup / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    limitation = await isolator.limitation("c1")
    assert limitation is not None
    assert limitation.reason == mesos_pb2.TaskStatus.REASON_CONTAINER_LIMITATION_MEMORY
    assert limitation.message == "Memory limit exceeded: Requested: 64MB Maximum Used: 0MB"


async def test_v1_memory_limit_has_mesos_minimum(tmp_path: Path) -> None:
    isolator = CgroupsMemIsolator(Cgroups(Mounts({"memory": tmp_path}, None), "mesos"))
    await launched(isolator, config("c1", "mem:1"))
    limit = tmp_path / "mesos" / "c1" / "memory.limit_in_bytes"
    assert limit.read_text() == str(32 * 2**20)


@pytest.mark.parametrize(("cpus", "weight", "quota"), [
    (0.25, "10", "25000 100000"), (1.0, "39", "100000 100000"), (4.0, "157", "400000 100000")])
async def test_v2_cpu_weight_and_cfs_quota(
        tmp_path: Path, cpus: float, weight: str, quota: str) -> None:
    isolator = CgroupsCpuIsolator(unified(tmp_path), enable_cfs=True)
    info = await launched(isolator, config("c1", f"cpus:{cpus}"))
    assert len(info.cgroup_procs) == 1  # cpu and cpuacct: one cgroup
    cgroup = tmp_path / "mesos" / "c1"
    assert (cgroup / "cpu.weight").read_text() == weight
    assert (cgroup / "cpu.max").read_text() == quota
    (cgroup / "cpu.stat").write_text(
        "usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n"
        "nr_periods 10\nnr_throttled 4\nthrottled_usec 500000\n")
    usage = await isolator.usage("c1")
    assert (usage.cpus_limit, usage.cpus_user_time_secs, usage.cpus_system_time_secs,
            usage.cpus_nr_periods, usage.cpus_nr_throttled, usage.cpus_throttled_time_secs
            ) == (cpus, 2.0, 1.0, 10, 4, 0.5)


async def test_v1_cpu_shares_without_cfs(tmp_path: Path) -> None:
    mounts = Mounts({"cpu": tmp_path / "cpu", "cpuacct": tmp_path / "cpuacct"}, None)
    isolator = CgroupsCpuIsolator(Cgroups(mounts, "mesos"), enable_cfs=False)
    info = await launched(isolator, config("c1", "cpus:0.5"))
    assert len(info.cgroup_procs) == 2  # two hierarchies here
    assert (tmp_path / "cpu" / "mesos" / "c1" / "cpu.shares").read_text() == "512"
    assert not (tmp_path / "cpu" / "mesos" / "c1" / "cpu.cfs_quota_us").exists()


@pytest.mark.parametrize("count", [4, 40], ids=["small-batch", "listed-batch"])
def test_oom_registrations_find_the_cgroups_made_and_leave_the_others_for_later(
        tmp_path: Path, count: int) -> None:
    """A batch of OOM registrations (v1): an eventfd for each memory cgroup that exists, None
    for one not made yet (tried again in the next batch), whether the batch is small or large
    enough to list the parent first; the registration names the eventfd and
    memory.oom_control's descriptor."""
    cgroups = [str(tmp_path / f"container-{index}") for index in range(count)]
    made = cgroups[::2]
    for cgroup in made:
        os.mkdir(cgroup)
        Path(cgroup, "memory.oom_control").write_text("oom_kill_disable 0\n")
        Path(cgroup, "cgroup.event_control").write_text("")
    results = _register_oom_events(cgroups)
    try:
        assert [result is None for result in results] == [c not in made for c in cgroups]
        for cgroup, result in zip(cgroups, results, strict=True):
            if cgroup in made:
                assert isinstance(result, int)
                event, control = Path(cgroup, "cgroup.event_control").read_text().split()
                assert int(event) == result and int(control) >= 0
    finally:
        for result in results:
            if isinstance(result, int):
                os.close(result)
