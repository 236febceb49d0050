"""Schemathesis fuzzing of a real Marathon against the spec it serves (`tests/integration/
fuzzing.py` says what is generated and checked): no 5xx, and every answer as the spec says.

The cluster's one agent is deactivated through the master's operator API before Marathon
starts, so no offer ever reaches Marathon and no generated command can run."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import httpx
import pytest
import requests
import schemathesis

from tests.integration.cluster import running_cluster, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.fuzzing import check, fuzz_session, load_schema

pytestmark = pytest.mark.integration

# Operations the fuzzer cannot call, and why (each is covered by other integration tests).
SKIP = {
    "DELETE /v2/leader": "abdication would end the leadership every later case needs",
}
# Operations run without the coverage phase (thousands of cases for a group body): POST
# /v2/groups has it in full, and these read the same body with the same handler.
COVERAGE_OFF = {label: "same body and handler as POST /v2/groups" for label in (
    "PUT /v2/groups", "POST /v2/groups/{groupId}", "PUT /v2/groups/{groupId}")}


class Urls(NamedTuple):
    marathon: str
    master: str


@pytest.fixture(scope="module")
def urls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Urls]:
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
        yield Urls(url, master.http_url)


@pytest.fixture(scope="module")
def marathon_schema(urls: Urls) -> schemathesis.BaseSchema:
    return load_schema(urls.marathon, skip=SKIP, coverage_off=COVERAGE_OFF)


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    yield from fuzz_session()


schema = schemathesis.pytest.from_fixture("marathon_schema")


@schema.parametrize()
@pytest.mark.timeout(300)  # one test runs every operation: ~40 s idle, more on a busy machine
def test_marathon_fuzz(case: schemathesis.Case[Any], session: requests.Session) -> None:
    check(case, session=session)


def test_no_fuzzed_app_ever_ran(urls: Urls) -> None:
    """After the run (tests run in file order): the agent is still deactivated and the master
    has seen no task of Marathon's, running or finished."""
    api = f"{urls.master}/api/v1"
    [agent] = httpx.post(api, json={"type": "GET_AGENTS"}, timeout=10).json()[
        "get_agents"]["agents"]
    assert agent["deactivated"] is True and agent["active"] is False
    [framework] = httpx.get(f"{urls.master}/state", timeout=10).json()["frameworks"]
    assert framework["name"] == "marathon"
    assert framework["tasks"] == framework["completed_tasks"] == []
