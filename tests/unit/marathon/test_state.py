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
