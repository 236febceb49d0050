"""The authorization file's decisions (`frameworks.authorization`)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from frameworks.authorization import (
    ACTIONS,
    Authorization,
    job_path,
    normalize_path,
    parse_authorization,
    path_holds,
)

SEGMENT = st.text(alphabet="abcdefgh-.", min_size=1, max_size=6).filter(
    lambda s: s not in (".", ".."))
PATH = st.lists(SEGMENT, max_size=4).map(lambda parts: "/" + "/".join(parts))
ACTION = st.sampled_from(ACTIONS)
USER = st.sampled_from(["alice", "bob", "carol"])

DEV_AND_VIEWER = parse_authorization(json.dumps({"rules": [
    {"users": ["alice"], "actions": ["*"], "paths": ["/dev/**"]},
    {"users": ["bob"], "actions": ["view"], "paths": ["/"]},
    {"users": ["*"], "actions": ["delete"], "paths": ["/prod"], "allow": False},
    {"users": ["*"], "actions": ["view"], "paths": ["/public"]},
]}))


def test_a_rule_holds_its_path_and_below_it_only() -> None:
    auth = DEV_AND_VIEWER
    for path in ("/dev", "/dev/api", "/dev/a/b/c", "dev/x/"):
        assert auth.decide("alice", "create", path).allowed
    for path in ("/devil", "/", "/prod/dev", "/de"):
        decision = auth.decide("alice", "create", path)
        assert not decision.allowed
        assert "no rule allows user 'alice' to create" in decision.reason


def test_the_first_matching_rule_decides_and_is_named() -> None:
    viewer = DEV_AND_VIEWER.decide("bob", "view", "/prod/web")
    assert viewer.allowed and viewer.reason.startswith("rule 2 allows user 'bob'")
    refused = DEV_AND_VIEWER.decide("bob", "update", "/dev/web")
    assert not refused.allowed
    denied = DEV_AND_VIEWER.decide("carol", "delete", "/prod/web")
    assert not denied.allowed and denied.reason.startswith("rule 3 denies user 'carol'")
    assert DEV_AND_VIEWER.decide("carol", "view", "/public/x").allowed


def test_anonymous_matches_no_rule() -> None:
    assert not DEV_AND_VIEWER.decide(None, "view", "/public").allowed
    permissive = Authorization(DEV_AND_VIEWER.rules, permissive=True)
    assert permissive.decide(None, "view", "/public").allowed


def test_no_file_allows_everything_and_is_not_enabled() -> None:
    assert not Authorization().enabled
    assert Authorization().decide(None, "delete", "/").allowed
    assert parse_authorization("{}").enabled  # the file's default is not permissive


@given(USER, ACTION, PATH)
def test_no_rules_follow_permissive(user: str, action: str, path: str) -> None:
    assert Authorization((), permissive=True).decide(user, action, path).allowed  # type: ignore[arg-type]
    assert not Authorization((), permissive=False).decide(user, action, path).allowed  # type: ignore[arg-type]


@given(PATH, SEGMENT, st.text(alphabet="abc", min_size=1, max_size=3), PATH)
def test_prefix_matching_is_by_whole_segments(base: str, segment: str, extra: str,
                                              below: str) -> None:
    pattern = normalize_path(f"{base}/{segment}")
    assert path_holds(pattern, pattern)
    assert path_holds(pattern, f"{pattern}{below}")
    assert not path_holds(pattern, f"{pattern}{extra}")  # /dev never holds /devil
    assert path_holds("/", f"{pattern}{extra}")


@given(st.lists(st.tuples(USER, ACTION, PATH, st.booleans()), max_size=6), st.booleans(),
       USER, ACTION, PATH)
def test_decisions_follow_the_first_match_or_the_default(
        entries: list[tuple[str, str, str, bool]], permissive: bool, user: str, action: str,
        path: str) -> None:
    auth = parse_authorization(json.dumps({"permissive": permissive, "rules": [
        {"users": [u], "actions": [a], "paths": [p], "allow": allow}
        for u, a, p, allow in entries]}))
    decision = auth.decide(user, action, path)  # type: ignore[arg-type]
    first = next((allow for u, a, p, allow in entries
                  if u == user and a == action and path_holds(normalize_path(p), path)), None)
    assert decision.allowed == (permissive if first is None else first)


@given(USER, ACTION, PATH)
def test_a_deny_rule_first_always_refuses(user: str, action: str, path: str) -> None:
    auth = parse_authorization(json.dumps({"permissive": True, "rules": [
        {"users": ["*"], "actions": ["*"], "paths": ["/"], "allow": False},
        {"users": [user], "actions": [action], "paths": [path]}]}))
    assert not auth.decide(user, action, path).allowed  # type: ignore[arg-type]


def test_job_ids_map_to_paths_by_their_dots() -> None:
    assert job_path("dev.backup") == "/dev/backup"
    assert job_path("devil") == "/devil"
    assert not DEV_AND_VIEWER.decide("alice", "create", job_path("devil.x")).allowed
    assert DEV_AND_VIEWER.decide("alice", "create", job_path("dev.x")).allowed


def test_first_refusal_names_the_first_refused() -> None:
    refusal = DEV_AND_VIEWER.first_refusal(
        "alice", [("update", "/dev/a"), ("update", "/prod/b"), ("update", "/x")])
    assert refusal is not None and "'/prod/b'" in refusal.reason
    assert DEV_AND_VIEWER.first_refusal("alice", [("view", "/dev")]) is None


@pytest.mark.parametrize(("document", "message"), [
    ("[", "not JSON"),
    ("[]", "must be an object"),
    ('{"rule": []}', "unknown field(s): rule"),
    ('{"permissive": "no"}', "'permissive' must be true or false"),
    ('{"rules": {}}', "'rules' must be a list"),
    ('{"rules": [1]}', "rule 1 must be an object"),
    ('{"rules": [{"users": [], "actions": ["view"], "paths": ["/"]}]}',
     "rule 1: 'users' must be a non-empty list"),
    ('{"rules": [{"users": ["a"], "actions": ["read"], "paths": ["/"]}]}',
     "rule 1: unknown action 'read'"),
    ('{"rules": [{"users": ["a"], "actions": ["view"], "paths": ["dev"]}]}',
     "rule 1: path 'dev' must start with '/'"),
    ('{"rules": [{"users": ["a"], "actions": ["view"], "paths": ["/d*v"]}]}',
     "'*' only as a last segment"),
    ('{"rules": [{"users": ["a"], "actions": ["view"], "paths": ["/"], "allow": 1}]}',
     "rule 1: 'allow' must be true or false"),
    ('{"rules": [{"users": ["a"], "actions": ["view"], "paths": ["/"], "who": 1}]}',
     "rule 1: unknown field(s): who"),
])
def test_bad_files_are_refused_with_the_problem(document: str, message: str) -> None:
    with pytest.raises(ValueError, match=None) as raised:
        parse_authorization(document)
    assert message in str(raised.value)


def test_patterns_any_and_trailing_wildcards() -> None:
    auth = parse_authorization(json.dumps({"rules": [
        {"users": ["a"], "actions": ["view"], "paths": ["*", "/x/*"]}]}))
    assert auth.rules[0].paths == ("/", "/x")
