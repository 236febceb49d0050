"""The containerizer and isolator interfaces, and the values they exchange."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mesos_agent.containers import ContainerConfig, ContainerProcess, LaunchInfo
from mesos_values.resources import Resources
from protos import mesos_pb2

_Reason = mesos_pb2.TaskStatus.Reason


@dataclass(frozen=True, slots=True)
class Limitation:
    """A limit an isolator enforced on a container (which then was destroyed): the
    `TaskStatus` reason, e.g. REASON_CONTAINER_LIMITATION_MEMORY, and a message with the limit
    and the usage."""

    reason: _Reason.ValueType
    message: str


@dataclass(frozen=True, slots=True)
class Termination:
    """How a container's root process ended; both fields None when that is unknown.
    `limitation` says which limit, if any, ended it."""

    exit_code: int | None
    signal: int | None
    limitation: Limitation | None = field(default=None, compare=False)

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
    """The container could not be started; the message says why, `reason` is the
    `TaskStatus` reason to report (REASON_CONTAINER_LAUNCH_FAILED unless more is known)."""

    def __init__(
        self, message: str, reason: _Reason.ValueType = _Reason.REASON_CONTAINER_LAUNCH_FAILED
    ) -> None:
        super().__init__(message)
        self.reason = reason


class FetchError(Exception):
    """A URI could not be fetched into a sandbox; the message names the URI and the cause."""


class Fetcher(Protocol):
    """Fetches a command's URIs into a container's sandbox before the container starts."""

    async def fetch(
        self, uris: Sequence[mesos_pb2.CommandInfo.URI], sandbox: Path, user: str
    ) -> None:
        """Fetch every URI into `sandbox` (owned by `user` when not empty); raises FetchError."""
        ...


class Isolator(Protocol):
    """Hooks around a container's life, e.g. putting it into cgroups (Mesos' isolator
    interface). Every hook but `prepare` may be called for a container it has not prepared
    (it then does nothing)."""

    name: str
    """The `--isolation` name, e.g. "cgroups/mem"."""
    enforces_limits: bool
    """Whether `watch` may ever resolve or has work to do (the containerizer calls `watch`
    only on these)."""

    async def recover(
        self, containers: Sequence[ContainerProcess], orphans: Collection[str]
    ) -> None:
        """After an agent restart: take back `containers` (those still alive) and clean up
        what it holds for `orphans` (ids of this agent's containers that are not alive; never
        touch containers of other agents on the host)."""
        ...

    async def prepare(self, config: ContainerConfig) -> LaunchInfo | None:
        """Before the process starts: set up, and say what the process must do before exec."""
        ...

    async def isolate(self, container_id: str, pid: int) -> None:
        """Right after the process started."""
        ...

    async def watch(self, container_id: str) -> Limitation:
        """Resolves when the container exceeds a limit this isolator enforces (never, if it
        enforces none); the containerizer then destroys the container."""
        ...

    async def limitation(self, container_id: str) -> Limitation | None:
        """Asked once the container's root has ended: a limit it reached that `watch` has not
        reported yet (e.g. the OOM killer ended the root before its notification was read)."""
        ...

    async def update(self, container_id: str, resources: Resources) -> None:
        """The container's resources changed."""
        ...

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        """What this isolator measures of the container (fields it does not know unset)."""
        ...

    async def cleanup(self, container_id: str) -> None:
        """After the container's processes are gone."""
        ...


class NoopIsolator:
    """An isolator that does nothing: subclasses override the hooks they need."""

    name = "noop"
    enforces_limits = False

    async def recover(
        self, containers: Sequence[ContainerProcess], orphans: Collection[str]
    ) -> None:
        return None

    async def prepare(self, config: ContainerConfig) -> LaunchInfo | None:
        return None

    async def isolate(self, container_id: str, pid: int) -> None:
        return None

    async def watch(self, container_id: str) -> Limitation:
        await asyncio.Future()  # never resolves
        raise AssertionError("unreachable")

    async def limitation(self, container_id: str) -> Limitation | None:
        return None

    async def update(self, container_id: str, resources: Resources) -> None:
        return None

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        return mesos_pb2.ResourceStatistics()

    async def cleanup(self, container_id: str) -> None:
        return None


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

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        """The container's resource usage now; raises KeyError for an unknown container."""
        ...

    def containers(self) -> list[ContainerProcess]:
        """Containers currently known (alive or not yet destroyed)."""
        ...

    def live_ids(self) -> set[str]:
        """Ids of the containers known or being launched: their sandboxes are in use."""
        ...

    async def destroy(self, container_id: str) -> Termination:
        """Kill whatever is left of the container, wait for its root, run isolator cleanup."""
        ...

    def forget(self, container_id: str) -> None:
        """Drop the record of a destroyed container."""
        ...

    async def run_check(self, container_id: str, argv: Sequence[str]) -> bool:
        """Run a health check command in the container (its root filesystem and namespaces
        when it has an image, else in its sandbox with its environment); whether it exited 0.
        Cancelled, it kills the command."""
        ...

    async def reclaim_disk(self) -> None:
        """Free disk the containerizer keeps for later use (unused image layers), as the
        work directory's disk fills."""
        ...

    async def run(self) -> None:
        """Background work (e.g. keeping premade cgroups ready) for as long as the agent
        runs, until cancelled; it cleans up after itself."""
        ...

    async def recover(
        self, containers: Iterable[ContainerProcess], owned: Collection[str] = ()
    ) -> set[str]:
        """Re-attach to checkpointed containers; returns the ids still alive. `owned` are the
        ids of every container this agent has a sandbox for: the isolators clean up those
        that are not alive."""
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
