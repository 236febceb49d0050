"""Schemathesis fuzzing of a real Marathon against the spec it serves (`tests/integration/
fuzzing.py` says what is generated and checked): no 5xx, and every answer as the spec says.

The cluster's one agent is deactivated through the master's operator API before Marathon
starts, so no offer ever reaches Marathon and no generated command can run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis

from tests.integration.cluster import running_cluster, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.fuzzing import check, load_schema

pytestmark = pytest.mark.integration

# Operations the fuzzer cannot call, and why (each is covered by other integration tests).
SKIP = {
    "DELETE /v2/leader": "abdication would end the leadership every later case needs",
}
# Operations run without the coverage phase (thousands of cases for a group body): POST
# /v2/groups has it in full, and these read the same body with the same handler.
COVERAGE_OFF = {label: "same body and handler as POST /v2/groups" for label in (
    "PUT /v2/groups", "POST /v2/groups/{groupId}", "PUT /v2/groups/{groupId}")}


@pytest.fixture(scope="module")
def marathon_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Marathon, registered with a master whose only agent is deactivated."""
    with running_cluster(tmp_path_factory.mktemp("fuzz"), FAST_MASTER_FLAGS) as cluster:
        master = cluster.masters[0]
        cluster.start_agent()
        api = f"{master.http_url}/api/v1"

        def agent_ids() -> list[str]:
            answer = httpx.post(api, json={"type": "GET_AGENTS"}, timeout=10).json()
            return [agent["agent_info"]["id"]["value"]
                    for agent in answer["get_agents"]["agents"]]

        [agent_id] = wait_for(agent_ids, "the agent to register")
        deactivated = httpx.post(api, timeout=10, json={
            "type": "DEACTIVATE_AGENT", "deactivate_agent": {"agent_id": {"value": agent_id}}})
        assert deactivated.status_code == 200, deactivated.text
        _, url = cluster.start_marathon()
        wait_for(lambda: httpx.get(f"{url}/v2/info", timeout=10).json()["frameworkId"],
                 "marathon to register")
        yield url


@pytest.fixture(scope="module")
def marathon_schema(marathon_url: str) -> schemathesis.BaseSchema:
    return load_schema(marathon_url, skip=SKIP, coverage_off=COVERAGE_OFF)


schema = schemathesis.pytest.from_fixture("marathon_schema")


@schema.parametrize()
def test_marathon_fuzz(case: schemathesis.Case[Any]) -> None:
    check(case)
