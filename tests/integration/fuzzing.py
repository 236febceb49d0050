"""Bounded, deterministic schemathesis fuzzing of a running service against the OpenAPI spec it
serves at `/openapi.json`.

`load_schema(base_url, skip=..., coverage_off=...)` loads the served spec as a schemathesis
schema with the settings below; a test module returns it from a (module-scoped) fixture,
hands the fixture's name to `schemathesis.pytest.from_fixture` and runs each operation as its
own subtest (`test_fuzz[METHOD /path]`), calling `check(case, session=session)` for every
generated case:

    @pytest.fixture(scope="module")
    def service_schema(service_url: str) -> schemathesis.BaseSchema:
        return load_schema(service_url, skip={"DELETE /leader": "ends the leadership"})

    schema = schemathesis.pytest.from_fixture("service_schema")

    @pytest.fixture(scope="module")
    def session() -> Iterator[requests.Session]:
        yield from fuzz_session()

    @schema.parametrize()
    def test_fuzz(case: schemathesis.Case[Any], session: requests.Session) -> None:
        check(case, session=session)

Every case of the run goes over that one session's kept-alive connection (a new session and
connection per case cost more than many a case's answer).

The same sequence of requests is sent on every run; an event stream is read up to its first
event or for `STREAM_SECONDS`.

What is generated: both valid data (as the spec describes it) and invalid data (wrong types,
values outside the bounds, missing required fields, unexpected extra query parameters),
from schemathesis' coverage phase (deterministic boundary and type-mutation cases) and its
fuzzing phase (hypothesis, `derandomize=True`, `max_examples` per operation, no example
database, no shrinking). The stateful phase (chains of calls following spec links) is off.

What fails a case (`CHECKS`): any 5xx (so invalid input answered with a 5xx); a status code
the operation does not document; a content type it does not document; a body that does not
match the documented schema. Valid data answered with a 4xx is not a failure (a generated app
id is rarely one that exists), nor, by default, is invalid data answered with a 2xx: Marathon,
as Jersey does, reads a boolean flag that is not `true` as false and ignores unknown `embed`
values. `STRICT_CHECKS` adds that check, for a service that rejects what its spec forbids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import requests
import schemathesis
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.requests import ManagedCookiesSession

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
STRICT_CHECKS = [*CHECKS, negative_data_rejection]
"""`CHECKS`, and invalid data must be rejected (4xx): for a service that validates every
parameter as strictly as its spec describes it."""
MAX_EXAMPLES = 5  # hypothesis examples per operation in the fuzzing phase
REQUEST_TIMEOUT = 10.0  # seconds; a hang is a failure, not a stuck test
MAX_STREAM_EVENTS = 1  # an event stream (text/event-stream) is read up to its first event,
STREAM_SECONDS = 0.5  # or for this long (a filtered stream may send nothing)
METHODS = frozenset({"get", "put", "post", "patch", "delete", "head", "options", "trace"})


def config(spec: Mapping[str, Any], skip: Mapping[str, str] | None = None,
           coverage_off: Mapping[str, str] | None = None,
           max_examples: int = MAX_EXAMPLES) -> schemathesis.Config:
    """The bounded, deterministic schemathesis configuration for `spec`: the operations in
    `skip` ("METHOD /path") turned off, those in `coverage_off` without the coverage phase,
    and event streams read for `STREAM_SECONDS` at most."""
    def operation(label: str, **settings: Any) -> dict[str, Any]:
        # One filter: separate include-method and include-path filters would match either.
        return {"include-name": label, **settings}

    return schemathesis.Config.from_dict({
        "seed": 0,
        # Hypothesis' health checks judge the generation, some by its speed: not deterministic.
        "suppress-health-check": ["all"],
        "request-timeout": REQUEST_TIMEOUT,
        "max-stream-events": MAX_STREAM_EVENTS,
        "generation": {
            "mode": "all", "max-examples": max_examples, "deterministic": True,
            "database": "none", "no-shrink": True,
        },
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "operations": [
            *(operation(label, enabled=False) for label in skip or {}),
            *(operation(label, phases={"coverage": {"enabled": False}})
              for label in coverage_off or {}),
            *(operation(label, **{"request-timeout": STREAM_SECONDS})
              for label in event_streams(spec)),
        ],
    })


def operations(spec: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The spec's operations by label ("METHOD /path")."""
    return {f"{method.upper()} {path}": operation for path, item in spec["paths"].items()
            for method, operation in item.items() if method in METHODS}


def event_streams(spec: Mapping[str, Any]) -> list[str]:
    """The operations that may answer with an event stream (text/event-stream)."""
    return [label for label, operation in operations(spec).items()
            if any("text/event-stream" in answer.get("content", {})
                   for answer in operation.get("responses", {}).values())]


def load_schema(base_url: str, skip: Mapping[str, str] | None = None,
                coverage_off: Mapping[str, str] | None = None,
                max_examples: int = MAX_EXAMPLES) -> schemathesis.BaseSchema:
    """The spec served at `base_url + "/openapi.json"`, calling `base_url`. `skip` and
    `coverage_off` map operation labels ("METHOD /path") to the reason: why it cannot be
    fuzzed (e.g. it ends the service's leadership), why its coverage phase is not needed
    (e.g. another operation with the same body and handler has it). A label the spec lacks
    raises, so that neither goes stale."""
    spec: dict[str, Any] = httpx.get(f"{base_url}/openapi.json", timeout=REQUEST_TIMEOUT).json()
    unknown = (set(skip or {}) | set(coverage_off or {})) - set(operations(spec))
    if unknown:
        raise ValueError(f"operations not in the spec: {sorted(unknown)}")
    schema = schemathesis.openapi.from_dict(spec, config=config(spec, skip, coverage_off,
                                                                max_examples))
    schema.config.update(base_url=base_url)
    return schema


def fuzz_session() -> Iterator[requests.Session]:
    """The HTTP session of a fuzz run, for a module-scoped fixture: the same session type
    schemathesis makes for each case (same-host redirects only, cookies dropped after every
    case), made once, so that the cases share kept-alive connections, and reading no proxy or
    netrc settings from the environment (the services are on loopback)."""
    session = ManagedCookiesSession()
    session.trust_env = False
    try:
        yield session
    finally:
        session.close()


def check(case: schemathesis.Case[Any], checks: list[CheckFunction] | None = None,
          session: requests.Session | None = None) -> None:
    """Call the service with `case` (over `session`, default a new one) and fail on a 5xx or an
    answer the spec does not allow (`checks`, default `CHECKS`)."""
    case.call_and_validate(session=session, checks=CHECKS if checks is None else checks)

