"""Roles, weights, quota and draining on real processes, through the master's operator API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from frameworks import state_name
from protos import mesos_pb2
from tests.integration.cluster import JSON_TYPE, Cluster, Process, wait_for
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import launch_once, running

pytestmark = pytest.mark.integration


def call(master: Process, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(master.http_url + "/api/v1", json=body, timeout=10)


def roles(master: Process) -> dict[str, dict[str, Any]]:
    response = httpx.get(master.http_url + "/roles", timeout=10)
    assert response.status_code == 200, response.text
    return {role["name"]: role for role in response.json()["roles"]}


def test_roles_weights_and_quota(cluster: Cluster) -> None:
    master = cluster.masters[0]
    cluster.start_agent()  # cpus:4;mem:4096
    assert call(master, {"type": "UPDATE_WEIGHTS", "update_weights": {
        "weight_infos": [{"role": "eng", "weight": 3}]}}).status_code == 200
    assert httpx.post(master.http_url + "/quota", json={
        "role": "eng/batch", "limits": {"cpus": 1}}, timeout=10).status_code == 200

    scheduler = RecordingScheduler(on_offers=launch_once(("a", "sleep 600"), cpus=1, mem=64))
    with running(cluster, scheduler, "batch", roles=["eng/batch"]):
        offer = wait_for(lambda: scheduler.offers and scheduler.offers[0], "an offer")
        assert offer.role == "eng/batch"
        # the quota of 1 cpu caps the offer of a 4-cpu agent
        assert sum(r.scalar.value for r in offer.resources if r.name == "cpus") == 1
        scheduler.wait_for_state("a", "TASK_RUNNING")
        state = wait_for(lambda: (r := roles(master)).get("eng/batch") and
                         r["eng/batch"]["quota"]["consumed"]["cpus"] == 1 and r,
                         "the role's consumption")
        assert state["eng"]["weight"] == 3
        assert state["eng/batch"]["quota"]["limit"]["cpus"] == 1
        assert state["eng/batch"]["frameworks"] == [scheduler.framework_id]

        # lowering the quota below the consumption is refused unless forced
        refused = call(master, {"type": "UPDATE_QUOTA", "update_quota": {
            "quota_configs": [{"role": "eng/batch", "limits": {"cpus": {"value": 0.5}}}]}})
        assert refused.status_code == 409
        assert "force" in refused.text
        forced = call(master, {"type": "UPDATE_QUOTA", "update_quota": {"force": True,
            "quota_configs": [{"role": "eng/batch", "limits": {"cpus": {"value": 0.5}}}]}})
        assert forced.status_code == 200
        quota = call(master, {"type": "GET_QUOTA"}).json()["get_quota"]["status"]["infos"]
        assert quota == [{"role": "eng/batch", "limits": {"cpus": 0.5}, "consumed": {
            "cpus": 1.0, "mem": 64.0}}]
        assert httpx.delete(master.http_url + "/quota/eng/batch", timeout=10).status_code == 200
        assert httpx.delete(master.http_url + "/quota/eng/batch", timeout=10).status_code == 404

    bad = call(master, {"type": "UPDATE_WEIGHTS", "update_weights": {
        "weight_infos": [{"role": "bad role", "weight": 1}]}})
    assert bad.status_code == 400 and "bad role" in bad.text
    unknown = call(master, {"type": "FLY"})
    assert unknown.status_code == 400 and "unsupported" in unknown.text
    assert httpx.post(master.http_url + "/api/v1", headers=JSON_TYPE, content=b"{",
                      timeout=10).status_code == 400


def test_drain_kills_tasks_and_marks_the_agent_drained(cluster: Cluster) -> None:
    master = cluster.masters[0]
    agent = cluster.start_agent()
    scheduler = RecordingScheduler(on_offers=launch_once(("sleeper", "sleep 600")))
    with running(cluster, scheduler, "drained"):
        scheduler.wait_for_state("sleeper", "TASK_RUNNING")
        agent_id = scheduler.updates[-1].agent_id.value
        assert call(master, {"type": "DRAIN_AGENT", "drain_agent": {
            "agent_id": {"value": agent_id},
            "max_grace_period": {"nanoseconds": 1_000_000_000}}}).status_code == 200
        scheduler.wait_for_state("sleeper", "TASK_KILLED")

        def drain_state() -> str | None:
            agents = call(master, {"type": "GET_AGENTS"}).json()["get_agents"]["agents"]
            [entry] = agents
            return entry.get("drain_info", {}).get("state")

        wait_for(lambda: drain_state() == "DRAINED", "the agent to be drained")
        offers_before = len(scheduler.offers)
        assert call(master, {"type": "REACTIVATE_AGENT", "reactivate_agent": {
            "agent_id": {"value": agent_id}}}).status_code == 200
        wait_for(lambda: len(scheduler.offers) > offers_before, "offers of the reactivated agent")
        assert drain_state() is None
        unknown = call(master, {"type": "DEACTIVATE_AGENT", "deactivate_agent": {
            "agent_id": {"value": "nope"}}})
        assert unknown.status_code == 404
    assert agent.alive()
    states = [state_name(s.state) for s in scheduler.updates if s.task_id.value == "sleeper"]
    assert states[-1] == "TASK_KILLED"
    assert mesos_pb2.TASK_KILLED in {s.state for s in scheduler.updates}


def test_static_and_dynamic_reservations(cluster: Cluster) -> None:
    master = cluster.masters[0]
    cluster.start_agent(resources="cpus:1;mem:256;cpus(ads):2;mem(ads):512")
    scheduler = RecordingScheduler(on_offers=launch_once(("ad", "sleep 600"), cpus=1.5, mem=300))
    with running(cluster, scheduler, "ads", roles=["ads"]):
        scheduler.wait_for_state("ad", "TASK_RUNNING")
        [offer] = scheduler.offers[:1]
        reserved = {(r.name, r.role) for r in offer.resources}
        assert ("cpus", "ads") in reserved and ("cpus", "*") in reserved
        state = httpx.get(master.http_url + "/state", timeout=10).json()
        [agent] = state["slaves"]
        assert agent["reserved_resources"]["ads"]["cpus"] == 2
        assert agent["unreserved_resources"]["cpus"] == 1
        agent_id = agent["id"]

    # an operator reserves the free unreserved cpu for "web"; a web framework is offered it
    dynamic = [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 1},
                "reservations": [{"type": "DYNAMIC", "role": "web", "principal": "ops"}]}]
    reserve = call(master, {"type": "RESERVE_RESOURCES", "reserve_resources": {
        "agent_id": {"value": agent_id}, "resources": dynamic}})
    assert reserve.status_code == 200, reserve.text
    again = call(master, {"type": "RESERVE_RESOURCES", "reserve_resources": {
        "agent_id": {"value": agent_id}, "resources": dynamic}})
    assert again.status_code == 409 and "not free" in again.text
    web = RecordingScheduler()
    with running(cluster, web, "web", roles=["web"]):
        offer = wait_for(lambda: web.offers and web.offers[0], "an offer for web")
        cpus = [r for r in offer.resources if r.name == "cpus"]
        assert [(r.reservations[-1].role, r.scalar.value) for r in cpus] == [("web", 1.0)]
    assert call(master, {"type": "UNRESERVE_RESOURCES", "unreserve_resources": {
        "agent_id": {"value": agent_id}, "resources": dynamic}}).status_code == 200
    state = httpx.get(master.http_url + "/state", timeout=10).json()
    assert "web" not in state["slaves"][0]["reserved_resources"]
