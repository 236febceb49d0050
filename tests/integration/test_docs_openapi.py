"""`/openapi.json` and `/docs` of a real Marathon and a real batch framework, and their live
answers (bodies and status codes) checked against the spec each one serves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from mesos_http.openapi_docs import load_spec, spec_operations
from tests.integration.cluster import JSON_TYPE, Cluster, wait_for
from tests.unit.test_openapi_specs import schema_checker

pytestmark = pytest.mark.integration

APP = {"id": "/docs/web", "cmd": "python3 -m http.server $PORT0", "cpus": 0.1, "mem": 32,
       "instances": 1, "labels": {"team": "docs"}}
JOB = {"id": "docs.report", "run": {"cmd": "sleep 30", "cpus": 0.1, "mem": 32}}
SCHEDULE = {"id": "nightly", "cron": "0 2 * * *", "timezone": "Europe/Berlin"}


@pytest.fixture
def services(cluster: Cluster) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Marathon and the batch framework, both registered, on a master with one agent."""
    cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]", hostname="127.0.0.1")
    _, marathon_url = cluster.start_marathon()
    _, batch_url = cluster.start_batch()
    with httpx.Client(base_url=marathon_url, timeout=10) as marathon, \
            httpx.Client(base_url=batch_url, timeout=10) as batch:
        wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon to register")
        wait_for(lambda: batch.get("/info").json()["frameworkId"], "batch to register")
        yield marathon, batch


class SpecCheck:
    """Checks answers against the spec a server serves."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.spec: dict[str, Any] = client.get("/openapi.json").json()
        self.check = schema_checker(self.spec)

    def call(self, method: str, template: str, path: str | None = None,
             **kwargs: Any) -> httpx.Response:
        """`method path` (`template` with its parameters filled in); its status must be
        documented for `template` and a JSON body must match that answer's schema."""
        response = self.client.request(method, path or template, **kwargs)
        answers = self.spec["paths"][template][method.lower()]["responses"]
        status = str(response.status_code)
        assert status in answers, f"{method} {path or template}: undocumented {status} " \
                                  f"{response.text}"
        media = answers[status].get("content", {}).get("application/json")
        if media is not None:
            try:
                self.check(media["schema"], response.json())
            except Exception as error:
                raise AssertionError(f"{method} {path or template} {status}: {error}") from error
        return response


def test_both_servers_serve_their_spec_and_the_page(
    services: tuple[httpx.Client, httpx.Client],
) -> None:
    for client, package in zip(services, ("marathon", "frameworks.batch"), strict=True):
        served = client.get("/openapi.json")
        assert served.status_code == 200
        assert served.json() == load_spec(package)
        page = client.get("/docs")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        for method, path in spec_operations(served.json()):
            assert f'<span class="path">{path}</span>' in page.text, (method, path)


def test_marathon_answers_as_its_spec_says(services: tuple[httpx.Client, httpx.Client]) -> None:
    api = SpecCheck(services[0])
    assert api.call("POST", "/v2/apps", json=APP).status_code == 201
    wait_for(lambda: api.client.get("/v2/apps/docs/web").json()["app"]["tasksRunning"] == 1,
             "the app to run")
    assert api.call("POST", "/v2/apps", json=APP).status_code == 409
    assert api.call("POST", "/v2/apps", json={**APP, "id": "/bad", "cpus": -1}
                    ).status_code == 422
    assert api.call("POST", "/v2/apps", headers=JSON_TYPE, content=b"{").status_code == 400
    api.call("GET", "/v2/apps", params={"embed": "apps.tasks", "label": "team==docs"})
    app = "/v2/apps/{appId}"
    api.call("GET", app, "/v2/apps/docs/web", params={"embed": "app.tasks"})
    assert api.call("GET", app, "/v2/apps/docs/nope").status_code == 404
    api.call("GET", "/v2/apps/{appId}/tasks", "/v2/apps/docs/web/tasks")
    versions = api.call("GET", "/v2/apps/{appId}/versions", "/v2/apps/docs/web/versions")
    version = versions.json()["versions"][0]
    api.call("GET", "/v2/apps/{appId}/versions/{version}",
             f"/v2/apps/docs/web/versions/{version}")
    api.call("GET", "/v2/tasks", params={"status": "running"})
    api.call("GET", "/v2/groups")
    api.call("GET", "/v2/groups/{groupId}", "/v2/groups/docs")
    api.call("GET", "/v2/queue", params={"embed": "lastUnusedOffers"})
    api.call("GET", "/v2/info")
    api.call("GET", "/v2/leader")
    api.call("PATCH", app, "/v2/apps/docs/web", json={"instances": 2})
    api.call("GET", "/v2/deployments")
    api.call("DELETE", app, "/v2/apps/docs/web", params={"force": "true"})


def test_batch_answers_as_its_spec_says(services: tuple[httpx.Client, httpx.Client]) -> None:
    api = SpecCheck(services[1])
    assert api.call("POST", "/v1/jobs", json=JOB).status_code == 201
    assert api.call("POST", "/v1/jobs", json=JOB).status_code == 409
    assert api.call("POST", "/v1/jobs", json={"id": "Bad Id"}).status_code == 422
    job = "/v1/jobs/{jobId}"
    run = api.call("POST", "/v1/jobs/{jobId}/runs", "/v1/jobs/docs.report/runs")
    assert run.status_code == 201
    run_path = f"/v1/jobs/docs.report/runs/{run.json()['id']}"
    created = api.call("POST", "/v1/jobs/{jobId}/schedules", "/v1/jobs/docs.report/schedules",
                       json=SCHEDULE)
    assert created.status_code == 201
    api.call("GET", "/v1/jobs", params={"embed": "activeRuns,schedules,history"})
    assert api.call("GET", "/v1/jobs", params={"embed": "bogus"}).status_code == 400
    api.call("GET", job, "/v1/jobs/docs.report", params={"embed": "historySummary"})
    assert api.call("GET", job, "/v1/jobs/docs.nope").status_code == 404
    api.call("GET", "/v1/jobs/{jobId}/runs", "/v1/jobs/docs.report/runs")
    api.call("GET", "/v1/jobs/{jobId}/runs/{runId}", run_path)
    schedule = "/v1/jobs/{jobId}/schedules/{scheduleId}"
    api.call("GET", "/v1/jobs/{jobId}/schedules", "/v1/jobs/docs.report/schedules")
    api.call("PUT", schedule, "/v1/jobs/docs.report/schedules/nightly",
             json={**SCHEDULE, "concurrencyPolicy": "FORBID"})
    api.call("GET", schedule, "/v1/jobs/docs.report/schedules/nightly")
    api.call("DELETE", schedule, "/v1/jobs/docs.report/schedules/nightly")
    assert api.call("DELETE", job, "/v1/jobs/docs.report").status_code == 409
    api.call("POST", "/v1/jobs/{jobId}/runs/{runId}/actions/stop", f"{run_path}/actions/stop")
    api.call("GET", "/info")
    api.call("GET", "/leader")
    v0_job = {**JOB, "id": "docs.v0", "schedules": [SCHEDULE]}
    assert api.call("POST", "/v0/scheduled-jobs", json=v0_job).status_code == 201
    assert api.call("POST", "/v0/scheduled-jobs", json=v0_job).status_code == 409
    assert api.call("POST", "/v0/scheduled-jobs", json={"id": "docs.v0"}).status_code == 422
    assert api.call("PUT", "/v0/scheduled-jobs/{jobId}", "/v0/scheduled-jobs/docs.v0",
                    json=v0_job).status_code == 200
    api.call("GET", "/v1/queue")
    api.call("GET", "/v1/metrics")
    assert api.call("DELETE", job, "/v1/jobs/docs.report",
                    params={"stopCurrentJobRuns": "true"}).status_code == 200
