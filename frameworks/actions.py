"""`DriverActions`: what a framework's pure scheduling core asks of the cluster, done by a
`SchedulerDriver` (Marathon's and the batch framework's cores take such an object)."""

from __future__ import annotations

from collections.abc import Sequence

from frameworks.driver import SchedulerDriver
from protos import mesos_pb2

__all__ = ["DriverActions"]


class DriverActions:
    """Launch, decline, kill, revive, suppress and reconcile through `driver`."""

    def __init__(self, driver: SchedulerDriver) -> None:
        self.driver = driver

    def launch(self, offer_id: str, tasks: Sequence[mesos_pb2.TaskInfo]) -> None:
        """Launch `tasks` on one offer (its unused resources are declined)."""
        self.driver.launch_tasks(offer_id, tasks)

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
