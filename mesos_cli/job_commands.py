"""`mesos job ...`: the batch framework's v1 REST API (Metronome's shapes); `run --wait`
polls the run until it is SUCCESS (exit 0) or FAILED (exit 1)."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from mesos_cli.client import ApiClient
from mesos_cli.context import Context, load_json_file
from mesos_cli.errors import CliError
from mesos_cli.progress import RUN_FINISHED_STATES
from mesos_cli.views import TABLE_HEADERS, job_rows, run_rows, schedule_rows

__all__ = ["job_add", "job_list", "job_remove", "job_run", "job_runs", "job_show",
           "schedule_add", "schedule_list", "schedule_remove"]


def job_path(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


async def job_list(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.batch() as batch:
        jobs = await batch.get(
            "/v1/jobs", params={"embed": ["activeRuns", "schedules", "historySummary"]})
    if ctx.json_output:
        ctx.print_json(jobs)
    else:
        ctx.print_table(TABLE_HEADERS["jobs"], job_rows(jobs))
    return 0


async def job_show(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.batch() as batch:
        job = await batch.get(job_path(args.job_id),
                              params={"embed": ["activeRuns", "schedules", "history"]})
    ctx.print_json(job)
    return 0


async def job_add(ctx: Context, args: argparse.Namespace) -> int:
    definition = load_json_file(args.file, "job definition")
    async with ctx.batch() as batch:
        job = await batch.send("POST", "/v1/jobs", body=definition)
    if ctx.json_output:
        ctx.print_json(job)
    else:
        ctx.print(f"Added job {job.get('id')}")
    return 0


async def job_remove(ctx: Context, args: argparse.Namespace) -> int:
    params = {"stopCurrentJobRuns": "true"} if args.stop_runs else {}
    async with ctx.batch() as batch:
        answer = await batch.send("DELETE", job_path(args.job_id), params=params)
    if ctx.json_output:
        ctx.print_json(answer)
    else:
        ctx.print(f"Removed job {args.job_id}")
    return 0


async def job_run(ctx: Context, args: argparse.Namespace) -> int:
    """Start a run now; with `--wait`, until it finishes."""
    async with ctx.batch() as batch:
        run = await batch.send("POST", job_path(args.job_id) + "/runs")
        run_id = str(run.get("id"))
        if ctx.json_output and not args.wait:
            ctx.print_json(run)
        elif not ctx.json_output:
            ctx.print(f"Started run {run_id} of job {args.job_id}")
        if not args.wait:
            return 0
        run = await _wait_for_run(ctx, batch, args.job_id, run_id)
    if ctx.json_output:
        ctx.print_json(run)
    if run.get("status") != "SUCCESS":
        raise CliError(f"run {run_id} of job {args.job_id} failed" + _task_summary(run))
    if not ctx.json_output:
        ctx.print(f"Run {run_id} of job {args.job_id}: SUCCESS")
    return 0


async def _wait_for_run(ctx: Context, batch: ApiClient, job_id: str,
                        run_id: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ctx.wait_timeout
    status = waiting = None
    while True:
        run: dict[str, Any] = await batch.get(f"{job_path(job_id)}/runs/{run_id}")
        if run.get("status") != status:
            status = run.get("status")
            ctx.note(f"run {run_id}: {status}")
        if run.get("waitingReason") != waiting:
            waiting = run.get("waitingReason")
            if waiting:
                ctx.note(f"run {run_id} waits: {waiting}")
        if status in RUN_FINISHED_STATES:
            return run
        if loop.time() > deadline:
            raise CliError(f"timed out after {ctx.wait_timeout:g}s waiting for run {run_id} "
                           f"of job {job_id} (it is {status}"
                           + (f", waiting because {waiting}" if waiting else "") + ")")
        await asyncio.sleep(ctx.poll_interval)


def _task_summary(run: dict[str, Any]) -> str:
    tasks = run.get("tasks") or []
    if not tasks:
        return ""
    return " (" + ", ".join(f"{t.get('id')}: {t.get('status')}" for t in tasks) + ")"


async def job_runs(ctx: Context, args: argparse.Namespace) -> int:
    """Active runs, then the finished ones the job's history keeps."""
    async with ctx.batch() as batch:
        active = await batch.get(job_path(args.job_id) + "/runs")
        job = await batch.get(job_path(args.job_id), params={"embed": ["history"]})
    history = job.get("history")
    if ctx.json_output:
        ctx.print_json({"activeRuns": active, "history": history})
    else:
        ctx.print_table(TABLE_HEADERS["runs"], run_rows(active, history))
    return 0


async def schedule_add(ctx: Context, args: argparse.Namespace) -> int:
    definition = load_json_file(args.file, "schedule")
    async with ctx.batch() as batch:
        schedule = await batch.send("POST", job_path(args.job_id) + "/schedules",
                                    body=definition)
    if ctx.json_output:
        ctx.print_json(schedule)
    else:
        ctx.print(f"Added schedule {schedule.get('id')} ({schedule.get('cron')}) "
                  f"to job {args.job_id}")
    return 0


async def schedule_list(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.batch() as batch:
        schedules = await batch.get(job_path(args.job_id) + "/schedules")
    if ctx.json_output:
        ctx.print_json(schedules)
    else:
        ctx.print_table(TABLE_HEADERS["schedules"], schedule_rows(schedules))
    return 0


async def schedule_remove(ctx: Context, args: argparse.Namespace) -> int:
    async with ctx.batch() as batch:
        await batch.send("DELETE", f"{job_path(args.job_id)}/schedules/{args.schedule_id}")
    if not ctx.json_output:
        ctx.print(f"Removed schedule {args.schedule_id} of job {args.job_id}")
    else:
        ctx.print_json({"jobId": args.job_id, "scheduleId": args.schedule_id})
    return 0
