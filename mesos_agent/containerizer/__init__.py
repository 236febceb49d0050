"""Containerizers run a container's process tree and contain it; isolators hook into that.

`Containerizer` and `Isolator` are the interfaces; `PosixContainerizer` runs every container
(a session per container) with the isolators `--isolation` names (`create.create_containerizer`:
cgroups, namespaces, disk/du; ADR 0014) and the fetcher.
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
