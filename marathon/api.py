"""Marathon's REST API v2 (Starlette), a thin shell over `MarathonService` / `MarathonCore`.

Paths, status codes and JSON shapes follow Marathon's v2 API: bad JSON is 400, an invalid
definition 422 with `details` paths, an app held by a running deployment 409 (unless
`force=true`), an unknown app 404. Changes answer with the deployment they started (also in the
`Marathon-Deployment-Id` header). A standby forwards `/v2/...` requests to the leader, as
Marathon does (`/ping`, `/metrics`, `/metrics/prometheus`, `/v2/info` and `/v2/leader` answer
locally), and answers 503 while no leader is known. The web UI (`webui.routes`) is at `/ui/`,
served locally.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from frameworks.authorization import Action
from frameworks.service_http import Authorizer, Handler, LeaderGuard, set_aside_records
from marathon import events
from marathon.app_definition import AppDefinition, merge_patch, parse_app
from marathon.app_definition import to_json as app_to_json
from marathon.core import MAX_APP_VERSIONS, MarathonCore
from marathon.deployments import AppLockedError, DeploymentPlan
from marathon.endpoints import endpoints_text
from marathon.groups import (
    Group,
    GroupUpdate,
    apply_group_update,
    parse_group_update,
    put_app,
    put_group,
    remove_app,
    remove_group,
    service_ports,
)
from marathon.groups import to_json as group_to_json
from marathon.launch_queue import instance_id_of_task
from marathon.paths import ROOT, PathId
from marathon.service import VERSION, MarathonService
from marathon.state import TERMINAL, Instance
from marathon.validation import INVALID_JSON, AppValidationError, Violation
from mesos_http.field_limits import MAX_TASKS
from mesos_http.http_error import HttpError
from mesos_http.json_body import BadJson, parse_json_body
from mesos_http.openapi_docs import load_spec, openapi_routes
from mesos_http.operator_http import redact_credentials
from webui.routes import ui_routes

DEPLOYMENT_HEADER = "Marathon-Deployment-Id"
PROXY_HEADER = "X-Marathon-Via"
LEADER_HEADER = "X-Marathon-Leader"
SHOW_EMBEDS = ("app.tasks", "app.lastTaskFailure")
"""What GET /v2/apps/{id} (and `/v2/apps/{group}/*`) always embeds, as Marathon 1.9 does;
counts and deployments are in every app's JSON."""
GAUGES: tuple[tuple[str, str, str], ...] = (
    ("elected", "", "marathon_elected"),
    ("apps", "marathon.apps.active.gauge", "marathon_apps"),
    ("groups", "marathon.groups.active.gauge", ""),
    ("instances", "", "marathon_instances"),
    ("running", "marathon.instances.running.gauge", ""),
    ("staged", "marathon.instances.staged.gauge", ""),
    ("deployments", "marathon.deployments.active.gauge", "marathon_deployments"),
    ("set_aside", "marathon.records.set-aside.gauge", "marathon_set_aside_records"),
    ("subscribers", "", "marathon_event_subscribers"),
    ("uptime", "marathon.uptime.gauge.seconds", ""),
)
"""(figure, its name in the `/metrics` JSON, its name in `/metrics/prometheus`); "": not there."""
LOCAL_PATHS = frozenset({"/ping", "/metrics", "/metrics/prometheus", "/v2/info", "/v2/leader",
                         "/docs", "/openapi.json"})


def _answering_marathon_errors(handler: Handler) -> Handler:
    """`handler` with Marathon's 422 (invalid definition) and 409 (app locked) answers."""
    async def answering(request: Request) -> Response:
        try:
            return await handler(request)
        except (AppValidationError, AppLockedError) as error:
            raise HttpError(error.status_code, str(error), error.to_json()) from error

    return answering


async def _unrouted(request: Request, error: Exception) -> Response:
    """Starlette's own answers (no route for the path, a method the route lacks) in JSON, as
    Marathon's: `{"message": "URI not found: <path>"}` or the status' reason phrase."""
    assert isinstance(error, HTTPException)
    raw_path = request.scope.get("raw_path") or request.url.path.encode()
    message = f"URI not found: {raw_path.decode('latin-1')}" if error.status_code == 404 \
        else error.detail
    return _json({"message": message}, error.status_code, dict(error.headers or {}))


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():  # Marathon: its JSON parser finds "no content to map"
        raise HttpError(400, "Please specify data in JSON format", {
            "message": "Please specify data in JSON format",
            "details": [{"path": "/", "errors": ["error.invalid.json: the body is empty"]}]})
    try:
        return parse_json_body(raw)
    except BadJson as error:
        raise HttpError(400, f"Invalid JSON: {error.reason}",
                        {"message": "Invalid JSON", "details": [
                            {"path": "/", "errors": [f"error.invalid.json: {error.reason}"]}]}
                        ) from error


def _flag(request: Request, name: str, default: bool = False) -> bool:
    return request.query_params.get(name, str(default)).lower() == "true"


def _partial(request: Request) -> bool:
    """Whether a PUT/PATCH changes only the fields it names: PATCH always, PUT unless
    `partialUpdate=false` (Marathon 1.9's default is true)."""
    return request.method == "PATCH" or \
        request.query_params.get("partialUpdate", "true").lower() == "true"


def _deployment_answer(plan: DeploymentPlan, status: int = 200) -> JSONResponse:
    return _json({"deploymentId": plan.id, "version": plan.version}, status,
                 {DEPLOYMENT_HEADER: plan.id})


class MarathonApi:
    """The routes; each handler reads the leader's core or answers 503."""

    def __init__(self, service: MarathonService) -> None:
        self.service = service
        self._started = time.monotonic()
        self._guard = LeaderGuard(
            service, forwarded=lambda path: path not in LOCAL_PATHS, via_header=PROXY_HEADER,
            via=f"{service.info.address}:{service.info.port}",
            not_leader="Marathon is not the leader", leader_header=LEADER_HEADER,
        )
        self._authz = Authorizer(service.config.authorization)

    # ------------------------------------------------------------------ plumbing

    def app(self) -> Starlette:
        routes = [
            Route("/ping", self.ping, methods=["GET"]),
            Route("/v2/info", self.info, methods=["GET"]),
            Route("/v2/leader", self.leader, methods=["GET", "DELETE"]),
            Route("/v2/events", self.event_stream, methods=["GET"]),
            Route("/v2/apps", self.apps, methods=["GET", "POST", "PUT", "PATCH"]),
            Route("/v2/apps/{rest:path}", self.app_path,
                  methods=["GET", "PUT", "PATCH", "DELETE", "POST"]),
            Route("/v2/tasks", self.tasks, methods=["GET"]),
            Route("/v2/tasks/delete", self.delete_tasks, methods=["POST"]),
            Route("/v2/groups", self.groups, methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/v2/groups/{rest:path}", self.groups,
                  methods=["GET", "POST", "PUT", "DELETE"]),
            Route("/v2/deployments", self.deployments, methods=["GET"]),
            Route("/v2/deployments/{deployment_id}", self.cancel_deployment,
                  methods=["DELETE"]),
            Route("/v2/queue", self.queue, methods=["GET"]),
            Route("/v2/set-aside-records", self.set_aside_records, methods=["GET", "DELETE"]),
            Route("/v2/queue/{rest:path}", self.reset_delay, methods=["DELETE"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/metrics/prometheus", self.metrics_prometheus, methods=["GET"]),
            *openapi_routes(load_spec("marathon")),
        ]
        return Starlette(routes=[
            *(Route(r.path, self._guard.wrap(_answering_marathon_errors(r.endpoint)),
                    methods=r.methods) for r in routes),
            *ui_routes("marathon"),
        ], exception_handlers={HTTPException: _unrouted})

    def core(self) -> MarathonCore:
        """The leader's core, or HttpError 503 naming the leader."""
        return self._guard.core()

    # ------------------------------------------------------------------- basics

    async def ping(self, request: Request) -> Response:
        return PlainTextResponse("pong")

    async def info(self, request: Request) -> Response:
        service = self.service
        config = service.config
        core = service.core
        tick = int(config.tick_interval * 1000)
        zk_timeout = int(config.zk_session_timeout * 1000)
        return _json({
            "name": "marathon",
            "version": VERSION,
            "buildref": "unknown",
            "elected": core is not None,
            "leader": service.leader_address,
            "frameworkId": core.framework_id if core is not None else None,
            "marathon_config": {
                "master": redact_credentials(config.master),
                "framework_name": config.framework_name,
                "failover_timeout": int(config.failover_timeout),
                "hostname": service.hostname,
                "mesos_role": config.role,
                "mesos_user": config.user,
                "checkpoint": True,
                "executor": "//cmd",
                "ha": config.zk is not None,
                "webui_url": f"{config.tls.http_scheme}://{service.hostname}:{service.info.port}",
                "features": sorted(config.features),
                # Unreachable instances are checked for expunging on every tick.
                "task_lost_expunge_initial_delay": tick,
                "task_lost_expunge_interval": tick,
            },
            "zookeeper_config": {
                "zk": redact_credentials(config.zk) if config.zk else config.zk,
                # One kazoo timeout serves the session, its connection and each operation.
                "zk_session_timeout": zk_timeout,
                "zk_timeout": zk_timeout,
                "zk_connection_timeout": zk_timeout,
                "zk_max_versions": MAX_APP_VERSIONS,
            },
            # No HTTPS listener: 0, the schema's minimum, rather than a port nobody serves.
            "http_config": {"http_port": service.info.port, "https_port": 0},
        })

    async def leader(self, request: Request) -> Response:
        if request.method == "DELETE":
            self._authz.require(request, [("update", "/")])
            if not self.service.abdicate():
                raise HttpError(404, "There is no leader")  # Marathon's answer on a standby
            return _json({"message": "Leadership abdicated"})
        leader = self.service.leader_address
        if leader is None:
            raise HttpError(404, "There is no leader")
        return _json({"leader": leader})

    async def event_stream(self, request: Request) -> Response:
        types = request.query_params.getlist("event_type")
        bus = self.service.bus
        subscription = bus.subscribe(types)
        client = request.client.host if request.client else ""
        bus.publish(events.stream_event(True, client))

        async def stream() -> AsyncIterator[bytes]:
            try:
                async for item in subscription:
                    if self._authz.may_view_all(request, _event_paths(item)):
                        yield events.sse(item)
            finally:
                bus.unsubscribe(subscription)
                bus.publish(events.stream_event(False, client))

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    def _figures(self) -> dict[str, float]:
        """Every figure of `GAUGES`, by its key."""
        core = self.service.core
        figures: dict[str, float] = {
            "elected": 0, "apps": 0, "groups": 0, "instances": 0, "running": 0, "staged": 0,
            "deployments": 0, "set_aside": 0, "subscribers": self.service.bus.subscribers,
            "uptime": round(time.monotonic() - self._started, 3),
        }
        if core is not None:
            live = [i for i in core.instances.values() if i.state not in TERMINAL]
            figures.update(
                elected=1, apps=sum(1 for _ in core.root.transitive_apps()),
                groups=sum(1 for _ in core.root.transitive_groups()),
                instances=len(core.instances),
                running=sum(1 for i in live if i.state == "TASK_RUNNING"),
                staged=sum(1 for i in live if i.state == "TASK_STAGING"),
                deployments=len(core.deployments), set_aside=len(core.set_aside),
            )
        return figures

    async def metrics(self, request: Request) -> Response:
        """Marathon's Dropwizard-style JSON snapshot (`metrics.raml`, version 4.0.0)."""
        figures = self._figures()
        gauges = {name: {"value": figures[key]} for key, name, _ in GAUGES if name}
        return _json({"version": "4.0.0", "counters": {}, "histograms": {}, "meters": {},
                      "timers": {}, "gauges": gauges})

    async def metrics_prometheus(self, request: Request) -> Response:
        figures = self._figures()
        lines = [line for key, _, name in GAUGES if name
                 for line in (f"# TYPE {name} gauge", f"{name} {figures[key]}")]
        return PlainTextResponse("\n".join(lines) + "\n",
                                 media_type="text/plain; version=0.0.4")

    # --------------------------------------------------------------------- apps

    def app_json(self, core: MarathonCore, app: AppDefinition, embed: Iterable[str]) -> dict[
            str, Any]:
        body = app_to_json(app)
        body.update(core.counts(app))
        body["deployments"] = [{"id": d} for d in core.deployments_of(app.id)]
        wanted = {_embed_name(e) for e in embed}
        if wanted & {"tasks", "failures"}:
            body["tasks"] = [self.task_json(i) for i in core.app_instances(app.id)]
        if "readiness" in wanted:
            readiness = self.service.readiness
            body["readinessCheckResults"] = [
                r.to_json() for r in (readiness.results() if readiness else {}).get(app.id, ())]
        if wanted & {"lastTaskFailure", "failures"}:
            failure = core.last_failures.get(app.id)
            if failure is not None:
                body["lastTaskFailure"] = failure
        return body

    def task_json(self, instance: Instance) -> dict[str, Any]:
        """The task's JSON with its health check results."""
        body = instance.task_json()
        core = self.service.core
        app = core.root.app(instance.app_id) if core is not None else None
        if app is not None:  # Marathon shows the current app's service ports on every task
            body["servicePorts"] = service_ports(app)
        tracker = self.service.health
        if tracker is not None and instance.instance_id in tracker:
            body["healthCheckResults"] = tracker.health_json(instance.instance_id)
        return body

    def _posted(self, request: Request, apps: Iterable[AppDefinition]) -> None:
        """Publish `api_post_event` for apps created or changed through the API."""
        client = request.client.host if request.client else ""
        for app in apps:
            self.service.bus.publish(events.api_post_event(client, request.url.path,
                                                           app_to_json(app)))

    def _authorize_change(self, request: Request, core: MarathonCore,
                          change: Callable[[Group], Group],
                          explicit: Iterable[tuple[Action, str]] = (),
                          if_unchanged: Iterable[tuple[Action, str]] = ()) -> None:
        """403 unless the user may do the `explicit` actions and every create, update or
        delete `change` makes to apps and groups (a group change touches every app under it);
        `if_unchanged` when it changes nothing."""
        if not self._authz.authorization.enabled:
            return
        self._authz.require(request, explicit)
        changes = _changes(core.root, change(core.root))
        self._authz.require(request, changes or if_unchanged)

    def _find_app(self, core: MarathonCore, app_id: PathId) -> AppDefinition:
        app = core.root.app(app_id)
        if app is None:
            raise HttpError(404, f"App '{app_id}' does not exist")
        return app

    async def apps(self, request: Request) -> Response:
        core = self.core()
        if request.method == "GET":
            embed = request.query_params.getlist("embed")
            selected = [a for a in _select_apps(core.root.transitive_apps(), request)
                        if self._authz.may_view(request, str(a.id))]
            return _json({"apps": [self.app_json(core, a, embed) for a in selected]})
        body = await _body(request)
        force = _flag(request, "force")
        if request.method == "POST":
            app = parse_app(body)
            if core.root.app(app.id) is not None:
                raise HttpError(409, f"An app with id [{app.id}] already exists.")
            if core.root.group(app.id) is not None:
                raise HttpError(409, f"A group with id [{app.id}] already exists.")
            self._authorize_change(request, core, lambda root: put_app(root, app),
                                   [("create", str(app.id))])
            plan = core.update_root(lambda root: put_app(root, app), force=force)
            created = core.root.app(app.id)
            assert created is not None
            self._posted(request, [created])
            answer = self.app_json(core, created, ())
            answer["deployments"] = [{"id": plan.id}]
            return _json(answer, 201, {"Location": f"/v2/apps{app.id}", DEPLOYMENT_HEADER:
                                       plan.id})
        if not isinstance(body, list):
            raise HttpError(400, "Expected a JSON array of app definitions")
        updates = [self._updated_app(core, item, patch=_partial(request),
                                     create=request.method == "PUT") for item in body]

        def change(root: Group) -> Group:
            for app in updates:
                root = put_app(root, app)
            return root

        self._authorize_change(request, core, change, [
            ("update" if core.root.app(a.id) is not None else "create", str(a.id))
            for a in updates])
        plan = core.update_root(change, force=force)
        self._posted(request, [a for u in updates if (a := core.root.app(u.id)) is not None])
        return _deployment_answer(plan)

    def _updated_app(self, core: MarathonCore, body: Any, *, patch: bool, create: bool,
                     app_id: PathId | None = None) -> AppDefinition:
        """The app `body` makes of app `app_id` (or of the app its `id` names): a PUT may
        create it (`create`), a PATCH only changes an app that exists (404 otherwise)."""
        if not isinstance(body, dict):
            raise HttpError(400, "Expected a JSON object")
        if app_id is None and not isinstance(body.get("id"), str):
            parse_app(body)  # rejects the missing or non-string id (422), never "/None"
        target_id = app_id or PathId.parse(str(body.get("id", ""))).canonical(ROOT)
        existing = core.root.app(target_id)
        if existing is None and not create:
            raise HttpError(404, f"App '{target_id}' does not exist")
        if set(body) == {"version"} and existing is not None:
            stored = core.app_versions.get(target_id, {}).get(str(body["version"]))
            if stored is None:
                raise HttpError(404, f"Version {body['version']} of app '{target_id}' not found")
            return parse_app(json.loads(stored))
        if patch and existing is not None:
            body = merge_patch(app_to_json(existing), body)
        body = {**body, "id": str(target_id)}
        return parse_app(body)

    async def app_path(self, request: Request) -> Response:
        core = self.core()
        rest = "/" + request.path_params["rest"].strip("/")
        segments = rest.split("/")
        for keyword in ("restart", "tasks", "versions"):
            if keyword in segments[1:]:
                index = segments.index(keyword, 1)
                app_id = PathId.parse("/".join(segments[:index]))
                tail = segments[index:]
                self._authz.require(request, [(self._authz.reading(request), str(app_id))])
                return await self._app_sub(request, core, app_id, tail)
        force = _flag(request, "force")
        if request.method == "GET":
            embed = [*request.query_params.getlist("embed"), *SHOW_EMBEDS]
            if segments[-1] == "*":
                group_id = PathId.parse("/".join(segments[:-1]) or "/")
                group = core.root.group(group_id)
                if group is None:
                    raise HttpError(404, f"Group '{group_id}' does not exist")
                return _json({"*": [self.app_json(core, a, embed)
                                    for a in group.transitive_apps()
                                    if self._authz.may_view(request, str(a.id))]})
            self._authz.require(request, [("view", str(PathId.parse(rest)))])
            app = self._find_app(core, PathId.parse(rest))
            return _json({"app": self.app_json(core, app, embed)})
        app_id = PathId.parse(rest)
        if request.method == "DELETE":
            force = _flag(request, "force", default=True)  # Marathon's default here only
            self._authz.require(request, [("delete", str(app_id))])
            if core.root.app(app_id) is None and core.discard_set_aside(app_id):
                # Rewrite the root record, which may still name the set-aside app, and answer
                # once the records are gone from the store.
                plan = core.update_root(lambda root: root, force=force)
                await self.service.durable()
                return _deployment_answer(plan)
            self._find_app(core, app_id)
            return _deployment_answer(
                core.update_root(lambda root: remove_app(root, app_id), force=force))
        if request.method in ("PUT", "PATCH"):
            body = await _body(request)
            created = core.root.app(app_id) is None
            self._authz.require(request, [("create" if created else "update", str(app_id))])
            app = self._updated_app(core, body, patch=_partial(request),
                                    create=request.method == "PUT", app_id=app_id)
            plan = core.update_root(lambda root: put_app(root, app), force=force)
            self._posted(request, [a for a in (core.root.app(app_id),) if a is not None])
            return _deployment_answer(plan, 201 if created else 200)
        raise HttpError(405, f"{request.method} is not allowed on /v2/apps{rest}")

    async def _app_sub(self, request: Request, core: MarathonCore, app_id: PathId,
                       tail: list[str]) -> Response:
        app = self._find_app(core, app_id)
        kind = tail[0]
        if kind == "restart" and request.method == "POST":
            force = _flag(request, "force")
            return _deployment_answer(core.update_root(
                lambda root: put_app(root, _restarted(app)), force=force))
        if kind == "versions" and request.method == "GET":
            versions = core.app_versions.get(app_id, {})
            if len(tail) == 1:
                return _json({"versions": sorted(versions, reverse=True)})
            stored = versions.get(tail[1])
            if stored is None:
                raise HttpError(404, f"Version {tail[1]} of app '{app_id}' not found")
            return _json(json.loads(stored))
        if kind == "tasks":
            instances = core.app_instances(app_id)
            if request.method == "GET" and len(tail) == 1:
                listed = core.root.app(app_id)
                if "text/plain" in request.headers.get("accept", "") and listed is not None:
                    return PlainTextResponse(endpoints_text([(listed, instances)]))
                return _json({"tasks": [self.task_json(i) for i in instances]})
            if request.method == "DELETE":
                scale = _flag(request, "scale")
                if len(tail) == 2:
                    task = next((i for i in instances if i.task_id == tail[1]), None)
                    if task is None:
                        raise HttpError(404, f"Task '{tail[1]}' does not exist")
                    chosen = [task]
                else:
                    host = request.query_params.get("host")
                    chosen = [i for i in instances if host in (None, "*", i.host)]
                plan = core.kill_tasks([i.task_id for i in chosen], scale=scale,
                                       force=_flag(request, "force"))
                if plan is not None:
                    return _deployment_answer(plan)
                if len(tail) == 2:
                    return _json({"task": self.task_json(chosen[0])})
                return _json({"tasks": [self.task_json(i) for i in chosen]})
        raise HttpError(404, f"Unknown resource /v2/apps{app_id}/{'/'.join(tail)}")

    # ------------------------------------------------------------- tasks etc.

    async def tasks(self, request: Request) -> Response:
        core = self.core()
        if "text/plain" in request.headers.get("accept", ""):
            return PlainTextResponse(endpoints_text(
                (app, core.app_instances(app.id)) for app in core.root.transitive_apps()
                if self._authz.may_view(request, str(app.id))))
        wanted = {s.lower() for s in request.query_params.getlist("status")}
        tasks = [self.task_json(i) for i in core.instances.values()
                 if (not wanted or i.state.removeprefix("TASK_").lower() in wanted)
                 and self._authz.may_view(request, str(i.app_id))]
        return _json({"tasks": tasks})

    async def delete_tasks(self, request: Request) -> Response:
        core = self.core()
        body = await _body(request)
        ids = body.get("ids") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise HttpError(422, "Object is not valid", {"message": "Object is not valid",
                            "details": [{"path": "/ids", "errors": ["error.expected.jsarray"]}]})
        for task_id in ids:
            try:
                instance_id_of_task(task_id)
            except ValueError as error:
                raise HttpError(400, f"Invalid task id '{task_id}'. [{error}]") from error
        wanted = set(ids)
        chosen = [i for i in core.instances.values() if i.task_id in wanted]
        self._authz.require(request, [("update", str(i.app_id)) for i in chosen])
        answer = [self.task_json(i) for i in chosen]  # as they were when killed
        plan = core.kill_tasks([i.task_id for i in chosen], scale=_flag(request, "scale"),
                               force=_flag(request, "force"))
        if plan is not None:
            return _deployment_answer(plan)
        return _json({"tasks": answer})

    async def groups(self, request: Request) -> Response:
        core = self.core()
        rest = request.path_params.get("rest", "")
        group_id = PathId.parse("/" + rest.strip("/"))
        force = _flag(request, "force")
        if request.method == "GET":
            group = core.root.group(group_id)
            if group is None:
                self._authz.require(request, [("view", str(group_id))])
                raise HttpError(404, f"Group '{group_id}' does not exist")
            visible = _visible_group(group, lambda path: self._authz.may_view(request, path))
            if visible is None:
                self._authz.require(request, [("view", str(group_id))])
                visible = group
            return _json(group_to_json(visible))
        if request.method == "DELETE":
            if core.root.group(group_id) is None:
                raise HttpError(404, f"Group '{group_id}' does not exist")
            self._authorize_change(request, core, lambda root: remove_group(root, group_id),
                                   [("delete", str(group_id))])
            return _deployment_answer(
                core.update_root(lambda root: remove_group(root, group_id), force=force))
        body = await _body(request)
        update = parse_group_update(body, base=group_id)
        if update.scale_by is not None:
            if core.root.group(update.id) is None:
                raise HttpError(404, f"Group '{update.id}' does not exist")
            if update.scale_by > MAX_TASKS:  # no app could have that many instances
                raise AppValidationError(INVALID_JSON, [Violation("/scaleBy", "error.max")])
        if request.method == "POST" and core.root.group(update.id) is not None \
                and update.id != ROOT:
            raise HttpError(409, f"Group {update.id} is already created. Use PUT to change "
                                 "this group.")
        change = self._group_change(core, update)
        self._authorize_change(request, core, change, if_unchanged=[
            ("create" if core.root.group(update.id) is None else "update", str(update.id))])
        if request.method == "PUT" and _flag(request, "dryRun"):  # Marathon: PUT only
            preview = core.preview_root(change)
            return _json({"steps": [step.to_json() for step in preview.steps]})
        plan = core.update_root(change, force=force)
        return _deployment_answer(plan, 201 if request.method == "POST" else 200)

    def _group_change(self, core: MarathonCore, update: GroupUpdate,
                      ) -> Callable[[Group], Group]:
        """The change a group body asks for: with `version` alone (and maybe `id`), a
        rollback of the group to that stored version (422 when it is not stored, as Marathon
        answers). Beside other fields `version` is ignored (Marathon: 422), so that a group as
        GET shows it can be posted back."""
        others = (update.apps, update.groups, update.dependencies, update.scale_by,
                  update.enforce_role)
        if update.version is None or any(field is not None for field in others):
            return lambda root: apply_group_update(root, update)
        group_id = update.id
        old = core.group_at_version(group_id, update.version)
        if old is None:
            raise HttpError(422, f"Group {group_id} not available in version "
                                 f"{update.version}")
        return lambda root: put_group(root, old)

    async def deployments(self, request: Request) -> Response:
        readiness = self.service.readiness
        return _json([d for d in self.core().deployments_json(
            readiness.results() if readiness is not None else None)
            if self._authz.may_view_all(request, d["affectedApps"])])

    async def cancel_deployment(self, request: Request) -> Response:
        core = self.core()
        deployment_id = request.path_params["deployment_id"]
        if deployment_id not in core.deployments:
            raise HttpError(404, f"DeploymentPlan {deployment_id} does not exist")
        self._authz.require(request, [
            ("update", str(a)) for a in core.deployments[deployment_id].plan.affected_apps])
        plan = core.cancel_deployment(deployment_id, force=_flag(request, "force"))
        if plan is None:
            return Response(status_code=202)
        return _deployment_answer(plan)

    async def set_aside_records(self, request: Request) -> Response:
        """Records the leader's recovery could not read (`frameworks.set_aside`); not in
        `/v2/info`, whose fields strict clients check against Marathon's. DELETE with
        `?key=` removes one from the store."""
        self._authz.require(request, [(self._authz.reading(request), "/")])
        return await set_aside_records(request, self.core(), self.service)

    async def queue(self, request: Request) -> Response:
        core = self.core()
        embed = "lastUnusedOffers" in request.query_params.getlist("embed")
        body = core.queue.queue_json_all(embed_last_unused_offers=embed)
        body["queue"] = [entry for entry in body["queue"]
                         if self._authz.may_view(request, entry["app"]["id"])]
        for entry in body["queue"]:
            # An extension: why the app's current version's last launch failed (e.g. an
            # image that cannot be pulled), as its `lastTaskFailure` says.
            failure = core.last_failures.get(PathId.parse(entry["app"]["id"]))
            if failure is not None and failure.get("version") == entry["app"].get("version"):
                entry["lastTaskFailure"] = failure
        return _json(body)

    async def reset_delay(self, request: Request) -> Response:
        core = self.core()
        rest = "/" + request.path_params["rest"].strip("/")
        if not rest.endswith("/delay"):
            raise HttpError(404, f"Unknown resource /v2/queue{rest}")
        app_id = PathId.parse(rest.removesuffix("/delay"))
        self._authz.require(request, [("update", str(app_id))])
        if core.queue.count(app_id) == 0:
            raise HttpError(404, f"Application {app_id} not found in tasks queue.")
        core.queue.reset_delay(app_id)
        return Response(status_code=204)


def _embed_name(embed: str) -> str:
    """An app embed without its optional prefix: `app.tasks`, `apps.tasks` and
    `group.apps.tasks` all mean `tasks`, as in Marathon."""
    for prefix in ("group.apps.", "apps.", "app."):
        if embed.startswith(prefix):
            return embed.removeprefix(prefix)
    return embed


def _restarted(app: AppDefinition) -> AppDefinition:
    """The app marked as changed (a `lastConfigChangeAt` unlike its own): the deployment
    stamps a new configuration version and replaces every instance."""
    info = dict(app.version_info or {})
    info["lastConfigChangeAt"] = f"restart of {app.version}"
    return app.replace(version_info=info)


def _select_apps(apps: Iterable[AppDefinition], request: Request) -> list[AppDefinition]:
    wanted_id = request.query_params.get("id")
    cmd = request.query_params.get("cmd")
    label = request.query_params.get("label")
    selected = []
    for app in apps:
        if wanted_id and wanted_id.lower() not in str(app.id).lower():
            continue
        if cmd and cmd.lower() not in (app.cmd or "").lower():
            continue
        if label and not _label_matches(app, label):
            continue
        selected.append(app)
    return selected


def _label_matches(app: AppDefinition, selector: str) -> bool:
    for term in selector.split(","):
        term = term.strip()
        if "==" in term:
            key, value = (part.strip() for part in term.split("==", 1))
            if app.labels.get(key) != value:
                return False
        elif "!=" in term:
            key, value = (part.strip() for part in term.split("!=", 1))
            if app.labels.get(key) == value:
                return False
        elif term and term not in app.labels:
            return False
    return True


def _changes(old: Group, new: Group) -> list[tuple[Action, str]]:
    """What going from root `old` to root `new` does to each app and group: create, update
    or delete of its path."""
    changes: list[tuple[Action, str]] = []
    for kind_old, kind_new in (
        ({a.id: a for a in old.transitive_apps()}, {a.id: a for a in new.transitive_apps()}),
        ({g.id: (g.dependencies, g.enforce_role) for g in old.transitive_groups()},
         {g.id: (g.dependencies, g.enforce_role) for g in new.transitive_groups()}),
    ):
        before: dict[PathId, Any] = dict(kind_old)
        after: dict[PathId, Any] = dict(kind_new)
        changes += [("create", str(i)) for i in after.keys() - before.keys()]
        changes += [("delete", str(i)) for i in before.keys() - after.keys()]
        changes += [("update", str(i)) for i in before.keys() & after.keys()
                    if before[i] != after[i]]
    return sorted(set(changes), key=lambda change: (change[1], change[0]))


def _visible_group(group: Group, may_view: Callable[[str], bool]) -> Group | None:
    """`group` with only the apps and subgroups the user may view (a subgroup it may not view
    shows what it may view inside); None when nothing is left and the group itself may not be
    viewed (the root always shows, perhaps empty)."""
    whole = may_view(str(group.id))
    apps = {i: a for i, a in group.apps.items() if whole or may_view(str(i))}
    groups = {i: g for i, g in ((i, _visible_group(g, may_view))
                                for i, g in group.groups.items()) if g is not None}
    if not (whole or apps or groups or group.id == ROOT):
        return None
    return group.replace(apps=apps, groups=groups)


def _event_paths(item: events.Event) -> list[str]:
    """The app and group paths an event tells of (viewing it needs `view` of each)."""
    paths = [str(item[key]) for key in ("appId", "runSpecId") if key in item]
    definition = item.get("appDefinition")
    if isinstance(definition, dict) and "id" in definition:
        paths.append(str(definition["id"]))
    plan, step = item.get("plan"), item.get("currentStep")
    steps = [*(plan.get("steps", []) if isinstance(plan, dict) else []),
             *([step] if isinstance(step, dict) else [])]
    paths += [str(action["app"]) for s in steps if isinstance(s, dict)
              for action in s.get("actions", []) if isinstance(action, dict) and "app" in action]
    return paths
