"""Marathon 1.9's role, acceptedResourceRoles and GPU rules on changed apps, and
`preview_root` (dryRun), on the pure core."""

from __future__ import annotations

from typing import Any

import pytest

from marathon.app_definition import parse_app
from marathon.app_rules import AppRules, check_app_rules
from marathon.core import MarathonCore
from marathon.groups import Group, put_app, put_group
from marathon.paths import ROOT, PathId
from marathon.validation import AppValidationError
from tests.unit.marathon.harness import World

RULES = AppRules(mesos_role="marathon")


def errors(original: Group, body: dict[str, Any], rules: AppRules = RULES) -> dict[str, list[str]]:
    target = put_app(original, parse_app({"cmd": "sleep 1", **body}))
    try:
        check_app_rules(original, target, rules)
    except AppValidationError as error:
        return {d["path"]: d["errors"] for d in error.to_json()["details"]}
    return {}


def test_roles_follow_marathons_role_settings() -> None:
    root = Group(ROOT)
    assert errors(root, {"id": "/a", "role": "marathon"}) == {}
    assert errors(root, {"id": "/a", "role": "dev"}) == {
        "/a/role": ["got dev, expected one of: [marathon]"]}
    # Below a top-level group: its name too, unless the group enforces its role (then only it).
    assert errors(root, {"id": "/dev/a", "role": "dev"}) == {}
    assert errors(root, {"id": "/dev/a", "role": "marathon"}) == {}
    assert errors(root, {"id": "/dev/a", "role": "ops"}) == {
        "/dev/a/role": ["got ops, expected one of: [dev, marathon]"]}
    enforced = put_group(root, Group(PathId.parse("/dev"), enforce_role=True))
    assert errors(enforced, {"id": "/dev/a", "role": "marathon"}) == {
        "/dev/a/role": ["got marathon, expected one of: [dev]"]}
    # An app keeps the role it has.
    existing = put_app(root, parse_app({"id": "/a", "cmd": "sleep 1", "role": "legacy"}))
    assert errors(existing, {"id": "/a", "role": "legacy", "instances": 3}) == {}


def test_accepted_resource_roles_name_only_the_unreserved_and_the_apps_role() -> None:
    root = Group(ROOT)
    assert errors(root, {"id": "/a", "acceptedResourceRoles": ["*"]}) == {}
    assert errors(root, {"id": "/a", "acceptedResourceRoles": ["*", "marathon"]}) == {}
    assert errors(root, {"id": "/a", "acceptedResourceRoles": ["slave_public"]}) == {
        "/a/acceptedResourceRoles": ["acceptedResourceRoles can only contain * and marathon"]}
    unreserved = AppRules()
    assert errors(root, {"id": "/a", "acceptedResourceRoles": ["slave_public"]},
                  unreserved) == {
        "/a/acceptedResourceRoles": ["acceptedResourceRoles can only contain *"]}
    enforced = put_group(root, Group(PathId.parse("/dev"), enforce_role=True))
    assert errors(enforced, {"id": "/dev/a", "acceptedResourceRoles": ["dev"]}) == {}


def test_gpus_need_the_gpu_resources_feature_and_no_docker() -> None:
    root = Group(ROOT)
    assert errors(root, {"id": "/a", "gpus": 1}) == {"/a": [
        "Feature gpu_resources is not enabled. Enable with --enable_features gpu_resources"]}
    gpu = AppRules(features=frozenset({"gpu_resources"}))
    assert errors(root, {"id": "/a", "gpus": 1}, gpu) == {}
    assert errors(root, {"id": "/a", "gpus": 1, "container": {
        "type": "DOCKER", "docker": {"image": "x"}}}, gpu) == {
        "/a": ["GPU resources only work with the Mesos containerizer"]}
    assert errors(root, {"id": "/a", "gpus": 0}) == {}


def test_unchanged_apps_are_not_checked_again() -> None:
    stored = put_app(Group(ROOT), parse_app({"id": "/old", "cmd": "x", "gpus": 1}))
    check_app_rules(stored, put_app(stored, parse_app({"id": "/new", "cmd": "x"})), RULES)


def test_the_core_refuses_an_app_breaking_the_rules() -> None:
    world = World()
    with pytest.raises(AppValidationError):
        world.deploy_app({"id": "/a", "cmd": "sleep 1", "role": "other"})
    assert world.core.root.app(PathId.parse("/a")) is None and not world.core.deployments


def test_a_preview_plans_the_change_without_storing_or_starting_it() -> None:
    world = World()
    core: MarathonCore = world.core
    writes = len(world.sink.entries)
    app = parse_app({"id": "/a", "cmd": "sleep 1", "instances": 2})
    plan = core.preview_root(lambda root: put_app(root, app))
    assert [a.to_json() for s in plan.steps for a in s.actions] == [
        {"action": "StartApplication", "app": "/a"}, {"action": "ScaleApplication", "app": "/a"}]
    assert core.root.app(app.id) is None and not core.deployments and not world.events
    assert len(world.sink.entries) == writes
    with pytest.raises(AppValidationError):
        core.preview_root(lambda root: put_app(root, app.replace(role="other")))


def test_docker_only_settings_are_refused_saying_why() -> None:
    root = Group(ROOT)
    docker = {"type": "DOCKER", "docker": {"image": "nginx"}}
    assert errors(root, {"id": "/a", "container": docker}) == {}
    assert errors(root, {"id": "/a", "container": {
        **docker, "docker": {"image": "nginx", "privileged": True,
                             "parameters": [{"key": "cap-add", "value": "ALL"}]}}}) == {
        "/a/container/docker/privileged": [
            "privileged containers are not supported: this cluster runs Docker images with "
            "runc, without a Docker daemon"],
        "/a/container/docker/parameters": [
            "docker run parameters are not supported: this cluster runs Docker images with "
            "runc, without a Docker daemon"]}
    bridged = errors(root, {"id": "/a", "container": {
        **docker, "docker": {"image": "nginx", "network": "BRIDGE",
                             "portMappings": [{"containerPort": 80}]}}})
    assert list(bridged) == ["/a/container/docker/network"]
    assert "share the host's network" in bridged["/a/container/docker/network"][0]
    mapped = errors(root, {"id": "/a", "networks": [{"mode": "container/bridge"}],
                           "container": {**docker, "portMappings": [{"containerPort": 80}]}})
    assert list(mapped) == ["/a/container/portMappings"]
