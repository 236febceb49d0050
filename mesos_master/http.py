"""The master's operator endpoints in Mesos' shapes (Starlette), a thin shell over the core.

    GET /state  (/master/state, /state.json)   agents, frameworks, tasks and offers
    GET /health (/master/health)               200, empty body
    GET /flags  (/master/flags)                {"flags": {name: value as a string}}
    GET /version                               {"version": ...}
    GET /redirect (/master/redirect)           307 to the leading master's HTTP address
    GET /metrics/snapshot                      flat JSON of Mesos metric names
    GET /metrics                               the same values as Prometheus text
    /api/v1, /roles, /weights, /quota          the operator API (`mesos_master.operator_api`)
    GET / (/ui/)                               the web UI (see `webui.routes`)

`--http_port` (default 5080; the gRPC API owns `--port`) is published in the `MasterInfo`
every contender puts into ZooKeeper, so a standby knows where to send `/redirect` callers.
A `pid` here is `master@IP:HTTP_PORT` (where the endpoints are), unlike Mesos' libprocess
port. A standby answers `/state` with its own identity and the leader (`pid` differs from
`leader`; no agents or frameworks) and `/metrics/snapshot` with `master/elected` 0 and the
other metrics as of an empty cluster; `/redirect` answers 503 while no leader is known.
Counters (tasks finished, failed, ...) start from zero with every elected master, as in Mesos.
Extensions to Mesos' `/state`: `leader_info.http_port`, each framework's `dominant_share`, and
`standbys` (the other masters in the election, as this master last read the group).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from mesos_http.http_auth import request_principal
from mesos_http.operator_http import (
    PROMETHEUS_CONTENT_TYPE,
    JsonFragments,
    attributes_json,
    prometheus_text,
    resources_json,
    task_json,
)
from mesos_master.master import Master
from mesos_master.operator_api import operator_routes
from mesos_master.records import (
    AgentRecord,
    ExecutorRecord,
    FrameworkRecord,
    OfferRecord,
    TaskRecord,
)
from mesos_master.server import LeaderGate
from mesos_master.standby import StandbyAgents
from mesos_master.validation import DEFAULT_ROLE
from mesos_security.tls import TlsConfig
from mesos_values.addresses import HostPort
from mesos_values.resources import Resources
from mesos_values.users import executor_user, task_user
from protos import mesos_pb2
from webui.routes import ui_routes

__all__ = ["COUNTERS", "DEFAULT_HTTP_PORT", "MasterHttp", "master_metrics", "master_state"]

DEFAULT_HTTP_PORT = 5080
RESOURCE_NAMES = ("cpus", "mem", "disk", "gpus")
_GAUGE_STATES = {
    "staging": mesos_pb2.TASK_STAGING,
    "starting": mesos_pb2.TASK_STARTING,
    "running": mesos_pb2.TASK_RUNNING,
    "killing": mesos_pb2.TASK_KILLING,
    "unreachable": mesos_pb2.TASK_UNREACHABLE,
}
_COUNTED_STATES = {
    "finished": mesos_pb2.TASK_FINISHED,
    "failed": mesos_pb2.TASK_FAILED,
    "killed": mesos_pb2.TASK_KILLED,
    "lost": mesos_pb2.TASK_LOST,
    "error": mesos_pb2.TASK_ERROR,
    "dropped": mesos_pb2.TASK_DROPPED,
    "gone": mesos_pb2.TASK_GONE,
    "gone_by_operator": mesos_pb2.TASK_GONE_BY_OPERATOR,
}
COUNTERS = frozenset(
    [f"master/tasks_{name}" for name in _COUNTED_STATES]
    + [f"master/{name}" for name in (
        "slave_registrations", "slave_reregistrations", "slave_unreachable_completed",
        "valid_status_updates", "invalid_status_updates", "slave_resumptions",
    )]
)
"""The metrics that are counters (monotonic); every other one is a gauge."""


def master_pid(info: mesos_pb2.MasterInfo) -> str:
    """`master@IP:HTTP_PORT`."""
    return f"master@{HostPort(info.address or info.hostname, info.http_port)}"


def master_state(
    master: Master | None,
    info: mesos_pb2.MasterInfo,
    leader: mesos_pb2.MasterInfo | None,
    *,
    start_time: float,
    flags: Mapping[str, str],
    members: Sequence[mesos_pb2.MasterInfo] = (),
    fragments: JsonFragments,
    can_view: Callable[[str, str | None], bool] = lambda action, target: True,
) -> dict[str, Any]:
    """`/state`: the whole cluster when leading (`master`), this master's identity otherwise;
    `members` are the masters in the election (for the `standbys` extension). The lists of
    tasks are encoded into `fragments` as they are made and the document holds their
    placeholders (`fragments.encode` makes the whole). Only what
    `can_view(action, target)` allows is shown: frameworks by `view_frameworks` of their
    user, their tasks by `view_tasks` and executors by `view_executors` of theirs, agents by
    `view_agents` of their hostname, the flags by `view_flags` (ADR 0013)."""
    state: dict[str, Any] = {
        "version": info.version,
        "id": info.id,
        "pid": master_pid(info),
        "hostname": info.hostname,
        "start_time": start_time,
        "activated_slaves": 0,
        "deactivated_slaves": 0,
        "unreachable_slaves": 0,
        "flags": dict(flags) if can_view("view_flags", None) else {},
        "slaves": [],
        "recovered_slaves": [],
        "frameworks": [],
        "completed_frameworks": [],
        "orphan_tasks": [],
        "unregistered_frameworks": [],
    }
    if leader is not None:
        state["leader"] = master_pid(leader)
        state["leader_info"] = _master_info_json(leader)
    state["standbys"] = [
        _master_info_json(member) for member in members
        if leader is None or member.id != leader.id
    ]
    if master is None:
        return state
    agents = [agent for agent in master.agents.values()
              if can_view("view_agents", agent.info.hostname)]
    registered = [agent for agent in agents if _registered(agent)]
    used = _used_by_framework(registered)
    executors: dict[str, list[ExecutorRecord]] = {}
    for agent in master.agents.values():
        for (framework_id, _), executor in agent.executors.items():
            executors.setdefault(framework_id, []).append(executor)
    state.update(
        elected_time=master.elected_at,
        activated_slaves=sum(1 for agent in registered if agent.connected),
        deactivated_slaves=sum(1 for agent in registered if not agent.connected),
        unreachable_slaves=sum(1 for agent in agents if not agent.reachable),
        slaves=[_agent_json(master, agent) for agent in registered],
        recovered_slaves=[
            _agent_info_json(agent) for agent in agents if agent.awaiting_reregistration
        ],
        frameworks=[
            _framework_json(master, framework, used.get(framework.framework_id, Resources.EMPTY),
                            executors.get(framework.framework_id, ()),
                            _task_viewer(framework.info, can_view),
                            _executor_viewer(framework.info, can_view), fragments=fragments)
            for framework in master.frameworks.values()
            if can_view("view_frameworks", framework.info.user)
        ],
        completed_frameworks=[
            {**_framework_json(master, framework, Resources.EMPTY,
                               executors.get(framework.framework_id, ()),
                               _task_viewer(framework.info, can_view),
                               _executor_viewer(framework.info, can_view), fragments=fragments),
             "active": False, "connected": False}
            for framework in reversed(master.completed_frameworks)
            if can_view("view_frameworks", framework.info.user)
        ],
    )
    return state


def master_metrics(master: Master | None, *, uptime: float,
                   standbys: StandbyAgents | None = None,
                   registry_copy: int = 0) -> dict[str, float]:
    """`/metrics/snapshot`: Mesos' master metric names (a standby passes `master=None`), the
    agents' passive streams to this master, and the ZooKeeper modification (mzxid) of the
    registry's epoch znode that this standby's copy of the registry was read at (once decoded),
    0 for none (`registrar/standby_copy_zxid`: the copy is current while it equals the znode's;
    ADR 0018)."""
    agents = list(master.agents.values()) if master is not None else []
    frameworks = list(master.frameworks.values()) if master is not None else []
    registered = [agent for agent in agents if _registered(agent)]
    tasks = [task for framework in frameworks for task in framework.tasks.values()]
    metrics: dict[str, float] = {
        "master/uptime_secs": uptime,
        "master/elected": 1 if master is not None else 0,
        "master/slaves_active": sum(1 for agent in registered if agent.connected),
        "master/slaves_inactive": sum(1 for agent in registered if not agent.connected),
        "master/slaves_connected": sum(1 for agent in registered if agent.connected),
        "master/slaves_disconnected": sum(1 for agent in registered if not agent.connected),
        "master/slaves_unreachable": sum(1 for agent in agents if not agent.reachable),
        "master/frameworks_active": sum(1 for f in frameworks if f.connected),
        "master/frameworks_inactive": sum(1 for f in frameworks if not f.connected),
        "master/frameworks_connected": sum(1 for f in frameworks if f.connected),
        "master/frameworks_disconnected": sum(1 for f in frameworks if not f.connected),
        "master/outstanding_offers": len(master.offers.outstanding) if master is not None else 0,
    }
    for name, state in _GAUGE_STATES.items():
        metrics[f"master/tasks_{name}"] = sum(1 for task in tasks if task.state == state)
    counters = master.counters if master is not None else None
    for name, state in _COUNTED_STATES.items():
        metrics[f"master/tasks_{name}"] = counters.terminal_tasks[state] if counters else 0
    metrics.update({
        "master/slave_registrations": counters.agent_registrations if counters else 0,
        "master/slave_reregistrations": counters.agent_reregistrations if counters else 0,
        "master/slave_unreachable_completed":
            counters.agents_marked_unreachable if counters else 0,
        "master/valid_status_updates": counters.valid_status_updates if counters else 0,
        "master/invalid_status_updates": counters.invalid_status_updates if counters else 0,
        "master/standby_agents": len(standbys) if standbys is not None else 0,
        "master/slave_resumptions": standbys.resumed if standbys is not None else 0,
        "registrar/standby_copy_zxid": registry_copy,
    })
    total = _sum(agent.total for agent in registered)
    used = _sum(_used_by_framework(registered).values())
    registered_ids = {agent.agent_id for agent in registered}
    offers = master.offers.outstanding.values() if master is not None else ()
    offered = _sum(offer.resources for offer in offers if offer.agent_id in registered_ids)
    for name in RESOURCE_NAMES:
        amount, in_use = total.scalar(name), used.scalar(name)
        metrics[f"master/{name}_total"] = amount
        metrics[f"master/{name}_used"] = in_use
        metrics[f"master/{name}_percent"] = in_use / amount if amount else 0.0
        metrics[f"allocator/mesos/resources/{name}/total"] = amount
        metrics[f"allocator/mesos/resources/{name}/offered_or_allocated"] = (
            in_use + offered.scalar(name)
        )
    return metrics


class MasterHttp:
    """The Starlette app of one master process; reads the core through its `LeaderGate`."""

    def __init__(
        self,
        gate: LeaderGate,
        info: mesos_pb2.MasterInfo,
        flags: Mapping[str, str],
        *,
        wall_clock: Callable[[], float] = time.time,
        tls: TlsConfig | None = None,
    ) -> None:
        """`info` is this master's own MasterInfo (its `http_port` is set once listening);
        with `tls` the cluster's HTTP endpoints are HTTPS (agents' too: ADR 0013)."""
        self._gate = gate
        self._tls = tls or TlsConfig()
        self._scheme = self._tls.http_scheme
        self._info = info
        self._flags = dict(flags)
        self._wall_clock = wall_clock
        self._start_time = wall_clock()

    def app(self) -> Starlette:
        routes = [
            *_aliases(("/state", "/master/state", "/state.json", "/master/state.json"),
                      self.state),
            *_aliases(("/health", "/master/health"), self.health),
            *_aliases(("/flags", "/master/flags"), self.flags),
            *_aliases(("/version",), self.version),
            *_aliases(("/redirect", "/master/redirect"), self.redirect),
            *_aliases(("/metrics/snapshot",), self.snapshot),
            *_aliases(("/metrics",), self.prometheus),
            *operator_routes(self._gate, scheme=self._scheme),
            *ui_routes("master", agent_url=self._agent_url,
                       agent_verify=self._tls.client_context() if self._tls.dials_tls
                       else True),
        ]
        return Starlette(routes=routes)

    def _agent_url(self, agent_id: str) -> str | None:
        """The base URL of a registered agent's HTTP endpoints (for the UI's sandbox view)."""
        master = self._gate.master
        agent = master.agents.get(agent_id) if master is not None else None
        if agent is None or not agent.admitted or not agent.info.http_port:
            return None
        address = HostPort(agent.info.address or agent.info.hostname, agent.info.http_port)
        return f"{self._scheme}://{address}"

    async def state(self, request: Request) -> Response:
        fragments = JsonFragments()
        state = master_state(
            self._gate.master, self._info, self._gate.leader,
            start_time=self._start_time, flags=self._flags, members=self._gate.members(),
            can_view=self._viewer(request), fragments=fragments,
        )
        return Response(fragments.encode(state), media_type="application/json")

    def _viewer(self, request: Request) -> Callable[[str, str | None], bool]:
        """What the request's principal may see, by the leader's ACLs (a standby's
        `/state` shows no cluster)."""
        master = self._gate.master
        principal = request_principal(request)
        if master is None:
            return lambda action, target: True
        acls = master.config.acls
        return lambda action, target: bool(acls.authorize(action, principal, target))

    async def health(self, request: Request) -> Response:
        return Response(status_code=200)

    def _endpoint_refused(self, request: Request) -> Response | None:
        """403 unless the ACLs' `get_endpoints` let the principal GET this path (Mesos checks
        it for its metrics and monitoring endpoints; so do we, for `/metrics*`)."""
        master = self._gate.master
        if master is None:
            return None
        decision = master.config.acls.authorize("get_endpoints", request_principal(request),
                                                request.url.path)
        return None if decision else PlainTextResponse(decision.reason, status_code=403)

    async def flags(self, request: Request) -> Response:
        if not self._viewer(request)("view_flags", None):
            return PlainTextResponse("view_flags: not allowed by the ACLs", status_code=403)
        return JSONResponse({"flags": self._flags})

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": self._info.version})

    async def redirect(self, request: Request) -> Response:
        leader = self._gate.leader
        if leader is None or not leader.http_port:
            return PlainTextResponse("no leading master is known", status_code=503)
        address = HostPort(leader.address or leader.hostname, leader.http_port)
        return RedirectResponse(f"{self._scheme}://{address}", status_code=307)

    async def snapshot(self, request: Request) -> Response:
        if refused := self._endpoint_refused(request):
            return refused
        return JSONResponse(self._metrics())

    async def prometheus(self, request: Request) -> Response:
        if refused := self._endpoint_refused(request):
            return refused
        return PlainTextResponse(
            prometheus_text(self._metrics(), COUNTERS), media_type=PROMETHEUS_CONTENT_TYPE
        )

    def _metrics(self) -> dict[str, float]:
        return master_metrics(self._gate.master, uptime=self._wall_clock() - self._start_time,
                              standbys=self._gate.standbys,
                              registry_copy=self._gate.registry_copy())


def _aliases(paths: Iterable[str], endpoint: Callable[[Request], Any]) -> list[Route]:
    return [Route(path, endpoint, methods=["GET"]) for path in paths]


def _registered(agent: AgentRecord) -> bool:
    """Admitted, reachable and not waiting to re-register (Mesos' registered agents)."""
    return agent.admitted and agent.reachable and not agent.awaiting_reregistration


def _sum(resources: Iterable[Resources]) -> Resources:
    total = Resources.EMPTY
    for item in resources:
        total = total + item
    return total


def _used_by_framework(agents: Iterable[AgentRecord]) -> dict[str, Resources]:
    used: dict[str, Resources] = {}
    for agent in agents:
        for framework_id, resources in agent.used_per_framework().items():
            used[framework_id] = used.get(framework_id, Resources.EMPTY) + resources
    return used


def _wall_time(master: Master, monotonic: float) -> float:
    """A time of the core's clock as seconds since the epoch."""
    return master.wall_clock() - (master.clock.now() - monotonic)


def _master_info_json(info: mesos_pb2.MasterInfo) -> dict[str, Any]:
    host = info.address or info.hostname
    return {
        "id": info.id,
        "pid": master_pid(info),
        "hostname": info.hostname,
        "port": info.port,
        "http_port": info.http_port,
        "version": info.version,
        "address": {"hostname": info.hostname, "ip": host, "port": info.http_port},
    }


def _agent_info_json(agent: AgentRecord) -> dict[str, Any]:
    info = agent.info
    return {
        "id": agent.agent_id,
        "hostname": info.hostname,
        "port": info.port,
        "resources": resources_json(agent.total),
        "attributes": attributes_json(info.attributes),
    }


def _agent_pid(info: mesos_pb2.AgentInfo) -> str:
    """Mesos' `slave(1)@host:port`, with the agent's HTTP port once it reports one (where its
    /state and /files are), its gRPC port otherwise."""
    port = info.http_port or info.port
    return f"slave(1)@{HostPort(info.address or info.hostname, port)}"


def _agent_json(master: Master, agent: AgentRecord) -> dict[str, Any]:
    used = _sum(agent.used_per_framework().values())
    outstanding = master.offers.outstanding
    offered = _sum(outstanding[offer_id].resources for offer_id in agent.offers)
    return {
        **_agent_info_json(agent),
        "pid": _agent_pid(agent.info),
        "http_port": agent.info.http_port,
        "registered_time": _wall_time(master, agent.registered_at),
        "used_resources": resources_json(used),
        "offered_resources": resources_json(offered),
        "unreserved_resources": resources_json(agent.total.unreserved()),
        "reserved_resources": {
            role: resources_json(agent.total.reserved_for(role))
            for role in sorted(agent.total.reservation_roles())
        },
        "active": agent.connected,
    }


def _task_viewer(info: mesos_pb2.FrameworkInfo, can_view: Callable[[str, str | None], bool]
                 ) -> Callable[[TaskRecord], bool]:
    return lambda task: can_view("view_tasks", task_user(task.info, info))


def _executor_viewer(info: mesos_pb2.FrameworkInfo,
                     can_view: Callable[[str, str | None], bool]
                     ) -> Callable[[ExecutorRecord], bool]:
    return lambda executor: can_view("view_executors", executor_user(executor.info, info))


def _framework_json(
    master: Master, framework: FrameworkRecord, used: Resources,
    executors_of_framework: Iterable[ExecutorRecord],
    shown: Callable[[TaskRecord], bool] = lambda task: True,
    shown_executor: Callable[[ExecutorRecord], bool] = lambda executor: True,
    *,
    fragments: JsonFragments,
) -> dict[str, Any]:
    info = framework.info
    role = info.roles[0] if info.roles else DEFAULT_ROLE
    outstanding = master.offers.outstanding
    offers = [outstanding[offer_id] for offer_id in sorted(framework.offers)]
    offered = _sum(offer.resources for offer in offers)
    try:
        share = master.allocator.dominant_share(framework.framework_id)
    except KeyError:
        share = 0.0
    tasks = [task for task in framework.tasks.values() if shown(task)]
    live = [task for task in tasks if task.state != mesos_pb2.TASK_UNREACHABLE]
    unreachable = [task for task in tasks if task.state == mesos_pb2.TASK_UNREACHABLE]
    resource_models: dict[Resources, dict[str, Any]] = {}
    executors = [executor for executor in executors_of_framework if shown_executor(executor)]
    model: dict[str, Any] = {
        "id": framework.framework_id,
        "name": info.name,
        "user": info.user,
        "hostname": info.hostname,
        "webui_url": info.webui_url,
        "principal": info.principal,
        "role": role,
        "roles": list(info.roles) or [DEFAULT_ROLE],
        "failover_timeout": info.failover_timeout,
        "checkpoint": info.checkpoint,
        "capabilities": [
            mesos_pb2.FrameworkInfo.Capability.Type.Name(c.type) for c in info.capabilities
        ],
        "active": framework.connected,
        "connected": framework.connected,
        "suppressed": bool(framework.suppressed_roles),
        "suppressed_roles": sorted(framework.suppressed_roles),
        "registered_time": _wall_time(master, framework.registered_at),
        "unregistered_time": (
            _wall_time(master, framework.disconnected_at)
            if framework.disconnected_at is not None else 0
        ),
        "used_resources": resources_json(used),
        "offered_resources": resources_json(offered),
        "resources": resources_json(used + offered),
        "dominant_share": share,
        "tasks": _tasks_json(live, role, resource_models, fragments),
        "unreachable_tasks": _tasks_json(unreachable, role, resource_models, fragments),
        "completed_tasks": _tasks_json(
            (task for task in framework.completed_tasks if shown(task)), role, resource_models,
            fragments),
        "offers": [_offer_json(offer) for offer in offers],
        "executors": [
            {
                "executor_id": executor.info.executor_id.value,
                "name": executor.info.name,
                "framework_id": executor.framework_id,
                "slave_id": executor.agent_id,
                "resources": resources_json(executor.resources),
            }
            for executor in executors
        ],
    }
    return model


def _tasks_json(tasks: Iterable[TaskRecord], role: str, models: dict[Resources, dict[str, Any]],
                fragments: JsonFragments) -> str:
    """The placeholder of the tasks' array, in Mesos' JSON model, encoded in `fragments`.
    Tasks mostly hold equal resources: each distinct value is rendered once per request
    (`models`)."""
    def model(task: TaskRecord) -> dict[str, Any]:
        resources = models.get(task.resources)
        if resources is None:
            resources = models[task.resources] = resources_json(task.resources)
        return task_json(task.to_proto(with_resources=False), role, resources=resources)

    return fragments.array(model(task) for task in tasks)


def _offer_json(offer: OfferRecord) -> dict[str, Any]:
    return {
        "id": offer.offer_id,
        "framework_id": offer.framework_id,
        "slave_id": offer.agent_id,
        "resources": resources_json(offer.resources),
    }
