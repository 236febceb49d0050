"""Environment and argv of command tasks and executors."""

from __future__ import annotations

from pathlib import Path

import pytest

from mesos_agent.environment import (
    EXECUTOR_TOKEN_VARIABLE,
    ContainerIds,
    argv_without_shell,
    command_argv,
    executor_environment,
    inherited_environment,
    port_environment,
    task_environment,
)
from mesos_agent.paths import AgentPaths, from_path_component, path_component
from mesos_values.resources import Resources
from protos import mesos_pb2

IDS = ContainerIds("agent-1", "fw-1", "task-1", Path("/sandbox"))


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ("cpus:1", {}),
        ("ports:[31000-31000]", {"PORT0": "31000", "PORT": "31000", "PORTS": "31000"}),
        (
            "ports:[31005-31006,31001-31001]",
            {"PORT0": "31001", "PORT1": "31005", "PORT2": "31006", "PORT": "31001",
             "PORTS": "31001,31005,31006"},
        ),
    ],
    ids=["no-ports", "one-port", "ranges-in-order"],
)
def test_port_environment(resources: str, expected: dict[str, str]) -> None:
    assert port_environment(Resources.parse(resources)) == expected


def command(value: str, env: dict[str, str] | None = None) -> mesos_pb2.CommandInfo:
    info = mesos_pb2.CommandInfo(value=value)
    for name, val in (env or {}).items():
        info.environment.variables.add(name=name, value=val)
    return info


def test_task_environment_has_mesos_variables_ports_and_command_env() -> None:
    env = task_environment(
        base={"PATH": "/bin", "HOST": "overridden"},
        ids=IDS,
        task_id="task-1",
        hostname="host-a",
        resources=Resources.parse("cpus:1;ports:[31000-31001]"),
        command=command("true", {"GREETING": "hi", "PORT1": "9"}),
    )
    assert env == {
        "PATH": "/bin",
        "MESOS_TASK_ID": "task-1",
        "MESOS_FRAMEWORK_ID": "fw-1",
        "MESOS_EXECUTOR_ID": "task-1",
        "MESOS_AGENT_ID": "agent-1",
        "MESOS_SANDBOX": "/sandbox",
        "MESOS_DIRECTORY": "/sandbox",
        "HOST": "host-a",
        "PORT0": "31000",
        "PORT1": "9",  # the command's own environment wins
        "PORT": "31000",
        "PORTS": "31000,31001",
        "GREETING": "hi",
    }


def test_executor_environment_names_the_agent_endpoint() -> None:
    env = executor_environment(
        base={}, ids=IDS, agent_endpoint="127.0.0.1:5051", hostname="h",
        recovery_timeout=30.0, command=command("run"),
    )
    assert env["MESOS_AGENT_ENDPOINT"] == "127.0.0.1:5051"
    assert env["MESOS_RECOVERY_TIMEOUT"] == "30.0secs"
    assert env["MESOS_SANDBOX"] == "/sandbox"


def test_executor_environment_holds_its_token_which_a_command_cannot_replace() -> None:
    forging = mesos_pb2.CommandInfo(value="run", environment=mesos_pb2.Environment(variables=[
        mesos_pb2.Environment.Variable(name=EXECUTOR_TOKEN_VARIABLE, value="chosen")]))
    env = executor_environment(
        base={}, ids=IDS, agent_endpoint="a:1", hostname="h", recovery_timeout=1.0,
        command=forging, token="secret",
    )
    assert env[EXECUTOR_TOKEN_VARIABLE] == "secret"
    untokened = executor_environment(
        base={}, ids=IDS, agent_endpoint="a:1", hostname="h", recovery_timeout=1.0,
        command=forging,
    )
    assert EXECUTOR_TOKEN_VARIABLE not in untokened
    tasks = task_environment(base={}, ids=IDS, task_id="t", hostname="h",
                             resources=Resources.parse("cpus:1"), command=command("run"))
    assert EXECUTOR_TOKEN_VARIABLE not in tasks
    assert EXECUTOR_TOKEN_VARIABLE not in inherited_environment(
        {EXECUTOR_TOKEN_VARIABLE: "of the executor that started this agent"})


def test_agent_flags_are_not_inherited() -> None:
    assert inherited_environment({"MESOS_MASTER": "x", "PATH": "/bin"}) == {"PATH": "/bin"}


def test_command_argv_shell_and_exec_forms() -> None:
    assert command_argv(command("echo $HOME")) == ("/bin/sh", "-c", "echo $HOME")
    exec_form = mesos_pb2.CommandInfo(value="/bin/echo", shell=False, arguments=["echo", "a b"])
    assert command_argv(exec_form) == ("/bin/echo", "a b")
    with pytest.raises(ValueError, match="empty"):
        command_argv(command(""))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sleep 300", ("sleep", "300")),
        (" \tsleep\t 300 ", ("sleep", "300")),
        ("./run.sh --port=31000 a,b:c@d%e+f", ("./run.sh", "--port=31000", "a,b:c@d%e+f")),
        ("python3 -m my.executor", ("python3", "-m", "my.executor")),
    ],
)
def test_plain_commands_run_without_the_shell(value: str, expected: tuple[str, ...]) -> None:
    assert argv_without_shell(command(value)) == expected


@pytest.mark.parametrize(
    "value",
    [
        "", "   ", "echo hi", "exit 3", "true", "kill -9 1", "[ -f x ]", "cd /tmp", "if x",
        "A=1 sleep 3", "sleep $X", "sleep ${X}", "sleep `x`", "ls *.txt", "ls ?", "ls [ab]",
        "~/bin/x", "sleep 1; sleep 2", "a && b", "a | b", "a > out", "a < in", "a & b",
        "sleep 'x'", 'sleep "x"', "sleep \\x", "a # comment", "a\nb", "(a)", "{ a; }",
        "caf\u00e9 1",
    ],
)
def test_commands_with_shell_syntax_keep_the_shell(value: str) -> None:
    assert argv_without_shell(command(value)) is None


def test_exec_form_commands_have_no_shell_to_skip() -> None:
    exec_form = mesos_pb2.CommandInfo(value="/bin/sleep", shell=False, arguments=["sleep", "1"])
    assert argv_without_shell(exec_form) is None


@pytest.mark.parametrize("value", ["task-1", "app.instance-1", "a/b", "..", ".hidden", "", "ü"])
def test_path_components_are_safe_and_reversible(value: str) -> None:
    component = path_component(value)
    assert "/" not in component and component not in (".", "..", "")
    assert not component.startswith(".")
    assert from_path_component(component) == value


def test_sandbox_follows_the_mesos_layout() -> None:
    paths = AgentPaths(Path("/w"))
    assert paths.sandbox("a", "f", "e", "c") == Path(
        "/w/slaves/a/frameworks/f/executors/e/runs/c"
    )
