"""Job specs: Metronome's conformance payloads, defaults, 422 details, and the dependency DAG."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from frameworks.batch.jobs import (
    INDEX_ENV,
    EnvSecret,
    JobRunSpec,
    JobSpec,
    RestartPolicy,
    ValidationError,
    check_dependencies,
    dependents_of,
    is_valid_job_id,
    parse_job,
)
from frameworks.batch.runs import JobRun
from frameworks.placement import AgentView, FieldScheme, check
from frameworks.tasks import kill_policy
from mesos_http.field_limits import MAX_DURATION_SECONDS

METRONOME = Path(__file__).resolve().parents[2] / "fixtures" / "conformance" / "metronome"


def load(name: str) -> Any:
    return json.loads((METRONOME / name).read_text())


def without_schedules(obj: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in obj.items() if key != "schedules"}


def errors_of(obj: Any) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        parse_job(obj)
    body = caught.value.to_json()
    assert body["message"] == "Object is not valid"
    return {detail["path"]: detail["errors"] for detail in body["details"]}


def minimal(**run: Any) -> dict[str, Any]:
    return {"id": "prod.job", "run": {"cmd": "true", **run}}


def test_job_json_round_trips_exactly() -> None:
    job = load("job.json")
    spec = parse_job(job)
    assert spec.to_json() == without_schedules(job)
    assert parse_job(spec.to_json()) == spec


def test_job_json_fields_are_read() -> None:
    spec = parse_job(load("job.json"))
    assert spec.id == "prod.example.app"
    assert spec.labels == {"location": "olympus", "owner": "zeus"}
    assert (spec.run.cpus, spec.run.mem, spec.run.disk) == (1.5, 32, 128)
    assert spec.run.constraints[0].attribute == "rack"
    assert spec.run.constraints[0].value == "rack-2"
    assert spec.run.artifacts[0].executable is True
    assert spec.run.restart.policy is RestartPolicy.NEVER
    assert spec.run.restart.active_deadline_seconds == 120
    assert spec.run.docker == {"image": "foo/bla:test"}
    assert spec.run.volumes[0].host_path == "/etc/guest"


def test_job_list_first_entry_round_trips() -> None:
    first = load("job_list.json")[0]
    assert parse_job(first).to_json() == without_schedules(first)


def test_job_list_second_entry_has_an_id_metronome_refuses() -> None:
    # "cleanDb --force" is an example from Metronome's docs that its own id rule rejects.
    second = load("job_list.json")[1]
    assert list(errors_of(second)) == ["/id"]
    fixed = {**second, "id": "clean-db"}
    assert parse_job(fixed).to_json() == {**without_schedules(second), "id": "clean-db"}


def test_defaults_are_metronomes() -> None:
    spec = parse_job({"id": "a", "run": {"cmd": "sleep 1"}})
    assert (spec.run.cpus, spec.run.mem, spec.run.disk, spec.run.gpus) == (1.0, 128.0, 0.0, 0)
    assert spec.run.max_launch_delay == 3600
    assert spec.run.restart.policy is RestartPolicy.NEVER
    assert spec.run.restart.active_deadline_seconds is None
    assert spec.to_json() == {
        "id": "a",
        "labels": {},
        "run": {
            "cpus": 1.0, "mem": 128.0, "disk": 0.0, "cmd": "sleep 1", "env": {},
            "placement": {"constraints": []}, "artifacts": [], "maxLaunchDelay": 3600,
            "volumes": [], "restart": {"policy": "NEVER"},
        },
    }


def test_artifact_defaults() -> None:
    spec = parse_job(minimal(artifacts=[{"uri": "http://x/y.tgz"}]))
    assert spec.to_json()["run"]["artifacts"] == [
        {"uri": "http://x/y.tgz", "extract": True, "executable": False, "cache": False}
    ]


@pytest.mark.parametrize(
    "job_id, valid",
    [("a", True), ("prod.example.app", True), ("a-b.c--d", True), ("a1.2b", True),
     ("A", False), ("-a", False), ("a-", False), ("a..b", False), (".a", False),
     ("a_b", False), ("cleanDb --force", False), ("", False), ("/a/b", False)],
)
def test_job_id_rule(job_id: str, valid: bool) -> None:
    schema_pattern = load("jobspec.schema.json")["definitions"]["pathType"]["pattern"]
    assert bool(re.fullmatch(schema_pattern, job_id)) is valid
    assert is_valid_job_id(job_id) is valid
    if valid:
        assert parse_job({"id": job_id, "run": {"cmd": "x"}}).id == job_id
    else:
        assert "/id" in errors_of({"id": job_id, "run": {"cmd": "x"}})


@pytest.mark.parametrize(
    "obj, path",
    [
        ({"run": {"cmd": "x"}}, "/id"),
        ({"id": "a"}, "/run"),
        ({"id": "a", "run": []}, "/run"),
        ({"id": "a", "run": {"cmd": "x"}, "bogus": 1}, "/bogus"),
        (minimal(bogus=1), "/run/bogus"),
        (minimal(cpus=0.001), "/run/cpus"),
        (minimal(cpus="1"), "/run/cpus"),
        (minimal(cpus=True), "/run/cpus"),
        (minimal(mem=16), "/run/mem"),
        (minimal(disk=-1), "/run/disk"),
        (minimal(gpus=1.5), "/run/gpus"),
        (minimal(maxLaunchDelay=0), "/run/maxLaunchDelay"),
        (minimal(cmd=""), "/run/cmd"),
        (minimal(args=["a", 1]), "/run/args(1)"),
        (minimal(env={"A": 1}), "/run/env/A"),
        (minimal(restart={"policy": "ALWAYS"}), "/run/restart/policy"),
        (minimal(restart={"policy": "NEVER", "activeDeadlineSeconds": "x"}),
         "/run/restart/activeDeadlineSeconds"),
        (minimal(placement={"constraints": [{"attribute": "rack", "operator": "GROUP_BY"}]}),
         "/run/placement/constraints(0)/operator"),
        (minimal(placement={"constraints": [{"operator": "EQ"}]}),
         "/run/placement/constraints(0)/attribute"),
        (minimal(artifacts=[{"extract": True}]), "/run/artifacts(0)/uri"),
        (minimal(volumes=[{"containerPath": "/a", "mode": "RX"}]), "/run/volumes(0)/mode"),
        (minimal(docker={"forcePullImage": True}), "/run/docker/image"),
        (minimal(ucr={"image": {"kind": "docker"}}), "/run/ucr/image/id"),
        (minimal(networks=[{"mode": "overlay"}]), "/run/networks(0)/mode"),
        (minimal(arraySize=0), "/run/arraySize"),
        ({"id": "a", "labels": {"k": 1}, "run": {"cmd": "x"}}, "/labels/k"),
        ({"id": "a", "schedules": {}, "run": {"cmd": "x"}}, "/schedules"),
        ({"id": "a", "dependencies": [{"id": "B"}], "run": {"cmd": "x"}}, "/dependencies(0)"),
    ],
)
def test_invalid_fields_are_reported_at_their_path(obj: dict[str, Any], path: str) -> None:
    assert path in errors_of(obj)


@pytest.mark.parametrize("run, path", [
    ({"maxLaunchDelay": 2**31}, "/run/maxLaunchDelay"),
    ({"restart": {"policy": "ON_FAILURE", "activeDeadlineSeconds": 10**20}},
     "/run/restart/activeDeadlineSeconds"),
    ({"taskKillGracePeriodSeconds": 1e12}, "/run/taskKillGracePeriodSeconds"),
])
def test_durations_beyond_metronomes_int_are_refused(run: dict[str, Any], path: str) -> None:
    """Found by fuzzing: such values were stored, then overflowed `timedelta` (or a Mesos
    DurationInfo) once the run was checked or its tasks launched or killed."""
    assert path in errors_of(minimal(**run))


def test_the_longest_durations_can_be_used() -> None:
    spec = parse_job(minimal(maxLaunchDelay=MAX_DURATION_SECONDS,
                             taskKillGracePeriodSeconds=MAX_DURATION_SECONDS,
                             restart={"policy": "ON_FAILURE",
                                      "activeDeadlineSeconds": MAX_DURATION_SECONDS}))
    now = datetime.now(UTC)
    run = JobRun.start(spec, now, random.Random(1))
    assert run.check_deadlines(now + timedelta(days=365)) is run
    assert spec.run.task_kill_grace_period_seconds is not None
    assert kill_policy(spec.run.task_kill_grace_period_seconds).grace_period.nanoseconds \
        == MAX_DURATION_SECONDS * 10**9


def test_every_violation_is_reported_at_once() -> None:
    details = errors_of({"id": "Bad", "run": {"cmd": "x", "cpus": 0, "mem": 1}})
    assert set(details) == {"/id", "/run/cpus", "/run/mem"}


def test_errors_at_the_same_path_are_grouped() -> None:
    error = ValidationError([("/a", "one"), ("/b", "two"), ("/a", "three")])
    assert error.to_json()["details"] == [
        {"path": "/a", "errors": ["one", "three"]}, {"path": "/b", "errors": ["two"]}
    ]


def test_not_an_object_is_a_violation() -> None:
    assert "/" in errors_of([1, 2])


def test_something_to_run_is_required() -> None:
    assert errors_of({"id": "a", "run": {}})["/run"] == [
        "Cmd, docker or ucr image must be specified"
    ]
    assert parse_job({"id": "a", "run": {"docker": {"image": "busybox"}}}).run.cmd is None


def test_docker_and_ucr_exclude_each_other_and_cmd_excludes_args() -> None:
    both = minimal(docker={"image": "a"}, ucr={"image": {"id": "b"}})
    assert "/run" in errors_of(both)
    assert "/run" in errors_of({"id": "a", "run": {"cmd": "x", "args": ["y"]}})


def test_docker_and_ucr_are_kept_verbatim() -> None:
    docker = {"image": "a", "forcePullImage": True, "parameters": [{"key": "k", "value": "v"}]}
    spec = parse_job({"id": "a", "run": {"docker": docker, "args": ["--x"]}})
    assert spec.to_json()["run"]["docker"] == docker
    assert spec.to_json()["run"]["args"] == ["--x"]
    ucr = {"image": {"id": "img", "kind": "docker", "forcePull": False}, "privileged": False}
    assert parse_job({"id": "a", "run": {"ucr": ucr}}).to_json()["run"]["ucr"] == ucr


def test_secrets_must_match_their_references() -> None:
    good = minimal(env={"PASSWORD": {"secret": "pw"}, "PLAIN": "1"},
                   secrets={"pw": {"source": "/db/password"}})
    spec = parse_job(good)
    assert spec.run.env["PASSWORD"] == EnvSecret("pw")
    assert spec.to_json()["run"]["secrets"] == {"pw": {"source": "/db/password"}}
    assert spec.to_json()["run"]["env"]["PASSWORD"] == {"secret": "pw"}
    assert spec.run.task_environment(0) == {"PLAIN": "1"}
    assert "/run/secrets" in errors_of(minimal(env={"P": {"secret": "pw"}}))
    assert "/run/secrets" in errors_of(minimal(secrets={"pw": {"source": "s"}}))


def test_array_jobs_put_the_index_in_each_tasks_environment() -> None:
    spec = parse_job(minimal(arraySize=3, env={"A": "1"}))
    assert spec.run.array_size == 3
    assert spec.to_json()["run"]["arraySize"] == 3
    assert [spec.run.task_environment(i) for i in range(3)] == [
        {"A": "1", INDEX_ENV: "0"}, {"A": "1", INDEX_ENV: "1"}, {"A": "1", INDEX_ENV: "2"}
    ]
    with pytest.raises(ValueError, match="outside"):
        spec.run.task_environment(3)


def test_plain_jobs_get_no_index_and_may_define_their_own() -> None:
    spec = parse_job(minimal(env={"INDEX": "mine"}))
    assert spec.run.task_environment(0) == {"INDEX": "mine"}
    assert "arraySize" not in spec.to_json()["run"]
    assert "/run/env/INDEX" in errors_of(minimal(arraySize=2, env={"INDEX": "mine"}))


def test_dependencies_read_both_forms_and_write_metronomes() -> None:
    spec = parse_job({"id": "c", "dependencies": [{"id": "a"}, "b"], "run": {"cmd": "x"}})
    assert spec.dependencies == ("a", "b")
    assert spec.to_json()["dependencies"] == [{"id": "a"}, {"id": "b"}]
    assert "/dependencies(1)" in errors_of(
        {"id": "c", "dependencies": ["a", "a"], "run": {"cmd": "x"}})


def job(job_id: str, *parents: str) -> JobSpec:
    return JobSpec(id=job_id, run=JobRunSpec(cmd="true"), dependencies=parents)


def stored(*jobs: JobSpec) -> dict[str, JobSpec]:
    return {spec.id: spec for spec in jobs}


def test_dag_accepts_a_diamond() -> None:
    jobs = stored(job("a"), job("b", "a"), job("c", "a"))
    check_dependencies(job("d", "b", "c"), jobs)


def test_dag_rejects_unknown_parents() -> None:
    with pytest.raises(ValidationError) as caught:
        check_dependencies(job("b", "a", "x"), stored(job("a")))
    assert caught.value.to_json()["details"] == [
        {"path": "/dependencies", "errors": ["unknown job 'x'"]}
    ]


def test_dag_rejects_a_self_dependency() -> None:
    with pytest.raises(ValidationError, match="dependency cycle: a -> a"):
        check_dependencies(job("a", "a"), {})


def test_dag_rejects_an_update_that_closes_a_cycle() -> None:
    jobs = stored(job("a"), job("b", "a"), job("c", "b"))
    with pytest.raises(ValidationError, match="dependency cycle: a -> c -> b -> a"):
        check_dependencies(job("a", "c"), jobs)
    check_dependencies(job("a"), jobs)


def test_dependents_of_lists_children() -> None:
    jobs = stored(job("a"), job("b", "a"), job("c", "a", "b"))
    assert dependents_of("a", jobs) == ("b", "c")
    assert dependents_of("c", jobs) == ()


BATCH_PLACEMENT = [
    # (id, constraint, agent's attributes, accepted)
    ("eq", {"operator": "EQ", "value": "r2"}, {"rack": "r2"}, True),
    ("is-other", {"operator": "IS", "value": "r2"}, {"rack": "r1"}, False),
    ("eq-missing", {"operator": "EQ", "value": "r2"}, {}, False),
    ("like", {"operator": "LIKE", "value": "r[0-9]"}, {"rack": "r2"}, True),
    ("like-missing", {"operator": "LIKE", "value": ".*"}, {}, False),
    ("unlike", {"operator": "UNLIKE", "value": "r2"}, {"rack": "r2"}, False),
    ("unlike-missing", {"operator": "UNLIKE", "value": "r2"}, {}, True),
    ("unlike-without-pattern", {"operator": "UNLIKE"}, {"rack": "r2"}, True),
    ("like-without-pattern", {"operator": "LIKE"}, {"rack": "r2"}, False),
]


@pytest.mark.parametrize(("constraint", "attributes", "accepted"),
                         [case[1:] for case in BATCH_PLACEMENT],
                         ids=[case[0] for case in BATCH_PLACEMENT])
def test_placement_rules_keep_metronome_semantics(constraint: dict[str, str],
                                                  attributes: dict[str, str],
                                                  accepted: bool) -> None:
    spec = parse_job(minimal(placement={"constraints": [{"attribute": "rack", **constraint}]}))
    agent = AgentView("h1", attributes, scheme=FieldScheme.ATTRIBUTES)
    assert bool(check(spec.run.placement_rules, agent)) is accepted


@pytest.mark.parametrize(("attributes", "accepted"), [({}, True), ({"hostname": "x"}, False)],
                         ids=["the-host", "an-attribute-named-hostname"])
def test_hostname_is_the_host_unless_an_attribute_says_otherwise(
        attributes: dict[str, str], accepted: bool) -> None:
    spec = parse_job(minimal(placement={"constraints": [
        {"attribute": "hostname", "operator": "EQ", "value": "h1"}]}))
    agent = AgentView("h1", attributes, scheme=FieldScheme.ATTRIBUTES)
    assert bool(check(spec.run.placement_rules, agent)) is accepted
