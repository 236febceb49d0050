"""What the Marathon API asks the authorization file about a change, and what a filtered group
shows (`marathon.api._changes`, `_visible_group`)."""

from __future__ import annotations

from marathon.api import _changes, _event_paths, _visible_group
from marathon.app_definition import parse_app
from marathon.events import api_post_event, deployment_event, group_change_event
from marathon.groups import Group, put_app, remove_app, remove_group
from marathon.paths import ROOT, PathId


def root_with(*ids: str) -> Group:
    root = Group(ROOT)
    for app_id in ids:
        root = put_app(root, parse_app({"id": app_id, "cmd": "sleep 1"}))
    return root


def test_a_change_asks_for_each_app_and_group_it_creates_changes_or_deletes() -> None:
    old = root_with("/dev/a", "/prod/web")
    new = put_app(old, parse_app({"id": "/prod/web", "cmd": "sleep 2"}))
    new = put_app(new, parse_app({"id": "/dev/sub/b", "cmd": "sleep 1"}))
    assert _changes(old, new) == [("create", "/dev/sub"), ("create", "/dev/sub/b"),
                                  ("update", "/prod/web")]
    assert _changes(old, remove_group(old, PathId.parse("/prod"))) == [
        ("delete", "/prod"), ("delete", "/prod/web")]
    assert _changes(old, remove_app(old, PathId.parse("/dev/a"))) == [("delete", "/dev/a")]
    assert _changes(old, old) == []


def test_a_filtered_group_keeps_what_may_be_viewed() -> None:
    root = root_with("/dev/a", "/prod/web", "/top")

    def under_dev(path: str) -> bool:
        return path == "/dev" or path.startswith("/dev/")

    visible = _visible_group(root, under_dev)
    assert visible is not None
    assert [str(a.id) for a in visible.transitive_apps()] == ["/dev/a"]
    assert [str(g) for g in visible.groups] == ["/dev"]
    prod = root.group(PathId.parse("/prod"))
    assert prod is not None and _visible_group(prod, under_dev) is None
    assert _visible_group(Group(ROOT), under_dev) == Group(ROOT)  # the root always shows


def test_events_name_the_apps_they_tell_of() -> None:
    assert _event_paths(api_post_event("1.2.3.4", "/v2/apps", {"id": "/prod/web"})) == [
        "/prod/web"]
    step = {"actions": [{"action": "StartApplication", "app": "/prod/web"}]}
    plan = {"id": "p", "steps": [step], "version": "v"}
    assert _event_paths(deployment_event("deployment_info", plan, current_step=step)) == [
        "/prod/web", "/prod/web"]
    assert _event_paths(group_change_event("/", "v")) == []
