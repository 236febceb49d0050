"""What a runner hands a containerizer (`ContainerConfig`) and what the agent checkpoints of a
started container (`ContainerProcess`): plain values, shared by the task book, the checkpoints
and the containerizers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mesos_values.resources import Resources
from protos import mesos_pb2

__all__ = ["ContainerConfig", "ContainerImage", "ContainerProcess", "LaunchInfo", "Volume"]


@dataclass(frozen=True, slots=True)
class Volume:
    """A host directory or file made visible in an image container."""

    host_path: str
    container_path: str
    read_only: bool = False


@dataclass(frozen=True, slots=True)
class ContainerImage:
    """The image a container runs in (`ContainerInfo`), and the task's command, which is
    merged with the image's Entrypoint and Cmd once the image is known (`oci_spec`)."""

    name: str
    force_pull: bool = False
    command: mesos_pb2.CommandInfo | None = None
    volumes: tuple[Volume, ...] = ()


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
    user: str = ""
    """Who the container runs as (`mesos_values.users`); "" for the agent's own user."""
    uris: tuple[mesos_pb2.CommandInfo.URI, ...] = ()
    """What the fetcher puts into the sandbox before the container starts."""
    image: ContainerImage | None = None
    """The image the container runs in (its `argv` is then empty: the image decides)."""


@dataclass(frozen=True, slots=True)
class LaunchInfo:
    """What isolators ask of a container's root process before it execs its command (Mesos'
    `ContainerLaunchInfo`): plain values, applied by the containerizer's launcher."""

    cgroups: tuple[tuple[str, str], ...] = ()
    """(path, premade) of cgroups to make before joining them: the empty cgroup `premade` (a
    name beside `path`; "" for none) renamed to `path`, else `path` made (ADR 0014)."""
    cgroup_writes: tuple[tuple[str, str], ...] = ()
    """(control file, value) written once `cgroups` exist, before the process joins them: the
    container's limits."""
    cgroup_procs: tuple[str, ...] = ()
    """`cgroup.procs` files the process writes itself into (so nothing escapes its cgroups)."""
    mount_namespace: bool = False
    """A private mount namespace (mounts the container makes stay inside it)."""
    bind_mounts: tuple[tuple[str, str], ...] = ()
    """(source, target) directories bind-mounted inside the mount namespace, e.g. a sandbox
    directory over /tmp."""
    pid_namespace: bool = False
    """A pid namespace with its own /proc: the container sees only its own processes."""
    environment: Mapping[str, str] = field(default_factory=dict)

    def merge(self, other: LaunchInfo) -> LaunchInfo:
        """Both launch infos' requests."""
        return LaunchInfo(
            cgroups=self.cgroups + other.cgroups,
            cgroup_writes=self.cgroup_writes + other.cgroup_writes,
            cgroup_procs=self.cgroup_procs + other.cgroup_procs,
            mount_namespace=self.mount_namespace or other.mount_namespace,
            bind_mounts=self.bind_mounts + other.bind_mounts,
            pid_namespace=self.pid_namespace or other.pid_namespace,
            environment={**self.environment, **other.environment},
        )


@dataclass(frozen=True, slots=True)
class ContainerProcess:
    """A container's root process, as checkpointed: its pid and start time identify it."""

    container_id: str
    pid: int
    start_time: float
    sandbox: Path
