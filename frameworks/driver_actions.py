"""For framework services built on the SDK (Marathon, the batch framework): `DriverActions`,
a core's `SchedulerActions` done by a `SchedulerDriver`, and `service_framework_info`, the
FrameworkInfo such a service subscribes with."""

from __future__ import annotations

import getpass
from collections.abc import Sequence

from frameworks.driver import SchedulerDriver
from protos import mesos_pb2

__all__ = ["DriverActions", "service_framework_info"]


class DriverActions:
    """Launch, decline, kill, revive, suppress and reconcile through `driver`."""

    def __init__(self, driver: SchedulerDriver) -> None:
        self.driver = driver

    def launch(self, offer_id: str, tasks: Sequence[mesos_pb2.TaskInfo], *,
               refuse_seconds: float | None = None) -> None:
        """Launch `tasks` on one offer (its unused resources are declined, for
        `refuse_seconds` when given)."""
        self.driver.launch_tasks(offer_id, tasks, filters=refuse_seconds)

    def decline(self, offer_id: str, refuse_seconds: float) -> None:
        """Decline an offer, keeping its resources away for `refuse_seconds`."""
        self.driver.decline_offer(offer_id, filters=refuse_seconds)

    def kill(self, task_id: str, agent_id: str, grace_seconds: float | None) -> None:
        """Kill a task (with `grace_seconds` between SIGTERM and SIGKILL when given)."""
        self.driver.kill_task(task_id, agent_id or None, grace_seconds)

    def revive(self) -> None:
        """Ask for offers again (clears decline filters)."""
        self.driver.revive_offers()

    def suppress(self) -> None:
        """Stop offers until `revive`."""
        self.driver.suppress_offers()

    def reconcile(self, tasks: Sequence[tuple[str, str]]) -> None:
        """Ask for the state of (task id, agent id) pairs; nothing when there are none."""
        if tasks:
            self.driver.reconcile_tasks(tasks)


def service_framework_info(
    name: str,
    *,
    role: str,
    user: str | None,
    failover_timeout: float,
    hostname: str,
    webui_url: str,
    framework_id: str | None = None,
    gpu_resources: bool = False,
    task_killing_state: bool = False,
) -> mesos_pb2.FrameworkInfo:
    """The FrameworkInfo of a long-lived, elected framework service (Marathon, batch):
    checkpointing, partition-aware, running tasks as `user` (this process's user when None),
    and re-subscribing with `framework_id` when a previous leader stored one; with
    `gpu_resources` also GPU_RESOURCES (offers of agents with GPUs), with
    `task_killing_state` TASK_KILLING_STATE (TASK_KILLING before a task is stopped)."""
    info = mesos_pb2.FrameworkInfo(
        name=name,
        user=user or getpass.getuser(),
        failover_timeout=failover_timeout,
        checkpoint=True,
        hostname=hostname,
        webui_url=webui_url,
        roles=[role],
        capabilities=[mesos_pb2.FrameworkInfo.Capability(
            type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)],
    )
    if gpu_resources:
        info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.GPU_RESOURCES)
    if task_killing_state:
        info.capabilities.add(type=mesos_pb2.FrameworkInfo.Capability.TASK_KILLING_STATE)
    if framework_id:
        info.id.value = framework_id
    return info
