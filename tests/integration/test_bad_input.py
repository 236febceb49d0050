"""Bad input gets a 4xx (or INVALID_ARGUMENT) naming what is wrong, never a 5xx, a crash or a
hang: each case against a real process on loopback, which afterwards still answers and has
stored nothing. The cases share a module's master, Marathon and batch framework (each case
checks they still answer and hold nothing); a case that stores something gets a Marathon or
batch framework of its own on that master, and one that needs an agent a master of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from protos import agent_pb2, agent_pb2_grpc, mesos_pb2, scheduler_pb2, scheduler_pb2_grpc
from tests.integration.cluster import JSON_TYPE, Cluster, running_cluster, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.test_agent_http import start_observed_agent

pytestmark = pytest.mark.integration

BAD_JSON = {
    "nested 10,000 deep": b"[" * 10_000 + b"]" * 10_000,
    "invalid UTF-8": b'{"id": "/bad\xff", "cmd": "sleep 1"}',
    "a 4,301-digit integer": b'{"id": "/bad", "cmd": "sleep 1", "instances": '
                             + b"1" * 4301 + b"}",
    "cpus NaN": b'{"id": "/bad", "cmd": "sleep 1", "cpus": NaN}',
    "cpus Infinity": b'{"id": "/bad", "cmd": "sleep 1", "cpus": Infinity}',
    "cpus 1e999999": b'{"id": "/bad", "cmd": "sleep 1", "cpus": 1e999999}',
    "scaleBy Infinity": b'{"scaleBy": Infinity}',
    "a lone surrogate": b'{"id": "/bad", "cmd": "\\ud800"}',
}


def registered(url: str, info: str) -> Iterator[httpx.Client]:
    """A client of the service at `url` once its `info` path names its framework id."""
    with httpx.Client(base_url=url, timeout=30) as client:
        wait_for(lambda: client.get(info).json()["frameworkId"], f"{url} to register")
        yield client


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A master for the parametrized cases of this module."""
    work_dir: Path = tmp_path_factory.mktemp("bad-input")
    with running_cluster(work_dir, FAST_MASTER_FLAGS) as started:
        yield started


@pytest.fixture(scope="module")
def shared_marathon(shared_cluster: Cluster) -> Iterator[httpx.Client]:
    yield from registered(shared_cluster.start_marathon()[1], "/v2/info")


@pytest.fixture(scope="module")
def shared_batch(shared_cluster: Cluster) -> Iterator[httpx.Client]:
    yield from registered(shared_cluster.start_batch()[1], "/info")


@pytest.fixture
def marathon(shared_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A Marathon of the test's own (for a test that stores something), on the shared master."""
    process, url = shared_cluster.start_marathon(name=f"marathon-{request.node.name}")
    try:
        yield from registered(url, "/v2/info")
    finally:
        process.stop()


@pytest.fixture
def batch(shared_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """A batch framework of the test's own (for a test that stores something), on the shared
    master."""
    process, url = shared_cluster.start_batch(name=f"batch-{request.node.name}")
    try:
        yield from registered(url, "/info")
    finally:
        process.stop()


@pytest.mark.parametrize("case", BAD_JSON)
def test_marathon_answers_bad_json_with_400_invalid_json(
        shared_marathon: httpx.Client, case: str) -> None:
    marathon = shared_marathon
    for method, path in (("POST", "/v2/apps"), ("PUT", "/v2/apps/bad"), ("POST", "/v2/groups"),
                         ("PUT", "/v2/groups")):
        answer = marathon.request(method, path, headers=JSON_TYPE, content=BAD_JSON[case])
        assert answer.status_code == 400, (method, path, answer.text)
        body = answer.json()
        assert body["message"] == "Invalid JSON"
        assert body["details"][0]["path"] == "/"
        assert body["details"][0]["errors"][0].startswith("error.invalid.json: ")
    assert marathon.get("/v2/apps").json() == {"apps": []}
    assert marathon.get("/v2/groups").json()["groups"] == []


@pytest.mark.parametrize("case", BAD_JSON)
def test_batch_answers_bad_json_with_400(shared_batch: httpx.Client, case: str) -> None:
    batch = shared_batch
    for path in ("/v1/jobs", "/v0/scheduled-jobs"):
        answer = batch.post(path, headers=JSON_TYPE, content=BAD_JSON[case])
        assert answer.status_code == 400, (path, answer.text)
        assert answer.json()["message"].startswith("Invalid JSON: ")
    assert batch.get("/v1/jobs").json() == []


@pytest.mark.parametrize("case", BAD_JSON)
def test_the_masters_operator_api_answers_bad_json_with_400(
        shared_cluster: Cluster, case: str) -> None:
    master = shared_cluster.masters[0]
    with httpx.Client(base_url=master.http_url, timeout=30) as client:
        for method, path in (("POST", "/api/v1"), ("PUT", "/weights"), ("POST", "/quota")):
            answer = client.request(method, path, headers=JSON_TYPE, content=BAD_JSON[case])
            assert answer.status_code == 400, (method, path, answer.text)
            assert answer.text.startswith("the body is not valid JSON: ")
        assert client.get("/weights").status_code == 200
    assert master.alive()


def test_a_body_over_the_limit_is_413_and_nothing_is_stored(
        shared_cluster: Cluster, shared_marathon: httpx.Client,
        shared_batch: httpx.Client) -> None:
    cluster, marathon, batch = shared_cluster, shared_marathon, shared_batch
    huge_cmd = b'{"id": "/big", "cmd": "' + b"x" * 50 * 1024 * 1024 + b'"}'
    answer = marathon.post("/v2/apps", headers=JSON_TYPE, content=huge_cmd)
    assert answer.status_code == 413
    assert answer.json()["message"].startswith("Request body too large")
    assert marathon.get("/v2/apps").json() == {"apps": []}

    answer = batch.post("/v1/jobs", headers=JSON_TYPE, content=huge_cmd)
    assert answer.status_code == 413
    assert answer.json()["message"].startswith("Request body too large")
    assert batch.get("/v1/jobs").json() == []

    with httpx.Client(base_url=cluster.masters[0].http_url, timeout=30) as master:
        answer = master.post("/api/v1", headers=JSON_TYPE, content=huge_cmd)
        assert answer.status_code == 413
        assert answer.text.startswith("Request body too large")
        assert master.get("/weights").status_code == 200


def test_a_chunked_body_over_the_limit_is_413(shared_marathon: httpx.Client) -> None:
    marathon = shared_marathon

    def chunks() -> Iterator[bytes]:
        yield b'{"id": "/big", "cmd": "'
        for _ in range(2048):
            yield b"x" * 1024
        yield b'"}'

    answer = marathon.post("/v2/apps", headers=JSON_TYPE, content=chunks())
    assert answer.status_code == 413
    assert marathon.get("/v2/apps").json() == {"apps": []}


def test_a_body_within_a_raised_limit_is_read(shared_cluster: Cluster) -> None:
    _, url = shared_cluster.start_marathon("--http_max_request_bytes", str(4 * 1024 * 1024),
                                           name="roomy")
    for client in registered(url, "/v2/info"):
        answer = client.post("/v2/apps", headers=JSON_TYPE,
                             content=b'{"id": 7, "cmd": "' + b"x" * 2_000_000 + b'"}')
        assert answer.status_code == 422  # read, then refused for its id, not its size


@pytest.fixture
def channel(shared_cluster: Cluster) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{shared_cluster.master_port}") as opened:
        yield opened


def subscribe(min_allocatable: dict[str, float] | None = None) -> scheduler_pb2.Call:
    info = mesos_pb2.FrameworkInfo(name="fw", user="u")
    if min_allocatable is not None:
        info.offer_filters["*"].min_allocatable_resources.quantities.add(
            quantities=min_allocatable)
    return scheduler_pb2.Call(type=scheduler_pb2.Call.SUBSCRIBE,
                              subscribe=scheduler_pb2.Call.Subscribe(framework_info=info))


@pytest.mark.parametrize("method, streaming", [
    ("/mesos.scheduler.Scheduler/Send", False),
    ("/mesos.scheduler.Scheduler/Subscribe", True),
    ("/mesos.agent.AgentLink/Connect", True),
])
def test_garbage_bytes_are_invalid_argument(
        shared_cluster: Cluster, channel: grpc.Channel, method: str, streaming: bool) -> None:
    garbage = b"\xff\xff\xff\xff"
    with pytest.raises(grpc.RpcError) as refused:
        if method.endswith("Connect"):
            list(channel.stream_stream(method)(iter([garbage]), timeout=30))
        elif streaming:
            list(channel.unary_stream(method)(garbage, timeout=30))
        else:
            channel.unary_unary(method)(garbage, timeout=30)
    error: grpc.Call = refused.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "is not a valid message" in error.details()
    assert shared_cluster.masters[0].alive()


@pytest.mark.parametrize("cpus", [1e308, float("nan"), -1.0])
def test_absurd_resource_scalars_are_invalid_argument(
        shared_cluster: Cluster, channel: grpc.Channel, cpus: float) -> None:
    stub = scheduler_pb2_grpc.SchedulerStub(channel)
    with pytest.raises(grpc.RpcError) as refused:
        next(stub.Subscribe(subscribe({"cpus": cpus}), timeout=30))
    error: grpc.Call = refused.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "offer_filters" in error.details() and "'cpus'" in error.details()
    events = stub.Subscribe(subscribe(), timeout=30)
    assert next(events).type == scheduler_pb2.Event.SUBSCRIBED  # the master still serves
    events.cancel()


@pytest.mark.parametrize("cpus", [1e308, float("nan"), -1.0])
def test_an_agent_registering_absurd_resources_is_invalid_argument(
        shared_cluster: Cluster, channel: grpc.Channel, cpus: float) -> None:
    info = mesos_pb2.AgentInfo(hostname="h", resources=[mesos_pb2.Resource(
        name="cpus", type=mesos_pb2.Value.SCALAR, scalar=mesos_pb2.Value.Scalar(value=cpus))])
    register = agent_pb2.AgentMessage(register=agent_pb2.AgentMessage.Register(agent_info=info))
    with pytest.raises(grpc.RpcError) as refused:
        list(agent_pb2_grpc.AgentLinkStub(channel).Connect(iter([register]), timeout=30))
    error: grpc.Call = refused.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid agent resources" in error.details() and "'cpus'" in error.details()
    assert shared_cluster.masters[0].alive()


def test_the_operator_api_refuses_absurd_quota_with_400(shared_cluster: Cluster) -> None:
    with httpx.Client(base_url=shared_cluster.masters[0].http_url, timeout=30) as client:
        answer = client.post("/quota", json={"role": "r", "guarantee": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1e308}}]})
        assert answer.status_code == 400, answer.text
        assert "cpus" in answer.text
        assert client.get("/quota").status_code == 200


def test_a_nul_in_a_files_path_is_400(cluster: Cluster) -> None:
    agent = start_observed_agent(cluster)
    with httpx.Client(base_url=agent.http_url, timeout=30) as client:
        for endpoint in ("/files/browse", "/files/read", "/files/download"):
            answer = client.get(endpoint, params={"path": "/tmp/a\x00b"})
            assert answer.status_code == 400, (endpoint, answer.text)
            assert "NUL" in answer.text
        assert client.get("/health").status_code == 200
    assert agent.alive()


def test_marathon_unknown_group_ids_and_scaling_are_4xx(shared_marathon: httpx.Client) -> None:
    marathon = shared_marathon
    for method in ("GET", "DELETE"):
        assert marathon.request(method, "/v2/groups/nope").status_code == 404
    for method in ("PUT", "POST"):
        answer = marathon.request(method, "/v2/groups/nope", json={"scaleBy": 2})
        assert answer.status_code == 404, (method, answer.text)
        assert answer.json() == {"message": "Group '/nope' does not exist"}
    assert marathon.put("/v2/groups", json={"scaleBy": 1e308}).json() == {
        "message": "Invalid JSON", "details": [{"path": "/scaleBy", "errors": ["error.max"]}]}
    assert marathon.get("/v2/groups").json()["groups"] == []


def test_marathon_fuzz_findings_are_4xx(shared_marathon: httpx.Client) -> None:
    """What the schemathesis run (test_fuzz_marathon.py) found, each once more by hand."""
    marathon = shared_marathon
    # PATCH changes an app that exists; it never creates one (Marathon 1.9: 404).
    answer = marathon.patch("/v2/apps/nope", json={"instances": 2})
    assert answer.status_code == 404, answer.text
    assert answer.json() == {"message": "App '/nope' does not exist"}
    answer = marathon.patch("/v2/apps", json=[{"id": "/nope", "instances": 2}])
    assert answer.status_code == 404, answer.text
    assert answer.json() == {"message": "App '/nope' does not exist"}
    # A null id is not a string (it was a KeyError: 500).
    for method, path, body in (("POST", "/v2/apps", {"id": None, "cmd": "sleep 1"}),
                               ("PUT", "/v2/apps", [{"id": None, "cmd": "sleep 1"}])):
        answer = marathon.request(method, path, json=body)
        assert answer.status_code == 422, (method, answer.text)
        assert answer.json()["details"] == [{"path": "/id",
                                             "errors": ["error.expected.jsstring"]}]
    # A path no route serves (a newline never matches an app id) answers as Marathon does.
    for path, raw in (("/v2/nope", "/v2/nope"),
                      ("/v2/apps/%0A/versions/1", "/v2/apps/%0A/versions/1")):
        answer = marathon.get(path)
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json() == {"message": f"URI not found: {raw}"}
    assert marathon.get("/v2/apps").json() == {"apps": []}


def test_marathon_refuses_fields_over_their_bounds_with_422(marathon: httpx.Client) -> None:
    app = {"id": "/big", "cmd": "sleep 1", "instances": 0, "cpus": 0.1, "mem": 32}
    cases = {
        "/big/instances": {"instances": 10**999},
        "/big/cpus": {"cpus": 1e300},
        "/big/mem": {"mem": 1e16},
        "/big/cmd": {"cmd": "x" * 200_000},
        "/big/args(1)": {"cmd": None, "args": ["echo", "x" * 200_000]},
        "/big/env/HUGE": {"env": {"HUGE": "x" * 200_000}},
        "/" + "a" * 300: {"id": "/" + "a" * 300},
    }
    for path, change in cases.items():
        answer = marathon.post("/v2/apps", json={**app, **change})
        assert answer.status_code == 422, (path, answer.text)
        body = answer.json()
        assert body["message"] == "Object is not valid"
        assert [detail["path"] for detail in body["details"]] == [path], body
    assert marathon.get("/v2/apps").json() == {"apps": []}

    # Scaling within the bounds works; past them, nothing changes.
    assert marathon.post("/v2/apps", json={**app, "instances": 1000}).status_code == 201
    scaled = marathon.put("/v2/groups", json={"scaleBy": 1e6})
    assert scaled.status_code == 422
    assert scaled.json()["details"][0]["path"] == "/big/instances"
    assert marathon.patch("/v2/apps/big", json={"instances": 10**7}).status_code == 422
    assert marathon.get("/v2/apps/big").json()["app"]["instances"] == 1000


def test_batch_refuses_fields_over_their_bounds_with_422(shared_batch: httpx.Client) -> None:
    batch = shared_batch
    job = {"id": "big", "run": {"cmd": "sleep 1", "cpus": 0.1, "mem": 32}}
    cases = {
        "/run/arraySize": {"arraySize": 10**999},
        "/run/cpus": {"cpus": 1e300},
        "/run/gpus": {"gpus": 10**16},
        "/run/cmd": {"cmd": "x" * 200_000},
        "/run/args(1)": {"cmd": None, "args": ["echo", "x" * 200_000]},
        "/run/env/HUGE": {"env": {"HUGE": "x" * 200_000}},
        # durations beyond Metronome's int overflowed the service's timers (found by fuzzing)
        "/run/maxLaunchDelay": {"maxLaunchDelay": 2**31},
        "/run/taskKillGracePeriodSeconds": {"taskKillGracePeriodSeconds": 1e12},
    }
    for path, change in cases.items():
        run = {key: value for key, value in {**job["run"], **change}.items()
               if value is not None}
        answer = batch.post("/v1/jobs", json={**job, "run": run})
        assert answer.status_code == 422, (path, answer.text)
        assert path in [detail["path"] for detail in answer.json()["details"]], answer.text
    long_id = batch.post("/v1/jobs", json={**job, "id": "a" * 300})
    assert long_id.status_code == 422, long_id.text
    deadline = batch.post("/v1/jobs", json={**job, "schedules": [
        {"id": "often", "cron": "* * * * *", "startingDeadlineSeconds": 2**65}]})
    assert deadline.status_code == 422, deadline.text
    assert deadline.json()["details"][0]["path"] == "/schedules(0)/startingDeadlineSeconds"
    assert batch.get("/v1/jobs").json() == []


def test_batch_refuses_a_stop_flag_that_is_not_a_boolean(batch: httpx.Client) -> None:
    """Found by fuzzing: `?stopCurrentJobRuns=null` (anything but true) read as false."""
    job = {"id": "kept", "run": {"cmd": "sleep 1", "cpus": 0.1, "mem": 32}}
    assert batch.post("/v1/jobs", json=job).status_code == 201
    for query in ("stopCurrentJobRuns=null", "stopCurrentJobRuns=1", "stopCurrentJobRuns=",
                  "stopCurrentJobRuns=true&stopCurrentJobRuns=false"):
        answer = batch.delete(f"/v1/jobs/kept?{query}")
        assert answer.status_code == 400, (query, answer.text)
        assert "stopCurrentJobRuns" in answer.json()["message"]
    assert batch.get("/v1/jobs/kept").status_code == 200
    assert batch.delete("/v1/jobs/kept?stopCurrentJobRuns=TRUE").status_code == 200


def test_a_cross_site_text_plain_post_is_refused_everywhere(
    shared_cluster: Cluster, shared_marathon: httpx.Client, shared_batch: httpx.Client,
) -> None:
    """What a page on another site can make a browser send without a CORS preflight (a
    `text/plain` or untyped body; a JSON one with that site's `Origin`) changes nothing."""
    cluster, marathon, batch = shared_cluster, shared_marathon, shared_batch
    app = b'{"id": "/forged", "cmd": "touch /tmp/pwned", "instances": 1}'
    job = b'{"id": "forged", "run": {"cmd": "touch /tmp/pwned", "cpus": 0.1, "mem": 32}}'
    evil = "https://evil.example"
    master = httpx.Client(base_url=cluster.masters[0].http_url, timeout=30)
    weights = b'[{"role": "forged", "weight": 9}]'
    for client, path, body in ((marathon, "/v2/apps", app), (batch, "/v1/jobs", job),
                               (master, "/weights", weights)):
        method = "PUT" if path == "/weights" else "POST"
        for content_type in ("text/plain;charset=UTF-8", None):
            headers = {"origin": evil, **({"content-type": content_type} if content_type else {})}
            answer = client.request(method, path, content=body, headers=headers)
            assert answer.status_code == 415, (path, content_type, answer.text)
        answer = client.request(method, path, content=body,
                                headers={**JSON_TYPE, "origin": evil})
        assert answer.status_code == 403 and "evil.example" in answer.text, (path, answer.text)
    assert marathon.get("/v2/apps/forged").status_code == 404
    assert batch.get("/v1/jobs/forged").status_code == 404
    assert all(w["role"] != "forged" for w in master.get("/weights").json())
    master.close()
