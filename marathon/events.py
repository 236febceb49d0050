"""The events Marathon publishes (their delivery to `/v2/events` is `marathon.event_bus`).

Each event is a JSON object with Marathon's field names plus `eventType` and `timestamp`; the
builders below produce the shapes of Marathon's event documentation. `sse()` frames one event as
server-sent events do (`event: <type>` and `data: <json>` lines).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from mesos_values.timestamps import format_timestamp

Event = dict[str, Any]


def timestamp(now: datetime | None = None) -> str:
    """Marathon's timestamp format: ISO 8601 in UTC with milliseconds, e.g.
    `2015-09-30T12:44:30.061Z`."""
    moment = now or datetime.now(UTC)
    return _millisecond_stamp(moment.replace(microsecond=moment.microsecond // 1000 * 1000))


@functools.lru_cache(maxsize=1)
def _millisecond_stamp(millisecond: datetime) -> str:
    """The stamp of one millisecond, formatted once for the events a burst publishes in it."""
    return format_timestamp(millisecond.timestamp())


def event(event_type: str, fields: Mapping[str, Any], *, now: datetime | None = None) -> Event:
    """An event of `event_type` with `fields`, stamped with `eventType` and `timestamp`."""
    return {**fields, "eventType": event_type, "timestamp": timestamp(now)}


def sse(item: Event) -> bytes:
    """One event framed for a `text/event-stream` response."""
    data = json.dumps(item, separators=(",", ":"))
    return f"event: {item['eventType']}\ndata: {data}\n\n".encode()


def status_update_event(
    *,
    agent_id: str,
    task_id: str,
    state: str,
    message: str,
    app_id: str,
    host: str,
    ports: Iterable[int],
    version: str,
    ip_addresses: Iterable[Mapping[str, str]] = (),
) -> Event:
    """A task's status changed (Marathon's `status_update_event`)."""
    return event(
        "status_update_event",
        {
            "slaveId": agent_id,
            "taskId": task_id,
            "taskStatus": state,
            "message": message,
            "appId": app_id,
            "host": host,
            "ipAddresses": [dict(address) for address in ip_addresses],
            "ports": list(ports),
            "version": version,
        },
    )


def instance_changed_event(
    *,
    instance_id: str,
    condition: str,
    app_id: str,
    agent_id: str,
    host: str,
    version: str,
) -> Event:
    """An instance's condition changed (Marathon's `instance_changed_event`)."""
    return event(
        "instance_changed_event",
        {
            "instanceId": instance_id,
            "condition": condition,
            "runSpecId": app_id,
            "agentId": agent_id,
            "host": host,
            "runSpecVersion": version,
        },
    )


def api_post_event(client_ip: str, uri: str, app_definition: Mapping[str, Any]) -> Event:
    """An app was created or changed through the REST API."""
    return event(
        "api_post_event",
        {"clientIp": client_ip, "uri": uri, "appDefinition": dict(app_definition)},
    )


def health_status_changed_event(
    *, app_id: str, instance_id: str, task_id: str, version: str, alive: bool
) -> Event:
    """An instance became healthy or unhealthy."""
    return event(
        "health_status_changed_event",
        {
            "appId": app_id,
            "instanceId": instance_id,
            "taskId": task_id,
            "version": version,
            "alive": alive,
        },
    )


def failed_health_check_event(
    *, app_id: str, task_id: str, instance_id: str, health_check: Mapping[str, Any]
) -> Event:
    """One health check of an instance failed."""
    return event(
        "failed_health_check_event",
        {
            "appId": app_id,
            "taskId": task_id,
            "instanceId": instance_id,
            "healthCheck": dict(health_check),
        },
    )


def unhealthy_instance_kill_event(
    *, app_id: str, task_id: str, instance_id: str, version: str, reason: str, host: str,
    agent_id: str,
) -> Event:
    """An instance is killed because it stayed unhealthy."""
    return event(
        "unhealthy_instance_kill_event",
        {
            "appId": app_id,
            "taskId": task_id,
            "instanceId": instance_id,
            "version": version,
            "reason": reason,
            "host": host,
            "slaveId": agent_id,
        },
    )


def deployment_event(
    event_type: str, plan: Mapping[str, Any], *, current_step: Mapping[str, Any] | None = None,
    reason: str | None = None,
) -> Event:
    """`deployment_info`, `deployment_step_success`, `deployment_step_failure`,
    `deployment_success` or `deployment_failed` for the plan JSON `plan`."""
    fields: dict[str, Any] = {"plan": dict(plan)}
    if event_type in ("deployment_success", "deployment_failed"):
        fields["id"] = plan["id"]
    if current_step is not None:
        fields["currentStep"] = dict(current_step)
    if reason is not None:
        fields["reason"] = reason
    return event(event_type, fields)


def group_change_event(group_id: str, version: str, *, reason: str | None = None) -> Event:
    """`group_change_success`, or `group_change_failed` when `reason` is given."""
    if reason is None:
        return event("group_change_success", {"groupId": group_id, "version": version})
    return event(
        "group_change_failed", {"groupId": group_id, "version": version, "reason": reason}
    )


def app_terminated_event(app_id: str) -> Event:
    """An app was removed and all its instances are gone."""
    return event("app_terminated_event", {"appId": app_id})


def stream_event(attached: bool, remote_address: str) -> Event:
    """`event_stream_attached` / `event_stream_detached`."""
    name = "event_stream_attached" if attached else "event_stream_detached"
    return event(name, {"remoteAddress": remote_address})
