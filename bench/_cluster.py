"""Shared by the end-to-end benchmarks: a real master and agents, and a scheduler that launches
long-running command tasks until a given number of them are TASK_RUNNING.

Unlike tests/integration/cluster.py, components run at the log level the benchmark asks for
(INFO, their default, unless told otherwise), and `close()` also kills every task process
group the agents started, whether the agents are still alive or not.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import psutil

from frameworks import OfferBudget, Scheduler, SchedulerDriver, command_task, is_terminal
from mesos_agent.containerizer.cgroups import Cgroups, CgroupsUnavailable, mounts_under
from mesos_agent.containerizer.image_runtime import detach_mounts_under
from mesos_agent.paths import AgentPaths
from mesos_security.pki import CertificateAuthority
from mesos_security.tls import TlsConfig
from protos import mesos_pb2

T = TypeVar("T")


def finish_work_dir(work_dir: Path, keep: bool) -> None:
    """Remove a bench's work dir, or say where it is kept (`--keep`); then write everything
    back (`sync`), so that the next bench does not start while the file system is still
    flushing this one's files and deletions."""
    if keep:
        print(f"work dir kept: {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    os.sync()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], T | None], what: str, timeout: float) -> T:
    """Poll `condition` until it returns something truthy; RuntimeError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.02)


def machine() -> str:
    """nproc, CPU model and Python version, for the printed header."""
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} CPUs ({model}), Python {sys.version.split()[0]}"


def machine_seconds() -> tuple[float, float]:
    """CPU seconds so far, all CPUs (`/proc/stat`): busy (every process, the kernel's threads
    and interrupts) and stolen (taken by the hypervisor of a virtual machine)."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, irq, softirq, steal = (
            int(value) for value in stat.readline().split()[1:9])
    ticks = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / ticks, steal / ticks


def wait_for_quiet_machine(busy_below: float = 0.15, timeout: float = 90.0) -> float:
    """Wait until the machine's CPUs were busy less than `busy_below` (a fraction of all of
    them) over one second, e.g. while a previous run's thousand tasks are still being torn
    down; returns the last second's fraction (the wait gives up after `timeout`: the caller
    prints the fraction, so a busy start is visible)."""
    cpus = os.cpu_count() or 1
    deadline = time.monotonic() + timeout
    while True:
        before = machine_seconds()[0]
        time.sleep(1.0)
        busy = (machine_seconds()[0] - before) / cpus
        if busy < busy_below or time.monotonic() > deadline:
            return busy


def _thread_times() -> dict[tuple[int, int], tuple[int, int, str]]:
    """(pid, tid) -> (nanoseconds on a CPU, parent pid, command name) of every thread alive."""
    times: dict[tuple[int, int], tuple[int, int, str]] = {}
    for pid_name in os.listdir("/proc"):
        if not pid_name.isdigit():
            continue
        pid = int(pid_name)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
            name = text[text.index("(") + 1:text.rindex(")")]
            parent = int(text[text.rindex(")") + 2:].split()[1])
            for tid_name in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid_name}/schedstat") as schedstat:
                    times[(pid, int(tid_name))] = (int(schedstat.read().split()[0]), parent, name)
        except (OSError, ValueError):
            continue  # gone meanwhile
    return times


class CpuLedger:
    """Who used the machine's CPU between `start()` and `stop()`, exactly: the scheduler's own
    count of every thread's time on a CPU (`/proc/PID/task/TID/schedstat`). The per-process
    times of `/proc/PID/stat` (psutil's) are sampled at the clock tick and miss short bursts:
    a process forked and exec'd shows next to no time there, which hid the tasks' own start.

    `components` names the benchmark's processes (name -> pids). A named process's descendants
    count as its own, except an agent's (a component whose name starts with "agent"): its
    spawn servers (`mesos-launch`) and the tasks they start are counted apart. Threads that
    ended meanwhile are missed; the machine's busy time from `/proc/stat` is printed beside.
    """

    def __init__(self, components: dict[str, list[int]]) -> None:
        self._components = components
        self._before: dict[tuple[int, int], tuple[int, int, str]] = {}
        self._machine_before = (0.0, 0.0)

    def start(self) -> None:
        self._before = _thread_times()
        self._machine_before = machine_seconds()

    def stop(self) -> dict[str, float]:
        """CPU seconds per component since `start()`, then "the kernel's threads and others",
        "the whole machine" and "stolen by the hypervisor"."""
        after = _thread_times()
        machine_after = machine_seconds()
        parents = {pid: parent for (pid, _tid), (_ns, parent, _name) in after.items()}
        names = {pid: name for (pid, _tid), (_ns, _parent, name) in after.items()}
        owners = {pid: name for name, pids in self._components.items() for pid in pids}
        owners.setdefault(os.getpid(), "this bench")

        def owner(pid: int) -> str:
            child_names: list[str] = []
            while pid > 1:
                if pid in owners:
                    found = owners[pid]
                    if found.startswith("agent") and child_names:
                        return ("spawn servers" if child_names[-1].startswith("mesos-launch")
                                and len(child_names) == 1 else "tasks")
                    return found
                child_names.append(names.get(pid, ""))
                pid = parents.get(pid, 0)
            return "the kernel's threads and others"

        used = dict.fromkeys([*self._components, "spawn servers", "tasks",
                              owners[os.getpid()]], 0.0)
        for key, (nanoseconds, _parent, _name) in after.items():
            spent = nanoseconds - self._before.get(key, (0, 0, ""))[0]
            if spent > 0:
                name = owner(key[0])
                used[name] = used.get(name, 0.0) + spent / 1e9
        used["the whole machine"] = machine_after[0] - self._machine_before[0]
        used["stolen by the hypervisor"] = machine_after[1] - self._machine_before[1]
        return used


def file_system(path: Path) -> str:
    """The type of the file system holding `path`, noting an ext4 without a journal: its inode
    allocator skips inodes freed in the last minutes, one by one, so creating files right
    after many were deleted costs far more (docs/benchmarks.md, "Task launch")."""
    path = path.resolve()
    mounts: list[tuple[str, str, str]] = []
    with contextlib.suppress(OSError), open("/proc/mounts") as table:
        for line in table:
            device, mount_point, fs_type = line.split()[:3]
            if path.is_relative_to(mount_point):
                mounts.append((mount_point, device, fs_type))
    if not mounts:
        return "unknown file system"
    mount_point, device, fs_type = max(mounts, key=lambda mount: len(mount[0]))
    described = f"{fs_type} at {mount_point}"
    if fs_type == "ext4":
        journals = Path("/proc/fs/jbd2")
        name = Path(device).name
        journaled = journals.is_dir() and any(
            entry.name.startswith(f"{name}-") for entry in journals.iterdir())
        if not journaled:
            described += (" without a journal (figures drop for minutes after mass file "
                          "deletions, this bench's own cleanup included)")
    return described


@dataclass(frozen=True)
class Security:
    """A secured cluster (ADR 0013): mutual TLS everywhere, and every framework and agent
    authenticated with a credential. Certificates come from a fresh CA."""

    master_flags: tuple[str, ...]
    agent_flags: tuple[str, ...]
    tls: TlsConfig
    credential: mesos_pb2.Credential

    @classmethod
    def create(cls, directory: Path) -> Security:
        """Make the CA, the certificates, the credentials file and the agent's credential
        in `directory`."""
        authority = CertificateAuthority.create(directory)
        master, agent, scheduler = (authority.issue(name) for name in ("master", "agent", "bench"))
        credentials = directory / "credentials.json"
        credentials.write_text(json.dumps({"credentials": [
            {"principal": "bench", "secret": "bench-secret"},
            {"principal": "agent", "secret": "agent-secret"},
        ]}))
        agent_credential = directory / "agent-credential"
        agent_credential.write_text("agent agent-secret\n")
        ca = str(authority.cert_file)
        return cls(
            master_flags=(
                "--ssl_cert_file", str(master.cert_file), "--ssl_key_file", str(master.key_file),
                "--ssl_ca_file", ca, "--ssl_require_client_cert", "true",
                "--authenticate_frameworks", "true", "--authenticate_agents", "true",
                "--credentials", str(credentials),
            ),
            agent_flags=(
                "--ssl_cert_file", str(agent.cert_file), "--ssl_key_file", str(agent.key_file),
                "--ssl_ca_file", ca, "--credential", str(agent_credential),
            ),
            tls=TlsConfig(cert_file=str(scheduler.cert_file), key_file=str(scheduler.key_file),
                          ca_file=ca),
            credential=mesos_pb2.Credential(principal="bench", secret=b"bench-secret"),
        )


class BenchCluster:
    """One master and any number of agents, as processes logging to files under `work_dir`;
    with `security`, a cluster of mutual TLS and authenticated frameworks and agents."""

    def __init__(self, work_dir: Path, log_level: str, cprofile_dir: Path | None = None,
                 security: Security | None = None, isolation: str | None = None,
                 agent_flags: Sequence[str] = ()) -> None:
        """`isolation`: the agents' `--isolation` (None: their default); cgroups are made
        under a cgroups root of this cluster's own, removed by `close`; `agent_flags` are
        added to every agent's."""
        self.work_dir = work_dir
        self.isolation = isolation
        self.agent_flags = list(agent_flags)
        self.cgroups_root = f"bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.log_level = log_level
        self.cprofile_dir = cprofile_dir
        self.security = security
        self.master_address = ""
        self.master: subprocess.Popen[bytes] | None = None
        self.agents: list[subprocess.Popen[bytes]] = []
        self._processes: list[subprocess.Popen[bytes]] = []
        self._task_groups: set[int] = set()

    def start_process(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start `python <argv>` as component `name`, logging to `<work_dir>/<name>.log`."""
        if self.cprofile_dir is not None:
            self.cprofile_dir.mkdir(parents=True, exist_ok=True)
            argv = ["-m", "cProfile", "-o", str(self.cprofile_dir / f"{name}.pstats"), *argv]
        with (self.work_dir / f"{name}.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, *argv, "--log_level", self.log_level],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        self._processes.append(process)
        return process

    def log(self, name: str) -> str:
        path = self.work_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_master(self) -> None:
        port = free_port()
        self.master_address = f"127.0.0.1:{port}"
        master = self.master = self.start_process("master", [
            "-m", "mesos_master", "--ip", "127.0.0.1", "--port", str(port),
            "--http_port", str(free_port()), "--work_dir", str(self.work_dir / "master"),
            *(self.security.master_flags if self.security else ()),
        ])

        def listening() -> bool:
            if master.poll() is not None:
                raise RuntimeError(f"the master exited:\n{self.log('master')}")
            with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", port), timeout=0.2
            ):
                return True
            return False

        wait_for(listening, "the master to listen", 30.0)

    def start_agent(self, resources: str) -> subprocess.Popen[bytes]:
        """Start an agent and wait until it has registered with the master."""
        name = f"agent-{len(self.agents) + 1}"
        agent = self.start_process(name, [
            "-m", "mesos_agent", "--master", self.master_address, "--ip", "127.0.0.1",
            "--port", str(free_port()), "--hostname", name,
            "--work_dir", str(self.work_dir / name), "--resources", resources,
            *(self.security.agent_flags if self.security else ()),
            *((f"--isolation={self.isolation}",) if self.isolation is not None else ()),
            f"--cgroups_root={self.cgroups_root}", *self.agent_flags,
        ])
        self.agents.append(agent)

        def registered() -> bool:  # the agent checkpoints the id the master gave it
            if agent.poll() is not None:
                raise RuntimeError(f"{name} exited:\n{self.log(name)}")
            return AgentPaths(self.work_dir / name).agent_file.exists()

        wait_for(registered, f"{name} to register", 30.0)
        return agent

    def task_processes(self) -> list[psutil.Process]:
        """Every live task process group leader the agents started (their descendants
        leading their own session: children of the agent or of its spawn server), remembered
        so that `close` can kill the groups."""
        found: list[psutil.Process] = []
        for agent in self.agents:
            with contextlib.suppress(psutil.NoSuchProcess):
                for child in psutil.Process(agent.pid).children(recursive=True):
                    with contextlib.suppress(psutil.Error, ProcessLookupError):
                        if os.getsid(child.pid) == child.pid:
                            found.append(child)
                            self._task_groups.add(child.pid)
        return found

    def close(self) -> None:
        """Kill every task process group, then stop the agents and the master."""
        self.task_processes()
        for group in self._task_groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        for process in reversed(self._processes):
            if process.poll() is None:
                process.terminate()
        for process in self._processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for group in self._task_groups:  # started after the first sweep, e.g. during shutdown
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
        remove_cgroups(self.cgroups_root)
        detach_mounts_under(self.work_dir)


def remove_cgroups(root: str) -> None:
    """Kill what is left in the containers' cgroups under `root`, and remove them."""
    cgroups = Cgroups(mounts_under(Path("/sys/fs/cgroup")), root)
    for controller in ("cpu", "cpuacct", "memory", "pids"):
        with contextlib.suppress(CgroupsUnavailable, OSError):
            for container_id in cgroups.containers(controller):
                cgroups.destroy(controller, container_id)
            base = cgroups.hierarchy(controller) / root
            if base.is_dir():
                base.rmdir()


def spread_tasks(
    offers: list[mesos_pb2.Offer], pending: deque[str], cmd: str, *, cpus: float, mem: float,
    image: str | None = None,
) -> list[tuple[mesos_pb2.Offer, list[mesos_pb2.TaskInfo]]]:
    """Split the `pending` task ids evenly over `offers` (taking them from `pending`), packing
    as many as fit into each offer (tasks in `image`, if given); offers that get none come
    back with an empty list."""
    plan = []
    for index, offer in enumerate(offers):
        share = math.ceil(len(pending) / (len(offers) - index))
        budget = OfferBudget(offer)
        tasks: list[mesos_pb2.TaskInfo] = []
        while len(tasks) < share and budget.fits(cpus=cpus, mem=mem):
            tasks.append(command_task(pending.popleft(), budget, cmd, cpus=cpus, mem=mem,
                                      image=image))
        plan.append((offer, tasks))
    return plan


class LaunchScheduler(Scheduler):
    """Launches `count` copies of `cmd` and notes when each one reaches TASK_RUNNING.

    Each batch of offers gets the pending tasks split evenly, so that every agent starts
    launching at once; inside an offer as many tasks as fit are packed into one launch call.
    """

    def __init__(self, count: int, cmd: str, cpus: float, mem: float,
                 image: str | None = None) -> None:
        self.count, self.cmd, self.cpus, self.mem = count, cmd, cpus, mem
        self.image = image
        self.pending = deque(f"task-{index}" for index in range(count))
        self.first_launch: float | None = None
        self.running_at: list[float] = []
        self.problems: list[str] = []
        self.finished = threading.Event()
        self._running: set[str] = set()

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer, tasks in spread_tasks(offers, self.pending, self.cmd, cpus=self.cpus,
                                         mem=self.mem, image=self.image):
            if not tasks:
                driver.decline_offer(offer.id, filters=60.0)
                continue
            if self.first_launch is None:
                self.first_launch = time.perf_counter()
            driver.launch_tasks(offer.id, tasks)
        if not self.pending:
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        task_id = status.task_id.value
        if status.state == mesos_pb2.TASK_RUNNING and task_id not in self._running:
            self._running.add(task_id)
            self.running_at.append(time.perf_counter())
            if len(self._running) == self.count:
                self.finished.set()
        elif is_terminal(status):
            self.problems.append(
                f"{task_id}: {mesos_pb2.TaskState.Name(status.state)} {status.message}"
            )
            self.finished.set()

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.problems.append(f"scheduler error: {message}")
        self.finished.set()


def run_tasks(
    cluster: BenchCluster, count: int, cmd: str, timeout: float, *, cpus: float, mem: float,
    image: str | None = None,
) -> tuple[LaunchScheduler, SchedulerDriver]:
    """Register a framework and launch `count` tasks (in `image`, if given); returns once
    all are TASK_RUNNING.

    The driver keeps running (tasks stay up) until the caller stops it.
    """
    scheduler = LaunchScheduler(count, cmd, cpus, mem, image)
    security = cluster.security
    driver = SchedulerDriver(
        scheduler, mesos_pb2.FrameworkInfo(name="bench", user=""), cluster.master_address,
        tls=security.tls if security else None,
        credential=security.credential if security else None,
    )
    driver.start()
    if not scheduler.finished.wait(timeout):
        driver.abort()
        raise RuntimeError(
            f"only {len(scheduler.running_at)}/{count} tasks running after {timeout} s"
        )
    if scheduler.problems:
        driver.abort()
        raise RuntimeError("tasks failed: " + "; ".join(scheduler.problems[:5]))
    return scheduler, driver


class Profilers:
    """py-spy recorders (wall clock: idle stacks included) attached to running processes, writing
    collapsed stacks to `out_dir`
    (`name.txt`, one "frame;frame;... count" line per stack); `stop()` flushes them."""

    def __init__(self, out_dir: Path | None) -> None:
        self.out_dir = out_dir
        self._recorders: list[subprocess.Popen[bytes]] = []

    def attach(self, name: str, pid: int) -> None:
        if self.out_dir is None:
            return
        executable = shutil.which("py-spy")
        if executable is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._recorders.append(subprocess.Popen(
            [executable, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
             "--nonblocking", "--idle", "--output", str(self.out_dir / f"{name}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        ))

    def stop(self) -> None:
        for recorder in self._recorders:
            recorder.send_signal(signal.SIGINT)
        for recorder in self._recorders:
            try:
                recorder.wait(30)
            except subprocess.TimeoutExpired:
                recorder.kill()
                recorder.wait()
        self._recorders.clear()
