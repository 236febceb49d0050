"""Launch queue: packing offers, reject reasons, backoff, /v2/queue JSON, ids and environment."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from frameworks.placement import AgentView, OfferView, Spreads
from marathon.app_definition import AppDefinition, parse_app
from marathon.constraints import offer_view
from marathon.launch_queue import (
    REASON_FUNNEL,
    LaunchQueue,
    RejectReason,
    app_id_of_task,
    instance_id_of_task,
    new_instance_id,
    task_environment,
    task_id_for,
    task_infos,
)
from marathon.paths import PathId
from mesos_runtime.clock import FakeClock
from mesos_values.attributes import parse_attributes
from mesos_values.resources import Resources
from protos import mesos_pb2

CONFORMANCE = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "marathon"
START = 1456677701.090  # 2016-02-28T16:41:41.090Z


def offer(resources: str = "cpus:4;mem:4096;disk:1000;ports:[31000-31009]",
          host: str = "h1", attributes: str = "", role: str | None = None,
          number: int = 1, image_providers: tuple[str, ...] = ()) -> OfferView:
    message = mesos_pb2.Offer(hostname=host, image_providers=image_providers)
    message.id.value = f"offer-{number}"
    message.agent_id.value = f"agent-{host}"
    message.resources.extend(Resources.parse(resources).to_proto())
    if role is not None:
        for resource in message.resources:
            resource.role = role
    message.attributes.extend(parse_attributes(attributes))
    return offer_view(message)


def app(app_id: str = "/foo", **fields: Any) -> AppDefinition:
    return parse_app({"id": app_id, "cmd": "sleep 1000", "version": "2015-09-30T09:09:17.614Z",
                      **fields})


def queue(clock: FakeClock | None = None, **kwargs: Any) -> LaunchQueue:
    counter = itertools.count()
    return LaunchQueue(clock or FakeClock(START), uuid_factory=lambda: f"u{next(counter)}",
                       **kwargs)


def test_packs_as_many_instances_as_fit_with_distinct_ports() -> None:
    q = queue()
    q.add(app(cpus=1, mem=128, portDefinitions=[{"port": 0}, {"port": 0}]), 10)
    match = q.match_offer(offer())
    assert match.used and len(match.launches) == 4  # cpus 4 / 1
    ports = [p for d in match.launches for p in d.host_ports]
    assert ports == list(range(31000, 31008))
    assert [d.instance_id for d in match.launches][:2] == ["foo.instance-u0", "foo.instance-u1"]
    assert q.count(PathId.parse("/foo")) == 6
    assert match.rejections == {}


def test_queue_entry_disappears_when_everything_launched() -> None:
    q = queue()
    q.add(app(cpus=0.5), 2)
    assert len(q.match_offer(offer()).launches) == 2
    assert q.queued_apps() == []
    with pytest.raises(KeyError):
        q.queue_json(PathId.parse("/foo"))


def test_several_apps_share_one_offer_in_queue_order() -> None:
    q = queue()
    q.add(app("/a", cpus=3), 1)
    q.add(app("/b", cpus=2), 1)
    q.add(app("/c", cpus=1), 1)
    match = q.match_offer(offer())
    assert [str(d.app.id) for d in match.launches] == ["/a", "/c"]
    assert match.rejections == {PathId.parse("/b"): (RejectReason.INSUFFICIENT_CPUS,)}


@pytest.mark.parametrize(("fields", "the_offer", "reasons"), [
    ({"mem": 8000}, offer(), ("InsufficientMemory",)),
    ({"cpus": 8, "disk": 5000}, offer(), ("InsufficientCpus", "InsufficientDisk")),
    ({"gpus": 1}, offer(), ("InsufficientGpus",)),
    ({"requirePorts": True, "portDefinitions": [{"port": 8080}]}, offer(),
     ("InsufficientPorts",)),
    ({"portDefinitions": [{"port": 0}] * 11}, offer(), ("InsufficientPorts",)),
    ({"acceptedResourceRoles": ["prod"]}, offer(), ("UnfulfilledRole",)),
    ({"constraints": [["rack", "IS", "r2"]]}, offer(attributes="rack:r1"),
     ("UnfulfilledConstraint",)),
    ({}, offer("cpus:4;mem:4096;gpus:1;ports:[1-2]"), ("DeclinedScarceResources",)),
], ids=["mem", "cpus-and-disk", "gpus", "required-port", "port-count", "role", "constraint",
        "scarce-gpus"])
def test_reject_reasons(fields: dict[str, Any], the_offer: OfferView,
                        reasons: tuple[str, ...]) -> None:
    q = queue()
    q.add(app(**fields), 1)
    match = q.match_offer(the_offer)
    assert not match.used
    assert [r.value for r in match.rejections[PathId.parse("/foo")]] == list(reasons)


def test_required_ports_are_taken_as_declared() -> None:
    q = queue()
    q.add(app(requirePorts=True, portDefinitions=[{"port": 31005}, {"port": 0}]), 2)
    match = q.match_offer(offer())
    assert [d.host_ports for d in match.launches] == [(31005, 31000)]
    assert match.rejections == {}  # the app launched one instance: the offer was used


def test_gpu_apps_and_the_override_label_may_use_gpu_offers() -> None:
    q = queue()
    q.add(app("/gpu", gpus=1), 1)
    q.add(app("/plain", labels={"GPU_SCHEDULING_BEHAVIOR": "unrestricted"}), 1)
    gpu_offer = "cpus:4;mem:4096;gpus:1;ports:[1-2]"
    assert len(q.match_offer(offer(gpu_offer)).launches) == 2
    relaxed = queue(restrict_gpus=False)
    relaxed.add(app(), 1)
    assert relaxed.match_offer(offer(gpu_offer)).used


def test_constraints_see_instances_placed_before_and_earlier_in_the_round() -> None:
    q = queue()
    q.add(app(cpus=0.1, constraints=[["hostname", "UNIQUE"]]), 3)
    spreads: Spreads[PathId] = Spreads(lambda app_id: [AgentView("h3")])
    assert len(q.match_offer(offer(host="h1"), spreads).launches) == 1  # one per host
    again = q.match_offer(offer(host="h1", number=2), spreads)
    assert again.rejections[PathId.parse("/foo")] == (RejectReason.UNFULFILLED_CONSTRAINT,)
    assert not q.match_offer(offer(host="h3", number=3), spreads).used  # placed before
    assert len(q.match_offer(offer(host="h2", number=4), spreads).launches) == 1


def test_agent_maintenance_rejects() -> None:
    q = queue()
    q.add(app(), 1)
    match = q.match_offer(offer(), agent_under_maintenance=True)
    assert match.rejections[PathId.parse("/foo")] == (RejectReason.AGENT_MAINTENANCE,)


def test_backoff_grows_caps_skips_and_resets() -> None:
    clock = FakeClock(START)
    q = queue(clock)
    failing = app(backoffSeconds=10, backoffFactor=2, maxLaunchDelaySeconds=30)
    q.add(failing, 1)
    app_id = failing.id
    delays = []
    for _ in range(4):
        q.task_failed(failing)
        delays.append(q.delay_left(app_id))
    assert delays == [10, 20, 30, 30]
    assert not q.match_offer(offer()).used  # delayed apps are not offered anything
    assert q.queue_json(app_id)["delay"] == {"timeLeftSeconds": 30, "overdue": False}
    clock.advance(30)
    assert q.delay_left(app_id) == 0
    q.task_failed(failing)
    assert q.delay_left(app_id) == 30  # the delay stays at its cap until reset
    q.reset_delay(app_id)
    assert q.delay_left(app_id) == 0
    q.task_failed(failing)
    assert q.delay_left(app_id) == 10
    q.instance_running(app_id, running_for=5, healthy=None)
    assert q.delay_left(app_id) == 10
    q.instance_running(app_id, running_for=61, healthy=None)
    assert q.delay_left(app_id) == 0
    q.task_failed(failing)
    q.instance_running(app_id, running_for=1, healthy=True)
    assert q.delay_left(app_id) == 0


def test_new_app_version_starts_backoff_afresh() -> None:
    q = queue()
    old = app(backoffSeconds=10, backoffFactor=2)
    q.task_failed(old)
    q.task_failed(old)
    newer = app(backoffSeconds=10, backoffFactor=2, cmd="sleep 1",
                version="2016-01-01T00:00:00.000Z")
    q.add(newer, 1)
    assert q.delay_left(newer.id) == 0
    assert q.match_offer(offer()).used


def test_queue_json_matches_the_conformance_shape() -> None:
    expected = json.loads((CONFORMANCE / "queue.json").read_text())["queue"][1]
    clock = FakeClock(START)
    q = queue(clock)
    q.add(app(cpus=0.5, mem=128, constraints=[["hostname", "UNIQUE"]]), 2)
    app_id = PathId.parse("/foo")
    q.match_offer(offer("cpus:0.1;mem:4096;ports:[1-1]"))                   # cpus
    q.match_offer(offer("cpus:1;mem:64;ports:[1-1]", host="h2", number=2))  # memory
    q.match_offer(offer("cpus:0.1;mem:1;ports:[1-1]", host="h2", number=3))  # both
    launched = q.match_offer(offer(host="h3", number=4))           # used: 1 launch
    assert len(launched.launches) == 1
    body = q.queue_json(app_id, embed_last_unused_offers=True)
    assert set(body) == set(expected)
    assert set(body["processedOffersSummary"]) == set(expected["processedOffersSummary"])
    assert body["count"] == 1 and body["role"] == "*"
    assert body["since"] == "2016-02-28T16:41:41.090Z"
    assert body["delay"] == {"timeLeftSeconds": 0, "overdue": True}
    summary = body["processedOffersSummary"]
    assert (summary["processedOffersCount"], summary["unusedOffersCount"]) == (4, 3)
    attempt = {s["reason"]: (s["declined"], s["processed"])
               for s in summary["rejectSummaryLaunchAttempt"]}
    assert [s["reason"] for s in summary["rejectSummaryLaunchAttempt"]] == [
        r.value for r in REASON_FUNNEL]
    assert attempt["UnfulfilledRole"] == (0, 4)
    assert attempt["InsufficientCpus"] == (2, 4)   # h1 and the last h2 offer: cpus come first
    assert attempt["InsufficientMemory"] == (1, 2)
    assert attempt["InsufficientDisk"] == (0, 1)
    last = {s["reason"]: (s["declined"], s["processed"])
            for s in summary["rejectSummaryLastOffers"]}
    assert last["InsufficientCpus"] == (2, 2)      # the latest unused offer per agent: h1, h2
    assert [u["reason"] for u in body["lastUnusedOffers"]] == [
        ["InsufficientCpus"], ["InsufficientCpus", "InsufficientMemory"]]
    unused = body["lastUnusedOffers"][0]
    assert set(unused) == set(expected["lastUnusedOffers"][0])
    assert set(unused["offer"]) == set(expected["lastUnusedOffers"][0]["offer"])
    assert unused["offer"]["resources"][0] == {"name": "cpus", "role": "*", "scalar": 0.1}
    assert "lastUnusedOffers" not in q.queue_json(app_id)
    assert q.queue_json_all()["queue"][0]["app"]["id"] == "/foo"


def test_ids_follow_marathon_and_parse_back() -> None:
    instance = new_instance_id(PathId.parse("/minecraft/survival-world"),
                               lambda: "564bd685-4c30-11e5-98c1-be5b2935a987")
    fixture_task = json.loads((CONFORMANCE / "app_tasks.json").read_text())["tasks"][0]
    assert instance == fixture_task["id"]
    task = task_id_for(instance)
    assert task == instance + "._app.1"
    assert instance_id_of_task(task) == instance
    assert app_id_of_task(task) == PathId.parse(fixture_task["appId"])
    assert app_id_of_task(fixture_task["id"]) == PathId.parse(fixture_task["appId"])
    legacy = "foo.0664256e-6771-11e5-94e1-be5b2935a987"  # events.txt, Marathon < 1.5
    assert app_id_of_task(legacy) == PathId.parse("/foo")
    assert instance_id_of_task(legacy) == "foo.marathon-0664256e-6771-11e5-94e1-be5b2935a987"
    with pytest.raises(ValueError):
        instance_id_of_task("nodots")


def test_task_environment() -> None:
    definition = parse_app({
        "id": "/prod/web", "cmd": "x", "version": "2015-09-30T09:09:17.614Z", "cpus": 0.5,
        "mem": 64, "env": {"HOST": "mine", "MINE": "1"},
        "labels": {"team": "core", "lb.vhost": "x.org"},
        "portDefinitions": [{"port": 10010, "name": "http"}, {"port": 0}],
        "container": {"type": "MESOS", "docker": {"image": "nginx"}}})
    env = task_environment(definition, task_id="t1", host="h1", host_ports=[31001, 31002])
    assert env == {
        "MINE": "1", "HOST": "h1", "MESOS_TASK_ID": "t1", "MARATHON_APP_ID": "/prod/web",
        "MARATHON_APP_VERSION": "2015-09-30T09:09:17.614Z",
        "MARATHON_APP_DOCKER_IMAGE": "nginx",
        "MARATHON_APP_RESOURCE_CPUS": "0.5", "MARATHON_APP_RESOURCE_MEM": "64.0",
        "MARATHON_APP_RESOURCE_DISK": "0.0", "MARATHON_APP_RESOURCE_GPUS": "0",
        "MARATHON_APP_LABELS": "TEAM LB_VHOST", "MARATHON_APP_LABEL_TEAM": "core",
        "MARATHON_APP_LABEL_LB_VHOST": "x.org",
        "PORT0": "31001", "PORT1": "31002", "PORT": "31001", "PORTS": "31001,31002",
        "PORT_10010": "31001", "PORT_HTTP": "31001"}


def test_launch_decision_builds_the_sdk_task_info() -> None:
    q = queue()
    q.add(app("/prod/web", cpus=0.5, mem=64, user="nobody", taskKillGracePeriodSeconds=3,
              fetch=[{"uri": "http://h/a.tgz"}], labels={"team": "core"}), 1)
    decision = q.match_offer(offer()).launches[0]
    task = decision.task_info()
    assert task.task_id.value == decision.task_id == "prod_web.instance-u0._app.1"
    assert task.agent_id.value == "agent-h1" and task.name == "web.prod"
    assert Resources.from_proto(task.resources) == Resources.parse(
        "cpus:0.5;mem:64;ports:[31000-31000]")
    variables = {v.name: v.value for v in task.command.environment.variables}
    assert variables["PORT0"] == "31000" and variables["MARATHON_APP_ID"] == "/prod/web"
    assert task.command.value == "sleep 1000" and task.command.user == "nobody"
    assert [u.value for u in task.command.uris] == ["http://h/a.tgz"]
    assert task.kill_policy.grace_period.nanoseconds == 3_000_000_000
    assert not task.kill_policy.HasField("sigterm_delay")
    assert [(label.key, label.value) for label in task.labels.labels] == [("team", "core")]
    # Marathon's --sigterm_delay: the task leaves load balancers before its SIGTERM.
    delayed = decision.task_info(sigterm_delay=1.5).kill_policy
    assert (delayed.grace_period.nanoseconds, delayed.sigterm_delay.nanoseconds) == \
        (3_000_000_000, 1_500_000_000)


@pytest.mark.parametrize("fields", [
    {"portDefinitions": [], "env": {"MESOS_TASK_ID": "mine", "A": "1"}},
    {"portDefinitions": [{"port": 0}, {"port": 0, "name": "http"}], "labels": {"team": "core"}},
    {"cmd": None, "args": ["--port", "80"], "portDefinitions": [],
     "container": {"type": "DOCKER", "docker": {"image": "nginx"}},
     "healthChecks": [{"protocol": "COMMAND", "command": {"value": "true"}}]},
], ids=["no-ports", "ports-labels", "docker-health-check"])
def test_task_infos_equal_one_build_per_decision(fields: dict[str, Any]) -> None:
    q = queue()
    q.add(app("/web", cpus=0.1, mem=16, **fields), 4)
    q.add(app("/other", cpus=0.1, mem=16, portDefinitions=[]), 2)
    decisions = [*q.match_offer(offer(image_providers=("docker",))).launches,
                 *q.match_offer(offer(host="h2", number=2,
                                      image_providers=("docker",))).launches]
    assert len(decisions) == 6
    tasks = task_infos(decisions, sigterm_delay=2.0)
    assert tasks == [d.task_info(sigterm_delay=2.0) for d in decisions]
    assert len({task.task_id.value for task in tasks}) == 6


def test_set_count_and_purge() -> None:
    q = queue()
    definition = app()
    q.add(definition, 5)
    q.set_count(definition, 2)
    assert q.count(definition.id) == 2
    q.set_count(definition, 0)
    assert q.count(definition.id) == 0
    q.add(definition, 1)
    q.purge(definition.id)
    assert q.queued_apps() == []
    with pytest.raises(ValueError):
        q.add(definition, -1)


def test_image_apps_become_image_tasks() -> None:
    q = queue()
    q.add(app("/mesos", container={
        "type": "MESOS", "docker": {"image": "team/web:1", "forcePullImage": True},
        "volumes": [{"hostPath": "/srv/data", "containerPath": "/data", "mode": "RO"}]}), 1)
    task = q.match_offer(offer(image_providers=("docker",))).launches[0].task_info()
    assert task.container.type == mesos_pb2.ContainerInfo.MESOS
    assert task.container.mesos.image.docker.name == "team/web:1"
    assert task.container.mesos.image.HasField("cached") and not task.container.mesos.image.cached
    [volume] = task.container.volumes
    assert (volume.host_path, volume.container_path, volume.mode) == (
        "/srv/data", "/data", mesos_pb2.Volume.RO)
    assert task.command.value == "sleep 1000"  # its cmd, run by the image's shell

    q = queue()
    q.add(app("/docker", cmd=None, args=["--port", "80"],
              container={"type": "DOCKER", "docker": {"image": "nginx"}}), 1)
    task = q.match_offer(offer(image_providers=("docker",))).launches[0].task_info()
    assert task.container.type == mesos_pb2.ContainerInfo.DOCKER
    assert task.container.docker.image == "nginx" and not task.container.HasField("mesos")
    # No cmd: the image's Entrypoint runs, with `args` as its arguments.
    assert not task.command.value and not task.command.shell
    assert list(task.command.arguments) == ["--port", "80"]


def test_image_apps_wait_for_agents_that_run_images_and_the_queue_says_why() -> None:
    q = queue()
    q.add(app("/img", container={"type": "MESOS", "docker": {"image": "busybox"}}), 1)
    q.add(app("/plain"), 1)
    match = q.match_offer(offer())
    assert [d.app.id for d in match.launches] == [PathId.parse("/plain")]
    assert match.rejections[PathId.parse("/img")] == (RejectReason.NO_IMAGE_PROVIDER,)
    summary = q.queue_json(PathId.parse("/img"))["processedOffersSummary"]
    assert {"reason": "NoImageProvider", "declined": 1, "processed": 1} in summary[
        "rejectSummaryLastOffers"]
    assert q.match_offer(offer(image_providers=("docker",), number=2)).launches


def test_a_command_health_check_goes_to_the_agent_with_the_task() -> None:
    q = queue()
    q.add(app("/checked", healthChecks=[
        {"protocol": "HTTP", "portIndex": 0},
        {"protocol": "COMMAND", "command": {"value": "test -f ready"}, "delaySeconds": 2,
         "intervalSeconds": 7, "timeoutSeconds": 3, "maxConsecutiveFailures": 4,
         "gracePeriodSeconds": 60}], portDefinitions=[{"port": 0}]), 1)
    task = q.match_offer(offer()).launches[0].task_info()
    check = task.health_check
    assert check.type == mesos_pb2.HealthCheck.COMMAND
    assert check.command.value == "test -f ready" and check.command.shell
    assert (check.delay_seconds, check.interval_seconds, check.timeout_seconds,
            check.consecutive_failures, check.grace_period_seconds) == (2, 7, 3, 4, 60)
    q = queue()
    q.add(app("/zeros", healthChecks=[{"protocol": "COMMAND", "command": {"value": "true"},
                                        "intervalSeconds": 0, "timeoutSeconds": 0}]), 1)
    zeros = q.match_offer(offer()).launches[0].task_info().health_check
    assert not zeros.HasField("interval_seconds") and not zeros.HasField("timeout_seconds")
    q = queue()
    q.add(app("/http", healthChecks=[{"protocol": "HTTP", "portIndex": 0}],
              portDefinitions=[{"port": 0}]), 1)
    assert not q.match_offer(offer()).launches[0].task_info().HasField("health_check")
