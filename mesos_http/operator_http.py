"""Shapes shared by the master's and the agent's operator endpoints (`/state`, `/flags`,
`/metrics`): Mesos' JSON models of resources, attributes and tasks, flag values as strings,
and the Prometheus text exposition of a metrics snapshot.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from mesos_runtime.flags import parse_duration
from mesos_values.attributes import format_attribute_value
from mesos_values.resources import Resources, format_scalar
from protos import mesos_pb2

__all__ = [
    "PROMETHEUS_CONTENT_TYPE",
    "JsonFragments",
    "PrometheusSample",
    "attributes_json",
    "flag_values",
    "prometheus_family",
    "prometheus_name",
    "prometheus_text",
    "redact_credentials",
    "resources_json",
    "task_json",
]

PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_NOT_IN_NAME = re.compile(r"[^A-Za-z0-9_]")


class JsonFragments:
    """Parts of one large JSON document encoded as they are made (a `/state` of 100,000 tasks:
    each task's model is dropped once encoded instead of all being held until the end), then
    spliced into the document, which holds a placeholder string for each. Placeholders carry a
    random nonce, so no string of the document's own can be taken for one."""

    _ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))

    def __init__(self) -> None:
        self._nonce = uuid.uuid4().hex
        self._parts: list[str] = []

    def array(self, items: Iterable[Any]) -> str:
        """A placeholder for the JSON array of `items`, each encoded when it is reached."""
        encode = self._ENCODER.encode
        self._parts.append("[" + ",".join(encode(item) for item in items) + "]")
        return f"{self._nonce}:{len(self._parts) - 1}"

    def encode(self, document: Any) -> bytes:
        """`document` as compact UTF-8 JSON (as Starlette's JSONResponse writes it), each
        placeholder replaced by its part."""
        text = self._ENCODER.encode(document)
        if not self._parts:
            return text.encode()
        placeholder = re.compile(f'"{self._nonce}:([0-9]+)"')
        return placeholder.sub(lambda match: self._parts[int(match[1])], text).encode()


def resources_json(resources: Resources) -> dict[str, Any]:
    """Mesos' JSON model: scalars as numbers, ranges as "[a-b, c-d]", sets as "{x, y}".

    cpus, mem, disk and gpus are always present, as in Mesos' `/state`.
    """
    model: dict[str, Any] = {name: 0.0 for name in ("cpus", "mem", "disk", "gpus")}
    model.update(resources.scalars)
    for name in sorted(resources.names()):
        ranges = resources.ranges_of(name)
        if ranges:
            model[name] = "[" + ", ".join(f"{begin}-{end}" for begin, end in ranges) + "]"
        items = resources.set_of(name)
        if items:
            model[name] = "{" + ", ".join(sorted(items)) + "}"
    return model


def attributes_json(attributes: Iterable[mesos_pb2.Attribute]) -> dict[str, Any]:
    """Attributes by name: numbers for scalars, strings for text, ranges and sets."""
    model: dict[str, Any] = {}
    for attribute in attributes:
        if attribute.type == mesos_pb2.Value.SCALAR:
            model[attribute.name] = attribute.scalar.value
        else:
            model[attribute.name] = format_attribute_value(attribute)
    return model


def task_json(task: mesos_pb2.Task, role: str = "*", *,
              resources: dict[str, Any] | None = None) -> dict[str, Any]:
    """A task in Mesos' JSON model (`/state` of the master and of the agent); `resources`,
    when given, is the task's resources already in that model (they are not decoded again)."""
    if resources is None:
        try:
            resources = resources_json(Resources.from_proto(task.resources))
        except ValueError:
            resources = resources_json(Resources.EMPTY)
    model: dict[str, Any] = {
        "id": task.task_id.value,
        "name": task.name,
        "framework_id": task.framework_id.value,
        "executor_id": task.executor_id.value,
        "slave_id": task.agent_id.value,
        "state": mesos_pb2.TaskState.Name(task.state),
        "resources": resources,
        "role": role,
        "statuses": [_status_json(status) for status in task.statuses],
    }
    if task.labels.labels:
        model["labels"] = [{"key": label.key, "value": label.value} for label in task.labels.labels]
    return model


def _status_json(status: mesos_pb2.TaskStatus) -> dict[str, Any]:
    model: dict[str, Any] = {
        "state": mesos_pb2.TaskState.Name(status.state),
        "timestamp": status.timestamp,
    }
    if status.HasField("healthy"):
        model["healthy"] = status.healthy
    if status.message:
        model["message"] = status.message
    if status.reason:
        model["reason"] = mesos_pb2.TaskStatus.Reason.Name(status.reason)
    return model


def flag_values(parser: argparse.ArgumentParser, args: argparse.Namespace) -> dict[str, str]:
    """Every flag that has a value, as the string Mesos' `/flags` shows (durations in secs,
    booleans as true/false); flags left unset are omitted."""
    values: dict[str, str] = {}
    for action in parser._actions:  # argparse offers no public iterator over its actions
        if not action.option_strings or action.dest == "help":
            continue
        value = getattr(args, action.dest, None)
        if value is None:
            continue
        text = _flag_text(value, duration=action.type is parse_duration)
        if action.dest in SECRET_FLAGS or (action.dest in SECRET_DOCUMENT_FLAGS
                                           and text.lstrip().startswith("{")):
            text = "(hidden)"
        values[action.dest] = redact_credentials(text)
    return dict(sorted(values.items()))


SECRET_FLAGS = frozenset({"http_credentials"})
"""Flags whose value is a secret (`/flags` never shows it)."""
SECRET_DOCUMENT_FLAGS = frozenset({"credentials", "credential"})
"""Flags that take a path or, inline, the JSON document of secrets itself."""


_ZK_PASSWORD = re.compile(r"(zk://[^:/@,]+:)[^@]*@")


def redact_credentials(text: str) -> str:
    """`zk://user:secret@h:p/path` -> `zk://user:*****@h:p/path`, for anything shown to users."""
    return _ZK_PASSWORD.sub(r"\1*****@", text)


def _flag_text(value: object, *, duration: bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | int):
        return f"{format_scalar(value)}secs" if duration else format_scalar(value)
    if isinstance(value, Mapping):
        return ",".join(f"{key}={_flag_text(item, duration=False)}" for key, item in value.items())
    if isinstance(value, frozenset | set):
        return ",".join(sorted(str(item) for item in value))
    if isinstance(value, tuple):
        return "|".join(str(item) for item in value)  # alternatives, as Mesos writes them
    return str(value)


def prometheus_name(name: str) -> str:
    """`master/tasks_running` -> `mesos_master_tasks_running`."""
    return "mesos_" + _NOT_IN_NAME.sub("_", name)


def prometheus_text(metrics: Mapping[str, float], counters: Iterable[str] = ()) -> str:
    """The Prometheus text exposition (format 0.0.4) of a Mesos metrics snapshot.

    Names are mapped by `prometheus_name`; the names in `counters` are typed counter, the
    others gauge.
    """
    counter_names = frozenset(counters)
    lines: list[str] = []
    for name, value in sorted(metrics.items()):
        exposed = prometheus_name(name)
        kind = "counter" if name in counter_names else "gauge"
        lines += [f"# TYPE {exposed} {kind}", f"{exposed} {_sample(value)}"]
    return "\n".join(lines) + "\n"


PrometheusSample = tuple[Mapping[str, str], float]
"""One sample of a labelled metric: its labels (name -> value) and its value."""


def prometheus_family(name: str, kind: str, help_text: str,
                      samples: Iterable[PrometheusSample]) -> str:
    """One metric family in the Prometheus text exposition: `# HELP`, `# TYPE` (`kind`:
    counter or gauge) and a line per sample; "" when there are no samples. Label values are
    escaped as the format requires (backslash, double quote, newline)."""
    lines = [f"{name}{_labels(labels)} {_sample(value)}" for labels, value in samples]
    if not lines:
        return ""
    return "\n".join([f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]) + "\n"


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    pairs = (f'{name}="{_escape_label(value)}"' for name, value in labels.items())
    return "{" + ",".join(pairs) + "}"


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _sample(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if isinstance(value, float) else str(value)
