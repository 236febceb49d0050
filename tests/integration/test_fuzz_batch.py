"""A bounded, deterministic schemathesis fuzz run over the batch framework's API.

The batch service runs against a master whose only agent is deactivated through the operator
API before the service starts, so nothing is ever offered and no generated command runs. Every
operation of the spec the service serves at `/openapi.json` gets valid (positive) and invalid
(negative) generated requests; an answer fails the test when it is a 5xx, has a status code,
content type or body the spec does not document, or accepts invalid input (a 2xx to a request
that violates the spec). Invalid input must get a 4xx.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import hypothesis
import pytest
import requests
import schemathesis
from schemathesis import CheckContext, CheckFunction, GenerationMode, Response
from schemathesis.checks import positive_data_acceptance
from schemathesis.config import OperationConfig, OperationsConfig
from schemathesis.schemas import BaseSchema

from tests.integration.cluster import Cluster, Process, running_cluster, wait_for
from tests.integration.fuzzing import fuzz_session

# ------------------------------------------------------------------ generic harness
# Nothing below this line up to the batch section knows about the batch framework: these
# functions take a base URL or a loaded schema (to be shared with other services' fuzz tests).

FUZZ_MAX_EXAMPLES = 10
"""Generated examples per operation and generation mode (the coverage phase adds its own)."""

FUZZ_SETTINGS = hypothesis.settings(
    max_examples=FUZZ_MAX_EXAMPLES,
    derandomize=True,  # the same cases on every run
    deadline=None,  # a real server on a busy machine: no per-example deadline
    database=None,  # no example database: nothing remembered between runs
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking: bounded
    print_blob=False,
)
"""Hypothesis settings for fuzz tests: bounded and deterministic."""


def load_fuzz_schema(base_url: str, spec_path: str = "/openapi.json", *, negative: bool = True,
                     no_coverage_paths: str | None = None) -> BaseSchema:
    """The OpenAPI spec served at `base_url + spec_path`, set up for a bounded fuzz run against
    `base_url`: positive (and, with `negative`, negative) data, deterministic, every check.

    Schemathesis' coverage phase (every boundary and every single violation of the schema,
    hundreds of requests for a large body) runs for every operation but those whose path
    matches the regex `no_coverage_paths` (say, ones sharing another operation's body and
    parser); they still get the spec's examples and the generated cases."""
    schema = schemathesis.openapi.from_url(base_url + spec_path, timeout=10)
    schema.config.update(base_url=base_url)
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE] if negative \
        else [GenerationMode.POSITIVE]
    schema.config.generation.update(modes=modes, max_examples=FUZZ_MAX_EXAMPLES,
                                    deterministic=True, database="none")
    if no_coverage_paths is not None:
        schema.config.operations = OperationsConfig(operations=[OperationConfig.from_dict({
            "include-path-regex": no_coverage_paths,
            "phases": {"coverage": {"enabled": False}}})])
    return schema


def valid_data_accepted(semantic_paths: re.Pattern[str]) -> CheckFunction:
    """A check in place of schemathesis' `positive_data_acceptance`: a request the spec allows
    must not get a 400, 405, 413, 415 or 422, except a 422 whose `details` name only paths
    matching `semantic_paths`, rules a JSON schema cannot state (a cron expression's syntax, a
    time zone, references between fields or to other resources)."""

    def check(ctx: CheckContext, response: Response, case: schemathesis.Case[Any]) -> bool | None:
        meta = case.meta
        if meta is None or not meta.generation.mode.is_positive \
                or response.status_code not in (400, 405, 413, 415, 422):
            return None
        if response.status_code == 422:
            body = response.json()  # a 422 that is not JSON fails content-type conformance
            details = (body.get("details") if isinstance(body, dict) else None) or []
            paths = [str(detail.get("path")) for detail in details if isinstance(detail, dict)]
            if paths and all(semantic_paths.fullmatch(path) for path in paths):
                return None
        raise AssertionError(f"a request the spec allows was refused: {response.status_code} "
                             f"{response.text[:500]}")

    return check


def call_and_validate(case: schemathesis.Case[Any], *extra_checks: CheckFunction,
                      session: requests.Session | None = None) -> Response:
    """Send `case` (over `session`, default a new one) and run every schemathesis check,
    `extra_checks` in place of `positive_data_acceptance`."""
    return case.call_and_validate(session=session, timeout=10,
                                  excluded_checks=[positive_data_acceptance],
                                  additional_checks=list(extra_checks))


def operator_call(master: Process, body: dict[str, Any]) -> dict[str, Any]:
    """One call to the master's operator API (`POST /api/v1`); its JSON answer."""
    response = httpx.post(master.http_url + "/api/v1", json=body, timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json() if response.content else {}
    return answer


def deactivated_agent(cluster: Cluster) -> str:
    """Start an agent, wait for it to register and deactivate it (it will never be offered);
    its id."""
    master = cluster.masters[0]
    cluster.start_agent()

    def agents() -> list[dict[str, Any]]:
        answer = operator_call(master, {"type": "GET_AGENTS"})
        found: list[dict[str, Any]] = answer["get_agents"].get("agents", [])
        return found

    [agent] = wait_for(agents, "the agent to register")
    agent_id: str = agent["agent_info"]["id"]["value"]
    operator_call(master, {"type": "DEACTIVATE_AGENT",
                           "deactivate_agent": {"agent_id": {"value": agent_id}}})
    [agent] = agents()
    assert agent["deactivated"] is True and agent["active"] is False, agent
    return agent_id


def service_survived(process: Process) -> None:
    """Fail if the fuzzed service died or logged a traceback."""
    assert process.alive(), process.log()[-3000:]
    assert "Traceback" not in process.log(), process.log()[-3000:]


def no_task_ever_launched(master: Process) -> None:
    """Fail if the master knows of any task (running or finished)."""
    state = httpx.get(master.http_url + "/state", timeout=10).json()
    tasks = [task for framework in state["frameworks"] + state.get("completed_frameworks", [])
             for task in framework.get("tasks", []) + framework.get("completed_tasks", [])]
    assert tasks == [], tasks


# ------------------------------------------------------------------ the batch framework

pytestmark = pytest.mark.integration


class BatchService(NamedTuple):
    """The fuzzed batch service, its base URL and its cluster."""

    cluster: Cluster
    process: Process
    url: str


@pytest.fixture(scope="module")
def batch_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BatchService]:
    """A batch service registered with a master whose only agent is deactivated."""
    work_dir: Path = tmp_path_factory.mktemp("fuzz-batch")
    with running_cluster(work_dir) as cluster:
        deactivated_agent(cluster)
        process, url = cluster.start_batch()
        wait_for(lambda: httpx.get(url + "/info", timeout=10).json()["frameworkId"],
                 "the batch framework to register")
        yield BatchService(cluster, process, url)


@pytest.fixture(scope="module")
def batch_schema(batch_service: BatchService) -> BaseSchema:
    # Metronome's v0 POST and PUT read the same body as v1's (`parse_job_body`), which the
    # coverage phase covers in depth already.
    return load_fuzz_schema(batch_service.url, no_coverage_paths="^/v0/")


SEMANTIC_PATHS = re.compile(
    r"(/schedules\(\d+\))?/(cron|timezone)"  # cron syntax, a known time zone
    r"|/schedules"  # schedule ids unique within the body
    r"|/dependencies(\(\d+\))?"  # known jobs, each once (`"a"` and `{"id": "a"}` too), no cycle
    r"|/id"  # the body's id is the path's
    r"|/run/secrets|/run/env/INDEX"  # secrets referenced; INDEX is the framework's
)
"""Where the batch API's 422 may point for a request its spec allows."""

SEED_JOB, SEED_SCHEDULE, RUN_EXAMPLE = "nightly.report", "every-night", "20261121092248tn5gL"
"""The spec's example ids: the generated cases use them, so they should name something."""

_seeded: dict[str, str] = {}
"""The id of the seeded run, by the operation it was seeded for."""


def seed(url: str) -> str:
    """Make the job and schedule the spec's examples name exist, with an active (queued) run;
    the run's id. Called before each operation is fuzzed (an earlier one may have deleted them)."""
    with httpx.Client(base_url=url, timeout=10) as client:
        created = client.post("/v1/jobs", json={
            "id": SEED_JOB, "run": {"cmd": "sleep 1", "cpus": 0.01, "mem": 32}})
        assert created.status_code in (201, 409), created.text
        schedule = client.post(f"/v1/jobs/{SEED_JOB}/schedules",
                               json={"id": SEED_SCHEDULE, "cron": "0 2 * * *"})
        assert schedule.status_code in (201, 409), schedule.text
        runs = client.get(f"/v1/jobs/{SEED_JOB}/runs").json()
        if not runs:
            started = client.post(f"/v1/jobs/{SEED_JOB}/runs")
            assert started.status_code == 201, started.text
            runs = [started.json()]
        run_id: str = runs[0]["id"]
        return run_id


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    yield from fuzz_session()


schema = schemathesis.pytest.from_fixture("batch_schema")


@schema.parametrize()
@FUZZ_SETTINGS
def test_batch_api_answers_as_its_spec_says(case: schemathesis.Case[Any],
                                            batch_service: BatchService,
                                            session: requests.Session) -> None:
    label = case.operation.label
    if label not in _seeded:
        _seeded[label] = seed(batch_service.url)
    if (case.path_parameters or {}).get("runId") == RUN_EXAMPLE:
        case.path_parameters["runId"] = _seeded[label]
    call_and_validate(case, valid_data_accepted(SEMANTIC_PATHS), session=session)


def test_the_service_survived_and_launched_nothing(batch_service: BatchService) -> None:
    """After the fuzz run (tests run in file order): the service still runs, a run stays
    queued (no offer comes) and the master never heard of a task."""
    service_survived(batch_service.process)
    run_id = seed(batch_service.url)
    queue = httpx.get(batch_service.url + "/v1/queue", timeout=10)
    assert queue.status_code == 200, queue.text
    assert {"runId": run_id} in [run for job in queue.json() for run in job["runs"]]
    no_task_ever_launched(batch_service.cluster.masters[0])
