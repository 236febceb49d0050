"""Hollow agents: many simulated agents in one process, speaking the real agent <-> master protocol.

    python bench/hollow_agents.py --master HOST:PORT|zk://... --agents N
        [--resources "cpus:8;mem:16384;disk:100000;ports:[31000-32000]"] [--attributes "rack:r1"]
        [--hostname-prefix hollow-] [--first-index 0] [--id-file F] [--log-level WARNING]

Each simulated agent is one `HollowAgent`: the real agent's `MasterLink` (its own stream, leader
detection, (re)registration, heartbeats, reconnect backoff) and the real agent's
`StatusUpdateManager` (updates retried until acknowledged, one in flight per task), around a
task table that never forks::

    master --RunTask--> HollowAgent --TASK_STARTING, TASK_RUNNING--> StatusUpdateManager --> master
                           | after the task's planned duration (see `plan_task`):
                           |     TASK_FINISHED (or TASK_FAILED for `exit N`, `false`)
                           +--KillTask--> TASK_KILLING (TASK_KILLING_STATE frameworks), TASK_KILLED

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
import json
import os
import re
import signal
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import structlog

from mesos_agent.master_link import MasterLink, forward_status_updates, send_status_update
from mesos_agent.status_updates import AckResult, StatusUpdateManager, is_terminal
from mesos_coordination.detector import MasterDetector, create_detector
from mesos_runtime.clock import Clock, SystemClock
from mesos_runtime.logging import configure_logging
from mesos_values.attributes import parse_attributes
from mesos_values.resources import Resources
from protos import agent_pb2, mesos_pb2

log = structlog.get_logger("bench.hollow_agents")

DURATION_LABEL = "hollow_duration_seconds"
VERSION = "hollow"

TaskState: TypeAlias = "mesos_pb2.TaskState.ValueType"
TaskKey = tuple[str, str]  # (framework id, task id)
_Reason = mesos_pb2.TaskStatus.Reason
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


@dataclass(slots=True)
class _HollowTask:
    framework_id: str
    info: mesos_pb2.TaskInfo
    state: TaskState = mesos_pb2.TASK_STAGING
    timer: asyncio.TimerHandle | None = None

    @property
    def key(self) -> TaskKey:
        return (self.framework_id, self.info.task_id.value)

    @property
    def executor_id(self) -> str:
        return (
            self.info.executor.executor_id.value
            if self.info.HasField("executor")
            else self.info.task_id.value
        )


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
            now = time.time()
            self._emit({"event": "all_registered", "agents": self.agents, "wave": self._waves,
                        "time": now, "since_start": round(now - self._started, 3)})

    def disconnected(self, hostname: str) -> None:
        self._connected.discard(hostname)
        if self._complete:
            self._complete = False
            self._emit({"event": "connection_lost", "agents": self.agents, "time": time.time()})


class HollowAgent:
    """One simulated agent: the real `MasterLink` and `StatusUpdateManager`, no processes."""

    def __init__(
        self,
        info: mesos_pb2.AgentInfo,
        detector: MasterDetector,
        observer: FleetObserver,
        *,
        clock: Clock,
        retry_interval: float,
        registration_timeout: float,
    ) -> None:
        self.info = info
        self._observer = observer
        self._clock = clock
        self._updates = StatusUpdateManager(
            clock, initial_backoff=retry_interval, max_backoff=max(10.0, retry_interval)
        )
        self._wake = asyncio.Event()
        self._tasks: dict[TaskKey, _HollowTask] = {}
        self._frameworks: dict[str, mesos_pb2.FrameworkInfo] = {}
        self._link = MasterLink(
            detector, self, self._hello, registration_timeout=registration_timeout
        )

    async def run(self) -> None:
        """Stay registered and deliver status updates until cancelled."""
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._link.run())
                group.create_task(forward_status_updates(
                    self._link, self._updates, self._wake, self._clock))
        finally:
            for task in self._tasks.values():
                if task.timer is not None:
                    task.timer.cancel()

    # ------------------------------------------------------------ MasterLinkHandler

    def _hello(self) -> agent_pb2.AgentMessage:
        if not self.info.id.value:
            return agent_pb2.AgentMessage(
                register=agent_pb2.AgentMessage.Register(agent_info=self.info, version=VERSION)
            )
        framework_ids = {task.framework_id for task in self._tasks.values()}
        return agent_pb2.AgentMessage(
            reregister=agent_pb2.AgentMessage.Reregister(
                agent_info=self.info,
                tasks=[self._task_record(task) for task in self._tasks.values()],
                executors=[
                    task.info.executor for task in self._tasks.values()
                    if task.info.HasField("executor")
                ],
                frameworks=[
                    self._frameworks[f] for f in sorted(framework_ids) if f in self._frameworks
                ],
                version=VERSION,
            )
        )

    def registered(self, message: agent_pb2.MasterMessage) -> None:
        answer = message.registered if message.HasField("registered") else message.reregistered
        self.info.id.CopyFrom(answer.agent_id)
        self._observer.registered(self.info.hostname, answer.agent_id.value)
        for pending in self._updates.resend_all():
            send_status_update(self._link, pending)
        self._wake.set()

    def received(self, message: agent_pb2.MasterMessage) -> None:
        kind = message.WhichOneof("message")
        if kind == "run_task":
            self._run_task(message.run_task.framework_info, message.run_task.task)
        elif kind == "kill_task":
            self._kill_task(message.kill_task.framework_id.value,
                            message.kill_task.task_id.value)
        elif kind == "status_update_acknowledgement":
            ack = message.status_update_acknowledgement
            self._acknowledge(ack.framework_id.value, ack.task_id.value, ack.uuid)
        elif kind == "shutdown_framework":
            self._forget_framework(message.shutdown_framework.framework_id.value)

    def disconnected(self) -> None:
        self._observer.disconnected(self.info.hostname)

    async def refused(self, reason: str, *, reregistering: bool) -> None:
        if not reregistering:
            return
        log.warning("re-registration refused; registering as a new agent",
                    hostname=self.info.hostname, reason=reason)
        for framework_id in list(self._frameworks):
            self._forget_framework(framework_id)
        self.info.ClearField("id")

    # ------------------------------------------------------------------ tasks

    def _run_task(self, framework: mesos_pb2.FrameworkInfo, info: mesos_pb2.TaskInfo) -> None:
        task = _HollowTask(framework.id.value, info)
        if task.key in self._tasks:
            return
        self._frameworks[task.framework_id] = framework
        self._tasks[task.key] = task
        self._emit(task, mesos_pb2.TASK_STARTING)
        self._emit(task, mesos_pb2.TASK_RUNNING)
        plan = plan_task(info)
        if plan.duration is not None:
            task.timer = asyncio.get_running_loop().call_later(
                plan.duration, self._finish, task, plan.final_state
            )

    def _finish(self, task: _HollowTask, state: TaskState) -> None:
        task.timer = None
        if self._tasks.get(task.key) is task and not is_terminal(task.state):
            self._emit(task, state, "hollow task ended")

    def _kill_task(self, framework_id: str, task_id: str) -> None:
        task = self._tasks.get((framework_id, task_id))
        if task is None:
            status = self._status(task_id, "", mesos_pb2.TASK_LOST, "Task is unknown to the agent",
                                  _Reason.REASON_TASK_UNKNOWN)
            self._queue(framework_id, status)
            return
        if is_terminal(task.state):
            return
        if task.timer is not None:
            task.timer.cancel()
            task.timer = None
        framework = self._frameworks.get(framework_id)
        if framework is not None and any(
            c.type == mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE
            for c in framework.capabilities
        ):
            self._emit(task, mesos_pb2.TASK_KILLING)
        self._emit(task, mesos_pb2.TASK_KILLED, "hollow task killed")

    def _forget_framework(self, framework_id: str) -> None:
        for key in [key for key in self._tasks if key[0] == framework_id]:
            task = self._tasks.pop(key)
            if task.timer is not None:
                task.timer.cancel()
            self._updates.forget(*key)
        self._frameworks.pop(framework_id, None)

    def _task_record(self, task: _HollowTask) -> mesos_pb2.Task:
        record = mesos_pb2.Task(
            name=task.info.name,
            task_id=task.info.task_id,
            framework_id=mesos_pb2.FrameworkID(value=task.framework_id),
            agent_id=self.info.id,
            state=task.state,
            resources=task.info.resources,
            labels=task.info.labels,
        )
        if task.info.HasField("executor"):
            record.executor_id.value = task.executor_id
        latest = self._updates.latest(*task.key)
        if latest is not None:
            record.statuses.append(latest)
        return record

    # ---------------------------------------------------------- status updates

    def _status(
        self, task_id: str, executor_id: str, state: TaskState, message: str = "",
        reason: mesos_pb2.TaskStatus.Reason.ValueType = _Reason.REASON_UNSPECIFIED,
    ) -> mesos_pb2.TaskStatus:
        status = mesos_pb2.TaskStatus(
            task_id=mesos_pb2.TaskID(value=task_id),
            state=state,
            message=message,
            source=mesos_pb2.TaskStatus.SOURCE_EXECUTOR,
            reason=reason,
            agent_id=self.info.id,
            timestamp=time.time(),
            uuid=uuid.uuid4().bytes,
        )
        if executor_id:
            status.executor_id.value = executor_id
        return status

    def _emit(self, task: _HollowTask, state: TaskState, message: str = "") -> None:
        task.state = state
        self._queue(task.framework_id, self._status(task.info.task_id.value, task.executor_id,
                                                    state, message))

    def _queue(self, framework_id: str, status: mesos_pb2.TaskStatus) -> None:
        self._updates.update(framework_id, status)
        self._wake.set()

    def _acknowledge(self, framework_id: str, task_id: str, status_uuid: bytes) -> None:
        result = self._updates.acknowledge(framework_id, task_id, status_uuid)
        if result is AckResult.STREAM_FINISHED:
            self._tasks.pop((framework_id, task_id), None)
        if result is not AckResult.UNKNOWN:
            self._wake.set()


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
        ))
    emit({"event": "starting", "agents": config.agents, "time": time.time()})
    try:
        async with asyncio.TaskGroup() as group:
            if config.id_file is not None:
                group.create_task(_keep_ids(config.id_file, observer))
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
    except ValueError as exc:
        parser.error(str(exc))
    config = FleetConfig(
        master=args.master, agents=args.agents, resources=resources, attributes=args.attributes,
        hostname_prefix=args.hostname_prefix, first_index=args.first_index, ip=args.ip,
        id_file=args.id_file, retry_interval=args.status_update_retry_interval,
        registration_timeout=args.registration_timeout,
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
