"""The master's operator API (Starlette), a thin shell over the core's operator methods.

    POST /api/v1 (/master/api/v1)   Mesos' v1 operator calls as JSON: {"type": ..., ...}
        SUBSCRIBE (a RecordIO stream of events: `mesos_master.operator_events`),
        GET_ROLES, GET_WEIGHTS, UPDATE_WEIGHTS, GET_QUOTA, UPDATE_QUOTA, GET_AGENTS,
        DRAIN_AGENT, DEACTIVATE_AGENT, REACTIVATE_AGENT, MARK_AGENT_GONE,
        RESERVE_RESOURCES, UNRESERVE_RESOURCES (resources as Mesos JSON resource objects)
    GET  /roles                     roles with weight, quota, consumption and frameworks
    GET  /weights, PUT /weights     [{"role": ..., "weight": ...}]
    GET  /quota, POST /quota        {"role": ..., "limits": {"cpus": 4, ...}, "force": false}
    DELETE /quota/{role}

Calls that change the cluster are answered 200 once the core applied them (durable in the
registry in order with everything else). Errors are plain text with a reason, as in Mesos:
400 for a malformed call, 404 for an unknown agent, 409 for a refused change (such as a quota
below what the role consumes, without `force`). A standby master redirects (307) to the leader.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from google.protobuf.json_format import MessageToDict
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from mesos_http.http_auth import request_principal
from mesos_http.json_body import BadJson, parse_json_body
from mesos_http.operator_http import resources_json
from mesos_master.errors import ErrorCode, MasterError
from mesos_master.master import Master
from mesos_master.operator_events import subscribe_response
from mesos_master.server import LeaderGate
from mesos_values.addresses import HostPort
from mesos_values.resources import Resources
from protos import registry_pb2

__all__ = ["operator_routes"]

_STATUS = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.FAILED_PRECONDITION: 409,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.ABORTED: 409,
}

Handler = Callable[[Master, Request], Awaitable[Response]]
Authorize = Callable[[str, "str | None"], None]
"""`authorize(action, target)`: PERMISSION_DENIED unless the ACLs let the request's principal
do `action` on `target` (ADR 0013)."""


class _BadCall(Exception):
    """A malformed operator call (400)."""


def operator_routes(gate: LeaderGate, *, scheme: str = "http") -> list[Route]:
    """The operator API's routes, acting on the core `gate` hands out while leading (a
    standby redirects to the leader's `scheme://` URL)."""

    def leading(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            master = gate.master
            if master is None:
                leader = gate.leader
                if leader is None or not leader.http_port or leader.id == gate.own_id:
                    return PlainTextResponse("no leading master is available", status_code=503)
                address = HostPort(leader.address or leader.hostname, leader.http_port)
                return RedirectResponse(f"{scheme}://{address}{request.url.path}",
                                        status_code=307)
            try:
                response = await handler(master, request)
            except _BadCall as exc:
                return PlainTextResponse(str(exc), status_code=400)
            except MasterError as exc:
                return PlainTextResponse(exc.message, status_code=_STATUS[exc.code])
            gate.request_allocation()
            return response

        return endpoint

    return [
        Route("/api/v1", leading(_api_v1), methods=["POST"]),
        Route("/master/api/v1", leading(_api_v1), methods=["POST"]),
        Route("/roles", leading(_get_roles), methods=["GET"]),
        Route("/weights", leading(_get_weights), methods=["GET"]),
        Route("/weights", leading(_put_weights), methods=["PUT"]),
        Route("/quota", leading(_get_quota), methods=["GET"]),
        Route("/quota", leading(_post_quota), methods=["POST"]),
        Route("/quota/{role:path}", leading(_delete_quota), methods=["DELETE"]),
    ]


# Request parsing.


async def _json_body(request: Request) -> Any:
    try:
        return parse_json_body(await request.body())
    except BadJson as error:
        raise _BadCall(f"the body is not valid JSON: {error.reason}") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _BadCall(f"{where} must be a JSON object")
    return value


def _string(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise _BadCall(f"{where} must be a non-empty string")
    return value


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadCall(f"{where} must be a number")
    try:
        return float(value)
    except OverflowError:  # an integer literal beyond a double
        raise _BadCall(f"{where} is out of range") from None


def _agent_id(call: Mapping[str, Any], where: str) -> str:
    agent = _object(call.get("agent_id"), f"{where}.agent_id")
    return _string(agent.get("value"), f"{where}.agent_id.value")


def _limits(value: Any, where: str) -> Resources:
    """`{"cpus": 4}`, Mesos' `{"cpus": {"value": 4}}`, or a list of resource objects."""
    if isinstance(value, list):
        try:
            return Resources.parse(json.dumps(value))
        except ValueError as exc:
            raise _BadCall(f"{where}: {exc}") from None
    scalars: dict[str, float] = {}
    for name, amount in _object(value, where).items():
        if isinstance(amount, dict):
            amount = amount.get("value")
        scalars[name] = _number(amount, f"{where}.{name}")
    try:
        return Resources.from_scalars(scalars)
    except ValueError as exc:
        raise _BadCall(f"{where}: {exc}") from None


def _weights(value: Any, where: str) -> dict[str, float]:
    if not isinstance(value, list):
        raise _BadCall(f"{where} must be a list of {{role, weight}} objects")
    weights: dict[str, float] = {}
    for index, item in enumerate(value):
        entry = _object(item, f"{where}[{index}]")
        role = _string(entry.get("role"), f"{where}[{index}].role")
        weights[role] = _number(entry.get("weight"), f"{where}[{index}].weight")
    return weights


def _seconds(value: Any, where: str) -> float:
    """A Mesos DurationInfo ({"nanoseconds": n}) or plain seconds."""
    if isinstance(value, dict):
        return _number(value.get("nanoseconds"), f"{where}.nanoseconds") / 1e9
    return _number(value, where)


# Views.


def _roles_json(master: Master) -> list[dict[str, Any]]:
    allocator = master.allocator
    roles: list[dict[str, Any]] = []
    for role in allocator.roles():
        frameworks = sorted(
            framework_id
            for framework_id, framework in master.frameworks.items()
            if role in framework.info.roles
        )
        quota = allocator.quota(role)
        roles.append({
            "name": role,
            "weight": allocator.weight(role),
            "frameworks": frameworks,
            "allocated": resources_json(allocator.consumed(role)),
            "resources": resources_json(allocator.consumed(role)),
            "share": allocator.role_share(role),
            "quota": {
                "role": role,
                "limit": resources_json(quota) if quota is not None else {},
                "consumed": resources_json(allocator.consumed(role)),
            },
        })
    return roles


def _quota_json(master: Master) -> dict[str, Any]:
    infos = []
    for role in master.allocator.roles():
        quota = master.allocator.quota(role)
        if quota is not None:
            infos.append({
                "role": role,
                "limits": dict(quota.scalars),
                "consumed": dict(master.allocator.consumed(role).scalars),
            })
    return {"infos": infos}


_DRAIN_STATES = {
    registry_pb2.DrainInfo.DRAINING: "DRAINING",
    registry_pb2.DrainInfo.DRAINED: "DRAINED",
}


def _agents_json(master: Master) -> list[dict[str, Any]]:
    agents = []
    for agent in master.agents.values():
        entry: dict[str, Any] = {
            "agent_info": {"id": {"value": agent.agent_id}, "hostname": agent.info.hostname},
            "active": agent.connected and not agent.deactivated,
            "deactivated": agent.deactivated,
            "total_resources": [
                MessageToDict(resource, preserving_proto_field_name=True)
                for resource in agent.total.to_proto()
            ],
        }
        if agent.drain is not None:
            entry["drain_info"] = {"state": _DRAIN_STATES.get(agent.drain.state, "UNKNOWN")}
        agents.append(entry)
    return agents


# Handlers.


def _authorizer(master: Master, request: Request) -> Authorize:
    principal = request_principal(request)

    def authorize(action: str, target: str | None) -> None:
        decision = master.config.acls.authorize(action, principal, target)
        if not decision:
            raise MasterError(ErrorCode.PERMISSION_DENIED, decision.reason)

    return authorize


def _viewer(master: Master, request: Request) -> Callable[[str, str | None], bool]:
    """What the request's principal may see, by the ACLs (as `/state` decides it)."""
    principal = request_principal(request)
    return lambda action, target: bool(master.config.acls.authorize(action, principal, target))


async def _api_v1(master: Master, request: Request) -> Response:
    call = _object(await _json_body(request), "the call")
    kind = _string(call.get("type"), "type")
    if kind == "SUBSCRIBE":
        return subscribe_response(master, _viewer(master, request))
    handler = _CALLS.get(kind)
    if handler is None:
        raise _BadCall(f"unsupported operator call type {kind!r}; supported: "
                       + ", ".join(sorted([*_CALLS, "SUBSCRIBE"])))
    body = handler(master, call, _authorizer(master, request))
    return Response(status_code=200) if body is None else JSONResponse(body)


def _viewing(action: str, view: Callable[[Master], Any]
             ) -> Callable[[Master, Mapping[str, Any], Authorize], Any]:
    def call(master: Master, body: Mapping[str, Any], authorize: Authorize) -> Any:
        authorize(action, None)
        return view(master)

    return call


def _call_update_weights(master: Master, call: Mapping[str, Any],
                         authorize: Authorize) -> None:
    update = _object(call.get("update_weights"), "update_weights")
    weights = _weights(update.get("weight_infos"), "update_weights.weight_infos")
    for role in weights:
        authorize("update_weights", role)
    master.update_weights(weights)


def _call_update_quota(master: Master, call: Mapping[str, Any], authorize: Authorize) -> None:
    update = _object(call.get("update_quota"), "update_quota")
    force = update.get("force", False) is True
    configs = update.get("quota_configs")
    if not isinstance(configs, list) or not configs:
        raise _BadCall("update_quota.quota_configs must be a non-empty list")
    parsed = []
    for index, item in enumerate(configs):
        config = _object(item, f"update_quota.quota_configs[{index}]")
        role = _string(config.get("role"), f"update_quota.quota_configs[{index}].role")
        limits = _limits(config.get("limits", {}), f"update_quota.quota_configs[{index}].limits")
        authorize("update_quotas", role)
        parsed.append((role, limits))
    for role, limits in parsed:
        master.update_quota(role, limits or None, force=force)


def _call_teardown(master: Master, call: Mapping[str, Any], authorize: Authorize) -> None:
    section = _object(call.get("teardown"), "teardown")
    framework = _object(section.get("framework_id"), "teardown.framework_id")
    framework_id = _string(framework.get("value"), "teardown.framework_id.value")
    record = master.frameworks.get(framework_id)
    # Objects: the principal the framework registered as (Mesos' teardown_frameworks).
    authorize("teardown_frameworks", record.info.principal or None if record else None)
    master.operator_teardown(framework_id)


def _call_drain_agent(master: Master, call: Mapping[str, Any], authorize: Authorize) -> None:
    authorize("drain_agents", None)
    drain = _object(call.get("drain_agent"), "drain_agent")
    grace = drain.get("max_grace_period")
    master.drain_agent(
        _agent_id(drain, "drain_agent"),
        max_grace_period=None if grace is None else _seconds(grace, "max_grace_period"),
        mark_gone=drain.get("mark_gone", False) is True,
    )


def _call_agent(action: str) -> Callable[[Master, Mapping[str, Any], Authorize], None]:
    def call(master: Master, body: Mapping[str, Any], authorize: Authorize) -> None:
        authorize(f"{action.removesuffix('_agent')}_agents", None)
        section = _object(body.get(action), action)
        getattr(master, action)(_agent_id(section, action))

    return call


def _call_reservation(action: str) -> Callable[[Master, Mapping[str, Any], Authorize], None]:
    def call(master: Master, body: Mapping[str, Any], authorize: Authorize) -> None:
        section = _object(body.get(action), action)
        resources = section.get("resources")
        if not isinstance(resources, list) or not resources:
            raise _BadCall(f"{action}.resources must be a non-empty list of resource objects")
        try:
            parsed = Resources.parse(json.dumps(resources))
        except ValueError as exc:
            raise _BadCall(f"{action}.resources: {exc}") from None
        for resource in parsed.to_proto():
            last = resource.reservations[-1] if resource.reservations else None
            if action == "reserve_resources":  # objects: the roles reserved for
                authorize(action, last.role if last is not None else resource.role or None)
            else:  # objects: the principals that reserved them
                authorize(action, last.principal or None if last is not None else None)
        method = master.reserve_resources if action == "reserve_resources" \
            else master.unreserve_resources
        method(_agent_id(section, action), parsed.to_proto())

    return call


_CALLS: dict[str, Callable[[Master, Mapping[str, Any], Authorize], Any]] = {
    "GET_ROLES": _viewing("view_roles", lambda m: {"type": "GET_ROLES",
                                                   "get_roles": {"roles": _roles_json(m)}}),
    "GET_WEIGHTS": _viewing("view_roles", lambda m: {
        "type": "GET_WEIGHTS",
        "get_weights": {"weight_infos": [
            {"role": role, "weight": m.allocator.weight(role)} for role in m.allocator.roles()
        ]},
    }),
    "UPDATE_WEIGHTS": _call_update_weights,
    "GET_QUOTA": _viewing("get_quotas", lambda m: {"type": "GET_QUOTA",
                                                   "get_quota": {"status": _quota_json(m)}}),
    "UPDATE_QUOTA": _call_update_quota,
    "GET_AGENTS": _viewing("view_agents", lambda m: {"type": "GET_AGENTS",
                                                     "get_agents": {"agents": _agents_json(m)}}),
    "DRAIN_AGENT": _call_drain_agent,
    "TEARDOWN": _call_teardown,
    "DEACTIVATE_AGENT": _call_agent("deactivate_agent"),
    "REACTIVATE_AGENT": _call_agent("reactivate_agent"),
    "MARK_AGENT_GONE": _call_agent("mark_agent_gone"),
    "RESERVE_RESOURCES": _call_reservation("reserve_resources"),
    "UNRESERVE_RESOURCES": _call_reservation("unreserve_resources"),
}


async def _get_roles(master: Master, request: Request) -> Response:
    _authorizer(master, request)("view_roles", None)
    return JSONResponse({"roles": _roles_json(master)})


async def _get_weights(master: Master, request: Request) -> Response:
    _authorizer(master, request)("view_roles", None)
    return JSONResponse([
        {"role": role, "weight": master.allocator.weight(role)}
        for role in master.allocator.roles()
    ])


async def _put_weights(master: Master, request: Request) -> Response:
    weights = _weights(await _json_body(request), "the body")
    authorize = _authorizer(master, request)
    for role in weights:
        authorize("update_weights", role)
    master.update_weights(weights)
    return Response(status_code=200)


async def _get_quota(master: Master, request: Request) -> Response:
    _authorizer(master, request)("get_quotas", None)
    return JSONResponse(_quota_json(master))


async def _post_quota(master: Master, request: Request) -> Response:
    body = _object(await _json_body(request), "the body")
    role = _string(body.get("role"), "role")
    limits = _limits(body.get("limits", body.get("guarantee", {})), "limits")
    if not limits:
        raise _BadCall("limits must name at least one resource; DELETE /quota/ROLE removes one")
    _authorizer(master, request)("update_quotas", role)
    master.update_quota(role, limits, force=body.get("force", False) is True)
    return Response(status_code=200)


async def _delete_quota(master: Master, request: Request) -> Response:
    role = request.path_params["role"]
    _authorizer(master, request)("update_quotas", role)
    if master.allocator.quota(role) is None:
        raise MasterError(ErrorCode.NOT_FOUND, f"role {role!r} has no quota")
    master.update_quota(role, None)
    return Response(status_code=200)
