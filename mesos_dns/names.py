"""Mesos-DNS' naming rules: DNS-safe labels from task and framework names, and the short
task-id hash and agent-id tail of canonical task names (`<task>-<hash>-<agent>`)."""

from __future__ import annotations

import hashlib

__all__ = ["agent_id_tail", "domain_fragment", "label", "task_id_hash"]

_MAX_LABEL = 63
_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


def label(name: str) -> str:
    """One RFC 1123 label, as Mesos-DNS makes it: lower case; `.`, `_` and `-` become `-`;
    other characters are dropped; no leading or trailing `-`; at most 63 characters."""
    mapped = "".join(
        "-" if char in "-._" else char.lower()
        for char in name
        if char in "-._" or (char.isascii() and char.isalnum())
    )
    trimmed = mapped.lstrip("-")
    size = min(len(trimmed), _MAX_LABEL)
    head = trimmed[:size].rstrip("-")
    if len(head) == size:
        return head
    tail = trimmed[size:].lstrip("-")  # refill what trailing dashes left, as Mesos-DNS does
    return head + tail[:size - len(head)]


def domain_fragment(name: str) -> str:
    """A dotted name (a framework's) made of labels; empty labels are dropped."""
    return ".".join(part for part in (label(piece) for piece in name.split(".")) if part)


def task_id_hash(task_id: str) -> str:
    """The first five z-base-32 characters of the task id's SHA-1."""
    bits = int.from_bytes(hashlib.sha1(task_id.encode()).digest()[:4], "big")
    return "".join(_ZBASE32[(bits >> (27 - 5 * index)) & 31] for index in range(5))


def agent_id_tail(agent_id: str) -> str:
    """What follows the last `-` of an agent id, lower case (`S3` of `...-S3`)."""
    return agent_id.rsplit("-", 1)[-1].lower()
