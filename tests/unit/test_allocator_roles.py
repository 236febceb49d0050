"""The allocator's role tree: two-level fairness, hierarchy, weights, quota limits, per-role
suppression, multi-role frameworks, GPU gating, excluded resources and agent deactivation.

Shares are written next to the expectations: share = max_r(allocated_r / total_r) / weight.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence

import pytest

from mesos_master.allocator import Allocator, ClusterTotal, Grant, RandomSorter, Sorter
from mesos_runtime.clock import FakeClock
from mesos_values.resources import Resources

R = Resources.parse


class Harness:
    def __init__(self, **options: object) -> None:
        self.clock = FakeClock()
        self.grants: list[tuple[str, Grant]] = []
        self.allocator = Allocator(clock=self.clock, offer_callback=self._record,
                                   **options)  # type: ignore[arg-type]

    def _record(self, framework_id: str, grants: Sequence[Grant]) -> None:
        self.grants.extend((framework_id, grant) for grant in grants)

    def take(self) -> list[tuple[str, str, str, Resources]]:
        """(framework, role, agent, resources) of every grant since the last take."""
        grants, self.grants = self.grants, []
        return [(fid, g.role, g.agent_id, g.resources) for fid, g in grants]

    def agents(self, count: int, resources: str = "cpus:1;mem:100", prefix: str = "s") -> None:
        for i in range(count):
            self.allocator.add_agent(f"{prefix}{i}", R(resources))


@pytest.fixture
def h() -> Harness:
    return Harness()


def per(grants: list[tuple[str, str, str, Resources]], key: int) -> Counter[str]:
    return Counter(grant[key] for grant in grants)


def test_roles_share_fairly_whatever_their_framework_count(h: Harness) -> None:
    # 3 frameworks in "a", 1 in "b": fairness between roles first, so each role gets half
    h.agents(12)
    for name in ("a1", "a2", "a3"):
        h.allocator.add_framework(name, ["a"])
    h.allocator.add_framework("b1", ["b"])
    h.allocator.allocate()
    grants = h.take()
    assert per(grants, 1) == {"a": 6, "b": 6}
    assert per(grants, 0) == {"a1": 2, "a2": 2, "a3": 2, "b1": 6}
    assert h.allocator.role_share("a") == pytest.approx(0.5)


def test_hierarchy_counts_a_subtree_as_one_role(h: Harness) -> None:
    # eng/backend and eng/frontend together compete with ads as "eng"
    h.agents(8)
    h.allocator.add_framework("back", ["eng/backend"])
    h.allocator.add_framework("front", ["eng/frontend"])
    h.allocator.add_framework("ads", ["ads"])
    h.allocator.allocate()
    grants = h.take()
    assert per(grants, 0) == {"ads": 4, "back": 2, "front": 2}
    assert h.allocator.consumed("eng") == R("cpus:4;mem:400")
    assert h.allocator.consumed("eng/backend") == R("cpus:2;mem:200")
    assert h.allocator.roles() == ["ads", "eng", "eng/backend", "eng/frontend"]
    # a role's own frameworks compete with its children (Mesos' "eng/.")
    h.allocator.add_framework("lead", ["eng"])
    for fid, role, agent, resources in grants:
        h.allocator.recover_resources(fid, role, agent, resources)
    h.allocator.allocate()
    # eng and ads split 4/4; inside eng, "lead" (eng/.), backend and frontend take turns
    assert per(h.take(), 0) == {"ads": 4, "lead": 2, "back": 1, "front": 1}


def test_role_weights_divide_shares(h: Harness) -> None:
    h.agents(30)
    h.allocator.set_weight("prod", 2)
    h.allocator.add_framework("p", ["prod"])
    h.allocator.add_framework("d", ["dev"])
    h.allocator.allocate()
    # prod k/30/2 vs dev m/30: equal when prod holds twice as much
    assert per(h.take(), 0) == {"p": 20, "d": 10}
    assert h.allocator.weight("prod") == 2
    with pytest.raises(ValueError, match="positive"):
        h.allocator.set_weight("prod", 0)


def test_weight_of_a_parent_applies_to_its_subtree(h: Harness) -> None:
    h.agents(30)
    h.allocator.set_weight("eng", 2)
    h.allocator.add_framework("x", ["eng/x"])
    h.allocator.add_framework("y", ["eng/y"])
    h.allocator.add_framework("o", ["ops"])
    h.allocator.allocate()
    # eng (x + y) gets twice ops' share; inside eng, x and y split evenly
    assert per(h.take(), 0) == {"x": 10, "y": 10, "o": 10}


def test_multi_role_framework_gets_offers_in_each_role(h: Harness) -> None:
    h.agents(4)
    h.allocator.add_framework("multi", ["a", "b"])
    h.allocator.add_framework("other", ["b"])
    h.allocator.allocate()
    grants = h.take()
    # a: only multi; b: multi and other -> roles split 2/2, inside b other goes first (tie)
    assert per(grants, 1) == {"a": 2, "b": 2}
    assert {(fid, role) for fid, role, _, _ in grants} >= {("multi", "a"), ("other", "b")}
    by_role = h.allocator.allocation_by_role("multi")
    assert sum(len(agents) for agents in by_role.values()) == per(grants, 0)["multi"]


def test_quota_limit_caps_offers_and_the_rest_goes_elsewhere(h: Harness) -> None:
    h.allocator.add_agent("s1", R("cpus:8;mem:800"))
    h.allocator.set_quota("capped", R("cpus:3"))
    h.allocator.add_framework("c", ["capped"])
    h.allocator.add_framework("free", ["other"])
    h.allocator.allocate()
    grants = h.take()
    # "capped" (share 0, added first) takes what its limit allows; the remainder goes on
    assert grants == [("c", "capped", "s1", R("cpus:3;mem:800")),
                      ("free", "other", "s1", R("cpus:5"))]
    assert h.allocator.consumed("capped") == R("cpus:3;mem:800")
    assert h.allocator.quota("capped") == R("cpus:3")


def test_role_at_its_limit_is_passed_over(h: Harness) -> None:
    h.agents(4)
    h.allocator.set_quota("small", R("cpus:1"))
    h.allocator.add_framework("s", ["small"])
    h.allocator.add_framework("big", ["large"])
    h.allocator.allocate()
    assert per(h.take(), 0) == {"s": 1, "big": 3}
    # quota removed: small may grow again once something is free
    h.allocator.set_quota("small", None)
    assert h.allocator.quota("small") is None
    for agent, resources in list(h.allocator.allocation("big").items()):
        h.allocator.recover_resources("big", "large", agent, resources)
    h.allocator.allocate()
    # small (1/4) and large (0) split the 3 free agents: large, small, large
    assert per(h.take(), 0) == {"big": 2, "s": 1}


def test_quota_of_a_parent_limits_its_children(h: Harness) -> None:
    h.agents(6)
    h.allocator.set_quota("eng", R("cpus:2"))
    h.allocator.add_framework("x", ["eng/x"])
    h.allocator.add_framework("y", ["eng/y"])
    h.allocator.add_framework("o", ["ops"])
    h.allocator.allocate()
    grants = h.take()
    assert per(grants, 0)["x"] + per(grants, 0)["y"] == 2
    assert h.allocator.consumed("eng") == R("cpus:2;mem:200")


def test_suppress_and_revive_one_role(h: Harness) -> None:
    h.agents(4)
    h.allocator.add_framework("m", ["a", "b"])
    h.allocator.suppress("m", ["a"])
    h.allocator.allocate()
    assert per(h.take(), 1) == {"b": 4}
    for agent in ("s0", "s1"):
        h.allocator.recover_resources("m", "b", agent, R("cpus:1;mem:100"))
    h.allocator.suppress("m", ["b"])
    assert h.allocator.allocate() == 0
    h.allocator.revive("m", ["a"])
    h.allocator.allocate()
    assert per(h.take(), 1) == {"a": 2}


def test_changing_roles_keeps_what_is_held_in_the_old_role(h: Harness) -> None:
    h.agents(2)
    h.allocator.add_framework("f", ["old"])
    h.allocator.allocate()
    assert per(h.take(), 1) == {"old": 2}
    h.allocator.update_framework("f", ["new"])
    assert h.allocator.consumed("old") == R("cpus:2;mem:200")
    h.allocator.recover_resources("f", "old", "s0", R("cpus:1;mem:100"))
    h.allocator.allocate()
    assert h.take() == [("f", "new", "s0", R("cpus:1;mem:100"))]
    h.allocator.recover_resources("f", "old", "s1", R("cpus:1;mem:100"))
    assert h.allocator.consumed("old") == Resources.EMPTY
    assert list(h.allocator.allocation_by_role("f")) == ["new"]


def test_gpu_agents_only_for_gpu_aware_frameworks(h: Harness) -> None:
    h.allocator.add_agent("gpu", R("cpus:4;mem:400;gpus:2"))
    h.allocator.add_agent("plain", R("cpus:4;mem:400"))
    h.allocator.add_framework("cpu-only")
    h.allocator.allocate()
    assert h.take() == [("cpu-only", "*", "plain", R("cpus:4;mem:400"))]
    h.allocator.add_framework("ml", gpu_aware=True)
    h.allocator.allocate()
    assert h.take() == [("ml", "*", "gpu", R("cpus:4;mem:400;gpus:2"))]


def test_excluded_resources_do_not_count_towards_shares() -> None:
    h = Harness(fair_sharing_excluded=frozenset({"gpus"}))
    h.allocator.add_agent("gpu", R("cpus:1;mem:100;gpus:8"))
    h.allocator.add_agent("s0", R("cpus:1;mem:100"))
    h.allocator.add_agent("s1", R("cpus:1;mem:100"))
    h.allocator.add_framework("ml", ["ml"], gpu_aware=True)
    h.allocator.allocate()
    h.take()  # ml holds everything: cpus 3/3
    h.allocator.recover_resources("ml", "ml", "s0", R("cpus:1;mem:100"))
    h.allocator.recover_resources("ml", "ml", "s1", R("cpus:1;mem:100"))
    # with gpus counted ml's share would be 8/8 = 1; without, it is cpus 1/3
    assert h.allocator.role_share("ml") == pytest.approx(1 / 3)


def test_deactivated_agent_is_not_offered(h: Harness) -> None:
    h.agents(2)
    h.allocator.deactivate_agent("s0")
    h.allocator.add_framework("f")
    h.allocator.allocate()
    assert [grant[2] for grant in h.take()] == ["s1"]
    h.allocator.activate_agent("s0")
    assert h.allocator.allocate() == 1
    assert [grant[2] for grant in h.take()] == ["s0"]
    with pytest.raises(KeyError, match="unknown agent"):
        h.allocator.deactivate_agent("nope")


def test_agent_report_with_roles_adopted_later(h: Harness) -> None:
    h.allocator.add_agent("s1", R("cpus:4;mem:400"),
                          used={"f": {"a": R("cpus:1;mem:100"), "b": R("cpus:2;mem:100")}})
    assert h.allocator.consumed("a") == R("cpus:1;mem:100")
    assert h.allocator.allocate() == 0  # f is not subscribed yet
    h.allocator.add_framework("f", ["a", "b"])
    h.allocator.allocate()
    assert h.take() == [("f", "a", "s1", R("cpus:1;mem:200"))]


def test_random_sorters_drive_the_same_tree() -> None:
    def random_sorter(
        total: ClusterTotal, excluded: frozenset[str], *, per_agent: bool = True
    ) -> Sorter:
        return RandomSorter(total, excluded, rng=random.Random(3), per_agent=per_agent)

    h = Harness(role_sorter=random_sorter, framework_sorter=random_sorter)
    h.agents(20)
    h.allocator.set_quota("q", R("cpus:5"))
    h.allocator.add_framework("a", ["q"])
    h.allocator.add_framework("b", ["r/s"])
    assert h.allocator.allocate() == 20
    grants = h.take()
    assert per(grants, 0)["a"] <= 5
    assert sum(per(grants, 0).values()) == 20


def test_reserved_resources_go_only_to_their_role_and_subroles(h: Harness) -> None:
    h.allocator.add_agent("s1", R("cpus:1;mem:100;cpus(ads):4;mem(ads):400"))
    h.allocator.add_framework("plain")
    h.allocator.allocate()
    assert h.take() == [("plain", "*", "s1", R("cpus:1;mem:100"))]
    h.allocator.add_framework("ads", ["ads/search"])
    h.allocator.allocate()
    assert h.take() == [("ads", "ads/search", "s1", R("cpus(ads):4;mem(ads):400"))]
    assert h.allocator.consumed("ads") == R("cpus:4;mem:400")


def test_converting_allocations_and_free_resources_keeps_quantities(h: Harness) -> None:
    h.allocator.add_agent("s1", R("cpus:4;mem:400"))
    h.allocator.add_framework("f", ["eng"])
    h.allocator.allocate()
    [(_, _, _, offered)] = h.take()
    reserved = R("cpus(eng):2")
    h.allocator.convert_allocation("f", "eng", "s1", R("cpus:2"), reserved)
    assert h.allocator.allocation("f") == {"s1": R("cpus:2;cpus(eng):2;mem:400")}
    h.allocator.recover_resources("f", "eng", "s1", R("cpus:2;cpus(eng):2;mem:400"))
    h.allocator.convert_available("s1", reserved, R("cpus:2"))
    assert h.allocator.available("s1") == offered
    with pytest.raises(ValueError, match="available"):
        h.allocator.convert_available("s1", reserved, R("cpus:2"))


def test_a_role_at_its_cpu_limit_waits_and_comes_back_for_every_agent(h: Harness) -> None:
    h.agents(4)
    h.allocator.set_quota("q", R("cpus:1"))
    h.allocator.add_framework("f", ["q"])
    h.allocator.allocate()
    [(_, _, first, resources)] = h.take()
    # at its limit: the other three agents stay free
    assert h.allocator.allocate() == 0
    h.allocator.recover_resources("f", "q", first, resources)
    h.allocator.allocate()
    # below its limit again: it is offered one agent, whichever, then waits again
    assert len(h.take()) == 1
    h.allocator.set_quota("q", R("cpus:3"))
    assert h.allocator.allocate() == 2


def test_a_zero_quota_set_before_the_role_exists_blocks_it(h: Harness) -> None:
    h.agents(1)
    h.allocator.set_quota("none", R("cpus:0.001"))
    h.allocator.add_framework("f", ["none"])
    h.allocator.allocate()
    [(_, _, _, resources)] = h.take()
    assert resources.scalar("cpus") == 0.001
    assert h.allocator.allocate() == 0


def test_a_framework_s_offer_filters_skip_offers_too_small_for_it(h: Harness) -> None:
    h.allocator.add_agent("small", R("cpus:1;mem:100"))
    h.allocator.add_agent("large", R("cpus:8;mem:800"))
    h.allocator.add_framework("picky", ["r"], min_offers={"r": [R("cpus:4"), R("gpus:1")]})
    h.allocator.add_framework("other", ["s"])
    h.allocator.allocate()
    assert sorted((fid, agent) for fid, _, agent, _ in h.take()) == [
        ("other", "small"), ("picky", "large")]
