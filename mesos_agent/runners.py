"""What the agent's runners of tasks share: the command executor (`command_executor`) and the
custom-executor supervisor (`executors`) start containers through one containerizer, make
their checkpoints durable through one group committer and run their coroutines in the agent's
TaskGroup."""

from __future__ import annotations

from dataclasses import dataclass

from mesos_agent.container_configs import ContainerConfigs
from mesos_agent.containerizer import Containerizer
from mesos_agent.group_commit import GroupCommitter
from mesos_agent.task_book import Spawn
from protos import mesos_pb2

__all__ = ["RunnerContext"]


@dataclass(frozen=True, slots=True)
class RunnerContext:
    """The parts of the agent a runner works with."""

    containerizer: Containerizer
    committer: GroupCommitter
    configs: ContainerConfigs
    spawn: Spawn
    """Starts a long-lived coroutine in the agent's TaskGroup."""
    agent_info: mesos_pb2.AgentInfo
    """The agent's own (its id may change when it registers anew)."""
