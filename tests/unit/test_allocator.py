"""The allocator with a fake clock: fairness, filters, suppression, weights, membership.

Frameworks here use the default role `*` unless a test is about roles; tests of the role tree,
quota, GPUs and agent deactivation are in test_allocator_roles.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from mesos_master.allocator import DEFAULT_MIN_ALLOCATABLE, Allocator, Grant
from mesos_runtime.clock import FakeClock
from mesos_values.resources import Resources

R = Resources.parse


class Harness:
    """An allocator whose offers are recorded instead of sent."""

    def __init__(self, min_allocatable: Sequence[Resources] = DEFAULT_MIN_ALLOCATABLE) -> None:
        self.clock = FakeClock()
        self.grants: list[tuple[str, list[Grant]]] = []
        self.allocator = Allocator(clock=self.clock, offer_callback=self._record,
                                   min_allocatable=min_allocatable)

    def _record(self, framework_id: str, grants: Sequence[Grant]) -> None:
        self.grants.append((framework_id, list(grants)))

    def take_any_role(self) -> list[tuple[str, dict[str, Resources]]]:
        """The offers made since the last take, by framework then agent."""
        grants, self.grants = self.grants, []
        return [(fid, {g.agent_id: g.resources for g in made}) for fid, made in grants]

    def take(self) -> list[tuple[str, dict[str, Resources]]]:
        """As `take_any_role`, checking that every offer is for the default role."""
        assert all(g.role == "*" for _, made in self.grants for g in made)
        return self.take_any_role()

    def decline(self, framework_id: str, by_agent: Mapping[str, Resources],
                refuse_seconds: float | None = None) -> None:
        for agent_id, resources in by_agent.items():
            self.allocator.recover_resources(
                framework_id, "*", agent_id, resources, refuse_seconds
            )


@pytest.fixture
def h() -> Harness:
    return Harness()


def test_offers_whole_agent_to_lowest_share(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:4;mem:1024;ports:[31000-32000]"))
    a.add_framework("f1")
    assert a.pending
    assert a.allocate() == 1
    assert h.take() == [("f1", {"s1": R("cpus:4;mem:1024;ports:[31000-32000]")})]
    assert a.available("s1") == Resources.EMPTY
    assert a.allocation("f1") == {"s1": R("cpus:4;mem:1024;ports:[31000-32000]")}
    # f1: max(4/4, 1024/1024) = 1
    assert a.dominant_share("f1") == pytest.approx(1.0)
    assert not a.pending
    assert a.allocate() == 0


def test_one_callback_per_framework_per_pass(h: Harness) -> None:
    a = h.allocator
    for i in range(4):
        a.add_agent(f"s{i}", R("cpus:1;mem:100"))
    a.add_framework("f1")
    a.add_framework("f2")
    assert a.allocate() == 4
    offers = dict(h.take())
    # total <4 cpus>; each agent goes to the lowest share: f1, f2, f1, f2
    assert offers == {"f1": {"s0": R("cpus:1;mem:100"), "s2": R("cpus:1;mem:100")},
                      "f2": {"s1": R("cpus:1;mem:100"), "s3": R("cpus:1;mem:100")}}


def test_drf_paper_example(h: Harness) -> None:
    """Ghodsi et al.: <9 cpus, 18 mem>; A's tasks need <1, 4>, B's <3, 1>. A runs 3, B runs 2."""
    a = h.allocator
    a.add_agent("s1", R("cpus:9;mem:18"))
    a.add_framework("A")
    a.add_framework("B")
    task = {"A": R("cpus:1;mem:4"), "B": R("cpus:3;mem:1")}
    tasks = {"A": 0, "B": 0}
    for _ in range(20):
        if a.allocate() == 0:
            break
        for framework_id, by_agent in h.take():
            offered = by_agent["s1"]
            if offered.contains(task[framework_id]):
                tasks[framework_id] += 1
                a.recover_resources(framework_id, "*", "s1", offered - task[framework_id], 0)
            else:
                a.recover_resources(framework_id, "*", "s1", offered, 0)
    # A <3 cpus, 12 mem>: max(3/9, 12/18) = 2/3 ; B <6 cpus, 2 mem>: max(6/9, 2/18) = 2/3
    # left <0 cpus, 4 mem> is below min_allocatable (cpus:0.01 or mem:32): nothing more to offer
    assert tasks == {"A": 3, "B": 2}
    assert a.dominant_share("A") == pytest.approx(2 / 3)
    assert a.dominant_share("B") == pytest.approx(2 / 3)
    assert a.available("s1") == R("mem:4")


def test_filter_blocks_until_it_expires(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:2;mem:256"))
    a.add_framework("f1")
    a.allocate()
    [(_, offer)] = h.take()
    h.decline("f1", offer, refuse_seconds=5)
    assert a.next_wakeup() == h.clock.now() + 5
    a.allocate()
    assert h.take() == []  # filtered, and nobody else wants it
    assert a.available("s1") == R("cpus:2;mem:256")
    h.clock.advance(4.9)
    assert not a.pending
    assert a.allocate() == 0
    h.clock.advance(0.1)
    assert a.pending
    assert a.allocate() == 1
    assert h.take() == [("f1", offer)]
    assert a.next_wakeup() is None


def test_filtered_agent_goes_to_next_framework(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:2;mem:256"))
    a.add_framework("f1")
    a.add_framework("f2")
    a.allocate()
    [(first, offer)] = h.take()
    assert first == "f1"  # tie at share 0, f1 was added first
    h.decline("f1", offer, refuse_seconds=5)
    a.allocate()
    assert h.take() == [("f2", offer)]


def test_filter_bypassed_when_more_resources_free(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:4;mem:512"))
    a.add_framework("f1")
    a.allocate()
    [(_, offer)] = h.take()
    # f1 launches a task on <1 cpu, 128 mem> and refuses the rest for a long time
    a.recover_resources("f1", "*", "s1", R("cpus:3;mem:384"), refuse_seconds=3600)
    a.allocate()
    assert h.take() == []
    # the task ends: <4, 512> available is no longer within the refused <3, 384>
    a.recover_resources("f1", "*", "s1", R("cpus:1;mem:128"))
    assert a.allocate() == 1
    assert h.take() == [("f1", {"s1": offer["s1"]})]


def test_zero_or_none_refuse_seconds_installs_no_filter(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:1;mem:64"))
    a.add_framework("f1")
    for refuse in (None, 0, -1):
        a.allocate()
        [(_, offer)] = h.take()
        h.decline("f1", offer, refuse_seconds=refuse)
    assert a.next_wakeup() is None
    assert a.allocate() == 1


def test_suppress_and_revive(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:1;mem:64"))
    a.add_framework("f1")
    a.suppress("f1")
    assert a.allocate() == 0
    a.revive("f1")
    assert a.allocate() == 1
    [(_, offer)] = h.take()
    h.decline("f1", offer, refuse_seconds=60)
    assert a.allocate() == 0
    a.revive("f1")  # clears the filter
    assert a.next_wakeup() is None
    assert a.allocate() == 1
    assert h.take() == [("f1", offer)]


def test_weights_share_proportionally(h: Harness) -> None:
    a = h.allocator
    for i in range(30):
        a.add_agent(f"s{i}", R("cpus:1;mem:64"))
    a.set_weight("*", 2)  # weights belong to roles; "*" is one like any other
    a.add_framework("heavy")
    a.add_framework("light", ["light"])
    a.allocate()
    counts = {fid: len(by_agent) for fid, by_agent in h.take_any_role()}
    # role * k/30/2 vs role light m/30: DRF equalises them, so heavy gets 20 agents, light 10
    assert counts == {"heavy": 20, "light": 10}
    assert a.role_share("*") == pytest.approx(a.role_share("light"))


def test_update_weight_changes_next_offers(h: Harness) -> None:
    a = h.allocator
    for i in range(4):
        a.add_agent(f"s{i}", R("cpus:1;mem:64"))
    a.add_framework("f1", ["r1"])
    a.add_framework("f2", ["r2"])
    a.allocate()
    for grants in h.grants:  # 2 agents each; all of it comes back
        for grant in grants[1]:
            a.recover_resources(grants[0], grant.role, grant.agent_id, grant.resources)
    h.take_any_role()
    a.set_weight("r2", 3)
    a.allocate()
    # s0: tie at 0 -> r1 (1/4 = 0.25); s1: r2 (0) -> 1/4/3 = 0.083; s2: r2 -> 2/4/3 = 0.167;
    # s3: r2 (0.167 < 0.25) -> 3/4/3 = 0.25
    assert {fid: sorted(by_agent) for fid, by_agent in h.take_any_role()} == {
        "f1": ["s0"], "f2": ["s1", "s2", "s3"]}
    assert a.role_share("r2") == pytest.approx(0.25)
    assert a.dominant_share("f2") == pytest.approx(0.75)  # of the cluster, unweighted


def test_deactivated_framework_gets_no_offers(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:1;mem:64"))
    a.add_framework("f1", active=False)
    assert a.allocate() == 0
    a.activate_framework("f1")
    assert a.allocate() == 1
    [(_, offer)] = h.take()
    a.deactivate_framework("f1")
    assert a.allocation("f1") == offer  # deactivation keeps what it holds
    h.decline("f1", offer)
    assert a.allocate() == 0


def test_remove_framework_frees_its_resources(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:1;mem:64"))
    a.add_framework("f1")
    a.allocate()
    h.take()
    a.add_framework("f2")
    a.remove_framework("f1")
    a.remove_framework("f1")  # idempotent
    assert a.allocate() == 1
    assert h.take() == [("f2", {"s1": R("cpus:1;mem:64")})]
    a.recover_resources("f1", "*", "s1", R("cpus:1"))  # late news about f1 is ignored
    with pytest.raises(KeyError, match="unknown framework"):
        a.allocation("f1")


def test_remove_agent(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:1;mem:64"))
    a.add_agent("s2", R("cpus:3;mem:64"))
    a.add_framework("f1")
    a.allocate()
    h.take()
    a.recover_resources("f1", "*", "s2", R("cpus:3;mem:64"), refuse_seconds=10)
    a.remove_agent("s1")
    a.remove_agent("s1")  # idempotent
    assert a.allocation("f1") == {}
    # total is now s2's <3 cpus, 64 mem>; f1 holds nothing
    assert a.dominant_share("f1") == 0.0
    a.remove_agent("s2")
    assert a.next_wakeup() is None  # its filter went with it
    with pytest.raises(KeyError, match="unknown agent"):
        a.available("s2")
    a.recover_resources("f1", "*", "s2", R("cpus:1"))  # late news about s2 is ignored
    assert a.allocate() == 0


def test_min_allocatable() -> None:
    h = Harness()
    a = h.allocator
    a.add_agent("crumbs", R("cpus:0.005;mem:31;disk:1000"))
    a.add_agent("cpu_only", R("cpus:0.01"))
    a.add_agent("mem_only", R("mem:32"))
    a.add_framework("f1")
    a.allocate()
    # cpus 0.005 < 0.01 and mem 31 < 32: "crumbs" is not offered
    assert h.take() == [("f1", {"cpu_only": R("cpus:0.01"), "mem_only": R("mem:32")})]

    strict = Harness(min_allocatable=[R("cpus:1;mem:128")])
    strict.allocator.add_agent("small", R("cpus:1;mem:64"))
    strict.allocator.add_framework("f1")
    assert strict.allocator.allocate() == 0


def test_reregistered_agent_reports_used_resources(h: Harness) -> None:
    a = h.allocator
    a.add_framework("f1")
    a.add_agent("s1", R("cpus:4;mem:400"), used={"f1": {"*": R("cpus:1;mem:100")},
                                                "f9": {"*": R("cpus:2;mem:100")}})
    # f9 is not known yet: its resources are held but it gets no offers
    assert a.allocate() == 1
    assert h.take() == [("f1", {"s1": R("cpus:1;mem:200")})]
    assert a.allocation("f1") == {"s1": R("cpus:2;mem:300")}
    # f9 re-subscribes: it is adopted with what the agent reported
    a.add_framework("f9")
    assert a.allocation("f9") == {"s1": R("cpus:2;mem:100")}
    with pytest.raises(ValueError, match="already added"):
        a.add_framework("f9")
    # f9 finishes its tasks; f9: 0 < f1: 0.75 so f9 gets them
    a.recover_resources("f9", "*", "s1", R("cpus:2;mem:100"))
    a.allocate()
    assert h.take() == [("f9", {"s1": R("cpus:2;mem:100")})]


def test_recovered_framework_forgotten_once_idle(h: Harness) -> None:
    a = h.allocator
    a.add_agent("s1", R("cpus:4;mem:400"), used={"ghost": {"*": R("cpus:4;mem:400")}})
    a.add_framework("f1")
    assert a.allocate() == 0
    a.recover_resources("ghost", "*", "s1", R("cpus:4;mem:400"))
    with pytest.raises(KeyError):
        a.allocation("ghost")
    assert a.allocate() == 1


def test_rejects_inconsistent_input(h: Harness) -> None:
    a = h.allocator
    with pytest.raises(ValueError, match="in use"):
        a.add_agent("s1", R("cpus:1"), used={"f1": {"*": R("cpus:2")}})
    a.add_agent("s1", R("cpus:1;mem:64"))
    with pytest.raises(ValueError, match="already added"):
        a.add_agent("s1", R("cpus:1"))
    a.add_framework("f1")
    with pytest.raises(ValueError, match="cannot give back"):
        a.recover_resources("f1", "*", "s1", R("cpus:1"))
    with pytest.raises(KeyError, match="unknown framework"):
        a.suppress("nope")


def test_event_driven_pass_touches_only_changed_agents(h: Harness) -> None:
    a = h.allocator
    for i in range(50):
        a.add_agent(f"s{i}", R("cpus:1;mem:64"))
    a.add_framework("f1")
    a.add_framework("f2")
    assert a.allocate() == 50
    h.take()
    assert not a.pending
    a.recover_resources("f1", "*", "s0", R("cpus:1;mem:64"))
    assert a.pending
    assert a.allocate() == 1
    # f1 dropped to 24/50 < f2's 25/50, so it is offered s0 again
    assert h.take() == [("f1", {"s0": R("cpus:1;mem:64")})]


def test_unsuppressed_framework_reconsiders_every_agent(h: Harness) -> None:
    a = h.allocator
    a.add_framework("f1")
    a.suppress("f1")
    for i in range(3):
        a.add_agent(f"s{i}", R("cpus:1;mem:64"))
    assert a.allocate() == 0
    assert not a.pending
    a.revive("f1")
    assert a.pending
    assert a.allocate() == 3
