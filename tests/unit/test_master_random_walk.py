"""Random walks through the master's state machine, checking its books after every step.

Invariants (for every connected agent): what the allocator has available, plus what is out in
offers, plus what non-terminal tasks and executors hold, equals the agent's total; every offer
belongs to a connected framework and a connected agent; no step raises.
"""

from __future__ import annotations

import random

import pytest

from mesos_values.resources import Resources
from mesos_values.task_states import TERMINAL_STATES
from protos import agent_pb2, mesos_pb2
from tests.unit.test_master import Cluster, RecordingOutbox, agent_status, task

STEPS = 400
ACTIVE_STATES = [mesos_pb2.TASK_STARTING, mesos_pb2.TASK_RUNNING]
END_STATES = [mesos_pb2.TASK_FINISHED, mesos_pb2.TASK_FAILED, mesos_pb2.TASK_KILLED]


def check_books(cluster: Cluster) -> None:
    master = cluster.master
    for agent in master.agents.values():
        if not agent.connected:
            assert not agent.offers
            continue
        offered = Resources.EMPTY
        for offer_id in agent.offers:
            offered = offered + master.offers.outstanding[offer_id].resources
        held = Resources.EMPTY
        for used in agent.used_per_framework().values():
            held = held + used
        accounted = master.allocator.available(agent.agent_id) + offered + held
        assert accounted == agent.total, f"{agent.agent_id}: {accounted} != {agent.total}"
    for offer in master.offers.outstanding.values():
        assert master.frameworks[offer.framework_id].connected
        assert master.agents[offer.agent_id].connected


@pytest.mark.parametrize("seed", range(12))
def test_random_walk_keeps_the_books_balanced(seed: int) -> None:
    rng = random.Random(seed)
    cluster = Cluster(agent_ping_timeout=1.0, max_agent_ping_timeouts=2, offer_timeout=3.0)
    master = cluster.master
    task_numbers = iter(range(10**6))

    def some(items: list[str]) -> str | None:
        return rng.choice(items) if items else None

    for _ in range(STEPS):
        frameworks = [f for f, r in master.frameworks.items() if r.connected]
        action = rng.randrange(12)
        if action == 0 and len(master.agents) < 5:
            cluster.add_agent(rng.choice(["cpus:2;mem:2048", "cpus:4;mem:1024;ports:[1-10]"]),
                              hostname=f"h{len(master.agents)}")
        elif action == 1 and len(master.frameworks) < 4:
            cluster.subscribe(f"fw{rng.randrange(100)}", failover_timeout=rng.choice([0, 5]))
        elif action in (2, 3, 4) and (framework_id := some(frameworks)):
            framework = master.frameworks[framework_id]
            offers = [
                o for o in master.offers.outstanding.values() if o.framework_id == framework_id
            ]
            if offers:
                offer = rng.choice(offers)
                if rng.random() < 0.6:
                    launches = [task(f"t{next(task_numbers)}", "cpus:0.5;mem:128")
                                for _ in range(rng.randrange(1, 4))]
                    proto = mesos_pb2.Offer(id=mesos_pb2.OfferID(value=offer.offer_id))
                    cluster.launch(framework, [proto], *launches,
                                   refuse_seconds=rng.choice([0, 1, 10]))
                else:
                    master.decline(framework, [offer.offer_id],
                                   mesos_pb2.Filters(refuse_seconds=rng.choice([0, 2])))
        elif action == 5:
            live = [t for a in master.agents.values() if a.connected for t in a.tasks.values()
                    if t.state not in TERMINAL_STATES]
            if live:
                record = rng.choice(live)
                state = rng.choice(ACTIVE_STATES + END_STATES)
                uuid = f"u{next(task_numbers)}".encode()
                master.status_update(record.agent_id, record.framework_id,
                                     agent_status(master.frameworks[record.framework_id],
                                                  record.task_id, state, uuid))
                framework = master.frameworks.get(record.framework_id)
                if framework is not None and framework.connected and rng.random() < 0.8:
                    master.tasks.acknowledge(framework, record.agent_id, record.task_id, uuid)
        elif action == 6 and (
            agent_id := some([a for a, r in master.agents.items() if r.connected])
        ):
            master.agent_disconnected(agent_id, cluster.agent_outboxes[agent_id])
        elif action == 7 and (agent_id := some([a for a, r in master.agents.items()
                                                if not r.connected])):
            outbox: RecordingOutbox[agent_pb2.MasterMessage] = RecordingOutbox()
            agent = master.agents[agent_id]
            survivors = [t.to_proto() for t in agent.tasks.values() if rng.random() < 0.7]
            reregister = agent_pb2.AgentMessage.Reregister(
                agent_info=agent.info, tasks=survivors,
                frameworks=[f.info for f in master.frameworks.values()],
            )
            master.reregister_agent(reregister, outbox)
            cluster.agent_outboxes[agent_id] = outbox
        elif action == 8 and (framework_id := some(frameworks)):
            framework = master.frameworks[framework_id]
            master.framework_disconnected(framework_id, framework.stream_id)
        elif action == 9 and (framework_id := some(frameworks)):
            rng.choice([master.suppress, master.revive])(master.frameworks[framework_id])
        elif action == 10:
            cluster.clock.advance(rng.choice([0.5, 1.5, 3.0]))
            for agent_id, record in master.agents.items():
                if record.connected and rng.random() < 0.7:
                    master.agent_heartbeat(agent_id)
            master.tick()
        elif action == 11 and (framework_id := some(frameworks)) and rng.random() < 0.3:
            master.teardown(master.frameworks[framework_id])
        master.allocate()
        check_books(cluster)
