"""Properties of Marathon's parsers: path ids, constraints, attribute text, app bodies.

- the ids an app body may have are exactly those of Marathon's id grammar (a model below);
- path ids round-trip through their text form and resolve idempotently;
- a constraint's count value is exactly a 32-bit integer as Java's `Integer.parseInt` reads it;
- any JSON body is either an app or an AppValidationError (422), never another exception.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from frameworks.placement import count_value
from marathon.app_definition import parse_app, to_json
from marathon.constraints import AppConstraint, constraint_errors, format_attribute
from marathon.groups import parse_group_update
from marathon.paths import RESERVED_KEYWORDS, ROOT, PathId, path_id_errors
from marathon.validation import AppValidationError
from protos import mesos_pb2

# A model of Marathon's app id grammar, written independently of the module's regexes:
# `/`-separated segments, each `..` or dot-separated DNS labels (lowercase letters, digits and
# inner dashes); empty segments are ignored; the id must not resolve to the root nor end with a
# reserved keyword.

_LABEL_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789")


def _is_label(text: str) -> bool:
    return (bool(text) and set(text) <= _LABEL_CHARS | {"-"}
            and text[0] != "-" and text[-1] != "-")


def _model_segment(segment: str) -> bool:
    return segment == ".." or all(_is_label(label) for label in segment.split("."))


def _model_accepts(text: str) -> bool:
    segments = [s for s in text.split("/") if s]
    if not text or not all(_model_segment(s) for s in segments):
        return False
    resolved: list[str] = []
    for segment in segments:
        if segment == "..":
            if resolved:
                resolved.pop()
        else:
            resolved.append(segment)
    return bool(resolved) and segments[-1] not in RESERVED_KEYWORDS


_labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,3}[a-z0-9])?", fullmatch=True)
_segments = st.one_of(
    st.lists(_labels, min_size=1, max_size=3).map(".".join),
    st.sampled_from(["..", ".", "", "tasks", "versions", "restart"]),
)
_grammar_ids = st.builds(lambda lead, parts, trail: lead + "/".join(parts) + trail,
                         st.sampled_from(["", "/"]), st.lists(_segments, max_size=4),
                         st.sampled_from(["", "/"]))
_noise_ids = st.text(st.sampled_from(list("/ab0-._A ~\n")), max_size=12)


def _app_errors(app_id: str) -> list[str] | None:
    try:
        parse_app({"id": app_id, "cmd": "sleep 1"})
    except AppValidationError as error:
        assert error.violations and all(v.error for v in error.violations)
        return [v.error for v in error.violations]
    return None


@given(_grammar_ids | _noise_ids)
def test_app_ids_accepted_are_exactly_marathons_grammar(app_id: str) -> None:
    errors = _app_errors(app_id)
    assert (errors is None) == _model_accepts(app_id), errors


@given(st.lists(_labels, max_size=4), st.booleans())
def test_path_ids_round_trip_and_resolve_idempotently(segments: list[str],
                                                      absolute: bool) -> None:
    path = PathId(tuple(segments), absolute)
    assert PathId.parse(str(path)) == path or (not segments and not absolute)
    resolved = path.canonical(PathId(("base",)))
    assert resolved.absolute and resolved.canonical() == resolved
    assert PathId(("base",)).includes(resolved) or absolute
    assert PathId.from_safe_path(path.safe_path).segments == path.segments or any(
        "_" in s for s in segments)


@given(_grammar_ids, _grammar_ids)
def test_nested_ids_must_lie_in_their_group(group_text: str, app_text: str) -> None:
    group = PathId.parse("/" + group_text).canonical()
    errors = path_id_errors(PathId.parse(app_text), base=group)
    if not errors:
        resolved = PathId.parse(app_text).canonical(group)
        assert resolved.parent == group or group.is_root


_int_texts = st.one_of(
    st.integers(-(2**33), 2**33).map(str),
    st.text(st.sampled_from(list("+-0123456789 _.e")), max_size=12),
)


@given(_int_texts)
def test_count_values_are_java_ints(text: str) -> None:
    """Marathon reads GROUP_BY and MAX_PER values with Integer.parseInt: an optional sign and
    digits, nothing else (no spaces, no underscores), within 32 bits."""
    expected = int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else None
    if expected is not None and not -(2**31) <= expected < 2**31:
        expected = None
    assert count_value(text) == expected


_operators = st.sampled_from(["UNIQUE", "CLUSTER", "GROUP_BY", "LIKE", "UNLIKE", "MAX_PER", "IS",
                              "unique", "OTHER"])
_constraint_values = st.one_of(
    st.sampled_from(["", "3", "-1", "a.*", "(", "rack-1", "[", "9" * 12, " 3", "3_0"]),
    st.text(max_size=5))


@given(st.lists(st.one_of(st.text(max_size=5), _operators, _constraint_values, st.integers()),
                max_size=4)
       | st.tuples(st.sampled_from(["hostname", "rack", ""]), _operators, _constraint_values)
       .map(list))
def test_constraints_are_checked_and_round_trip(raw: list[Any]) -> None:
    errors = constraint_errors(raw)
    assert all(isinstance(error, str) and error for error in errors)
    if errors:
        try:
            AppConstraint.from_json(raw)
        except ValueError as error:
            assert str(error) == errors[0]
        else:
            raise AssertionError(f"{raw!r} built a constraint despite {errors}")
    else:
        constraint = AppConstraint.from_json(raw)
        assert constraint.to_json() == raw


@given(st.integers(-(10**12), 10**12))
def test_scalar_attributes_read_like_the_jvm(number: int) -> None:
    attribute = mesos_pb2.Attribute(name="n", type=mesos_pb2.Value.SCALAR)
    attribute.scalar.value = number
    assert format_attribute(attribute) == f"{number:,}"


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15))
def test_scalar_attributes_have_at_most_three_decimals(number: float) -> None:
    attribute = mesos_pb2.Attribute(name="n", type=mesos_pb2.Value.SCALAR)
    attribute.scalar.value = number
    text = format_attribute(attribute)
    fraction = text.partition(".")[2]
    assert len(fraction) <= 3 and not fraction.endswith("0") and text != "-0"
    assert abs(float(text.replace(",", "")) - number) <= 0.0005 + abs(number) * 1e-15


# Whole app bodies: arbitrary JSON in every field.

_json_scalars = (st.none() | st.booleans() | st.integers(-(10**20), 10**20)
                 | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=6))
_json = st.recursive(_json_scalars, lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=8)
_APP_KEYS = ["id", "cmd", "args", "user", "env", "instances", "cpus", "mem", "disk", "gpus",
             "executor", "constraints", "fetch", "storeUrls", "portDefinitions", "requirePorts",
             "backoffSeconds", "backoffFactor", "maxLaunchDelaySeconds", "container",
             "healthChecks", "readinessChecks", "dependencies", "upgradeStrategy", "labels",
             "acceptedResourceRoles", "ports", "uris", "secrets", "unreachableStrategy",
             "killSelection", "networks", "residency", "taskKillGracePeriodSeconds", "role",
             "ipAddress", "version", "versionInfo"]


@given(st.dictionaries(st.sampled_from(_APP_KEYS), _json, max_size=6), st.booleans())
def test_any_app_body_is_an_app_or_a_422(body: dict[str, Any], with_basics: bool) -> None:
    if with_basics:
        body = {"id": "/app", "cmd": "sleep 1", **body}
    try:
        app = parse_app(body)
    except AppValidationError as error:
        assert error.message and error.violations
        return
    assert parse_app(to_json(app)) == app


@given(st.dictionaries(st.sampled_from(["id", "apps", "groups", "dependencies", "version"]),
                       _json | st.lists(st.dictionaries(st.sampled_from(_APP_KEYS), _json,
                                                        max_size=3), max_size=2),
                       max_size=4))
def test_any_group_body_is_a_group_or_a_422(body: dict[str, Any]) -> None:
    try:
        parse_group_update(body, base=ROOT)
    except AppValidationError as error:
        assert error.message and error.violations


# The nested parts of an app, with their own keys and arbitrary or plausible values.

_plausible = st.one_of(
    _json_scalars, st.sampled_from(["HTTP", "TCP", "COMMAND", "MESOS_HTTP", "tcp", "udp,tcp",
                                    "/health", "http", "disabled", "BRIDGE", "HOST", "USER",
                                    "CONTAINER", "DOCKER", "MESOS", "web", "ads", "*"]),
    st.integers(-2, 70000), st.floats(min_value=-1, max_value=2),
    st.integers(-(10**400), 10**400), st.lists(st.integers(100, 600), max_size=2))


def _objects(keys: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from(keys), _plausible | _json, max_size=len(keys))


_PARTS: dict[str, st.SearchStrategy[Any]] = {
    "healthChecks": st.lists(_objects(
        ["protocol", "path", "portIndex", "port", "command", "gracePeriodSeconds",
         "intervalSeconds", "timeoutSeconds", "maxConsecutiveFailures", "delaySeconds",
         "ipProtocol", "portName"]), max_size=2),
    "readinessChecks": st.lists(_objects(
        ["name", "protocol", "path", "portName", "intervalSeconds", "timeoutSeconds",
         "httpStatusCodesForReady", "preserveLastResponse"]), max_size=2),
    "portDefinitions": st.lists(_objects(["port", "protocol", "name", "labels"]), max_size=3),
    "fetch": st.lists(_objects(["uri", "extract", "executable", "cache", "destPath"]),
                      max_size=2),
    "upgradeStrategy": _objects(["minimumHealthCapacity", "maximumOverCapacity"]),
    "unreachableStrategy": _objects(["inactiveAfterSeconds", "expungeAfterSeconds"])
    | st.sampled_from(["disabled", "enabled"]),
    "networks": st.lists(_objects(["mode", "name", "labels"]), max_size=2),
    "container": _objects(["type", "docker", "volumes", "portMappings"]) | st.fixed_dictionaries(
        {"type": st.sampled_from(["DOCKER", "MESOS"])}, optional={
            "docker": _objects(["image", "network", "privileged", "portMappings", "parameters"]),
            "portMappings": st.lists(_objects(["containerPort", "hostPort", "servicePort",
                                               "protocol", "name", "labels", "networkNames"]),
                                     max_size=2),
            "volumes": st.lists(_objects(["containerPath", "hostPath", "mode", "persistent",
                                          "external", "secret"]), max_size=2)}),
    "residency": _objects(["relaunchEscalationTimeoutSeconds", "taskLostBehavior"]),
    "secrets": st.dictionaries(st.sampled_from(["s1", "s2"]), _objects(["source"]), max_size=2),
    "env": st.dictionaries(st.sampled_from(["A", "B", ""]),
                           _plausible | _objects(["secret"]), max_size=2),
    "ports": st.lists(st.integers(-1, 70000), max_size=3),
    "dependencies": st.lists(_plausible, max_size=2),
    "constraints": st.lists(st.lists(_plausible, max_size=4), max_size=2),
    "killSelection": st.sampled_from(["YOUNGEST_FIRST", "OLDEST_FIRST", "x"]),
}


@given(st.fixed_dictionaries({}, optional=_PARTS))
def test_any_app_with_arbitrary_parts_is_an_app_or_a_422(parts: dict[str, Any]) -> None:
    body = {"id": "/app", "cmd": "sleep 1", **parts}
    try:
        app = parse_app(body)
    except AppValidationError as error:
        assert error.message and error.violations
        return
    assert parse_app(to_json(app)) == app
