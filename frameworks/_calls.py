"""Pure builders for scheduler `Call` messages (no I/O).

The driver stamps the framework id onto each call when it sends it, so calls can be built
before the framework has one.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeAlias

from google.protobuf import json_format

from frameworks import _ids
from frameworks._ids import AgentIDLike, ExecutorIDLike, OfferIDLike, TaskIDLike
from protos import mesos_pb2, scheduler_pb2

Call = scheduler_pb2.Call
FiltersLike: TypeAlias = mesos_pb2.Filters | float | None
"""A `Filters` message, or the number of seconds to refuse the resources, or None (default)."""
ReconcileItem: TypeAlias = mesos_pb2.TaskStatus | TaskIDLike | tuple[TaskIDLike, AgentIDLike]
"""A task to reconcile: its last status, its id, or its (task id, agent id)."""


def framework_info(value: mesos_pb2.FrameworkInfo | Mapping[str, Any]) -> mesos_pb2.FrameworkInfo:
    """A copy of `value` (a message or a dict in protobuf JSON form); `user` defaults to the
    current user."""
    info = mesos_pb2.FrameworkInfo()
    if isinstance(value, mesos_pb2.FrameworkInfo):
        info.CopyFrom(value)
    elif isinstance(value, Mapping):
        try:
            json_format.ParseDict(dict(value), info)
        except json_format.ParseError as exc:
            raise ValueError(f"invalid framework_info: {exc}") from None
    else:
        raise TypeError(
            f"framework_info must be a FrameworkInfo or a dict, not {type(value).__name__}"
        )
    if not info.user:
        info.user = getpass.getuser()
    return info


def filters(value: FiltersLike) -> mesos_pb2.Filters | None:
    """Normalise a filters argument."""
    if value is None or isinstance(value, mesos_pb2.Filters):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"filters must be Filters or seconds, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"refuse_seconds must not be negative ({value})")
    return mesos_pb2.Filters(refuse_seconds=float(value))


def _offer_ids(value: OfferIDLike | Iterable[OfferIDLike]) -> list[mesos_pb2.OfferID]:
    if isinstance(value, str | mesos_pb2.OfferID):
        return [_ids.offer_id(value)]
    return [_ids.offer_id(item) for item in value]


def subscribe(info: mesos_pb2.FrameworkInfo) -> Call:
    """SUBSCRIBE with `info` (its id set when re-subscribing)."""
    call = Call(type=Call.SUBSCRIBE)
    call.subscribe.framework_info.CopyFrom(info)
    return call


def teardown() -> Call:
    """TEARDOWN: remove the framework and kill its tasks."""
    return Call(type=Call.TEARDOWN)


def accept(
    offer_ids: OfferIDLike | Iterable[OfferIDLike],
    operations: Iterable[mesos_pb2.Offer.Operation],
    filters_: FiltersLike = None,
) -> Call:
    """ACCEPT offers with operations; resources the operations leave unused are declined."""
    call = Call(type=Call.ACCEPT)
    call.accept.offer_ids.extend(_offer_ids(offer_ids))
    call.accept.operations.extend(operations)
    normalised = filters(filters_)
    if normalised is not None:
        call.accept.filters.CopyFrom(normalised)
    return call


def launch(
    offer_ids: OfferIDLike | Iterable[OfferIDLike],
    tasks: Iterable[mesos_pb2.TaskInfo],
    filters_: FiltersLike = None,
) -> Call:
    """ACCEPT offers with one LAUNCH of `tasks` (no tasks: the offers are declined)."""
    task_list = list(tasks)
    operations = []
    if task_list:
        operation = mesos_pb2.Offer.Operation(type=mesos_pb2.Offer.Operation.LAUNCH)
        operation.launch.task_infos.extend(task_list)
        operations.append(operation)
    return accept(offer_ids, operations, filters_)


def decline(offer_ids: OfferIDLike | Iterable[OfferIDLike], filters_: FiltersLike = None) -> Call:
    """DECLINE offers, optionally refusing their resources for a while."""
    call = Call(type=Call.DECLINE)
    call.decline.offer_ids.extend(_offer_ids(offer_ids))
    normalised = filters(filters_)
    if normalised is not None:
        call.decline.filters.CopyFrom(normalised)
    return call


def _roles(roles: str | Iterable[str] | None) -> list[str]:
    if roles is None:
        return []
    return [roles] if isinstance(roles, str) else list(roles)


def revive(roles: str | Iterable[str] | None = None) -> Call:
    """REVIVE: clear filters and resume offers (all roles when `roles` is None)."""
    call = Call(type=Call.REVIVE)
    call.revive.roles.extend(_roles(roles))
    return call


def suppress(roles: str | Iterable[str] | None = None) -> Call:
    """SUPPRESS: stop offers until the next REVIVE (all roles when `roles` is None)."""
    call = Call(type=Call.SUPPRESS)
    call.suppress.roles.extend(_roles(roles))
    return call


def kill(
    task_id: TaskIDLike,
    agent_id: AgentIDLike | None = None,
    kill_policy: mesos_pb2.KillPolicy | float | None = None,
) -> Call:
    """KILL a task; `kill_policy` (a policy or grace seconds) overrides the task's own."""
    call = Call(type=Call.KILL)
    call.kill.task_id.CopyFrom(_ids.task_id(task_id))
    if agent_id is not None:
        call.kill.agent_id.CopyFrom(_ids.agent_id(agent_id))
    if isinstance(kill_policy, mesos_pb2.KillPolicy):
        call.kill.kill_policy.CopyFrom(kill_policy)
    elif kill_policy is not None:
        if kill_policy < 0:
            raise ValueError(f"the kill grace period must not be negative ({kill_policy})")
        call.kill.kill_policy.grace_period.nanoseconds = round(kill_policy * 1e9)
    return call


def shutdown(executor_id: ExecutorIDLike, agent_id: AgentIDLike) -> Call:
    """SHUTDOWN a custom executor (its tasks are killed)."""
    call = Call(type=Call.SHUTDOWN)
    call.shutdown.executor_id.CopyFrom(_ids.executor_id(executor_id))
    call.shutdown.agent_id.CopyFrom(_ids.agent_id(agent_id))
    return call


def needs_acknowledgement(status: mesos_pb2.TaskStatus) -> bool:
    """Whether `status` must be acknowledged: only updates that carry a uuid (from agents and
    executors); master-generated and reconciliation updates have none."""
    return bool(status.uuid)


def acknowledge(status: mesos_pb2.TaskStatus) -> Call | None:
    """ACKNOWLEDGE `status`, or None when it needs no acknowledgement."""
    if not needs_acknowledgement(status):
        return None
    call = Call(type=Call.ACKNOWLEDGE)
    call.acknowledge.agent_id.CopyFrom(status.agent_id)
    call.acknowledge.task_id.CopyFrom(status.task_id)
    call.acknowledge.uuid = status.uuid
    return call


def merged_acknowledgements(calls: Sequence[Call]) -> Call:
    """One ACKNOWLEDGE call carrying the acknowledgements of `calls` (ACKNOWLEDGE calls), in
    order: the first in `acknowledge`, the others in `acknowledgements`."""
    merged = Call()
    merged.CopyFrom(calls[0])
    for call in calls[1:]:
        if call.HasField("acknowledge"):
            merged.acknowledgements.append(call.acknowledge)
        merged.acknowledgements.extend(call.acknowledgements)
    return merged


def reconcile(items: Iterable[ReconcileItem]) -> Call:
    """RECONCILE the given tasks, or every task the master knows of when `items` is empty."""
    call = Call(type=Call.RECONCILE)
    for item in items:
        task = call.reconcile.tasks.add()
        if isinstance(item, mesos_pb2.TaskStatus):
            task.task_id.CopyFrom(item.task_id)
            if item.agent_id.value:
                task.agent_id.CopyFrom(item.agent_id)
        elif isinstance(item, tuple):
            task.task_id.CopyFrom(_ids.task_id(item[0]))
            task.agent_id.CopyFrom(_ids.agent_id(item[1]))
        else:
            task.task_id.CopyFrom(_ids.task_id(item))
    return call


def message(executor_id: ExecutorIDLike, agent_id: AgentIDLike, data: bytes) -> Call:
    """MESSAGE: send `data` to an executor."""
    if not isinstance(data, bytes):
        raise TypeError(f"framework message data must be bytes, not {type(data).__name__}")
    call = Call(type=Call.MESSAGE)
    call.message.executor_id.CopyFrom(_ids.executor_id(executor_id))
    call.message.agent_id.CopyFrom(_ids.agent_id(agent_id))
    call.message.data = data
    return call
