"""The gRPC conventions between a master and its clients (agents and schedulers): channel
options, the metadata keys and reading a refusal's leader hint.

gRPC reconnects a channel's connection with its own backoff (1 s growing to 120 s, by default)
and shares connections between channels to the same target, so a master that was unreachable
a while ago (a killed leader restarted as a standby, later elected) would refuse a caller for
a second or more after it is back. Callers retry with their own backoff; gRPC's is kept short.
A received message may be up to 64 MiB instead of gRPC's 4 MiB: a large but valid message
(a task with a big command or environment, offers with many attributes, a reconciliation
answer) must never break a stream.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
import grpc.aio

from mesos_values.addresses import HostPort, parse_host_port

CLIENT_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 2000),
    ("grpc.max_receive_message_length", 64 * 2**20),
)

LEADER_METADATA_KEY = "mesos-leader"
"""Trailing metadata of an UNAVAILABLE answer from a master that does not lead: the leader's
`host:port`, when it knows one."""

STREAM_ID_METADATA_KEY = "mesos-stream-id"
"""Initial metadata of a scheduler's subscription, and metadata every later call of that
subscription carries."""


def leader_hint(error: grpc.aio.AioRpcError) -> HostPort | None:
    """The leader a master that does not lead named in its UNAVAILABLE answer; None when it
    named none (or one that does not parse)."""
    if error.code() != grpc.StatusCode.UNAVAILABLE:
        return None
    text = metadata_value(error.trailing_metadata(), LEADER_METADATA_KEY)
    if not text:
        return None
    try:
        return parse_host_port(text, what="leader")
    except ValueError:
        return None


def unreachable(error: grpc.aio.AioRpcError) -> bool:
    """UNAVAILABLE from gRPC itself (no connection, or the connection broke), not from a
    master that answered that it does not lead (those name the leader, or an empty one)."""
    return (
        error.code() == grpc.StatusCode.UNAVAILABLE
        and metadata_value(error.trailing_metadata(), LEADER_METADATA_KEY) is None
    )


def metadata_value(metadata: Iterable[tuple[str, Any]] | None, key: str) -> str | None:
    """The text of `key` in gRPC metadata; None when it is absent."""
    for name, value in metadata or ():
        if name == key:
            return value.decode() if isinstance(value, bytes) else str(value)
    return None
