"""The `Scheduler` base class: the callbacks a framework overrides.

Every callback may be a plain method or `async def`; the driver calls them one at a time, in
the order the events arrived, on the driver's event loop. A plain callback should return
quickly (it runs on that loop); do slow work in an `async def` callback or another thread.
Driver methods (`launch_tasks`, `decline_offer`, ...) may be called from any callback.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

from protos import mesos_pb2

if TYPE_CHECKING:
    from frameworks.driver import SchedulerDriver

__all__ = ["Scheduler"]


class Scheduler:
    """Base class for framework schedulers; every callback is a no-op by default."""

    def registered(
        self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
        master_info: mesos_pb2.MasterInfo,
    ) -> Awaitable[None] | None:
        """The driver subscribed for the first time; `framework_id` is the framework's id."""
        return None

    def reregistered(
        self, driver: SchedulerDriver, master_info: mesos_pb2.MasterInfo
    ) -> Awaitable[None] | None:
        """The driver subscribed again after a disconnection (same framework id)."""
        return None

    def disconnected(self, driver: SchedulerDriver) -> Awaitable[None] | None:
        """The connection to the master broke; the driver keeps re-subscribing.

        Outstanding offers are void: tasks launched on them come back as TASK_DROPPED (or as
        the master reports invalid launches once the driver has re-subscribed).
        """
        return None

    def resource_offers(
        self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]
    ) -> Awaitable[None] | None:
        """New offers: launch tasks on them (`launch_tasks`) or decline them (`decline_offer`)."""
        return None

    def offer_rescinded(
        self, driver: SchedulerDriver, offer_id: mesos_pb2.OfferID
    ) -> Awaitable[None] | None:
        """An offer is no longer valid (its agent went away or it timed out)."""
        return None

    def status_update(
        self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus
    ) -> Awaitable[None] | None:
        """A task changed state. With implicit acknowledgements (the default) the driver
        acknowledges the update after this returns; if it raises, the update is not
        acknowledged and will be delivered again."""
        return None

    def framework_message(
        self, driver: SchedulerDriver, executor_id: mesos_pb2.ExecutorID,
        agent_id: mesos_pb2.AgentID, data: bytes,
    ) -> Awaitable[None] | None:
        """An executor sent the framework a message (best effort, may be lost)."""
        return None

    def agent_lost(
        self, driver: SchedulerDriver, agent_id: mesos_pb2.AgentID
    ) -> Awaitable[None] | None:
        """An agent was lost; its tasks' updates follow separately."""
        return None

    def executor_lost(
        self, driver: SchedulerDriver, executor_id: mesos_pb2.ExecutorID,
        agent_id: mesos_pb2.AgentID, status: int | None,
    ) -> Awaitable[None] | None:
        """A custom executor exited; `status` is its exit status when known."""
        return None

    def error(self, driver: SchedulerDriver, message: str) -> Awaitable[None] | None:
        """A call was refused by the master, or the framework was removed (the driver then
        aborts) or could not subscribe."""
        return None
