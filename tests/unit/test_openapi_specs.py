"""The OpenAPI documents of Marathon and the batch framework against the routes they describe,
the OpenAPI 3.0 schema, their own examples and the conformance payloads of the real APIs."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openapi_schema_validator
import openapi_spec_validator
import pytest
import referencing
import referencing.jsonschema
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from frameworks.batch.api import BatchApi
from frameworks.batch.service import BatchConfig, BatchService
from marathon.api import MarathonApi
from marathon.service import MarathonConfig, MarathonService
from mesos_http.openapi_docs import (
    load_spec,
    render_docs,
    route_mismatches,
    sample_path,
    spec_operations,
)

CONFORMANCE = Path(__file__).resolve().parents[1] / "fixtures" / "conformance"


def marathon_app() -> Starlette:
    return MarathonApi(MarathonService(MarathonConfig())).app()


def batch_app() -> Starlette:
    return BatchApi(BatchService(BatchConfig())).app()


SERVICES: dict[str, tuple[str, Callable[[], Starlette]]] = {
    "marathon": ("marathon", marathon_app),
    "batch": ("frameworks.batch", batch_app),
}


@pytest.fixture(params=sorted(SERVICES))
def service(request: pytest.FixtureRequest) -> tuple[dict[str, Any], Starlette]:
    package, make_app = SERVICES[request.param]
    return load_spec(package), make_app()


def test_every_route_is_documented_and_every_documented_operation_is_served(
    service: tuple[dict[str, Any], Starlette],
) -> None:
    spec, app = service
    assert route_mismatches(spec, app.routes) == []


def test_the_specs_are_valid_openapi_3_0(service: tuple[dict[str, Any], Starlette]) -> None:
    spec, _ = service
    assert spec["openapi"].startswith("3.0.")
    openapi_spec_validator.validate(spec)


def test_operation_ids_are_unique(service: tuple[dict[str, Any], Starlette]) -> None:
    spec, _ = service
    ids = [spec["paths"][path][method.lower()]["operationId"]
           for method, path in spec_operations(spec)]
    assert len(ids) == len(set(ids))


def test_marathon_documents_its_generic_error_answers() -> None:
    """What any operation of its kind may answer: a body may be too large (413) or not JSON
    (400); a request the leader serves may find no leader (503)."""
    from marathon.api import LOCAL_PATHS

    spec = load_spec("marathon")
    missing = []
    for method, path in spec_operations(spec):
        operation = spec["paths"][path][method.lower()]
        expected = {"400", "413"} if "requestBody" in operation else set()
        if path.startswith("/v2/") and path not in LOCAL_PATHS:
            expected.add("503")
        missing += [f"{method} {path}: {status}"
                    for status in sorted(expected - set(operation["responses"]))]
    assert missing == []


# ------------------------------------------------------------------ examples and schemas


def schema_checker(spec: dict[str, Any]) -> Callable[[dict[str, Any], Any], None]:
    """check(schema, instance): validate `instance` against `schema` (its `$ref`s point into
    `spec`) with OpenAPI 3.0 semantics (`nullable`, ...)."""
    resource = referencing.Resource.from_contents(
        spec, default_specification=referencing.jsonschema.DRAFT4
    )
    registry = referencing.Registry().with_resource("urn:spec", resource)

    def check(schema: dict[str, Any], instance: Any) -> None:
        linked = json.loads(json.dumps(schema).replace('"#/components', '"urn:spec#/components'))
        openapi_schema_validator.OAS30Validator(linked, registry=registry).validate(instance)

    return check


def _examples(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """(where, schema, example) for every JSON example of a request or response body."""
    for method, path in spec_operations(spec):
        operation = spec["paths"][path][method.lower()]
        bodies = [("request", operation.get("requestBody", {}))]
        bodies += [(status, answer) for status, answer in operation["responses"].items()]
        for name, body in bodies:
            media = body.get("content", {}).get("application/json", {})
            if "example" in media and "schema" in media:
                yield f"{method} {path} {name}", media["schema"], media["example"]
    for name, schema in spec["components"]["schemas"].items():
        if "example" in schema:
            yield f"schema {name}", {"$ref": f"#/components/schemas/{name}"}, schema["example"]


def test_every_example_matches_its_schema(service: tuple[dict[str, Any], Starlette]) -> None:
    spec, _ = service
    check = schema_checker(spec)
    examples = list(_examples(spec))
    assert len(examples) > 20
    for where, schema, example in examples:
        try:
            check(schema, example)
        except Exception as error:
            raise AssertionError(f"{where}: {error}") from error


def _conformance(name: str) -> Any:
    return json.loads((CONFORMANCE / name).read_text())


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


@pytest.mark.parametrize(("fixture", "schema"), [
    ("marathon/app.json", _ref("App")),
    ("marathon/app-check-http-example.json", _ref("App")),
    ("marathon/apps_create.json", {"type": "array", "items": _ref("App")}),
    ("marathon/apps_patch.json", {"type": "array", "items": _ref("AppUpdate")}),
    ("marathon/app_patch.json", _ref("AppUpdate")),
    ("marathon/app_tasks.json", {"type": "object", "properties": {
        "tasks": {"type": "array", "items": _ref("Task")}}}),
    ("marathon/deployments.json", {"type": "array", "items": _ref("Deployment")}),
    ("marathon/group.json", _ref("Group")),
    ("marathon/info.json", _ref("Info")),
    ("marathon/queue.json", {"type": "object", "properties": {
        "queue": {"type": "array", "items": _ref("QueueEntry")}}}),
], ids=lambda value: value if isinstance(value, str) else "")
def test_marathon_conformance_payloads_match_the_spec(fixture: str, schema: dict[str, Any]) -> None:
    schema_checker(load_spec("marathon"))(schema, _conformance(fixture))


@pytest.mark.parametrize(("fixture", "schema"), [
    ("metronome/job.json", _ref("Job")),
    ("metronome/job_list.json", {"type": "array", "items": _ref("Job")}),
    ("metronome/run.json", _ref("Run")),
    ("metronome/run_list.json", {"type": "array", "items": _ref("Run")}),
    ("metronome/schedule.json", _ref("Schedule")),
], ids=lambda value: value if isinstance(value, str) else "")
def test_metronome_conformance_payloads_match_the_batch_spec(
    fixture: str, schema: dict[str, Any],
) -> None:
    schema_checker(load_spec("frameworks.batch"))(schema, _conformance(fixture))


# ------------------------------------------------------------------ route_mismatches itself


async def _endpoint(request: Request) -> Response:
    return Response()


TINY_SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {"title": "tiny <api>", "version": "1"},
    "paths": {
        "/things": {"get": {"operationId": "list", "summary": "List `things`",
                            "responses": {"200": {"description": "ok"}}}},
        "/things/{thingId}": {
            "parameters": [{"name": "thingId", "in": "path", "required": True,
                            "schema": {"type": "string"}, "example": "a/b"}],
            "delete": {"operationId": "delete", "responses": {"204": {"description": "gone"}}},
        },
    },
}


def tiny_routes(*extra: BaseRoute) -> list[BaseRoute]:
    return [Route("/things", _endpoint, methods=["GET"]),
            Route("/things/{rest:path}", _endpoint, methods=["DELETE"]), *extra]


def test_route_mismatches_accepts_a_spec_that_matches() -> None:
    assert route_mismatches(TINY_SPEC, tiny_routes()) == []


def test_route_mismatches_reports_an_undocumented_route_and_method() -> None:
    routes = tiny_routes(Route("/other", _endpoint, methods=["GET", "POST"]))
    assert route_mismatches(TINY_SPEC, routes) == [
        "GET /other is served but not documented",
        "POST /other is served but not documented",
    ]


def test_route_mismatches_reports_a_documented_operation_nobody_serves() -> None:
    routes = [Route("/things", _endpoint, methods=["GET"])]
    assert route_mismatches(TINY_SPEC, routes) == [
        "DELETE /things/{thingId} is documented but no route serves /things/a/b",
    ]


def test_route_mismatches_reports_a_documented_method_the_route_refuses() -> None:
    routes = [Route("/things", _endpoint, methods=["GET"]),
              Route("/things/{rest:path}", _endpoint, methods=["GET"])]
    problems = route_mismatches(TINY_SPEC, routes)
    assert "DELETE /things/{thingId} is documented but no route serves /things/a/b" in problems
    assert "GET /things/{rest:path} is served but not documented" in problems


def test_route_mismatches_reports_an_undeclared_path_parameter() -> None:
    spec = json.loads(json.dumps(TINY_SPEC))
    del spec["paths"]["/things/{thingId}"]["parameters"]
    assert route_mismatches(spec, tiny_routes()) == [
        "DELETE /things/{thingId}: path parameter {thingId} is not declared",
    ]


def test_sample_path_uses_the_parameter_examples() -> None:
    assert sample_path(TINY_SPEC, "DELETE", "/things/{thingId}") == "/things/a/b"
    assert sample_path(TINY_SPEC, "GET", "/things") == "/things"


# ------------------------------------------------------------------------------- the page


def test_the_page_lists_every_operation_of_the_spec(
    service: tuple[dict[str, Any], Starlette],
) -> None:
    spec, _ = service
    page = render_docs(spec)
    for method, path in spec_operations(spec):
        anchor = "op-" + method.lower() + "-" + re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")
        assert f'id="{anchor}"' in page, (method, path)
    for name in spec["components"]["schemas"]:
        assert f'id="schema-{name}"' in page


def test_the_page_is_self_contained_and_escaped() -> None:
    page = render_docs(TINY_SPEC)
    assert "<title>tiny &lt;api&gt;</title>" in page
    assert "List <code>things</code>" in page
    assert "<script" not in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)


@pytest.mark.parametrize(("package", "reference"), [
    ("marathon", "marathon-v2.md"), ("frameworks.batch", "batch-v1.md"),
])
def test_the_markdown_reference_has_a_heading_for_every_operation(
    package: str, reference: str,
) -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "api" / reference).read_text()
    headings = set(re.findall(r"^### `([A-Z]+ [^`]+)`$", text, flags=re.MULTILINE))
    operations = {f"{method} {path}" for method, path in spec_operations(load_spec(package))}
    assert sorted(operations - headings) == []
    assert sorted(headings - operations) == []
