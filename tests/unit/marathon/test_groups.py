"""Group trees: the conformance payload, nested 422 paths, updates, versions, dependencies."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from marathon.app_definition import parse_app
from marathon.groups import (
    CYCLIC_DEPENDENCIES,
    Group,
    apply_group_update,
    assign_service_ports,
    assign_versions,
    dependency_levels,
    effective_dependencies,
    parse_group,
    parse_group_update,
    put_app,
    remove_app,
    remove_group,
    service_ports,
    to_json,
    validate_root,
)
from marathon.paths import ROOT, PathId
from marathon.validation import INVALID_JSON, OBJECT_NOT_VALID, AppValidationError

CONFORMANCE = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "marathon"


def p(text: str) -> PathId:
    return PathId.parse(text)


def rejection(body: object, **kwargs: Any) -> AppValidationError:
    with pytest.raises(AppValidationError) as caught:
        parse_group(body, **kwargs)
    return caught.value


def app(app_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": app_id, "cmd": "sleep 1000", **fields}


def test_conformance_group_parses_round_trips_and_looks_up() -> None:
    root = parse_group(json.loads((CONFORMANCE / "group.json").read_text()))
    assert root.id == ROOT and root.version == "2015-09-17T10:38:20.875Z"
    assert [str(a.id) for a in root.transitive_apps()] == [
        "/tools/oauth-server", "/tools/datadog-agent", "/tools/docker/registry"]
    assert [str(g.id) for g in root.transitive_groups()] == [
        "/", "/tools", "/tools/log", "/tools/docker"]
    registry = root.app(p("/tools/docker/registry"))
    assert registry is not None and registry.mem == 4096
    assert root.app(p("/tools/docker")) is None and root.group(p("/nope")) is None
    assert parse_group(json.loads(json.dumps(to_json(root)))) == root
    body = to_json(root)
    assert set(body) == {"id", "apps", "groups", "pods", "dependencies", "version"}


def test_relative_ids_resolve_against_enclosing_groups() -> None:
    group = parse_group({"id": "prod", "apps": [app("web")],
                         "groups": [{"id": "db", "apps": [app("/org/prod/db/pg")]}]},
                        base=p("/org"))
    assert group.id == p("/org/prod")
    assert list(group.apps) == [p("/org/prod/web")]
    assert group.app(p("/org/prod/db/pg")) is not None
    outside = rejection({"id": "prod", "groups": [{"id": "db", "apps": [app("/prod/db/pg")]}]},
                        base=p("/org"))
    assert outside.errors_at("/groups(0)/apps(0)/id") == [
        "Identifier is not child of /org/prod/db. Hint: use relative paths."]
    nested = parse_group({"id": "/prod", "groups": [{"id": "db", "apps": [app("pg")]}]})
    assert nested.app(p("/prod/db/pg")) is not None


def test_reading_errors_are_reported_first_with_nested_paths() -> None:
    error = rejection({"id": "/prod", "apps": [app("a", cpus=-1)],
                       "groups": [{"id": "b", "apps": [app("c", mem="lots")]},
                                  {"id": "/elsewhere/x"}]})
    assert error.message == INVALID_JSON
    assert error.to_json()["details"] == [
        {"path": "/apps(0)/cpus", "errors": ["error.min"]},
        {"path": "/groups(0)/apps(0)/mem", "errors": ["error.expected.jsnumber"]}]


def test_validation_errors_nest_under_apps_and_groups() -> None:
    error = rejection({"id": "/prod", "apps": [{"id": "a"}],
                       "groups": [{"id": "/elsewhere/x"}, {"id": "ok", "dependencies": ["x"]}]})
    assert error.message == OBJECT_NOT_VALID
    assert error.errors_at("/groups(0)/id") == [
        "Identifier is not child of /prod. Hint: use relative paths."]
    assert error.errors_at("/apps(0)") == [
        "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."]
    assert rejection({"apps": [app("x")], "groups": [{"id": "x"}]}).errors_at("/") == [
        "Groups and Applications may not have the same identifier."]
    assert rejection({"groups": [{"apps": []}]}).errors_at("/groups(0)/id") == [
        "error.path.missing"]
    assert rejection({"id": "/a", "scaleBy": "2"}).errors_at("/scaleBy") == [
        "error.expected.jsnumber"]
    assert rejection([]).errors_at("/") == ["error.expected.jsobject"]


def test_put_app_creates_groups_and_remove_cleans_up() -> None:
    root = put_app(Group(ROOT), parse_app(app("/a/b/c")))
    assert [str(g.id) for g in root.transitive_groups()] == ["/", "/a", "/a/b"]
    assert root.app(p("/a/b/c")) is not None
    root = put_app(root, parse_app(app("/a/b/c", instances=3)))
    found = root.app(p("/a/b/c"))
    assert found is not None and found.instances == 3
    assert remove_app(root, p("/a/b/c")).app(p("/a/b/c")) is None
    assert remove_app(root, p("/zz/top")) == root
    assert remove_group(root, p("/a")).group(p("/a")) is None
    assert list(remove_group(root, ROOT).transitive_groups()) == [Group(ROOT)]


def test_group_update_replaces_given_fields_and_keeps_others() -> None:
    root = parse_group({"id": "/", "groups": [
        {"id": "prod", "dependencies": ["/infra"],
         "apps": [app("web", instances=2), app("api", instances=3)],
         "groups": [{"id": "batch", "apps": [app("job")]}]}]})
    update = parse_group_update({"apps": [app("web", instances=5)]}, base=p("/prod"))
    after = apply_group_update(root, update)
    prod = after.group(p("/prod"))
    assert prod is not None and list(prod.apps) == [p("/prod/web")]
    assert prod.dependencies == (p("/infra"),)
    assert after.app(p("/prod/batch/job")) is not None  # groups not in the body are kept
    emptied = apply_group_update(root, parse_group_update({"groups": []}, base=p("/prod")))
    assert emptied.group(p("/prod/batch")) is None


def test_scale_by_multiplies_every_app_rounding_up() -> None:
    root = parse_group({"id": "/", "groups": [
        {"id": "prod", "apps": [app("web", instances=3)],
         "groups": [{"id": "db", "apps": [app("pg", instances=1)]}]}]})
    scaled = apply_group_update(root, parse_group_update({"scaleBy": 1.5}, base=p("/prod")))
    assert [a.instances for a in scaled.transitive_apps()] == [5, 2]  # ceil(4.5), ceil(1.5)
    with pytest.raises(KeyError):
        apply_group_update(root, parse_group_update({"scaleBy": 2}, base=p("/missing")))


def test_versions_distinguish_scaling_from_config_changes() -> None:
    original = assign_versions(Group(ROOT), put_app(put_app(
        Group(ROOT), parse_app(app("/a"))), parse_app(app("/b"))), "v1")
    a1 = original.app(p("/a"))
    assert a1 is not None and a1.version == "v1"
    assert a1.version_info == {"lastScalingAt": "v1", "lastConfigChangeAt": "v1"}
    target = put_app(original, parse_app(app("/a", instances=4)))
    target = put_app(target, parse_app(app("/b", cmd="sleep 5")))
    target = put_app(target, parse_app(app("/c")))
    stamped = assign_versions(original, target, "v2")
    a2, b2, c2 = (stamped.app(p(x)) for x in ("/a", "/b", "/c"))
    assert a2 is not None and b2 is not None and c2 is not None
    assert a2.version_info == {"lastScalingAt": "v2", "lastConfigChangeAt": "v1"}
    assert b2.version_info == {"lastScalingAt": "v2", "lastConfigChangeAt": "v2"}
    assert c2.version == "v2" and stamped.version == "v2"
    unchanged = assign_versions(stamped, stamped, "v3")
    kept = unchanged.app(p("/a"))
    assert kept is not None and kept.version == "v2"


def dependent_root() -> Group:
    return parse_group({"id": "/", "groups": [
        {"id": "infra", "apps": [app("db"), app("cache", dependencies=["db"])]},
        {"id": "web", "dependencies": ["/infra"],
         "apps": [app("front", dependencies=["../web/api"]), app("api")]}]})


def test_effective_dependencies_include_group_dependencies() -> None:
    root = dependent_root()
    assert effective_dependencies(root, p("/infra/cache")) == {p("/infra/db")}
    assert effective_dependencies(root, p("/web/api")) == {p("/infra/db"), p("/infra/cache")}
    assert effective_dependencies(root, p("/web/front")) == {
        p("/infra/db"), p("/infra/cache"), p("/web/api")}
    levels = [[str(a.id) for a in level] for level in dependency_levels(root)]
    assert levels == [["/infra/db"], ["/infra/cache"], ["/web/api"], ["/web/front"]]
    validate_root(root)
    with pytest.raises(KeyError):
        effective_dependencies(root, p("/nope"))


@pytest.mark.parametrize("apps", [
    [app("/a", dependencies=["/b"]), app("/b", dependencies=["/a"])],
    [app("/a", dependencies=["/a"])],
    [app("/a", dependencies=["/b"]), app("/b", dependencies=["/g"])],
], ids=["two-apps", "self", "via-group-dependency"])
def test_cycles_are_rejected_with_marathons_message(apps: list[dict[str, Any]]) -> None:
    root = parse_group({"id": "/", "apps": apps,
                        "groups": [{"id": "g", "dependencies": ["/a"], "apps": [app("c")]}]})
    with pytest.raises(AppValidationError) as caught:
        validate_root(root)
    assert caught.value.errors_at("/") == [CYCLIC_DEPENDENCIES]
    with pytest.raises(ValueError, match="cyclic"):
        dependency_levels(root)


def test_unknown_dependencies_are_ignored() -> None:
    root = parse_group({"id": "/", "apps": [app("/a", dependencies=["/ghost"])]})
    assert effective_dependencies(root, p("/a")) == frozenset()
    validate_root(root)


SEGMENT_ERROR = "must fully match regular expression"


def test_an_app_in_a_group_no_body_may_name_is_refused() -> None:
    """`POST /v2/groups/__main__` with app `web` would store `/__main__/web`."""
    caught = rejection({"apps": [app("web")]}, base=p("/__main__"))
    assert caught.message == OBJECT_NOT_VALID
    assert [e.split(" '")[0] for e in caught.errors_at("/apps(0)/id")] == [SEGMENT_ERROR]


@pytest.mark.parametrize("base", ["/__main__", "/æÊÚl"])
def test_every_group_and_app_id_of_a_root_is_checked_before_it_is_stored(base: str) -> None:
    update = parse_group_update({"id": "x"}, base=p(base))
    with pytest.raises(AppValidationError) as caught:
        validate_root(apply_group_update(Group(ROOT), update))
    assert [e.split(" '")[0] for e in caught.value.errors_at(base)] == [SEGMENT_ERROR]
    assert [e.split(" '")[0] for e in caught.value.errors_at(f"{base}/x")] == [SEGMENT_ERROR]


def ports_of(root: Group, app_id: str) -> list[int]:
    found = root.app(p(app_id))
    assert found is not None
    return service_ports(found)


def test_new_apps_get_the_lowest_free_service_ports_for_their_zeros() -> None:
    before = put_app(Group(ROOT), parse_app(app("/a", portDefinitions=[{"port": 10000}])))
    after = put_app(before, parse_app(app("/b", portDefinitions=[
        {"port": 0}, {"port": 12000}, {"port": 0}])))
    assigned = assign_service_ports(before, after)
    assert ports_of(assigned, "/b") == [10001, 12000, 10002]
    assert ports_of(assigned, "/a") == [10000]
    # An app without ports, or with its own, is left as it is.
    fixed = put_app(Group(ROOT), parse_app(app("/c", portDefinitions=[])))
    assert assign_service_ports(Group(ROOT), fixed) == fixed


def test_a_reconfigured_app_keeps_its_service_ports_and_an_unchanged_one_is_left_alone() -> None:
    first = assign_service_ports(Group(ROOT), put_app(Group(ROOT), parse_app(app("/a"))))
    assert ports_of(first, "/a") == [10000]
    # Given port 0 again with a new command, it gets its own port back, not the next free one.
    changed = put_app(first, parse_app(app("/a", cmd="sleep 2")))
    assert ports_of(assign_service_ports(first, changed), "/a") == [10000]
    # An app whose configuration did not change (only scaled) is not given ports: Marathon
    # assigns them to new and reconfigured apps only.
    legacy = put_app(Group(ROOT), parse_app(app("/old")))
    scaled = put_app(legacy, parse_app(app("/old", instances=3)))
    assert ports_of(assign_service_ports(legacy, scaled), "/old") == [0]


def test_container_port_mappings_get_the_service_ports() -> None:
    body = app("/d", container={"type": "DOCKER", "docker": {"image": "nginx"},
                                "portMappings": [{"containerPort": 80}, {"containerPort": 443,
                                                                         "servicePort": 10000}]},
               networks=[{"mode": "container/bridge"}])
    assigned = assign_service_ports(Group(ROOT), put_app(Group(ROOT), parse_app(body)))
    assert ports_of(assigned, "/d") == [10001, 10000]


def test_running_out_of_service_ports_is_a_422() -> None:
    root = put_app(Group(ROOT), parse_app(app("/a", portDefinitions=[{"port": 0}] * 3)))
    with pytest.raises(AppValidationError) as caught:
        assign_service_ports(Group(ROOT), root, ports=range(10000, 10002))
    assert caught.value.status_code == 422
    assert caught.value.to_json()["details"][0]["path"] == "/a/portDefinitions"


def test_a_service_port_another_app_has_is_a_422_naming_that_app() -> None:
    first = assign_service_ports(Group(ROOT), put_app(Group(ROOT), parse_app(app("/a"))))
    assert ports_of(first, "/a") == [10000]
    taken = put_app(first, parse_app(app("/b", portDefinitions=[{"port": 10001},
                                                                {"port": 10000}])))
    with pytest.raises(AppValidationError) as caught:
        assign_service_ports(first, taken)
    [detail] = caught.value.to_json()["details"]
    assert detail["path"] == "/b/portDefinitions(1)/port"
    assert "10000" in detail["errors"][0] and "/a" in detail["errors"][0]
    # The app itself may keep (and restate) its own port; other apps are not checked again.
    restated = put_app(first, parse_app(app("/a", cmd="sleep 9", portDefinitions=[
        {"port": 10000}])))
    assert ports_of(assign_service_ports(first, restated), "/a") == [10000]


def test_service_ports_come_from_the_configured_range() -> None:
    root = put_app(Group(ROOT), parse_app(app("/a", portDefinitions=[{"port": 0}] * 2)))
    assert ports_of(assign_service_ports(Group(ROOT), root, ports=range(15000, 15003)),
                    "/a") == [15000, 15001]
