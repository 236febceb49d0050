"""What a runner asks its containerizer for: a new container's ids and its `ContainerConfig`.

The seam between the runners (`mesos_agent.command_executor`, `mesos_agent.executors`) and the
containerizer: what a container needs beyond its command (a user, an image, limits) is added to
`ContainerConfig` here, where both kinds of container are described, and applied by the
containerizer; the task book never sees it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from mesos_agent.containerizer import ContainerConfig
from mesos_agent.environment import ContainerIds, argv_without_shell, command_argv
from mesos_agent.paths import AgentPaths
from mesos_values.resources import Resources
from protos import mesos_pb2

__all__ = ["command_config", "new_container"]


def new_container(
    paths: AgentPaths, agent_id: str, framework_id: str, executor_id: str
) -> tuple[str, ContainerIds]:
    """A fresh container id, and the ids of the container with its sandbox (not created yet)."""
    container_id = str(uuid.uuid4())
    sandbox = paths.sandbox(agent_id, framework_id, executor_id, container_id)
    return container_id, ContainerIds(agent_id, framework_id, executor_id, sandbox)


def command_config(
    container_id: str,
    ids: ContainerIds,
    command: mesos_pb2.CommandInfo,
    environment: Mapping[str, str],
    resources: Resources,
) -> ContainerConfig:
    """A container running `command` in its sandbox (without the shell when it can be)."""
    return ContainerConfig(container_id, command_argv(command), environment, ids.sandbox,
                           resources, argv_without_shell(command))
