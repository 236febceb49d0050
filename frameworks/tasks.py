"""Building TaskInfos and ExecutorInfos without protobuf boilerplate, and reading task states.

    command_task("t1", offer, "sleep 1", cpus=0.1, mem=32, ports=1)     # built-in command executor
    executor = executor_info("exec-1", [sys.executable, "-m", "my.executor"])
    executor_task("t2", budget, executor, data=b"...")                    # a custom executor

`on` is where the task runs: an `Offer` (its resources are checked and ports chosen from it),
an `OfferBudget` (to pack several tasks into one offer), or a bare agent id (no checks; ports
must then be given as numbers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TypeAlias

from frameworks import _ids
from frameworks._ids import AgentIDLike, ExecutorIDLike, FrameworkIDLike, TaskIDLike
from frameworks.offers import OfferBudget, task_resources
from mesos_values.resources import Resources
from mesos_values.task_states import TERMINAL_STATES
from protos import mesos_pb2

__all__ = [
    "TERMINAL_STATES",
    "Command",
    "Placement",
    "command_info",
    "command_task",
    "executor_info",
    "executor_task",
    "health_check",
    "is_terminal",
    "kill_policy",
    "state_name",
    "volume",
]

Placement: TypeAlias = mesos_pb2.Offer | OfferBudget | AgentIDLike
"""Where a task runs: an offer, a budget packing several tasks into one offer, or an agent id."""

Command: TypeAlias = str | Sequence[str]
"""A shell command line (run under /bin/sh -c) or an argv list (run directly)."""



def _state(value: mesos_pb2.TaskStatus | mesos_pb2.TaskState.ValueType) -> (
    mesos_pb2.TaskState.ValueType
):
    return value.state if isinstance(value, mesos_pb2.TaskStatus) else value


def is_terminal(value: mesos_pb2.TaskStatus | mesos_pb2.TaskState.ValueType) -> bool:
    """Whether a status (or a bare state) is terminal."""
    return _state(value) in TERMINAL_STATES


def state_name(value: mesos_pb2.TaskStatus | mesos_pb2.TaskState.ValueType) -> str:
    """The state's name, e.g. `TASK_RUNNING`."""
    return mesos_pb2.TaskState.Name(_state(value))


def _labels(values: Mapping[str, str]) -> mesos_pb2.Labels:
    return mesos_pb2.Labels(
        labels=[mesos_pb2.Label(key=key, value=value) for key, value in values.items()]
    )


def kill_policy(grace_period: float | None, *,
                sigterm_delay: float | None = None) -> mesos_pb2.KillPolicy:
    """A kill policy: SIGTERM, then SIGKILL after `grace_period` seconds (None: the agent's
    default). With `sigterm_delay` the task is announced TASK_KILLING first and gets its
    SIGTERM that many seconds later (load balancers and DNS drop it meanwhile)."""
    policy = mesos_pb2.KillPolicy()
    for name, seconds in (("grace_period", grace_period), ("sigterm_delay", sigterm_delay)):
        if seconds is None:
            continue
        if not 0 <= seconds < math.inf:
            raise ValueError(f"the kill {name.replace('_', ' ')} must be a finite number of "
                             f"seconds, at least 0 ({seconds})")
        getattr(policy, name).nanoseconds = round(seconds * 1e9)
    return policy


def command_info(cmd: Command, *, env: Mapping[str, str] | None = None) -> mesos_pb2.CommandInfo:
    """A `CommandInfo` for a shell command line or an argv list, with environment variables."""
    info = mesos_pb2.CommandInfo()
    if isinstance(cmd, str):
        if not cmd.strip():
            raise ValueError("the command must not be empty")
        info.value = cmd
        info.shell = True
    else:
        argv = list(cmd)
        if not argv:
            raise ValueError("the argv list must not be empty")
        info.value = argv[0]
        info.arguments.extend(argv)
        info.shell = False
    for name, value in (env or {}).items():
        info.environment.variables.add(name=name, value=value)
    return info


def _place(
    on: Placement, cpus: float, mem: float, disk: float, gpus: float,
    ports: int | Sequence[int], executor: mesos_pb2.ExecutorInfo | None = None,
) -> tuple[mesos_pb2.AgentID, Resources]:
    """The agent and the task's resources, deducted from the budget when there is one."""
    if isinstance(on, mesos_pb2.Offer | OfferBudget):
        budget = OfferBudget(on) if isinstance(on, mesos_pb2.Offer) else on
        extra = budget.executor_cost(executor) if executor is not None else Resources.EMPTY
        if not budget.fits(cpus=cpus, mem=mem, disk=disk, gpus=gpus, ports=ports, extra=extra):
            wanted = f"cpus:{cpus};mem:{mem};disk:{disk};gpus:{gpus};ports:{ports}"
            raise ValueError(
                f"offer {budget.offer.id.value} has {budget.remaining or 'nothing'} left; "
                f"the task ({wanted}{' plus its executor ' + str(extra) if extra else ''}) "
                "does not fit"
            )
        if executor is not None:
            budget.charge_executor(executor)
        return budget.agent_id, budget.take(cpus=cpus, mem=mem, disk=disk, gpus=gpus, ports=ports)
    if isinstance(ports, int) and ports:
        raise ValueError("with a bare agent id, give ports as numbers, not a count")
    chosen = () if isinstance(ports, int) else ports
    return _ids.agent_id(on), task_resources(cpus=cpus, mem=mem, disk=disk, gpus=gpus, ports=chosen)


def _task_info(
    task_id: TaskIDLike, name: str | None, agent: mesos_pb2.AgentID, resources: Resources,
    data: bytes, kill_grace_period: float | None, task_labels: Mapping[str, str] | None,
    sigterm_delay: float | None = None,
) -> mesos_pb2.TaskInfo:
    task = mesos_pb2.TaskInfo(task_id=_ids.task_id(task_id), agent_id=agent, data=data)
    task.name = name if name is not None else task.task_id.value
    task.resources.extend(resources.to_proto())
    if kill_grace_period is not None or sigterm_delay:
        task.kill_policy.CopyFrom(kill_policy(kill_grace_period, sigterm_delay=sigterm_delay))
    if task_labels:
        task.labels.CopyFrom(_labels(task_labels))
    return task


def command_task(
    task_id: TaskIDLike,
    on: Placement,
    cmd: Command | None,
    *,
    cpus: float = 0.1,
    mem: float = 32.0,
    disk: float = 0.0,
    gpus: float = 0.0,
    ports: int | Sequence[int] = 0,
    env: Mapping[str, str] | None = None,
    name: str | None = None,
    kill_grace_period: float | None = None,
    labels: Mapping[str, str] | None = None,
    data: bytes = b"",
    image: str | None = None,
    force_pull_image: bool = False,
    volumes: Sequence[mesos_pb2.Volume] = (),
    health_check: mesos_pb2.HealthCheck | None = None,
    sigterm_delay: float | None = None,
) -> mesos_pb2.TaskInfo:
    """A task run by the agent's built-in command executor.

    `ports` is a count (the lowest free ports of the offer are chosen) or the port numbers.
    The chosen ports are also passed as `PORT0`, `PORT1`, ... (and `PORT` for the first)
    unless `env` sets those names. With `image` (a Docker image name, e.g. "busybox" or
    "registry:5000/team/app:1.0") the command runs in that image's root filesystem on agents
    with `--image_providers=docker`; `cmd` None then runs the image's Entrypoint and Cmd, and
    `volumes` (`volume(...)`) are bound into it. `health_check` (`health_check(...)`) is run
    by the agent; its results come as TASK_RUNNING updates with `healthy`. When killed, it
    gets SIGTERM `sigterm_delay` seconds after TASK_KILLING (`kill_policy`). Raises ValueError
    when the task does not fit the offer.
    """
    if cmd is None and image is None:
        raise ValueError("a task without an image needs a command")
    agent, resources = _place(on, cpus, mem, disk, gpus, ports)
    environment = _with_port_variables(env, resources)
    task = _task_info(task_id, name, agent, resources, data, kill_grace_period, labels,
                      sigterm_delay)
    if cmd is not None:
        task.command.CopyFrom(command_info(cmd, env=environment))
    else:
        task.command.shell = False
        for variable, value in environment.items():
            task.command.environment.variables.add(name=variable, value=value)
    if image is not None:
        task.container.type = mesos_pb2.ContainerInfo.MESOS
        task.container.mesos.image.type = mesos_pb2.Image.DOCKER
        task.container.mesos.image.docker.name = image
        if force_pull_image:
            task.container.mesos.image.cached = False
        task.container.volumes.extend(volumes)
    elif volumes:
        raise ValueError("volumes need an image")
    if health_check is not None:
        task.health_check.CopyFrom(health_check)
    return task


def health_check(
    *,
    command: Command | None = None,
    http_port: int | None = None,
    path: str = "/",
    tcp_port: int | None = None,
    delay: float | None = None,
    interval: float | None = None,
    timeout: float | None = None,
    consecutive_failures: int | None = None,
    grace_period: float | None = None,
) -> mesos_pb2.HealthCheck:
    """A health check the agent runs for a task: exactly one of `command` (run in the task's
    container), `http_port` (a GET of `path`) or `tcp_port` (a connection), on the task's
    agent. Unset timings take Mesos' defaults (delay 15 s, interval 10 s, timeout 20 s, grace
    period 10 s, 3 consecutive failures before the task is killed)."""
    if sum(x is not None for x in (command, http_port, tcp_port)) != 1:
        raise ValueError("a health check needs exactly one of command, http_port, tcp_port")
    check = mesos_pb2.HealthCheck()
    if command is not None:
        check.type = mesos_pb2.HealthCheck.COMMAND
        check.command.CopyFrom(command_info(command))
    elif http_port is not None:
        check.type = mesos_pb2.HealthCheck.HTTP
        check.http.port, check.http.path = http_port, path
    elif tcp_port is not None:
        check.type = mesos_pb2.HealthCheck.TCP
        check.tcp.port = tcp_port
    for name, value in (("delay_seconds", delay), ("interval_seconds", interval),
                        ("timeout_seconds", timeout), ("grace_period_seconds", grace_period)):
        if value is not None:
            setattr(check, name, value)
    if consecutive_failures is not None:
        check.consecutive_failures = consecutive_failures
    return check


def volume(host_path: str, container_path: str, *, read_only: bool = False
           ) -> mesos_pb2.Volume:
    """A host path bound into an image task at `container_path` (relative: in its sandbox)."""
    return mesos_pb2.Volume(host_path=host_path, container_path=container_path,
                            mode=mesos_pb2.Volume.RO if read_only else mesos_pb2.Volume.RW)


def executor_info(
    executor_id: ExecutorIDLike,
    cmd: Command,
    *,
    cpus: float = 0.1,
    mem: float = 32.0,
    disk: float = 0.0,
    name: str | None = None,
    env: Mapping[str, str] | None = None,
    data: bytes = b"",
    labels: Mapping[str, str] | None = None,
    framework_id: FrameworkIDLike | None = None,
) -> mesos_pb2.ExecutorInfo:
    """A custom executor: the program `cmd` (built on `ExecutorDriver`) and its own resources."""
    info = mesos_pb2.ExecutorInfo(
        type=mesos_pb2.ExecutorInfo.CUSTOM,
        executor_id=_ids.executor_id(executor_id),
        command=command_info(cmd, env=env),
        data=data,
    )
    info.name = name if name is not None else info.executor_id.value
    info.resources.extend(task_resources(cpus=cpus, mem=mem, disk=disk).to_proto())
    if framework_id is not None:
        info.framework_id.CopyFrom(_ids.framework_id(framework_id))
    if labels:
        info.labels.CopyFrom(_labels(labels))
    return info


def executor_task(
    task_id: TaskIDLike,
    on: Placement,
    executor: mesos_pb2.ExecutorInfo,
    *,
    cpus: float = 0.1,
    mem: float = 32.0,
    disk: float = 0.0,
    gpus: float = 0.0,
    ports: int | Sequence[int] = 0,
    data: bytes = b"",
    name: str | None = None,
    kill_grace_period: float | None = None,
    labels: Mapping[str, str] | None = None,
) -> mesos_pb2.TaskInfo:
    """A task run by the custom `executor` (see `executor_info`); `data` reaches the executor.

    With an offer or budget, the executor's own resources are deducted too unless it already
    runs on that agent (`Offer.executor_ids`) or an earlier task of the same budget paid for it.
    """
    agent, resources = _place(on, cpus, mem, disk, gpus, ports, executor)
    task = _task_info(task_id, name, agent, resources, data, kill_grace_period, labels)
    task.executor.CopyFrom(executor)
    return task


def _with_port_variables(
    env: Mapping[str, str] | None, resources: Resources
) -> dict[str, str]:
    environment = dict(env or {})
    ports = [port for begin, end in resources.ranges_of("ports") for port in range(begin, end + 1)]
    for index, port in enumerate(ports):
        environment.setdefault(f"PORT{index}", str(port))
    if ports:
        environment.setdefault("PORT", str(ports[0]))
    return environment
