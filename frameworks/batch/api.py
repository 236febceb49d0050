"""The batch framework's REST API: Metronome's v1 (Starlette), a thin shell over `BatchCore`.

    /v1/jobs                                   GET (?embed=activeRuns,schedules,history,
                                                    historySummary), POST
    /v1/jobs/{id}                              GET (?embed=...), PUT, DELETE (?stopCurrentJobRuns)
    /v1/jobs/{id}/runs                         GET (active runs), POST (start now: 201)
    /v1/jobs/{id}/runs/{runId}                 GET (active, or one of the last finished)
    /v1/jobs/{id}/runs/{runId}/actions/stop    POST
    /v1/jobs/{id}/schedules                    GET, POST (201)
    /v1/jobs/{id}/schedules/{scheduleId}       GET, PUT, DELETE
    /v1/queue                                  GET (runs waiting for offers, by job)
    /v0/scheduled-jobs                         POST (a job with its schedules: 201)
    /v0/scheduled-jobs/{id}                    PUT (a job and all its schedules)
    /v1/metrics                                GET (Dropwizard JSON, see `batch.metrics`)
    /ping, /info, /metrics (Prometheus text)
    /leader                                    GET (`{"leader": "host:port"}`)
    /openapi.json, /docs                       this API's OpenAPI document, and as HTML
    /ui/ (`/` redirects there)                 the web UI (see `webui.routes`)

Answers as Metronome gives them: bad JSON 400, an invalid body 422 (`{"message": "Object is not
valid", "details": [...]}`), an unknown job, run or schedule 404, a job or schedule that exists
already 409, deleting a job with active runs 409 unless `stopCurrentJobRuns=true`; errors other
than 422 are `{"message": ...}`. Changes answer once they are durable. A process that does not
lead forwards `/v1/...` and `/v0/...` requests to the leader (and answers 503 naming none while
no leader is known); it answers `/leader` and `/v1/metrics` itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from frameworks.authorization import Action, Authorization, job_path
from frameworks.batch.core import BatchCore, Conflict, NotFound, ScheduleState, parse_job_body
from frameworks.batch.jobs import ValidationError, is_valid_job_id
from frameworks.batch.metrics import dropwizard_metrics
from frameworks.batch.runs import UTC_SUFFIX, JobRun
from frameworks.batch.schedules import parse_schedule
from frameworks.service_http import Authorizer, ElectedService, LeaderGuard, set_aside_records
from mesos_http.http_error import HttpError
from mesos_http.json_body import BadJson, parse_json_body
from mesos_http.openapi_docs import load_spec, openapi_routes
from mesos_values.timestamps import format_timestamp
from webui.routes import ui_routes

__all__ = ["EMBEDS", "BatchApi"]

EMBEDS = ("activeRuns", "schedules", "history", "historySummary")
T = TypeVar("T")


class BatchApi:
    """The routes; each handler works on the leader's core."""

    def __init__(self, backend: ElectedService[BatchCore], version: str = "0.6.0-pymesos",
                 authorization: Authorization | None = None) -> None:
        self.backend = backend
        self.version = version
        self._authz = Authorizer(authorization or Authorization())
        self._guard = LeaderGuard(backend, forwarded=_forwarded,
                                  via_header="X-Batch-Via", via="standby")

    def app(self) -> Starlette:
        routes = [
            Route("/ping", self.ping, methods=["GET"]),
            Route("/info", self.info, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
            Route("/leader", self.leader, methods=["GET"]),
            *openapi_routes(load_spec("frameworks.batch")),
            Route("/v1/metrics", self.dropwizard_metrics, methods=["GET"]),
            Route("/v1/queue", self.queue, methods=["GET"]),
            Route("/v0/scheduled-jobs", self.create_job, methods=["POST"]),
            Route("/v0/scheduled-jobs/{job_id}", self.replace_job, methods=["PUT"]),
            Route("/v1/set-aside-records", self.set_aside_records, methods=["GET", "DELETE"]),
            Route("/v1/jobs", self.jobs, methods=["GET", "POST"]),
            Route("/v1/jobs/{job_id}", self.job, methods=["GET", "PUT", "DELETE"]),
            Route("/v1/jobs/{job_id}/runs", self.runs, methods=["GET", "POST"]),
            Route("/v1/jobs/{job_id}/runs/{run_id}", self.run, methods=["GET"]),
            Route("/v1/jobs/{job_id}/runs/{run_id}/actions/stop", self.stop_run,
                  methods=["POST"]),
            Route("/v1/jobs/{job_id}/schedules", self.schedules, methods=["GET", "POST"]),
            Route("/v1/jobs/{job_id}/schedules/{schedule_id}", self.schedule,
                  methods=["GET", "PUT", "DELETE"]),
        ]
        return Starlette(routes=[*(Route(r.path, self._guard.wrap(r.endpoint), methods=r.methods)
                                   for r in routes), *ui_routes("batch")])

    def core(self) -> BatchCore:
        """The leader's core, or HttpError 503 naming the leader."""
        return self._guard.core()

    # ------------------------------------------------------------------ basics

    async def ping(self, request: Request) -> Response:
        return PlainTextResponse("pong")

    async def info(self, request: Request) -> Response:
        core = self.backend.core
        return JSONResponse({
            "version": self.version, "libVersion": self.version,
            "elected": core is not None, "leader": self.backend.leader_address,
            "frameworkId": core.framework_id if core is not None else None,
            # Records the leader's recovery could not read (`frameworks.set_aside`).
            "setAsideRecords": [r.to_json() for r in core.set_aside]
            if core is not None and self._authz.may_view(request, "/") else [],
        })

    async def set_aside_records(self, request: Request) -> Response:
        """The records the leader's recovery set aside (as in `/info`); DELETE with `?key=`
        removes one from the store."""
        self._authz.require(request, [(self._authz.reading(request), "/")])
        return await set_aside_records(request, self.core(), self.backend)

    async def leader(self, request: Request) -> Response:
        """The leading instance's `host:port`, which a standby knows too; 503 while none is."""
        leader = self.backend.leader_address
        if leader is None:
            raise HttpError(503, "There is no leader")
        return JSONResponse({"leader": leader})

    async def queue(self, request: Request) -> Response:
        """Metronome's launch queue: the runs waiting for offers, by job (each with
        `waitingReason` when known, an extension)."""
        core = self.core()
        return JSONResponse([
            {"jobId": job_id, "runs": [_queued_run_json(core, run) for run in runs]}
            for job_id, runs in core.queued_runs().items()
            if self._authz.may_view(request, job_path(job_id))])

    async def dropwizard_metrics(self, request: Request) -> Response:
        """Metronome's metrics of this instance (a standby answers for itself)."""
        return JSONResponse(dropwizard_metrics(self.backend.core, time.time()))

    async def metrics(self, request: Request) -> Response:
        core = self.backend.core
        lines = ["# TYPE batch_leader gauge", f"batch_leader {int(core is not None)}"]
        if core is not None:
            gauges = {
                "batch_jobs": len(core.jobs),
                "batch_schedules": sum(len(s) for s in core.schedules.values()),
                "batch_active_runs": len(core.runs),
                "batch_offers_suppressed": int(core.suppressed),
                "batch_set_aside_records": len(core.set_aside),
            }
            for name, value in gauges.items():
                lines += [f"# TYPE {name} gauge", f"{name} {value}"]
            for name, value in sorted(core.counters.items()):
                lines += [f"# TYPE batch_{name}_total counter", f"batch_{name}_total {value}"]
        return PlainTextResponse("\n".join(lines) + "\n",
                                 media_type="text/plain; version=0.0.4")

    # -------------------------------------------------------------------- jobs

    async def jobs(self, request: Request) -> Response:
        if request.method == "POST":
            return await self.create_job(request)
        core = self.core()
        embeds = _embeds(request)
        return JSONResponse([_job_json(core, job_id, embeds) for job_id in sorted(core.jobs)
                             if self._authz.may_view(request, job_path(job_id))])

    async def create_job(self, request: Request) -> Response:
        """A new job with the schedules its body embeds, validated and written together."""
        core = self.core()
        job, schedules = _parse(parse_job_body, await _body(request))
        self._authz.require(request, [("create", job_path(job.id))])
        _call(lambda: core.put_job(job, schedules or [], create=True))
        await self.backend.durable()
        return JSONResponse(_job_json(core, job.id, {"schedules"}), status_code=201)

    async def replace_job(self, request: Request) -> Response:
        """Metronome's v0 update: the job and all its schedules (none in the body: none kept)."""
        return await self._put_job(request, keep_schedules=False)

    async def job(self, request: Request) -> Response:
        core = self.core()
        raw_id = request.path_params["job_id"]
        self._authz.require(request, [(_JOB_ACTIONS.get(request.method, "view"), job_path(raw_id))])
        if request.method == "DELETE" and raw_id not in core.jobs \
                and core.discard_set_aside(raw_id):
            await self.backend.durable()  # a job recovery set aside: its records are gone
            return JSONResponse(None)
        job_id = _job_id(request)
        if request.method == "GET":
            _call(lambda: core.job(job_id))
            return JSONResponse(_job_json(core, job_id, _embeds(request)))
        if request.method == "DELETE":
            stop = _flag(request, "stopCurrentJobRuns")
            body = _job_json(core, job_id, set()) if job_id in core.jobs else None
            _call(lambda: core.delete_job(job_id, stop_current_runs=stop))
            await self.backend.durable()
            return JSONResponse(body)
        return await self._put_job(request, keep_schedules=True)

    async def _put_job(self, request: Request, *, keep_schedules: bool) -> Response:
        """Replace a job; its schedules too when the body embeds some or not `keep_schedules`."""
        core = self.core()
        job_id = _job_id(request)
        self._authz.require(request, [("update", job_path(job_id))])
        job, schedules = _parse(parse_job_body, await _body(request))
        if job.id != job_id:
            raise _invalid(ValidationError(
                [("/id", f"must be the job id of the path, '{job_id}'")]))
        replaced = schedules or (None if keep_schedules else [])
        _call(lambda: core.put_job(job, replaced, create=False))
        await self.backend.durable()
        return JSONResponse(_job_json(core, job_id, {"schedules"}))

    # -------------------------------------------------------------------- runs

    async def runs(self, request: Request) -> Response:
        core = self.core()
        job_id = _job_id(request)
        self._authz.require(request, [
            (self._authz.reading(request), job_path(job_id))])
        _call(lambda: core.job(job_id))
        if request.method == "GET":
            return JSONResponse([_run_json(core, run) for run in core.active_runs(job_id)])
        run = core.start_run(job_id)
        await self.backend.durable()
        return JSONResponse(run.to_json(), status_code=201)

    async def run(self, request: Request) -> Response:
        core = self.core()
        job_id, run_id = _job_id(request), request.path_params["run_id"]
        self._authz.require(request, [("view", job_path(job_id))])
        return JSONResponse(_run_json(core, _call(lambda: core.find_run(job_id, run_id))))

    async def stop_run(self, request: Request) -> Response:
        core = self.core()
        job_id, run_id = _job_id(request), request.path_params["run_id"]
        self._authz.require(request, [("update", job_path(job_id))])
        _call(lambda: core.job(job_id))
        run = _call(lambda: core.stop_run(job_id, run_id))
        await self.backend.durable()
        return JSONResponse(run.to_json())

    # --------------------------------------------------------------- schedules

    async def schedules(self, request: Request) -> Response:
        core = self.core()
        job_id = _job_id(request)
        self._authz.require(request, [
            (self._authz.reading(request), job_path(job_id))])
        if request.method == "GET":
            states = _call(lambda: core.job_schedules(job_id))
            return JSONResponse([_schedule_json(core, state) for state in states])
        _call(lambda: core.job(job_id))
        spec = _parse(parse_schedule, await _body(request))
        _call(lambda: core.put_schedule(job_id, spec, create=True))
        await self.backend.durable()
        created = core.schedule(job_id, spec.id)
        return JSONResponse(_schedule_json(core, created), status_code=201)

    async def schedule(self, request: Request) -> Response:
        core = self.core()
        job_id, schedule_id = _job_id(request), request.path_params["schedule_id"]
        self._authz.require(request, [
            (self._authz.reading(request), job_path(job_id))])
        state = _call(lambda: core.schedule(job_id, schedule_id))
        if request.method == "GET":
            return JSONResponse(_schedule_json(core, state))
        if request.method == "DELETE":
            core.delete_schedule(job_id, schedule_id)
            await self.backend.durable()
            return JSONResponse(_schedule_json(core, state))
        spec = _parse(parse_schedule, await _body(request))
        if spec.id != schedule_id:
            raise _invalid(ValidationError(
                [("/id", f"must be the schedule id of the path, '{schedule_id}'")]))
        core.put_schedule(job_id, spec, create=False)
        await self.backend.durable()
        return JSONResponse(_schedule_json(core, core.schedule(job_id, schedule_id)))


def _forwarded(path: str) -> bool:
    """Whether a standby forwards `path` to the leader: the API but for `/v1/metrics`."""
    return path.startswith(("/v1/", "/v0/")) and path != "/v1/metrics"


def _call(action: Callable[[], T]) -> T:
    """Run a core call, turning its refusals into Metronome's answers."""
    try:
        return action()
    except NotFound as error:
        raise HttpError(404, str(error)) from error
    except Conflict as error:
        raise HttpError(409, str(error)) from error
    except ValidationError as error:
        raise _invalid(error) from error


def _parse(parser: Callable[[Any], T], raw: Any) -> T:
    try:
        return parser(raw)
    except ValidationError as error:
        raise _invalid(error) from error


def _invalid(error: ValidationError) -> HttpError:
    """Metronome's 422 answer for an invalid body."""
    return HttpError(422, str(error), error.to_json())


async def _body(request: Request) -> Any:
    try:
        return parse_json_body(await request.body() or b"null")
    except BadJson as error:
        raise HttpError(400, f"Invalid JSON: {error.reason}") from error


_JOB_ACTIONS: dict[str, Action] = {"GET": "view", "PUT": "update", "DELETE": "delete"}
"""The action each method of `/v1/jobs/{id}` needs on the job (starting or stopping runs and
changing schedules are updates of the job)."""


def _job_id(request: Request) -> str:
    job_id: str = request.path_params["job_id"]
    if not is_valid_job_id(job_id):
        raise HttpError(404, f"Job '{job_id}' does not exist")
    return job_id


def _flag(request: Request, name: str) -> bool:
    """A boolean query parameter (`true` or `false`, any case; absent: false); 400 otherwise."""
    values = request.query_params.getlist(name)
    if not values:
        return False
    if len(values) > 1 or values[0].lower() not in ("true", "false"):
        raise HttpError(400, f"Query parameter '{name}' must be given once, as true or false")
    return values[0].lower() == "true"


def _embeds(request: Request) -> set[str]:
    """The `embed` values (repeated or comma-separated); 400 for one Metronome does not know."""
    embeds = {item.strip(" ") for value in request.query_params.getlist("embed")
              for item in value.split(",") if item.strip(" ")}
    unknown = embeds - set(EMBEDS)
    if unknown:
        raise HttpError(400, f"Unknown embed options: {', '.join(sorted(unknown))}; "
                             f"allowed: {', '.join(EMBEDS)}")
    return embeds


def _job_json(core: BatchCore, job_id: str, embeds: set[str]) -> dict[str, Any]:
    body = core.job(job_id).to_json()
    if "schedules" in embeds:
        body["schedules"] = [s.spec.to_json() for s in core.job_schedules(job_id)]
    if "activeRuns" in embeds:
        body["activeRuns"] = [_run_json(core, run) for run in core.active_runs(job_id)]
    if "history" in embeds:
        body["history"] = core.history(job_id).to_json()
    if "historySummary" in embeds:
        body["historySummary"] = core.history(job_id).summary_json()
    return body


def _schedule_json(core: BatchCore, state: ScheduleState) -> dict[str, Any]:
    body = state.spec.to_json()
    due = state.spec.next_due(max(state.handled_until, core.now()))
    if due is not None and state.spec.enabled:
        body["nextRunAt"] = format_timestamp(due.timestamp(), utc_suffix=UTC_SUFFIX)
    return body


def _run_json(core: BatchCore, run: JobRun) -> dict[str, Any]:
    """A run's JSON, with `waitingReason` (an extension) while its tasks wait for offers."""
    body = run.to_json()
    reason = core.waiting_reason(run.id)
    if reason is not None:
        body["waitingReason"] = reason
    return body


def _queued_run_json(core: BatchCore, run: JobRun) -> dict[str, Any]:
    body: dict[str, Any] = {"runId": run.id}
    reason = core.waiting_reason(run.id)
    if reason is not None:
        body["waitingReason"] = reason
    return body
