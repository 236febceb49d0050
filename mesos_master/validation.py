"""Validation of what schedulers and operators send: FrameworkInfo on subscribe, TaskInfo on
launch, RESERVE and UNRESERVE of offered or free resources.

Each `validate_*` check returns the reason a request is refused (meant for the framework author
or operator), or None; the reservation checks return the conversion they describe and raise
`MasterError` (INVALID_ARGUMENT) for an invalid one.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

from mesos_master.errors import ErrorCode, MasterError
from mesos_values.resources import Resources
from protos import mesos_pb2

DEFAULT_ROLE = "*"  # the role of resources and frameworks that name none

MAX_DURATION_SECONDS = (2**63 - 1) / 1e9
"""The longest duration Mesos can hold (int64 nanoseconds, about 292 years)."""

_ROLE_COMPONENT = re.compile(r"[^\s/\x00-\x1f\x7f]+")
_FORBIDDEN_ID_CHARS = re.compile(r"[/\\\x00-\x1f\x7f]")


def validate_role(role: str) -> str | None:
    """Mesos role names: `*`, or `/`-separated components without spaces, `.`, `..` or `-` start."""
    if role == DEFAULT_ROLE:
        return None
    if not role:
        return "role names must not be empty"
    for component in role.split("/"):
        if not component:
            return f"role {role!r} has an empty path component"
        if component in (".", "..") or component.startswith("-") or component == "*":
            return f"role {role!r} has an invalid component {component!r}"
        if not _ROLE_COMPONENT.fullmatch(component):  # match() let "a\n" through ($)
            return f"role {role!r} contains whitespace, '/' or control characters"
    return None


def validate_id(kind: str, value: str) -> str | None:
    """Ids become directory names on agents: no `/`, control characters, `.` or `..`."""
    if not value:
        return f"{kind} is empty"
    if value in (".", "..") or _FORBIDDEN_ID_CHARS.search(value):
        return f"{kind} {value!r} must not be '.' or '..' nor contain '/', '\\\\' or controls"
    return None


def is_duration(seconds: float) -> bool:
    """Whether `seconds` is a duration Mesos can hold: finite, from 0 to
    `MAX_DURATION_SECONDS`."""
    return math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION_SECONDS


def validate_framework_info(info: mesos_pb2.FrameworkInfo) -> str | None:
    """Why a subscription with this FrameworkInfo is refused, or None."""
    if not info.name:
        return "FrameworkInfo.name is required"
    if not is_duration(info.failover_timeout):
        return (f"FrameworkInfo.failover_timeout {info.failover_timeout!r} must be a number "
                f"of seconds from 0 to {MAX_DURATION_SECONDS:.0f}")
    if info.id.value and (problem := validate_id("framework id", info.id.value)):
        return problem
    for role in info.roles:
        if problem := validate_role(role):
            return problem
    if len(set(info.roles)) != len(info.roles):
        return "FrameworkInfo.roles lists a role more than once"
    for role, filters in info.offer_filters.items():
        if role not in (info.roles or [DEFAULT_ROLE]):
            return f"FrameworkInfo.offer_filters names role {role!r}, which it is not subscribed to"
        for alternative in filters.min_allocatable_resources.quantities:
            try:
                Resources.from_scalars(dict(alternative.quantities))
            except ValueError as exc:
                return f"FrameworkInfo.offer_filters[{role!r}]: {exc}"
    multi_role = mesos_pb2.FrameworkInfo.Capability.MULTI_ROLE
    if len(info.roles) > 1 and not any(c.type == multi_role for c in info.capabilities):
        return "a framework with several roles needs the MULTI_ROLE capability"
    return None


def validate_task(
    task: mesos_pb2.TaskInfo,
    *,
    framework_id: str,
    agent_id: str,
    remaining: Resources,
    task_id_in_use: bool,
    running_executor: mesos_pb2.ExecutorInfo | None,
) -> tuple[str | None, Resources]:
    """Check one task of an ACCEPT against the resources left in its offers.

    Returns (reason, resources needed): the task's resources plus those of a new executor.
    """
    task_id = task.task_id.value
    if problem := validate_id("task id", task_id):
        return problem, Resources.EMPTY
    if task_id_in_use:
        return f"task id {task_id!r} is already used by this framework", Resources.EMPTY
    if task.agent_id.value and task.agent_id.value != agent_id:
        return (
            f"task {task_id!r} names agent {task.agent_id.value!r} but its offers are "
            f"for agent {agent_id!r}"
        ), Resources.EMPTY
    has_command, has_executor = task.HasField("command"), task.HasField("executor")
    if has_command == has_executor:
        return f"task {task_id!r} must set exactly one of command and executor", Resources.EMPTY
    if task.HasField("health_check") and (problem := _health_check_problem(task.health_check)):
        return f"task {task_id!r}: {problem}", Resources.EMPTY
    has_image = bool(task.container.docker.image or task.container.mesos.image.docker.name)
    if has_command and not task.command.value and not has_image:
        return f"task {task_id!r} has an empty command (and no image)", Resources.EMPTY
    try:
        needed = Resources.from_proto_shared(task.resources)
    except ValueError as exc:
        return f"task {task_id!r} has invalid resources: {exc}", Resources.EMPTY
    if needed.is_empty():
        return f"task {task_id!r} uses no resources", Resources.EMPTY
    if has_executor:
        problem, executor_needs = _validate_executor(task.executor, framework_id, running_executor)
        if problem:
            return f"task {task_id!r}: {problem}", Resources.EMPTY
        needed = needed + executor_needs
    if not remaining.contains(needed):
        return (
            f"task {task_id!r} uses more resources ({needed}) than its offers have left "
            f"({remaining})"
        ), Resources.EMPTY
    return None, needed


def _validate_executor(
    executor: mesos_pb2.ExecutorInfo,
    framework_id: str,
    running: mesos_pb2.ExecutorInfo | None,
) -> tuple[str | None, Resources]:
    """Returns (reason, resources a newly launched executor needs)."""
    if problem := validate_id("executor id", executor.executor_id.value):
        return problem, Resources.EMPTY
    if executor.framework_id.value and executor.framework_id.value != framework_id:
        return "ExecutorInfo.framework_id names another framework", Resources.EMPTY
    if running is not None:
        comparable = mesos_pb2.ExecutorInfo()
        comparable.CopyFrom(executor)
        comparable.framework_id.value = running.framework_id.value
        for mine, theirs in zip(comparable.resources, running.resources, strict=False):
            mine.allocation_info.CopyFrom(theirs.allocation_info)  # the master set that
        if comparable != running:
            return (
                f"ExecutorInfo differs from the running executor {executor.executor_id.value!r}"
            ), Resources.EMPTY
        return None, Resources.EMPTY
    if not executor.command.value:
        return "ExecutorInfo.command.value is empty", Resources.EMPTY
    try:
        return None, Resources.from_proto(executor.resources)
    except ValueError as exc:
        return f"executor has invalid resources: {exc}", Resources.EMPTY


def plan_conversions(
    operations: Sequence[mesos_pb2.Offer.Operation],
    offered: Resources,
    *,
    role: str,
    principal: str,
) -> list[tuple[Resources, Resources]]:
    """(old, new) resources of each RESERVE/UNRESERVE of an ACCEPT of offers to `role` by a
    framework with `principal`, checked in order against what the offers hold at that point;
    MasterError names the first invalid one."""
    conversions: list[tuple[Resources, Resources]] = []
    remaining = offered
    for index, operation in enumerate(operations):
        where = f"operation {index}"
        if operation.type == mesos_pb2.Offer.Operation.RESERVE:
            old, new = reserve_conversion(
                operation.reserve.resources, where, role=role, principal=principal
            )
        elif operation.type == mesos_pb2.Offer.Operation.UNRESERVE:
            old, new = unreserve_conversion(operation.unreserve.resources, where)
        else:
            continue
        if not remaining.contains(old):
            raise MasterError(
                ErrorCode.INVALID_ARGUMENT,
                f"{where}: {old} is not in the offers (they hold {remaining})",
            )
        remaining = remaining - old + new
        conversions.append((old, new))
    return conversions


def reserve_conversion(
    resources: Iterable[mesos_pb2.Resource], where: str, *, role: str | None,
    principal: str | None,
) -> tuple[Resources, Resources]:
    """(resources before, after) a RESERVE of `resources`; `role` (the offer's) and
    `principal` (the framework's), when given, must be the new reservation's."""
    reserved = _reserved_resources(resources, where)
    if not reserved:
        raise MasterError(ErrorCode.INVALID_ARGUMENT, f"{where}: RESERVE names no resources")
    for stack in reserved.stacks():
        if not stack or not stack[-1].dynamic:
            raise MasterError(
                ErrorCode.INVALID_ARGUMENT,
                f"{where}: RESERVE needs a DYNAMIC reservation on top of each resource",
            )
        top = stack[-1]
        if problem := validate_role(top.role):
            raise MasterError(ErrorCode.INVALID_ARGUMENT, f"{where}: {problem}")
        if role is not None and top.role != role:
            raise MasterError(
                ErrorCode.INVALID_ARGUMENT,
                f"{where}: resources offered to role {role!r} can only be reserved for it, "
                f"not for {top.role!r}",
            )
        if principal is not None and top.principal and top.principal != principal:
            raise MasterError(
                ErrorCode.INVALID_ARGUMENT,
                f"{where}: the reservation's principal {top.principal!r} is not the "
                f"framework's ({principal!r})",
            )
        if len(stack) > 1:
            below = stack[-2].role
            if not top.role.startswith(below + "/"):
                raise MasterError(
                    ErrorCode.INVALID_ARGUMENT,
                    f"{where}: a reservation for {below!r} can only be refined to one of "
                    f"its subroles, not {top.role!r}",
                )
    return reserved.popped(), reserved


def unreserve_conversion(
    resources: Iterable[mesos_pb2.Resource], where: str
) -> tuple[Resources, Resources]:
    """(resources before, after) an UNRESERVE of `resources`."""
    reserved = _reserved_resources(resources, where)
    if not reserved or any(not stack or not stack[-1].dynamic for stack in reserved.stacks()):
        raise MasterError(
            ErrorCode.INVALID_ARGUMENT,
            f"{where}: UNRESERVE takes dynamically reserved resources only",
        )
    return reserved, reserved.popped()


def _reserved_resources(resources: Iterable[mesos_pb2.Resource], where: str) -> Resources:
    try:
        return Resources.from_proto(resources)
    except ValueError as exc:
        raise MasterError(ErrorCode.INVALID_ARGUMENT, f"{where}: {exc}") from exc


def _health_check_problem(check: mesos_pb2.HealthCheck) -> str | None:
    """What is wrong with a task's health check (Mesos validates the same), None if nothing."""
    kinds = mesos_pb2.HealthCheck
    if check.type == kinds.COMMAND and not check.command.value:
        return "a COMMAND health check needs a command"
    if check.type == kinds.HTTP and not 0 < check.http.port < 65536:
        return "an HTTP health check needs a port"
    if check.type == kinds.TCP and not 0 < check.tcp.port < 65536:
        return "a TCP health check needs a port"
    if check.type not in (kinds.COMMAND, kinds.HTTP, kinds.TCP):
        return "a health check needs a type: COMMAND, HTTP or TCP"
    # Unset durations take Mesos' defaults; set ones must be finite, and the interval and
    # timeout above 0 (else the agent would probe without pause).
    durations = (
        ("delay_seconds", check.HasField("delay_seconds"), check.delay_seconds, 0.0),
        ("grace_period_seconds", check.HasField("grace_period_seconds"),
         check.grace_period_seconds, 0.0),
        ("interval_seconds", check.HasField("interval_seconds"), check.interval_seconds,
         _MIN_CHECK_SECONDS),
        ("timeout_seconds", check.HasField("timeout_seconds"), check.timeout_seconds,
         _MIN_CHECK_SECONDS))
    for name, given, value, least in durations:
        if given and not least <= value < math.inf:
            return f"health check {name} must be a finite number >= {least:g} (got {value})"
    return None


_MIN_CHECK_SECONDS = 0.01
