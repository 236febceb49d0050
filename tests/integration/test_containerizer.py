"""The POSIX containerizer with real processes: exit codes, output files, env, kill escalation."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from mesos_agent.containerizer import (
    ContainerConfig,
    ContainerLaunchError,
    PosixContainerizer,
    Termination,
    stop_container,
)
from mesos_agent.containerizer.base import NoopIsolator
from mesos_values.resources import Resources

pytestmark = pytest.mark.integration


def shell(sandbox: Path, script: str, env: dict[str, str] | None = None) -> ContainerConfig:
    return ContainerConfig(
        container_id=str(uuid.uuid4()),
        argv=("/bin/sh", "-c", script),
        environment={"PATH": os.environ["PATH"], **(env or {})},
        sandbox=sandbox,
        resources=Resources.EMPTY,
    )


async def eventually(condition: Callable[[], bool]) -> None:
    """Poll process/file state until `condition` holds, for at most 10 s."""
    async with asyncio.timeout(10):
        while not condition():  # noqa: ASYNC110 (no event to wait on for external state)
            await asyncio.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.parametrize(
    ("script", "expected"),
    [("exit 0", Termination(0, None)), ("exit 3", Termination(3, None)),
     ("kill -USR1 $$", Termination(None, signal.SIGUSR1))],
    ids=["success", "failure", "signal"],
)
async def test_exit_status_is_reported(tmp_path: Path, script: str, expected: Termination) -> None:
    containerizer = PosixContainerizer()
    config = shell(tmp_path / "sandbox", script)
    await containerizer.launch(config)
    assert await containerizer.wait(config.container_id) == expected
    assert await containerizer.wait(config.container_id) == expected  # waiting twice is fine


def test_termination_messages() -> None:
    assert Termination(1, None).describe() == "Command exited with status 1"
    assert Termination(None, signal.SIGKILL).describe() == "Command terminated by signal SIGKILL"


async def test_output_goes_to_sandbox_files_and_cwd_is_the_sandbox(tmp_path: Path) -> None:
    containerizer = PosixContainerizer()
    sandbox = tmp_path / "sandbox"
    config = shell(sandbox, 'echo out; echo err >&2; pwd; echo "$GREETING"', {"GREETING": "hi"})
    process = await containerizer.launch(config)
    assert process.sandbox == sandbox
    assert await containerizer.wait(config.container_id) == Termination(0, None)
    assert (sandbox / "stdout").read_text() == f"out\n{sandbox}\nhi\n"
    assert (sandbox / "stderr").read_text() == "err\n"


async def test_process_leads_its_own_session_and_start_time_is_recorded(tmp_path: Path) -> None:
    containerizer = PosixContainerizer()
    config = shell(tmp_path / "s", "sleep 30")
    process = await containerizer.launch(config)
    try:
        assert os.getsid(process.pid) == process.pid
        assert os.getpgid(process.pid) == process.pid
        assert process.start_time == pytest.approx(psutil.Process(process.pid).create_time())
    finally:
        await containerizer.destroy(config.container_id)


async def test_a_plain_command_runs_as_the_root_process_as_the_shell_would_run_it(
    tmp_path: Path,
) -> None:
    """Same argv, cwd and environment (PWD as the shell sets it: the physical path) as the
    program the shell starts; only the shell in between is gone."""
    containerizer = PosixContainerizer()
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with_shell = shell(tmp_path / "link" / "a", "sleep 30")
    without = replace(shell(tmp_path / "link" / "b", "sleep 30"), direct_argv=("sleep", "30"))
    programs = []
    for config in (with_shell, without):
        root = await containerizer.launch(config)
        try:

            def program(root_pid: int = root.pid) -> psutil.Process | None:
                """The `sleep` process: the root itself, or the shell's child (dash forks)."""
                candidates = [psutil.Process(root_pid), *psutil.Process(root_pid).children()]
                return next((p for p in candidates if p.cmdline() == ["sleep", "30"]), None)

            await eventually(lambda: program() is not None)
            found = program()
            assert found is not None
            pwd = [item for item in found.environ().items() if item[0] == "PWD"]
            programs.append((found.pid == root.pid, found.cwd(), pwd))
        finally:
            await containerizer.destroy(config.container_id)
    assert programs[1] == (True, str(real / "b"), [("PWD", str(real / "b"))])
    assert programs[0][1:] == (str(real / "a"), [("PWD", str(real / "a"))])


async def test_the_shell_runs_the_command_when_the_direct_exec_fails(tmp_path: Path) -> None:
    containerizer = PosixContainerizer()
    script = tmp_path / "script-without-shebang"
    script.write_text("echo from the script\n")
    script.chmod(0o755)
    missing = replace(shell(tmp_path / "a", "no-such-program-x 1"),
                      direct_argv=("no-such-program-x", "1"))
    not_a_binary = replace(shell(tmp_path / "b", str(script)), direct_argv=(str(script),))
    for config in (missing, not_a_binary):
        await containerizer.launch(config)
    assert await containerizer.wait(missing.container_id) == Termination(127, None)
    assert "no-such-program-x: not found" in (tmp_path / "a" / "stderr").read_text()
    assert await containerizer.wait(not_a_binary.container_id) == Termination(0, None)
    assert (tmp_path / "b" / "stdout").read_text() == "from the script\n"


async def test_missing_program_is_a_launch_error(tmp_path: Path) -> None:
    containerizer = PosixContainerizer()
    config = ContainerConfig(
        "c1", ("/no/such/program",), {}, tmp_path / "s", Resources.EMPTY
    )
    with pytest.raises(ContainerLaunchError, match="/no/such/program"):
        await containerizer.launch(config)


async def test_sigterm_is_enough_for_a_cooperative_process(tmp_path: Path) -> None:
    containerizer = PosixContainerizer()
    config = shell(tmp_path / "s", "exec sleep 30")
    await containerizer.launch(config)
    termination = await stop_container(containerizer, config.container_id, grace_period=10)
    assert termination == Termination(None, signal.SIGTERM)


async def test_kill_escalates_to_sigkill_for_a_group_ignoring_sigterm(tmp_path: Path) -> None:
    containerizer = PosixContainerizer()
    sandbox = tmp_path / "s"
    # The shell ignores SIGTERM; its background child inherits that (ignored signals survive
    # exec) and is a grandchild of the agent in the same process group.
    config = shell(sandbox, 'trap "" TERM; sleep 300 & echo $! > child.pid; wait; wait')
    process = await containerizer.launch(config)
    await eventually(lambda: (sandbox / "child.pid").exists()
                   and (sandbox / "child.pid").read_text().strip() != "")
    grandchild = int((sandbox / "child.pid").read_text())
    assert os.getpgid(grandchild) == process.pid

    loop = asyncio.get_running_loop()
    started = loop.time()
    termination = await stop_container(containerizer, config.container_id, grace_period=0.5)
    elapsed = loop.time() - started

    assert termination == Termination(None, signal.SIGKILL)
    assert elapsed >= 0.5  # SIGTERM did not end it; SIGKILL came after the grace period
    await eventually(lambda: not alive(grandchild))


async def test_destroy_kills_leftover_grandchildren_after_the_root_exits(tmp_path: Path) -> None:
    containerizer = PosixContainerizer()
    sandbox = tmp_path / "s"
    config = shell(sandbox, "sleep 300 & echo $! > child.pid")
    await containerizer.launch(config)
    assert await containerizer.wait(config.container_id) == Termination(0, None)
    grandchild = int((sandbox / "child.pid").read_text())
    assert alive(grandchild)
    await containerizer.destroy(config.container_id)
    await eventually(lambda: not alive(grandchild))


async def test_recover_reattaches_to_a_live_process_and_notices_its_end(tmp_path: Path) -> None:
    first = PosixContainerizer()
    config = shell(tmp_path / "s", "sleep 300")
    process = await first.launch(config)

    second = PosixContainerizer()  # as after an agent restart
    stale = type(process)("stale", process.pid, process.start_time - 100, process.sandbox)
    assert await second.recover([process, stale]) == {config.container_id}
    waiting = asyncio.ensure_future(second.wait(config.container_id))
    await second.kill(config.container_id, signal.SIGKILL)
    assert await asyncio.wait_for(waiting, 10) == Termination(None, None)  # not our child
    await first.wait(config.container_id)


class RecordingIsolator(NoopIsolator):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def prepare(self, config: ContainerConfig) -> None:
        self.calls.append("prepare")

    async def isolate(self, container_id: str, pid: int) -> None:
        self.calls.append("isolate")

    async def update(self, container_id: str, resources: Resources) -> None:
        self.calls.append("update")

    async def cleanup(self, container_id: str) -> None:
        self.calls.append("cleanup")


async def test_isolator_hooks_run_in_order(tmp_path: Path) -> None:
    isolator = RecordingIsolator()
    containerizer = PosixContainerizer([isolator])
    config = shell(tmp_path / "s", "exit 0")
    await containerizer.launch(config)
    await containerizer.update(config.container_id, Resources.parse("cpus:1"))
    await containerizer.wait(config.container_id)
    await containerizer.destroy(config.container_id)
    await containerizer.destroy(config.container_id)
    assert isolator.calls == ["prepare", "isolate", "update", "cleanup"]


async def test_containers_outlive_a_lost_spawn_server_and_are_watched_without_it(
        tmp_path: Path) -> None:
    """The spawn server (ADR 0019) crashing loses only exit statuses: its children run on and
    are watched by polling, and the next launch starts a new server."""
    containerizer = PosixContainerizer()
    first = shell(tmp_path / "a", "sleep 30")
    root = await containerizer.launch(first)
    server = psutil.Process(psutil.Process(root.pid).ppid())
    assert "--serve" in server.cmdline() and server.ppid() == os.getpid()
    server.kill()
    await eventually(lambda: not alive(server.pid))
    second = shell(tmp_path / "b", "exit 4")
    await containerizer.launch(second)
    assert await containerizer.wait(second.container_id) == Termination(4, None)
    assert alive(root.pid)
    await containerizer.kill(first.container_id, signal.SIGKILL)
    assert await containerizer.wait(first.container_id) == Termination(None, None)
