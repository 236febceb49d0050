"""Recovery of Marathon's stored state: records it cannot read are set aside, not fatal."""

from __future__ import annotations

import json

from marathon.paths import PathId
from marathon.state import ROOT_KEY, Recovered
from mesos_coordination.store import MemorySink, store_key
from tests.unit.marathon.harness import World

APP = {"id": "/web", "cmd": "sleep 1000", "instances": 0}
BAD_APP = "/__main__/web"


def poisoned(entries: dict[str, bytes]) -> dict[str, bytes]:
    """`entries` with what an old leader stored for `POST /v2/groups/__main__` with app `web`
    (and a bad instance and deployment)."""
    root = json.loads(entries[ROOT_KEY])
    root["groups"].append({"id": "/__main__", "version": "v1", "dependencies": [],
                           "apps": [[BAD_APP, "v1"]], "groups": []})
    return {
        **entries,
        ROOT_KEY: json.dumps(root).encode(),
        store_key("apps", f"{BAD_APP}@v1"): json.dumps({"id": BAD_APP, "cmd": "x"}).encode(),
        store_key("instances", "i-1"): b"{not json",
        store_key("deployments", "d-1"): json.dumps({"id": "d-1"}).encode(),
    }


def test_bad_records_are_set_aside_and_the_rest_recovered() -> None:
    world = World()
    world.deploy_app(APP)
    recovered = Recovered.decode(poisoned(world.sink.entries))
    assert recovered.root.app(PathId.parse("/web")) is not None
    assert recovered.root.group(PathId.parse("/__main__")) is None
    assert not recovered.instances and not recovered.deployments
    aside = {record.key: record.reason for record in recovered.set_aside}
    assert set(aside) == {ROOT_KEY, store_key("apps", f"{BAD_APP}@v1"),
                          store_key("instances", "i-1"), store_key("deployments", "d-1")}
    assert aside[ROOT_KEY].startswith("group /__main__: ValueError: must fully match")
    assert aside[store_key("deployments", "d-1")] == "KeyError: 'version'"


def test_an_unreadable_root_leaves_an_empty_root() -> None:
    recovered = Recovered.decode({ROOT_KEY: b"\xff"})
    assert not recovered.root.apps and not recovered.root.groups
    assert [record.key for record in recovered.set_aside] == [ROOT_KEY]


def test_deleting_a_set_aside_app_removes_its_records() -> None:
    world = World()
    world.deploy_app(APP)
    sink = MemorySink()
    sink.entries.update(poisoned(world.sink.entries))
    successor = World(sink, Recovered.decode(sink.entries))
    assert successor.core.discard_set_aside(PathId.parse(BAD_APP))
    assert not successor.core.discard_set_aside(PathId.parse(BAD_APP))
    successor.core.update_root(lambda root: root)
    assert {record.key.partition("/")[0] for record in successor.core.set_aside} == {
        "instances", "deployments"}
    again = Recovered.decode(sink.entries)
    assert again.root.app(PathId.parse("/web")) is not None
    assert {record.key.partition("/")[0] for record in again.set_aside} == {
        "instances", "deployments"}


def _with_app_record(entries: dict[str, bytes], app_id: str,
                     change: dict[str, object]) -> dict[str, bytes]:
    """`entries` with the stored record of `app_id` changed (its only version)."""
    prefix = store_key("apps", f"{app_id}@")
    (key,) = [k for k in entries if k.startswith(prefix)]
    record = {**json.loads(entries[key]), **change}
    return {**entries, key: json.dumps(record).encode()}


def test_a_tree_validation_would_refuse_is_repaired_not_kept() -> None:
    """A tree no request could store (an old leader's, or edited by hand) must not refuse
    every later change with 422: its offending parts are set aside, the rest recovered."""
    world = World()
    for app in ({"id": "/a", "cmd": "sleep 1", "instances": 0},
                {"id": "/b", "cmd": "sleep 1", "instances": 0, "dependencies": ["/a"]},
                {"id": "/c", "cmd": "sleep 1", "instances": 0},
                {"id": "/d/e", "cmd": "sleep 1", "instances": 0}):
        world.deploy_app(app)
    entries = _with_app_record(world.sink.entries, "/a", {"dependencies": ["/b"]})
    root = json.loads(entries[ROOT_KEY])
    empty = {"version": "v1", "dependencies": [], "apps": [], "groups": []}
    (d_group,) = root["groups"]
    root["groups"] += [
        {**empty, "id": "/c"},  # an empty group sharing an id with an app
        {**empty, "id": "/d/e"},  # and another, one level down, misplaced at the root
    ]
    d_group["groups"].append({**empty, "id": "/x/y"})  # not a child of /d
    entries[ROOT_KEY] = json.dumps(root).encode()
    sink = MemorySink()
    sink.entries.update(entries)
    recovered = Recovered.decode(sink.entries)
    assert sorted(str(app.id) for app in recovered.root.transitive_apps()) == ["/c", "/d/e"]
    assert sorted(str(g.id) for g in recovered.root.transitive_groups()) == ["/", "/d"]
    reasons = sorted(r.reason for r in recovered.set_aside if r.key == ROOT_KEY)
    assert reasons == [
        "/a: Dependency graph has cyclic dependencies.",
        "/b: Dependency graph has cyclic dependencies.",
        "/c: Groups and Applications may not have the same identifier.",
        "/d/e: Identifier is not child of /. Hint: use relative paths.",
        "/x/y: Identifier is not child of /d. Hint: use relative paths.",
    ]
    successor = World(sink, recovered)
    successor.deploy_app({"id": "/f", "cmd": "sleep 1", "instances": 0})
    assert successor.core.root.app(PathId.parse("/f")) is not None


def test_an_app_is_set_aside_for_a_group_with_apps_of_the_same_id() -> None:
    world = World()
    world.deploy_app({"id": "/g/h", "cmd": "sleep 1", "instances": 0})
    world.deploy_app({"id": "/k", "cmd": "sleep 1", "instances": 0})
    root = json.loads(world.sink.entries[ROOT_KEY])
    (group,) = root["groups"]
    group["id"] = "/k"
    ((_, version),) = group["apps"]
    group["apps"] = [["/k/h", version]]
    h_key = store_key("apps", f"/g/h@{version}")
    entries = {**world.sink.entries, ROOT_KEY: json.dumps(root).encode(),
               store_key("apps", f"/k/h@{version}"): json.dumps(
                   {**json.loads(world.sink.entries[h_key]), "id": "/k/h"}).encode()}
    recovered = Recovered.decode(entries)
    assert [str(app.id) for app in recovered.root.transitive_apps()] == ["/k/h"]
    assert [r.reason for r in recovered.set_aside] == [
        "/k: Groups and Applications may not have the same identifier."]


def test_each_set_aside_record_can_be_deleted_by_its_key() -> None:
    world = World()
    world.deploy_app(APP)
    sink = MemorySink()
    sink.entries.update(poisoned(world.sink.entries))
    successor = World(sink, Recovered.decode(sink.entries))
    assert not successor.core.discard_record(store_key("instances", "i-2"))
    for key in (store_key("instances", "i-1"), store_key("deployments", "d-1"), ROOT_KEY,
                store_key("apps", f"{BAD_APP}@v1")):
        assert successor.core.discard_record(key), key
        assert key not in {record.key for record in successor.core.set_aside}
    assert not successor.core.set_aside
    again = Recovered.decode(sink.entries)
    assert not again.set_aside
    assert again.root.app(PathId.parse("/web")) is not None
