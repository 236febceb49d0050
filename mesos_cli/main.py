"""The `mesos` command: argument parsing and the exit-code contract.

    mesos [--master HOST:PORT|zk://...|URL] [--marathon URL] [--batch URL] [--json]
          [--timeout S] COMMAND ...

`--master` is the master address every component takes (its gRPC `HOST:PORT` or a `zk://`
URL; default `$MESOS_MASTER`): the CLI finds the leader's HTTP endpoints itself. An
`http://HOST:PORT` URL of those endpoints (`$MESOS_MASTER_URL`) is accepted too.

Exit codes: 0 done, 1 the operation failed, 2 bad usage, 3 a component cannot be reached,
130 interrupted. Failures print one line on stderr (`mesos: ...`), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Coroutine, Mapping, Sequence
from importlib import metadata

from mesos_cli import app_commands, cluster_commands, job_commands
from mesos_cli.client import normalize_base_url
from mesos_cli.context import Context
from mesos_cli.discovery import parse_master_address
from mesos_cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_USAGE, CliError
from mesos_runtime.logging import configure_logging
from mesos_security.tls import add_tls_flags, tls_from_args

__all__ = ["build_parser", "default_master", "main"]

Handler = Callable[[Context, argparse.Namespace], Coroutine[object, object, int]]

DEFAULT_MASTER = "127.0.0.1:5050"
DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_WAIT_TIMEOUT = 300.0


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be more than 0 seconds")
    return value


def _line_count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of lines: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _version() -> str:
    try:
        return metadata.version("pymesos-cluster")
    except metadata.PackageNotFoundError:
        return "unknown"


def default_master(environ: Mapping[str, str]) -> str:
    """`--master` when it is not given: `MESOS_MASTER` (the address every component takes),
    else `MESOS_MASTER_URL` (an HTTP URL; `http://` is added when it has no scheme), else the
    gRPC address `mesos-local` listens on."""
    master = environ.get("MESOS_MASTER", "").strip()
    if master:
        return master
    url = environ.get("MESOS_MASTER_URL", "").strip()
    if url:
        return url if "://" in url else f"http://{url}"
    return DEFAULT_MASTER


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The parser; defaults of the addresses come from `environ` (default: os.environ)."""
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(
        prog="mesos",
        description="Look at and operate a Mesos-style cluster: the master, its agents, "
                    "Marathon apps and batch jobs.",
        epilog="exit codes: 0 ok, 1 operation failed, 2 usage error, 3 cannot connect",
    )
    parser.add_argument("--master", metavar="HOST:PORT|zk://...",
                        default=default_master(env),
                        help="the master as every component takes it: its gRPC address or a "
                             "ZooKeeper URL (zk://HOST:PORT[,...]/PATH); an http://HOST:PORT "
                             "URL of its HTTP endpoints works too (env MESOS_MASTER, then "
                             f"MESOS_MASTER_URL; default {DEFAULT_MASTER})")
    parser.add_argument("--marathon", metavar="URL", default=env.get("MARATHON_URL"),
                        help="Marathon's REST API (env MARATHON_URL; default: the web UI URL "
                             "the framework named 'marathon' registered with the master, so "
                             "the leading Marathon)")
    parser.add_argument("--batch", metavar="URL", default=env.get("MESOS_BATCH_URL"),
                        help="the batch framework's REST API (env MESOS_BATCH_URL; default: "
                             "the web UI URL the framework named 'batch' registered with the "
                             "master)")
    parser.add_argument("--json", dest="json_output", action="store_true",
                        help="print JSON for scripts instead of tables")
    parser.add_argument("--timeout", metavar="SECONDS", type=_positive_seconds,
                        help=f"how long to wait for each answer (default "
                             f"{DEFAULT_REQUEST_TIMEOUT:g}) and, with --wait, for the "
                             f"operation to finish (default {DEFAULT_WAIT_TIMEOUT:g})")
    parser.add_argument("--principal", default=env.get("MESOS_PRINCIPAL"),
                        help="HTTP Basic principal for clusters that authenticate HTTP "
                             "(env MESOS_PRINCIPAL)")
    parser.add_argument("--secret", default=env.get("MESOS_SECRET"),
                        help="its secret (env MESOS_SECRET; prefer the environment: command "
                             "lines are visible to other users)")
    add_tls_flags(parser)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    json_option = argparse.ArgumentParser(add_help=False)
    json_option.add_argument("--json", dest="json_output", action="store_true",
                             default=argparse.SUPPRESS, help="print JSON instead of tables")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(group: argparse._SubParsersAction[argparse.ArgumentParser], name: str,
                handler: Handler, help_text: str, *, json: bool = True
                ) -> argparse.ArgumentParser:
        sub = group.add_parser(name, parents=[json_option] if json else [], help=help_text,
                               description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    def group_of(name: str, help_text: str) -> argparse._SubParsersAction[
            argparse.ArgumentParser]:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        return sub.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)

    command(commands, "cluster", cluster_commands.cluster,
            "the leader, counts and resource usage")
    command(commands, "agents", cluster_commands.agents, "agents and their resources")
    command(commands, "frameworks", cluster_commands.frameworks,
            "frameworks, their tasks and shares")
    tasks = command(commands, "tasks", cluster_commands.tasks, "live tasks of every framework")
    tasks.add_argument("--all", action="store_true", help="finished tasks too")
    tasks.add_argument("--framework", metavar="ID", help="only this framework (id or name)")

    task = group_of("task", "one task")
    log = command(task, "log", cluster_commands.task_log,
                  "print a task's stdout or stderr from its sandbox", json=False)
    log.add_argument("task_id", metavar="TASK", help="the task id, or a unique part of it")
    log.add_argument("--file", choices=("stdout", "stderr"), default="stdout")
    log.add_argument("--follow", "-f", action="store_true",
                     help="keep printing what the task writes until it ends (or Ctrl-C)")
    log.add_argument("--lines", "-n", metavar="N", type=_line_count, default=10,
                     help="start with the last N lines (default %(default)s)")

    app = group_of("app", "Marathon apps")
    command(app, "list", app_commands.app_list, "apps and their instances")
    show = command(app, "show", app_commands.app_show, "one app's definition and tasks (JSON)")
    show.add_argument("app_id", metavar="ID")
    deploy = command(app, "deploy", app_commands.app_deploy,
                     "create an app from a JSON definition, or update it when its id exists")
    deploy.add_argument("file", metavar="APP.JSON", help="the app definition (- for stdin)")
    scale = command(app, "scale", app_commands.app_scale, "change an app's instance count")
    scale.add_argument("app_id", metavar="ID")
    scale.add_argument("instances", metavar="N", type=int)
    restart = command(app, "restart", app_commands.app_restart, "replace every instance")
    restart.add_argument("app_id", metavar="ID")
    remove = command(app, "remove", app_commands.app_remove, "destroy an app")
    remove.add_argument("app_id", metavar="ID")
    app_tasks = command(app, "tasks", app_commands.app_tasks, "an app's tasks and health")
    app_tasks.add_argument("app_id", metavar="ID")
    for changing in (deploy, scale, restart, remove):
        changing.add_argument("--force", action="store_true",
                              help="override deployments that hold the app")
    for followed in (deploy, scale, restart):
        followed.add_argument("--wait", action="store_true",
                              help="follow the deployment with a progress bar until it ends")

    job = group_of("job", "batch jobs")
    command(job, "list", job_commands.job_list, "jobs, schedules and run counts")
    job_show = command(job, "show", job_commands.job_show,
                       "one job with its runs, schedules and history (JSON)")
    job_show.add_argument("job_id", metavar="ID")
    add = command(job, "add", job_commands.job_add, "create a job from a JSON definition")
    add.add_argument("file", metavar="JOB.JSON", help="the job definition (- for stdin)")
    run = command(job, "run", job_commands.job_run, "start a run of a job now")
    run.add_argument("job_id", metavar="ID")
    run.add_argument("--wait", action="store_true",
                     help="wait for the run: exit 0 on SUCCESS, 1 on FAILED")
    runs = command(job, "runs", job_commands.job_runs, "active and finished runs of a job")
    runs.add_argument("job_id", metavar="ID")
    job_remove = command(job, "remove", job_commands.job_remove, "delete a job")
    job_remove.add_argument("job_id", metavar="ID")
    job_remove.add_argument("--stop-runs", action="store_true",
                            help="stop its active runs (otherwise they keep it from going)")
    schedule = job.add_parser("schedule", help="a job's schedules", description="schedules")
    schedules = schedule.add_subparsers(dest="schedule_command", metavar="COMMAND",
                                        required=True)
    schedule_add = command(schedules, "add", job_commands.schedule_add,
                           "add a schedule from a JSON definition")
    schedule_add.add_argument("job_id", metavar="ID")
    schedule_add.add_argument("file", metavar="SCHEDULE.JSON")
    schedule_list = command(schedules, "list", job_commands.schedule_list,
                            "a job's schedules")
    schedule_list.add_argument("job_id", metavar="ID")
    schedule_remove = command(schedules, "remove", job_commands.schedule_remove,
                              "delete a schedule")
    schedule_remove.add_argument("job_id", metavar="ID")
    schedule_remove.add_argument("schedule_id", metavar="SCHEDULE_ID")
    return parser


def context_of(args: argparse.Namespace) -> Context:
    """The context the parsed arguments describe (CliError for a bad address or TLS files)."""
    try:
        tls = tls_from_args(args)
    except ValueError as error:
        raise CliError(str(error), EXIT_USAGE) from None
    if (args.principal is None) != (args.secret is None):
        raise CliError("--principal and --secret go together", EXIT_USAGE)
    return Context(
        tls=tls,
        credentials=(args.principal, args.secret) if args.principal is not None else None,
        master_address=parse_master_address(args.master),
        marathon_url=args.marathon and normalize_base_url(args.marathon, "--marathon"),
        batch_url=args.batch and normalize_base_url(args.batch, "--batch"),
        json_output=bool(args.json_output),
        request_timeout=args.timeout or DEFAULT_REQUEST_TIMEOUT,
        wait_timeout=args.timeout or DEFAULT_WAIT_TIMEOUT,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    # The ZooKeeper and gRPC libraries log; the CLI reports its own failures in one line.
    configure_logging("CRITICAL", json=False)
    try:
        return asyncio.run(handler(context_of(args), args))
    except CliError as error:
        sys.stdout.flush()
        print(f"mesos: {error.message}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # stdout went away (`mesos tasks | head`): say nothing more.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
