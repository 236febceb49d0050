"""The `mesos` command line: options, defaults, addresses, and one-line error messages."""

from __future__ import annotations

import errno
import socket

import pytest

from mesos_cli import app_commands, cluster_commands, job_commands
from mesos_cli.client import normalize_base_url
from mesos_cli.context import registered_webui_url
from mesos_cli.errors import (
    EXIT_FAILED,
    EXIT_USAGE,
    CliError,
    connection_failure_reason,
    http_error_message,
)
from mesos_cli.main import build_parser, context_of

ENV = {"MESOS_MASTER_URL": "http://10.0.0.1:5080", "MARATHON_URL": "10.0.0.2:8080"}


def test_addresses_default_to_the_environment_then_to_loopback() -> None:
    args = build_parser(ENV).parse_args(["cluster"])
    assert (args.master, args.marathon, args.batch) == (
        "http://10.0.0.1:5080", "10.0.0.2:8080", None)
    ctx = context_of(args)
    assert (ctx.marathon_url, ctx.batch_url) == ("http://10.0.0.2:8080", None)
    assert (ctx.request_timeout, ctx.wait_timeout, ctx.json_output) == (10.0, 300.0, False)
    defaults = build_parser({}).parse_args(["agents"])
    # Without --marathon/--batch, the frameworks' registered web UI URLs are used.
    assert (defaults.master, defaults.marathon, defaults.batch) == ("127.0.0.1:5050", None, None)


def test_frameworks_are_found_by_the_web_ui_url_they_registered() -> None:
    state = {"frameworks": [
        {"name": "marathon", "active": False, "webui_url": "http://10.0.0.9:8080"},
        {"name": "batch", "active": True, "webui_url": "http://10.0.0.3:9000"},
        {"name": "marathon", "active": True, "webui_url": "http://10.0.0.2:8080"},
        {"name": "other", "active": True, "webui_url": ""}]}
    assert registered_webui_url(state, "marathon") == "http://10.0.0.2:8080"
    assert registered_webui_url(state, "batch") == "http://10.0.0.3:9000"
    assert registered_webui_url(state, "other") is None
    assert registered_webui_url({"frameworks": None}, "marathon") is None


@pytest.mark.parametrize(
    "argv",
    [["--json", "tasks"], ["tasks", "--json"], ["--json", "job", "schedule", "list", "j"],
     ["job", "schedule", "list", "j", "--json"]],
)
def test_json_is_accepted_before_and_after_the_command(argv: list[str]) -> None:
    assert build_parser({}).parse_args(argv).json_output is True


def test_without_json_output_is_a_table() -> None:
    assert build_parser({}).parse_args(["tasks"]).json_output is False


def test_timeout_bounds_answers_and_waits() -> None:
    ctx = context_of(build_parser({}).parse_args(["--timeout", "2.5", "app", "list"]))
    assert (ctx.request_timeout, ctx.wait_timeout) == (2.5, 2.5)


@pytest.mark.parametrize(
    ("argv", "handler"),
    [
        (["cluster"], cluster_commands.cluster),
        (["tasks", "--all", "--framework", "marathon"], cluster_commands.tasks),
        (["task", "log", "t1", "--file", "stderr", "-f", "-n", "5"], cluster_commands.task_log),
        (["app", "deploy", "app.json", "--wait", "--force"], app_commands.app_deploy),
        (["app", "scale", "/web", "3", "--wait"], app_commands.app_scale),
        (["app", "restart", "web"], app_commands.app_restart),
        (["app", "remove", "web"], app_commands.app_remove),
        (["job", "run", "hello", "--wait"], job_commands.job_run),
        (["job", "remove", "hello", "--stop-runs"], job_commands.job_remove),
        (["job", "schedule", "add", "hello", "s.json"], job_commands.schedule_add),
        (["job", "schedule", "remove", "hello", "nightly"], job_commands.schedule_remove),
    ],
)
def test_each_command_reaches_its_handler(argv: list[str], handler: object) -> None:
    assert build_parser({}).parse_args(argv).handler is handler


def test_task_log_options() -> None:
    args = build_parser({}).parse_args(["task", "log", "t1", "--file", "stderr", "-f", "-n", "5"])
    assert (args.task_id, args.file, args.follow, args.lines) == ("t1", "stderr", True, 5)
    default = build_parser({}).parse_args(["task", "log", "t1"])
    assert (default.file, default.follow, default.lines) == ("stdout", False, 10)


@pytest.mark.parametrize(
    "argv",
    [[], ["bogus"], ["app"], ["app", "scale", "web"], ["app", "scale", "web", "many"],
     ["task", "log", "t", "--file", "other"], ["--timeout", "0", "cluster"],
     ["--timeout", "soon", "cluster"], ["tasks", "--wait"], ["task", "log", "t", "-n", "-1"],
     ["task", "log", "t", "--json"]],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser({}).parse_args(argv)
    assert exited.value.code == EXIT_USAGE
    assert "usage: mesos" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("typed", "url"),
    [("http://h:5080", "http://h:5080"), ("h:5080", "http://h:5080"),
     ("https://h/", "https://h"), (" 127.0.0.1:1 ", "http://127.0.0.1:1")],
)
def test_addresses_become_base_urls(typed: str, url: str) -> None:
    assert normalize_base_url(typed, "--master") == url


@pytest.mark.parametrize("typed", ["zk://127.0.0.1:2181/mesos", "ftp://h", "http://"])
def test_addresses_that_are_not_http_are_usage_errors(typed: str) -> None:
    with pytest.raises(CliError) as refused:
        normalize_base_url(typed, "--master")
    assert refused.value.exit_code == EXIT_USAGE
    assert "--master" in refused.value.message


def test_marathons_validation_details_are_shown() -> None:
    body = {"message": "Object is not valid", "details": [
        {"path": "/cpus", "errors": ["error.min"]},
        {"path": "/id", "errors": ["error.pattern", "error.required"]}]}
    assert http_error_message("Marathon", "POST", "/v2/apps", 422, body) == (
        "Marathon refused POST /v2/apps (422): Object is not valid; /cpus: error.min; "
        "/id: error.pattern, error.required")


def test_a_locked_app_names_the_deployments_in_the_way() -> None:
    body = {"message": "App is locked by one or more deployments.",
            "deployments": [{"id": "d1"}, {"id": "d2"}]}
    message = http_error_message("Marathon", "PUT", "/v2/apps/web", 409, body)
    assert message.endswith("deployments in the way: d1, d2 (use --force to override)")


@pytest.mark.parametrize(
    ("body", "message"),
    [("/x is not inside a sandbox\n", "agent refused GET /files/read (403): "
                                      "/x is not inside a sandbox"),
     ("", "agent refused GET /files/read (403)"),
     (None, "agent refused GET /files/read (403)"),
     ({}, "agent refused GET /files/read (403): {}")],
)
def test_plain_answers_are_shown_on_one_line(body: object, message: str) -> None:
    assert http_error_message("agent", "GET", "/files/read", 403, body) == message


def chained(outer: Exception, cause: BaseException) -> Exception:
    outer.__cause__ = cause
    return outer


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (chained(RuntimeError("All connection attempts failed"),
                 chained(OSError("All connection attempts failed"),
                         ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"))),
         "connection refused"),
        (chained(RuntimeError("x"), socket.gaierror(-2, "Name or service not known")),
         "unknown host (name or service not known)"),
        (chained(RuntimeError("x"), TimeoutError()), "timed out"),
        (OSError(errno.EHOSTUNREACH, "x"), "no route to host"),
        (RuntimeError("something else"), "something else"),
    ],
    ids=["refused", "unknown-host", "timeout", "errno", "other"],
)
def test_connection_failures_in_a_few_words(error: Exception, reason: str) -> None:
    assert connection_failure_reason(error) == reason


def test_failures_default_to_exit_1() -> None:
    assert CliError("x").exit_code == EXIT_FAILED
