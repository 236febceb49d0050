"""Marathon 1.9's checks of an app against the place it is deployed to and the flags Marathon
runs with: its `role`, its `acceptedResourceRoles` and `gpus`. Checked on every new root
group, for the apps the change adds or alters (an app left as it was is not checked again).

    core.update_root(change) --check_app_rules(original, new root, settings)--> AppValidationError
        (422 "Object is not valid", a path `<app id>/<field>` per problem)

Roles, as Marathon's `RoleSettings` allows them: an app in the root group may use only
`--mesos_role`; an app below a top-level group `/dev` may use `dev`, `--mesos_role` (unless
`/dev` has `enforceRole: true`) and the role it has already. `acceptedResourceRoles` may name
only `*` and the app's own role (its `role`, or the role it gets by default). `gpus` above 0
needs `--enable_features gpu_resources` and no Docker container. Docker-only settings this
cluster cannot give (it runs Docker images with runc, without a Docker daemon, on host
networking) are refused saying so: `privileged`, `parameters`, bridge or user networks and
their port mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from marathon.app_definition import AppDefinition
from marathon.groups import SERVICE_PORTS, Group
from marathon.paths import PathId
from marathon.validation import OBJECT_NOT_VALID, AppValidationError, Violation

__all__ = ["GPU_RESOURCES", "AppRules", "allowed_roles", "check_app_rules", "default_role"]

GPU_RESOURCES = "gpu_resources"
"""Marathon's feature (`--enable_features gpu_resources`) that lets apps ask for GPUs."""
UNRESERVED = "*"


@dataclass(frozen=True, slots=True)
class AppRules:
    """The flags the checks depend on: `--mesos_role`, `--enable_features` and the service
    port range (`--local_port_min`, `--local_port_max`)."""

    mesos_role: str = UNRESERVED
    features: frozenset[str] = frozenset()
    service_ports: range = SERVICE_PORTS


def _top_level(app_id: PathId) -> PathId | None:
    """The top-level group an app sits in, or None for an app in the root group."""
    return None if app_id.parent.is_root else PathId(app_id.segments[:1])


def _enforced(root: Group, top: PathId) -> bool:
    group = root.group(top)
    return bool(group is not None and group.enforce_role)


def default_role(root: Group, app_id: PathId, rules: AppRules) -> str:
    """The role an app without `role` gets: its top-level group's name when that group
    enforces its role, else `--mesos_role`."""
    top = _top_level(app_id)
    if top is not None and _enforced(root, top):
        return top.segments[0]
    return rules.mesos_role


def allowed_roles(original: Group, app_id: PathId, rules: AppRules) -> frozenset[str]:
    """The roles app `app_id` may have, judged on the tree before the change."""
    before = original.app(app_id)
    existing = {before.role} if before is not None and before.role is not None else set()
    top = _top_level(app_id)
    if top is None:
        return frozenset({rules.mesos_role, *existing})
    own = {top.segments[0], *existing}
    return frozenset(own if _enforced(original, top) else {rules.mesos_role, *own})


def _app_violations(original: Group, app: AppDefinition, rules: AppRules) -> list[Violation]:
    where = str(app.id)
    violations = []
    allowed = allowed_roles(original, app.id, rules)
    if app.role is not None and app.role not in allowed:
        violations.append(Violation(f"{where}/role", f"got {app.role}, expected one of: "
                                                     f"[{', '.join(sorted(allowed))}]"))
    role = app.role or default_role(original, app.id, rules)
    valid = sorted({UNRESERVED, role})
    accepted = set(app.accepted_resource_roles or ())
    if accepted and not (len(accepted) <= 2 and accepted <= set(valid)):
        violations.append(Violation(f"{where}/acceptedResourceRoles",
                                    f"acceptedResourceRoles can only contain "
                                    f"{' and '.join(valid)}"))
    violations += _docker_only(app)
    if app.gpus > 0:
        if (app.container or {}).get("type") == "DOCKER":
            violations.append(Violation(where, "GPU resources only work with the Mesos "
                                               "containerizer"))
        if GPU_RESOURCES not in rules.features:
            violations.append(Violation(where, f"Feature {GPU_RESOURCES} is not enabled. "
                                               f"Enable with --enable_features {GPU_RESOURCES}"))
    return violations


def check_app_rules(original: Group, target: Group, rules: AppRules) -> None:
    """Raise AppValidationError for every app of `target` that is new or changed since
    `original` and breaks a rule of the module docstring."""
    violations: list[Violation] = []
    for app in target.transitive_apps():
        before = original.app(app.id)
        if before is app or before == app:
            continue
        violations += _app_violations(original, app, rules)
    if violations:
        raise AppValidationError(OBJECT_NOT_VALID, violations)


_NO_DAEMON = "this cluster runs Docker images with runc, without a Docker daemon"


def _docker_only(app: AppDefinition) -> list[Violation]:
    """Violations for the Docker-only settings of the module docstring."""
    where = str(app.id)
    container: Mapping[str, Any] = app.container or {}
    docker = container.get("docker")
    docker = docker if isinstance(docker, Mapping) else {}
    violations = []
    if docker.get("privileged") is True:
        violations.append(Violation(f"{where}/container/docker/privileged",
                                    f"privileged containers are not supported: {_NO_DAEMON}"))
    if docker.get("parameters"):
        violations.append(Violation(f"{where}/container/docker/parameters",
                                    f"docker run parameters are not supported: {_NO_DAEMON}"))
    network = docker.get("network")
    if network in ("BRIDGE", "USER"):
        violations.append(Violation(f"{where}/container/docker/network",
                                    f"{network} networking is not supported: containers share "
                                    "the host's network here (use HOST and portDefinitions)"))
    mappings = container.get("portMappings") or docker.get("portMappings")
    if mappings and not app.host_networking and network not in ("BRIDGE", "USER"):
        violations.append(Violation(f"{where}/container/portMappings",
                                    "port mappings need bridge or container networks, which "
                                    "this cluster does not have (use host networking and "
                                    "portDefinitions)"))
    return violations
