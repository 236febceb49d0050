"""Authentication and ownership on a real master (ADR 0013): with --authenticate_frameworks
and --authenticate_agents, calls without a credential are UNAUTHENTICATED; a principal cannot
take over another's framework, register an agent the ACLs do not allow, or re-register under
a real agent's id; the victims keep running."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mesos_security.credentials import AUTHORIZATION_KEY, Credential, basic_authorization
from protos import mesos_pb2
from tests.integration.cluster import Cluster, free_port, running_cluster, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.master_calls import connect_agent
from tests.integration.master_calls import subscribe as subscribe_once
from tests.integration.recording import RecordingScheduler
from tests.integration.test_cli import run_mesos
from tests.integration.test_end_to_end import launch_once, running

pytestmark = pytest.mark.integration

SECRETS = {"marathon": "m-secret", "agent": "a-secret", "intruder": "i-secret"}
ACLS = {"register_agents": [{"principals": {"values": ["agent"]}, "agents": {"type": "ANY"}},
                            {"principals": {"type": "ANY"}, "agents": {"type": "NONE"}}]}


@pytest.fixture
def secure_cluster(tmp_path: Path) -> Iterator[Cluster]:
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": p, "secret": s} for p, s in SECRETS.items()]}))
    (tmp_path / "agent-credential").write_text("agent a-secret\n")
    flags = [*FAST_MASTER_FLAGS, "--authenticate_frameworks", "true",
             "--authenticate_agents", "true", "--credentials", str(credentials),
             "--acls", json.dumps(ACLS)]
    with running_cluster(tmp_path, flags) as cluster:
        yield cluster


def metadata(principal: str, secret: str | None = None) -> tuple[tuple[str, str], ...]:
    credential = Credential(principal, SECRETS[principal] if secret is None else secret)
    return ((AUTHORIZATION_KEY, basic_authorization(credential)),)


async def subscribe(target: str, info: mesos_pb2.FrameworkInfo,
                    credentials: tuple[tuple[str, str], ...]) -> str:
    """The outcome of one subscription: the first event's type, or the refusal."""
    outcome, _ = await subscribe_once(target, info, credentials)
    return outcome


def test_only_authenticated_principals_get_in_and_none_takes_over_another(
    secure_cluster: Cluster, tmp_path: Path,
) -> None:
    target = secure_cluster.master_address
    master = secure_cluster.masters[0]
    state_url = f"http://127.0.0.1:{master.http_port}/state"

    anonymous_agent = secure_cluster.start_agent()
    anonymous_agent.wait_for_log("master refused the agent's principal")
    secure_cluster.agent_flags = ["--credential", str(tmp_path / "agent-credential")]
    secure_cluster.start_agent()
    wait_for(lambda: len(httpx.get(state_url).json()["slaves"]) == 1, "the agent to register")

    info = mesos_pb2.FrameworkInfo(name="victim", user="nobody", failover_timeout=300)
    assert asyncio.run(subscribe(target, info, ())).startswith("UNAUTHENTICATED")
    assert asyncio.run(subscribe(target, info, metadata("marathon", "guess"))).startswith(
        "UNAUTHENTICATED: invalid credential")

    scheduler = RecordingScheduler(on_offers=launch_once(("web", "sleep 300")))
    credential = mesos_pb2.Credential(principal="marathon", secret=b"m-secret")
    with running(secure_cluster, scheduler, "victim", credential=credential,
                 failover_timeout=300):
        scheduler.wait_for_state("web", "TASK_RUNNING")
        assert scheduler.framework_id is not None
        hijack = mesos_pb2.FrameworkInfo(name="victim", user="nobody",
                                         id=mesos_pb2.FrameworkID(value=scheduler.framework_id))
        assert asyncio.run(subscribe(target, hijack, metadata("intruder"))) == (
            f"PERMISSION_DENIED: framework {scheduler.framework_id} belongs to principal "
            f"'marathon'; a scheduler of 'intruder' cannot take it over")

        [agent] = httpx.get(state_url).json()["slaves"]
        fake = mesos_pb2.AgentInfo(hostname="fake")
        made_up = mesos_pb2.AgentInfo(hostname="fake", id=mesos_pb2.AgentID(value="made-up"))
        for forged in (fake, made_up):  # register_agents allows only the principal 'agent'
            assert asyncio.run(connect_agent(target, forged, metadata("intruder"))) == (
                "PERMISSION_DENIED: principal 'intruder' may not register_agents: refused by "
                "ACL register_agents[1]")
        takeover = mesos_pb2.AgentInfo(hostname=agent["hostname"],
                                       id=mesos_pb2.AgentID(value=agent["id"]))
        assert asyncio.run(connect_agent(target, takeover, metadata("intruder"))) == (
            f"PERMISSION_DENIED: agent {agent['id']} registered as principal 'agent'; "
            f"re-registration as 'intruder' refused")

        state = httpx.get(state_url).json()
        [framework] = state["frameworks"]
        assert framework["active"] and framework["principal"] == "marathon"
        assert [t["state"] for t in framework["tasks"]] == ["TASK_RUNNING"]
        assert [a["active"] for a in state["slaves"]] == [True]
        assert not scheduler.errors
        assert {s.task_id.value for s in scheduler.updates} == {"web"}


HTTP_ACLS = {
    "permissive": True,
    "update_weights": [{"principals": {"values": ["ops"]}, "roles": {"type": "ANY"}},
                       {"principals": {"type": "ANY"}, "roles": {"type": "NONE"}}],
    "view_flags": [{"principals": {"values": ["ops"]}, "flags": {"type": "ANY"}},
                   {"principals": {"type": "ANY"}, "flags": {"type": "NONE"}}],
    "access_sandboxes": [{"principals": {"values": ["ops"]}, "users": {"type": "ANY"}},
                         {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}],
    "get_endpoints": [{"principals": {"values": ["ops"]}, "paths": {"type": "ANY"}},
                      {"principals": {"type": "ANY"}, "paths": {"type": "NONE"}}],
    "teardown_frameworks": [{"principals": {"values": ["ops"]},
                             "framework_principals": {"type": "ANY"}},
                            {"principals": {"type": "ANY"},
                             "framework_principals": {"type": "NONE"}}],
    **{action: [{"principals": {"values": ["ops", "viewer"]}, "users": {"type": "ANY"}},
                {"principals": {"values": ["other"]}, "users": {"type": "NONE"}}]
       for action in ("view_frameworks", "view_executors")},
    # The task's user is its framework's ("tester"): only ops sees the tasks.
    "view_tasks": [{"principals": {"values": ["ops"]}, "users": {"values": ["tester"]}},
                   {"principals": {"type": "ANY"}, "users": {"type": "NONE"}}],
}


def test_http_endpoints_need_credentials_and_the_acls_decide(tmp_path: Path) -> None:
    credentials = tmp_path / "http-credentials"
    credentials.write_text("ops ops-secret\nviewer viewer-secret\nother other-secret\n")
    http_flags = ["--authenticate_http_readonly", "true", "--authenticate_http_readwrite",
                  "true", "--http_credentials", str(credentials), "--acls",
                  json.dumps(HTTP_ACLS)]
    ops, viewer = ("ops", "ops-secret"), ("viewer", "viewer-secret")
    with running_cluster(tmp_path, [*FAST_MASTER_FLAGS, *http_flags]) as cluster:
        cluster.agent_flags = http_flags
        agent = cluster.start_agent(http_port=free_port())
        master_url = f"http://127.0.0.1:{cluster.masters[0].http_port}"
        wait_for(lambda: len(httpx.get(f"{master_url}/state", auth=ops).json()["slaves"]) == 1,
                 "the agent to register")
        anonymous = httpx.get(f"{master_url}/state")
        assert anonymous.status_code == 401
        assert anonymous.headers["www-authenticate"] == 'Basic realm="mesos"'
        assert httpx.get(f"{master_url}/state", auth=("ops", "guess")).status_code == 401
        assert httpx.get(f"{master_url}/health").status_code == 200
        as_viewer = run_mesos("--master", master_url, "agents", env={
            "MESOS_PRINCIPAL": "viewer", "MESOS_SECRET": "viewer-secret"})
        assert as_viewer.returncode == 0 and "host1" in as_viewer.stdout, as_viewer.stderr
        anonymous_cli = run_mesos("--master", master_url, "agents", env={})
        assert anonymous_cli.returncode == 1 and "401" in anonymous_cli.stderr
        assert httpx.get(f"{master_url}/state", auth=viewer).json()["flags"] == {}
        assert httpx.get(f"{master_url}/state", auth=ops).json()["flags"]
        assert httpx.get(f"{master_url}/flags", auth=viewer).status_code == 403
        for path in ("/metrics/snapshot", "/metrics"):  # get_endpoints
            denied = httpx.get(f"{master_url}{path}", auth=viewer)
            assert denied.status_code == 403 and "get_endpoints" in denied.text, path
            assert httpx.get(f"{master_url}{path}", auth=ops).status_code == 200, path
        weights = [{"role": "web", "weight": 2}]
        assert httpx.put(f"{master_url}/weights", json=weights).status_code == 401
        refused = httpx.put(f"{master_url}/weights", json=weights, auth=viewer)
        assert refused.status_code == 403 and "update_weights" in refused.text
        assert httpx.put(f"{master_url}/weights", json=weights, auth=ops).status_code == 200
        refused = httpx.post(f"{master_url}/api/v1", auth=viewer, json={
            "type": "UPDATE_WEIGHTS",
            "update_weights": {"weight_infos": [{"role": "web", "weight": 3}]}})
        assert refused.status_code == 403

        scheduler = RecordingScheduler(on_offers=launch_once(("t", "echo hi; sleep 300")))
        with running(cluster, scheduler, "fw"):
            scheduler.wait_for_state("t", "TASK_RUNNING")
            agent_url = f"http://127.0.0.1:{agent.http_port}"
            state = httpx.get(f"{agent_url}/state", auth=ops).json()
            [executor] = [e for f in state["frameworks"] for e in f["executors"]]
            assert [t["id"] for t in executor["tasks"]] == ["t"] and state["flags"]
            # The agent's /state is filtered as the master's: viewer sees the framework and
            # its executor but not the task, other nothing of it.
            seen = httpx.get(f"{agent_url}/state", auth=viewer).json()
            [seen_executor] = [e for f in seen["frameworks"] for e in f["executors"]]
            assert seen_executor["id"] == executor["id"] and seen_executor["tasks"] == []
            assert seen["flags"] == {}
            hidden = httpx.get(f"{agent_url}/state", auth=("other", "other-secret"))
            assert hidden.status_code == 200
            assert hidden.json()["frameworks"] == hidden.json()["completed_frameworks"] == []
            assert state["frameworks"][0]["id"] not in hidden.text
            stdout = {"path": f"{executor['directory']}/stdout"}
            assert httpx.get(f"{agent_url}/files/read", params=stdout).status_code == 401
            denied = httpx.get(f"{agent_url}/files/read", params=stdout, auth=viewer)
            assert denied.status_code == 403 and "access_sandboxes" in denied.text
            assert httpx.get(f"{agent_url}/files/read", params=stdout, auth=ops
                             ).status_code == 200
            assert httpx.get(f"{agent_url}/flags", auth=viewer).status_code == 403
            assert httpx.get(f"{agent_url}/metrics/snapshot", auth=viewer).status_code == 403
            assert httpx.get(f"{agent_url}/metrics/snapshot", auth=ops).status_code == 200
            # Usage is shown for what /state shows: viewer may not see the task (the command
            # task's built-in executor is named after it), ops may.
            statistics = f"{agent_url}/monitor/statistics"
            assert httpx.get(statistics).status_code == 401
            assert [e["executor_id"] for e in httpx.get(statistics, auth=ops).json()] == ["t"]
            assert httpx.get(statistics, auth=viewer).json() == []
            assert httpx.get(f"{agent_url}/containers", auth=viewer).json() == []
            [container] = httpx.get(f"{agent_url}/containers", auth=ops).json()
            assert container["container_id"] == executor["container"]
            # The master's page reads the agent through the master, as its user.
            proxied = f"{master_url}/ui/agent/{state['id']}/monitor/statistics"
            assert httpx.get(proxied).status_code == 401
            assert [e["executor_id"] for e in httpx.get(proxied, auth=ops).json()] == ["t"]
            assert httpx.get(proxied, auth=viewer).json() == []

            teardown = {"type": "TEARDOWN",
                        "teardown": {"framework_id": {"value": scheduler.framework_id}}}
            refused = httpx.post(f"{master_url}/api/v1", json=teardown, auth=viewer)
            assert refused.status_code == 403 and "teardown_frameworks" in refused.text
            assert httpx.post(f"{master_url}/api/v1", json=teardown, auth=ops
                              ).status_code == 200
            assert httpx.get(f"{master_url}/state", auth=ops).json()["frameworks"] == []
            wait_for(lambda: not httpx.get(f"{agent_url}/state", auth=ops).json()["frameworks"],
                     "the agent to kill the framework's task")
            wait_for(lambda: any("torn down by an operator" in e for e in scheduler.errors),
                     "the scheduler to hear why")
