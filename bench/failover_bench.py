"""Master failover benchmark: kill -9 the leading master of three and time how long until a new
leader has every agent and every framework back.

    python bench/failover_bench.py [--scenario small|hollow|both] [--repeat 3]
        [--zk_session_timeout 2 10] [--agents 3] [--frameworks 2] [--tasks_per_framework 2]
        [--hollow_agents 10000] [--hollow_processes 4] [--hollow_frameworks 100]
        [--hollow_tasks_per_agent 1] [--hollow_master_log_level WARNING]
        [--hollow_standby_streams on|off] [--hollow_nice 0] [--registry_copy_wait on|off]
        [--idle_window 0]
        [--cpu_timeline STEP]
        [--timeout 180] [--profile DIR] [--keep]

One private ZooKeeper (bench/_zookeeper.py) serves the whole run. For each
`--zk_session_timeout` and scenario, three `mesos-master` processes with that session timeout
contend under a fresh ZooKeeper path, and then:

small   `--agents` real `mesos-agent` processes, `--frameworks` SDK frameworks (failover
        timeout 1 h, in this process) running `--tasks_per_framework` `sleep` tasks each;
hollow  `--hollow_agents` simulated agents (bench/hollow_agents.py, in `--hollow_processes`
        processes) and `--hollow_frameworks` SDK frameworks running
        `--hollow_tasks_per_agent` tasks per agent between them.

Each of `--repeat` rounds waits until both standbys hold a passive stream of every agent
(ADR 0018: `master/standby_agents`; not with `--hollow_standby_streams off`, where hollow agents
keep none and come back as before ADR 0018) and, with `--registry_copy_wait on` (the default),
until both hold a current copy of the registry (`registrar/standby_copy_zxid` equals the epoch
znode's mzxid: the new leader reads no entry; after a failover a standby reads the store the new
leader changed 10 s or more later), measures the CPU the standbys and the agent
processes use over `--idle_window` seconds of steady state (0: not measured), kill -9s the
leader and measures, from the kill:

elected     the bench's own ZooKeeper detector (the one agents and schedulers use) names
            another master;
agents      every agent has re-registered with that master: its "agent re-registered" log
            lines (small: masters log at INFO) or, per hollow process, the first
            `all_registered` wave after the kill (hollow: the masters log at
            `--hollow_master_log_level`, WARNING by default, so that 10k log lines do not weigh
            on the figure);
frameworks  every SDK scheduler got its `reregistered` callback;

and also the CPU time of the new leader, of the agent processes and of this process (the
frameworks) from the kill until both were back, and the part of it used after the election
(the rest went before it: detecting the loss, the dead leader's retries), the new leader's RSS
then, and the 1-minute load average. A task that ends meanwhile fails the run, and so
(small) does an agent that re-registers with fewer tasks than were launched. The killed master
is then started again (a standby) and the next round kills the new leader. Each measure is
printed as min / median / max over the rounds. With `--profile DIR`, py-spy records the
standbys and the agent processes of every round (collapsed stacks, wall clock) into DIR. With
`--cpu_timeline STEP`, each round also prints the CPU the standbys, the agent processes and
this process used in every STEP seconds from the kill until everything was back.

The dead leader's ZooKeeper session expires `--zk_session_timeout` after ZooKeeper last heard
from it, and the client pings only every third of that or so: "elected" comes between about
2/3 of the session timeout and the whole of it after the kill.

Every process started here is killed on exit, Ctrl-C and SIGTERM included.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Protocol

import psutil
from _cluster import BenchCluster, Profilers, free_port, machine, spread_tasks
from _zookeeper import ZooKeeperEnsemble, private_zookeeper
from kazoo.client import KazooClient
from scale_bench import HollowFleet

from frameworks import Scheduler, SchedulerDriver, is_terminal
from mesos_coordination.detector import MasterDetector, create_detector
from mesos_coordination.zookeeper import order_members
from mesos_runtime.logging import configure_logging
from mesos_runtime.tasks import cancel_and_wait
from mesos_values.addresses import HostPort
from protos import mesos_pb2

MASTERS = 3
FAILOVER_TIMEOUT = 3600.0
TARGET_AFTER_SESSION_TIMEOUT = 0.5  # small cluster: everything back <= session timeout + 0.5 s
TARGET_AFTER_ELECTION = 2.0  # 10k hollow agents: all re-registered <= 2 s after election
MESOS_10K_SECONDS = 4.5  # Mesos 1.5, 10k agents re-registered after a failover


def _wall_time(timestamp: str) -> float:
    """Seconds since the epoch of a structlog ISO timestamp (`...T12:00:00.123456Z`)."""
    return datetime.fromisoformat(timestamp).timestamp()


class JsonLines:
    """Reads the JSON lines appended to a log file since the last read; other lines (e.g. a
    traceback, or a line still being written) are skipped or left for the next read."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0

    def read(self) -> list[dict[str, object]]:
        if not self.path.exists():
            return []
        with self.path.open("rb") as log:
            log.seek(self._offset)
            data = log.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._offset += len(complete)
        events = []
        for line in complete.splitlines():
            if line.startswith(b"{"):
                with contextlib.suppress(ValueError):
                    event = json.loads(line)
                    if isinstance(event, dict):
                        events.append(event)
        return events


@dataclass
class MasterProcess:
    """One `mesos-master` process of the group."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    http_port: int

    def metrics(self) -> dict[str, float]:
        """The master's /metrics/snapshot."""
        url = f"http://127.0.0.1:{self.http_port}/metrics/snapshot"
        with urllib.request.urlopen(url, timeout=30) as answer:
            values = json.load(answer)
        assert isinstance(values, dict)
        return values

    @property
    def address(self) -> HostPort:
        return HostPort("127.0.0.1", self.port)


class MasterGroup:
    """`mesos-master` processes contending under one ZooKeeper path; `close()` kills them."""

    def __init__(
        self, work_dir: Path, zk_url: str, session_timeout: float, log_level: str
    ) -> None:
        self.work_dir = work_dir
        self.zk_url = zk_url
        self.session_timeout = session_timeout
        self.log_level = log_level
        self.live: list[MasterProcess] = []
        self._started: list[MasterProcess] = []

    def start(self) -> MasterProcess:
        name = f"master-{len(self._started) + 1}"
        port, http_port = free_port(), free_port()
        log_path = self.work_dir / f"{name}.log"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "mesos_master", "--ip", "127.0.0.1", "--port", str(port),
                 "--http_port", str(http_port),
                 "--zk", self.zk_url, "--zk_session_timeout", f"{self.session_timeout}secs",
                 "--log_level", self.log_level],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        master = MasterProcess(name, port, process, log_path, http_port)
        self._started.append(master)
        self.live.append(master)
        return master

    def at(self, address: HostPort) -> MasterProcess:
        for master in self.live:
            if master.address == address:
                return master
        raise RuntimeError(f"the leader {address} is none of the masters started here")

    def kill9(self, master: MasterProcess) -> None:
        master.process.kill()
        master.process.wait()
        self.live.remove(master)

    def check_alive(self) -> None:
        for master in self.live:
            if master.process.poll() is not None:
                log = master.log_path.read_text(errors="replace")
                raise RuntimeError(f"{master.name} exited:\n{log[-3000:]}")

    def close(self) -> None:
        for master in self._started:
            if master.process.poll() is None:
                master.process.terminate()
        for master in self._started:
            try:
                master.process.wait(15)
            except subprocess.TimeoutExpired:
                master.process.kill()
                master.process.wait()


@dataclass
class Tally:
    """What the bench's frameworks report, shared in the one event loop."""

    tasks: int
    subscribed: int = 0
    running: set[str] = field(default_factory=set)
    all_running: asyncio.Event = field(default_factory=asyncio.Event)
    lost: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class FailoverScheduler(Scheduler):
    """Launches its tasks, spread over the offers it gets, then declines everything; notes when
    it re-subscribes after a master failover."""

    def __init__(
        self, name: str, tasks: int, command: str, tally: Tally, *, cpus: float, mem: float
    ) -> None:
        self.name = name
        self.command = command
        self.tally = tally
        self.cpus = cpus
        self.mem = mem
        self.pending = deque(f"{name}-task-{index}" for index in range(tasks))
        self.reregistered_at: float | None = None

    def registered(self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
                   master_info: mesos_pb2.MasterInfo) -> None:
        self.tally.subscribed += 1

    def reregistered(self, driver: SchedulerDriver, master_info: mesos_pb2.MasterInfo) -> None:
        self.reregistered_at = time.time()

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer, tasks in spread_tasks(offers, self.pending, self.command, cpus=self.cpus,
                                         mem=self.mem):
            if tasks:
                driver.launch_tasks(offer.id, tasks, filters=FAILOVER_TIMEOUT)
            else:
                driver.decline_offer(offer.id, filters=FAILOVER_TIMEOUT)
        if not self.pending:
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        task = f"{self.name}/{status.task_id.value}"
        if is_terminal(status):
            self.tally.lost.append(
                f"{task}: {mesos_pb2.TaskState.Name(status.state)} {status.message}"
            )
        elif status.state == mesos_pb2.TASK_RUNNING:
            self.tally.running.add(task)
            if len(self.tally.running) >= self.tally.tasks:
                self.tally.all_running.set()

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.tally.errors.append(f"{self.name}: {message}")


class AgentsBack(Protocol):
    """Tells when every agent was back with the new leader."""

    def done_at(self) -> float | None:
        """The wall-clock time the last agent came back; None while some are missing."""
        ...


class ReregisteredInLog:
    """Reads the new leader's "agent re-registered" log lines (INFO) written since the kill."""

    def __init__(self, log_path: Path, agents: int, since: float) -> None:
        self._lines = JsonLines(log_path)
        self._agents = agents
        self._since = since
        self.reported_tasks: dict[str, int] = {}
        self._latest = 0.0

    def done_at(self) -> float | None:
        for event in self._lines.read():
            if event.get("event") != "agent re-registered":
                continue
            at = _wall_time(str(event.get("timestamp", "")))
            if at >= self._since:
                self.reported_tasks[str(event.get("agent_id"))] = int(str(event.get("tasks", 0)))
                self._latest = max(self._latest, at)
        return self._latest if len(self.reported_tasks) >= self._agents else None


class NextWave:
    """Per hollow process, the first `all_registered` wave after the ones it had printed."""

    def __init__(self, fleet: HollowFleet) -> None:
        self._fleet = fleet
        fleet.poll()
        self._before = [_waves(events) for events in fleet.events]

    def done_at(self) -> float | None:
        self._fleet.poll()
        times = []
        for before, events in zip(self._before, self._fleet.events, strict=True):
            later = [float(str(e["time"])) for e in events
                     if e.get("event") == "all_registered" and int(str(e["wave"])) > before]
            if not later:
                return None
            times.append(min(later))
        return max(times)


def _waves(events: list[dict[str, object]]) -> int:
    return max((int(str(e["wave"])) for e in events if e.get("event") == "all_registered"),
               default=0)


@dataclass
class Round:
    """One failover, in seconds from the kill unless named otherwise."""

    elected: float
    agents: float
    frameworks: float
    leader_cpu: float
    agents_cpu: float
    frameworks_cpu: float
    leader_rss_mib: float
    load: float
    leader_cpu_after: float = 0.0  # the CPU of the new leader, agents, frameworks from the
    agents_cpu_after: float = 0.0  # election until back (part of the fields above)
    frameworks_cpu_after: float = 0.0
    registry_recovered: float | None = None
    reported_tasks: int | None = None
    resumed: int = 0  # agents back over the passive stream they held (ADR 0018)

    @property
    def everything(self) -> float:
        return max(self.agents, self.frameworks)


@dataclass
class Scenario:
    """One cluster under test and what a failover round needs to know about it."""

    label: str
    name: str  # the label as a file name
    masters: MasterGroup
    detector: MasterDetector
    schedulers: list[FailoverScheduler]
    tally: Tally
    agents_back: Callable[[MasterProcess, float], AgentsBack]
    agent_processes: list[psutil.Process]
    zk: KazooClient
    zk_path: str
    agents: int
    standby_streams: bool


@contextlib.asynccontextmanager
async def _limit(seconds: float, what: str) -> AsyncIterator[None]:
    """Give the block `seconds`; then fail naming `what` it waited for."""
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError:
        raise RuntimeError(f"timed out after {seconds:.0f} s waiting for {what}") from None


async def _until(condition: Callable[[], bool], check: Callable[[], None]) -> None:
    """Poll `condition` until true, calling `check` (which raises on trouble) in between."""
    while not condition():
        check()
        await asyncio.sleep(0.02)


async def _next_leader(detector: MasterDetector, previous: HostPort | None) -> HostPort:
    while True:
        address = await detector.detect(previous)
        if address != previous:
            return address


def _group_size(zk: KazooClient, path: str) -> int:
    return len(order_members(zk.get_children(path))) if zk.exists(path) else 0


async def _masters_in_group(zk: KazooClient, path: str, masters: MasterGroup) -> None:
    while await asyncio.to_thread(_group_size, zk, path) < MASTERS:
        masters.check_alive()
        await asyncio.sleep(0.1)


async def _standbys_ready(masters: list[MasterProcess], agents: int,
                          check: Callable[[], None]) -> None:
    """Wait until every master of `masters` holds a passive stream of each agent (ADR 0018)."""
    def ready() -> bool:
        return all(m.metrics()["master/standby_agents"] >= agents for m in masters)

    while not await asyncio.to_thread(ready):
        check()
        await asyncio.sleep(0.5)


def _epoch_zxid(zk: KazooClient, path: str) -> int:
    """The modification (mzxid) of the registry's epoch znode under `path`; 0 while none."""
    stat = zk.exists(f"{path}/registry/epoch")
    return int(stat.mzxid) if stat is not None else 0


def _stale_copies(masters: list[MasterProcess], zk: KazooClient, path: str) -> list[str]:
    """The standbys whose copy of the registry is not the store as it is now (ADR 0018): a new
    leader among them would read every entry instead of taking its copy."""
    zxid = _epoch_zxid(zk, path)
    return [m.name for m in masters if m.metrics()["registrar/standby_copy_zxid"] != zxid]


async def _copies_current(masters: list[MasterProcess], zk: KazooClient, path: str,
                          check: Callable[[], None]) -> None:
    """Wait until every master of `masters` holds a current copy of the registry."""
    while await asyncio.to_thread(_stale_copies, masters, zk, path):
        check()
        await asyncio.sleep(0.5)


async def _steady_state(scenario: Scenario, standbys: list[MasterProcess], seconds: float,
                        number: int) -> None:
    """Print the CPU share and RSS of the standbys and the agent processes, idle."""
    processes = {m.name: psutil.Process(m.process.pid) for m in standbys}
    before = {name: _cpu_seconds(p) for name, p in processes.items()}
    agents_before = sum(_cpu_seconds(p) for p in scenario.agent_processes)
    await asyncio.sleep(seconds)
    shares = ", ".join(
        f"{name} {(_cpu_seconds(p) - before[name]) / seconds:.3f} CPU, "
        f"{p.memory_info().rss / 2**20:.0f} MiB" for name, p in processes.items())
    agents = (sum(_cpu_seconds(p) for p in scenario.agent_processes) - agents_before) / seconds
    agents_rss = sum(p.memory_info().rss for p in scenario.agent_processes) / 2**20
    print(f"  {scenario.label} round {number}: idle {seconds:g} s: standbys {shares}; agent "
          f"processes {agents:.3f} CPU, {agents_rss:.0f} MiB", flush=True)


class CpuTimeline:
    """The CPU seconds named processes used in each `step` from `start()` until `stop()`."""

    def __init__(self, groups: dict[str, list[psutil.Process]], step: float) -> None:
        self.groups = groups
        self.step = step
        self.rows: list[tuple[float, dict[str, float]]] = []
        self._task: asyncio.Task[None] | None = None

    def _sample(self) -> dict[str, float]:
        return {name: sum(_cpu_seconds(p) for p in processes)
                for name, processes in self.groups.items()}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(time.perf_counter(), self._sample()))

    async def _run(self, began: float, last: dict[str, float]) -> None:
        while True:
            await asyncio.sleep(self.step)
            now = await asyncio.to_thread(self._sample)
            self.rows.append((time.perf_counter() - began,
                              {name: now[name] - last[name] for name in now}))
            last = now

    async def stop(self) -> str:
        """Stop sampling; the timeline as text, a line per step."""
        if self._task is not None:
            await cancel_and_wait(self._task)
        names = list(self.groups)
        lines = ["    t (s)  " + "  ".join(f"{name:>10}" for name in names)]
        lines += [f"    {at:5.2f}  " + "  ".join(f"{used[name]:10.2f}" for name in names)
                  for at, used in self.rows]
        return "\n".join(lines)


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _registry_recovered(master: MasterProcess, since: float) -> float | None:
    """When the new leader logged "recovered the registry" (INFO only), if it did."""
    for event in JsonLines(master.log_path).read():
        if event.get("event") == "recovered the registry":
            at = _wall_time(str(event.get("timestamp", "")))
            if at >= since:
                return at
    return None


async def failover_round(
    scenario: Scenario, number: int, args: argparse.Namespace, last: bool
) -> Round:
    """Kill -9 the leader, time the recovery, and start the killed master again."""
    masters = scenario.masters
    leader = masters.at(await _next_leader(scenario.detector, None))
    standbys = [m for m in masters.live if m is not leader]
    if scenario.standby_streams:
        waited = time.perf_counter()
        async with _limit(args.timeout, "the standbys to hold every agent's passive stream"):
            await _standbys_ready(standbys, scenario.agents, masters.check_alive)
        print(f"  {scenario.label} round {number}: standbys hold all {scenario.agents} agents' "
              f"passive streams (waited {time.perf_counter() - waited:.1f} s)", flush=True)
    if args.registry_copy_wait == "on":
        waited = time.perf_counter()
        async with _limit(args.timeout, "the standbys' copies of the registry to be current"):
            await _copies_current(standbys, scenario.zk, scenario.zk_path, masters.check_alive)
        print(f"  {scenario.label} round {number}: standbys hold a current copy of the registry "
              f"(waited {time.perf_counter() - waited:.1f} s)", flush=True)
    if args.idle_window > 0:
        await _steady_state(scenario, standbys, args.idle_window, number)
    stale = await asyncio.to_thread(_stale_copies, standbys, scenario.zk, scenario.zk_path)
    resumed_before = {m.name: m.metrics()["master/slave_resumptions"] for m in standbys}
    cpu_before = {m.name: _cpu_seconds(psutil.Process(m.process.pid)) for m in standbys}
    me = psutil.Process()
    agents_cpu_before = sum(_cpu_seconds(p) for p in scenario.agent_processes)
    my_cpu_before = _cpu_seconds(me)
    profilers = Profilers(args.profile)
    prefix = f"{scenario.name}-round{number}"
    for standby in standbys:
        profilers.attach(f"{prefix}-{standby.name}", standby.process.pid)
    for index, agent_process in enumerate(scenario.agent_processes):
        profilers.attach(f"{prefix}-agents-{index}", agent_process.pid)
    if args.profile is not None:
        await asyncio.sleep(1.0)  # let py-spy attach before the interesting part
    for scheduler in scenario.schedulers:
        scheduler.reregistered_at = None
    lost_before = len(scenario.tally.lost)
    timeline: CpuTimeline | None = None
    if args.cpu_timeline > 0:
        timeline = CpuTimeline(
            {**{m.name: [psutil.Process(m.process.pid)] for m in standbys},
             "agents": scenario.agent_processes, "frameworks": [me]}, args.cpu_timeline)
        timeline.start()
    try:
        killed_at = time.time()
        masters.kill9(leader)
        async with _limit(args.timeout, "a new leader"):
            new_address = await _next_leader(scenario.detector, leader.address)
        elected_at = time.time()
        new_leader = masters.at(new_address)
        leader_process = psutil.Process(new_leader.process.pid)
        cpu_at_election = (_cpu_seconds(leader_process),
                           sum(_cpu_seconds(p) for p in scenario.agent_processes),
                           _cpu_seconds(me))
        agents_back = scenario.agents_back(new_leader, killed_at)
        back: dict[str, float] = {}

        def everything_back() -> bool:
            if "agents" not in back and (at := agents_back.done_at()) is not None:
                back["agents"] = at
            times = [s.reregistered_at for s in scenario.schedulers]
            if "frameworks" not in back and all(t is not None for t in times):
                back["frameworks"] = max(t for t in times if t is not None)
            return len(back) == 2

        async with _limit(args.timeout, "every agent and framework to come back"):
            await _until(everything_back, masters.check_alive)
        process = leader_process
        cpu_back = (_cpu_seconds(process), sum(_cpu_seconds(p) for p in scenario.agent_processes),
                    _cpu_seconds(me))
        result = Round(
            elected=elected_at - killed_at,
            agents=back["agents"] - killed_at,
            frameworks=back["frameworks"] - killed_at,
            leader_cpu=_cpu_seconds(process) - cpu_before[new_leader.name],
            agents_cpu=sum(_cpu_seconds(p) for p in scenario.agent_processes) - agents_cpu_before,
            frameworks_cpu=_cpu_seconds(me) - my_cpu_before,
            leader_rss_mib=process.memory_info().rss / 2**20,
            load=os.getloadavg()[0],
            leader_cpu_after=cpu_back[0] - cpu_at_election[0],
            agents_cpu_after=cpu_back[1] - cpu_at_election[1],
            frameworks_cpu_after=cpu_back[2] - cpu_at_election[2],
        )
    finally:
        profilers.stop()
        if timeline is not None:
            print(f"  {scenario.label} round {number}: CPU seconds per {args.cpu_timeline:g} s "
                  f"from the kill:\n{await timeline.stop()}", flush=True)
    result.resumed = int(new_leader.metrics()["master/slave_resumptions"]
                         - resumed_before[new_leader.name])
    recovered = _registry_recovered(new_leader, killed_at)
    if recovered is not None:
        result.registry_recovered = recovered - killed_at
    if isinstance(agents_back, ReregisteredInLog):
        result.reported_tasks = sum(agents_back.reported_tasks.values())
    lost = scenario.tally.lost[lost_before:]
    if lost:
        raise RuntimeError(f"{len(lost)} tasks ended during the failover: {lost[:5]}")
    print(f"  {scenario.label} round {number}: elected {result.elected:.2f} s, agents "
          f"{result.agents:.2f} s, frameworks {result.frameworks:.2f} s after the kill; CPU "
          f"new leader {result.leader_cpu:.2f} s, agents {result.agents_cpu:.2f} s, frameworks "
          f"{result.frameworks_cpu:.2f} s (after the election {result.leader_cpu_after:.2f} / "
          f"{result.agents_cpu_after:.2f} / {result.frameworks_cpu_after:.2f} s); leader RSS "
          f"{result.leader_rss_mib:.0f} MiB, load "
          f"{result.load:.2f}; {result.resumed} agents resumed over a passive stream; "
          f"registry copies stale at the kill: {', '.join(stale) or 'none'}",
          flush=True)
    if not last:
        masters.start()
        async with _limit(args.timeout, "the restarted master to stand by"):
            await _masters_in_group(scenario.zk, scenario.zk_path, masters)
    return result


async def start_frameworks(
    scenario_label: str, zk_url: str, count: int, tasks_each: int, command: str,
    drivers: list[SchedulerDriver], *, cpus: float, mem: float, check: Callable[[], None],
) -> tuple[list[FailoverScheduler], Tally]:
    """Subscribe `count` SDK frameworks through ZooKeeper (their drivers are appended to
    `drivers`, for the caller to stop) and wait until all their tasks run."""
    tally = Tally(tasks=count * tasks_each)
    schedulers: list[FailoverScheduler] = []
    for index in range(count):
        scheduler = FailoverScheduler(f"f{index}", tasks_each, command, tally, cpus=cpus, mem=mem)
        info = mesos_pb2.FrameworkInfo(name=f"{scenario_label}-f{index}", user="",
                                       failover_timeout=FAILOVER_TIMEOUT)
        driver = SchedulerDriver(scheduler, info, zk_url)
        await driver.start()
        schedulers.append(scheduler)
        drivers.append(driver)

    def ready() -> bool:
        if tally.errors or tally.lost:
            raise RuntimeError(f"frameworks failed: {(tally.errors + tally.lost)[:5]}")
        return tally.subscribed == count and (tally.tasks == 0 or tally.all_running.is_set())

    await _until(ready, check)
    return schedulers, tally


@dataclass
class Figures:
    """The rounds of every scenario, printed as a table."""

    rows: list[tuple[str, str, list[float], str]] = field(default_factory=list)

    def add(self, scenario: str, measure: str, values: list[float], target: str = "") -> None:
        self.rows.append((scenario, measure, values, target))

    def table(self) -> str:
        header = ("scenario", "measure", "min", "median", "max", "target")
        lines: list[tuple[str, ...]] = [header]
        for scenario, measure, values, target in self.rows:
            cells = [f"{v:.2f}" for v in (min(values), statistics.median(values), max(values))]
            lines.append((scenario, measure, *cells, target))
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = []
        for number, line in enumerate(lines):
            out.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
            if number == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)


def record(figures: Figures, label: str, session_timeout: float, rounds: list[Round],
           *, hollow: bool) -> None:
    elected = [r.elected for r in rounds]
    figures.add(label, "kill -> elected (s)", elected)
    figures.add(label, "agents resumed over a passive stream", [r.resumed for r in rounds])
    recovered = [r.registry_recovered for r in rounds if r.registry_recovered is not None]
    if len(recovered) == len(rounds):
        figures.add(label, "kill -> registry recovered (s)", recovered)
    if hollow:
        after = [r.agents - r.elected for r in rounds]
        verdict = "meets" if max(after) <= TARGET_AFTER_ELECTION else "MISSES"
        figures.add(label, "elected -> all agents re-registered (s)", after,
                    f"{verdict} <= {TARGET_AFTER_ELECTION:.0f} s (Mesos 1.5: ~{MESOS_10K_SECONDS}"
                    " s for 10k)")
        figures.add(label, "elected -> all frameworks re-subscribed (s)",
                    [r.frameworks - r.elected for r in rounds])
    else:
        figures.add(label, "kill -> all agents re-registered (s)", [r.agents for r in rounds])
        figures.add(label, "kill -> all frameworks re-subscribed (s)",
                    [r.frameworks for r in rounds])
    target = session_timeout + TARGET_AFTER_SESSION_TIMEOUT
    everything = [r.everything for r in rounds]
    verdict = "meets" if max(everything) <= target else "MISSES"
    figures.add(label, "kill -> everything back (s)", everything,
                "" if hollow else f"{verdict} <= session timeout + "
                f"{TARGET_AFTER_SESSION_TIMEOUT:g} s = {target:g} s")
    figures.add(label, "CPU kill -> back: new leader (s)", [r.leader_cpu for r in rounds])
    figures.add(label, "CPU kill -> back: agent processes (s)", [r.agents_cpu for r in rounds])
    figures.add(label, "CPU kill -> back: frameworks, this process (s)",
                [r.frameworks_cpu for r in rounds])
    figures.add(label, "CPU elected -> back: new leader (s)", [r.leader_cpu_after for r in rounds])
    figures.add(label, "CPU elected -> back: agent processes (s)",
                [r.agents_cpu_after for r in rounds])
    figures.add(label, "CPU elected -> back: frameworks (s)",
                [r.frameworks_cpu_after for r in rounds])
    figures.add(label, "new leader RSS when back (MiB)", [r.leader_rss_mib for r in rounds])
    figures.add(label, "load average, 1 min", [r.load for r in rounds])


@contextlib.contextmanager
def _kazoo(hosts: str) -> Iterator[KazooClient]:
    client = KazooClient(hosts=hosts, timeout=10.0)
    client.start(timeout=15.0)
    try:
        yield client
    finally:
        client.stop()
        client.close()


async def run_scenario(
    args: argparse.Namespace, ensemble: ZooKeeperEnsemble, work_dir: Path,
    session_timeout: float, hollow: bool, closers: contextlib.ExitStack, figures: Figures,
) -> None:
    """Start a cluster (masters, agents, frameworks), run the rounds, stop the cluster."""
    kind = "hollow" if hollow else "small"
    label = f"{kind}, zk session {session_timeout:g} s"
    path = f"/{kind}-{session_timeout:g}s".replace(".", "_")
    zk_url = ensemble.url(path)
    scenario_dir = work_dir / path.lstrip("/")
    scenario_dir.mkdir()
    log_level = args.hollow_master_log_level if hollow else "INFO"
    masters = MasterGroup(scenario_dir, zk_url, session_timeout, log_level)
    detector = create_detector(zk_url)
    async with contextlib.AsyncExitStack() as stack:
        stack.callback(masters.close)
        closers.callback(masters.close)
        stack.push_async_callback(detector.close)
        zk = stack.enter_context(_kazoo(ensemble.hosts))
        for _ in range(MASTERS):
            masters.start()
        started = time.perf_counter()
        async with _limit(args.timeout, "a leader"):
            await _next_leader(detector, None)
        agents_back: Callable[[MasterProcess, float], AgentsBack]
        if hollow:
            agents = args.hollow_agents
            fleet = HollowFleet(scenario_dir)
            stack.callback(fleet.close)
            closers.callback(fleet.close)
            fleet.start(zk_url, agents, args.hollow_processes, args.hollow_agent_resources,
                        ("--standby_streams", args.hollow_standby_streams))

            def fleet_registered() -> bool:
                fleet.poll()
                return all(_waves(events) >= 1 for events in fleet.events)

            async with _limit(args.timeout, f"{agents} hollow agents to register"):
                await _until(fleet_registered, masters.check_alive)
            frameworks, tasks_each = args.hollow_frameworks, math.ceil(
                agents * args.hollow_tasks_per_agent / max(1, args.hollow_frameworks))
            command, cpus, mem = "sleep 86400", 0.1, 32.0
            agent_popens = fleet.processes

            def agents_back(_leader: MasterProcess, _since: float) -> AgentsBack:
                return NextWave(fleet)
        else:
            agents = args.agents
            cluster = BenchCluster(scenario_dir, "INFO")
            cluster.master_address = zk_url
            stack.callback(cluster.close)
            closers.callback(cluster.close)
            for _ in range(agents):
                await asyncio.to_thread(cluster.start_agent, args.agent_resources)
            frameworks, tasks_each = args.frameworks, args.tasks_per_framework
            command, cpus, mem = "sleep 3600", 0.1, 16.0
            agent_popens = cluster.agents

            def agents_back(leader: MasterProcess, since: float) -> AgentsBack:
                return ReregisteredInLog(leader.log_path, agents, since)

        drivers: list[SchedulerDriver] = []
        stack.push_async_callback(_abort_all, drivers)
        async with _limit(args.timeout, f"{frameworks} frameworks and their tasks"):
            schedulers, tally = await start_frameworks(
                kind, zk_url, frameworks, tasks_each, command, drivers, cpus=cpus, mem=mem,
                check=masters.check_alive,
            )
            await _masters_in_group(zk, path, masters)
        print(f"{label}: {MASTERS} masters, {agents} agents, {frameworks} frameworks, "
              f"{tally.tasks} tasks running after {time.perf_counter() - started:.1f} s",
              flush=True)
        agent_processes = [psutil.Process(p.pid) for p in agent_popens]
        if hollow and args.hollow_nice:
            for process in agent_processes:
                process.nice(args.hollow_nice)
        scenario = Scenario(label, path.lstrip("/"), masters, detector, schedulers,
                            tally, agents_back, agent_processes, zk, path, agents,
                            not hollow or args.hollow_standby_streams == "on")
        rounds = [
            await failover_round(scenario, number, args, last=number == args.repeat)
            for number in range(1, args.repeat + 1)
        ]
        record(figures, label, session_timeout, rounds, hollow=hollow)
        if not hollow:
            expected = tally.tasks
            reported = {r.reported_tasks for r in rounds}
            if reported != {expected}:
                raise RuntimeError(
                    f"agents re-registered with {reported} tasks, expected {expected}"
                )


async def _abort_all(drivers: list[SchedulerDriver]) -> None:
    for driver in drivers:
        driver.abort()
    for driver in drivers:
        with contextlib.suppress(Exception):
            await driver.join()


async def run_all(
    args: argparse.Namespace, ensemble: ZooKeeperEnsemble, work_dir: Path,
    closers: contextlib.ExitStack, figures: Figures,
) -> bool:
    """Run every scenario; False when interrupted (SIGINT, SIGTERM) meanwhile. An interruption
    cancels this task, so that every scenario stops its drivers and processes on the way out."""
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, current.cancel)
    try:
        for session_timeout in args.zk_session_timeout:
            for hollow in {"small": [False], "hollow": [True], "both": [False, True]}[
                args.scenario
            ]:
                await run_scenario(args, ensemble, work_dir, session_timeout, hollow, closers,
                                   figures)
    except asyncio.CancelledError:
        return False
    return True


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=("small", "hollow", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3, help="failovers per scenario")
    parser.add_argument("--zk_session_timeout", type=_positive, nargs="+", default=[2.0, 10.0],
                        help="the masters' ZooKeeper session timeouts to measure with (s)")
    parser.add_argument("--agents", type=int, default=3, help="small: real agents")
    parser.add_argument("--agent_resources", default="cpus:4;mem:4096;disk:10000;"
                                                     "ports:[31000-31099]")
    parser.add_argument("--frameworks", type=int, default=2, help="small: SDK frameworks")
    parser.add_argument("--tasks_per_framework", type=int, default=2, help="small: sleep tasks")
    parser.add_argument("--hollow_agents", type=int, default=10_000)
    parser.add_argument("--hollow_processes", type=int, default=4)
    parser.add_argument("--hollow_agent_resources", default="cpus:8;mem:16384;disk:100000;"
                                                            "ports:[31000-32000]")
    parser.add_argument("--hollow_frameworks", type=int, default=100)
    parser.add_argument("--hollow_tasks_per_agent", type=float, default=1.0,
                        help="hollow: tasks in all, per agent, split between the frameworks")
    parser.add_argument("--hollow_master_log_level", default="WARNING")
    parser.add_argument("--hollow_standby_streams", choices=("on", "off"), default="on",
                        help="hollow agents keep passive streams to the standbys (ADR 0018)")
    parser.add_argument("--hollow_nice", type=int, default=0,
                        help="run the hollow agent processes at this niceness: agents on "
                        "machines of their own do not take the masters' CPU (0: as started)")
    parser.add_argument("--registry_copy_wait", choices=("on", "off"), default="on",
                        help="before each kill, wait until both standbys hold a current copy "
                        "of the registry (ADR 0018; off: kill as soon as the passive streams "
                        "are held, even while a standby is still reading the store a "
                        "previous round's leader changed)")
    parser.add_argument("--idle_window", type=float, default=0.0,
                        help="measure the steady-state CPU of standbys and agents over this "
                        "many seconds before each kill")
    parser.add_argument("--timeout", type=_positive, default=180.0,
                        help="give up a phase (start-up, one failover) after this long (s)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record py-spy profiles of the standby masters and the agent "
                        "processes during each failover into this directory")
    parser.add_argument("--cpu_timeline", type=float, default=0.0,
                        help="print the CPU the masters, agents and frameworks used in every "
                        "this many seconds of each failover (0: not)")
    parser.add_argument("--log_level", default="ERROR",
                        help="log level of the SDK frameworks in this process (to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    configure_logging(args.log_level)
    for signum in (signal.SIGINT, signal.SIGTERM):  # outside the event loop; also when started
        signal.signal(signum, _interrupt)            # with SIGINT ignored

    print(f"command: {shlex.join(['python', *sys.argv])}")
    print(f"machine: {machine()}, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM")
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}", flush=True)
    work_dir = Path(tempfile.mkdtemp(prefix="failover-bench-"))
    figures = Figures()
    failed = False
    try:
        with private_zookeeper(work_dir / "zookeeper") as ensemble, \
                contextlib.ExitStack() as closers:
            if not asyncio.run(run_all(args, ensemble, work_dir, closers, figures)):
                raise KeyboardInterrupt
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception:
        failed = True
        raise
    finally:
        load = os.getloadavg()
        print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        if figures.rows:
            print(figures.table())
        if args.keep or failed:
            print(f"work dir kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
