"""App definitions: Marathon's defaults, the conformance payloads, 422 paths and round trips."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from marathon.app_definition import (
    DEFAULT_MAX_LAUNCH_DELAY_SECONDS,
    KNOWN_FIELDS,
    AppDefinition,
    merge_patch,
    parse_app,
    to_json,
)
from marathon.app_parts import (
    EnvSecretRef,
    FetchUri,
    HealthCheck,
    PortDefinition,
    UnreachableStrategy,
)
from marathon.constraints import AppConstraint, KillSelection, Operator
from marathon.paths import PathId
from marathon.validation import AppValidationError

CONFORMANCE = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "marathon"


def load(name: str) -> Any:
    return json.loads((CONFORMANCE / name).read_text())


def rejection(body: object, **kwargs: Any) -> AppValidationError:
    with pytest.raises(AppValidationError) as caught:
        parse_app(body, **kwargs)
    return caught.value


def round_trips(app: AppDefinition, base: PathId | None = None) -> bool:
    reparsed = parse_app(json.loads(json.dumps(to_json(app))),
                         **({} if base is None else {"base_group": base}))
    return reparsed == app and to_json(reparsed) == to_json(app)


def test_defaults_applied_as_marathon_does() -> None:
    app = parse_app({"id": "sleeper", "cmd": "sleep 100"})
    assert app.id == PathId.parse("/sleeper")
    assert (app.cpus, app.mem, app.disk, app.gpus, app.instances) == (1.0, 128.0, 0.0, 0, 1)
    assert (app.backoff_seconds, app.backoff_factor) == (1, 1.15)
    assert app.max_launch_delay_seconds == DEFAULT_MAX_LAUNCH_DELAY_SECONDS == 300
    assert (app.upgrade_strategy.minimum_health_capacity,
            app.upgrade_strategy.maximum_over_capacity) == (1.0, 1.0)
    assert app.kill_selection is KillSelection.YOUNGEST_FIRST
    assert app.unreachable_strategy == UnreachableStrategy(True, 0, 0)
    assert app.port_definitions == (PortDefinition(0, "tcp", "default"),)
    assert app.require_ports is False
    assert app.task_kill_grace_period_seconds is None
    assert app.host_networking and app.unsupported_reasons == ()
    body = to_json(app)
    assert body["portDefinitions"] == [{"port": 0, "protocol": "tcp", "name": "default",
                                        "labels": {}}]
    assert body["networks"] == [{"mode": "host"}]
    assert body["unreachableStrategy"] == {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}
    assert body["upgradeStrategy"] == {"minimumHealthCapacity": 1, "maximumOverCapacity": 1}
    assert round_trips(app)


def test_deprecated_ports_and_uris_are_migrated() -> None:
    app = parse_app({"id": "/a", "cmd": "x", "ports": [0, 8080],
                     "uris": ["http://h/app.tar.gz", "http://h/run.sh"],
                     "healthChecks": [{"protocol": "TCP"}]})
    assert app.port_definitions == (PortDefinition(0), PortDefinition(8080))
    assert app.fetch == (FetchUri("http://h/app.tar.gz", extract=True),
                         FetchUri("http://h/run.sh", extract=False))
    assert app.health_checks[0].port_index == 0  # Marathon adds portIndex 0 when ports exist
    assert round_trips(app)


def test_relative_ids_and_dependencies_resolve_against_the_group() -> None:
    app = parse_app({"id": "api", "cmd": "x", "dependencies": ["db", "../shared/cache"]},
                    base_group=PathId.parse("/prod/web"))
    assert app.id == PathId.parse("/prod/web/api")
    assert app.dependencies == (PathId.parse("/prod/web/db"), PathId.parse("/prod/shared/cache"))


def test_case_insensitive_enums_are_stored_canonically() -> None:
    app = parse_app({"id": "/a", "cmd": "x", "killSelection": "oldest_first",
                     "unreachableStrategy": "disabled",
                     "healthChecks": [{"protocol": "tcp", "portIndex": 0}]})
    assert app.kill_selection is KillSelection.OLDEST_FIRST
    assert to_json(app)["unreachableStrategy"] == "disabled"
    assert app.health_checks[0].protocol == "TCP"
    assert round_trips(app)


# --- conformance payloads -------------------------------------------------------------


def test_app_json_is_rejected_like_marathon_rejects_it() -> None:
    # app.json is Marathon's documentation example for both the POST body and the 201 response.
    # It is not a valid definition: Marathon's old-API rules reject it before anything else
    # (ipAddress with Docker discovery, ipAddress together with port definitions), and it also
    # sets both `cmd` and `args`, which its own JSON schema forbids.
    error = rejection(load("app.json"))
    assert error.status_code == 422
    assert error.to_json() == {"message": "Object is not valid", "details": [
        {"path": "/", "errors": ["ipAddress/discovery is not allowed for Docker containers",
                                 "cannot specify both an IP address and port"]}]}


def test_app_json_with_cmd_and_args_alone_is_refused_for_having_both() -> None:
    body = load("app.json")
    del body["ipAddress"]
    body["env"].pop("PASSWORD")
    error = rejection(body)
    assert error.errors_at("/") == [
        "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."]


def repaired_app_json() -> dict[str, Any]:
    body: dict[str, Any] = load("app.json")
    del body["args"], body["ipAddress"]
    body["secrets"]["db"] = {"source": "/db/password"}
    body["env"]["PASSWORD"] = {"secret": "db"}
    return body


def test_everything_else_in_app_json_is_stored_faithfully() -> None:
    app = parse_app(repaired_app_json())
    assert app.id == PathId.parse("/foo")
    assert app.constraints == (AppConstraint("hostname", Operator.LIKE, "srv2.*"),)
    assert app.env["PASSWORD"] == EnvSecretRef("db")
    assert app.container is not None and app.container["docker"]["image"] == \
        "mesosphere:marathon/latest"
    assert app.port_definitions == ()  # BRIDGE networking: the port mappings carry the ports
    assert app.fetch[1] == FetchUri("https://foo.com/archive.zip", executable=False,
                                    extract=True, cache=True, dest_path="newname.zip")
    assert app.tty is True and app.task_kill_grace_period_seconds == 30
    assert app.max_launch_delay_seconds == 3600
    assert app.accepted_resource_roles == ("mesos_role",)
    assert round_trips(app)
    body = to_json(app)
    assert body["container"] == load("app.json")["container"]
    assert body["secrets"]["secret1"] == {"source": "/db/password"}
    assert body["readinessChecks"][0]["portName"] == "http"


def test_unsupported_fields_say_why_the_app_cannot_run_here() -> None:
    app = parse_app(repaired_app_json())
    reasons = app.unsupported_reasons
    # Its Docker image and host volume run here (issue 19); the rest cannot.
    assert not any(r.startswith("container.") for r in reasons)
    assert app.image == ("mesosphere:marathon/latest", False)
    assert app.host_volumes == (("/hdd/tools/docker/registry", "/docker_storage", False),)
    assert any(r.startswith("secrets:") for r in reasons)
    assert any(r.startswith("env: PASSWORD") for r in reasons)
    assert any(r.startswith("networks:") for r in reasons)
    assert app.unsupported_reason == "; ".join(reasons)


def test_check_http_example_round_trips() -> None:
    app = parse_app(load("app-check-http-example.json"))
    assert app.id == PathId.parse("/http-index-test")
    assert app.port_definitions == (PortDefinition(0, "tcp", "http"),)
    assert app.check is not None and app.check["http"]["portIndex"] == 0
    assert app.unsupported_reason is None
    assert round_trips(app)
    assert to_json(app)["check"] == load("app-check-http-example.json")["check"]


def group_apps(group: dict[str, Any]) -> list[tuple[PathId, dict[str, Any]]]:
    found = [(PathId.parse(group["id"]), app) for app in group.get("apps", [])]
    for sub in group.get("groups", []):
        found += group_apps(sub)
    return found


@pytest.mark.parametrize(("base", "body"), group_apps(load("group.json")),
                         ids=[app["id"] for _, app in group_apps(load("group.json"))])
def test_group_json_apps_are_accepted_and_round_trip(base: PathId, body: dict[str, Any]) -> None:
    app = parse_app(body, base_group=base)
    assert app.id == PathId.parse(body["id"])
    assert app.version == body["version"]
    assert app.version_info == body["versionInfo"]
    assert app.constraints == tuple(AppConstraint.from_json(c) for c in body["constraints"])
    assert app.image is not None and app.image[0] == body["container"]["docker"]["image"]
    assert round_trips(app, base)


def test_group_json_ports_follow_the_networking_mode() -> None:
    apps = {str(parse_app(b, base_group=g).id): parse_app(b, base_group=g)
            for g, b in group_apps(load("group.json"))}
    assert apps["/tools/oauth-server"].port_definitions == (PortDefinition(1980),)
    assert apps["/tools/oauth-server"].health_checks[0].port_index == 0
    assert apps["/tools/docker/registry"].port_definitions == ()
    assert not apps["/tools/docker/registry"].host_networking


def test_apps_create_json_list_is_accepted() -> None:
    apps = [parse_app(body) for body in load("apps_create.json")]
    assert [str(a.id) for a in apps] == ["/test/sleep60", "/test/sleep120"]
    assert apps[0].dependencies == (PathId.parse("/test/sleep120"),
                                    PathId.parse("/other/namespace/or/app"))
    assert all(round_trips(a) for a in apps)


def test_queue_json_apps_are_accepted() -> None:
    apps = [parse_app(entry["app"]) for entry in load("queue.json")["queue"]]
    assert apps[1].executor == "//cmd"
    assert apps[1].fetch == (FetchUri("http://www.mesosphere.io/index.html", extract=False),)
    assert apps[1].env == {"MASTER": "zk://172.16.0.12:2181,172.16.0.13:2181,"
                                     "172.16.0.14:2181/mesos"}
    assert all(round_trips(a) for a in apps)


def test_patch_payloads_merge_into_a_stored_app() -> None:
    stored = to_json(parse_app({"id": "/foo", "cmd": "sleep 1", "instances": 5, "cpus": 0.5}))
    patched = parse_app(merge_patch(stored, load("app_patch.json")))
    assert patched.instances == 2 and patched.cpus == 0.5 and patched.cmd == "sleep 1"
    for patch in load("apps_patch.json"):
        base = to_json(parse_app({"id": patch["id"], "cmd": "sleep 1"}))
        merged = parse_app(merge_patch(base, patch))
        assert merged.id == PathId.parse(patch["id"])
        assert merged.cpus == patch.get("cpus", 1.0)
        assert merged.instances == patch.get("instances", 1)


def test_merge_patch_replaces_top_level_fields_and_keeps_id() -> None:
    app = {"id": "/a", "cmd": "x", "labels": {"a": "1", "b": "2"}, "portDefinitions": [],
           "fetch": [{"uri": "http://h/f"}]}
    merged = merge_patch(app, {"id": "/other", "labels": {"c": "3"}, "ports": [80],
                               "uris": ["http://h/g"]})
    assert merged["id"] == "/a"
    assert merged["labels"] == {"c": "3"}
    assert "portDefinitions" not in merged and merged["ports"] == [80]
    assert "fetch" not in merged
    assert app["labels"] == {"a": "1", "b": "2"}  # input untouched
    assert parse_app(merged).port_definitions == (PortDefinition(80),)


def test_schema_fields_are_all_known_to_the_model() -> None:
    schema = load("AppDefinition.schema.json")
    assert set(schema["properties"]) <= KNOWN_FIELDS


def test_model_is_immutable() -> None:
    app = parse_app({"id": "/a", "cmd": "x", "labels": {"k": "v"}})
    with pytest.raises(AttributeError):
        app.instances = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        app.labels["k"] = "w"  # type: ignore[index]
    assert app.replace(instances=3).instances == 3


# --- 422 paths ------------------------------------------------------------------------

INVALID_JSON_CASES = [
    ({"cmd": "x"}, "/id", "error.path.missing"),
    ({"id": 7, "cmd": "x"}, "/id", "error.expected.jsstring"),
    ({"id": None, "cmd": "x"}, "/id", "error.expected.jsstring"),  # was a KeyError (500)
    ({"id": "/Bad_Id", "cmd": "x"}, "/id", "error.pattern"),
    ({"id": "/a/-b", "cmd": "x"}, "/id", "error.pattern"),
    ({"id": "/a", "cmd": ""}, "/cmd", "error.minLength"),
    ({"id": "/a", "cmd": "x", "cpus": -1}, "/cpus", "error.min"),
    ({"id": "/a", "cmd": "x", "mem": "lots"}, "/mem", "error.expected.jsnumber"),
    ({"id": "/a", "cmd": "x", "instances": -1}, "/instances", "error.min"),
    ({"id": "/a", "cmd": "x", "instances": 1.5}, "/instances", "error.expected.int"),
    ({"id": "/a", "cmd": "x", "backoffFactor": 0.5}, "/backoffFactor", "error.min"),
    ({"id": "/a", "cmd": "x", "upgradeStrategy": {"minimumHealthCapacity": 1.5}},
     "/upgradeStrategy/minimumHealthCapacity", "error.max"),
    ({"id": "/a", "cmd": "x", "healthChecks": [{"portIndex": -1}]},
     "/healthChecks(0)/portIndex", "error.min"),
    ({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "UDP"}]},
     "/healthChecks(0)/protocol", "error.unknown.enum.literal"),
    ({"id": "/a", "cmd": "x", "labels": {"k": 1}}, "/labels/k", "error.expected.jsstring"),
    ({"id": "/a", "cmd": "x", "env": {"K": 1}}, "/env/K", "error.expected.jsstring"),
    ({"id": "/a", "cmd": "x", "env": {"K": {"other": "x"}}}, "/env/K/secret",
     "error.path.missing"),
    ({"id": "/a", "cmd": "x", "killSelection": "YoungestFirst"}, "/killSelection",
     "error.unknown.enum.literal"),
    ({"id": "/a", "cmd": "x", "requirePorts": "yes"}, "/requirePorts",
     "error.expected.jsboolean"),
    ({"id": "/a", "cmd": "x", "portDefinitions": [{"port": 70000}]},
     "/portDefinitions(0)/port", "error.max"),
    ({"id": "/a", "cmd": "x", "portDefinitions": [{"name": "Bad"}]},
     "/portDefinitions(0)/name", "error.pattern"),
    ({"id": "/a", "cmd": "x", "dependencies": ["/Bad"]}, "/dependencies(0)", "error.pattern"),
    ({"id": "/a", "cmd": "x", "constraints": [["rack", 1]]}, "/constraints(0)",
     "error.expected.jsstring"),
    ({"id": "/a", "cmd": "x", "args": "x"}, "/args", "error.expected.jsarray"),
    ({"id": "/a", "cmd": "x", "fetch": [{}]}, "/fetch(0)/uri", "error.path.missing"),
    ({"id": "/a", "cmd": "x", "readinessChecks": [{"httpStatusCodesForReady": [42]}]},
     "/readinessChecks(0)/httpStatusCodesForReady(0)", "error.min"),
]


@pytest.mark.parametrize(("body", "path", "error"), INVALID_JSON_CASES,
                         ids=[f"{p}:{e}" for _, p, e in INVALID_JSON_CASES])
def test_invalid_json_paths(body: dict[str, Any], path: str, error: str) -> None:
    rejected = rejection(body)
    assert rejected.message == "Invalid JSON"
    assert rejected.errors_at(path) == [error]


def test_body_must_be_an_object() -> None:
    assert rejection([{"id": "/a"}]).to_json() == {
        "message": "Invalid JSON", "details": [{"path": "", "errors": ["error.expected.jsobject"]}]}


def test_all_read_errors_are_reported_together() -> None:
    body = rejection({"id": "/a", "cmd": "x", "cpus": -1, "mem": -1}).to_json()
    assert body["details"] == [{"path": "/cpus", "errors": ["error.min"]},
                               {"path": "/mem", "errors": ["error.min"]}]


NOT_VALID_CASES = [
    ({"id": "/a"}, "/",
     "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."),
    ({"id": "/a", "cmd": "x", "args": ["y"]}, "/",
     "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."),
    ({"id": "/a/tasks", "cmd": "x"}, "/id",
     "must not end with any of the following reserved keywords: restart, tasks, versions"),
    ({"id": "/a/b..c", "cmd": "x"}, "/id",
     "must fully match regular expression '^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*"
     "([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$'"),
    ({"id": "/", "cmd": "x"}, "/", "must not be root"),
    ({"id": "/a", "cmd": "x", "constraints": [["hostname", "UNIQUE", "x"]]}, "/constraints",
     "Value specified but not used"),
    ({"id": "/a", "cmd": "x", "constraints": [["rack", "LIKE", "[x"]]}, "/constraints",
     "'[x' is not a valid regular expression"),
    ({"id": "/a", "cmd": "x", "constraints": [["rack", "NEAR"]]}, "/constraints",
     "Constraint operator must be one of the following UNIQUE, CLUSTER, GROUP_BY, LIKE, "
     "UNLIKE, MAX_PER or IS"),
    ({"id": "/a", "cmd": "x", "healthChecks": [{"portIndex": 1}]}, "/healthChecks(0)",
     "Health check port indices must address an element of the ports array or container "
     "port mappings."),
    ({"id": "/a", "cmd": "x", "portDefinitions": [], "healthChecks": [{"protocol": "HTTP"}]},
     "/healthChecks(0)",
     "Health check port indices must address an element of the ports array or container "
     "port mappings."),
    ({"id": "/a", "cmd": "x", "healthChecks": [{"protocol": "MESOS_TCP"},
                                               {"protocol": "MESOS_HTTP"}]},
     "/", "AppDefinition can contain at most one Mesos health check"),
    ({"id": "/a", "cmd": "x", "ports": [80, 80]}, "/", "ports must be unique"),
    ({"id": "/a", "cmd": "x", "portDefinitions": [{"port": 80}, {"port": 80}]},
     "/portDefinitions", "Ports must be unique."),
    ({"id": "/a", "cmd": "x", "portDefinitions": [{"name": "a"}, {"name": "a"}]},
     "/portDefinitions", "Port names must be unique."),
    ({"id": "/a", "cmd": "x", "ports": [1], "portDefinitions": [{"port": 2}]}, "/",
     "cannot specify both ports and port definitions"),
    ({"id": "/a", "cmd": "x", "uris": ["http://h/a"], "fetch": [{"uri": "http://h/b"}]},
     "/uris", "may not be set in conjunction with fetch"),
    ({"id": "/a", "cmd": "x", "env": {"P": {"secret": "nope"}}}, "/env/P",
     "references an undefined secret named 'nope'"),
    ({"id": "/a", "cmd": "x", "dependencies": ["/b/versions"]}, "/dependencies(0)",
     "must not end with any of the following reserved keywords: restart, tasks, versions"),
    ({"id": "/a", "cmd": "x", "unreachableStrategy": {"inactiveAfterSeconds": 10,
                                                      "expungeAfterSeconds": 5}},
     "/unreachableStrategy/inactiveAfterSeconds",
     "inactiveAfterSeconds (10) must be less or equal to expungeAfterSeconds, which is 5"),
    ({"id": "/a", "cmd": "x", "readinessChecks": [{"portName": "web"}]},
     "/readinessChecks(0)/portName", "No port definition reference for portName web"),
    ({"id": "/a", "cmd": "x", "acceptedResourceRoles": []}, "/acceptedResourceRoles",
     "must not be empty"),
]


@pytest.mark.parametrize(("body", "path", "error"), NOT_VALID_CASES,
                         ids=[f"{p}:{n}" for n, (_, p, _e) in enumerate(NOT_VALID_CASES)])
def test_object_not_valid_paths(body: dict[str, Any], path: str, error: str) -> None:
    rejected = rejection(body)
    assert rejected.message == "Object is not valid"
    assert error in rejected.errors_at(path)


def test_nested_app_must_sit_in_its_group() -> None:
    rejected = rejection({"id": "/elsewhere/app", "cmd": "x"}, base_group=PathId.parse("/tools"))
    assert rejected.errors_at("/id") == [
        "Identifier is not child of /tools. Hint: use relative paths."]


def test_error_paths_can_be_moved_under_a_group_or_list_index() -> None:
    rejected = rejection({"id": "/a"}).prefixed("/apps(3)")
    assert rejected.to_json()["details"][0]["path"] == "/apps(3)"


def test_container_alone_satisfies_the_command_rule() -> None:
    app = parse_app({"id": "/web", "container": {"type": "DOCKER",
                                                 "docker": {"image": "nginx"}}})
    assert app.cmd is None and app.container is not None
    assert app.unsupported_reason is None and app.image == ("nginx", False)


def test_health_check_json_shape() -> None:
    app = parse_app({"id": "/a", "cmd": "x", "healthChecks": [
        {"protocol": "HTTP", "path": "/health"},
        {"protocol": "COMMAND", "command": {"value": "true"}}]})
    http, command = to_json(app)["healthChecks"]
    assert http == {"gracePeriodSeconds": 300, "intervalSeconds": 60,
                    "maxConsecutiveFailures": 3, "timeoutSeconds": 20, "delaySeconds": 15,
                    "protocol": "HTTP", "path": "/health", "portIndex": 0,
                    "ignoreHttp1xx": False, "ipProtocol": "IPv4"}
    assert command["command"] == {"value": "true"} and "portIndex" not in command
    assert app.health_checks[1] == HealthCheck(protocol="COMMAND", command="true")


def test_parse_does_not_modify_its_input() -> None:
    body = load("app-check-http-example.json")
    original = copy.deepcopy(body)
    parse_app(body)
    assert body == original


def test_container_type_and_network_modes_are_marathons_enums() -> None:
    for body, path in (({"container": {"type": "BOGUS"}}, "/container/type"),
                       ({"networks": [{"mode": "host"}, {"mode": "BOGUS"}]}, "/networks(1)/mode")):
        with pytest.raises(AppValidationError) as raised:
            parse_app({"id": "/a", "cmd": "x", **body})
        assert raised.value.to_json() == {"message": "Invalid JSON", "details": [
            {"path": path, "errors": ["error.unknown.enum.literal"]}]}
    app = parse_app({"id": "/a", "cmd": "x", "container": {"type": "mesos"},
                     "networks": [{"mode": "HOST"}]})
    written = to_json(app)
    assert written["container"] == {"type": "MESOS"} and written["networks"] == [{"mode": "host"}]
