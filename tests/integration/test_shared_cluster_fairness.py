"""Marathon and the batch framework share a cluster fairly: while both want more than half of it,
DRF gives each about half; once the batch framework's runs end it suppresses offers and Marathon
gets the cpus it freed.

Eight agents of one cpu each: every agent is one offer, and the master gives each one to the
framework with the lower dominant share, so the split alternates whatever the timing. Both
frameworks want work before the first agent registers (an app of 8 instances, an array run of
16 indices), so neither sees the cluster alone first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.integration.cluster import Cluster, Process, wait_for

pytestmark = pytest.mark.integration

AGENTS = 8
AGENT_RESOURCES = "cpus:1;mem:128;disk:100"
"""Exactly one task of either framework: no remainder is offered around."""
APP = {"id": "/fair/web", "cmd": "sleep 600", "cpus": 1, "mem": 128, "instances": AGENTS,
       "portDefinitions": []}
ARRAY_SIZE = 16
JOB = {"id": "fair.array", "run": {"cmd": "sleep 1", "cpus": 1, "mem": 128,
                                   "arraySize": ARRAY_SIZE}}
FAIR_LOW, FAIR_HIGH = 3.0, 5.0
"""Cpus each framework holds while both want more than half (an even split, give or take one
agent's cpu)."""


@dataclass
class Shared:
    cluster: Cluster
    master: Process
    marathon: httpx.Client
    batch: httpx.Client


@pytest.fixture
def shared(cluster: Cluster) -> Iterator[Shared]:
    """Marathon and the batch framework registered with a master that has no agents yet."""
    _, marathon_url = cluster.start_marathon()
    _, batch_url = cluster.start_batch()
    with httpx.Client(base_url=marathon_url, timeout=10) as marathon, \
            httpx.Client(base_url=batch_url, timeout=10) as batch:
        wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon to register")
        wait_for(lambda: batch.get("/info").json()["frameworkId"], "batch to register")
        yield Shared(cluster, cluster.masters[0], marathon, batch)


@dataclass(frozen=True)
class Sample:
    """What the master says each framework holds at one moment."""

    marathon_cpus: float
    batch_cpus: float
    batch_launched: int
    """Tasks of the batch framework the master has seen, live or completed."""
    batch_suppressed: bool

    @property
    def full(self) -> bool:
        return self.marathon_cpus + self.batch_cpus >= AGENTS

    @property
    def greedy(self) -> bool:
        return max(self.marathon_cpus, self.batch_cpus) > FAIR_HIGH


def sample(master: Process) -> Sample:
    state: dict[str, Any] = httpx.get(f"{master.http_url}/state", timeout=10).json()
    frameworks = {f["name"]: f for f in state["frameworks"]}
    marathon, batch = frameworks["marathon"], frameworks["batch"]
    return Sample(
        marathon_cpus=float(marathon["used_resources"]["cpus"]),
        batch_cpus=float(batch["used_resources"]["cpus"]),
        batch_launched=len(batch["tasks"]) + len(batch["completed_tasks"]),
        batch_suppressed=bool(batch["suppressed"]),
    )


def marathon_running(client: httpx.Client) -> int:
    app: dict[str, Any] = client.get(f"/v2/apps{APP['id']}").json()["app"]
    return int(app["tasksRunning"])


def test_drf_splits_the_cluster_and_marathon_gets_what_batch_leaves(shared: Shared) -> None:
    assert shared.marathon.post("/v2/apps", json=APP).status_code == 201
    assert shared.batch.post("/v1/jobs", json=JOB).status_code == 201
    assert shared.batch.post(f"/v1/jobs/{JOB['id']}/runs").status_code == 201
    for _ in range(AGENTS):
        shared.cluster.start_agent(AGENT_RESOURCES)

    contended: list[Sample] = []

    def contention_over() -> bool:
        """Whether the batch framework launched every index (or a framework took too much)."""
        now = sample(shared.master)
        if now.batch_launched >= ARRAY_SIZE:
            return True
        contended.append(now)  # the batch framework still has indices to launch
        return now.greedy

    wait_for(contention_over, "the batch framework to launch every index", 40)
    greedy = [s for s in contended if s.greedy]
    assert not greedy, f"one framework held more than its share: {greedy}"
    full = [s for s in contended if s.full]
    splits = Counter((s.marathon_cpus, s.batch_cpus) for s in contended)
    print(f"{len(contended)} samples while both wanted more, {len(full)} with the cluster full;"
          f" (marathon, batch) cpus: {dict(splits)}")
    assert len(full) >= 5, f"the cluster was seldom full while both wanted it: {contended}"
    unfair = [s for s in full if not (FAIR_LOW <= s.marathon_cpus <= FAIR_HIGH
                                      and FAIR_LOW <= s.batch_cpus <= FAIR_HIGH)]
    assert not unfair, f"an uneven split while both frameworks wanted more: {unfair}"

    def batch_done() -> bool:
        job: dict[str, Any] = shared.batch.get(f"/v1/jobs/{JOB['id']}",
                                               params={"embed": "historySummary"}).json()
        return int(job["historySummary"]["successCount"]) == 1

    wait_for(batch_done, "the batch run to succeed")

    def suppressed_when_idle() -> Sample | None:
        now = sample(shared.master)
        return now if now.batch_suppressed and now.batch_cpus == 0 else None

    idle = wait_for(suppressed_when_idle, "the idle batch framework to suppress")
    assert idle.batch_launched == ARRAY_SIZE
    wait_for(lambda: marathon_running(shared.marathon) == AGENTS,
             "marathon to run every instance")
    final = sample(shared.master)
    assert final.marathon_cpus == AGENTS and final.batch_cpus == 0
