"""The bounds on app fields (`mesos_http.field_limits`, `mesos_values.resources.MAX_SCALAR`),
checked on every new root group before it is stored.

    core.update_root(change) --check_limits(new root)--> AppValidationError (422
        "Object is not valid", a path `<app id>/<field>` per field over its bound)
"""

from __future__ import annotations

from marathon.app_definition import AppDefinition
from marathon.groups import Group
from marathon.validation import OBJECT_NOT_VALID, AppValidationError, Violation
from mesos_http.field_limits import MAX_ARG_BYTES, MAX_ID_LENGTH, MAX_TASKS, exec_string_overflow
from mesos_values.resources import MAX_SCALAR

__all__ = ["check_limits"]


def check_limits(root: Group) -> None:
    """Raise AppValidationError naming every field of an app or group over its bound."""
    violations = [Violation(str(group.id), _longer("id", len(str(group.id)), MAX_ID_LENGTH,
                                                   "characters"))
                  for group in root.transitive_groups() if len(str(group.id)) > MAX_ID_LENGTH]
    for app in root.transitive_apps():
        violations.extend(_app_violations(app))
    if violations:
        raise AppValidationError(OBJECT_NOT_VALID, violations)


def _app_violations(app: AppDefinition) -> list[Violation]:
    where = str(app.id)
    violations = []
    if len(where) > MAX_ID_LENGTH:
        violations.append(Violation(where, _longer("id", len(where), MAX_ID_LENGTH,
                                                   "characters")))
    if app.instances > MAX_TASKS:
        violations.append(Violation(f"{where}/instances",
                                    f"got {_shown(app.instances)}, expected {MAX_TASKS} or less"))
    for name, value in (("cpus", app.cpus), ("mem", app.mem), ("disk", app.disk),
                        ("gpus", app.gpus)):
        if value > MAX_SCALAR:
            violations.append(Violation(f"{where}/{name}",
                                        f"got {_shown(value)}, expected {MAX_SCALAR:g} or less"))
    strings = [("cmd", app.cmd or "")]
    strings += [(f"args({i})", arg) for i, arg in enumerate(app.args)]
    strings += [(f"env/{key}", f"{key}={value}") for key, value in app.env.items()
                if isinstance(value, str)]
    for field, text in strings:
        if (size := exec_string_overflow(text)) is not None:
            violations.append(Violation(f"{where}/{field}",
                                        _longer(field, size, MAX_ARG_BYTES, "bytes")))
    return violations


def _shown(value: float) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 20 else f"a number of {len(text)} digits"


def _longer(field: str, size: int, maximum: int, unit: str) -> str:
    return f"{field} is {size} {unit} long, expected {maximum} or less"
