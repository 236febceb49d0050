"""Marathon v2 app definitions: an immutable model, parsing with Marathon's defaults and 422s.

Flow::

    JSON object --read--> fields (types, ranges: "Invalid JSON" 422)
                --normalize--> id/dependencies resolved, deprecated `ports`/`uris` migrated,
                               defaults applied (portDefinitions, health-check portIndex, ...)
                --validate--> Marathon's rules ("Object is not valid" 422)
                --> AppDefinition --to_json--> GET /v2/apps/{id} shape

The parts of an app (port definitions, fetch URIs, checks, strategies) are values of
`marathon.app_parts`, each reading and writing its own JSON.

Containers are kept verbatim so they round-trip; MESOS and DOCKER containers with a Docker
image run in that image (`AppDefinition.image`, with host volumes). Fields this cluster cannot
honour (AppC images, persistent volumes, secrets, container networks) are kept too;
`AppDefinition.unsupported_reasons` says why such an app cannot run here, and
`marathon.app_rules` refuses Docker-only settings with a 422.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from marathon.app_parts import (
    EnvSecretRef,
    FetchUri,
    HealthCheck,
    PortDefinition,
    ReadinessCheck,
    UnreachableStrategy,
    UpgradeStrategy,
    json_number,
)
from marathon.constraints import AppConstraint, KillSelection, constraint_errors
from marathon.paths import ROOT, PathId, path_id_errors
from marathon.validation import INVALID_JSON, OBJECT_NOT_VALID, AppValidationError
from mesos_http.json_input import PLAY_JSON, JsonReader, Violation, frozen_json, thawed_json

__all__ = [
    "DEFAULT_MAX_LAUNCH_DELAY_SECONDS",
    "KNOWN_FIELDS",
    "AppDefinition",
    "merge_patch",
    "parse_app",
    "to_json",
]

DEFAULT_MAX_LAUNCH_DELAY_SECONDS = 300
"""Marathon 1.8+ default (older releases used 3600)."""

_EMPTY: Mapping[str, Any] = MappingProxyType({})
_RAML_PATH_ID = re.compile(
    r"^(\/?((\.{2})|([a-z0-9][a-z0-9\-.]*[a-z0-9]+)|([a-z0-9]*))($|\/))+$")
_EXECUTOR = re.compile(r"^(//cmd)|(/?[^/]+(/[^/]+)*)|$")
_ENGINE_TYPES = ("MESOS", "DOCKER")
_NETWORK_MODES = ("container", "container/bridge", "host")
_EXTRACTABLE = (".tgz", ".tar.gz", ".tbz2", ".tar.bz2", ".txz", ".tar.xz", ".zip")
_MARATHON_PROTOCOLS = ("HTTP", "HTTPS", "TCP")
_MESOS_PROTOCOLS = ("COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")


def _mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(value))


@dataclass(frozen=True)
class AppDefinition:
    """A Marathon app as stored: normalized, validated and with every default filled in."""

    id: PathId
    cmd: str | None = None
    args: tuple[str, ...] = ()
    user: str | None = None
    env: Mapping[str, str | EnvSecretRef] = field(default_factory=lambda: _EMPTY)
    instances: int = 1
    cpus: float = 1.0
    mem: float = 128.0
    disk: float = 0.0
    gpus: int = 0
    executor: str = ""
    constraints: tuple[AppConstraint, ...] = ()
    fetch: tuple[FetchUri, ...] = ()
    store_urls: tuple[str, ...] = ()
    port_definitions: tuple[PortDefinition, ...] = ()
    require_ports: bool = False
    backoff_seconds: int = 1
    backoff_factor: float = 1.15
    max_launch_delay_seconds: int = DEFAULT_MAX_LAUNCH_DELAY_SECONDS
    container: Mapping[str, Any] | None = None
    health_checks: tuple[HealthCheck, ...] = ()
    readiness_checks: tuple[ReadinessCheck, ...] = ()
    dependencies: tuple[PathId, ...] = ()
    upgrade_strategy: UpgradeStrategy = field(default_factory=UpgradeStrategy)
    labels: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    accepted_resource_roles: tuple[str, ...] | None = None
    role: str | None = None
    ip_address: Mapping[str, Any] | None = None
    networks: tuple[Mapping[str, Any], ...] = ()
    residency: Mapping[str, Any] | None = None
    secrets: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: _EMPTY)
    task_kill_grace_period_seconds: int | None = None
    kill_selection: KillSelection = KillSelection.YOUNGEST_FIRST
    unreachable_strategy: UnreachableStrategy = field(default_factory=UnreachableStrategy)
    check: Mapping[str, Any] | None = None
    tty: bool | None = None
    executor_resources: Mapping[str, Any] | None = None
    resource_limits: Mapping[str, Any] | None = None
    version: str | None = None
    version_info: Mapping[str, Any] | None = None

    def __post_init__(self) -> None:
        for name in ("env", "labels"):
            object.__setattr__(self, name, _mapping(getattr(self, name)))
        for name in ("container", "ip_address", "residency", "check", "executor_resources",
                     "resource_limits", "version_info"):
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else frozen_json(value))
        object.__setattr__(self, "secrets", frozen_json(self.secrets))
        object.__setattr__(self, "networks", frozen_json(self.networks))

    def replace(self, **changes: Any) -> AppDefinition:
        """A copy with some fields changed (no re-validation)."""
        return dataclasses.replace(self, **changes)

    @property
    def host_networking(self) -> bool:
        """True unless the app asks for container or bridge networks."""
        return _host_networking(self.networks, self.container, self.ip_address is not None)

    @property
    def image(self) -> tuple[str, bool] | None:
        """The Docker image the app runs in and whether to pull it on every launch
        (`container.docker.image` and `forcePullImage`, for MESOS and DOCKER containers: one
        containerizer runs both), None for a plain command."""
        docker = (self.container or _EMPTY).get("docker")
        if not isinstance(docker, Mapping) or not isinstance(docker.get("image"), str):
            return None
        return docker["image"], docker.get("forcePullImage") is True

    @property
    def host_volumes(self) -> tuple[tuple[str, str, bool], ...]:
        """The app's host volumes: (hostPath, containerPath, read-only)."""
        volumes = (self.container or _EMPTY).get("volumes") or ()
        return tuple((v["hostPath"], v["containerPath"], v.get("mode") == "RO")
                     for v in volumes if _is_host_volume(v))

    @property
    def unsupported_reasons(self) -> tuple[str, ...]:
        """Why this cluster cannot run the app (empty when it can)."""
        reasons: list[str] = []
        container = self.container or _EMPTY
        if "appc" in container:
            reasons.append("container.appc: AppC images are not supported by this cluster")
        volumes = container.get("volumes") or ()
        if any(not _is_host_volume(v) for v in volumes):
            reasons.append("container.volumes: only host volumes (hostPath, containerPath, "
                           "mode) are supported by this cluster, not persistent or external "
                           "ones")
        elif volumes and self.image is None:
            reasons.append("container.volumes: volumes need a container image on this "
                           "cluster")
        if self.secrets:
            reasons.append("secrets: this cluster has no secret store")
        secret_vars = sorted(k for k, v in self.env.items() if isinstance(v, EnvSecretRef))
        if secret_vars:
            reasons.append("env: " + ", ".join(secret_vars)
                           + " refer to secrets, and this cluster has no secret store")
        if not self.host_networking:
            reasons.append("networks: only host networking is supported by this cluster")
        if self.residency is not None:
            reasons.append("residency: persistent volumes are not supported by this cluster")
        return tuple(reasons)

    @property
    def unsupported_reason(self) -> str | None:
        """All `unsupported_reasons` in one sentence, or None when the app can run."""
        reasons = self.unsupported_reasons
        return "; ".join(reasons) if reasons else None


KNOWN_FIELDS = frozenset({
    "id", "cmd", "args", "user", "env", "instances", "cpus", "mem", "disk", "gpus", "executor",
    "constraints", "fetch", "uris", "storeUrls", "ports", "portDefinitions", "requirePorts",
    "backoffSeconds", "backoffFactor", "maxLaunchDelaySeconds", "container", "healthChecks",
    "readinessChecks", "dependencies", "upgradeStrategy", "labels", "acceptedResourceRoles",
    "role", "ipAddress", "networks", "residency", "secrets", "taskKillGracePeriodSeconds",
    "killSelection", "unreachableStrategy", "check", "tty", "executorResources",
    "resourceLimits", "version", "versionInfo",
})
"""Every app field this model reads; others are ignored, as Marathon's reader ignores them."""


def _is_host_volume(volume: Any) -> bool:
    return (isinstance(volume, Mapping) and isinstance(volume.get("hostPath"), str)
            and isinstance(volume.get("containerPath"), str)
            and not volume.get("persistent") and not volume.get("external"))


def _host_networking(networks: Sequence[Mapping[str, Any]], container: Mapping[str, Any] | None,
                     has_ip_address: bool) -> bool:
    if has_ip_address or any(n.get("mode", "container") != "host" for n in networks):
        return False
    return _docker_network(container) in (None, "HOST")


def _docker_network(container: Mapping[str, Any] | None) -> str | None:
    docker = (container or _EMPTY).get("docker")
    network = docker.get("network") if isinstance(docker, Mapping) else None
    return network if isinstance(network, str) else None


class _AppReader(JsonReader):
    """Marathon's reader: play-json's words, and constraints that are well-typed but invalid
    kept for the validation phase (`deferred`)."""

    def __init__(self) -> None:
        super().__init__(PLAY_JSON)
        self.deferred: list[Violation] = []


def _read_env(r: _AppReader, value: Any, path: str) -> dict[str, str | EnvSecretRef]:
    env: dict[str, str | EnvSecretRef] = {}
    for key, item in (r.object(value, path) or {}).items():
        if isinstance(item, Mapping):
            secret = r.field(item, "secret", f"{path}/{key}",
                             lambda v, p: r.string(v, p, min_length=1))
            if secret is not None:
                env[key] = EnvSecretRef(secret)
            elif "secret" not in item:
                r.fail(f"{path}/{key}/secret", "error.path.missing")
        else:
            text = r.string(item, f"{path}/{key}")
            if text is not None:
                env[key] = text
    return env


def _with_choice(r: _AppReader, value: Any, path: str, key: str,
                 choices: Sequence[str]) -> Mapping[str, Any] | None:
    """An object kept as written but for `key`, which must be one of Marathon's enum
    `choices` (any case; stored as Marathon spells it)."""
    obj = r.object(value, path)
    if obj is None:
        return None
    chosen = r.field(obj, key, path, lambda v, p: r.choice(v, p, choices))
    return obj if chosen is None else {**obj, key: chosen}


_DOCKER_NETWORKS = ("BRIDGE", "HOST", "USER", "NONE")


def _read_docker_network(r: _AppReader, container: Mapping[str, Any] | None) -> None:
    """Check `container.docker.network`, which decides the app's networking (the rest of a
    Docker container is kept verbatim): a string, one of Marathon's DockerNetwork values."""
    docker = container.get("docker") if container is not None else None
    network = docker.get("network") if isinstance(docker, Mapping) else None
    if network is None:
        return
    path = "/container/docker/network"
    if not isinstance(network, str):
        r.fail(path, r.wording.string)
    elif network not in _DOCKER_NETWORKS:
        r.fail(path, r.wording.choice)


def _read_constraint(r: _AppReader, value: Any, path: str) -> AppConstraint | None:
    items = r.array(value, path)
    if items is None:
        return None
    if any(not isinstance(item, str) for item in items):
        r.fail(path, "error.expected.jsstring")
        return None
    errors = constraint_errors(items)
    if errors:
        r.deferred.append(Violation("/constraints", errors[0]))
        return None
    return AppConstraint.from_json(items)


def _is_extract(uri: str) -> bool:
    return uri.endswith(_EXTRACTABLE)


@dataclass
class _Raw:
    """What the read phase produced, before normalization."""

    values: dict[str, Any]
    ports: list[int] | None
    uris: list[str] | None


def _read(r: _AppReader, raw: Mapping[str, Any]) -> _Raw:
    v: dict[str, Any] = {}

    def take(key: str, name: str, convert: Callable[[Any, str], Any]) -> None:
        found = r.field(raw, key, "", convert)
        if found is not None:
            v[name] = found

    if "id" not in raw:
        r.fail("/id", "error.path.missing")
    elif raw["id"] is None:  # required: null is not a string (`field` would skip it)
        r.string(None, "/id")
    take("id", "id", lambda x, p: r.string(x, p, min_length=1, pattern=_RAML_PATH_ID))
    take("cmd", "cmd", lambda x, p: r.string(x, p, min_length=1))
    take("args", "args", lambda x, p: tuple(r.items(x, p, r.string)))
    take("user", "user", r.string)
    take("env", "env", lambda x, p: _read_env(r, x, p))
    take("instances", "instances", lambda x, p: r.integer(x, p, minimum=0))
    take("cpus", "cpus", lambda x, p: r.number(x, p, minimum=0.0))
    take("mem", "mem", lambda x, p: r.number(x, p, minimum=0.0))
    take("disk", "disk", lambda x, p: r.number(x, p, minimum=0.0))
    take("gpus", "gpus", lambda x, p: r.integer(x, p, minimum=0))
    take("executor", "executor", lambda x, p: r.string(x, p, pattern=_EXECUTOR))
    take("constraints", "constraints",
         lambda x, p: tuple(r.items(x, p, lambda c, cp: _read_constraint(r, c, cp))))
    take("fetch", "fetch", lambda x, p: tuple(r.items(x, p, lambda f, fp: FetchUri.read(r, f, fp))))
    take("storeUrls", "store_urls",
         lambda x, p: tuple(r.items(x, p, lambda s, sp: r.string(s, sp, min_length=1))))
    take("portDefinitions", "port_definitions",
         lambda x, p: tuple(r.items(x, p, lambda d, dp: PortDefinition.read(r, d, dp))))
    take("requirePorts", "require_ports", r.boolean)
    take("backoffSeconds", "backoff_seconds", lambda x, p: r.integer(x, p, minimum=0))
    take("backoffFactor", "backoff_factor", lambda x, p: r.number(x, p, minimum=1.0))
    take("maxLaunchDelaySeconds", "max_launch_delay_seconds",
         lambda x, p: r.integer(x, p, minimum=0))
    take("container", "container", lambda x, p: _with_choice(r, x, p, "type", _ENGINE_TYPES))
    _read_docker_network(r, v.get("container"))
    take("healthChecks", "health_checks",
         lambda x, p: tuple(r.items(x, p, lambda h, hp: HealthCheck.read(r, h, hp))))
    take("readinessChecks", "readiness_checks",
         lambda x, p: tuple(r.items(x, p, lambda c, cp: ReadinessCheck.read(r, c, cp))))
    take("dependencies", "dependencies", lambda x, p: r.items(
        x, p, lambda d, dp: r.string(d, dp, min_length=1, pattern=_RAML_PATH_ID)))
    take("upgradeStrategy", "upgrade_strategy", lambda x, p: UpgradeStrategy.read(r, x, p))
    take("labels", "labels", r.string_map)
    take("acceptedResourceRoles", "accepted_resource_roles",
         lambda x, p: tuple(r.items(x, p, r.string)))
    take("role", "role", r.string)
    take("ipAddress", "ip_address", r.object)
    take("networks", "networks", lambda x, p: tuple(r.items(
        x, p, lambda n, np: _with_choice(r, n, np, "mode", _NETWORK_MODES))))
    take("residency", "residency", r.object)
    take("secrets", "secrets", lambda x, p: _read_secrets(r, x, p))
    take("taskKillGracePeriodSeconds", "task_kill_grace_period_seconds",
         lambda x, p: r.integer(x, p, minimum=0))
    take("killSelection", "kill_selection", lambda x, p: _enum_of(
        KillSelection, r.choice(x, p, [k.value for k in KillSelection])))
    take("unreachableStrategy", "unreachable_strategy",
         lambda x, p: UnreachableStrategy.read(r, x, p))
    take("check", "check", r.object)
    take("tty", "tty", r.boolean)
    take("executorResources", "executor_resources", r.object)
    take("resourceLimits", "resource_limits", r.object)
    take("version", "version", r.string)
    take("versionInfo", "version_info", r.object)
    ports = r.field(raw, "ports", "", lambda x, p: r.items(
        x, p, lambda n, np: r.integer(n, np, minimum=0, maximum=65535)))
    uris = r.field(raw, "uris", "", lambda x, p: r.items(
        x, p, lambda u, up: r.string(u, up, min_length=1)))
    return _Raw(v, ports, uris)


def _enum_of(kind: type[KillSelection], value: str | None) -> KillSelection | None:
    return None if value is None else kind(value)


def _read_secrets(r: _AppReader, value: Any, path: str) -> dict[str, Mapping[str, Any]]:
    secrets: dict[str, Mapping[str, Any]] = {}
    for name, item in (r.object(value, path) or {}).items():
        secret = r.object(item, f"{path}/{name}")
        if secret is None:
            continue
        if r.field(secret, "source", f"{path}/{name}",
                   lambda v, p: r.string(v, p, min_length=1)) is None:
            if "source" not in secret:
                r.fail(f"{path}/{name}/source", "error.path.missing")
            continue
        secrets[name] = secret
    return secrets


def parse_app(json_obj: object, *, base_group: PathId = ROOT) -> AppDefinition:
    """Read, normalize and validate one app definition as POST /v2/apps receives it.

    `base_group` is the group the definition sits in (for apps nested in a group): a relative
    `id` is resolved against it and an absolute one must lie directly inside it. Raises
    `AppValidationError` with Marathon's 422 body when the definition is rejected.
    """
    reader = _AppReader()
    raw = reader.object(json_obj, "")
    if raw is None:
        raise AppValidationError(INVALID_JSON, reader.violations)
    read = _read(reader, raw)
    if reader.violations:
        raise AppValidationError(INVALID_JSON, reader.violations)
    violations = _validate_deprecated(read, raw)
    if violations:
        raise AppValidationError(OBJECT_NOT_VALID, violations)
    app = _normalize(read, base_group)
    violations = reader.deferred + _validate(app, read, base_group)
    if violations:
        raise AppValidationError(OBJECT_NOT_VALID, violations)
    return app


def _validate_deprecated(read: _Raw, raw: Mapping[str, Any]) -> list[Violation]:
    """Rules on deprecated fields, checked before they are migrated (as Marathon does)."""
    v = read.values
    errors: list[str] = []
    container = v.get("container") or _EMPTY
    docker = container.get("docker") if isinstance(container.get("docker"), Mapping) else None
    ip_address = v.get("ip_address")
    networks = v.get("networks", ())
    if ip_address and container.get("type") == "DOCKER" and ip_address.get("discovery"):
        errors.append("ipAddress/discovery is not allowed for Docker containers")
    if docker is not None and docker.get("network") and networks:
        errors.append("must not specify both container.docker.network and networks")
    if ip_address is not None and networks:
        errors.append("must not specify both networks and ipAddress")
    explicit_ports = [p for p in read.ports or [] if p != 0]
    if len(set(explicit_ports)) != len(explicit_ports):
        errors.append("ports must be unique")
    definitions = v.get("port_definitions")
    if ip_address is not None and (read.ports or definitions):
        errors.append("cannot specify both an IP address and port")
    if read.ports and definitions and [d.port for d in definitions] != read.ports:
        errors.append("cannot specify both ports and port definitions")
    violations = [Violation("/", e) for e in errors]
    if read.uris and v.get("fetch"):
        violations.append(Violation("/uris", "may not be set in conjunction with fetch"))
    return violations


def _normalize(read: _Raw, base_group: PathId) -> AppDefinition:
    """Resolve ids, migrate deprecated fields and apply Marathon's network-dependent defaults
    (and its residency-dependent one: a resident app's `unreachableStrategy` is "disabled").

    As in Marathon, port definitions (given or deprecated `ports`) are dropped for apps on
    container or bridge networks: there the container's port mappings describe the ports.
    """
    v = dict(read.values)
    written_id = PathId.parse(v.pop("id"))
    app_id = written_id.canonical(base_group)
    v["dependencies"] = tuple(PathId.parse(d).canonical(app_id.parent)
                              for d in v.get("dependencies", ()))
    if read.uris and "fetch" not in v:
        v["fetch"] = tuple(FetchUri(uri, extract=_is_extract(uri)) for uri in read.uris)
    host = _host_networking(v.get("networks", ()), v.get("container"), "ip_address" in v)
    if "port_definitions" not in v and read.ports is not None:
        v["port_definitions"] = tuple(PortDefinition(port) for port in read.ports)
    if not host:
        v["port_definitions"] = ()
        v["require_ports"] = False
    elif "port_definitions" not in v:
        v["port_definitions"] = (PortDefinition(0, "tcp", "default"),)
    if "networks" not in v and host and not _docker_network(v.get("container")):
        v["networks"] = (MappingProxyType({"mode": "host"}),)
    if "unreachable_strategy" not in v and v.get("residency") is not None:
        v["unreachable_strategy"] = UnreachableStrategy(enabled=False)  # resident apps wait
    if v["port_definitions"] or _container_port_mappings(v.get("container")):
        v["health_checks"] = tuple(
            check if check.protocol == "COMMAND" or check.port is not None
            or check.port_index is not None else dataclasses.replace(check, port_index=0)
            for check in v.get("health_checks", ()))
    return AppDefinition(id=app_id, **v)


def _container_port_mappings(container: Mapping[str, Any] | None) -> list[Any]:
    container = container or _EMPTY
    mappings = container.get("portMappings")
    docker = container.get("docker")
    if not mappings and isinstance(docker, Mapping):
        mappings = docker.get("portMappings")
    return list(mappings) if isinstance(mappings, list | tuple) else []


def _validate(app: AppDefinition, read: _Raw, base_group: PathId) -> list[Violation]:
    violations: list[Violation] = []
    written = PathId.parse(read.values["id"])
    for error in path_id_errors(written, base=None if base_group.is_root else base_group):
        violations.append(Violation("/id", error))
    if app.id.is_root:
        violations.append(Violation("/", "must not be root"))
    for index, dependency in enumerate(app.dependencies):
        for error in path_id_errors(dependency):
            violations.append(Violation(f"/dependencies({index})", error))
    container = app.container or _EMPTY
    has_image = isinstance(container.get("docker"), Mapping) or isinstance(
        container.get("appc"), Mapping)
    has_cmd, has_args = app.cmd is not None, bool(app.args)
    if not ((has_cmd != has_args) or (not (has_cmd and has_args) and has_image)):
        violations.append(Violation(
            "/", "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."))
    violations += _validate_ports(app)
    violations += _validate_health_checks(app)
    violations += _validate_readiness(app)
    for name, value in app.env.items():
        if isinstance(value, EnvSecretRef) and value.secret not in app.secrets:
            violations.append(Violation(
                f"/env/{name}", f"references an undefined secret named '{value.secret}'"))
    if app.accepted_resource_roles is not None and not app.accepted_resource_roles:
        violations.append(Violation("/acceptedResourceRoles", "must not be empty"))
    strategy = app.unreachable_strategy
    if strategy.enabled and strategy.inactive_after_seconds > strategy.expunge_after_seconds:
        violations.append(Violation(
            "/unreachableStrategy/inactiveAfterSeconds",
            f"inactiveAfterSeconds ({strategy.inactive_after_seconds}) must be less or equal to "
            f"expungeAfterSeconds, which is {strategy.expunge_after_seconds}"))
    if app.residency is not None and strategy.enabled:
        violations.append(Violation("/", "unreachableStrategy must be disabled for resident "
                                         "tasks"))
    if app.labels.get("MARATHON_SINGLE_INSTANCE_APP") == "true" and app.instances > 1:
        violations.append(Violation("/", "Single instance app may only have one instance"))
    return violations


def _validate_ports(app: AppDefinition) -> list[Violation]:
    violations: list[Violation] = []
    names = [d.name for d in app.port_definitions if d.name is not None]
    if len(set(names)) != len(names):
        violations.append(Violation("/portDefinitions", "Port names must be unique."))
    ports = [d.port for d in app.port_definitions if d.port != 0]
    if len(set(ports)) != len(ports):
        violations.append(Violation("/portDefinitions", "Ports must be unique."))
    return violations


def _port_count(app: AppDefinition) -> int:
    mappings = _container_port_mappings(app.container)
    return len(mappings) if mappings else len(app.port_definitions)


def _validate_health_checks(app: AppDefinition) -> list[Violation]:
    violations: list[Violation] = []
    ports = _port_count(app)
    for index, check in enumerate(app.health_checks):
        if check.command is None and check.protocol in _MARATHON_PROTOCOLS:
            if check.port_index is not None:
                valid = check.port_index < ports
            else:
                valid = check.port is not None or ports == 1
            if not valid:
                violations.append(Violation(
                    f"/healthChecks({index})", "Health check port indices must address an "
                    "element of the ports array or container port mappings."))
        if check.protocol == "COMMAND" and check.command is None:
            violations.append(Violation(f"/healthChecks({index})/command",
                                        "command must be defined for COMMAND health checks"))
        if check.ip_protocol != "IPv4" and check.protocol not in _MESOS_PROTOCOLS[1:]:
            violations.append(Violation(
                f"/healthChecks({index})", "IPv6 can only be used for container type DOCKER "
                "and Mesos http/https/tcp health checks"))
    mesos_checks = sum(1 for c in app.health_checks
                       if c.command is None and c.protocol in _MESOS_PROTOCOLS)
    if mesos_checks > 1:
        violations.append(Violation("/", "AppDefinition can contain at most one Mesos health "
                                         "check"))
    return violations


def _validate_readiness(app: AppDefinition) -> list[Violation]:
    violations: list[Violation] = []
    if len(app.readiness_checks) > 1:
        violations.append(Violation("/readinessChecks", "got 2, expected 1 or less"
                                    if len(app.readiness_checks) == 2 else
                                    f"got {len(app.readiness_checks)}, expected 1 or less"))
    mappings = _container_port_mappings(app.container)
    port_names = ({m.get("name") for m in mappings if isinstance(m, Mapping)} if mappings
                  else {d.name for d in app.port_definitions})
    for index, check in enumerate(app.readiness_checks):
        if check.port_name not in port_names:
            violations.append(Violation(f"/readinessChecks({index})/portName",
                                        f"No port definition reference for portName "
                                        f"{check.port_name}"))
        if check.timeout_seconds >= check.interval_seconds:
            violations.append(Violation(f"/readinessChecks({index})/timeoutSeconds",
                                        f"got {check.timeout_seconds}, expected less than "
                                        f"{check.interval_seconds}"))
    return violations


def to_json(app: AppDefinition) -> dict[str, Any]:
    """The app as GET /v2/apps/{id} shows it (without task counts), every field present."""
    body: dict[str, Any] = {"id": str(app.id)}
    if app.accepted_resource_roles is not None:
        body["acceptedResourceRoles"] = list(app.accepted_resource_roles)
    if app.args:
        body["args"] = list(app.args)
    body["backoffFactor"] = app.backoff_factor
    body["backoffSeconds"] = app.backoff_seconds
    if app.cmd is not None:
        body["cmd"] = app.cmd
    body["constraints"] = [c.to_json() for c in app.constraints]
    if app.container is not None:
        body["container"] = thawed_json(app.container)
    body["cpus"] = json_number(app.cpus)
    body["dependencies"] = [str(d) for d in app.dependencies]
    body["disk"] = json_number(app.disk)
    body["env"] = {k: ({"secret": v.secret} if isinstance(v, EnvSecretRef) else v)
                   for k, v in app.env.items()}
    body["executor"] = app.executor
    body["fetch"] = [f.to_json() for f in app.fetch]
    body["healthChecks"] = [h.to_json() for h in app.health_checks]
    body["instances"] = app.instances
    body["labels"] = dict(app.labels)
    body["maxLaunchDelaySeconds"] = app.max_launch_delay_seconds
    body["mem"] = json_number(app.mem)
    body["gpus"] = app.gpus
    if app.ip_address is not None:
        body["ipAddress"] = thawed_json(app.ip_address)
    body["networks"] = thawed_json(app.networks)
    body["portDefinitions"] = [d.to_json() for d in app.port_definitions]
    body["readinessChecks"] = [c.to_json() for c in app.readiness_checks]
    if app.residency is not None:
        body["residency"] = thawed_json(app.residency)
    body["requirePorts"] = app.require_ports
    body["secrets"] = thawed_json(app.secrets)
    if app.store_urls:
        body["storeUrls"] = list(app.store_urls)
    if app.task_kill_grace_period_seconds is not None:
        body["taskKillGracePeriodSeconds"] = app.task_kill_grace_period_seconds
    body["upgradeStrategy"] = app.upgrade_strategy.to_json()
    if app.user is not None:
        body["user"] = app.user
    if app.version is not None:
        body["version"] = app.version
    if app.version_info is not None:
        body["versionInfo"] = thawed_json(app.version_info)
    body["killSelection"] = app.kill_selection.value
    body["unreachableStrategy"] = app.unreachable_strategy.to_json()
    for key, value in (("role", app.role), ("tty", app.tty), ("check", app.check),
                       ("executorResources", app.executor_resources),
                       ("resourceLimits", app.resource_limits)):
        if value is not None:
            body[key] = thawed_json(value)
    return body


def merge_patch(app_json: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Marathon's PATCH: every top-level field in `patch` replaces the app's field.

    `id` is kept from the app; the result is to be parsed again with `parse_app`.
    Setting deprecated `ports` (or `uris`) drops `portDefinitions` (or `fetch`) and vice versa,
    so the two spellings never conflict.
    """
    merged = dict(app_json)
    replaced_by = {"ports": "portDefinitions", "portDefinitions": "ports",
                   "uris": "fetch", "fetch": "uris"}
    for key, value in patch.items():
        if key == "id":
            continue
        merged[key] = value
        other = replaced_by.get(key)
        if other is not None and other not in patch:
            merged.pop(other, None)
    return merged
