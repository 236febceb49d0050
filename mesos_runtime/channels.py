"""The gRPC conventions between a master and its clients (agents and schedulers): channel
options and the metadata keys.

gRPC reconnects a channel's connection with its own backoff (1 s growing to 120 s, by default)
and shares connections between channels to the same target, so a master that was unreachable
a while ago (a killed leader restarted as a standby, later elected) would refuse a caller for
a second or more after it is back. Callers retry with their own backoff; gRPC's is kept short.
A received message may be up to 64 MiB instead of gRPC's 4 MiB: a large but valid message
(a task with a big command or environment, offers with many attributes, a reconciliation
answer) must never break a stream.
"""

from __future__ import annotations

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
