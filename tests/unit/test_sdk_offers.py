"""Reading offers and packing tasks into them (frameworks.offers)."""

from __future__ import annotations

import pytest

from frameworks import (
    OfferBudget,
    offer_cpus,
    offer_disk,
    offer_gpus,
    offer_mem,
    offer_ports,
    offer_resources,
    pick_ports,
    port_resources,
    task_resources,
)
from mesos_values.resources import Resources
from protos import mesos_pb2


def make_offer(resources: str, *, executors: tuple[str, ...] = ()) -> mesos_pb2.Offer:
    offer = mesos_pb2.Offer(
        id=mesos_pb2.OfferID(value="o1"), agent_id=mesos_pb2.AgentID(value="a1"), hostname="h1"
    )
    offer.resources.extend(Resources.parse(resources).to_proto())
    for executor in executors:
        offer.executor_ids.add(value=executor)
    return offer


def test_offer_resources_and_scalar_shortcuts() -> None:
    offer = make_offer("cpus:2.5;mem:1024;disk:500;gpus:1;ports:[31000-31002,32000-32000]")
    assert offer_resources(offer) == Resources.parse(
        "cpus:2.5;mem:1024;disk:500;gpus:1;ports:[31000-31002,32000-32000]"
    )
    assert (offer_cpus(offer), offer_mem(offer), offer_disk(offer), offer_gpus(offer)) == (
        2.5, 1024.0, 500.0, 1.0
    )
    assert offer_ports(offer) == ((31000, 31002), (32000, 32000))


def test_missing_scalars_read_as_zero() -> None:
    offer = make_offer("cpus:1")
    assert offer_mem(offer) == 0.0
    assert offer_ports(offer) == ()


@pytest.mark.parametrize(
    ("ranges", "count", "expected"),
    [
        ("ports:[31000-31010]", 3, [31000, 31001, 31002]),
        ("ports:[31000-31000,31005-31006]", 3, [31000, 31005, 31006]),
        ("ports:[31000-31010]", 0, []),
    ],
    ids=["one-range", "spans-ranges", "none"],
)
def test_pick_ports_takes_lowest(ranges: str, count: int, expected: list[int]) -> None:
    assert pick_ports(Resources.parse(ranges), count) == expected
    assert pick_ports(make_offer(ranges), count) == expected


def test_pick_ports_fails_when_too_few() -> None:
    with pytest.raises(ValueError, match="3 ports wanted but only 2"):
        pick_ports(Resources.parse("ports:[1-2]"), 3)


def test_port_and_task_resources() -> None:
    assert port_resources([31002, 31000, 31001]) == Resources.parse("ports:[31000-31002]")
    assert port_resources([]).is_empty()
    assert task_resources(cpus=0.5, mem=64, ports=[80]) == Resources.parse(
        "cpus:0.5;mem:64;ports:[80-80]"
    )


def test_budget_packs_until_full_with_distinct_ports() -> None:
    budget = OfferBudget(make_offer("cpus:1;mem:100;ports:[31000-31010]"))
    taken = []
    while budget.fits(cpus=0.3, mem=30, ports=2):
        taken.append(budget.take(cpus=0.3, mem=30, ports=2))
    assert len(taken) == 3  # cpus: 3 x 0.3 = 0.9 <= 1 < 1.2
    assert [r.ranges_of("ports") for r in taken] == [
        ((31000, 31001),), ((31002, 31003),), ((31004, 31005),)
    ]
    assert budget.remaining == Resources.parse("cpus:0.1;mem:10;ports:[31006-31010]")


def test_budget_take_rejects_what_does_not_fit() -> None:
    budget = OfferBudget(make_offer("cpus:1;mem:100"))
    assert not budget.fits(cpus=2)
    assert not budget.fits(cpus=0.1, ports=1)
    with pytest.raises(ValueError, match="does not fit"):
        budget.take(cpus=0.5, mem=200)
    assert budget.remaining == Resources.parse("cpus:1;mem:100")


def test_budget_takes_exact_ports() -> None:
    budget = OfferBudget(make_offer("cpus:1;mem:100;ports:[31000-31010]"))
    assert budget.take(ports=[31005]) == Resources.parse("ports:[31005-31005]")
    assert not budget.fits(ports=[31005])


def test_executor_is_charged_once_and_not_when_already_running() -> None:
    executor = mesos_pb2.ExecutorInfo(executor_id=mesos_pb2.ExecutorID(value="e1"))
    executor.resources.extend(Resources.parse("cpus:0.1;mem:32").to_proto())
    budget = OfferBudget(make_offer("cpus:1;mem:100"))
    assert budget.executor_cost(executor) == Resources.parse("cpus:0.1;mem:32")
    budget.charge_executor(executor)
    budget.charge_executor(executor)
    assert budget.remaining == Resources.parse("cpus:0.9;mem:68")
    running = OfferBudget(make_offer("cpus:1;mem:100", executors=("e1",)))
    assert running.executor_cost(executor).is_empty()
