"""Marathon's durable state: instances, deployments and the root group as the store keeps them
(`KINDS` of records), and a new leader's reading of them (`Recovered.decode`).

    MarathonCore ──Mutation(ROOT_KEY / apps/<id>@<version> / deployments / instances)──▶ Sink
    store entries ──Recovered.decode──▶ MarathonCore(recovered=...)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from frameworks.placement import AgentView
from frameworks.set_aside import READ_ERRORS, SetAside, reading
from marathon.app_definition import parse_app
from marathon.constraints import InstanceCondition, PlacedInstance
from marathon.deployments import DeploymentPlan
from marathon.groups import Group, parse_group, without_invalid_parts
from marathon.groups import to_json as group_to_json
from marathon.paths import ROOT, PathId, segment_errors
from mesos_coordination.store import split_key, store_key
from mesos_values.task_states import TERMINAL_OR_UNKNOWN_STATES
from mesos_values.timestamps import format_timestamp
from protos import mesos_pb2

__all__ = [
    "FAILED", "FRAMEWORK_KEY", "KINDS", "ROOT_KEY", "TERMINAL", "Deployment", "Instance",
    "Recovered", "root_at_version", "root_record",
]

ROOT_KEY = store_key("root", "current")
FRAMEWORK_KEY = store_key("framework", "id")
KINDS = ("root", "root_versions", "apps", "deployments", "deployment_steps", "instances",
         "framework")
TERMINAL = frozenset(mesos_pb2.TaskState.Name(state) for state in TERMINAL_OR_UNKNOWN_STATES)
"""Names of the states after which an instance is gone for Marathon (TASK_UNKNOWN included)."""
FAILED = frozenset({"TASK_FAILED", "TASK_ERROR", "TASK_LOST", "TASK_DROPPED", "TASK_GONE"})
"""Terminal states that count as the instance failing (not killed nor finished)."""
_CONDITIONS = {
    "TASK_STAGING": InstanceCondition.STAGING,
    "TASK_STARTING": InstanceCondition.STARTING,
    "TASK_RUNNING": InstanceCondition.RUNNING,
    "TASK_UNREACHABLE": InstanceCondition.UNREACHABLE,
}


@dataclass(slots=True)
class Instance:
    """One instance of an app: its (single) task and where it runs."""

    instance_id: str
    task_id: str
    app_id: PathId
    version: str
    config_version: str
    agent_id: str
    host: str
    ports: tuple[int, ...]
    attributes: Mapping[str, str]
    staged_at: float
    state: str = "TASK_STAGING"
    started_at: float | None = None
    killing: bool = False
    healthy: bool | None = None
    ready: bool = True  # False until its app's readiness checks pass (launched this term)
    unreachable_since: float | None = None  # wall time Marathon first heard it unreachable
    inactive: bool = False  # unreachable longer than its app's inactiveAfterSeconds
    message: str = ""

    @property
    def live(self) -> bool:
        """Counts towards its app's instances: neither terminal, nor being killed, nor
        unreachable for too long (an instance merely unreachable still counts)."""
        return not self.killing and not self.inactive and self.state not in TERMINAL

    @property
    def unreachable(self) -> bool:
        """Its agent is cut off from the master (active or inactive alike)."""
        return self.state == "TASK_UNREACHABLE"

    @property
    def condition(self) -> InstanceCondition:
        if self.inactive:
            return InstanceCondition.UNREACHABLE_INACTIVE
        return _CONDITIONS.get(self.state, InstanceCondition.OTHER)

    def agent_view(self) -> AgentView:
        """Its agent as placement constraints see it."""
        return AgentView(self.host, self.attributes)

    def placed(self) -> PlacedInstance:
        return PlacedInstance(
            self.instance_id, self.agent_view(), self.condition, self.staged_at, self.started_at,
        )

    def task_json(self) -> dict[str, Any]:
        """The task as `/v2/apps/{id}/tasks` and `/v2/tasks` show it."""
        body: dict[str, Any] = {
            "id": self.task_id,
            "appId": str(self.app_id),
            "host": self.host,
            "ports": list(self.ports),
            "slaveId": self.agent_id,
            "stagedAt": format_timestamp(self.staged_at),
            "version": self.version,
            "state": self.state,
            "ipAddresses": [],
            "servicePorts": [],
            "role": "*",
        }
        if self.started_at is not None:
            body["startedAt"] = format_timestamp(self.started_at)
        return body

    def to_record(self) -> bytes:
        return json.dumps({
            "instanceId": self.instance_id, "taskId": self.task_id, "appId": str(self.app_id),
            "version": self.version, "configVersion": self.config_version,
            "agentId": self.agent_id, "host": self.host, "ports": list(self.ports),
            "attributes": dict(self.attributes), "stagedAt": self.staged_at,
            "state": self.state, "startedAt": self.started_at, "killing": self.killing,
            "unreachableSince": self.unreachable_since, "unreachableInactive": self.inactive,
        }).encode()

    @classmethod
    def from_record(cls, data: bytes) -> Instance:
        raw = json.loads(data)
        return cls(
            raw["instanceId"], raw["taskId"], PathId.parse(raw["appId"]), raw["version"],
            raw["configVersion"], raw["agentId"], raw["host"], tuple(raw["ports"]),
            raw["attributes"], raw["stagedAt"], raw["state"], raw["startedAt"], raw["killing"],
            unreachable_since=raw.get("unreachableSince"),
            inactive=raw.get("unreachableInactive", False),
        )


@dataclass(slots=True)
class Deployment:
    """A deployment in progress: its plan and the step it is at (1-based)."""

    plan: DeploymentPlan
    step: int = 0
    started: set[int] = field(default_factory=set)  # indexes of actions begun in this step
    completed: set[int] = field(default_factory=set)  # ... and of those done

    def to_record(self) -> bytes:
        """The plan, written once (its progress is the separate `step_record`): the original
        and target groups cut down to the apps it affects, which is all that planning the
        same steps again, or rolling them back, needs."""
        affected = frozenset(self.plan.affected_apps)
        return json.dumps({
            "id": self.plan.id, "version": self.plan.version,
            "original": group_to_json(_pruned(self.plan.original, affected)),
            "target": group_to_json(_pruned(self.plan.target, affected)),
        }).encode()

    def step_record(self) -> bytes:
        return str(self.step).encode()


def root_record(group: Group) -> dict[str, Any]:
    """The group tree with each app as `[id, version]`: the definitions themselves are stored
    once per version (`apps/<id>@<version>`), so a change does not rewrite every app."""
    return {
        "id": str(group.id),
        "version": group.version,
        "dependencies": [str(d) for d in group.dependencies],
        "enforceRole": group.enforce_role,
        "apps": [[str(app.id), app.version or ""] for app in group.apps.values()],
        "groups": [root_record(subgroup) for subgroup in group.groups.values()],
    }


def _root_from_record(
    node: Mapping[str, Any], versions: Mapping[PathId, Mapping[str, bytes]],
    aside: list[SetAside],
) -> Group:
    """The group tree of a root record; each app whose record cannot be read or validated,
    and each group with an id no request may name, is set aside with its apps."""
    group_id = PathId.parse(node["id"])
    if errors := segment_errors(group_id):
        raise ValueError(errors[0])
    apps = {}
    for app_id, version in node["apps"]:
        key = store_key("apps", f"{app_id}@{version}")
        with reading(aside, key):
            stored = versions.get(PathId.parse(app_id), {}).get(version)
            if stored is None:
                raise KeyError(f"no record {key}")
            app = parse_app(json.loads(stored), base_group=group_id)
            apps[app.id] = app
    subgroups = []
    for child in node["groups"]:
        with reading(aside, ROOT_KEY, f"group {child.get('id')}"):
            subgroups.append(_root_from_record(child, versions, aside))
    return Group(
        group_id,
        apps=apps,
        groups={group.id: group for group in subgroups},
        dependencies=tuple(PathId.parse(d) for d in node["dependencies"]),
        version=node["version"],
        enforce_role=node.get("enforceRole"),
    )


def root_at_version(record: bytes, versions: Mapping[PathId, Mapping[str, bytes]],
                    ) -> Group | None:
    """The root group of a stored root version, or None when it cannot be rebuilt whole
    (an app version it names is gone or unreadable)."""
    aside: list[SetAside] = []
    try:
        root = _root_from_record(json.loads(record), versions, aside)
    except READ_ERRORS:
        return None
    return None if aside else root


def _pruned(group: Group, keep: frozenset[PathId]) -> Group:
    """`group` with only the apps in `keep` (and the groups, with their dependencies, that
    lead to them)."""
    subgroups = {}
    for group_id, subgroup in group.groups.items():
        pruned = _pruned(subgroup, keep)
        if pruned.apps or pruned.groups:
            subgroups[group_id] = pruned
    return group.replace(apps={i: a for i, a in group.apps.items() if i in keep},
                         groups=subgroups)


@dataclass(slots=True)
class Recovered:
    """The core's durable state, as a new leader reads it from the store, and the records it
    set aside (see `frameworks.set_aside`): an app or group of the root that cannot be read
    or validated is left out of the tree (the root record is rewritten without it at the
    next change), the other records are skipped whole; an app's records, whose id no request
    may name, stay in the store until `DELETE /v2/apps/{id}` removes them."""

    root: Group = field(default_factory=lambda: Group(ROOT))
    app_versions: dict[PathId, dict[str, bytes]] = field(default_factory=dict)
    root_versions: dict[str, bytes] = field(default_factory=dict)
    """Root records by version (`root_versions/<version>`), for group rollbacks."""
    deployments: list[tuple[str, str, int, Group, Group]] = field(default_factory=list)
    instances: dict[str, Instance] = field(default_factory=dict)
    framework_id: str | None = None
    set_aside: list[SetAside] = field(default_factory=list)

    @classmethod
    def decode(cls, entries: Mapping[str, bytes]) -> Recovered:
        state = cls()
        root_value: bytes | None = None
        for key, value in entries.items():
            kind, name = split_key(key)
            if kind == "root":
                root_value = value
            elif kind == "apps":
                app_id, _, version = name.rpartition("@")
                with reading(state.set_aside, key):
                    if errors := segment_errors(PathId.parse(app_id)):
                        raise ValueError(errors[0])
                    state.app_versions.setdefault(PathId.parse(app_id), {})[version] = value
            elif kind == "root_versions":
                with reading(state.set_aside, key):
                    json.loads(value)  # unreadable: set aside
                    state.root_versions[name] = value
            else:
                with reading(state.set_aside, key):
                    state._read(kind, value, entries)
        state.deployments.sort(key=lambda d: d[1])
        if root_value is not None:
            with reading(state.set_aside, ROOT_KEY):
                tree = _root_from_record(json.loads(root_value), state.app_versions,
                                         state.set_aside)
                state.root, removed = without_invalid_parts(tree)
                state.set_aside += [SetAside(ROOT_KEY, f"{v.path}: {v.error}")
                                    for v in removed]
        return state

    def _read(self, kind: str, value: bytes, entries: Mapping[str, bytes]) -> None:
        if kind == "deployments":
            raw = json.loads(value)
            step = entries.get(store_key("deployment_steps", raw["id"]), b"0")
            self.deployments.append((
                raw["id"], raw["version"], int(step),
                parse_group(raw["original"]), parse_group(raw["target"]),
            ))
        elif kind == "instances":
            instance = Instance.from_record(value)
            self.instances[instance.instance_id] = instance
        elif kind == "framework":
            self.framework_id = value.decode()
