"""Root versions kept for group rollbacks (`MarathonCore.group_at_version`)."""

from __future__ import annotations

from marathon.core import MAX_APP_VERSIONS
from marathon.groups import put_group
from marathon.paths import ROOT, PathId
from marathon.state import Recovered
from tests.unit.marathon.harness import World

APP = PathId.parse("/team/a")
TEAM = PathId.parse("/team")


def test_a_group_is_rebuilt_as_it_was_in_a_stored_version_also_after_a_restart() -> None:
    world = World()
    world.deploy_app({"id": "/team/a", "cmd": "sleep 1", "cpus": 0.5})
    first = world.core.root.version
    assert first is not None
    world.deploy_app({"id": "/team/a", "cmd": "sleep 2", "cpus": 0.5}, force=True)
    old = world.core.group_at_version(TEAM, first)
    assert old is not None and old.apps[APP].cmd == "sleep 1"
    assert world.core.group_at_version(TEAM, "2000-01-01T00:00:00.000Z") is None
    assert world.core.group_at_version(PathId.parse("/elsewhere"), first) is None

    restarted = World(sink=world.sink, recovered=Recovered.decode(dict(world.sink.entries)))
    again = restarted.core.group_at_version(TEAM, first)
    assert again is not None and again.apps[APP].cmd == "sleep 1"
    # The rollback is a change like any other: the app gets the old definition, a new version.
    restarted.core.update_root(lambda root: put_group(root, again), force=True)
    rolled = restarted.core.root.app(APP)
    assert rolled is not None and rolled.cmd == "sleep 1" and rolled.version != first


def test_only_the_latest_root_versions_are_kept() -> None:
    world = World()
    for number in range(MAX_APP_VERSIONS + 5):
        world.deploy_app({"id": "/team/a", "cmd": f"sleep {number}"}, force=True)
    versions = sorted(world.core.root_versions)
    assert len(versions) == MAX_APP_VERSIONS
    stored = [k for k in world.sink.entries if k.startswith("root_versions/")]
    assert len(stored) == MAX_APP_VERSIONS
    assert world.core.group_at_version(ROOT, versions[-1]) == world.core.root
