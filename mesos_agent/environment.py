"""Environment and argv of the processes the agent launches (pure functions).

Precedence, lowest first: the agent's own environment (minus its `MESOS_*` flags), the
variables the agent defines (`MESOS_*`, `HOST`, `PORT*`), then the CommandInfo's environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mesos_values.resources import Resources
from protos import mesos_pb2

EXECUTOR_TOKEN_VARIABLE = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
"""The variable holding a custom executor's token (Mesos' name); `ExecutorDriver` sends it."""


@dataclass(frozen=True, slots=True)
class ContainerIds:
    """Who a container belongs to."""

    agent_id: str
    framework_id: str
    executor_id: str
    sandbox: Path


def port_environment(resources: Resources) -> dict[str, str]:
    """`PORT0..PORTn` (each port in order), `PORT` (= PORT0) and `PORTS` for a `ports` resource."""
    ports = [
        port for begin, end in resources.ranges_of("ports") for port in range(begin, end + 1)
    ]
    if not ports:
        return {}
    env = {f"PORT{index}": str(port) for index, port in enumerate(ports)}
    env["PORT"] = str(ports[0])
    env["PORTS"] = ",".join(str(port) for port in ports)
    return env


def inherited_environment(agent_environment: Mapping[str, str]) -> dict[str, str]:
    """The part of the agent's environment its children inherit: its own flags and its TLS
    identity (`LIBPROCESS_SSL_*`) stay private."""
    return {k: v for k, v in agent_environment.items()
            if not k.startswith(("MESOS_", "LIBPROCESS_SSL_"))}


def executor_tls_environment(*, tls: bool, ca_file: str | None) -> dict[str, str]:
    """What makes a custom executor dial its agent over TLS (ADR 0013): TLS on, and the CA
    to verify the agent with; never the agent's own certificate or key."""
    if not tls:
        return {}
    env = {"LIBPROCESS_SSL_ENABLED": "true"}
    if ca_file is not None:
        env["LIBPROCESS_SSL_CA_FILE"] = ca_file
    return env


def _container_environment(ids: ContainerIds) -> dict[str, str]:
    return {
        "MESOS_FRAMEWORK_ID": ids.framework_id,
        "MESOS_EXECUTOR_ID": ids.executor_id,
        "MESOS_AGENT_ID": ids.agent_id,
        "MESOS_SANDBOX": str(ids.sandbox),
        "MESOS_DIRECTORY": str(ids.sandbox),
    }


def _command_environment(command: mesos_pb2.CommandInfo) -> dict[str, str]:
    return {v.name: v.value for v in command.environment.variables}


def task_environment(
    *,
    base: Mapping[str, str],
    ids: ContainerIds,
    task_id: str,
    hostname: str,
    resources: Resources,
    command: mesos_pb2.CommandInfo,
) -> dict[str, str]:
    """Environment of a command task run by the built-in command executor."""
    env = dict(base)
    env.update(_container_environment(ids))
    env["MESOS_TASK_ID"] = task_id
    env["HOST"] = hostname
    env.update(port_environment(resources))
    env.update(_command_environment(command))
    return env


def executor_environment(
    *,
    base: Mapping[str, str],
    ids: ContainerIds,
    agent_endpoint: str,
    hostname: str,
    recovery_timeout: float,
    command: mesos_pb2.CommandInfo,
    transport: Mapping[str, str] | None = None,
    token: str = "",
) -> dict[str, str]:
    """Environment of a custom executor (see protos/executor.proto); `transport` is how it
    reaches the agent (`executor_tls_environment`), `token` the secret it proves itself with
    (`EXECUTOR_TOKEN_VARIABLE`; set last: a CommandInfo cannot replace it)."""
    env = dict(base)
    env.update(transport or {})
    env.update(_container_environment(ids))
    env["MESOS_AGENT_ENDPOINT"] = agent_endpoint
    env["MESOS_RECOVERY_TIMEOUT"] = f"{recovery_timeout}secs"
    env["HOST"] = hostname
    env.update(_command_environment(command))
    env.pop(EXECUTOR_TOKEN_VARIABLE, None)
    if token:
        env[EXECUTOR_TOKEN_VARIABLE] = token
    return env


def command_argv(command: mesos_pb2.CommandInfo) -> tuple[str, ...]:
    """`/bin/sh -c value` when `shell` (the default), else `value` run with `arguments`.

    Without a shell, `arguments` is the full argv (arguments[0] included) as in Mesos; when it
    is empty the program runs with no arguments.
    """
    shell = command.shell if command.HasField("shell") else True
    if shell:
        if not command.value:
            raise ValueError("the command is empty")
        return ("/bin/sh", "-c", command.value)
    if not command.value:
        raise ValueError("a command with shell=false needs a value (the program to run)")
    return (command.value, *command.arguments[1:])


# dash's builtins and reserved words: a command naming one of them needs the shell.
_SHELL_WORDS = frozenset({
    ".", ":", "[", "alias", "bg", "break", "cd", "chdir", "command", "continue", "echo", "eval",
    "exec", "exit", "export", "false", "fc", "fg", "getopts", "hash", "jobs", "kill", "local",
    "printf", "pwd", "read", "readonly", "return", "set", "shift", "test", "times", "trap",
    "true", "type", "ulimit", "umask", "unalias", "unset", "wait", "!", "{", "}", "case", "do",
    "done", "elif", "else", "esac", "fi", "for", "if", "in", "then", "until", "while",
})
# Words the shell passes on unchanged: no quoting, expansion, globbing, redirection, operators,
# comments or tilde. `=` is allowed after the first word only (first, it is an assignment).
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_./:,@%+=-]+")
_BLANKS = re.compile(r"[ \t]+")


def argv_without_shell(command: mesos_pb2.CommandInfo) -> tuple[str, ...] | None:
    """The program `/bin/sh -c value` would run, when the shell has nothing else to do.

    For one simple command of plain words (e.g. `sleep 300`) the shell only starts that
    program, as its child (dash) or by exec'ing it (bash); running it directly gives the same
    argv, cwd and environment without a shell in between: one fork, one exec and one idle
    process less per task. A program that dies of a signal is then reported as killed by that
    signal, as with bash, where dash would exit with 128 + the signal number. None when the
    command uses any shell syntax, starts with a builtin, reserved word or assignment, or is
    not a shell command.
    """
    shell = command.shell if command.HasField("shell") else True
    if not shell:
        return None
    words = _BLANKS.split(command.value.strip(" \t"))
    if not words[0] or "=" in words[0] or words[0] in _SHELL_WORDS:
        return None
    if not all(_PLAIN_WORD.fullmatch(word) for word in words):
        return None
    return tuple(words)
