"""The agent's operator endpoints in Mesos' shapes (Starlette), a thin shell over `Agent.view()`.

    GET /state  (/slave(1)/state, /state.json)  frameworks, executors, tasks and sandboxes;
                                                finished ones in `completed_frameworks` and
                                                `completed_executors` (mesos_agent.completed)
    GET /health (/slave(1)/health)              200, empty body
    GET /flags  (/slave(1)/flags)               {"flags": {name: value as a string}}
    GET /version                                {"version": ...}
    GET /metrics/snapshot                       flat JSON of Mesos' `slave/...` metric names
    GET /metrics                                the same values as Prometheus text, and each
                                                container's usage (`mesos_container_...`)
    GET /monitor/statistics (.json)             [{executor_id, executor_name, framework_id,
                                                  source, statistics}] per live executor
    GET /containers[?container_id=C]            the same with container_id and status
    GET /files/browse?path=P                    [{path, nlink, size, mtime, mode, uid, gid}]
    GET /files/read?path=P&offset=N&length=M    {"data": ..., "offset": N}
    GET /files/download?path=P                  the file's bytes

`--http_port` defaults to 0 (any free port, logged): several agents often share one host.
Usage (`mesos_agent.usage`) is measured when asked, by the containerizer's isolators, for the
executors `/state` would show the caller (command tasks' built-in executors are named after
their task, as in Mesos).
File paths are the sandbox `directory` values from `/state` and anything below them; paths
outside a sandbox (with `..`, or through a symlink) are refused with 403, missing ones are 404,
FIFOs, sockets and devices 400. Files are opened by `sandbox_files`, which never leaves the
sandbox whatever its task does meanwhile, in a worker thread.
As in Mesos, `/files/read` with `offset=-1` answers the file's size in `offset` with empty
`data`, and reads at most 16 pages at a time. `data` holds the bytes read, one character per
byte (Latin-1): a client adds `len(data)` to `offset` for the next read, and decodes the
characters' code points as bytes (UTF-8 for most logs).
"""

from __future__ import annotations

import asyncio
import grp
import mmap
import os
import pwd
import stat
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from mesos_agent.agent import Agent, agent_version
from mesos_agent.sandbox_files import SandboxPathError, open_in_sandbox
from mesos_agent.usage import (
    MonitoredContainer,
    command_executor_name,
    container_json,
    monitor_json,
    monitored_containers,
    usage_samples,
)
from mesos_agent.views import AgentSnapshot, ExecutorView, TaskView, Viewer
from mesos_http.http_auth import request_principal
from mesos_http.http_error import HttpError
from mesos_http.operator_http import (
    PROMETHEUS_CONTENT_TYPE,
    attributes_json,
    prometheus_family,
    prometheus_text,
    resources_json,
    task_json,
)
from mesos_security.acls import Acls
from mesos_values.addresses import HostPort
from mesos_values.resources import Resources
from mesos_values.task_states import TERMINAL_STATES
from mesos_values.users import executor_user
from protos import mesos_pb2

__all__ = ["COUNTERS", "MAX_READ_LENGTH", "AgentHttp", "agent_metrics", "agent_state"]

MAX_READ_LENGTH = 16 * mmap.PAGESIZE
RESOURCE_NAMES = ("cpus", "mem", "disk", "gpus")
# <agent>/frameworks/<framework>/executors/<executor>/runs/<container>: see mesos_agent.paths
_SANDBOX_DEPTH = 7
_SANDBOX_MARKERS = {1: "frameworks", 3: "executors", 5: "runs"}
_DOWNLOAD_CHUNK = 256 * 1024
_GAUGE_STATES = {
    "staging": mesos_pb2.TASK_STAGING,
    "starting": mesos_pb2.TASK_STARTING,
    "running": mesos_pb2.TASK_RUNNING,
    "killing": mesos_pb2.TASK_KILLING,
}
_COUNTED_STATES = {
    "finished": mesos_pb2.TASK_FINISHED,
    "failed": mesos_pb2.TASK_FAILED,
    "killed": mesos_pb2.TASK_KILLED,
    "lost": mesos_pb2.TASK_LOST,
    "gone": mesos_pb2.TASK_GONE,
}
COUNTERS = frozenset(f"slave/tasks_{name}" for name in _COUNTED_STATES)
"""The metrics that are counters (monotonic); every other one is a gauge."""


def agent_state(
    view: AgentSnapshot,
    *,
    pid: str,
    start_time: float,
    flags: Mapping[str, str],
    can_view: Viewer = lambda action, target: True,
) -> dict[str, Any]:
    """`/state`: the agent and, per framework, its executors with their tasks and sandboxes.

    A framework with live executors is in `frameworks`, one whose work here has all ended in
    `completed_frameworks`; ended executors (with the tasks the agent forgot) are in each one's
    `completed_executors`, their `directory` readable through `/files` while it exists.

    Only what `can_view(action, target)` allows is shown, as on the master: frameworks by
    `view_frameworks` of their user, executors by `view_executors` and tasks by `view_tasks`
    of the user they run as (`mesos_values.users`), the flags by `view_flags`.
    """
    live: dict[str, list[dict[str, Any]]] = {}
    completed: dict[str, list[dict[str, Any]]] = {}
    by_run: dict[tuple[str, str, str], dict[str, Any]] = {}

    def info(framework_id: str) -> mesos_pb2.FrameworkInfo | None:
        return view.frameworks.get(framework_id) or view.completed_frameworks.get(framework_id)

    def user_of(task: TaskView) -> str:
        framework = info(task.task.framework_id.value)
        return task.user or (framework.user if framework is not None else "")

    def add_executor(into: dict[str, list[dict[str, Any]]], framework_id: str,
                     executor: dict[str, Any], user: str) -> None:
        # A hidden executor still claims its run: its tasks go nowhere rather than elsewhere.
        by_run.setdefault((framework_id, executor["id"], executor["directory"]), executor)
        executors = into.setdefault(framework_id, [])  # the framework is shown regardless
        if can_view("view_executors", user):
            executors.append(executor)

    def add_task(executor: dict[str, Any], task: TaskView) -> None:
        if can_view("view_tasks", user_of(task)):
            _add_task(executor, task)

    def add_command_executor(into: dict[str, list[dict[str, Any]]], task: TaskView) -> None:
        executor = _command_executor_json(task)
        add_executor(into, task.task.framework_id.value, executor, user_of(task))
        add_task(executor, task)

    for task in view.tasks:
        if not task.custom_executor:
            add_command_executor(live, task)
    for executor in view.executors:
        add_executor(live, executor.framework_id, _custom_executor_json(executor),
                     executor_user(executor.info, info(executor.framework_id)))
    for executor in reversed(view.completed_executors):  # the latest run of an id first
        add_executor(completed, executor.framework_id, _custom_executor_json(executor),
                     executor_user(executor.info, info(executor.framework_id)))
    for task in view.completed_tasks:
        if not task.custom_executor:
            add_command_executor(completed, task)
    for task in (*view.tasks, *view.completed_tasks):
        if not task.custom_executor:
            continue
        framework_id = task.task.framework_id.value
        run = (framework_id, task.executor_id, str(task.sandbox or ""))
        if run not in by_run:  # its executor is forgotten: the task keeps its sandbox
            add_executor(completed, framework_id, _executor_json(
                executor_id=task.executor_id, name=task.executor_id, source=task.executor_id,
                container=task.sandbox.name if task.sandbox is not None else "",
                sandbox=task.sandbox, resources=Resources.EMPTY, tasks=[],
            ), user_of(task))
        add_task(by_run[run], task)

    def visible(framework_id: str) -> bool:
        framework = info(framework_id)
        return can_view("view_frameworks", framework.user if framework is not None else "")

    state: dict[str, Any] = {
        "version": agent_version(),
        "start_time": start_time,
        "id": view.info.id.value,
        "pid": pid,
        "hostname": view.info.hostname,
        "resources": resources_json(_resources(view.info.resources)),
        "attributes": attributes_json(view.info.attributes),
        "flags": dict(flags) if can_view("view_flags", None) else {},
        "frameworks": [
            _framework_json(framework_id, info(framework_id), executors,
                            completed.get(framework_id, []))
            for framework_id, executors in sorted(live.items())
            if visible(framework_id)
        ],
        "completed_frameworks": [
            _framework_json(framework_id, info(framework_id), [], executors)
            for framework_id, executors in sorted(completed.items())
            if framework_id not in live and visible(framework_id)
        ],
    }
    if view.master is not None:
        state["master_hostname"] = view.master.host
    return state


def agent_metrics(view: AgentSnapshot, *, uptime: float) -> dict[str, float]:
    """`/metrics/snapshot`: Mesos' agent metric names."""
    live = [t for t in view.tasks if t.task.state not in TERMINAL_STATES]
    total = _resources(view.info.resources)
    used = Resources.EMPTY
    for task in live:
        used = used + _resources(task.task.resources)
    for executor in view.executors:
        used = used + _resources(executor.info.resources)
    metrics: dict[str, float] = {
        "slave/uptime_secs": uptime,
        "slave/registered": 1 if view.registered else 0,
        "slave/standby_masters": view.standby_masters,
        "slave/standby_masters_current": view.standby_masters_current,
        "slave/frameworks_active": len({t.task.framework_id.value for t in live}
                                       | {e.framework_id for e in view.executors}),
        "slave/executors_registering": sum(1 for e in view.executors if not e.subscribed),
        "slave/executors_running": (
            sum(1 for e in view.executors if e.subscribed)
            + sum(1 for t in live if not t.custom_executor and t.sandbox is not None)
        ),
    }
    for name, state in _GAUGE_STATES.items():
        metrics[f"slave/tasks_{name}"] = sum(1 for t in view.tasks if t.task.state == state)
    for name, state in _COUNTED_STATES.items():
        metrics[f"slave/tasks_{name}"] = view.terminal_tasks.get(state, 0)
    for name in RESOURCE_NAMES:
        amount, in_use = total.scalar(name), used.scalar(name)
        metrics[f"slave/{name}_total"] = amount
        metrics[f"slave/{name}_used"] = in_use
        metrics[f"slave/{name}_percent"] = in_use / amount if amount else 0.0
    return metrics


class AgentHttp:
    """The Starlette app of one agent process."""

    def __init__(
        self,
        agent: Agent,
        flags: Mapping[str, str],
        *,
        wall_clock: Callable[[], float] = time.time,
        acls: Acls | None = None,
    ) -> None:
        self._acls = acls or Acls()
        self._agent = agent
        self._flags = dict(flags)
        self._wall_clock = wall_clock
        self._start_time = wall_clock()
        self.port = 0  # set once listening; part of the agent's pid

    def app(self) -> Starlette:
        routes = [
            *_aliases(("/state", "/slave(1)/state", "/state.json", "/slave(1)/state.json"),
                      self.state),
            *_aliases(("/health", "/slave(1)/health"), self.health),
            *_aliases(("/flags", "/slave(1)/flags"), self.flags),
            *_aliases(("/version",), self.version),
            *_aliases(("/metrics/snapshot",), self.snapshot),
            *_aliases(("/metrics",), self.prometheus),
            *_aliases(("/monitor/statistics", "/monitor/statistics.json",
                       "/slave(1)/monitor/statistics", "/slave(1)/monitor/statistics.json"),
                      self.statistics),
            *_aliases(("/containers", "/slave(1)/containers"), self.containers),
            *_aliases(("/files/browse", "/files/browse.json"), self.browse),
            *_aliases(("/files/read", "/files/read.json"), self.read),
            *_aliases(("/files/download", "/files/download.json"), self.download),
        ]
        return Starlette(routes=routes, exception_handlers={HttpError: _error})

    @property
    def pid(self) -> str:
        return f"slave(1)@{HostPort(self._agent.config.ip, self.port)}"

    async def state(self, request: Request) -> Response:
        return JSONResponse(agent_state(
            self._agent.view(), pid=self.pid, start_time=self._start_time, flags=self._flags,
            can_view=self._viewer(request),
        ))

    def _viewer(self, request: Request) -> Viewer:
        """What the request's principal may see (ACLs, ADR 0013)."""
        principal = request_principal(request)
        acls = self._acls
        return lambda action, target: bool(acls.authorize(action, principal, target))

    async def statistics(self, request: Request) -> Response:
        measured = await self._measure(self._monitored(request))
        return JSONResponse([monitor_json(container, statistics)
                             for container, statistics in measured])

    async def containers(self, request: Request) -> Response:
        wanted = request.query_params.get("container_id")
        monitored = [c for c in self._monitored(request)
                     if wanted is None or c.container_id == wanted]
        usage = await self._agent.usage(c.container_id for c in monitored)
        return JSONResponse([container_json(c, usage.get(c.container_id)) for c in monitored])

    def _monitored(self, request: Request) -> list[MonitoredContainer]:
        return monitored_containers(self._agent.view(), self._agent.containers(),
                                    self._viewer(request))

    async def _measure(self, monitored: list[MonitoredContainer]
                       ) -> list[tuple[MonitoredContainer, mesos_pb2.ResourceStatistics]]:
        """Each container's usage; containers gone meanwhile are left out."""
        usage = await self._agent.usage(c.container_id for c in monitored)
        return [(c, usage[c.container_id]) for c in monitored if c.container_id in usage]

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def flags(self, request: Request) -> Response:
        self._authorize(request, "view_flags", None)
        return JSONResponse({"flags": self._flags})

    def _authorize(self, request: Request, action: str, target: str | None) -> None:
        """403 naming the ACL unless the request's principal may do `action` (ADR 0013)."""
        decision = self._acls.authorize(action, request_principal(request), target)
        if not decision:
            raise HttpError(403, decision.reason)

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": agent_version()})

    async def snapshot(self, request: Request) -> Response:
        self._authorize(request, "get_endpoints", request.url.path)
        return JSONResponse(self._metrics())

    async def prometheus(self, request: Request) -> Response:
        self._authorize(request, "get_endpoints", request.url.path)
        metrics = prometheus_text(self._metrics(), COUNTERS)
        measured = await self._measure(self._monitored(request))
        usage = "".join(prometheus_family(metric.name, metric.kind, metric.help, samples)
                        for metric, samples in usage_samples(measured))
        return PlainTextResponse(metrics + usage, media_type=PROMETHEUS_CONTENT_TYPE)

    def _metrics(self) -> dict[str, float]:
        return agent_metrics(self._agent.view(),
                             uptime=self._wall_clock() - self._start_time)

    async def browse(self, request: Request) -> Response:
        where = self._sandbox_path(request)
        return JSONResponse(await asyncio.to_thread(_browse, where))

    async def read(self, request: Request) -> Response:
        where = self._sandbox_path(request)
        offset = _int_param(request, "offset", 0)
        length = _int_param(request, "length", -1)
        if offset < -1 or length < -1:
            raise HttpError(400, "offset and length must be -1 or more")
        size, data = await asyncio.to_thread(_read, where, offset, length)
        if offset == -1:
            return JSONResponse({"data": "", "offset": size})
        return JSONResponse({"data": data.decode("latin-1"), "offset": offset})

    async def download(self, request: Request) -> Response:
        where = self._sandbox_path(request)
        descriptor = await asyncio.to_thread(_open_file, where)
        quoted = quote(where.path.name)
        disposition = (f'attachment; filename="{quoted}"' if quoted == where.path.name
                       else f"attachment; filename*=utf-8''{quoted}")
        return StreamingResponse(_chunks(descriptor), media_type="application/octet-stream",
                                 headers={"Content-Disposition": disposition})

    def _sandbox_path(self, request: Request) -> _SandboxPath:
        """Where the requested path lies. Only its text is checked here: `sandbox_files`
        opens it without leaving the sandbox."""
        raw = request.query_params.get("path")
        if not raw:
            raise HttpError(400, "expecting a 'path' query parameter")
        if "\0" in raw:
            raise HttpError(400, "the 'path' query parameter must not contain a NUL character")
        path = Path(raw)
        given = Path(os.path.abspath(self._agent.view().sandboxes_root))
        real = Path(os.path.realpath(given))
        below = next((path.relative_to(root).parts for root in (given, real)
                      if path.is_absolute() and path.is_relative_to(root)), None)
        if below is None or ".." in path.parts or not _names_a_sandbox(below):
            raise HttpError(403, f"{raw} is not inside a sandbox of this agent")
        self._authorize(request, "access_sandboxes",
                        sandbox_user(self._agent.view(), framework_id=below[2],
                                     executor_id=below[4]))
        return _SandboxPath(path, str(real), below[:_SANDBOX_DEPTH],
                            "/".join(below[_SANDBOX_DEPTH:]))


def _aliases(paths: Iterable[str], endpoint: Callable[[Request], Any]) -> list[Route]:
    return [Route(path, endpoint, methods=["GET"]) for path in paths]


async def _error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HttpError)
    return PlainTextResponse(exc.message, status_code=exc.status)


def _int_param(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise HttpError(400, f"{name} must be an integer, not {text!r}") from None


@dataclass(frozen=True, slots=True)
class _SandboxPath:
    """A requested path: the sandboxes root (a real path), the sandbox's components below
    it, and the rest of the path inside that sandbox."""

    path: Path
    root: str
    sandbox: tuple[str, ...]
    relative: str

    def open(self) -> int:
        """A read-only descriptor of the regular file or directory it names."""
        try:
            return open_in_sandbox(self.root, self.sandbox, self.relative, str(self.path))
        except SandboxPathError as error:
            raise HttpError(error.status, error.message) from None


def sandbox_user(view: AgentSnapshot, *, framework_id: str, executor_id: str) -> str | None:
    """The Unix user whose sandbox this is (for `access_sandboxes`): its executor's command
    user, else its framework's user; None when the agent no longer knows either."""
    for executor in (*view.executors, *view.completed_executors):
        if executor.framework_id == framework_id and \
                executor.info.executor_id.value == executor_id and executor.info.command.user:
            return executor.info.command.user
    framework = view.frameworks.get(framework_id) or view.completed_frameworks.get(framework_id)
    return framework.user if framework is not None and framework.user else None


def _names_a_sandbox(parts: tuple[str, ...]) -> bool:
    return len(parts) >= _SANDBOX_DEPTH and all(
        parts[index] == marker for index, marker in _SANDBOX_MARKERS.items()
    )


def _browse(where: _SandboxPath) -> list[dict[str, Any]]:
    descriptor = where.open()
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISDIR(info.st_mode):
            return [_entry(where.path, info)]
        with os.scandir(descriptor) as entries:
            return [_entry(where.path / entry.name, entry.stat(follow_symlinks=False))
                    for entry in sorted(entries, key=lambda e: e.name)]
    finally:
        os.close(descriptor)


def _entry(path: Path, info: os.stat_result) -> dict[str, Any]:
    return {
        "path": str(path),
        "nlink": info.st_nlink,
        "size": info.st_size,
        "mtime": int(info.st_mtime),
        "mode": stat.filemode(info.st_mode),
        "uid": _user(info.st_uid),
        "gid": _group(info.st_gid),
    }


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _read(where: _SandboxPath, offset: int, length: int) -> tuple[int, bytes]:
    """The file's size and up to `length` bytes (-1: to the end) from `offset`."""
    descriptor = _open_file(where, "read")
    try:
        size = os.fstat(descriptor).st_size
        if offset == -1:
            return size, b""
        length = min(MAX_READ_LENGTH, length if length != -1 else size)
        # Nothing lies beyond the end (an offset past 2**63 could not even be sought).
        return size, os.pread(descriptor, length, offset) if offset < size else b""
    finally:
        os.close(descriptor)


def _open_file(where: _SandboxPath, verb: str = "download") -> int:
    """A descriptor of the regular file `where` names; 400 for a directory."""
    descriptor = where.open()
    if stat.S_ISDIR(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise HttpError(400, f"cannot {verb} {where.path}: it is a directory")
    return descriptor


async def _chunks(descriptor: int) -> AsyncIterator[bytes]:
    """The file's bytes, read off the event loop; closes the descriptor."""
    try:
        while chunk := await asyncio.to_thread(os.read, descriptor, _DOWNLOAD_CHUNK):
            yield chunk
    finally:
        os.close(descriptor)


def _resources(resources: Iterable[mesos_pb2.Resource]) -> Resources:
    try:
        return Resources.from_proto(resources)
    except ValueError:
        return Resources.EMPTY


def _command_executor_json(task: TaskView) -> dict[str, Any]:
    """The built-in executor of a command task, without the task (see `agent_state`)."""
    return _executor_json(
        executor_id=task.executor_id,
        name=command_executor_name(task),
        source=task.executor_id,
        container=task.sandbox.name if task.sandbox is not None else "",
        sandbox=task.sandbox,
        resources=_resources(task.task.resources),
        tasks=[],
    )


def _custom_executor_json(executor: ExecutorView) -> dict[str, Any]:
    return _executor_json(
        executor_id=executor.info.executor_id.value,
        name=executor.info.name,
        source=executor.info.executor_id.value,
        container=executor.container_id,
        sandbox=executor.sandbox,
        resources=_resources(executor.info.resources),
        tasks=[],
    )


def _executor_json(
    *,
    executor_id: str,
    name: str,
    source: str,
    container: str,
    sandbox: Path | None,
    resources: Resources,
    tasks: list[TaskView],
) -> dict[str, Any]:
    executor: dict[str, Any] = {
        "id": executor_id,
        "name": name,
        "source": source,
        "container": container,
        "directory": str(sandbox) if sandbox is not None else "",
        "resources": resources_json(resources),
        "tasks": [],
        "queued_tasks": [],
        "completed_tasks": [],
    }
    for task in tasks:
        _add_task(executor, task)
    return executor


def _add_task(executor: dict[str, Any], task: TaskView) -> None:
    """File the task under its executor: `tasks` while live, `completed_tasks` once terminal."""
    terminal = task.task.state in TERMINAL_STATES
    executor["completed_tasks" if terminal else "tasks"].append(task_json(task.task))


def _framework_json(
    framework_id: str,
    info: mesos_pb2.FrameworkInfo | None,
    executors: list[dict[str, Any]],
    completed_executors: list[dict[str, Any]],
) -> dict[str, Any]:
    info = info or mesos_pb2.FrameworkInfo()
    return {
        "id": framework_id,
        "name": info.name,
        "user": info.user,
        "hostname": info.hostname,
        "role": info.roles[0] if info.roles else "*",
        "roles": list(info.roles) or ["*"],
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "executors": executors,
        "completed_executors": completed_executors,
    }
