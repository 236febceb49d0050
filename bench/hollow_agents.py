"""Hollow agents: many simulated agents in one process, speaking the real agent <-> master protocol.

    python bench/hollow_agents.py --master HOST:PORT|zk://... --agents N
        [--resources "cpus:8;mem:16384;disk:100000;ports:[31000-32000]"] [--attributes "rack:r1"]
        [--hostname-prefix hollow-] [--first-index 0] [--id-file F] [--log-level WARNING]
        [--standby-streams on|off]

Each simulated agent is one `HollowAgent`: the real agent's `MasterLink` (its own stream, leader
detection, (re)registration, heartbeats, reconnect backoff) and the real agent's `TaskBook`
(tasks, frameworks, status updates retried until acknowledged, one in flight per task), with
nothing on disk; the hollow agent is the book's runner and plays its tasks with timers instead
of processes (as Kubernetes' hollow kubelet runs the real kubelet on a fake runtime)::

    master --RunTask--> TaskBook --launch--> HollowAgent --TASK_STARTING, TASK_RUNNING--> TaskBook
                                               | after the task's planned duration (`plan_task`):
                                               |   TASK_FINISHED (or TASK_FAILED: `exit N`, `false`)
           --KillTask--> TaskBook --kill-----> +--> TASK_KILLING (TASK_KILLING_STATE frameworks),
                                                    TASK_KILLED
    TaskBook --StatusUpdateManager--> master

How long a task "runs" (`plan_task`): the task label `hollow_duration_seconds` wins; otherwise a
command `sleep N` runs N seconds; `true`, `:` and `exit 0` finish at once, `false` and `exit N`
fail at once; any other command runs until killed.

When the leading master changes (or its stream breaks) every agent re-registers with its agent
id, its non-terminal tasks and its unacknowledged terminal ones, then resends its unacknowledged
updates, exactly as a real agent does. With `--id-file` the agent ids survive a restart of this
process (a JSON object hostname -> agent id, rewritten as ids are assigned).

Progress goes to stdout as JSON lines with a wall-clock `time`, for benchmarks to read:
`{"event": "starting", ...}` once the agents are built and about to connect,
`{"event": "all_registered", "wave": K, ...}` each time every agent of the process is registered
(again), and `{"event": "connection_lost", ...}` when the first agent of a complete fleet loses
its master.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import re
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import structlog

from mesos_agent.master_link import MasterLink, forward_status_updates, send_status_update
from mesos_agent.status_updates import StatusUpdateManager
from mesos_agent.task_book import NoJournal, Task, TaskBook, TaskKey
from mesos_coordination.detector import MasterDetector, create_detector
from mesos_runtime.clock import Clock, SystemClock, WallClock
from mesos_runtime.logging import configure_logging
from mesos_values.attributes import parse_attributes
from mesos_values.resources import Resources
from protos import agent_pb2, mesos_pb2

log = structlog.get_logger("bench.hollow_agents")

DURATION_LABEL = "hollow_duration_seconds"
GC_YOUNG_THRESHOLD = 10_000  # as a master's (mesos_master.main): many objects, most long-lived
VERSION = "hollow"
STREAMS_SETTLE_SECONDS = 5.0

TaskState: TypeAlias = "mesos_pb2.TaskState.ValueType"
_NO_JOURNAL = NoJournal()  # hollow agents keep nothing on disk
_SLEEP = re.compile(r"^\s*(?:exec\s+)?sleep\s+(\d+(?:\.\d*)?)\s*;?\s*$")
_EXIT = re.compile(r"^\s*exit\s+(\d+)\s*;?\s*$")


@dataclass(frozen=True, slots=True)
class TaskPlan:
    """How a hollow agent plays a task: `final_state` after `duration` seconds (None: it runs
    until killed)."""

    duration: float | None
    final_state: TaskState = mesos_pb2.TASK_FINISHED


def plan_task(task: mesos_pb2.TaskInfo) -> TaskPlan:
    """The plan for `task`; see the module docstring. A malformed duration label is ignored."""
    for label in task.labels.labels:
        if label.key == DURATION_LABEL:
            with contextlib.suppress(ValueError):
                duration = float(label.value)
                if duration >= 0:
                    return TaskPlan(duration)
    command = task.command
    text = command.value if command.shell else " ".join(command.arguments or [command.value])
    if match := _SLEEP.match(text):
        return TaskPlan(float(match.group(1)))
    if text.strip() in ("true", ":"):
        return TaskPlan(0.0)
    if text.strip() == "false":
        return TaskPlan(0.0, mesos_pb2.TASK_FAILED)
    if match := _EXIT.match(text):
        code = int(match.group(1))
        return TaskPlan(0.0, mesos_pb2.TASK_FINISHED if code == 0 else mesos_pb2.TASK_FAILED)
    return TaskPlan(None)


class FleetObserver:
    """What a `HollowAgent` tells the process about its registration."""

    def __init__(self, agents: int, *, emit: Callable[[dict[str, object]], None]) -> None:
        self.agents = agents
        self._emit = emit
        self._connected: set[str] = set()
        self._complete = False
        self._waves = 0
        self._started = time.time()
        self.ids: dict[str, str] = {}
        self.ids_changed = asyncio.Event()

    def registered(self, hostname: str, agent_id: str) -> None:
        if self.ids.get(hostname) != agent_id:
            self.ids[hostname] = agent_id
            self.ids_changed.set()
        self._connected.add(hostname)
        if not self._complete and len(self._connected) == self.agents:
            self._complete = True
            self._waves += 1
            # Thousands of agents' long-lived state in one process (a real agent process holds
            # one's): keep the collector from walking it over and over.
            gc.freeze()
            now = time.time()
            self._emit({"event": "all_registered", "agents": self.agents, "wave": self._waves,
                        "time": now, "since_start": round(now - self._started, 3)})

    def disconnected(self, hostname: str) -> None:
        self._connected.discard(hostname)
        if self._complete:
            self._complete = False
            # A failover begins: what is alive now lives on (books, streams), and what the
            # agents build as they come back need not make the collector walk it (as a new
            # leader freezes its heap at its election).
            gc.freeze()
            self._emit({"event": "connection_lost", "agents": self.agents, "time": time.time()})


class HollowAgent:
    """One simulated agent: the real `MasterLink` and `TaskBook`, whose tasks it plays with
    timers (it is the book's `TaskRunner`) instead of processes."""

    def __init__(
        self,
        info: mesos_pb2.AgentInfo,
        detector: MasterDetector,
        observer: FleetObserver,
        *,
        clock: Clock,
        retry_interval: float,
        registration_timeout: float,
        standby_streams: bool = True,
    ) -> None:
        self.info = info
        self._observer = observer
        self._clock = clock
        self._updates = StatusUpdateManager(
            clock, initial_backoff=retry_interval, max_backoff=max(10.0, retry_interval)
        )
        self._wake = asyncio.Event()
        self._book = TaskBook(info, self._updates, _NO_JOURNAL, self, wake=self._wake.set,
                              wall_clock=WallClock())
        self._timers: dict[TaskKey, asyncio.TimerHandle] = {}
        self._link = MasterLink(
            detector, self, self._hello, registration_timeout=registration_timeout,
            standby_streams=standby_streams,
            # What `_hello` reports is the book's (its executors come from its tasks).
            state_version=lambda: self._book.report_version,
        )

    @property
    def passive_streams(self) -> int:
        """Passive streams open to standby masters (ADR 0018)."""
        standbys = self._link.standbys
        return len(standbys.masters) if standbys is not None else 0

    async def run(self) -> None:
        """Stay registered and deliver status updates until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._link.run())
                group.create_task(forward_status_updates(
                    self._link, self._updates, self._wake, self._clock))
        finally:
            for timer in self._timers.values():
                timer.cancel()

    # ------------------------------------------------------------ MasterLinkHandler

    def _hello(self) -> agent_pb2.AgentMessage:
        executors = [t.info.executor for t in self._book.tasks() if t.custom_executor]
        return self._book.hello(VERSION, executors)

    def registered(self, message: agent_pb2.MasterMessage) -> None:
        answer = message.registered if message.HasField("registered") else message.reregistered
        if self.info.id.value != answer.agent_id.value:
            self.info.id.CopyFrom(answer.agent_id)
        self._observer.registered(self.info.hostname, answer.agent_id.value)
        for pending in self._book.reconnected():
            send_status_update(self._link, pending)

    def received(self, message: agent_pb2.MasterMessage) -> None:
        self._book.receive(message)  # executor messages never come: hollow tasks have none

    def disconnected(self) -> None:
        self._observer.disconnected(self.info.hostname)

    async def refused(self, reason: str, *, reregistering: bool) -> None:
        if not reregistering:
            return
        log.warning("re-registration refused; registering as a new agent",
                    hostname=self.info.hostname, reason=reason)
        self._book.shutdown_frameworks()
        self._book.forget_updates()
        self.info.ClearField("id")

    # ------------------------------------------------------------ TaskRunner

    def launch(self, task: Task, ticket: int) -> None:
        """TASK_STARTING and TASK_RUNNING at once; the end as `plan_task` says."""
        self._book.update(task, mesos_pb2.TASK_STARTING)
        self._book.update(task, mesos_pb2.TASK_RUNNING)
        plan = plan_task(task.info)
        if plan.duration is not None:
            self._timers[task.key] = asyncio.get_running_loop().call_later(
                plan.duration, self._end, task, plan.final_state
            )

    def _end(self, task: Task, state: TaskState) -> None:
        del self._timers[task.key]
        self._book.update(task, state, "hollow task ended")
        self._book.finished(task)

    def kill(self, task: Task, policy: mesos_pb2.KillPolicy | None) -> None:
        self._stop(task)
        self._book.killing(task)
        self._book.update(task, mesos_pb2.TASK_KILLED, "hollow task killed")
        self._book.finished(task)

    def stop_framework(self, framework_id: str) -> None:
        for task in self._book.tasks():
            if task.framework_id == framework_id:
                self._stop(task)
                self._book.finished(task)

    def _stop(self, task: Task) -> None:
        timer = self._timers.pop(task.key, None)
        if timer is not None:
            timer.cancel()

    def holds_framework(self, framework_id: str) -> bool:
        return False

    def executor_sandbox(self, framework_id: str, executor_id: str) -> Path | None:
        return None


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """What every agent of the process shares."""

    master: str
    agents: int
    resources: Resources
    attributes: str = ""
    hostname_prefix: str = "hollow-"
    first_index: int = 0
    ip: str = "127.0.0.1"
    id_file: Path | None = None
    retry_interval: float = 10.0
    registration_timeout: float = 60.0
    standby_streams: bool = True  # passive streams to the standby masters (ADR 0018)


def hostnames(config: FleetConfig) -> list[str]:
    """The fleet's hostnames: prefix + six-digit index."""
    return [
        f"{config.hostname_prefix}{index:06d}"
        for index in range(config.first_index, config.first_index + config.agents)
    ]


def _read_ids(path: Path | None) -> dict[str, str]:
    if path is None or not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object hostname -> agent id")
    return {str(key): str(value) for key, value in data.items()}


def _write_ids(path: Path, ids: dict[str, str]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(ids, sort_keys=True))
    os.replace(temporary, path)


async def _freeze_settled_streams(agents: Sequence[HollowAgent]) -> None:
    """Freeze the heap (as `FleetObserver.registered` does) once the fleet's passive streams,
    opened after its registration, stop growing: their state is long-lived too."""
    frozen = last = 0
    while True:
        await asyncio.sleep(STREAMS_SETTLE_SECONDS)
        streams = sum(agent.passive_streams for agent in agents)
        if streams == last and streams > frozen:
            gc.freeze()
            frozen = streams
        last = streams


async def _keep_ids(path: Path, observer: FleetObserver) -> None:
    try:
        while True:
            await observer.ids_changed.wait()
            observer.ids_changed.clear()
            _write_ids(path, observer.ids)
            await asyncio.sleep(0.5)  # coalesce a registration storm into few rewrites
    finally:
        _write_ids(path, observer.ids)


def _print_event(event: dict[str, object]) -> None:
    print(json.dumps(event), flush=True)


async def run_fleet(
    config: FleetConfig, *, emit: Callable[[dict[str, object]], None] = _print_event
) -> None:
    """Run the fleet's agents until cancelled."""
    detector = create_detector(config.master)
    observer = FleetObserver(config.agents, emit=emit)
    known = _read_ids(config.id_file)
    observer.ids.update(known)
    attributes = parse_attributes(config.attributes) if config.attributes else []
    clock = SystemClock()
    agents = []
    for hostname in hostnames(config):
        info = mesos_pb2.AgentInfo(
            hostname=hostname, address=config.ip, resources=config.resources.to_proto(),
            attributes=attributes,
        )
        if hostname in known:
            info.id.value = known[hostname]
        agents.append(HollowAgent(
            info, detector, observer, clock=clock, retry_interval=config.retry_interval,
            registration_timeout=config.registration_timeout,
            standby_streams=config.standby_streams,
        ))
    emit({"event": "starting", "agents": config.agents, "time": time.time()})
    try:
        async with asyncio.TaskGroup() as group:
            if config.id_file is not None:
                group.create_task(_keep_ids(config.id_file, observer))
            if config.standby_streams:
                group.create_task(_freeze_settled_streams(agents))
            for agent in agents:
                group.create_task(agent.run())
    finally:
        await detector.close()


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be positive")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", required=True, help="HOST:PORT or zk://host:port,.../path")
    parser.add_argument("--agents", type=int, required=True, help="simulated agents to run")
    parser.add_argument("--resources", "--agent_resources",
                        default="cpus:8;mem:16384;disk:100000;ports:[31000-32000]")
    parser.add_argument("--attributes", default="", help='e.g. "rack:r1;zone:a"')
    parser.add_argument("--hostname-prefix", "--hostname_prefix", default="hollow-")
    parser.add_argument("--first-index", "--first_index", type=int, default=0,
                        help="index of the first hostname (processes sharing a fleet differ)")
    parser.add_argument("--ip", default="127.0.0.1", help="address the agents advertise")
    parser.add_argument("--id-file", "--id_file", type=Path, default=None,
                        help="JSON file keeping hostname -> agent id across restarts")
    parser.add_argument("--status-update-retry-interval", "--status_update_retry_interval",
                        type=_positive, default=10.0, help="first retry of an unacked update (s)")
    parser.add_argument("--registration-timeout", "--registration_timeout", type=_positive,
                        default=60.0, help="give up on a master's answer to (re)register after")
    parser.add_argument("--log-level", "--log_level", default="WARNING")
    parser.add_argument("--standby-streams", "--standby_streams", choices=("on", "off"),
                        default="on", help="keep passive streams to the standby masters")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.agents <= 0:
        parser.error("--agents must be positive")
    try:
        resources = Resources.parse(args.resources)
        if args.attributes:
            parse_attributes(args.attributes)
        create_detector(args.master)
        configure_logging(args.log_level)
        gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
    except ValueError as exc:
        parser.error(str(exc))
    config = FleetConfig(
        master=args.master, agents=args.agents, resources=resources, attributes=args.attributes,
        hostname_prefix=args.hostname_prefix, first_index=args.first_index, ip=args.ip,
        id_file=args.id_file, retry_interval=args.status_update_retry_interval,
        registration_timeout=args.registration_timeout,
        standby_streams=args.standby_streams == "on",
    )
    asyncio.run(_serve(config))


async def _serve(config: FleetConfig) -> None:
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, current.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await run_fleet(config)


if __name__ == "__main__":
    main()
