"""Marathon's group tree: nested groups of apps, group updates and the app dependency graph.

Flow of a change::

    PUT/POST /v2/groups body --parse_group_update--> GroupUpdate (fields absent stay absent)
    root --apply_group_update / put_app / remove_app / remove_group--> new root
         --assign_versions(original, new, version)--> apps stamped with version / versionInfo
         --validate_root--> 422 "Object is not valid" (id clashes, cyclic dependencies)

Reading errors anywhere in the tree are reported first, all together, as "Invalid JSON"; the
paths nest like Marathon's: `/apps(0)/cpus`, `/groups(1)/id`, `/groups(0)/apps(2)/mem`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from marathon.app_definition import AppDefinition, parse_app
from marathon.app_definition import to_json as app_to_json
from marathon.paths import ROOT, PathId, path_id_errors, segment_errors
from marathon.validation import INVALID_JSON, OBJECT_NOT_VALID, AppValidationError, Violation
from mesos_http.json_input import thawed_json

__all__ = [
    "CYCLIC_DEPENDENCIES",
    "Group",
    "GroupUpdate",
    "apply_group_update",
    "assign_versions",
    "dependency_graph",
    "dependency_levels",
    "effective_dependencies",
    "is_only_scale_change",
    "parse_group",
    "parse_group_update",
    "put_app",
    "put_group",
    "remove_app",
    "remove_group",
    "same_config",
    "to_json",
    "validate_root",
    "without_invalid_parts",
]

CYCLIC_DEPENDENCIES = "Dependency graph has cyclic dependencies."
"""Marathon's complaint (at path `/`) when apps depend on each other in a cycle."""

_SAME_ID = "Groups and Applications may not have the same identifier."
_GROUP_ID = re.compile(r"^(\/?((\.{2})|([a-z0-9][a-z0-9\-.]*[a-z0-9]+)|([a-z0-9]*))($|\/))+$")


@dataclass(frozen=True)
class Group:
    """A group: its apps and subgroups (keyed by absolute id, in insertion order)."""

    id: PathId
    apps: Mapping[PathId, AppDefinition] = field(default_factory=lambda: MappingProxyType({}))
    groups: Mapping[PathId, Group] = field(default_factory=lambda: MappingProxyType({}))
    dependencies: tuple[PathId, ...] = ()
    version: str | None = None
    enforce_role: bool | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "apps", MappingProxyType(dict(self.apps)))
        object.__setattr__(self, "groups", MappingProxyType(dict(self.groups)))

    def replace(self, **changes: Any) -> Group:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def app(self, app_id: PathId) -> AppDefinition | None:
        """The app with this absolute id anywhere below this group, or None."""
        owner = self.group(app_id.parent)
        return None if owner is None else owner.apps.get(app_id)

    def group(self, group_id: PathId) -> Group | None:
        """The group with this absolute id (this group or one below it), or None."""
        if group_id == self.id:
            return self
        if not self.id.includes(group_id):
            return None
        child = PathId(group_id.segments[: len(self.id.segments) + 1])
        found = self.groups.get(child)
        return None if found is None else found.group(group_id)

    def transitive_apps(self) -> Iterator[AppDefinition]:
        """Every app of this group and of all groups below it, depth first."""
        yield from self.apps.values()
        for child in self.groups.values():
            yield from child.transitive_apps()

    def transitive_groups(self) -> Iterator[Group]:
        """This group and every group below it, depth first."""
        yield self
        for child in self.groups.values():
            yield from child.transitive_groups()

    def transitive_app_ids(self) -> frozenset[PathId]:
        """The ids of `transitive_apps()`."""
        return frozenset(app.id for app in self.transitive_apps())


@dataclass(frozen=True)
class GroupUpdate:
    """A group as PUT or POST sends it: None marks a field the body did not set."""

    id: PathId
    apps: tuple[AppDefinition, ...] | None = None
    groups: tuple[GroupUpdate, ...] | None = None
    dependencies: tuple[PathId, ...] | None = None
    scale_by: float | None = None
    version: str | None = None
    enforce_role: bool | None = None

    def to_group(self) -> Group:
        """The group this update describes when there is no group to update yet."""
        return Group(self.id, {a.id: a for a in self.apps or ()},
                     {g.id: g.to_group() for g in self.groups or ()},
                     self.dependencies or (), self.version, self.enforce_role)


class _Collector:
    def __init__(self) -> None:
        self.invalid_json: list[Violation] = []
        self.not_valid: list[Violation] = []

    def add(self, error: AppValidationError, prefix: str) -> None:
        target = self.invalid_json if error.message == INVALID_JSON else self.not_valid
        target.extend(error.prefixed(prefix).violations if prefix else error.violations)


def parse_group_update(json_obj: object, *, base: PathId = ROOT) -> GroupUpdate:
    """Read a group body as PUT/POST /v2/groups[/{id}] receives it.

    A relative `id` is resolved against `base` (the group in the URL); without `id` the update
    is for `base` itself. Nested groups and apps are resolved against their enclosing group.
    Raises `AppValidationError` (422) with nested paths when the body is rejected.
    """
    collector = _Collector()
    update = _read_group(json_obj, base, "", collector, top=True)
    if collector.invalid_json:
        raise AppValidationError(INVALID_JSON, collector.invalid_json)
    if collector.not_valid:
        raise AppValidationError(OBJECT_NOT_VALID, collector.not_valid)
    assert update is not None
    return update


def parse_group(json_obj: object, *, base: PathId = ROOT) -> Group:
    """Read a whole group (GET /v2/groups shape or a new group's body) into a `Group`."""
    return parse_group_update(json_obj, base=base).to_group()


def _read_group(value: object, base: PathId, path: str, collector: _Collector, *,
                top: bool) -> GroupUpdate | None:
    if not isinstance(value, Mapping):
        collector.invalid_json.append(Violation(path or "/", "error.expected.jsobject"))
        return None
    group_id = base
    raw_id = value.get("id")
    if raw_id is not None:
        if not isinstance(raw_id, str):
            collector.invalid_json.append(Violation(f"{path}/id", "error.expected.jsstring"))
            return None
        if not _GROUP_ID.fullmatch(raw_id):
            collector.invalid_json.append(Violation(f"{path}/id", "error.pattern"))
            return None
        written = PathId.parse(raw_id)
        group_id = written.canonical(base)
        for error in path_id_errors(written, base=None if top else base):
            if not error.startswith("Path must contain") and not (top and written.is_root):
                collector.not_valid.append(Violation(f"{path}/id", error))
    elif not top:
        collector.invalid_json.append(Violation(f"{path}/id", "error.path.missing"))
        return None
    apps = _read_apps(value, group_id, path, collector)
    groups = _read_subgroups(value, group_id, path, collector)
    dependencies = _read_dependencies(value, group_id, path, collector)
    scale_by = value.get("scaleBy")
    if scale_by is not None and (isinstance(scale_by, bool)
                                 or not isinstance(scale_by, int | float)):
        collector.invalid_json.append(Violation(f"{path}/scaleBy", "error.expected.jsnumber"))
        scale_by = None
    elif scale_by is not None and scale_by < 0:
        collector.invalid_json.append(Violation(f"{path}/scaleBy", "error.min"))
        scale_by = None
    version = value.get("version")
    if version is not None and not isinstance(version, str):
        collector.invalid_json.append(Violation(f"{path}/version", "error.expected.jsstring"))
        version = None
    enforce_role = value.get("enforceRole")
    if enforce_role is not None and not isinstance(enforce_role, bool):
        collector.invalid_json.append(
            Violation(f"{path}/enforceRole", "error.expected.jsboolean"))
        enforce_role = None
    _check_unique_ids(apps, groups, path, collector)
    return GroupUpdate(group_id, apps, groups, dependencies,
                       None if scale_by is None else float(scale_by), version, enforce_role)


def _read_apps(value: Mapping[str, Any], group_id: PathId, path: str,
               collector: _Collector) -> tuple[AppDefinition, ...] | None:
    raw = value.get("apps")
    if raw is None:
        return None
    if not isinstance(raw, list):
        collector.invalid_json.append(Violation(f"{path}/apps", "error.expected.jsarray"))
        return None
    apps: list[AppDefinition] = []
    for index, item in enumerate(raw):
        try:
            apps.append(parse_app(item, base_group=group_id))
        except AppValidationError as error:
            collector.add(error, f"{path}/apps({index})")
    return tuple(apps)


def _read_subgroups(value: Mapping[str, Any], group_id: PathId, path: str,
                    collector: _Collector) -> tuple[GroupUpdate, ...] | None:
    raw = value.get("groups")
    if raw is None:
        return None
    if not isinstance(raw, list):
        collector.invalid_json.append(Violation(f"{path}/groups", "error.expected.jsarray"))
        return None
    groups: list[GroupUpdate] = []
    for index, item in enumerate(raw):
        child = _read_group(item, group_id, f"{path}/groups({index})", collector, top=False)
        if child is not None:
            groups.append(child)
    return tuple(groups)


def _read_dependencies(value: Mapping[str, Any], group_id: PathId, path: str,
                       collector: _Collector) -> tuple[PathId, ...] | None:
    raw = value.get("dependencies")
    if raw is None:
        return None
    if not isinstance(raw, list):
        collector.invalid_json.append(
            Violation(f"{path}/dependencies", "error.expected.jsarray"))
        return None
    dependencies: list[PathId] = []
    for index, item in enumerate(raw):
        where = f"{path}/dependencies({index})"
        if not isinstance(item, str):
            collector.invalid_json.append(Violation(where, "error.expected.jsstring"))
        elif not _GROUP_ID.fullmatch(item):
            collector.invalid_json.append(Violation(where, "error.pattern"))
        else:
            dependency = PathId.parse(item).canonical(group_id)
            for error in path_id_errors(dependency):
                collector.not_valid.append(Violation(where, error))
            dependencies.append(dependency)
    return tuple(dependencies)


def _check_unique_ids(apps: Sequence[AppDefinition] | None,
                      groups: Sequence[GroupUpdate] | None, path: str,
                      collector: _Collector) -> None:
    ids = [a.id for a in apps or ()] + [g.id for g in groups or ()]
    if len(set(ids)) != len(ids):
        collector.not_valid.append(Violation(path or "/", _SAME_ID))


def to_json(group: Group) -> dict[str, Any]:
    """The group as GET /v2/groups/{id} shows it, apps and subgroups embedded."""
    body: dict[str, Any] = {
        "id": str(group.id),
        "apps": [app_to_json(app) for app in group.apps.values()],
        "groups": [to_json(child) for child in group.groups.values()],
        "pods": [],
        "dependencies": [str(d) for d in group.dependencies],
    }
    if group.version is not None:
        body["version"] = group.version
    if group.enforce_role is not None:
        body["enforceRole"] = group.enforce_role
    return body


def _updated(root: Group, group_id: PathId,
             change: Callable[[Group | None], Group | None]) -> Group:
    """`root` with the group at `group_id` replaced by `change(existing_or_None)`.

    Missing intermediate groups are created; `change` returning None removes the group.
    """
    if group_id == root.id:
        result = change(root)
        if result is None:
            raise ValueError("the root group cannot be removed")
        return result
    child_id = PathId(group_id.segments[: len(root.id.segments) + 1])
    existing = root.groups.get(child_id)
    groups = dict(root.groups)
    if child_id == group_id:
        replacement = change(existing)
    else:
        replacement = _updated(existing or Group(child_id), group_id, change)
    if replacement is None:
        groups.pop(child_id, None)
    else:
        groups[child_id] = replacement
    return root.replace(groups=groups)


def put_app(root: Group, app: AppDefinition) -> Group:
    """`root` with `app` created or replaced at its id (missing groups are created)."""
    def change(group: Group | None) -> Group | None:
        current = group or Group(app.id.parent)
        return current.replace(apps={**current.apps, app.id: app})
    return _updated(root, app.id.parent, change)


def remove_app(root: Group, app_id: PathId) -> Group:
    """`root` without the app `app_id` (unchanged when there is none)."""
    def change(group: Group | None) -> Group | None:
        if group is None:
            return None
        return group.replace(apps={k: v for k, v in group.apps.items() if k != app_id})
    if root.group(app_id.parent) is None:
        return root
    return _updated(root, app_id.parent, change)


def remove_group(root: Group, group_id: PathId) -> Group:
    """`root` without the group `group_id` and everything in it; the root itself is emptied."""
    if group_id.is_root:
        return Group(root.id, version=root.version)
    if root.group(group_id) is None:
        return root
    return _updated(root, group_id, lambda group: None)


def put_group(root: Group, group: Group) -> Group:
    """`root` with the whole group `group` in place of whatever was at its id."""
    return _updated(root, group.id, lambda existing: group)


def _scaled(group: Group, factor: float) -> Group:
    return group.replace(
        apps={k: a.replace(instances=math.ceil(a.instances * factor))
              for k, a in group.apps.items()},
        groups={k: _scaled(g, factor) for k, g in group.groups.items()})


def _merge(existing: Group | None, update: GroupUpdate) -> Group:
    if existing is None:
        return update.to_group()
    apps = existing.apps if update.apps is None else {a.id: a for a in update.apps}
    if update.groups is None:
        groups = dict(existing.groups)
    else:
        groups = {child.id: _merge(existing.groups.get(child.id), child)
                  for child in update.groups}
    return existing.replace(
        apps=apps, groups=groups,
        dependencies=existing.dependencies if update.dependencies is None
        else update.dependencies,
        enforce_role=existing.enforce_role if update.enforce_role is None
        else update.enforce_role)


def apply_group_update(root: Group, update: GroupUpdate) -> Group:
    """`root` after PUT /v2/groups/{id} with `update`, as Marathon applies it.

    `scaleBy` multiplies the instances of every app in the group (rounding up); otherwise the
    fields the body sets replace the group's (apps and groups not listed are removed, nested
    groups listed are updated recursively) and fields it omits are kept. A body with `version`
    is a rollback: the caller looks up that version and uses `put_group` instead.
    """
    if update.scale_by is not None:
        factor = update.scale_by
        if root.group(update.id) is None:
            raise KeyError(f"Group '{update.id}' does not exist")
        return _updated(root, update.id,
                        lambda group: None if group is None else _scaled(group, factor))
    return _updated(root, update.id, lambda group: _merge(group, update))


def _without_versions(app: AppDefinition) -> AppDefinition:
    return app.replace(instances=0, version=None, version_info=None)


def _config_changed_at(app: AppDefinition) -> object:
    return (app.version_info or {}).get("lastConfigChangeAt")


def same_config(before: AppDefinition, after: AppDefinition) -> bool:
    """True when `after` has `before`'s configuration (`instances` and versions aside).

    A `versionInfo.lastConfigChangeAt` set on `after` that differs from `before`'s (the
    restart endpoint sets one) counts as a configuration change.
    """
    if before is after:
        return True
    stamp = _config_changed_at(after)
    return (_without_versions(before) == _without_versions(after)
            and (stamp is None or stamp == _config_changed_at(before)))


def is_only_scale_change(before: AppDefinition, after: AppDefinition) -> bool:
    """True when `after` differs from `before` in `instances` only."""
    return before.instances != after.instances and same_config(before, after)


SERVICE_PORTS = range(10000, 20001)
"""Where Marathon picks the service ports of apps that ask for port 0 (its `--local_port_min`
and `--local_port_max` defaults)."""


def service_ports(app: AppDefinition) -> list[int]:
    """The app's service ports: its container's port mappings' `servicePort`s when it has port
    mappings, else its port definitions' ports (0: not assigned yet)."""
    mappings = _port_mappings(app.container)
    if mappings:
        return [_service_port(m) for m in mappings]
    return [d.port for d in app.port_definitions]


def _port_mappings(container: Mapping[str, Any] | None) -> Sequence[Any]:
    if not container:
        return ()
    found = container.get("portMappings")
    docker = container.get("docker")
    if not found and isinstance(docker, Mapping):
        found = docker.get("portMappings")
    return found if isinstance(found, list | tuple) else ()


def _service_port(mapping: Any) -> int:
    port = mapping.get("servicePort", 0) if isinstance(mapping, Mapping) else 0
    return port if isinstance(port, int) else 0


def _with_service_ports(app: AppDefinition, ports: Sequence[int]) -> AppDefinition:
    if _port_mappings(app.container):
        container = thawed_json(app.container)
        for mapping, port in zip(_port_mappings(container), ports, strict=False):
            if isinstance(mapping, dict):
                mapping["servicePort"] = port
        return app.replace(container=container)
    return app.replace(port_definitions=tuple(
        dataclasses.replace(d, port=port) for d, port in zip(app.port_definitions, ports,
                                                               strict=True)))


def assign_service_ports(original: Group, target: Group,
                         ports: range = SERVICE_PORTS) -> Group:
    """`target` with a service port picked for every 0 of its new or reconfigured apps, as
    Marathon does: first the app's earlier ports in `ports` that it no longer names, then the
    lowest ones no app of `original` or `target` uses. 422 when `ports` runs out, or when a
    new or reconfigured app names a service port another app has (Marathon leaves that to
    the operator; two apps on one port would make load balancers mix them)."""
    def changed(app: AppDefinition) -> bool:
        before = original.app(app.id)
        return before is None or not same_config(before, app)

    waiting = [app for app in target.transitive_apps() if changed(app)]
    _refuse_taken_service_ports(target, waiting)
    waiting = [app for app in waiting if 0 in service_ports(app)]
    if not waiting:
        return target
    used = {p for app in (*original.transitive_apps(), *target.transitive_apps())
            for p in service_ports(app)}
    free = (p for p in ports if p not in used)
    result = target
    for app in waiting:
        before = original.app(app.id)
        wanted = service_ports(app)
        reusable = iter([p for p in (service_ports(before) if before else [])
                         if p in ports and p not in wanted])
        assigned = []
        for port in wanted:
            if port == 0:
                port = next(reusable, None) or next(free, 0)
                if port == 0:
                    raise AppValidationError(OBJECT_NOT_VALID, [Violation(
                        f"{app.id}/portDefinitions",
                        f"All service ports from {ports.start} to {ports.stop - 1} are taken")])
            assigned.append(port)
        result = put_app(result, _with_service_ports(app, assigned))
    return result


def _refuse_taken_service_ports(root: Group, apps: Sequence[AppDefinition]) -> None:
    """422 when one of `apps` names a service port that another app of `root` has."""
    owners: dict[int, list[PathId]] = {}
    for app in root.transitive_apps():
        for port in set(service_ports(app)) - {0}:
            owners.setdefault(port, []).append(app.id)
    violations = []
    for app in apps:
        where = "container/portMappings" if _port_mappings(app.container) else "portDefinitions"
        field = "servicePort" if where.startswith("container") else "port"
        for index, port in enumerate(service_ports(app)):
            others = [str(o) for o in owners.get(port, ()) if o != app.id] if port else []
            if others:
                violations.append(Violation(
                    f"{app.id}/{where}({index})/{field}",
                    f"Requested service port {port} conflicts with a service port in use by "
                    f"app {', '.join(sorted(others))}"))
    if violations:
        raise AppValidationError(OBJECT_NOT_VALID, violations)


def assign_versions(original: Group, target: Group, version: str) -> Group:
    """`target` with `version` and `versionInfo` stamped as Marathon does for a change.

    Unchanged apps keep their version; scaled apps get `lastScalingAt = version`; other changed
    (or new) apps get both `lastScalingAt` and `lastConfigChangeAt = version`. Every group gets
    `version`.
    """
    def stamp(group: Group) -> Group:
        apps: dict[PathId, AppDefinition] = {}
        for app_id, app in group.apps.items():
            before = original.app(app_id)
            if before is app:  # untouched by the change: keep it (and its identity)
                apps[app_id] = app
            elif before is not None and before.instances == app.instances \
                    and same_config(before, app):
                apps[app_id] = app.replace(version=before.version,
                                           version_info=before.version_info)
            elif before is not None and is_only_scale_change(before, app):
                config_at = _config_changed_at(before) or before.version or version
                apps[app_id] = app.replace(version=version, version_info={
                    "lastScalingAt": version, "lastConfigChangeAt": config_at})
            else:
                apps[app_id] = app.replace(version=version, version_info={
                    "lastScalingAt": version, "lastConfigChangeAt": version})
        return group.replace(apps=apps, groups={k: stamp(g) for k, g in group.groups.items()},
                             version=version)
    return stamp(target)


def _dependency_targets(root: Group, dependency: PathId) -> frozenset[PathId]:
    app = root.app(dependency)
    if app is not None:
        return frozenset({app.id})
    group = root.group(dependency)
    return frozenset() if group is None else group.transitive_app_ids()


def effective_dependencies(root: Group, app_id: PathId) -> frozenset[PathId]:
    """The apps `app_id` waits for: its own dependencies and those of every enclosing group.

    A dependency naming a group stands for all apps in it; unknown ids are ignored, as in
    Marathon.
    """
    app = root.app(app_id)
    if app is None:
        raise KeyError(f"App '{app_id}' does not exist")
    declared = list(app.dependencies)
    group_id: PathId | None = app_id.parent
    while group_id is not None:
        group = root.group(group_id)
        if group is not None:
            declared.extend(group.dependencies)
        group_id = None if group_id.is_root else group_id.parent
    result: set[PathId] = set()
    for dependency in declared:
        result |= _dependency_targets(root, dependency)
    return frozenset(result)


def dependency_graph(root: Group) -> dict[PathId, frozenset[PathId]]:
    """Every app of `root` mapped to its `effective_dependencies` (one walk of the tree:
    each group's dependencies are collected once on the way down)."""
    graph: dict[PathId, frozenset[PathId]] = {}
    targets: dict[PathId, frozenset[PathId]] = {}

    def resolve(declared: Sequence[PathId]) -> frozenset[PathId]:
        result: set[PathId] = set()
        for dependency in declared:
            if dependency not in targets:
                targets[dependency] = _dependency_targets(root, dependency)
            result |= targets[dependency]
        return frozenset(result)

    def walk(group: Group, inherited: tuple[PathId, ...]) -> None:
        declared = (*inherited, *group.dependencies)
        for app in group.apps.values():
            graph[app.id] = resolve((*app.dependencies, *declared))
        for subgroup in group.groups.values():
            walk(subgroup, declared)

    walk(root, ())
    return graph


def _has_cycle(graph: Mapping[PathId, frozenset[PathId]]) -> bool:
    visiting: set[PathId] = set()
    done: set[PathId] = set()

    def visit(node: PathId) -> bool:
        if node in done:
            return False
        if node in visiting:
            return True
        visiting.add(node)
        cyclic = any(visit(n) for n in graph.get(node, frozenset()))
        visiting.discard(node)
        done.add(node)
        return cyclic

    return any(visit(node) for node in graph)


def dependency_levels(root: Group) -> list[list[AppDefinition]]:
    """Apps grouped by the length of their longest dependency chain, shortest first.

    Apps in one level do not depend on each other; every app's dependencies are in earlier
    levels. Within a level apps keep tree order. Raises ValueError on a cycle.
    """
    graph = dependency_graph(root)
    if _has_cycle(graph):
        raise ValueError(CYCLIC_DEPENDENCIES)
    depth: dict[PathId, int] = {}

    def longest(node: PathId) -> int:
        if node not in depth:
            depth[node] = max((longest(n) + 1 for n in graph[node]), default=0)
        return depth[node]

    levels: dict[int, list[AppDefinition]] = {}
    for app in root.transitive_apps():
        levels.setdefault(longest(app.id), []).append(app)
    return [levels[level] for level in sorted(levels)]


def without_invalid_parts(root: Group) -> tuple[Group, list[Violation]]:
    """`root` without the parts `validate_root` would refuse, and why each went: subgroups
    that are not direct children of their parent (with everything in them), where an app and
    a group share an id the group if it holds no app, else the app, and apps on a dependency
    cycle. For a tree read back from the store
    (`marathon.state`): a tree an older leader stored must not refuse every later change.
    Segment errors are the reader's to find, record by record."""
    removed: list[Violation] = []

    def prune_groups(group: Group) -> Group:
        kept = {}
        for child_id, child in group.groups.items():
            if child_id.parent != group.id:
                removed.append(Violation(str(child_id), f"Identifier is not child of "
                                                        f"{group.id}. Hint: use relative paths."))
            else:
                kept[child_id] = prune_groups(child)
        return group.replace(groups=kept)

    tree = prune_groups(root)
    app_ids = tree.transitive_app_ids()
    empty_clashes = {g.id for g in tree.transitive_groups()
                     if g.id in app_ids and not g.transitive_app_ids()}
    if empty_clashes:
        removed += [Violation(str(i), _SAME_ID) for i in sorted(empty_clashes, key=str)]
        tree = _without_groups(tree, empty_clashes)
    group_ids = {g.id for g in tree.transitive_groups()}
    drop = {app_id for app_id in app_ids if app_id in group_ids}
    removed += [Violation(str(app_id), _SAME_ID) for app_id in sorted(drop, key=str)]
    graph = dependency_graph(tree)
    if _has_cycle(graph):
        on_cycle = sorted((node for node in graph if _reaches(graph, node, node)), key=str)
        removed += [Violation(str(app_id), CYCLIC_DEPENDENCIES) for app_id in on_cycle]
        drop.update(on_cycle)

    def prune_apps(group: Group) -> Group:
        return group.replace(
            apps={i: a for i, a in group.apps.items() if i not in drop},
            groups={i: prune_apps(g) for i, g in group.groups.items()},
        )

    return (prune_apps(tree) if drop else tree), removed


def _without_groups(group: Group, drop: set[PathId]) -> Group:
    return group.replace(groups={i: _without_groups(g, drop)
                                 for i, g in group.groups.items() if i not in drop})


def _reaches(graph: Mapping[PathId, frozenset[PathId]], start: PathId, goal: PathId) -> bool:
    """Whether a path of one or more edges leads from `start` to `goal`."""
    seen: set[PathId] = set()
    pending = list(graph.get(start, frozenset()))
    while pending:
        node = pending.pop()
        if node == goal:
            return True
        if node not in seen:
            seen.add(node)
            pending.extend(graph.get(node, frozenset()))
    return False


def validate_root(root: Group) -> None:
    """Marathon's checks on a whole tree; raises `AppValidationError` (422) when it fails.

    Checked: every group and app id has valid segments (whichever request named it: this
    runs before any change is stored), no app and group share an id, apps and groups sit
    directly in their parent group, and the dependency graph has no cycle.
    """
    violations: list[Violation] = []
    group_ids = {g.id for g in root.transitive_groups()}
    for group in root.transitive_groups():
        for path in (group.id, *group.apps):
            violations += [Violation(str(path), error) for error in segment_errors(path)]
        for child_id in group.groups:
            if child_id.parent != group.id:
                violations.append(Violation(str(child_id), f"Identifier is not child of "
                                                            f"{group.id}. Hint: use relative "
                                                            f"paths."))
        for app_id in group.apps:
            if app_id in group_ids:
                violations.append(Violation("/", _SAME_ID))
    if _has_cycle(dependency_graph(root)):
        violations.append(Violation("/", CYCLIC_DEPENDENCIES))
    if violations:
        raise AppValidationError(OBJECT_NOT_VALID, violations)
