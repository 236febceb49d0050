"""The Marathon core on a fake clock, fake driver actions and an in-memory store, shared by the
core's unit tests."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from marathon.app_definition import parse_app
from marathon.core import MarathonCore
from marathon.groups import put_app
from marathon.state import Recovered
from mesos_coordination.store import MemorySink
from mesos_runtime.clock import FakeClock
from mesos_values.resources import Resources
from protos import mesos_pb2


@dataclass
class FakeActions:
    launched: list[tuple[str, list[mesos_pb2.TaskInfo]]] = field(default_factory=list)
    launch_refusals: list[float | None] = field(default_factory=list)  # of each launch
    declined: list[str] = field(default_factory=list)
    refusals: list[float] = field(default_factory=list)  # refuse_seconds of each decline
    killed: list[str] = field(default_factory=list)
    reconciled: list[list[tuple[str, str]]] = field(default_factory=list)
    revives: int = 0
    suppressions: int = 0

    def launch(self, offer_id: str, tasks: Sequence[mesos_pb2.TaskInfo], *,
               refuse_seconds: float | None = None) -> None:
        self.launched.append((offer_id, list(tasks)))
        self.launch_refusals.append(refuse_seconds)

    def decline(self, offer_id: str, refuse_seconds: float) -> None:
        self.declined.append(offer_id)
        self.refusals.append(refuse_seconds)

    def kill(self, task_id: str, agent_id: str, grace_seconds: float | None) -> None:
        self.killed.append(task_id)

    def revive(self) -> None:
        self.revives += 1

    def suppress(self) -> None:
        self.suppressions += 1

    def reconcile(self, tasks: Sequence[tuple[str, str]]) -> None:
        self.reconciled.append(list(tasks))


class World:
    """A core with fake actions, an in-memory store and recorded events."""

    def __init__(self, sink: MemorySink | None = None, recovered: Recovered | None = None) -> None:
        self.wall = FakeClock(start=1_700_000_000.0)
        self.actions = FakeActions()
        self.sink = sink or MemorySink()
        self.events: list[dict[str, Any]] = []
        ids = itertools.count()
        self.core = MarathonCore(
            clock=self.wall, wall=self.wall, actions=self.actions, sink=self.sink,
            publish=self.events.append, recovered=recovered,
            id_factory=lambda: f"id-{next(ids)}",
        )
        self._offers = itertools.count()

    def deploy_app(self, body: dict[str, Any], *, force: bool = False) -> str:
        app = parse_app(body)
        plan = self.core.update_root(lambda root: put_app(root, app), force=force)
        self.wall.advance(0.01)
        return plan.id

    def offer(self, host: str = "h1", resources: str = "cpus:4;mem:4096;ports:[31000-31010]"
              ) -> list[mesos_pb2.TaskInfo]:
        offer_id = f"o{next(self._offers)}"
        offer = mesos_pb2.Offer(
            id=mesos_pb2.OfferID(value=offer_id),
            agent_id=mesos_pb2.AgentID(value=f"agent-{host}"),
            hostname=host,
            resources=Resources.parse(resources).to_proto(),
        )
        self.core.resource_offers([offer])
        return [t for o, tasks in self.actions.launched if o == offer_id for t in tasks]

    def update(
        self, task_id: str, state: mesos_pb2.TaskState.ValueType, host: str = "h1"
    ) -> None:
        self.core.status_update(mesos_pb2.TaskStatus(
            task_id=mesos_pb2.TaskID(value=task_id), state=state,
            agent_id=mesos_pb2.AgentID(value=f"agent-{host}"),
        ))

    def event_types(self) -> list[str]:
        return [e["eventType"] for e in self.events]
