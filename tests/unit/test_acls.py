"""Mesos' ACL file and its local authorizer's match and allow tables."""

from __future__ import annotations

import json

import pytest

from mesos_security.acls import ACTIONS, Acls, Entity, EntityType, parse_acls

SOME_A = Entity(EntityType.SOME, frozenset({"a"}))
SOME_AB = Entity(EntityType.SOME, frozenset({"a", "b"}))
ANY = Entity(EntityType.ANY)
NONE = Entity(EntityType.NONE)


@pytest.mark.parametrize(("request_entity", "acl", "matches", "allows"), [
    # Mesos' tables, row by row: request SOME / NONE / ANY against ACL SOME / NONE / ANY.
    (SOME_A, SOME_AB, True, True),
    (SOME_AB, SOME_A, False, False),
    (SOME_A, NONE, True, False),
    (SOME_A, ANY, True, True),
    (NONE, SOME_A, False, False),
    (NONE, NONE, True, True),
    (NONE, ANY, False, True),
    (ANY, SOME_A, False, False),
    (ANY, NONE, True, False),
    (ANY, ANY, True, True),
])
def test_the_match_and_allow_tables_are_mesos(
    request_entity: Entity, acl: Entity, matches: bool, allows: bool,
) -> None:
    assert acl.matches(request_entity) is matches
    assert acl.allows(request_entity) is allows


ACLS = {
    "permissive": False,
    "register_frameworks": [
        {"principals": {"values": ["marathon"]}, "roles": {"values": ["web", "*"]}},
        {"principals": {"values": ["intruder"]}, "roles": {"type": "NONE"}},
        {"principals": {"type": "ANY"}, "roles": {"values": ["dev"]}},
    ],
    "run_tasks": [{"principals": {"type": "ANY"}, "users": {"values": ["nobody"]}}],
    "view_flags": [{"principals": {"values": ["ops"]}, "flags": {"type": "ANY"}}],
}


def test_the_first_matching_entry_decides_else_permissive() -> None:
    acls = parse_acls(json.dumps(ACLS))
    assert acls.authorize("register_frameworks", "marathon", "web")
    assert acls.authorize("register_frameworks", "marathon", "*")
    refused = acls.authorize("register_frameworks", "marathon", "batch")
    assert not refused and "no ACL of register_frameworks allows it" in refused.reason
    intruder = acls.authorize("register_frameworks", "intruder", "dev")
    assert not intruder and "refused by ACL register_frameworks[1]" in intruder.reason
    assert acls.authorize("register_frameworks", "someone", "dev")
    assert acls.authorize("register_frameworks", None, "dev")  # ANY covers the anonymous
    assert acls.authorize("run_tasks", "anyone", "nobody")
    assert not acls.authorize("run_tasks", "anyone", "root")
    assert acls.authorize("view_flags", "ops", None)
    assert not acls.authorize("view_flags", None, None)
    assert not acls.authorize("update_weights", "ops", "web")  # no entry: not permissive
    assert parse_acls(json.dumps({**ACLS, "permissive": True})).authorize(
        "update_weights", "ops", "web")


def test_no_acls_allow_everything() -> None:
    for action in ACTIONS:
        assert Acls().authorize(action, None, "x")
    with pytest.raises(KeyError):
        Acls().authorize("launch_rockets", None, None)


@pytest.mark.parametrize(("document", "fragment"), [
    ("[]", "must be a JSON object"),
    ("{", "not JSON"),
    ('{"permissive": "yes"}', "'permissive' must be true or false"),
    ('{"launch_rockets": []}', "unknown action 'launch_rockets'"),
    ('{"run_tasks": {}}', "must be a list"),
    ('{"run_tasks": [{"principals": {"type": "ANY"}}]}', "'users' is required"),
    ('{"run_tasks": [{"principals": {"type": "ANY"}, "roles": {"type": "ANY"}, '
     '"users": {"type": "ANY"}}]}', "unknown field(s) roles"),
    ('{"run_tasks": [{"principals": {"type": "ALL"}, "users": {"type": "ANY"}}]}',
     "type must be SOME, ANY or NONE"),
    ('{"run_tasks": [{"principals": {"values": "a"}, "users": {"type": "ANY"}}]}',
     "values must be a list of strings"),
    ('{"run_tasks": [{"principals": {}, "users": {"type": "ANY"}}]}', "values are required"),
])
def test_a_bad_acl_file_is_refused_saying_where(document: str, fragment: str) -> None:
    with pytest.raises(ValueError) as refused:
        parse_acls(document)
    assert fragment in str(refused.value)
