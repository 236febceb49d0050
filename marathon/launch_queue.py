"""Marathon's launch queue: what still needs launching, launch backoff and offer matching.

Flow for one offer, read once into an `OfferView` (`marathon.constraints.offer_view`)::

    offer view, spreads --match_offer--> for each queued app not in backoff, in queue order:
        role -> constraints (frameworks.placement, against the app's spread) -> agent
        maintenance -> cpus, mem, disk, gpus -> ports -> scarce GPUs
                                     (every failing check adds a RejectReason)
        fits? -> LaunchDecision (instance id, task id, host ports, environment), added to the
                 app's spread, and try again
        no launch at all -> the offer counts as unused for that app, with its reasons
    --> OfferMatch(launches, rejections); statistics feed queue_json() (/v2/queue)

The spreads (where each app's instances are) live for one round of offers, so an instance
launched on one offer counts for the next without rescanning the instances.

A `LaunchDecision` is a plain value the scheduler records in its instance tracker before it
turns it into the SDK's `TaskInfo` with `task_info()` (built by `frameworks.tasks`).

Timestamps (`since`, offer times) are the injected clock's readings formatted as UTC, so the
shell passes a wall clock; backoff deadlines use the same clock.
"""

from __future__ import annotations

import enum
import re
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from frameworks.offers import pick_ports, port_resources, task_resources
from frameworks.placement import AgentView, OfferView, Spread, Spreads, check
from frameworks.tasks import command_task, health_check, volume
from marathon.app_definition import AppDefinition
from marathon.app_definition import to_json as app_to_json
from marathon.paths import PathId
from mesos_runtime.clock import Clock
from mesos_values.resources import Resources
from mesos_values.timestamps import format_timestamp
from protos import mesos_pb2

__all__ = [
    "GPU_SCHEDULING_LABEL",
    "REASON_FUNNEL",
    "LaunchDecision",
    "LaunchQueue",
    "OfferMatch",
    "RejectReason",
    "app_id_of_task",
    "instance_id_of_task",
    "new_instance_id",
    "task_environment",
    "task_id_for",
    "task_infos",
]


class RejectReason(enum.StrEnum):
    """Why an offer did not fit an app (Marathon's NoOfferMatchReason names)."""

    UNFULFILLED_ROLE = "UnfulfilledRole"
    NO_IMAGE_PROVIDER = "NoImageProvider"
    """An extension: the app runs in a Docker image and the agent runs no images."""
    UNFULFILLED_CONSTRAINT = "UnfulfilledConstraint"
    NO_CORRESPONDING_RESERVATION_FOUND = "NoCorrespondingReservationFound"
    AGENT_MAINTENANCE = "AgentMaintenance"
    INSUFFICIENT_CPUS = "InsufficientCpus"
    INSUFFICIENT_MEMORY = "InsufficientMemory"
    INSUFFICIENT_DISK = "InsufficientDisk"
    INSUFFICIENT_GPUS = "InsufficientGpus"
    INSUFFICIENT_PORTS = "InsufficientPorts"
    DECLINED_SCARCE_RESOURCES = "DeclinedScarceResources"


REASON_FUNNEL = tuple(RejectReason)
"""The funnel order: an unused offer is counted under the first of its reasons in this order."""

GPU_SCHEDULING_LABEL = "GPU_SCHEDULING_BEHAVIOR"
"""App label that, set to `unrestricted`, lets an app without GPUs use offers with GPUs."""

_ENV_UNSAFE = re.compile(r"[^A-Za-z0-9_]+")
_MAX_LABEL_ENV_LENGTH = 512
_TASK_ID = re.compile(
    r"^(.+)\.(instance-|marathon-)([^_.]+)(?:[._](_app|\$anon|[^_.]+))?(?:\.(\d+))?$")
_LEGACY_TASK_ID = re.compile(r"^(.+)[._]([^_.]+)$")


def new_instance_id(app_id: PathId, uuid_factory: Callable[[], str] = lambda: str(uuid.uuid4()),
                    ) -> str:
    """A fresh instance id in Marathon's 1.5+ form: `group_app.instance-<uuid>`."""
    return f"{app_id.safe_path}.instance-{uuid_factory()}"


def task_id_for(instance_id: str, incarnation: int = 1) -> str:
    """The Mesos task id of an app instance, as Marathon 1.8+ names it: `<instance>._app.<n>`."""
    return f"{instance_id}._app.{incarnation}"


def instance_id_of_task(task_id: str) -> str:
    """The instance id inside a task id (both current and pre-1.5 `app.<uuid>` forms)."""
    match = _TASK_ID.fullmatch(task_id)
    if match is not None:
        return f"{match.group(1)}.{match.group(2)}{match.group(3)}"
    legacy = _LEGACY_TASK_ID.fullmatch(task_id)
    if legacy is None:
        raise ValueError(f"{task_id!r} is not a Marathon task id")
    return f"{legacy.group(1)}.marathon-{legacy.group(2)}"


def app_id_of_task(task_id: str) -> PathId:
    """The app a task id belongs to (`a_b.instance-...` -> `/a/b`)."""
    safe_path = instance_id_of_task(task_id).rsplit(".", 1)[0]
    return PathId.from_safe_path(safe_path)


def _env_safe(name: str) -> str:
    return _ENV_UNSAFE.sub("_", name).upper()


def _jvm_double(value: float) -> str:
    return repr(float(value))


def task_environment(app: AppDefinition, *, task_id: str, host: str,
                     host_ports: Sequence[int]) -> dict[str, str]:
    """The environment Marathon gives a task: the app's `env`, then Marathon's variables.

    Marathon's variables win over same-named `env` entries, as in Marathon: `MESOS_TASK_ID`,
    `MARATHON_APP_ID`, `MARATHON_APP_VERSION`, `MARATHON_APP_DOCKER_IMAGE` (Docker apps),
    `MARATHON_APP_RESOURCE_CPUS/MEM/DISK/GPUS`, `MARATHON_APP_LABELS` with one
    `MARATHON_APP_LABEL_<KEY>` per label, `HOST`, `PORT0..n`, `PORT`, `PORTS`, `PORT_<port>`
    for declared non-zero ports and `PORT_<NAME>` for named ones. Secret references are left
    out.
    """
    env = {k: v for k, v in app.env.items() if isinstance(v, str)}
    env["MESOS_TASK_ID"] = task_id
    env["MARATHON_APP_ID"] = str(app.id)
    if app.version is not None:
        env["MARATHON_APP_VERSION"] = app.version
    docker = (app.container or {}).get("docker")
    if isinstance(docker, Mapping) and isinstance(docker.get("image"), str):
        env["MARATHON_APP_DOCKER_IMAGE"] = docker["image"]
    env["MARATHON_APP_RESOURCE_CPUS"] = _jvm_double(app.cpus)
    env["MARATHON_APP_RESOURCE_MEM"] = _jvm_double(app.mem)
    env["MARATHON_APP_RESOURCE_DISK"] = _jvm_double(app.disk)
    env["MARATHON_APP_RESOURCE_GPUS"] = str(app.gpus)
    labels = {_env_safe(k): v for k, v in app.labels.items()
              if len(k) < _MAX_LABEL_ENV_LENGTH and len(v) < _MAX_LABEL_ENV_LENGTH}
    env["MARATHON_APP_LABELS"] = " ".join(labels)
    for key, value in labels.items():
        env[f"MARATHON_APP_LABEL_{key}"] = value
    env["HOST"] = host
    for index, port in enumerate(host_ports):
        env[f"PORT{index}"] = str(port)
    if host_ports:
        env["PORT"] = str(host_ports[0])
        env["PORTS"] = ",".join(str(p) for p in host_ports)
    for definition, port in zip(app.port_definitions, host_ports, strict=False):
        if definition.port != 0:
            env[f"PORT_{definition.port}"] = str(port)
        if definition.name:
            env[f"PORT_{_env_safe(definition.name)}"] = str(port)
    return env


@dataclass(frozen=True)
class LaunchDecision:
    """One instance to launch on one offer, with everything the scheduler must record."""

    app: AppDefinition
    instance_id: str
    task_id: str
    offer_id: str
    agent_id: str
    hostname: str
    host_ports: tuple[int, ...]
    env: Mapping[str, str]

    def task_info(self, *, sigterm_delay: float = 0.0) -> mesos_pb2.TaskInfo:
        """The SDK `TaskInfo` for the agent's command executor; when killed, the task gets
        SIGTERM `sigterm_delay` seconds after TASK_KILLING."""
        app = self.app
        command: str | list[str] | None = app.cmd if app.cmd is not None else list(app.args)
        image = app.image
        if image is not None and app.cmd is None:
            command = None  # the image's Entrypoint, with `args` as its arguments
        task = command_task(
            self.task_id, mesos_pb2.AgentID(value=self.agent_id), command,
            cpus=app.cpus, mem=app.mem, disk=app.disk, gpus=app.gpus,
            ports=list(self.host_ports), env=self.env,
            name=".".join(reversed(app.id.segments)),
            kill_grace_period=app.task_kill_grace_period_seconds,
            sigterm_delay=sigterm_delay or None,
            labels=dict(app.labels) or None,
            image=image[0] if image is not None else None,
            force_pull_image=image is not None and image[1],
            volumes=[volume(host, container, read_only=read_only)
                     for host, container, read_only in app.host_volumes])
        if image is not None and app.cmd is None:
            task.command.arguments.extend(app.args)
        agent_check = next((c for c in app.health_checks
                            if c.runs_on_agent and c.command is not None), None)
        if agent_check is not None and agent_check.command is not None:
            task.health_check.CopyFrom(health_check(
                command=agent_check.command, delay=agent_check.delay_seconds,
                # 0 means Marathon's defaults: Mesos' for the interval, the interval for
                # the timeout (as `marathon.health.probe_timeout`).
                interval=agent_check.interval_seconds or None,
                timeout=agent_check.timeout_seconds or agent_check.interval_seconds or None,
                consecutive_failures=agent_check.max_consecutive_failures,
                grace_period=agent_check.grace_period_seconds))
        if image is not None and (app.container or {}).get("type") == "DOCKER":
            task.container.type = mesos_pb2.ContainerInfo.DOCKER
            task.container.ClearField("mesos")
            task.container.docker.image = image[0]
            task.container.docker.force_pull_image = image[1]
        if app.user is not None:
            task.command.user = app.user
        for uri in app.fetch:
            task.command.uris.add(value=uri.uri, executable=uri.executable, extract=uri.extract,
                                  cache=uri.cache, output_file=uri.dest_path or "")
        return task


def task_infos(decisions: Sequence[LaunchDecision], *,
               sigterm_delay: float = 0.0) -> list[mesos_pb2.TaskInfo]:
    """`decision.task_info(sigterm_delay=...)` of each decision, built once per app, agent
    and host ports: the others are copies with their own task id (in `task_id` and the
    `MESOS_TASK_ID` variable, the only parts that differ), so a burst of 1,000 instances of
    one app costs one build."""
    built: dict[tuple[int, str, str, tuple[int, ...]], mesos_pb2.TaskInfo] = {}
    tasks = []
    for decision in decisions:
        key = (id(decision.app), decision.agent_id, decision.hostname, decision.host_ports)
        template = built.get(key)
        if template is None:
            task = built[key] = decision.task_info(sigterm_delay=sigterm_delay)
        else:
            task = mesos_pb2.TaskInfo()
            task.CopyFrom(template)
            task.task_id.value = decision.task_id
            for variable in task.command.environment.variables:
                if variable.name == "MESOS_TASK_ID":
                    variable.value = decision.task_id
        tasks.append(task)
    return tasks


@dataclass(frozen=True)
class OfferMatch:
    """The outcome of one offer: instances to launch and, per app left empty, its reasons."""

    launches: tuple[LaunchDecision, ...]
    rejections: Mapping[PathId, tuple[RejectReason, ...]]

    @property
    def used(self) -> bool:
        """True when at least one instance goes on the offer (else decline it)."""
        return bool(self.launches)


@dataclass(frozen=True)
class _UnusedOffer:
    offer: mesos_pb2.Offer
    at: float
    reasons: tuple[RejectReason, ...]


@dataclass
class _Backoff:
    config_version: str | None
    delay: float = 0.0
    until: float = 0.0


@dataclass
class _Entry:
    app: AppDefinition
    count: int
    since: float
    processed: int = 0
    unused: int = 0
    last_used_at: float | None = None
    last_unused_at: float | None = None
    launch_attempt_summary: Counter[RejectReason] = field(default_factory=Counter)
    last_unused: dict[str, _UnusedOffer] = field(default_factory=dict)


def _config_version(app: AppDefinition) -> str | None:
    info = app.version_info or {}
    changed = info.get("lastConfigChangeAt")
    return changed if isinstance(changed, str) else app.version


def _role_of(resource: mesos_pb2.Resource) -> str:
    return resource.role or "*"


def _nothing_placed(app_id: PathId) -> tuple[AgentView, ...]:
    return ()


def _resource_json(resource: mesos_pb2.Resource) -> dict[str, Any]:
    body: dict[str, Any] = {"name": resource.name, "role": _role_of(resource)}
    if resource.type == mesos_pb2.Value.SCALAR:
        body["scalar"] = resource.scalar.value
    elif resource.type == mesos_pb2.Value.RANGES:
        body["ranges"] = [{"begin": r.begin, "end": r.end} for r in resource.ranges.range]
    elif resource.type == mesos_pb2.Value.SET:
        body["set"] = list(resource.set.item)
    return body


def _attribute_json(attribute: mesos_pb2.Attribute) -> dict[str, Any]:
    body: dict[str, Any] = {"name": attribute.name}
    if attribute.type == mesos_pb2.Value.SCALAR:
        body["scalar"] = attribute.scalar.value
    elif attribute.type == mesos_pb2.Value.RANGES:
        body["ranges"] = [{"begin": r.begin, "end": r.end} for r in attribute.ranges.range]
    elif attribute.type == mesos_pb2.Value.SET:
        body["set"] = list(attribute.set.item)
    else:
        body["text"] = attribute.text.value
    return body


def _offer_json(offer: mesos_pb2.Offer) -> dict[str, Any]:
    return {"id": offer.id.value, "agentId": offer.agent_id.value, "hostname": offer.hostname,
            "resources": [_resource_json(r) for r in offer.resources],
            "attributes": [_attribute_json(a) for a in offer.attributes]}


def _funnel(processed: int, summary: Mapping[RejectReason, int]) -> list[dict[str, Any]]:
    steps = []
    for reason in REASON_FUNNEL:
        declined = summary.get(reason, 0)
        steps.append({"reason": reason.value, "declined": declined, "processed": processed})
        processed -= declined
    return steps


class LaunchQueue:
    """Instances waiting for offers, per app, with backoff and offer statistics.

    Plain synchronous state owned by the scheduler's task: `add` when a deployment or a lost
    instance needs launches, `match_offer` for every offer, `task_failed` /
    `instance_running` / `reset_delay` as instances fail, settle or the user resets the delay.
    """

    def __init__(self, clock: Clock, *, uuid_factory: Callable[[], str] | None = None,
                 restrict_gpus: bool = True, default_accepted_roles: Sequence[str] = ("*",),
                 reset_after_running_seconds: float = 60.0) -> None:
        self._clock = clock
        self._uuid = uuid_factory or (lambda: str(uuid.uuid4()))
        self._restrict_gpus = restrict_gpus
        self._default_roles = tuple(default_accepted_roles)
        self._reset_after = reset_after_running_seconds
        self._entries: dict[PathId, _Entry] = {}
        self._backoffs: dict[PathId, _Backoff] = {}

    def add(self, app: AppDefinition, count: int = 1) -> None:
        """Queue `count` more instances of `app` (replacing the queued definition)."""
        if count < 0:
            raise ValueError(f"cannot queue {count} instances")
        backoff = self._backoffs.get(app.id)
        if backoff is not None and backoff.config_version != _config_version(app):
            del self._backoffs[app.id]
        entry = self._entries.get(app.id)
        if entry is None:
            if count:
                self._entries[app.id] = _Entry(app, count, self._clock.now())
            return
        entry.app = app
        entry.count += count

    def set_count(self, app: AppDefinition, count: int) -> None:
        """Make exactly `count` instances of `app` wait for launch (0 removes the entry)."""
        entry = self._entries.get(app.id)
        if entry is not None:
            entry.count = 0
        if count == 0:
            self._entries.pop(app.id, None)
        else:
            self.add(app, count)

    def purge(self, app_id: PathId) -> None:
        """Forget the app's queued launches and statistics (app deleted or stopped)."""
        self._entries.pop(app_id, None)

    def total(self) -> int:
        """Instances queued, all apps together."""
        return sum(entry.count for entry in self._entries.values())

    def count(self, app_id: PathId) -> int:
        """Instances of `app_id` still to launch."""
        entry = self._entries.get(app_id)
        return 0 if entry is None else entry.count

    def queued_apps(self) -> list[AppDefinition]:
        """Apps with instances left to launch, in queue order."""
        return [e.app for e in self._entries.values()]

    def task_failed(self, app: AppDefinition) -> None:
        """An instance failed: back off `backoffSeconds`, growing by `backoffFactor` each time.

        The n-th consecutive failure delays launches by
        `min(backoffSeconds * backoffFactor ** (n - 1), maxLaunchDelaySeconds)` from now.
        """
        now = self._clock.now()
        version = _config_version(app)
        backoff = self._backoffs.get(app.id)
        if backoff is None or backoff.config_version != version:
            delay = float(app.backoff_seconds)
        else:
            delay = backoff.delay * app.backoff_factor
        delay = min(delay, float(app.max_launch_delay_seconds))
        self._backoffs[app.id] = _Backoff(version, delay, now + delay)

    def reset_delay(self, app_id: PathId) -> None:
        """Launch again at once and restart backoff from `backoffSeconds` (DELETE .../delay)."""
        self._backoffs.pop(app_id, None)

    def instance_running(self, app_id: PathId, running_for: float,
                         healthy: bool | None) -> None:
        """Reset backoff once an instance is healthy, or (without health checks) has run long
        enough (`reset_after_running_seconds`)."""
        if healthy or (healthy is None and running_for >= self._reset_after):
            self.reset_delay(app_id)

    def delay_left(self, app_id: PathId) -> float:
        """Seconds until `app_id` may launch again (0 when it is not backing off)."""
        backoff = self._backoffs.get(app_id)
        return 0.0 if backoff is None else max(0.0, backoff.until - self._clock.now())

    def match_offer(self, offer: OfferView, spreads: Spreads[PathId] | None = None, *,
                    agent_under_maintenance: bool = False,
                    limit: int | None = None) -> OfferMatch:
        """Pack as many queued instances as fit into `offer` (at most `limit`), in queue
        order.

        `spreads` says where each app's instances are placed, for constraints (nothing
        placed when None); instances chosen here are added to it, so they count for later
        ones. Apps in backoff are skipped. Every app considered that gets nothing records
        the offer as unused with its reasons.
        """
        spreads = spreads if spreads is not None else Spreads(_nothing_placed)
        now = self._clock.now()
        remaining = offer.unreserved
        has_gpus = remaining.scalar("gpus") > 0
        launches: list[LaunchDecision] = []
        rejections: dict[PathId, tuple[RejectReason, ...]] = {}
        room = limit if limit is not None else self.total()
        for entry in list(self._entries.values()):
            if len(launches) >= room:
                break
            if entry.count == 0 or self.delay_left(entry.app.id) > 0:
                continue
            app = entry.app
            spread = spreads.of(app.id) if app.constraints else None
            launched_here = 0
            reasons: tuple[RejectReason, ...] = ()
            portless = None if app.port_definitions else _taken(app, ())
            while entry.count > 0 and len(launches) < room:
                reasons, ports = self._fit(app, offer, spread, remaining, has_gpus,
                                           agent_under_maintenance)
                if reasons:
                    break
                decision = self._decide(app, offer.offer, ports)
                remaining = remaining - (portless or _taken(app, ports))
                spreads.add(app.id, offer.agent)
                launches.append(decision)
                entry.count -= 1
                launched_here += 1
            entry.processed += 1
            if launched_here:
                entry.last_used_at = now
            else:
                entry.unused += 1
                entry.last_unused_at = now
                entry.launch_attempt_summary[_first(reasons)] += 1
                entry.last_unused[offer.offer.agent_id.value] = _UnusedOffer(offer.offer, now,
                                                                             reasons)
                rejections[app.id] = reasons
        for app_id in [k for k, e in self._entries.items() if e.count == 0]:
            del self._entries[app_id]
        return OfferMatch(tuple(launches), MappingProxyType(rejections))

    def _fit(self, app: AppDefinition, offer: OfferView, spread: Spread | None,
             remaining: Resources, has_gpus: bool,
             maintenance: bool) -> tuple[tuple[RejectReason, ...], list[int]]:
        reasons: list[RejectReason] = []
        accepted = set(app.accepted_resource_roles or self._default_roles)
        if not offer.roles & accepted or "*" not in accepted:
            reasons.append(RejectReason.UNFULFILLED_ROLE)
        if app.image is not None and "docker" not in offer.offer.image_providers:
            reasons.append(RejectReason.NO_IMAGE_PROVIDER)
        if not check(app.constraints, offer.agent, spread):
            reasons.append(RejectReason.UNFULFILLED_CONSTRAINT)
        if maintenance:
            reasons.append(RejectReason.AGENT_MAINTENANCE)
        for name, wanted, reason in (("cpus", app.cpus, RejectReason.INSUFFICIENT_CPUS),
                                     ("mem", app.mem, RejectReason.INSUFFICIENT_MEMORY),
                                     ("disk", app.disk, RejectReason.INSUFFICIENT_DISK),
                                     ("gpus", app.gpus, RejectReason.INSUFFICIENT_GPUS)):
            if wanted and remaining.scalar(name) + 1e-9 < wanted:
                reasons.append(reason)
        ports = _host_ports(app, remaining)
        if ports is None:
            reasons.append(RejectReason.INSUFFICIENT_PORTS)
        if (self._restrict_gpus and has_gpus and app.gpus == 0
                and app.labels.get(GPU_SCHEDULING_LABEL) != "unrestricted"):
            reasons.append(RejectReason.DECLINED_SCARCE_RESOURCES)
        return tuple(reasons), ports or []

    def _decide(self, app: AppDefinition, offer: mesos_pb2.Offer,
                ports: list[int]) -> LaunchDecision:
        instance_id = new_instance_id(app.id, self._uuid)
        task_id = task_id_for(instance_id)
        env = task_environment(app, task_id=task_id, host=offer.hostname, host_ports=ports)
        return LaunchDecision(app, instance_id, task_id, offer.id.value, offer.agent_id.value,
                              offer.hostname, tuple(ports), MappingProxyType(env))

    def queue_json(self, app_id: PathId, *, embed_last_unused_offers: bool = False,
                   ) -> dict[str, Any]:
        """The app's `/v2/queue` entry; KeyError when nothing of it is queued."""
        entry = self._entries[app_id]
        now = self._clock.now()
        backoff = self._backoffs.get(app_id)
        time_left = 0.0 if backoff is None else backoff.until - now
        summary: dict[str, Any] = {"processedOffersCount": entry.processed,
                                   "unusedOffersCount": entry.unused}
        if entry.last_unused_at is not None:
            summary["lastUnusedOfferAt"] = format_timestamp(entry.last_unused_at)
        if entry.last_used_at is not None:
            summary["lastUsedOfferAt"] = format_timestamp(entry.last_used_at)
        last = list(entry.last_unused.values())
        summary["rejectSummaryLastOffers"] = _funnel(
            len(last), Counter(_first(u.reasons) for u in last))
        summary["rejectSummaryLaunchAttempt"] = _funnel(entry.processed,
                                                        entry.launch_attempt_summary)
        body: dict[str, Any] = {
            "app": app_to_json(entry.app),
            "count": entry.count,
            "role": entry.app.role or "*",
            "delay": {"timeLeftSeconds": int(max(0.0, time_left)), "overdue": time_left <= 0},
            "since": format_timestamp(entry.since),
            "processedOffersSummary": summary,
        }
        if embed_last_unused_offers:
            body["lastUnusedOffers"] = [
                {"offer": _offer_json(u.offer), "timestamp": format_timestamp(u.at),
                 "reason": [r.value for r in u.reasons]} for u in last]
        return body

    def queue_json_all(self, *, embed_last_unused_offers: bool = False) -> dict[str, Any]:
        """The whole GET /v2/queue body."""
        return {"queue": [self.queue_json(app_id, embed_last_unused_offers=
                                          embed_last_unused_offers)
                          for app_id in self._entries]}


def _first(reasons: Iterable[RejectReason]) -> RejectReason:
    return min(reasons, key=REASON_FUNNEL.index)


def _host_ports(app: AppDefinition, remaining: Resources) -> list[int] | None:
    """Host ports for one instance, or None when the offer lacks them.

    With `requirePorts`, declared non-zero ports are taken as they are; other ports (and all
    of them without `requirePorts`) are the lowest free ones of the offer.
    """
    definitions = app.port_definitions
    if not definitions:
        return []
    fixed = [d.port for d in definitions if app.require_ports and d.port != 0]
    available = remaining.ranges_of("ports")
    if not all(any(b <= p <= e for b, e in available) for p in fixed):
        return None
    dynamic_count = len(definitions) - len(fixed)
    free = remaining - port_resources(fixed)
    try:
        dynamic = iter(pick_ports(free, dynamic_count))
    except ValueError:
        return None
    return [d.port if app.require_ports and d.port != 0 else next(dynamic)
            for d in definitions]


def _taken(app: AppDefinition, ports: Sequence[int]) -> Resources:
    return task_resources(cpus=app.cpus, mem=app.mem, disk=app.disk, gpus=app.gpus, ports=ports)
