"""What marathon-lb reads from Marathon and HAProxy, parsed without I/O (a pure core):
server-sent event frames, which events call for a re-sync, which Marathon leads, and the
HAProxy master CLI's `show proc`."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = [
    "RESYNC_EVENTS",
    "Processes",
    "SseParser",
    "leader_url",
    "parse_show_proc",
]

RESYNC_EVENTS = (
    "status_update_event",
    "health_status_changed_event",
    "api_post_event",
    "app_terminated_event",
    "instance_changed_event",
    "deployment_info",
    "deployment_success",
    "deployment_failed",
    "deployment_step_success",
    "deployment_step_failure",
    "group_change_success",
)
"""The Marathon events after which the apps are read again: task states, health verdicts,
changed, removed or deployed apps."""


@dataclass
class SseParser:
    """Turns a `text/event-stream` body, line by line, into `(event type, JSON data)` pairs
    (an event's type is its `event:` field, else its data's `eventType`)."""

    _event: str = ""
    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """Feed one line (without its end of line); yields an event when `line` ends one."""
        if line.startswith(":"):
            return
        if line == "":
            data, self._data = "\n".join(self._data), []
            name, self._event = self._event, ""
            if not data.strip():
                return
            for body in _documents(data):
                yield str(name or body.get("eventType", "")), body
            return
        key, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if key == "event":
            self._event = value
        elif key == "data":
            self._data.append(value)


def leader_url(urls: Sequence[str], answering: str, leader: str | None) -> str:
    """Which of `urls` to follow: the one whose host and port are the `leader` that
    `answering` named (from `/v2/leader`), else `answering` itself."""
    if leader:
        for url in urls:
            if urlsplit(url).netloc == leader:
                return url
    return answering


@dataclass(frozen=True, slots=True)
class Processes:
    """HAProxy's processes as its master lists them: the master's reload and failed-reload
    counts, the current workers and the old ones still finishing their connections."""

    master_pid: int
    reloads: int
    failed: int
    workers: tuple[int, ...]
    old_workers: tuple[int, ...] = ()


_FAILED = re.compile(r"\[failed:\s*(\d+)\]")


def parse_show_proc(text: str) -> Processes | None:
    """The master CLI's `show proc` answer; None when it is not one. Workers are listed under
    `# workers` (current: after a failed reload, the previous ones stay current) and
    `# old workers`."""
    master: tuple[int, int, int] | None = None
    sections: dict[str, list[int]] = {"workers": [], "old workers": []}
    section = ""
    for line in text.splitlines():
        if line.startswith("# "):
            section = line[2:].strip()
            continue
        fields = line.split()
        if len(fields) < 3 or not fields[0].isdigit():
            continue
        if fields[1] == "master" and fields[2].isdigit():
            failed = _FAILED.search(line)
            master = (int(fields[0]), int(fields[2]), int(failed.group(1)) if failed else 0)
        elif fields[1] == "worker" and section in sections:
            sections[section].append(int(fields[0]))
    if master is None:
        return None
    return Processes(*master, tuple(sections["workers"]), tuple(sections["old workers"]))

def _documents(data: str) -> list[dict[str, Any]]:
    """The JSON objects of one event's data: one document, or (as Marathon sometimes sends)
    one per line; what does not parse is skipped."""
    try:
        documents = [json.loads(data)]
    except ValueError:
        documents = []
        for chunk in data.replace("\r\n", "\n").split("\n"):
            with contextlib.suppress(ValueError):
                documents.append(json.loads(chunk))
    return [d for d in documents if isinstance(d, dict)]
