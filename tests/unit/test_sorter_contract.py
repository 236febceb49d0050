"""One contract for every sorter (DRF and random), then the ordering each one promises.

Shares are written out next to the expectations: share = max_r(allocated_r / total_r) / weight.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from mesos_master.allocator import DRFSorter, RandomSorter, Sorter
from mesos_values.resources import Resources

R = Resources.parse

SORTERS: list[Callable[[], Sorter]] = [DRFSorter, lambda: RandomSorter(rng=random.Random(7))]


@pytest.fixture(params=SORTERS, ids=["drf", "random"])
def sorter(request: pytest.FixtureRequest) -> Sorter:
    factory: Callable[[], Sorter] = request.param
    return factory()


def test_membership_and_activity(sorter: Sorter) -> None:
    sorter.add("a")
    sorter.add("b")
    assert sorted(sorter.sort()) == ["a", "b"]
    assert "a" in sorter
    assert "z" not in sorter
    sorter.deactivate("a")
    sorter.deactivate("a")  # idempotent
    assert sorter.sort() == ["b"]
    assert "a" in sorter  # inactive clients keep their books
    sorter.activate("a")
    sorter.activate("a")
    assert sorted(sorter.sort()) == ["a", "b"]
    sorter.remove("a")
    assert sorter.sort() == ["b"]
    assert "a" not in sorter


def test_rejects_bad_calls(sorter: Sorter) -> None:
    sorter.add("a")
    with pytest.raises(ValueError, match="already added"):
        sorter.add("a")
    with pytest.raises(ValueError, match="positive"):
        sorter.add("b", weight=0)
    with pytest.raises(ValueError, match="positive"):
        sorter.update_weight("a", -1)
    with pytest.raises(KeyError, match="unknown"):
        sorter.activate("ghost")
    with pytest.raises(KeyError, match="unknown"):
        sorter.allocated("ghost", "s1", R("cpus:1"))


def test_allocation_books(sorter: Sorter) -> None:
    sorter.add("a")
    sorter.allocated("a", "s1", R("cpus:1;ports:[1-2]"))
    sorter.allocated("a", "s1", R("cpus:1;ports:[3-3]"))
    sorter.allocated("a", "s2", R("mem:10"))
    assert sorter.allocation("a") == {"s1": R("cpus:2;ports:[1-3]"), "s2": R("mem:10")}
    sorter.unallocated("a", "s1", R("cpus:0.5;ports:[2-2]"))
    assert sorter.allocation("a")["s1"] == R("cpus:1.5;ports:[1-1,3-3]")
    sorter.unallocated("a", "s2", R("mem:10"))
    assert "s2" not in sorter.allocation("a")  # nothing left there: the agent disappears
    with pytest.raises(ValueError, match="cannot give back"):
        sorter.unallocated("a", "s1", R("cpus:2"))
    with pytest.raises(ValueError, match="cannot give back"):
        sorter.unallocated("a", "s9", R("cpus:1"))


def test_share_arithmetic(sorter: Sorter) -> None:
    sorter.add_total(R("cpus:10;mem:100;ports:[1-1000]"))
    sorter.add("a")
    assert sorter.share("a") == 0.0
    sorter.allocated("a", "s1", R("cpus:2;mem:50;ports:[1-1000]"))
    # a: max(2/10 cpus, 50/100 mem) = 0.5; ports are not a scalar and do not count
    assert sorter.share("a") == pytest.approx(0.5)
    sorter.update_weight("a", 2)
    # a: 0.5 / weight 2 = 0.25
    assert sorter.share("a") == pytest.approx(0.25)
    sorter.add_total(R("cpus:10;mem:100"))
    # total <20 cpus, 200 mem>: a: max(2/20, 50/200) / 2 = 0.125
    assert sorter.share("a") == pytest.approx(0.125)
    sorter.remove_total(R("mem:150"))
    # total <20 cpus, 50 mem>: a: max(2/20, 50/50) / 2 = 0.5
    assert sorter.share("a") == pytest.approx(0.5)
    sorter.unallocated("a", "s1", R("mem:50"))
    # a: max(2/20, 0/50) / 2 = 0.05
    assert sorter.share("a") == pytest.approx(0.05)


def test_share_ignores_resources_missing_from_total(sorter: Sorter) -> None:
    sorter.add_total(R("cpus:10"))
    sorter.add("a")
    sorter.allocated("a", "s1", R("cpus:1;gpus:1"))
    # gpus total is 0, so only cpus count: 1/10
    assert sorter.share("a") == pytest.approx(0.1)


def test_inactive_clients_keep_allocation_and_share(sorter: Sorter) -> None:
    sorter.add_total(R("cpus:10"))
    sorter.add("a")
    sorter.allocated("a", "s1", R("cpus:4"))
    sorter.deactivate("a")
    sorter.allocated("a", "s1", R("cpus:1"))
    # a: 5/10
    assert sorter.share("a") == pytest.approx(0.5)
    assert sorter.allocation("a") == {"s1": R("cpus:5")}
    assert sorter.sort() == []


# DRF ordering.


def test_drf_ties_break_by_addition_order() -> None:
    drf = DRFSorter()
    for client in ("c", "a", "b"):
        drf.add(client)
    # all shares 0
    assert drf.sort() == ["c", "a", "b"]


def test_drf_lowest_share_first() -> None:
    drf = DRFSorter()
    drf.add_total(R("cpus:100;mem:100"))
    drf.add("a")
    drf.add("b")
    drf.allocated("a", "s1", R("cpus:5;mem:5"))
    # a: max(5/100, 5/100) = 0.05 ; b: 0
    assert drf.sort() == ["b", "a"]
    drf.allocated("b", "s1", R("cpus:10"))
    # a: 0.05 ; b: 10/100 = 0.1
    assert drf.sort() == ["a", "b"]
    drf.add("c")
    # c: 0 ; a: 0.05 ; b: 0.1
    assert drf.sort() == ["c", "a", "b"]
    drf.allocated("c", "s2", R("mem:20"))
    # a: 0.05 ; b: 0.1 ; c: 20/100 = 0.2
    assert drf.sort() == ["a", "b", "c"]
    drf.unallocated("b", "s1", R("cpus:10"))
    # b: 0 ; a: 0.05 ; c: 0.2
    assert drf.sort() == ["b", "a", "c"]
    drf.deactivate("b")
    drf.allocated("b", "s1", R("cpus:50"))
    drf.activate("b")
    # a: 0.05 ; c: 0.2 ; b: 50/100 = 0.5
    assert drf.sort() == ["a", "c", "b"]


def test_drf_weights() -> None:
    drf = DRFSorter()
    drf.add_total(R("cpus:100"))
    drf.add("a", weight=2)
    drf.add("b")
    drf.allocated("a", "s1", R("cpus:20"))
    drf.allocated("b", "s1", R("cpus:15"))
    # a: 20/100 / 2 = 0.1 ; b: 15/100 = 0.15
    assert drf.sort() == ["a", "b"]
    drf.update_weight("a", 1)
    # a: 0.2 ; b: 0.15
    assert drf.sort() == ["b", "a"]


def test_drf_total_change_reorders() -> None:
    drf = DRFSorter()
    drf.add_total(R("cpus:100;mem:100"))
    drf.add("a")
    drf.add("b")
    drf.allocated("a", "s1", R("cpus:10"))
    drf.allocated("b", "s1", R("mem:5"))
    # a: 10/100 = 0.1 ; b: 5/100 = 0.05
    assert drf.sort() == ["b", "a"]
    drf.add_total(R("cpus:900"))
    # a: 10/1000 = 0.01 ; b: 5/100 = 0.05
    assert drf.sort() == ["a", "b"]
    drf.allocated("a", "s2", R("cpus:50"))  # while the order is being recomputed
    # a: 60/1000 = 0.06 ; b: 0.05
    assert drf.sort() == ["b", "a"]


def test_drf_incremental_order_matches_full_sort() -> None:
    rng = random.Random(42)
    drf = DRFSorter()
    clients = [f"f{i}" for i in range(30)]
    weights = {c: rng.choice([0.5, 1.0, 2.0]) for c in clients}
    for c in clients:
        drf.add(c, weight=weights[c])
    drf.add_total(R("cpus:1000;mem:10000"))
    held: dict[str, Resources] = {c: Resources.EMPTY for c in clients}
    active = set(clients)
    for step in range(2000):
        c = rng.choice(clients)
        roll = rng.random()
        if roll < 0.5:
            r = Resources.from_scalars({"cpus": rng.randint(1, 5), "mem": rng.randint(0, 50)})
            drf.allocated(c, "s", r)
            held[c] += r
        elif roll < 0.8 and held[c]:
            r = Resources.from_scalars({"cpus": held[c].scalar("cpus")})
            drf.unallocated(c, "s", r)
            held[c] -= r
        elif roll < 0.9:
            (drf.deactivate if c in active else drf.activate)(c)
            active ^= {c}
        elif step % 7 == 0:
            drf.add_total(R("cpus:10"))
        else:
            weights[c] = rng.choice([0.5, 1.0, 2.0])
            drf.update_weight(c, weights[c])
        expected = sorted(active, key=lambda x: (drf.share(x), clients.index(x)))
        assert drf.sort() == expected, f"step {step}"


def test_random_sorter_is_weighted() -> None:
    rs = RandomSorter(random.Random(1))
    rs.add("heavy", weight=3)
    rs.add("light", weight=1)
    firsts = sum(rs.sort()[0] == "heavy" for _ in range(4000))
    # P(heavy first) = 3 / (3 + 1) = 0.75
    assert 0.70 < firsts / 4000 < 0.80
