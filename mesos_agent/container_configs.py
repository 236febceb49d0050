"""What a runner asks its containerizer for: the `ContainerConfig` of a command task or of a
custom executor (a new container id, its sandbox, environment, argv and resources).

The seam between the runners (`mesos_agent.command_executor`, `mesos_agent.executors`) and the
containerizer: what a container needs beyond its command (a user, an image, limits) is read from
the TaskInfo or ExecutorInfo here and applied by the containerizer; the task book never sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from mesos_agent.containers import ContainerConfig, ContainerImage, Volume
from mesos_agent.environment import (
    ContainerIds,
    argv_without_shell,
    command_argv,
    executor_environment,
    task_environment,
)
from mesos_agent.ids import random_uuid_string
from mesos_agent.paths import AgentPaths
from mesos_agent.task_book import Task
from mesos_values.resources import Resources
from mesos_values.users import executor_user, task_user
from protos import mesos_pb2

__all__ = ["ContainerConfigs", "container_image"]

class ContainerConfigs:
    """Makes the configs of one agent's containers."""

    def __init__(
        self,
        agent_info: mesos_pb2.AgentInfo,
        paths: AgentPaths,
        *,
        base_environment: Mapping[str, str],
        hostname: str,
        recovery_timeout: float,
        executor_transport: Mapping[str, str] | None = None,
        framework_info: Callable[[str], mesos_pb2.FrameworkInfo | None] = lambda _: None,
    ) -> None:
        """`agent_info` is the agent's own (its id may change); `base_environment` is what
        every container inherits from the agent, `executor_transport` what custom executors
        add to reach it (`executor_tls_environment`); `framework_info` finds a framework's info
        (whose `user` a container runs as when its command names none)."""
        self._framework_info = framework_info
        self._executor_transport = dict(executor_transport or {})
        self._agent_info = agent_info
        self._paths = paths
        self._base_environment = base_environment
        self._hostname = hostname
        self._recovery_timeout = recovery_timeout
        self.agent_endpoint = ""
        """Where executors reach the agent; set once its executor server listens."""

    def for_task(self, task: Task) -> ContainerConfig:
        """A command task's container: the task's command and resources, in its image if it
        names one (then without the agent's own environment: the image has its own)."""
        image = container_image(task.info.container, task.info.command)
        container_id, ids = self._new(task.framework_id, task.executor_id)
        resources = Resources.from_proto_shared(task.info.resources)
        environment = task_environment(
            base={} if image else self._base_environment, ids=ids, task_id=task.id,
            hostname=self._hostname, resources=resources, command=task.info.command,
        )
        user = task_user(task.info, self._framework_info(task.framework_id))
        if image is not None:
            return ContainerConfig(container_id, (), environment, ids.sandbox, resources,
                                   user=user, uris=tuple(task.info.command.uris), image=image)
        return _command_config(container_id, ids, task.info.command, environment, resources,
                               user=user)

    def for_executor(
        self, framework_id: str, info: mesos_pb2.ExecutorInfo, *, token: str,
        resources: Resources | None = None,
    ) -> ContainerConfig:
        """A custom executor's container: its command and `resources` (default: its own), and
        `token`, the secret it authenticates to the agent's `ExecutorLink` with."""
        if container_image(info.container, info.command) is not None:
            raise ValueError("custom executors cannot run in container images on this agent "
                             "(run the executor's tasks in images instead)")
        container_id, ids = self._new(framework_id, info.executor_id.value)
        environment = executor_environment(
            base=self._base_environment, ids=ids, agent_endpoint=self.agent_endpoint,
            hostname=self._hostname, recovery_timeout=self._recovery_timeout,
            command=info.command, transport=self._executor_transport, token=token,
        )
        return _command_config(container_id, ids, info.command, environment,
                               resources or Resources.from_proto(info.resources),
                               user=executor_user(info, self._framework_info(framework_id)))

    def _new(self, framework_id: str, executor_id: str) -> tuple[str, ContainerIds]:
        container_id = random_uuid_string()
        agent_id = self._agent_info.id.value
        sandbox = self._paths.sandbox(agent_id, framework_id, executor_id, container_id)
        return container_id, ContainerIds(agent_id, framework_id, executor_id, sandbox)


def container_image(
    container: mesos_pb2.ContainerInfo, command: mesos_pb2.CommandInfo
) -> ContainerImage | None:
    """The image `container` names (MESOS with `mesos.image`, or DOCKER with `docker.image`,
    both run by this agent's containerizer), None for none; raises ValueError for what this
    agent cannot run."""
    kind = container.type
    if kind == mesos_pb2.ContainerInfo.DOCKER or container.docker.image:
        name, force_pull = container.docker.image, container.docker.force_pull_image
        if not name:
            raise ValueError("a DOCKER container needs docker.image")
    elif container.mesos.image.type == mesos_pb2.Image.APPC:
        raise ValueError("AppC images are not supported (use a Docker image)")
    elif container.mesos.image.docker.name:
        image = container.mesos.image
        name, force_pull = image.docker.name, image.HasField("cached") and not image.cached
    else:
        if container.volumes:
            raise ValueError("volumes need a container image on this agent")
        return None
    volumes = []
    for volume in container.volumes:
        if not volume.host_path.startswith("/"):
            raise ValueError(f"volume {volume.container_path!r}: host_path must be absolute "
                             f"(got {volume.host_path!r})")
        if not volume.container_path:
            raise ValueError(f"volume of {volume.host_path!r} has no container_path")
        volumes.append(Volume(volume.host_path, volume.container_path,
                              read_only=volume.mode == mesos_pb2.Volume.RO))
    return ContainerImage(name, force_pull, command, tuple(volumes))


def _command_config(
    container_id: str,
    ids: ContainerIds,
    command: mesos_pb2.CommandInfo,
    environment: Mapping[str, str],
    resources: Resources,
    *,
    user: str,
) -> ContainerConfig:
    """A container running `command` as `user` in its sandbox (without the shell when it can
    be), with the command's URIs to fetch."""
    return ContainerConfig(container_id, command_argv(command), environment, ids.sandbox,
                           resources, argv_without_shell(command), user=user,
                           uris=tuple(command.uris))
