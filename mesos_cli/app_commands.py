"""`mesos app ...`: Marathon's v2 REST API; `--wait` follows the deployment a change starts.

Following a deployment: the event stream (`deployment_success` / `deployment_failed`) is
attached before the change is sent, so its end cannot be missed; meanwhile
`/v2/deployments` and `/v2/apps/{id}` are polled for the progress bar. When the stream is
not available, a deployment that left `/v2/deployments` is judged by the app reaching its
target.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mesos_cli.client import ApiClient
from mesos_cli.context import Context, ProgressLine, load_json_file
from mesos_cli.errors import CliError
from mesos_cli.progress import (
    ServerSentEvent,
    app_at_target,
    blocking_reason,
    deployment_progress,
    find_deployment,
    stall_reason,
)
from mesos_cli.views import TABLE_HEADERS, app_rows, app_task_rows
from mesos_runtime.tasks import cancel_and_wait

__all__ = ["app_deploy", "app_list", "app_remove", "app_restart", "app_scale", "app_show",
           "app_tasks", "deployment_id_of"]

END_EVENTS = ("deployment_success", "deployment_failed")
END_EVENT_GRACE = 2.0
"""Seconds to wait for the end event of a deployment that left `/v2/deployments`."""


def app_path(app_id: str) -> str:
    """`/v2/apps/web` for `web` or `/web`."""
    return "/v2/apps/" + app_id.strip("/")


def deployment_id_of(answer: Any) -> str | None:
    """The deployment a change started: `deploymentId` of an update, or the one deployment
    listed in a created app."""
    if not isinstance(answer, dict):
        return None
    if answer.get("deploymentId"):
        return str(answer["deploymentId"])
    deployments = answer.get("deployments") or []
    if deployments and isinstance(deployments[0], dict) and deployments[0].get("id"):
        return str(deployments[0]["id"])
    return None


def _force(args: argparse.Namespace) -> dict[str, str]:
    return {"force": "true"} if args.force else {}


async def app_list(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.marathon() as marathon:
        apps = (await marathon.get("/v2/apps"))["apps"]
    if ctx.json_output:
        ctx.print_json(apps)
    else:
        ctx.print_table(TABLE_HEADERS["apps"], app_rows(apps))
    return 0


async def app_show(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.marathon() as marathon:
        answer = await marathon.get(app_path(args.app_id),
                                    params={"embed": ["app.tasks", "app.lastTaskFailure"]})
    ctx.print_json(answer["app"])
    return 0


async def app_tasks(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.marathon() as marathon:
        tasks = (await marathon.get(app_path(args.app_id) + "/tasks"))["tasks"]
    if ctx.json_output:
        ctx.print_json(tasks)
    else:
        ctx.print_table(TABLE_HEADERS["app_tasks"], app_task_rows(tasks))
    return 0


async def app_deploy(ctx: Context, args: argparse.Namespace) -> int:
    """Create the app of the definition file, or update it (PUT) when its id exists."""
    definition = load_json_file(args.file, "app definition")
    if not isinstance(definition, dict) or not str(definition.get("id", "")).strip("/"):
        raise CliError(f"the app definition {args.file} must be a JSON object with an \"id\"")
    app_id = "/" + str(definition["id"]).strip("/")
    async with ctx.marathon() as marathon:
        exists = await marathon.get_optional(app_path(app_id)) is not None
        summary = f"{'Updated' if exists else 'Created'} app {app_id}"

        def change() -> Awaitable[Any]:
            if exists:  # the file is the whole definition: fields it drops are dropped
                return marathon.send("PUT", app_path(app_id), body=definition,
                                     params={**_force(args), "partialUpdate": "false"})
            return marathon.send("POST", "/v2/apps", body=definition, params=_force(args))

        return await _change(ctx, args, marathon, app_id, change, summary)


async def app_scale(ctx: Context, args: argparse.Namespace) -> int:
    if args.instances < 0:
        raise CliError("the number of instances must be 0 or more")
    async with ctx.marathon() as marathon:
        await marathon.get(app_path(args.app_id))  # a clear 404 rather than a new app
        return await _change(
            ctx, args, marathon, args.app_id,
            lambda: marathon.send("PATCH", app_path(args.app_id),
                                  body={"instances": args.instances}, params=_force(args)),
            f"Scaling app /{args.app_id.strip('/')} to {args.instances} instances")


async def app_restart(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.marathon() as marathon:
        return await _change(
            ctx, args, marathon, args.app_id,
            lambda: marathon.send("POST", app_path(args.app_id) + "/restart",
                                  params=_force(args)),
            f"Restarting app /{args.app_id.strip('/')}")


async def app_remove(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.marathon() as marathon:
        answer = await marathon.send("DELETE", app_path(args.app_id), params=_force(args))
    if ctx.json_output:
        ctx.print_json(answer)
    else:
        ctx.print(f"Removing app /{args.app_id.strip('/')} "
                  f"(deployment {deployment_id_of(answer)})")
    return 0


async def _change(ctx: Context, args: argparse.Namespace, marathon: ApiClient, app_id: str,
                  change: Callable[[], Awaitable[Any]], summary: str) -> int:
    """Send a change; with `--wait`, follow the deployment it starts until it ends."""
    app_id = "/" + app_id.strip("/")
    if not args.wait:
        answer = await change()
        _report_change(ctx, answer, summary)
        return 0
    async with _watching_deployments(ctx, marathon) as ends:
        answer = await change()
        _report_change(ctx, answer, summary)
        deployment_id = deployment_id_of(answer)
        if deployment_id is None:
            raise CliError(f"Marathon did not say which deployment changes {app_id}")
        app = await _follow(ctx, marathon, app_id, deployment_id, ends)
    message = (f"Deployment {deployment_id} finished: {app_id} has "
               f"{app.get('tasksRunning', 0)}/{app.get('instances', 0)} instances running")
    if ctx.json_output:
        ctx.note(message)
    else:
        ctx.print(message)
    return 0


def _report_change(ctx: Context, answer: Any, summary: str) -> None:
    if ctx.json_output:
        ctx.print_json(answer)
    else:
        ctx.print(f"{summary} (deployment {deployment_id_of(answer)})")


class _DeploymentEnds:
    """Deployment ends as the event stream reports them."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.changed = asyncio.Event()
        self.stream_closed = False
        self.ends: dict[str, tuple[str, str | None]] = {}

    @property
    def attached(self) -> bool:
        return self.opened.is_set() and not self.stream_closed

    def record(self, event: ServerSentEvent) -> None:
        if event.event not in END_EVENTS:
            return
        try:
            body = event.json()
        except ValueError:
            return  # not Marathon's JSON: polling judges the deployment
        if not isinstance(body, dict):
            return
        deployment_id = body.get("id") or (body.get("plan") or {}).get("id")
        if deployment_id:
            self.ends[str(deployment_id)] = (event.event, body.get("reason"))
            self.changed.set()

    async def wait(self, seconds: float) -> None:
        """Until an end is reported or `seconds` pass."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.changed.wait()
        self.changed.clear()


@contextlib.asynccontextmanager
async def _watching_deployments(ctx: Context,
                                marathon: ApiClient) -> AsyncIterator[_DeploymentEnds]:
    """Deployment ends, from an event stream attached before the block runs."""
    ends = _DeploymentEnds()

    async def watch() -> None:
        try:
            async for event in marathon.events("/v2/events", {"event_type": list(END_EVENTS)},
                                               ends.opened):
                ends.record(event)
        except CliError:
            pass  # polling alone judges the deployment then
        finally:
            ends.stream_closed = True
            ends.opened.set()

    watcher = asyncio.create_task(watch())
    try:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(ctx.request_timeout):
                await ends.opened.wait()
        yield ends
    finally:
        await cancel_and_wait(watcher)


async def _follow(ctx: Context, marathon: ApiClient, app_id: str, deployment_id: str,
                  ends: _DeploymentEnds) -> dict[str, Any]:
    """Show the deployment's progress until it ends; the app as it ends. CliError when the
    deployment fails, is rolled back, or outlasts `--timeout`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.wait_timeout
    line = ProgressLine(ctx.err)
    seen = False
    gone_since: float | None = None
    total_steps = 0
    try:
        while True:
            deployment = find_deployment(await marathon.get("/v2/deployments"), deployment_id)
            app: dict[str, Any] = (await marathon.get(
                app_path(app_id), params={"embed": "app.lastTaskFailure"}))["app"]
            if deployment is not None:
                seen = True
                total_steps = int(deployment.get("totalSteps", 0))
            ended = ends.ends.get(deployment_id)
            shown = deployment if ended is None else None
            progress = deployment_progress(app, shown, total_steps=total_steps).render()
            queue = (await marathon.get("/v2/queue")
                     if ended is None and not app_at_target(app) else None)
            stalled = stall_reason(app, queue) if queue is not None else None
            line.show(f"{progress} (waiting: {stalled})" if stalled else progress)
            blocked = blocking_reason(app, queue) if queue is not None else None
            if blocked is not None:
                raise CliError(f"deployment {deployment_id} of {app_id} cannot finish as it "
                               f"is: {blocked} (it goes on; see `mesos app show {app_id}`)")
            if ended is not None:
                outcome, reason = ended
                if outcome == "deployment_success":
                    return app
                raise CliError(f"deployment {deployment_id} of {app_id} failed"
                               + (f": {reason}" if reason else ""))
            if deployment is None:
                now = loop.time()
                gone_since = gone_since if gone_since is not None else now
                if (not seen and app_at_target(app)) or not ends.attached \
                        or now - gone_since > END_EVENT_GRACE:
                    if app_at_target(app):
                        return app
                    raise CliError(
                        f"deployment {deployment_id} of {app_id} ended with "
                        f"{app.get('tasksRunning', 0)}/{app.get('instances', 0)} instances "
                        "running: it failed or was rolled back")
            if loop.time() > deadline:
                raise CliError(f"timed out after {ctx.wait_timeout:g}s waiting for deployment "
                               f"{deployment_id} of {app_id}"
                               + (f", which waits because of {stalled}" if stalled else "")
                               + f" (it goes on; see `mesos app show {app_id}`)")
            await ends.wait(ctx.poll_interval)
    finally:
        line.close()
