"""Limits on a real master (issue 17): `--rate_limits` refuses a flood of anonymous
subscriptions and agent registrations beyond their queue with RESOURCE_EXHAUSTED while a
principal within its own limit gets in, and `--max_frameworks_per_principal` refuses a
principal's next new framework but not the failover of one it has.

The limits are chosen so that outcomes do not depend on timing: one call per 1,000 seconds
with no queue lets exactly the first call through."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from protos import mesos_pb2
from tests.integration.cluster import Cluster, running_cluster
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.master_calls import connect_agent, subscribe
from tests.integration.test_authentication import metadata

pytestmark = pytest.mark.integration

RATE_LIMITS = {"limits": [{"principal": "", "qps": 0.001, "capacity": 0},
                          {"principal": "marathon", "qps": 1000, "capacity": 1000}]}
"""Anonymous callers: the first call, then nothing for 1,000 seconds; `marathon`: plenty;
`intruder` (no entry, no aggregate default): not limited."""


@pytest.fixture
def limited_cluster(tmp_path: Path) -> Iterator[Cluster]:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": "marathon", "secret": "m-secret"},
        {"principal": "intruder", "secret": "i-secret"}]}))
    flags = [*FAST_MASTER_FLAGS, "--credentials", str(credentials),
             "--rate_limits", json.dumps(RATE_LIMITS), "--max_frameworks_per_principal", "2"]
    with running_cluster(tmp_path, flags) as cluster:
        yield cluster


async def flood(target: str, count: int) -> list[str]:
    info = mesos_pb2.FrameworkInfo(name="flood", user="nobody", failover_timeout=300)
    results = await asyncio.gather(*(subscribe(target, info) for _ in range(count)))
    return [outcome for outcome, _ in results]


def test_anonymous_floods_are_refused_and_principals_within_their_limits_get_in(
    limited_cluster: Cluster,
) -> None:
    target = limited_cluster.master_address
    outcomes = Counter(asyncio.run(flood(target, 30)))
    refusal = ("RESOURCE_EXHAUSTED: too many scheduler calls of anonymous callers: 0.001 per "
               "second are handled and 0 may wait for their turn (the limit of principal '' "
               "of --rate_limits); retry later")
    assert outcomes == {"SUBSCRIBED": 1, refusal: 29}
    state_url = f"http://127.0.0.1:{limited_cluster.masters[0].http_port}/state"
    assert len(httpx.get(state_url).json()["frameworks"]) == 1

    info = mesos_pb2.FrameworkInfo(name="marathon", user="nobody")
    for _ in range(5):  # within its own limit, whatever anonymous callers do
        assert asyncio.run(subscribe(target, info, metadata("marathon")))[0] == "SUBSCRIBED"

    agent = mesos_pb2.AgentInfo(hostname="a1")
    assert asyncio.run(connect_agent(target, agent, ())) == "registered"
    assert asyncio.run(connect_agent(target, agent, ())) == (
        "RESOURCE_EXHAUSTED: too many agent registrations of anonymous callers: 0.001 per "
        "second are handled and 0 may wait for their turn (the limit of principal '' of "
        "--rate_limits); retry later")


def test_the_framework_cap_refuses_a_new_framework_but_not_a_failover(
    limited_cluster: Cluster,
) -> None:
    target = limited_cluster.master_address
    credentials = metadata("intruder")
    info = mesos_pb2.FrameworkInfo(name="kept", user="nobody", failover_timeout=300)
    first, first_id = asyncio.run(subscribe(target, info, credentials))
    second, _ = asyncio.run(subscribe(target, info, credentials))
    assert (first, second) == ("SUBSCRIBED", "SUBSCRIBED")  # both kept after hanging up
    assert asyncio.run(subscribe(target, info, credentials))[0] == (
        "RESOURCE_EXHAUSTED: principal 'intruder' already has 2 frameworks, the most "
        "--max_frameworks_per_principal allows; tear one down or fail over an existing one "
        "(subscribe with its id)")
    failover = mesos_pb2.FrameworkInfo(name="kept", user="nobody", failover_timeout=300,
                                       id=mesos_pb2.FrameworkID(value=first_id))
    assert asyncio.run(subscribe(target, failover, credentials)) == ("SUBSCRIBED", first_id)
    # Another principal's frameworks do not count.
    other = mesos_pb2.FrameworkInfo(name="other", user="nobody")
    assert asyncio.run(subscribe(target, other, metadata("marathon")))[0] == "SUBSCRIBED"
