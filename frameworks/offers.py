"""Reading resource offers and carving task-sized pieces out of them.

    offer ──offer_resources()──▶ Resources          (cpus, mem, ports, ... as a value)
    offer ──OfferBudget(offer)──▶ take(cpus=.., mem=.., ports=2) ──▶ Resources for one task
                                  take(...) again for the next task, until fits() says no
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from mesos_values.ranges import Range, merge_ranges
from mesos_values.resources import Resources
from protos import mesos_pb2

__all__ = [
    "OfferBudget",
    "offer_cpus",
    "offer_disk",
    "offer_gpus",
    "offer_mem",
    "offer_ports",
    "offer_resources",
    "pick_ports",
    "port_resources",
    "task_resources",
]


def offer_resources(offer: mesos_pb2.Offer) -> Resources:
    """All resources of `offer` as a `Resources` value."""
    return Resources.from_proto(offer.resources)


def offer_cpus(offer: mesos_pb2.Offer) -> float:
    """CPUs in `offer` (0.0 if none)."""
    return offer_resources(offer).scalar("cpus")


def offer_mem(offer: mesos_pb2.Offer) -> float:
    """Memory in MB in `offer` (0.0 if none)."""
    return offer_resources(offer).scalar("mem")


def offer_disk(offer: mesos_pb2.Offer) -> float:
    """Disk in MB in `offer` (0.0 if none)."""
    return offer_resources(offer).scalar("disk")


def offer_gpus(offer: mesos_pb2.Offer) -> float:
    """GPUs in `offer` (0.0 if none)."""
    return offer_resources(offer).scalar("gpus")


def offer_ports(offer: mesos_pb2.Offer) -> tuple[Range, ...]:
    """The inclusive port ranges in `offer`, sorted and merged."""
    return offer_resources(offer).ranges_of("ports")


def pick_ports(available: Resources | mesos_pb2.Offer, count: int) -> list[int]:
    """The `count` lowest ports of `available`; ValueError when there are fewer."""
    if count < 0:
        raise ValueError(f"cannot pick a negative number of ports ({count})")
    resources = offer_resources(available) if isinstance(available, mesos_pb2.Offer) else available
    picked: list[int] = []
    for begin, end in resources.ranges_of("ports"):
        take = min(end - begin + 1, count - len(picked))
        picked.extend(range(begin, begin + take))
    if len(picked) < count:
        raise ValueError(f"{count} ports wanted but only {len(picked)} available")
    return picked


def port_resources(ports: Iterable[int]) -> Resources:
    """A `ports` ranges resource holding exactly `ports`."""
    ranges = merge_ranges((port, port) for port in ports)
    if not ranges:
        return Resources.EMPTY
    message = mesos_pb2.Resource(name="ports", type=mesos_pb2.Value.RANGES, role="*")
    for begin, end in ranges:
        message.ranges.range.add(begin=begin, end=end)
    return Resources.from_proto([message])


def task_resources(
    *, cpus: float = 0.0, mem: float = 0.0, disk: float = 0.0, gpus: float = 0.0,
    ports: Iterable[int] = (),
) -> Resources:
    """Resources for one task from plain quantities and concrete port numbers."""
    scalars = {"cpus": cpus, "mem": mem, "disk": disk, "gpus": gpus}
    return Resources.from_scalars({k: v for k, v in scalars.items() if v}) + port_resources(ports)


class OfferBudget:
    """What is left of one offer while tasks are packed into it.

    `take()` deducts a task's share (choosing the lowest free ports when a count is given) and
    returns it; the budget also remembers executors already paid for on this agent.
    """

    def __init__(self, offer: mesos_pb2.Offer) -> None:
        self.offer = offer
        self.remaining = offer_resources(offer)
        self._executors = {executor.value for executor in offer.executor_ids}

    @property
    def agent_id(self) -> mesos_pb2.AgentID:
        """The agent the offer is on."""
        return self.offer.agent_id

    def fits(
        self, *, cpus: float = 0.0, mem: float = 0.0, disk: float = 0.0, gpus: float = 0.0,
        ports: int | Sequence[int] = 0, extra: Resources = Resources.EMPTY,
    ) -> bool:
        """Whether a task of this size (plus `extra`, e.g. an executor's share) still fits."""
        try:
            wanted = self._wanted(cpus, mem, disk, gpus, ports)
        except ValueError:
            return False
        return self.remaining.covering(wanted + extra) is not None

    def take(
        self, *, cpus: float = 0.0, mem: float = 0.0, disk: float = 0.0, gpus: float = 0.0,
        ports: int | Sequence[int] = 0,
    ) -> Resources:
        """Deduct a task's resources and return them; ValueError if they do not fit.

        `ports` is a count (the lowest free ports are chosen) or the exact port numbers.
        """
        wanted = self._wanted(cpus, mem, disk, gpus, ports)
        return self.take_resources(wanted)

    def take_resources(self, wanted: Resources) -> Resources:
        """Deduct `wanted` and return what was taken: `wanted` itself, or with resources the
        offer holds reserved for the framework's role standing in for plain ones (unreserved
        first); ValueError if it does not fit."""
        taken = self.remaining.covering(wanted)
        if taken is None:
            raise ValueError(
                f"offer {self.offer.id.value} has {self.remaining or 'nothing'} left; "
                f"{wanted} does not fit"
            )
        self.remaining = self.remaining - taken
        return taken

    def executor_cost(self, executor: mesos_pb2.ExecutorInfo) -> Resources:
        """The executor's resources if it is not yet running (or paid for) on this agent."""
        if executor.executor_id.value in self._executors:
            return Resources.EMPTY
        return Resources.from_proto(executor.resources)

    def charge_executor(self, executor: mesos_pb2.ExecutorInfo) -> None:
        """Deduct the executor's resources once per agent; ValueError if they do not fit."""
        self.take_resources(self.executor_cost(executor))
        self._executors.add(executor.executor_id.value)

    def _wanted(
        self, cpus: float, mem: float, disk: float, gpus: float, ports: int | Sequence[int]
    ) -> Resources:
        chosen = pick_ports(self.remaining, ports) if isinstance(ports, int) else ports
        return task_resources(cpus=cpus, mem=mem, disk=disk, gpus=gpus, ports=chosen)
