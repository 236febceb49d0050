"""Sums added up late (`Resources.sum_of`, the allocator's sorters and cluster total: ADR 0018)
equal the sums added one by one, rounding and all."""

from __future__ import annotations

from unittest import mock

from hypothesis import given
from hypothesis import strategies as st

from mesos_master.allocator import sorter as sorter_module
from mesos_master.allocator.sorter import ClusterTotal, DRFSorter
from mesos_values.resources import Resources

SCALARS = st.dictionaries(st.sampled_from(["cpus", "mem", "gpus", "cpus(r1)"]),
                          st.floats(0.0005, 1000, allow_nan=False), max_size=3)
BAGS = st.one_of(
    SCALARS.map(lambda s: Resources.parse(";".join(f"{k}:{v:.4f}" for k, v in s.items()))),
    st.just(Resources.parse("cpus:1;ports:[1-5]")), st.just(Resources.EMPTY))


@given(start=BAGS, more=st.lists(BAGS, max_size=8))
def test_a_sum_added_up_late_is_the_sum_added_one_by_one(
    start: Resources, more: list[Resources],
) -> None:
    one_by_one = start
    for bag in more:
        one_by_one = one_by_one + bag
    assert Resources.sum_of(start, more) == one_by_one
    assert Resources.sum_of(start, iter(more)) == one_by_one


@given(steps=st.lists(st.tuples(st.sampled_from(["add", "remove", "read"]), BAGS), max_size=20),
       fold_at=st.integers(1, 5))
def test_the_cluster_total_and_a_clients_quantities_read_as_if_added_one_by_one(
    steps: list[tuple[str, Resources]], fold_at: int,
) -> None:
    with mock.patch.object(sorter_module, "FOLD_AT", fold_at):
        adds_and_reads(steps)


def adds_and_reads(steps: list[tuple[str, Resources]]) -> None:
    total, sorter = ClusterTotal(), DRFSorter(per_agent=False)
    sorter.add("c")
    expected = Resources.EMPTY
    for index, (step, bag) in enumerate(steps):
        quantities = bag.scalar_quantities()
        if step == "add":
            total.add(bag)
            sorter.allocated("c", f"a{index}", bag)
            expected = expected + quantities
        elif step == "remove" and expected.contains(quantities):
            total.remove(bag)
            sorter.unallocated("c", "", bag)
            expected = expected - quantities
        assert step != "read" or (total.quantities, sorter.quantities("c")) == (expected,) * 2
    assert total.quantities == expected
    assert sorter.quantities("c") == expected
