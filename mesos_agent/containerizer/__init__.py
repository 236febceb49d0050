"""Containerizers run a container's process tree and contain it; isolators hook into that.

`Containerizer` and `Isolator` are the interfaces; `PosixContainerizer` is the only
implementation so far (a process group per container, no resource isolation yet).
"""

from __future__ import annotations

from mesos_agent.containerizer.base import (
    Containerizer,
    ContainerLaunchError,
    Isolator,
    Termination,
    stop_container,
)
from mesos_agent.containerizer.posix import PosixContainerizer
from mesos_agent.containers import ContainerConfig, ContainerProcess

__all__ = [
    "ContainerConfig",
    "ContainerLaunchError",
    "ContainerProcess",
    "Containerizer",
    "Isolator",
    "PosixContainerizer",
    "Termination",
    "stop_container",
]
