"""`SchedulerActions`: what a pure scheduling core (Marathon's, the batch framework's) asks of
the cluster. `frameworks.driver_actions.DriverActions` does it with a `SchedulerDriver`; tests
record the calls.

    core ──SchedulerActions──▶ DriverActions(driver) ──calls──▶ master
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from protos import mesos_pb2

__all__ = ["SchedulerActions"]


class SchedulerActions(Protocol):
    """What a pure scheduling core asks of the cluster (`DriverActions` does it with a driver;
    tests record the calls)."""

    def launch(self, offer_id: str, tasks: Sequence[mesos_pb2.TaskInfo], *,
               refuse_seconds: float | None = None) -> None:
        """Launch `tasks` on one offer; its unused resources are refused for `refuse_seconds`
        (None: the master's default)."""
        ...

    def decline(self, offer_id: str, refuse_seconds: float) -> None:
        """Decline an offer for `refuse_seconds`."""
        ...

    def kill(self, task_id: str, agent_id: str, grace_seconds: float | None) -> None:
        """Kill a task (`agent_id` may be empty when unknown)."""
        ...

    def revive(self) -> None:
        """Ask for offers again."""
        ...

    def suppress(self) -> None:
        """Stop offers until `revive`."""
        ...

    def reconcile(self, tasks: Sequence[tuple[str, str]]) -> None:
        """Ask for the state of (task id, agent id) pairs."""
        ...
