"""The containerizer and isolator interfaces, and the values they exchange."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from mesos_agent.containers import ContainerConfig, ContainerProcess
from mesos_values.resources import Resources


@dataclass(frozen=True, slots=True)
class Termination:
    """How a container's root process ended; both fields None when that is unknown."""

    exit_code: int | None
    signal: int | None

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0

    def describe(self) -> str:
        """Mesos-style wording, e.g. "Command exited with status 1"."""
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = str(self.signal)
            return f"Command terminated by signal {name}"
        if self.exit_code is not None:
            return f"Command exited with status {self.exit_code}"
        return "Command exited with an unknown status (its agent restarted meanwhile)"


class ContainerLaunchError(Exception):
    """The container could not be started; the message says why."""


class Isolator(Protocol):
    """Hooks around a container's life, e.g. putting it into cgroups."""

    async def prepare(self, config: ContainerConfig) -> None:
        """Before the process starts."""
        ...

    async def isolate(self, container_id: str, pid: int) -> None:
        """Right after the process started."""
        ...

    async def update(self, container_id: str, resources: Resources) -> None:
        """The container's resources changed."""
        ...

    async def cleanup(self, container_id: str) -> None:
        """After the container's processes are gone."""
        ...


class Containerizer(Protocol):
    """Launches, watches and tears down containers."""

    async def launch(self, config: ContainerConfig) -> ContainerProcess:
        """Start the container; raises ContainerLaunchError."""
        ...

    async def wait(self, container_id: str) -> Termination:
        """Wait until the container's root process has ended (may be called repeatedly)."""
        ...

    async def kill(self, container_id: str, sig: int) -> None:
        """Send `sig` to every process of the container."""
        ...

    async def update(self, container_id: str, resources: Resources) -> None:
        """Apply new resource limits."""
        ...

    async def destroy(self, container_id: str) -> Termination:
        """Kill whatever is left of the container, wait for its root, run isolator cleanup."""
        ...

    def forget(self, container_id: str) -> None:
        """Drop the record of a destroyed container."""
        ...

    async def recover(self, containers: Iterable[ContainerProcess]) -> set[str]:
        """Re-attach to checkpointed containers; returns the ids still alive."""
        ...


async def stop_container(
    containerizer: Containerizer, container_id: str, grace_period: float
) -> Termination:
    """SIGTERM the container, SIGKILL whatever is left after `grace_period`, then clean up."""
    await containerizer.kill(container_id, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace_period):
            await containerizer.wait(container_id)
    return await containerizer.destroy(container_id)
