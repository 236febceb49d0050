"""Real master and agent processes on loopback for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from mesos_agent.containerizer.image_runtime import detach_mounts_under
from mesos_coordination.store import Mutation
from mesos_coordination.store_local import LocalStore

T = TypeVar("T")

DEFAULT_TIMEOUT = 30.0
STOP_SECONDS = 10.0
"""How long a stopped process has between SIGTERM and SIGKILL."""


JSON_TYPE = {"content-type": "application/json"}
"""Headers of a raw JSON body: the APIs refuse bodies of other types (415, ADR 0013)."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(
    condition: Callable[[], T | None], what: str, timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.02,
) -> T:
    """Poll `condition` every `interval` seconds until it returns something truthy; fail with
    `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.2):
        return True
    return False


@dataclass
class Process:
    """A component process whose output goes to a log file."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None
    http_port: int | None = None  # where its HTTP endpoints listen, when the test chose it
    listen_port: int | None = None  # once it answers there it has started (`wait_listening`)

    @property
    def http_url(self) -> str:
        """The base URL of the process's HTTP endpoints."""
        assert self.http_port is not None, f"{self.name} was started without a known HTTP port"
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, timeout: float = DEFAULT_TIMEOUT) -> re.Match[str]:
        regex = re.compile(pattern)
        return wait_for(
            lambda: regex.search(self.log()), f"{self.name} to log {pattern!r}", timeout
        )

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def wait_listening(self) -> Process:
        """Wait until the process answers on its `listen_port`; fail, with its log, if it
        exits first."""
        port = self.listen_port
        assert port is not None, f"{self.name} was started without a port to wait for"
        wait_for(lambda: port_answers(port) or not self.alive(), f"{self.name} to listen")
        assert self.alive(), self.log()
        return self

    def kill9(self) -> None:
        assert self.popen is not None
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it has not exited within STOP_SECONDS."""
        stop_all([self])

    def terminate(self) -> None:
        """Send SIGTERM, if it is running."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()

    def wait_stopped(self, deadline: float) -> None:
        """Wait until it has exited, SIGKILLing it at `deadline` (time.monotonic())."""
        if self.popen is None:
            return
        try:
            self.popen.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def stop_all(processes: Iterable[Process]) -> None:
    """Stop `processes` together: SIGTERM to each, then wait for all, SIGKILLing any still
    running STOP_SECONDS after the signals (each stops cleanly whatever its peers do)."""
    processes = list(processes)
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + STOP_SECONDS
    for process in processes:
        process.wait_stopped(deadline)


@dataclass
class Cluster:
    """A master and agents started on demand; everything is stopped by `close`."""

    work_dir: Path
    master_flags: list[str] = field(default_factory=list)
    agent_flags: list[str] = field(default_factory=list)  # added to every agent's
    processes: list[Process] = field(default_factory=list)
    master_port: int = 0
    agent_count: int = 0
    master_count: int = 0
    zk_url: str | None = None  # masters elect a leader there; others find it there
    masters: list[Process] = field(default_factory=list)

    @property
    def master_address(self) -> str:
        """What agents and schedulers pass as --master."""
        return self.zk_url or f"127.0.0.1:{self.master_port}"

    def start_master(self, http_port: int | None = None, *, port: int | None = None,
                     flags: Sequence[str] = (), wait: bool = True) -> Process:
        """Start a master (on `port`, default a free one, with `flags` besides the cluster's);
        its HTTP endpoints listen on `http_port` (default: a free port, never the fixed
        default, so that several masters can run side by side). Returns once it listens;
        with `wait=False` at once (call its `wait_listening`), so that the start-ups of
        several processes overlap (not for processes that open a short ZooKeeper session:
        the contention of overlapping start-ups on a busy machine can expire it)."""
        self.master_port = port or free_port()
        self.master_count += 1
        name = f"master-{self.master_count}"  # never reused: restarted masters get new logs
        zk = ["--zk", self.zk_url, "--zk_session_timeout", "2secs"] if self.zk_url else []
        http_port = http_port or free_port()
        process = Process(
            name,
            [sys.executable, "-m", "mesos_master", "--ip", "127.0.0.1",
             "--port", str(self.master_port), "--http_port", str(http_port),
             "--work_dir", str(self.work_dir / name),
             "--log_level", "DEBUG", *zk, *self.master_flags, *flags],
            self.work_dir / f"{name}.log",
            http_port=http_port,
            listen_port=self.master_port,
        ).start()
        self.processes.append(process)
        self.masters.append(process)
        return process.wait_listening() if wait else process

    def start_marathon(self, *flags: str, name: str = "marathon",
                       wait: bool = True) -> tuple[Process, str]:
        """Start Marathon against the cluster's master; returns it and its base URL once it
        listens (with `wait=False` at once: call its `wait_listening`). Killed instances stop
        at once unless `flags` set `--sigterm_delay` (tests that need no load balancer need
        not wait for one)."""
        if "--sigterm_delay" not in flags:
            flags = ("--sigterm_delay", "0", *flags)
        return self._start_service("marathon", flags, name, free_port(), wait)

    def start_batch(self, *flags: str, name: str = "batch", port: int | None = None,
                    wait: bool = True) -> tuple[Process, str]:
        """Start the batch framework (`python -m frameworks.batch`) against the cluster's
        master, its state under work_dir/<name>; returns it and its base URL once it listens
        (with `wait=False` at once: call its `wait_listening`)."""
        return self._start_service("frameworks.batch", flags, name, port or free_port(), wait)

    def _start_service(
        self, module: str, flags: tuple[str, ...], name: str, port: int, wait: bool
    ) -> tuple[Process, str]:
        process = Process(
            name,
            [sys.executable, "-m", module, "--master", self.master_address,
             "--http_port", str(port), "--work_dir", str(self.work_dir / name),
             "--log_level", "DEBUG", *flags],
            self.work_dir / f"{name}.log",
            listen_port=port,
        ).start()
        self.processes.append(process)
        if wait:
            process.wait_listening()
        return process, f"http://127.0.0.1:{port}"

    def leading_masters(self) -> list[Process]:
        """Live masters whose latest leadership line says they lead."""
        leading = []
        for master in self.masters:
            lines = [line for line in master.log().splitlines()
                     if "elected leading master" in line or "no longer the leading" in line]
            if master.alive() and lines and "elected leading master" in lines[-1]:
                leading.append(master)
        return leading

    def start_agent(
        self,
        resources: str = "cpus:4;mem:4096;disk:10000;ports:[31000-31099]",
        hostname: str | None = None,
        attributes: str | None = None,
        work_dir: Path | None = None,
        port: int | None = None,
        http_port: int | None = None,
    ) -> Process:
        """Start an agent; with `http_port` its HTTP endpoints listen there (otherwise on a
        free port of its own choosing)."""
        self.agent_count += 1
        name = f"agent-{self.agent_count}"
        argv = [
            sys.executable,
            "-m",
            "mesos_agent",
            "--master",
            self.master_address,
            "--ip",
            "127.0.0.1",
            "--port",
            str(port or free_port()),
            "--hostname",
            hostname or f"host{self.agent_count}",
            "--work_dir",
            str(work_dir or self.work_dir / name),
            "--resources",
            resources,
            "--log_level",
            "DEBUG",
            "--status_update_retry_interval",
            "1secs",
            # The suite's frameworks name users this machine does not have ("tester"); tests
            # of --switch_user pass --switch_user=true in `agent_flags`.
            "--switch_user=false",
        ]
        if attributes:
            argv += ["--attributes", attributes]
        if http_port is not None:
            argv += ["--http_port", str(http_port)]
        argv += self.agent_flags
        process = Process(name, argv, self.work_dir / f"{name}.log", http_port=http_port).start()
        self.processes.append(process)
        return process

    def close(self) -> None:
        stop_all(reversed(self.processes))
        _kill_tasks_under(self.work_dir)
        _remove_task_cgroups(self.work_dir)
        detach_mounts_under(self.work_dir)


def _remove_task_cgroups(work_dir: Path) -> None:
    """Remove the cgroups (default --cgroups_root) of containers with a sandbox under
    `work_dir`: agents killed with SIGKILL leave them behind."""
    from mesos_agent.containerizer.cgroups import Cgroups, CgroupsUnavailable, mounts_under

    container_ids = {run.name for run in work_dir.glob("**/executors/*/runs/*")}
    cgroups = Cgroups(mounts_under(Path("/sys/fs/cgroup")), "mesos")
    for controller in ("cpu", "cpuacct", "memory", "pids"):
        with contextlib.suppress(CgroupsUnavailable):
            for container_id in container_ids & cgroups.containers(controller):
                with contextlib.suppress(OSError):
                    cgroups.destroy(controller, container_id)


def _kill_tasks_under(work_dir: Path) -> None:
    """Kill task processes left running in sandboxes under `work_dir` (agents may be SIGKILLed)."""
    import psutil

    root = str(work_dir)
    for process in psutil.process_iter(["cwd"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            cwd = process.info.get("cwd") or ""
            if cwd.startswith(root) and process.pid != os.getpid():
                os.killpg(os.getpgid(process.pid), signal.SIGKILL)


@contextlib.contextmanager
def running_cluster(work_dir: Path, master_flags: list[str] | None = None) -> Iterator[Cluster]:
    cluster = Cluster(work_dir, master_flags or [])
    try:
        cluster.start_master()
        yield cluster
    finally:
        cluster.close()


def write_local_records(directory: Path, records: Mapping[str, bytes]) -> dict[str, bytes]:
    """Put `records` (store key to value) straight into the local store in `directory`, as an
    old or buggy leader would have written them (its owner must be stopped); returns the
    entries the store held before."""
    async def write() -> dict[str, bytes]:
        store = LocalStore(directory)
        try:
            entries = await store.recover()
            await store.commit([Mutation(key, value) for key, value in records.items()])
            return entries
        finally:
            await store.close()

    return asyncio.run(write())
