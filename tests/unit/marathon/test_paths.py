"""Path ids: text form, resolution against groups, and Marathon's id rules."""

from __future__ import annotations

import pytest

from marathon.paths import ROOT, PathId, path_id_errors


@pytest.mark.parametrize(("text", "segments", "absolute", "shown"), [
    ("/prod/group/app", ("prod", "group", "app"), True, "/prod/group/app"),
    ("prod/app/", ("prod", "app"), False, "prod/app"),
    ("/", (), True, "/"),
    ("//a//b", ("a", "b"), True, "/a/b"),
], ids=["absolute", "relative-trailing-slash", "root", "empty-segments"])
def test_parse_and_format(text: str, segments: tuple[str, ...], absolute: bool,
                          shown: str) -> None:
    path = PathId.parse(text)
    assert path.segments == segments
    assert path.absolute is absolute
    assert str(path) == shown


@pytest.mark.parametrize(("written", "base", "resolved"), [
    ("app", "/prod/group", "/prod/group/app"),
    ("../other/app", "/prod/group", "/prod/other/app"),
    ("./app", "/prod", "/prod/app"),
    ("../../../x", "/a", "/x"),
    ("/abs/app", "/prod", "/abs/app"),
], ids=["child", "dotdot", "dot", "dotdot-past-root", "absolute-ignores-base"])
def test_canonical_resolves_against_group(written: str, base: str, resolved: str) -> None:
    assert str(PathId.parse(written).canonical(PathId.parse(base))) == resolved


def test_canonical_needs_an_absolute_base() -> None:
    with pytest.raises(ValueError, match="not absolute"):
        PathId.parse("a").canonical(PathId.parse("relative"))


def test_navigation() -> None:
    app = PathId.parse("/prod/group/app")
    assert app.parent == PathId.parse("/prod/group")
    assert app.name == "app"
    assert ROOT.parent == ROOT and ROOT.is_root
    assert PathId.parse("/prod").child("group/app") == app
    assert PathId.parse("/prod").includes(app)
    assert not PathId.parse("/pro").includes(app)
    assert app.safe_path == "prod_group_app"
    assert PathId.from_safe_path("prod_group_app") == app


def test_valid_id_has_no_errors() -> None:
    assert path_id_errors(PathId.parse("/prod/my-app.v2")) == []


@pytest.mark.parametrize(("text", "fragment"), [
    ("/Upper", "must fully match regular expression"),
    ("/bad_underscore", "must fully match regular expression"),
    ("/-dash", "must fully match regular expression"),
    ("/app/tasks", "reserved keywords: restart, tasks, versions"),
    ("/", "Path must contain at least one path element"),
], ids=["uppercase", "underscore", "leading-dash", "reserved", "root"])
def test_invalid_ids(text: str, fragment: str) -> None:
    assert any(fragment in error for error in path_id_errors(PathId.parse(text)))


def test_nested_id_must_be_a_child_of_its_group() -> None:
    errors = path_id_errors(PathId.parse("/elsewhere/app"), base=PathId.parse("/tools"))
    assert errors == ["Identifier is not child of /tools. Hint: use relative paths."]
    assert path_id_errors(PathId.parse("/tools/app"), base=PathId.parse("/tools")) == []
    assert path_id_errors(PathId.parse("app"), base=PathId.parse("/tools")) == []
