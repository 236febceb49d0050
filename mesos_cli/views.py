"""What the commands show, computed from the JSON the components answer (no I/O).

Master and agent `/state` and `/metrics/snapshot` are in Mesos' shapes, Marathon's in its v2
shapes, the batch framework's in Metronome's v1 shapes. Each `*_rows` function returns the
rows of one table (see `TABLE_HEADERS` for their columns).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mesos_cli.errors import CliError
from mesos_cli.tables import Cell, format_mem, format_number, format_used
from mesos_http.sandbox_files import agent_base_url
from mesos_values.task_states import TERMINAL_STATES
from protos import mesos_pb2

__all__ = [
    "TABLE_HEADERS",
    "TERMINAL_TASK_STATES",
    "ClusterSummary",
    "TaskLocation",
    "agent_rows",
    "agent_url",
    "app_rows",
    "app_task_rows",
    "cluster_summary",
    "framework_rows",
    "job_rows",
    "leader_url",
    "locate_task",
    "run_rows",
    "schedule_rows",
    "select_tasks",
    "shorten",
    "task_agents",
    "task_rows",
    "task_statistics",
]

Json = Mapping[str, Any]
Row = list[Cell]

TERMINAL_TASK_STATES = frozenset(mesos_pb2.TaskState.Name(state) for state in TERMINAL_STATES)
"""Names of the states after which a task never runs again (`TASK_FINISHED`, ...)."""

TABLE_HEADERS: dict[str, tuple[str, ...]] = {
    "agents": ("ID", "HOSTNAME", "ADDRESS", "ACTIVE", "TASKS", "CPUS", "MEM", "DISK",
               "ATTRIBUTES"),
    "frameworks": ("ID", "NAME", "ROLE", "ACTIVE", "TASKS", "CPUS", "MEM", "SHARE"),
    "tasks": ("ID", "NAME", "FRAMEWORK", "STATE", "HOST", "CPUS", "MEM", "CPU TIME",
              "MEM USED"),
    "apps": ("ID", "INSTANCES", "HEALTHY", "CPUS", "MEM", "SERVICE PORTS", "DEPLOYING", "CMD"),
    "app_tasks": ("ID", "HOST", "PORTS", "STATE", "HEALTH", "STARTED"),
    "jobs": ("ID", "SCHEDULES", "ACTIVE RUNS", "SUCCESSES", "FAILURES", "CMD"),
    "runs": ("RUN ID", "STATUS", "CREATED", "FINISHED"),
    "schedules": ("ID", "CRON", "TIMEZONE", "ENABLED", "CONCURRENCY", "NEXT RUN"),
}
_CMD_WIDTH = 40
_MB = 1024 * 1024


@dataclass(frozen=True)
class ClusterSummary:
    """The headline numbers of `mesos cluster`."""

    leader: str
    version: str
    agents_active: int
    agents: int
    frameworks_active: int
    frameworks: int
    tasks_running: int
    tasks: int
    cpus_used: float
    cpus_total: float
    mem_used: float
    mem_total: float
    disk_used: float
    disk_total: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        """`name  value` lines, aligned."""
        lines = [
            ("leader", self.leader),
            ("version", self.version),
            ("agents", f"{self.agents_active} active / {self.agents}"),
            ("frameworks", f"{self.frameworks_active} active / {self.frameworks}"),
            ("tasks", f"{self.tasks_running} running / {self.tasks}"),
            ("cpus", _usage(self.cpus_used, self.cpus_total, memory=False)),
            ("mem", _usage(self.mem_used, self.mem_total, memory=True)),
            ("disk", _usage(self.disk_used, self.disk_total, memory=True)),
        ]
        width = max(len(name) for name, _ in lines)
        return "\n".join(f"{name.ljust(width)}  {value}" for name, value in lines)


def _usage(used: float, total: float, *, memory: bool) -> str:
    percent = 100.0 * used / total if total else 0.0
    return f"{format_used(used, total, memory=memory)} ({format_number(percent)}%)"


def cluster_summary(state: Json, metrics: Mapping[str, float]) -> ClusterSummary:
    """The summary of the leading master's `/state` and `/metrics/snapshot`."""
    frameworks = list(state.get("frameworks", []))
    return ClusterSummary(
        leader=str(state.get("leader") or state.get("pid") or "none"),
        version=str(state.get("version", "")),
        agents_active=int(metrics.get("master/slaves_active", 0)),
        agents=len(state.get("slaves", [])),
        frameworks_active=int(metrics.get("master/frameworks_active", 0)),
        frameworks=len(frameworks),
        tasks_running=int(metrics.get("master/tasks_running", 0)),
        tasks=sum(len(framework.get("tasks", [])) for framework in frameworks),
        cpus_used=float(metrics.get("master/cpus_used", 0.0)),
        cpus_total=float(metrics.get("master/cpus_total", 0.0)),
        mem_used=float(metrics.get("master/mem_used", 0.0)),
        mem_total=float(metrics.get("master/mem_total", 0.0)),
        disk_used=float(metrics.get("master/disk_used", 0.0)),
        disk_total=float(metrics.get("master/disk_total", 0.0)),
    )


def shorten(text: str, width: int) -> str:
    """`text` on one line, cut to `width` characters with `...` when longer."""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: max(0, width - 3)] + "..."


# ------------------------------------------------------------------ master state


def leader_url(state: Json, asked: str) -> str:
    """The base URL of the leading master, from the `/state` of the master at `asked` (a
    standby names the leader in `leader` and `leader_info`)."""
    leader = state.get("leader")
    if not leader:
        raise CliError(f"the master at {asked} knows no leading master (no leader is elected)")
    if leader == state.get("pid"):
        return asked
    info = state.get("leader_info") or {}
    host = (info.get("address") or {}).get("ip") or info.get("hostname")
    port = info.get("http_port")
    if not host or not port:
        raise CliError(f"the master at {asked} does not know the leader's HTTP address ({leader})")
    return f"http://{host}:{port}"


def agent_url(agent: Json) -> str:
    """The base URL of an agent's HTTP endpoints, from a master `/state` `slaves` entry
    (`pid` is `slave(1)@IP:HTTP_PORT`; `http_port` wins when present)."""
    url = agent_base_url(agent)
    if url is None:
        raise CliError(f"the master does not know where agent {agent.get('id')} listens")
    return url


def _all_frameworks(state: Json) -> list[Json]:
    """Active frameworks, then the completed ones the master still keeps."""
    return [*state.get("frameworks", []), *state.get("completed_frameworks", [])]


def _live_tasks(framework: Json) -> list[Json]:
    return [*framework.get("tasks", []), *framework.get("unreachable_tasks", [])]


def agent_rows(state: Json) -> list[Row]:
    """One row per registered agent: resources as used/total."""
    tasks_per_agent: dict[str, int] = {}
    for framework in state.get("frameworks", []):
        for task in _live_tasks(framework):
            agent_id = str(task.get("slave_id", ""))
            tasks_per_agent[agent_id] = tasks_per_agent.get(agent_id, 0) + 1
    rows: list[Row] = []
    for agent in state.get("slaves", []):
        total, used = agent.get("resources", {}), agent.get("used_resources", {})
        attributes = agent.get("attributes", {})
        rows.append([
            agent.get("id"),
            agent.get("hostname"),
            agent_url(agent).removeprefix("http://"),
            bool(agent.get("active")),
            tasks_per_agent.get(str(agent.get("id")), 0),
            format_used(used.get("cpus", 0.0), total.get("cpus", 0.0)),
            format_used(used.get("mem", 0.0), total.get("mem", 0.0), memory=True),
            format_used(used.get("disk", 0.0), total.get("disk", 0.0), memory=True),
            ";".join(f"{name}:{value}" for name, value in sorted(attributes.items())),
        ])
    return rows


def framework_rows(state: Json) -> list[Row]:
    """One row per framework: role, live tasks, resources in use, dominant share."""
    rows: list[Row] = []
    for framework in state.get("frameworks", []):
        used = framework.get("used_resources", {})
        share = framework.get("dominant_share")
        rows.append([
            framework.get("id"),
            framework.get("name"),
            framework.get("role"),
            bool(framework.get("active")),
            len(_live_tasks(framework)),
            float(used.get("cpus", 0.0)),
            format_mem(float(used.get("mem", 0.0))),
            None if share is None else f"{format_number(100.0 * float(share))}%",
        ])
    return rows


def select_tasks(state: Json, *, include_completed: bool = False,
                 framework: str | None = None) -> list[dict[str, Any]]:
    """Tasks of every framework (or of the one whose id or name is `framework`): live ones,
    and finished ones too with `include_completed`. Each is Mesos' task JSON."""
    frameworks = _all_frameworks(state) if include_completed else list(
        state.get("frameworks", []))
    if framework is not None:
        frameworks = [f for f in frameworks if framework in (f.get("id"), f.get("name"))]
        if not frameworks:
            raise CliError(f"no framework has the id or name {framework!r}")
    tasks: list[dict[str, Any]] = []
    for entry in frameworks:
        tasks += [dict(task) for task in _live_tasks(entry)]
        if include_completed:
            tasks += [dict(task) for task in entry.get("completed_tasks", [])]
    return tasks


def task_rows(state: Json, tasks: Iterable[Json],
              usage: Mapping[str, Sequence[Json] | None] | None = None) -> list[Row]:
    """Rows for `tasks` (from `select_tasks`), with framework names and agent hostnames, and
    each live task's usage from `usage`, its agent's `/monitor/statistics` by agent id (None,
    or absent, for an agent that did not answer): the CPU seconds its container used, and its
    resident memory of its limit. Unknown usage shows as `-`."""
    framework_names = {f.get("id"): f.get("name") for f in _all_frameworks(state)}
    hostnames = {a.get("id"): a.get("hostname") for a in state.get("slaves", [])}
    rows: list[Row] = []
    for task in tasks:
        statistics = task_statistics(task, usage or {})
        rows.append([
            task.get("id"),
            task.get("name"),
            framework_names.get(task.get("framework_id")) or task.get("framework_id"),
            task.get("state"),
            hostnames.get(task.get("slave_id")) or task.get("slave_id"),
            float(task.get("resources", {}).get("cpus", 0.0)),
            format_mem(float(task.get("resources", {}).get("mem", 0.0))),
            _cpu_time(statistics),
            _memory_used(statistics),
        ])
    return rows


def task_agents(tasks: Iterable[Json]) -> set[str]:
    """The ids of the agents that run the live ones of `tasks` (whose usage can be asked)."""
    return {str(task.get("slave_id")) for task in tasks
            if task.get("state") not in TERMINAL_TASK_STATES and task.get("slave_id")}


def task_statistics(task: Json, usage: Mapping[str, Sequence[Json] | None]) -> Json | None:
    """The `statistics` of a live task's container in its agent's `/monitor/statistics`
    (`usage` by agent id): a command task's executor is named after the task, a custom
    executor's container is shared by its tasks. None when unknown or the task has ended."""
    if task.get("state") in TERMINAL_TASK_STATES:
        return None
    executor_id = task.get("executor_id") or task.get("id")
    for entry in usage.get(str(task.get("slave_id")), None) or ():
        if entry.get("framework_id") == task.get("framework_id") and \
                entry.get("executor_id") == executor_id:
            statistics: Json | None = entry.get("statistics")
            return statistics
    return None


def _cpu_time(statistics: Json | None) -> Cell:
    if statistics is None or "cpus_user_time_secs" not in statistics:
        return None
    seconds = float(statistics["cpus_user_time_secs"]) + float(
        statistics.get("cpus_system_time_secs", 0.0))
    return f"{format_number(seconds)}s"


def _memory_used(statistics: Json | None) -> Cell:
    if statistics is None or "mem_rss_bytes" not in statistics:
        return None
    used = float(statistics["mem_rss_bytes"]) / _MB
    if "mem_limit_bytes" not in statistics:
        return format_mem(used)
    return format_used(used, float(statistics["mem_limit_bytes"]) / _MB, memory=True)


@dataclass(frozen=True)
class TaskLocation:
    """Where a task runs: its ids, its state as the master knows it, its agent's URL."""

    task_id: str
    framework_id: str
    agent_id: str
    state: str
    agent_url: str


def locate_task(state: Json, query: str) -> TaskLocation:
    """The task whose id is `query`, or the one task whose id contains it (live tasks are
    preferred to finished ones). CliError when none or several match."""
    live: list[Json] = []
    completed: list[Json] = []
    for framework in _all_frameworks(state):
        live += _live_tasks(framework)
        completed += framework.get("completed_tasks", [])
    exact = [task for task in (*live, *completed) if task.get("id") == query]
    candidates = exact[:1] or _containing(live, query) or _containing(completed, query)
    if not candidates:
        raise CliError(f"no task id matches {query!r}")
    if len(candidates) > 1:
        ids = sorted(str(task.get("id")) for task in candidates)
        listed = ", ".join(ids[:5]) + (", ..." if len(ids) > 5 else "")
        raise CliError(f"{query!r} matches {len(ids)} tasks ({listed}); give more of the id")
    task = candidates[0]
    agent_id = str(task.get("slave_id", ""))
    agents = [agent for agent in state.get("slaves", []) if agent.get("id") == agent_id]
    if not agents:
        raise CliError(f"task {task.get('id')} ran on agent {agent_id}, which is not registered")
    return TaskLocation(
        task_id=str(task.get("id")),
        framework_id=str(task.get("framework_id", "")),
        agent_id=agent_id,
        state=str(task.get("state", "")),
        agent_url=agent_url(agents[0]),
    )


def _containing(tasks: Sequence[Json], query: str) -> list[Json]:
    return [task for task in tasks if query in str(task.get("id", ""))]


# --------------------------------------------------------------------- Marathon


def service_ports(app: Json) -> list[int]:
    """The ports where load balancers (`marathon-lb`) serve the app: its container's port
    mappings' `servicePort`s, else its port definitions' ports (0: none assigned)."""
    container = app.get("container") or {}
    mappings = container.get("portMappings") or (container.get("docker") or {}).get(
        "portMappings") or []
    ports = ([m.get("servicePort", 0) for m in mappings] if mappings
             else [d.get("port", 0) for d in app.get("portDefinitions") or []])
    return [port for port in ports if isinstance(port, int) and port > 0]


def app_rows(apps: Iterable[Json]) -> list[Row]:
    """`/v2/apps` entries: instances running/target, healthy ones when health-checked."""
    rows: list[Row] = []
    for app in apps:
        target = int(app.get("instances", 0))
        checked = bool(app.get("healthChecks"))
        rows.append([
            app.get("id"),
            f"{app.get('tasksRunning', 0)}/{target}",
            f"{app.get('tasksHealthy', 0)}/{target}" if checked else None,
            float(app.get("cpus", 0.0)),
            format_mem(float(app.get("mem", 0.0))),
            ",".join(str(port) for port in service_ports(app)) or None,
            bool(app.get("deployments")),
            shorten(str(app.get("cmd") or " ".join(app.get("args") or [])), _CMD_WIDTH),
        ])
    return rows


def app_task_rows(tasks: Iterable[Json]) -> list[Row]:
    """`/v2/apps/{id}/tasks` entries with their health as the health checks report it."""
    rows: list[Row] = []
    for task in tasks:
        results = task.get("healthCheckResults") or []
        health = None
        if results:
            health = "healthy" if all(r.get("alive") for r in results) else "unhealthy"
        rows.append([
            task.get("id"),
            task.get("host"),
            ",".join(str(port) for port in task.get("ports", [])),
            task.get("state"),
            health,
            task.get("startedAt"),
        ])
    return rows


# ------------------------------------------------------------------------ batch


def job_rows(jobs: Iterable[Json]) -> list[Row]:
    """`/v1/jobs?embed=activeRuns,schedules,historySummary` entries."""
    rows: list[Row] = []
    for job in jobs:
        summary = job.get("historySummary") or {}
        run = job.get("run") or {}
        rows.append([
            job.get("id"),
            ",".join(str(s.get("cron")) for s in job.get("schedules") or []),
            len(job.get("activeRuns") or []),
            int(summary.get("successCount", 0)),
            int(summary.get("failureCount", 0)),
            shorten(str(run.get("cmd") or " ".join(run.get("args") or [])), _CMD_WIDTH),
        ])
    return rows


def run_rows(active: Iterable[Json], history: Json | None) -> list[Row]:
    """Active runs first, then the finished ones the history keeps (newest first)."""
    rows: list[Row] = [
        [run.get("id"), run.get("status"), run.get("createdAt"), run.get("completedAt")]
        for run in active
    ]
    finished = [
        (run, status)
        for key, status in (("successfulFinishedRuns", "SUCCESS"), ("failedFinishedRuns", "FAILED"))
        for run in (history or {}).get(key, [])
    ]
    finished.sort(key=lambda pair: str(pair[0].get("finishedAt", "")), reverse=True)
    rows += [[run.get("id"), status, run.get("createdAt"), run.get("finishedAt")]
             for run, status in finished]
    return rows


def schedule_rows(schedules: Iterable[Json]) -> list[Row]:
    """`/v1/jobs/{id}/schedules` entries."""
    return [
        [
            schedule.get("id"),
            schedule.get("cron"),
            schedule.get("timezone"),
            bool(schedule.get("enabled", True)),
            schedule.get("concurrencyPolicy"),
            schedule.get("nextRunAt"),
        ]
        for schedule in schedules
    ]
