"""A scheduler that records everything it is told, for tests that drive real clusters."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from frameworks import Scheduler, SchedulerDriver, state_name
from protos import mesos_pb2
from tests.integration.cluster import DEFAULT_TIMEOUT, wait_for

OfferHandler = Callable[[SchedulerDriver, list[mesos_pb2.Offer]], None]


@dataclass
class RecordingScheduler(Scheduler):
    """Keeps updates, offers and errors; `on_offers` decides what to do with offers
    (by default they are declined for one second)."""

    on_offers: OfferHandler | None = None
    framework_id: str | None = None
    registrations: int = 0
    reregistrations: int = 0
    updates: list[mesos_pb2.TaskStatus] = field(default_factory=list)
    offers: list[mesos_pb2.Offer] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lost_agents: list[str] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def registered(
        self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
        master_info: mesos_pb2.MasterInfo,
    ) -> None:
        self.framework_id = framework_id.value
        self.registrations += 1

    def reregistered(self, driver: SchedulerDriver, master_info: mesos_pb2.MasterInfo) -> None:
        self.reregistrations += 1

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        with self.lock:
            self.offers.extend(offers)
        if self.on_offers is not None:
            self.on_offers(driver, offers)
        else:
            for offer in offers:
                driver.decline_offer(offer.id, filters=1.0)

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        with self.lock:
            self.updates.append(status)

    def framework_message(
        self, driver: SchedulerDriver, executor_id: mesos_pb2.ExecutorID,
        agent_id: mesos_pb2.AgentID, data: bytes,
    ) -> None:
        with self.lock:
            self.messages.append(data)

    def agent_lost(self, driver: SchedulerDriver, agent_id: mesos_pb2.AgentID) -> None:
        with self.lock:
            self.lost_agents.append(agent_id.value)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def states(self, task_id: str) -> list[str]:
        """The task's states in the order they arrived."""
        with self.lock:
            return [state_name(u) for u in self.updates if u.task_id.value == task_id]

    def last(self, task_id: str) -> mesos_pb2.TaskStatus | None:
        with self.lock:
            matching = [u for u in self.updates if u.task_id.value == task_id]
        return matching[-1] if matching else None

    def wait_for_state(
        self, task_id: str, state: str, timeout: float = DEFAULT_TIMEOUT
    ) -> mesos_pb2.TaskStatus:
        def reached() -> mesos_pb2.TaskStatus | None:
            with self.lock:
                for update in self.updates:
                    if update.task_id.value == task_id and state_name(update) == state:
                        return update
            return None

        return wait_for(reached, f"task {task_id} to reach {state} (saw {self.states(task_id)})",
                        timeout)
