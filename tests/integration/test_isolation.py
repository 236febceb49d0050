"""The isolators with real processes and the kernel's real cgroups and namespaces (issue 18):
memory limits and the OOM limitation, the CFS quota, pid and mount namespaces, users,
recovery by cgroups and the agent refusing what the machine cannot provide."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from mesos_agent.config import IsolationConfig
from mesos_agent.containerizer import (
    ContainerConfig,
    ContainerLaunchError,
    PosixContainerizer,
    Termination,
)
from mesos_agent.containerizer.cgroups import Cgroups, mounts_under
from mesos_agent.containerizer.create import IsolationUnavailable, create_containerizer
from mesos_agent.containerizer.launcher import LaunchTools, find_launch_tools
from mesos_values.resources import Resources
from protos import mesos_pb2
from tests.integration.cluster import free_port

pytestmark = pytest.mark.integration

Reason = mesos_pb2.TaskStatus.Reason
HIERARCHY = Path("/sys/fs/cgroup")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="isolation needs root")


@pytest.fixture
def cgroups_root() -> Iterator[str]:
    """A cgroups root of the test's own, removed (with anything left in it) afterwards."""
    root = f"mesos-test-{uuid.uuid4().hex[:8]}"
    yield root
    cgroups = Cgroups(mounts_under(HIERARCHY), root)
    for controller in ("cpu", "cpuacct", "memory", "pids"):
        for container_id in cgroups.containers(controller):
            cgroups.destroy(controller, container_id)
        base = cgroups.hierarchy(controller) / root
        if base.is_dir():
            base.rmdir()


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's own tmp dirs are private to root), so
    that sandboxes in it are protected by their own modes only."""
    path = Path(tempfile.mkdtemp(prefix="isolation-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(params=["mesos-launch", "util-linux"])
def tools(request: pytest.FixtureRequest) -> LaunchTools:
    """Both ways of launching: the built `mesos-launch`, and `sh`, `unshare`, `tini` and
    `setpriv` where it cannot be built."""
    if request.param == "util-linux":
        return find_launch_tools(helper=False)
    found = find_launch_tools()
    assert found.helper is not None, "mesos-launch was not built (is a C compiler installed?)"
    return found


def containerizer(root: str, *isolation: str, cfs: bool = False, switch_user: bool = True,
                  tools: LaunchTools | None = None) -> PosixContainerizer:
    return create_containerizer(
        IsolationConfig(isolation=isolation, cgroups_root=root, cgroups_enable_cfs=cfs,
                        switch_user=switch_user),
        Path("/nonexistent"), launch_tools=tools)


def shell(sandbox: Path, script: str, resources: str = "cpus:1;mem:128",
          user: str = "") -> ContainerConfig:
    return ContainerConfig(
        container_id=str(uuid.uuid4()),
        argv=("/bin/sh", "-c", script),
        environment={"PATH": os.environ["PATH"]},
        sandbox=sandbox,
        resources=Resources.parse(resources),
        user=user,
    )


async def ended(containerizer: PosixContainerizer, config: ContainerConfig) -> Termination:
    """Launch, wait, destroy; how the container ended."""
    await containerizer.launch(config)
    async with asyncio.timeout(60):
        termination = await containerizer.wait(config.container_id)
    await containerizer.destroy(config.container_id)
    return termination


async def run(containerizer: PosixContainerizer, config: ContainerConfig) -> str:
    """Launch, wait, destroy; the container's stdout (it must have succeeded)."""
    termination = await ended(containerizer, config)
    output = (config.sandbox / "stdout").read_text()
    assert termination.succeeded, (termination, output, (config.sandbox / "stderr").read_text())
    return output


@needs_root
async def test_memory_limit_kills_with_the_memory_limitation(
        tmp_path: Path, cgroups_root: str, tools: LaunchTools) -> None:
    isolated = containerizer(cgroups_root, "cgroups/cpu", "cgroups/mem", tools=tools)
    hog = shell(tmp_path / "hog",
                f"exec {sys.executable} -c 'b = bytearray(300 * 2**20); print(len(b))'",
                resources="cpus:0.5;mem:64")
    termination = await ended(isolated, hog)
    assert not termination.succeeded
    assert termination.limitation is not None
    assert termination.limitation.reason == Reason.REASON_CONTAINER_LIMITATION_MEMORY
    assert "Requested: 64MB" in termination.limitation.message
    assert (tmp_path / "hog" / "stdout").read_text() == ""  # it never got its 300 MB

    # The same program fits in 512 MB: the limit, not the program, ended it.
    fits = shell(tmp_path / "fits",
                 f"exec {sys.executable} -c 'b = bytearray(300 * 2**20); print(len(b))'",
                 resources="cpus:0.5;mem:512")
    assert await run(isolated, fits) == f"{300 * 2**20}\n"


@needs_root
async def test_memory_limitation_of_a_child_destroys_the_whole_container(
        tmp_path: Path, cgroups_root: str) -> None:
    """The OOM killer picks the hog, a child; the shell above it would run on: the container
    is destroyed anyway, and ends with the limitation."""
    isolated = containerizer(cgroups_root, "cgroups/mem")
    config = shell(tmp_path / "s",
                   f"{sys.executable} -c 'b = bytearray(300 * 2**20)'; sleep 300",
                   resources="mem:64")
    termination = await ended(isolated, config)
    assert termination.limitation is not None
    assert termination.limitation.reason == Reason.REASON_CONTAINER_LIMITATION_MEMORY


@needs_root
async def test_cfs_quota_holds_a_busy_loop_near_its_cpus(
        tmp_path: Path, cgroups_root: str) -> None:
    isolated = containerizer(cgroups_root, "cgroups/cpu", "cgroups/mem", cfs=True)
    config = shell(tmp_path / "s", "while :; do :; done", resources="cpus:0.25;mem:64")
    await isolated.launch(config)
    try:
        first = await isolated.usage(config.container_id)
        started = time.monotonic()
        await asyncio.sleep(2.0)
        last = await isolated.usage(config.container_id)
        elapsed = time.monotonic() - started
    finally:
        await isolated.destroy(config.container_id)
    used = (last.cpus_user_time_secs + last.cpus_system_time_secs
            - first.cpus_user_time_secs - first.cpus_system_time_secs)
    assert last.cpus_limit == pytest.approx(0.25)
    # A quarter core at most (plus accounting granularity), where it would take a whole one.
    assert 0 < used / elapsed < 0.4, (used, elapsed)
    assert last.cpus_nr_throttled > 0


@needs_root
async def test_pid_namespace_shows_only_the_containers_processes(
        tmp_path: Path, cgroups_root: str, tools: LaunchTools) -> None:
    isolated = containerizer(cgroups_root, "cgroups/mem", "namespaces/pid", tools=tools)
    script = (
        "sleep 300 & "
        "echo pids=$(ls /proc | grep -c '^[0-9][0-9]*$'); "
        f"if kill -0 {os.getpid()} 2>/dev/null; then echo agent=visible; "
        "else echo agent=hidden; fi; "
        f"if kill -9 {os.getpid()} 2>/dev/null; then echo killed=yes; else echo killed=no; fi; "
        "echo self=$$"
    )
    output = await run(isolated, shell(tmp_path / "s", script))
    lines = dict(line.split("=", 1) for line in output.split())
    # tini, the shell, sleep, a subshell, ls and grep: not the machine's dozens
    assert int(lines["pids"]) <= 8
    assert lines["agent"] == "hidden"
    assert lines["killed"] == "no"
    assert int(lines["self"]) <= 3  # a low pid of its own namespace (tini is 1)


@needs_root
async def test_kill_through_the_pid_namespace_reports_the_signal(
        tmp_path: Path, cgroups_root: str, tools: LaunchTools) -> None:
    """SIGTERM reaches the command through the namespace's init, and the termination names
    the signal."""
    isolated = containerizer(cgroups_root, "namespaces/pid", tools=tools)
    config = shell(tmp_path / "s", "touch started; exec sleep 300")
    await isolated.launch(config)
    async with asyncio.timeout(30):  # tini has its signal handlers once the command runs
        while not (config.sandbox / "started").exists():  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    await isolated.kill(config.container_id, 15)
    async with asyncio.timeout(30):
        termination = await isolated.wait(config.container_id)
    await isolated.destroy(config.container_id)
    assert termination.signal == 15


@needs_root
async def test_a_kill_right_after_launch_is_not_lost_in_the_pid_namespace(
        tmp_path: Path, cgroups_root: str) -> None:
    """`mesos-launch` blocks signals from its start, so one sent before its init runs is
    forwarded, not dropped as pid 1 drops signals it has no handler for."""
    tools = find_launch_tools()
    assert tools.helper is not None
    isolated = containerizer(cgroups_root, "namespaces/pid", tools=tools)
    config = shell(tmp_path / "s", "exec sleep 300")
    await isolated.launch(config)
    await isolated.kill(config.container_id, 15)
    async with asyncio.timeout(10):  # a lost SIGTERM would leave it sleeping 300 s
        termination = await isolated.wait(config.container_id)
    await isolated.destroy(config.container_id)
    assert termination.signal == 15


def _proc_view(pid: int) -> tuple[list[str], list[str]]:
    """A process's pid in each pid namespace it is in (outermost first), and its cgroups."""
    status = Path(f"/proc/{pid}/status").read_text().splitlines()
    namespace_pids = next(line for line in status if line.startswith("NSpid:")).split()[1:]
    return namespace_pids, Path(f"/proc/{pid}/cgroup").read_text().splitlines()


@needs_root
async def test_the_spawn_servers_pid_namespace_container_is_its_init_and_the_command(
        tmp_path: Path, cgroups_root: str) -> None:
    """Through the spawn server the process an isolated launch starts is the pid namespace's
    init itself (cloned into it, ADR 0019), in the container's cgroups, and its one child is
    the command: two processes per container, not three."""
    tools = find_launch_tools()
    assert tools.helper is not None
    isolated = containerizer(cgroups_root, "cgroups/cpu", "cgroups/mem", "namespaces/pid",
                             tools=tools)
    config = shell(tmp_path / "s", "exec sleep 300")
    started = await isolated.launch(config)
    try:
        children: list[psutil.Process] = []
        async with asyncio.timeout(30):  # until the command has exec'd
            while [child.name() for child in children] != ["sleep"]:
                await asyncio.sleep(0.02)
                children = psutil.Process(started.pid).children()
        namespace_pids, memberships = _proc_view(started.pid)
        assert namespace_pids[1:] == ["1"]  # its pid here, and 1 in its own namespace
        assert _proc_view(children[0].pid)[0][1:] == ["2"]
        for controller in ("cpu", "cpuacct", "memory"):
            assert any(controller in line.split(":")[1].split(",")
                       and line.endswith(f"/{config.container_id}") for line in memberships)
    finally:
        await isolated.destroy(config.container_id)


@needs_root
async def test_filesystem_linux_gives_the_task_its_sandbox_tmp(
        tmp_path: Path, cgroups_root: str, tools: LaunchTools) -> None:
    isolated = containerizer(cgroups_root, "filesystem/linux", tools=tools)
    marker = f"isolation-{uuid.uuid4().hex}"
    config = shell(tmp_path / "s", f"echo hello > /tmp/{marker} && ls /tmp")
    assert await run(isolated, config) == f"{marker}\n"
    assert (config.sandbox / "tmp" / marker).read_text() == "hello\n"
    assert marker not in os.listdir("/tmp")


@needs_root
@pytest.mark.parametrize("isolation", [("posix/cpu",), ("cgroups/mem", "namespaces/pid")],
                         ids=["plain", "pid-namespace"])
async def test_task_runs_as_its_user_and_cannot_read_other_sandboxes(
        open_dir: Path, cgroups_root: str, isolation: tuple[str, ...], tools: LaunchTools) -> None:
    isolated = containerizer(cgroups_root, *isolation, tools=tools)
    secret = shell(open_dir / "root-task", "echo secret > mine.txt")
    await run(isolated, secret)
    script = (f"id -un; echo $HOME; touch own.txt && echo wrote; "
              f"cat {secret.sandbox}/mine.txt 2>/dev/null || echo denied")
    task = shell(open_dir / "nobody-task", script, user="nobody")
    assert (await run(isolated, task)).split() == ["nobody", "/nonexistent", "wrote", "denied"]
    assert (task.sandbox / "own.txt").stat().st_uid == (task.sandbox).stat().st_uid != 0


@needs_root
async def test_unknown_user_fails_the_launch_clearly(tmp_path: Path, cgroups_root: str) -> None:
    isolated = containerizer(cgroups_root, "posix/cpu")
    with pytest.raises(ContainerLaunchError, match=r"'no-such-user-x'.*does not exist"):
        await isolated.launch(shell(tmp_path / "s", "true", user="no-such-user-x"))


@needs_root
async def test_switch_user_false_runs_as_the_agents_user(
        tmp_path: Path, cgroups_root: str) -> None:
    isolated = containerizer(cgroups_root, "posix/cpu", switch_user=False)
    assert (await run(isolated, shell(tmp_path / "s", "id -u", user="nobody"))) == "0\n"


@needs_root
async def test_recovery_reattaches_by_cgroups_and_destroys_orphans(
        tmp_path: Path, cgroups_root: str) -> None:
    first = containerizer(cgroups_root, "cgroups/cpu", "cgroups/mem")
    kept = shell(tmp_path / "kept", "sleep 300", resources="cpus:0.5;mem:64")
    orphan = shell(tmp_path / "orphan", "sleep 300", resources="cpus:0.5;mem:64")
    kept_process = await first.launch(kept)
    orphan_process = await first.launch(orphan)
    cgroups = Cgroups(mounts_under(HIERARCHY), cgroups_root)
    other_agents = str(uuid.uuid4())  # a cgroup of another agent on this host: left alone
    cgroups.create("memory", other_agents)

    # As after `kill -9` of the agent: a new containerizer; the orphan is no longer known.
    second = containerizer(cgroups_root, "cgroups/cpu", "cgroups/mem")
    alive = await second.recover([kept_process],
                                 owned={kept.container_id, orphan.container_id})
    assert alive == {kept.container_id}
    assert not cgroups.exists("memory", orphan.container_id)
    assert orphan_process.pid not in cgroups.pids("memory", kept.container_id)
    assert kept_process.pid in cgroups.pids("memory", kept.container_id)
    assert cgroups.exists("memory", other_agents)
    usage = await second.usage(kept.container_id)
    assert usage.mem_limit_bytes == 64 * 2**20

    await second.destroy(kept.container_id)
    assert not cgroups.exists("memory", kept.container_id)
    assert not cgroups.exists("cpu", kept.container_id)
    await first.wait(kept.container_id)
    await first.wait(orphan.container_id)
    cgroups.destroy("memory", other_agents)


def test_unknown_and_unavailable_isolators_are_refused(cgroups_root: str) -> None:
    with pytest.raises(IsolationUnavailable, match="unknown isolator 'cgroups/bogus'"):
        containerizer(cgroups_root, "cgroups/bogus")
    with pytest.raises(IsolationUnavailable, match="cgroups/mem is unavailable"):
        create_containerizer(
            IsolationConfig(isolation=("cgroups/mem",), cgroups_root=cgroups_root,
                            cgroups_hierarchy=Path("/nonexistent/cgroups")), Path("/x"))


def test_agent_refuses_to_start_with_isolation_it_cannot_provide(tmp_path: Path) -> None:
    """Without cgroup hierarchies where it is told to look, the agent says so and exits 1."""
    argv = [sys.executable, "-m", "mesos_agent", "--master", f"127.0.0.1:{free_port()}",
            "--work_dir", str(tmp_path / "agent"), "--isolation", "cgroups/cpu,cgroups/mem",
            "--cgroups_hierarchy", str(tmp_path / "no-cgroups")]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result
    assert "--isolation: cgroups/cpu is unavailable" in result.stderr
    assert "cgroup controller is not available" in result.stderr
    assert "Traceback" not in result.stderr
