"""Job specs: Metronome's v1 job JSON as immutable values, validated with Metronome's 422 shape.

    request JSON ──parse_job()──▶ JobSpec ──JobSpec.to_json()──▶ response JSON
                       │ invalid
                       ▼
              ValidationError.to_json() == {"message": "Object is not valid",
                                            "details": [{"path": "/run/cpus", "errors": [...]}]}

    check_dependencies(job, all_jobs)   unknown parents or a cycle ─▶ ValidationError (422)

Defaults are Metronome's: cpus 1.0, mem 128, disk 0, maxLaunchDelay 3600, restart policy NEVER,
artifacts extract=true, executable=false, cache=false. `to_json` writes every defaulted field and
leaves out optional ones that are unset (description, cmd, args, user, docker, ucr, networks,
taskKillGracePeriodSeconds, and empty secrets, a zero gpus, no dependencies, an arraySize of 1), so
a job written with defaults reads back to an equal `JobSpec`. `docker`, `ucr`, `networks` and
`secrets` are validated against Metronome's schema and kept verbatim. The `schedules` key of a job
body is checked to be a list and otherwise left to the caller: schedules have their own model
(`schedules.parse_schedule`) and endpoints, as in Metronome.

Extensions (documented, not in Metronome):
- `dependencies`: `[{"id": "other.job"}, ...]` as in Metronome's schema (a plain `"other.job"`
  string is accepted too); the job's runs start when every parent's latest run succeeded.
- `run.arraySize` (default 1): each run of the job is `arraySize` indexed tasks; task `i` gets
  `INDEX=i` in its environment (`JobRunSpec.task_environment`), so an array job may not define
  `INDEX` itself. Plain jobs (size 1) get no `INDEX`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property
from types import MappingProxyType
from typing import Any

from frameworks.placement import Constraint as PlacementConstraint
from frameworks.placement import Operator
from mesos_http.field_limits import (
    MAX_ARG_BYTES,
    MAX_DURATION_SECONDS,
    MAX_ID_LENGTH,
    MAX_TASKS,
    exec_string_overflow,
)
from mesos_http.json_input import (
    METRONOME,
    InvalidBody,
    JsonReader,
    Violation,
    frozen_json,
    thawed_json,
)
from mesos_values.resources import MAX_SCALAR

__all__ = [
    "INDEX_ENV",
    "Artifact",
    "EnvSecret",
    "JobConstraint",
    "JobRunSpec",
    "JobSpec",
    "RestartPolicy",
    "RestartSpec",
    "ValidationError",
    "Violation",
    "Volume",
    "check_dependencies",
    "dependents_of",
    "is_valid_job_id",
    "parse_job",
]

INDEX_ENV = "INDEX"
"""The environment variable holding a task's index in an array job."""

JOB_ID_PATTERN = re.compile(r"^([a-z0-9]+(-+[a-z0-9]+)*)(\.([a-z0-9]+(-+[a-z0-9]+)*))*$")
"""Metronome's job id: dot-separated names of digits, dashes and lowercase letters."""

OBJECT_NOT_VALID = "Object is not valid"
"""The message of every 422 body of the batch API."""

_OPERATORS = ("IS", "EQ", "LIKE", "UNLIKE")
_NETWORK_MODES = ("host", "container/bridge", "container")
_TOP_LEVEL_KEYS = frozenset({"id", "description", "labels", "run", "schedules", "dependencies"})
_RUN_KEYS = frozenset({
    "args", "artifacts", "cmd", "cpus", "gpus", "disk", "networks", "ucr", "docker", "env",
    "maxLaunchDelay", "mem", "placement", "user", "taskKillGracePeriodSeconds", "restart",
    "volumes", "secrets", "arraySize",
})


class ValidationError(InvalidBody):
    """A body Metronome would refuse with 422 Unprocessable Entity ("Object is not valid")."""

    def __init__(self, violations: Iterable[tuple[str, str] | Violation]) -> None:
        super().__init__(OBJECT_NOT_VALID, (v if isinstance(v, Violation) else Violation(*v)
                                            for v in violations))

    def __str__(self) -> str:
        return "; ".join(f"{d.path}: {', '.join(d.errors)}" for d in self.details)


class RestartPolicy(StrEnum):
    """What happens to a run whose task fails."""

    NEVER = "NEVER"
    ON_FAILURE = "ON_FAILURE"


@dataclass(frozen=True)
class RestartSpec:
    """Restart policy; `active_deadline_seconds` bounds (from the run's start) how long to retry."""

    policy: RestartPolicy = RestartPolicy.NEVER
    active_deadline_seconds: int | None = None


@dataclass(frozen=True)
class Artifact:
    """A URI the Mesos fetcher downloads into the sandbox."""

    uri: str
    extract: bool = True
    executable: bool = False
    cache: bool = False


@dataclass(frozen=True)
class JobConstraint:
    """A placement constraint on an agent attribute (`rack EQ rack-2`); `hostname` is the
    agent's host unless it has an attribute of that name."""

    attribute: str
    operator: str
    value: str | None = None

    def rule(self) -> PlacementConstraint | None:
        """The constraint for `frameworks.placement`: EQ reads as IS, and an UNLIKE without a
        pattern, which rules out no agent, is None."""
        if self.operator == "UNLIKE" and not self.value:
            return None
        operator = Operator.IS if self.operator == "EQ" else Operator(self.operator)
        return PlacementConstraint(self.attribute, operator, self.value)


@dataclass(frozen=True)
class Volume:
    """A volume mounted into the task's container."""

    container_path: str
    host_path: str | None = None
    mode: str | None = None
    secret: str | None = None


@dataclass(frozen=True)
class EnvSecret:
    """An environment variable whose value is the secret named `secret`."""

    secret: str


@dataclass(frozen=True)
class JobRunSpec:
    """How each run of a job is executed (Metronome's `run` object)."""

    cpus: float = 1.0
    mem: float = 128.0
    disk: float = 0.0
    gpus: int = 0
    cmd: str | None = None
    args: tuple[str, ...] | None = None
    user: str | None = None
    env: Mapping[str, str | EnvSecret] = field(default_factory=lambda: MappingProxyType({}))
    constraints: tuple[JobConstraint, ...] = ()
    artifacts: tuple[Artifact, ...] = ()
    max_launch_delay: int = 3600
    docker: Mapping[str, Any] | None = None
    ucr: Mapping[str, Any] | None = None
    networks: tuple[Mapping[str, Any], ...] = ()
    volumes: tuple[Volume, ...] = ()
    restart: RestartSpec = RestartSpec()
    task_kill_grace_period_seconds: float | None = None
    secrets: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    array_size: int = 1

    @cached_property
    def placement_rules(self) -> tuple[PlacementConstraint, ...]:
        """`constraints` as `frameworks.placement` checks them."""
        return tuple(rule for rule in (c.rule() for c in self.constraints) if rule is not None)

    @property
    def image(self) -> tuple[str, bool] | None:
        """The Docker image the run's tasks run in and whether to pull it every time
        (`docker.image`/`forcePullImage`, or `ucr.image.id`/`forcePull`), None for none."""
        if self.docker is not None and isinstance(self.docker.get("image"), str):
            return self.docker["image"], self.docker.get("forcePullImage") is True
        image = (self.ucr or {}).get("image")
        if isinstance(image, Mapping) and isinstance(image.get("id"), str):
            return image["id"], image.get("forcePull") is True
        return None

    @property
    def unsupported_reason(self) -> str | None:
        """Why this cluster cannot run the job as written (None when it can): what only a
        Docker daemon or a secret store gives."""
        docker = self.docker or {}
        if docker.get("privileged") is True or (self.ucr or {}).get("privileged") is True:
            return ("run.docker.privileged: privileged containers are not supported: this "
                    "cluster runs images with runc, without a Docker daemon")
        if docker.get("parameters"):
            return ("run.docker.parameters: docker run parameters are not supported: this "
                    "cluster runs images with runc, without a Docker daemon")
        image = (self.ucr or {}).get("image")
        if isinstance(image, Mapping) and image.get("kind", "docker") != "docker":
            return f"run.ucr.image.kind: {image.get('kind')} images are not supported"
        if any(v.secret is not None or v.host_path is None for v in self.volumes):
            return "run.volumes: only host volumes are supported (this cluster has no secrets)"
        if self.volumes and self.image is None:
            return "run.volumes: volumes need a container image on this cluster"
        return None

    def task_environment(self, index: int) -> dict[str, str]:
        """The plain environment of task `index` (secret-valued variables are left out).

        An array job's task also gets `INDEX=<index>`.
        """
        if not 0 <= index < self.array_size:
            raise ValueError(f"task index {index} outside 0..{self.array_size - 1}")
        environment = {name: value for name, value in self.env.items() if isinstance(value, str)}
        if self.array_size > 1:
            environment[INDEX_ENV] = str(index)
        return environment

    def to_json(self) -> dict[str, Any]:
        """Metronome's `run` JSON."""
        result: dict[str, Any] = {"cpus": self.cpus, "mem": self.mem, "disk": self.disk}
        if self.gpus:
            result["gpus"] = self.gpus
        if self.cmd is not None:
            result["cmd"] = self.cmd
        if self.args is not None:
            result["args"] = list(self.args)
        if self.user is not None:
            result["user"] = self.user
        result["env"] = {name: value if isinstance(value, str) else {"secret": value.secret}
                         for name, value in self.env.items()}
        result["placement"] = {"constraints": [_constraint_json(c) for c in self.constraints]}
        result["artifacts"] = [
            {"uri": a.uri, "extract": a.extract, "executable": a.executable, "cache": a.cache}
            for a in self.artifacts
        ]
        result["maxLaunchDelay"] = self.max_launch_delay
        if self.docker is not None:
            result["docker"] = thawed_json(self.docker)
        if self.ucr is not None:
            result["ucr"] = thawed_json(self.ucr)
        if self.networks:
            result["networks"] = thawed_json(self.networks)
        result["volumes"] = [_volume_json(v) for v in self.volumes]
        restart: dict[str, Any] = {"policy": self.restart.policy.value}
        if self.restart.active_deadline_seconds is not None:
            restart["activeDeadlineSeconds"] = self.restart.active_deadline_seconds
        result["restart"] = restart
        if self.task_kill_grace_period_seconds is not None:
            result["taskKillGracePeriodSeconds"] = self.task_kill_grace_period_seconds
        if self.secrets:
            result["secrets"] = thawed_json(self.secrets)
        if self.array_size != 1:
            result["arraySize"] = self.array_size
        return result


@dataclass(frozen=True)
class JobSpec:
    """A job definition (Metronome's v1 job, plus `dependencies`)."""

    id: str
    run: JobRunSpec
    description: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    dependencies: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """Metronome's job JSON (without `schedules`, which the caller embeds on request)."""
        result: dict[str, Any] = {"id": self.id}
        if self.description is not None:
            result["description"] = self.description
        result["labels"] = dict(self.labels)
        if self.dependencies:
            result["dependencies"] = [{"id": parent} for parent in self.dependencies]
        result["run"] = self.run.to_json()
        return result


def is_valid_job_id(job_id: str) -> bool:
    """Whether `job_id` is a valid Metronome job id (also for ids taken from a URL path)."""
    return bool(JOB_ID_PATTERN.fullmatch(job_id))


def parse_job(obj: Any) -> JobSpec:
    """Read a job body; ValidationError listing every problem (Metronome's 422) otherwise."""
    reader = _JobReader()
    spec = reader.job(obj)
    if reader.violations or spec is None:
        raise ValidationError(reader.violations or [("/", "a job must be a JSON object")])
    return spec


def check_dependencies(job: JobSpec, jobs: Mapping[str, JobSpec]) -> None:
    """Refuse `job` (new, or replacing `jobs[job.id]`) if a parent is unknown or it closes a cycle.

    `jobs` holds every other stored job. Raises ValidationError on `/dependencies`.
    """
    graph = {job_id: spec.dependencies for job_id, spec in jobs.items()}
    graph[job.id] = job.dependencies
    unknown = [parent for parent in job.dependencies if parent not in graph]
    if unknown:
        raise ValidationError(("/dependencies", f"unknown job '{parent}'") for parent in unknown)
    cycle = _cycle_through(job.id, graph)
    if cycle:
        raise ValidationError([("/dependencies", "dependency cycle: " + " -> ".join(cycle))])


def dependents_of(job_id: str, jobs: Mapping[str, JobSpec]) -> tuple[str, ...]:
    """The ids of the jobs that depend on `job_id`, sorted (to refuse deleting a parent)."""
    return tuple(sorted(other for other, spec in jobs.items() if job_id in spec.dependencies))


def _cycle_through(start: str, graph: Mapping[str, Sequence[str]]) -> list[str] | None:
    """A path start -> ... -> start along dependencies, if there is one."""
    path = [start]
    seen: set[str] = set()

    def visit(node: str) -> bool:
        for parent in graph.get(node, ()):
            if parent == start:
                path.append(start)
                return True
            if parent in seen:
                continue
            seen.add(parent)
            path.append(parent)
            if visit(parent):
                return True
            path.pop()
        return False

    return path if visit(start) else None


def _constraint_json(constraint: JobConstraint) -> dict[str, Any]:
    result = {"attribute": constraint.attribute, "operator": constraint.operator}
    if constraint.value is not None:
        result["value"] = constraint.value
    return result


def _volume_json(volume: Volume) -> dict[str, Any]:
    result = {"containerPath": volume.container_path}
    for key, value in (("hostPath", volume.host_path), ("mode", volume.mode),
                       ("secret", volume.secret)):
        if value is not None:
            result[key] = value
    return result


def _items(values: Sequence[Any], path: str) -> Iterator[tuple[str, Any]]:
    for index, value in enumerate(values):
        yield f"{path}({index})", value


class _JobReader:
    """Reads a job body, collecting every violation instead of stopping at the first."""

    def __init__(self) -> None:
        self.json = JsonReader(METRONOME)

    @property
    def violations(self) -> list[Violation]:
        return self.json.violations

    def error(self, path: str, message: str) -> None:
        self.json.fail(path, message)

    def unknown_keys(self, obj: Mapping[str, Any], known: frozenset[str], path: str) -> None:
        for key in obj:
            if key not in known:
                self.error(f"{path}/{key}", "unknown property")

    def string(self, obj: Mapping[str, Any], key: str, path: str, *, required: bool = False,
               non_empty: bool = False) -> str | None:
        if key not in obj:
            if required:
                self.error(f"{path}/{key}", METRONOME.missing)
            return None
        return self.json.string(obj[key], f"{path}/{key}", min_length=1 if non_empty else 0)

    def boolean(self, obj: Mapping[str, Any], key: str, path: str, default: bool) -> bool:
        value = self.json.boolean(obj.get(key, default), f"{path}/{key}")
        return default if value is None else value

    def number(self, obj: Mapping[str, Any], key: str, path: str, default: float,
               minimum: float, maximum: float = MAX_SCALAR) -> float:
        value = obj.get(key, default)
        checked = self.json.number(value, f"{path}/{key}", minimum=minimum, maximum=maximum)
        return default if checked is None else value

    def integer(self, obj: Mapping[str, Any], key: str, path: str, default: int,
                minimum: int, maximum: int | None = None) -> int:
        value = self.json.integer(obj.get(key, default), f"{path}/{key}", minimum=minimum,
                                  maximum=maximum)
        return default if value is None else value

    def exec_string(self, path: str, text: str) -> None:
        """Refuse a string `exec` could not be handed (over MAX_ARG_BYTES)."""
        if (size := exec_string_overflow(text)) is not None:
            self.error(path, f"must be at most {MAX_ARG_BYTES} bytes long, not {size}")

    def mapping(self, obj: Mapping[str, Any], key: str, path: str) -> Mapping[str, Any]:
        return self.json.object(obj.get(key, {}), f"{path}/{key}") or {}

    def array(self, obj: Mapping[str, Any], key: str, path: str) -> list[Any]:
        return self.json.array(obj.get(key, []), f"{path}/{key}") or []

    def job(self, obj: Any) -> JobSpec | None:
        if not isinstance(obj, dict):
            return None
        self.unknown_keys(obj, _TOP_LEVEL_KEYS, "")
        job_id = self.string(obj, "id", "", required=True)
        if job_id is not None and not is_valid_job_id(job_id):
            self.error("/id", "must be dot-separated names of lowercase letters, digits and "
                              "dashes, each starting and ending with a letter or digit")
        elif job_id is not None and len(job_id) > MAX_ID_LENGTH:
            self.error("/id", f"must be at most {MAX_ID_LENGTH} characters long")
        description = self.string(obj, "description", "")
        labels = self.mapping(obj, "labels", "")
        for name, value in labels.items():
            if not isinstance(value, str):
                self.error(f"/labels/{name}", "must be a string")
        self.array(obj, "schedules", "")
        dependencies = self.dependencies(obj)
        if "run" not in obj:
            self.error("/run", "is required")
            return None
        if not isinstance(obj["run"], dict):
            self.error("/run", "must be an object")
            return None
        run = self.run(obj["run"], "/run")
        if job_id is None:
            return None
        return JobSpec(id=job_id, run=run, description=description,
                       labels=MappingProxyType(dict(labels)), dependencies=dependencies)

    def dependencies(self, obj: Mapping[str, Any]) -> tuple[str, ...]:
        parents: list[str] = []
        for path, item in _items(self.array(obj, "dependencies", ""), "/dependencies"):
            parent = item.get("id") if isinstance(item, dict) else item
            if not isinstance(parent, str) or not is_valid_job_id(parent):
                self.error(path, "must be {\"id\": <job id>} naming a valid job id")
            elif parent in parents:
                self.error(path, f"job '{parent}' is listed twice")
            else:
                parents.append(parent)
        return tuple(parents)

    def run(self, obj: Mapping[str, Any], path: str) -> JobRunSpec:
        self.unknown_keys(obj, _RUN_KEYS, path)
        cmd = self.string(obj, "cmd", path, non_empty=True)
        if cmd is not None:
            self.exec_string(f"{path}/cmd", cmd)
        args = self.args(obj, path)
        user = self.string(obj, "user", path)
        docker = self.docker(obj, path)
        ucr = self.ucr(obj, path)
        if cmd is None and docker is None and ucr is None:
            self.error(path, "Cmd, docker or ucr image must be specified")
        if cmd is not None and args is not None:
            self.error(path, "supply either cmd or args, not both")
        if docker is not None and ucr is not None:
            self.error(path, "Either Docker or UCR should be provided, but not both")
        env = self.env(obj, path)
        secrets = self.secrets(obj, path)
        volumes = self.volumes(obj, path)
        referenced = {v.secret for v in env.values() if isinstance(v, EnvSecret)}
        referenced |= {v.secret for v in volumes if v.secret is not None}
        if referenced != set(secrets):
            self.error(f"{path}/secrets", "secret names differ from the secrets referenced: "
                       f"referenced {sorted(referenced)}, provided {sorted(secrets)}")
        array_size = self.integer(obj, "arraySize", path, 1, 1, MAX_TASKS)
        if array_size > 1 and INDEX_ENV in env:
            self.error(f"{path}/env/{INDEX_ENV}",
                       f"{INDEX_ENV} is set by the framework for each task of an array job")
        return JobRunSpec(
            cpus=self.number(obj, "cpus", path, 1.0, 0.01),
            mem=self.number(obj, "mem", path, 128.0, 32),
            disk=self.number(obj, "disk", path, 0.0, 0),
            gpus=self.integer(obj, "gpus", path, 0, 0, int(MAX_SCALAR)),
            cmd=cmd,
            args=args,
            user=user,
            env=MappingProxyType(env),
            constraints=self.constraints(obj, path),
            artifacts=self.artifacts(obj, path),
            max_launch_delay=self.integer(obj, "maxLaunchDelay", path, 3600, 1,
                                          MAX_DURATION_SECONDS),
            docker=docker,
            ucr=ucr,
            networks=self.networks(obj, path),
            volumes=volumes,
            restart=self.restart(obj, path),
            task_kill_grace_period_seconds=self.grace_period(obj, path),
            secrets=frozen_json(secrets),
            array_size=array_size,
        )

    def args(self, obj: Mapping[str, Any], path: str) -> tuple[str, ...] | None:
        if "args" not in obj:
            return None
        values = self.array(obj, "args", path)
        for item_path, value in _items(values, f"{path}/args"):
            if not isinstance(value, str):
                self.error(item_path, "must be a string")
            else:
                self.exec_string(item_path, value)
        return tuple(str(value) for value in values)

    def env(self, obj: Mapping[str, Any], path: str) -> dict[str, str | EnvSecret]:
        env: dict[str, str | EnvSecret] = {}
        for name, value in self.mapping(obj, "env", path).items():
            if isinstance(value, str):
                self.exec_string(f"{path}/env/{name}", f"{name}={value}")
                env[name] = value
            elif isinstance(value, dict) and isinstance(value.get("secret"), str):
                env[name] = EnvSecret(value["secret"])
            else:
                self.error(f"{path}/env/{name}", "must be a string or {\"secret\": <name>}")
        return env

    def secrets(self, obj: Mapping[str, Any], path: str) -> Mapping[str, Any]:
        secrets = self.mapping(obj, "secrets", path)
        for name, value in secrets.items():
            if not isinstance(value, dict) or not isinstance(value.get("source"), str):
                self.error(f"{path}/secrets/{name}", "must be {\"source\": <secret name>}")
        return secrets

    def constraints(self, obj: Mapping[str, Any], path: str) -> tuple[JobConstraint, ...]:
        placement = self.mapping(obj, "placement", path)
        self.unknown_keys(placement, frozenset({"constraints"}), f"{path}/placement")
        constraints: list[JobConstraint] = []
        items = self.array(placement, "constraints", f"{path}/placement")
        for item_path, item in _items(items, f"{path}/placement/constraints"):
            if not isinstance(item, dict):
                self.error(item_path, "must be an object")
                continue
            self.unknown_keys(item, frozenset({"attribute", "operator", "value"}), item_path)
            attribute = self.string(item, "attribute", item_path, required=True)
            operator = self.string(item, "operator", item_path, required=True)
            value = self.string(item, "value", item_path)
            if operator is not None and operator not in _OPERATORS:
                allowed = ", ".join(_OPERATORS)
                self.error(f"{item_path}/operator",
                           f"'{operator}' is not a valid operator; allowed: {allowed}")
            if attribute is not None and operator is not None:
                constraints.append(JobConstraint(attribute, operator, value))
        return tuple(constraints)

    def artifacts(self, obj: Mapping[str, Any], path: str) -> tuple[Artifact, ...]:
        artifacts: list[Artifact] = []
        for item_path, item in _items(self.array(obj, "artifacts", path), f"{path}/artifacts"):
            if not isinstance(item, dict):
                self.error(item_path, "must be an object")
                continue
            self.unknown_keys(item, frozenset({"uri", "extract", "executable", "cache"}), item_path)
            uri = self.string(item, "uri", item_path, required=True)
            extract = self.boolean(item, "extract", item_path, True)
            executable = self.boolean(item, "executable", item_path, False)
            cache = self.boolean(item, "cache", item_path, False)
            if uri is not None:
                artifacts.append(Artifact(uri, extract, executable, cache))
        return tuple(artifacts)

    def volumes(self, obj: Mapping[str, Any], path: str) -> tuple[Volume, ...]:
        volumes: list[Volume] = []
        for item_path, item in _items(self.array(obj, "volumes", path), f"{path}/volumes"):
            if not isinstance(item, dict):
                self.error(item_path, "must be an object")
                continue
            known = frozenset({"containerPath", "hostPath", "mode", "secret"})
            self.unknown_keys(item, known, item_path)
            container_path = self.string(item, "containerPath", item_path, required=True,
                                         non_empty=True)
            host_path = self.string(item, "hostPath", item_path, non_empty=True)
            mode = self.string(item, "mode", item_path)
            secret = self.string(item, "secret", item_path, non_empty=True)
            if mode is not None and mode not in ("RO", "RW"):
                self.error(f"{item_path}/mode", "must be RO or RW")
            if container_path is not None:
                volumes.append(Volume(container_path, host_path, mode, secret))
        return tuple(volumes)

    def restart(self, obj: Mapping[str, Any], path: str) -> RestartSpec:
        restart = self.mapping(obj, "restart", path)
        restart_path = f"{path}/restart"
        self.unknown_keys(restart, frozenset({"policy", "activeDeadlineSeconds"}), restart_path)
        policy_name = restart.get("policy", RestartPolicy.NEVER.value)
        if policy_name not in (RestartPolicy.NEVER.value, RestartPolicy.ON_FAILURE.value):
            self.error(f"{restart_path}/policy",
                       f"'{policy_name}' is not a valid restart policy; allowed: NEVER, ON_FAILURE")
            policy_name = RestartPolicy.NEVER.value
        deadline: int | None = None
        if "activeDeadlineSeconds" in restart:
            deadline = self.integer(restart, "activeDeadlineSeconds", restart_path, 0, 0,
                                    MAX_DURATION_SECONDS)
        return RestartSpec(RestartPolicy(policy_name), deadline)

    def grace_period(self, obj: Mapping[str, Any], path: str) -> float | None:
        if "taskKillGracePeriodSeconds" not in obj:
            return None
        return self.number(obj, "taskKillGracePeriodSeconds", path, 0, 0, MAX_DURATION_SECONDS)

    def docker(self, obj: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
        if "docker" not in obj:
            return None
        docker = self.mapping(obj, "docker", path)
        docker_path = f"{path}/docker"
        self.unknown_keys(docker, frozenset({"image", "forcePullImage", "privileged",
                                             "parameters"}), docker_path)
        self.string(docker, "image", docker_path, required=True, non_empty=True)
        self.boolean(docker, "forcePullImage", docker_path, False)
        self.boolean(docker, "privileged", docker_path, False)
        for item_path, item in _items(self.array(docker, "parameters", docker_path),
                                      f"{docker_path}/parameters"):
            if not isinstance(item, dict):
                self.error(item_path, "must be an object")
                continue
            self.unknown_keys(item, frozenset({"key", "value"}), item_path)
            self.string(item, "key", item_path, required=True)
            self.string(item, "value", item_path, required=True)
        return frozen_json(docker) if isinstance(obj["docker"], dict) else None

    def ucr(self, obj: Mapping[str, Any], path: str) -> Mapping[str, Any] | None:
        if "ucr" not in obj:
            return None
        ucr = self.mapping(obj, "ucr", path)
        ucr_path = f"{path}/ucr"
        self.unknown_keys(ucr, frozenset({"image", "privileged"}), ucr_path)
        self.boolean(ucr, "privileged", ucr_path, False)
        if "image" not in ucr:
            self.error(f"{ucr_path}/image", "is required")
        else:
            image = self.mapping(ucr, "image", ucr_path)
            image_path = f"{ucr_path}/image"
            self.unknown_keys(image, frozenset({"id", "kind", "forcePull"}), image_path)
            self.string(image, "id", image_path, required=True, non_empty=True)
            kind = self.string(image, "kind", image_path)
            if kind is not None and kind not in ("docker", "appc"):
                self.error(f"{image_path}/kind", "must be docker or appc")
            self.boolean(image, "forcePull", image_path, False)
        return frozen_json(ucr) if isinstance(obj["ucr"], dict) else None

    def networks(self, obj: Mapping[str, Any], path: str) -> tuple[Mapping[str, Any], ...]:
        networks = self.array(obj, "networks", path)
        for item_path, item in _items(networks, f"{path}/networks"):
            if not isinstance(item, dict):
                self.error(item_path, "must be an object")
                continue
            self.unknown_keys(item, frozenset({"name", "mode", "labels"}), item_path)
            mode = self.string(item, "mode", item_path, required=True)
            if mode is not None and mode not in _NETWORK_MODES:
                self.error(f"{item_path}/mode", f"must be one of {', '.join(_NETWORK_MODES)}")
            self.string(item, "name", item_path)
            for name, value in self.mapping(item, "labels", item_path).items():
                if not isinstance(value, str):
                    self.error(f"{item_path}/labels/{name}", "must be a string")
        return tuple(frozen_json(item) for item in networks if isinstance(item, dict))
