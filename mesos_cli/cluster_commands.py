"""`mesos cluster|agents|frameworks|tasks` and `mesos task log`: the master's and agents'
operator endpoints (`/state`, `/metrics/snapshot`, `/monitor/statistics`, `/files/read`)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable
from typing import Any

from mesos_cli.context import Context
from mesos_cli.errors import CliError
from mesos_cli.views import (
    TABLE_HEADERS,
    agent_rows,
    agent_url,
    cluster_summary,
    framework_rows,
    leader_url,
    locate_task,
    select_tasks,
    task_agents,
    task_rows,
    task_statistics,
)
from mesos_http.sandbox_files import (
    LogCursor,
    agent_task,
    copy_file,
    file_size,
    tail_offset,
)

__all__ = ["agents", "cluster", "frameworks", "task_log", "tasks"]

"""Bytes asked for per `/files/read` (agents answer at most 16 pages at a time)."""


async def leading_state(ctx: Context) -> tuple[str, dict[str, Any]]:
    """The leading master's base URL and `/state` (asking the master `--master` leads to
    first, and following it to the leader when it is a standby)."""
    asked = await ctx.master_url()
    async with ctx.master(asked) as master:
        state: dict[str, Any] = await master.get("/state")
    url = leader_url(state, asked)
    if url == asked:
        return url, state
    async with ctx.master(url) as leader:
        state = await leader.get("/state")
    return url, state


async def cluster(ctx: Context, args: argparse.Namespace) -> int:
    url, state = await leading_state(ctx)
    async with ctx.master(url) as master:
        metrics = await master.get("/metrics/snapshot")
    summary = cluster_summary(state, metrics)
    if ctx.json_output:
        ctx.print_json(summary.to_json())
    else:
        ctx.print(summary.render())
    return 0


async def agents(ctx: Context, args: argparse.Namespace) -> int:
    _, state = await leading_state(ctx)
    if ctx.json_output:
        ctx.print_json(state.get("slaves", []))
    else:
        ctx.print_table(TABLE_HEADERS["agents"], agent_rows(state))
    return 0


async def frameworks(ctx: Context, args: argparse.Namespace) -> int:
    _, state = await leading_state(ctx)
    if ctx.json_output:
        ctx.print_json(state.get("frameworks", []))
    else:
        ctx.print_table(TABLE_HEADERS["frameworks"], framework_rows(state))
    return 0


async def tasks(ctx: Context, args: argparse.Namespace) -> int:
    """The tasks, live ones with their usage (`statistics` in JSON) where their agent tells."""
    _, state = await leading_state(ctx)
    selected = select_tasks(state, include_completed=args.all, framework=args.framework)
    usage = await agents_statistics(ctx, state, task_agents(selected))
    if ctx.json_output:
        for task in selected:
            statistics = task_statistics(task, usage)
            if statistics is not None:
                task["statistics"] = statistics
        ctx.print_json(selected)
    else:
        ctx.print_table(TABLE_HEADERS["tasks"], task_rows(state, selected, usage))
    return 0


async def agents_statistics(ctx: Context, state: dict[str, Any], agent_ids: Iterable[str]
                            ) -> dict[str, list[dict[str, Any]] | None]:
    """Each agent's `/monitor/statistics`, asked at once; None for one that cannot be reached
    or refuses (its tasks' usage is then unknown, not an error)."""
    urls = {str(agent.get("id")): agent for agent in state.get("slaves", [])}

    async def ask(agent_id: str) -> list[dict[str, Any]] | None:
        agent = urls.get(agent_id)
        if agent is None:
            return None
        try:
            async with ctx.client(f"agent {agent_id}", agent_url(agent)) as client:
                answer = await client.get("/monitor/statistics")
        except CliError:
            return None
        return answer if isinstance(answer, list) else None

    wanted = sorted(agent_ids)
    answers = await asyncio.gather(*(ask(agent_id) for agent_id in wanted))
    return dict(zip(wanted, answers, strict=True))


async def task_log(ctx: Context, args: argparse.Namespace) -> int:
    """Print the end of a task's sandbox file; with `--follow`, keep printing what the task
    writes until it is terminal."""
    _, state = await leading_state(ctx)
    location = locate_task(state, args.task_id)
    async with ctx.client(f"agent {location.agent_id}", location.agent_url) as agent:
        task = agent_task(await agent.get("/state"), location.framework_id, location.task_id)
        if task is None:
            raise CliError(f"agent {location.agent_id} at {location.agent_url} has no sandbox "
                           f"for task {location.task_id} (any more)")
        path = f"{task.directory}/{args.file}"
        size = await file_size(agent.get, path)
        cursor = LogCursor(await tail_offset(agent.get, path, size, args.lines))

        def write(data: bytes) -> None:
            ctx.out_bytes.write(data)
            ctx.out_bytes.flush()

        await copy_file(agent.get, path, cursor, size, write)
        if not args.follow:
            return 0
        terminal = task.terminal
        while True:
            await copy_file(agent.get, path, cursor, None, write)
            if terminal:  # what it wrote before it ended has been printed
                return 0
            current = agent_task(await agent.get("/state"), location.framework_id,
                                 location.task_id)
            terminal = current is None or current.terminal
            if not terminal:
                await asyncio.sleep(ctx.poll_interval)
