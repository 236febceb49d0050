"""What a runner hands a containerizer (`ContainerConfig`) and what the agent checkpoints of a
started container (`ContainerProcess`): plain values, shared by the task book, the checkpoints
and the containerizers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mesos_values.resources import Resources

__all__ = ["ContainerConfig", "ContainerProcess"]


@dataclass(frozen=True, slots=True)
class ContainerConfig:
    """Everything needed to start one container."""

    container_id: str
    argv: tuple[str, ...]
    environment: Mapping[str, str]
    sandbox: Path
    resources: Resources
    # The program a `/bin/sh -c` `argv` runs, started without the shell when given (see
    # `environment.argv_without_shell`); the shell runs `argv` if exec'ing it fails.
    direct_argv: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ContainerProcess:
    """A container's root process, as checkpointed: its pid and start time identify it."""

    container_id: str
    pid: int
    start_time: float
    sandbox: Path
