"""Marathon's `text/plain` task listing (`GET /v2/tasks`, `GET /v2/apps/{id}/tasks`), the
format HAProxy bridge scripts read: per app and service port one tab-separated line,
`<app id with / as _>\t<service port>\t<host>:<host port>\t...`, listing running instances;
an app without service ports gets one line `<id>\t \t<host>\t...`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from marathon.app_definition import AppDefinition
from marathon.groups import service_ports
from marathon.state import Instance

__all__ = ["endpoints_text"]


def endpoints_text(apps: Iterable[tuple[AppDefinition, Sequence[Instance]]]) -> str:
    """The listing of `apps`, each with its instances (any order; only running ones show)."""
    lines = []
    for app, instances in apps:
        clean_id = "_".join(app.id.segments)
        running = [i for i in instances if i.state == "TASK_RUNNING" and not i.killing]
        ports = service_ports(app)
        if not ports:
            lines.append(f"{clean_id}\t \t" + "".join(f"{i.host}\t" for i in running))
            continue
        for index, port in enumerate(ports):
            lines.append(f"{clean_id}\t{port}\t" + "".join(
                f"{i.host}:{i.ports[index]}\t" for i in running if index < len(i.ports)))
    return "".join(f"{line}\n" for line in lines)
