"""The scheduler side of `protos/scheduler.proto` over gRPC.

    GrpcTransport(address).subscribe(SUBSCRIBE) ─▶ Subscription (stream id + event reader)
    GrpcTransport(address).send(call, stream_id)   (metadata `mesos-stream-id`)

gRPC failures become `CallError`s carrying the status code name and, for a non-leading
master, the leader it named in the `mesos-leader` trailing metadata.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio

from mesos_runtime.channels import (
    CLIENT_CHANNEL_OPTIONS,
    STREAM_ID_METADATA_KEY,
    leader_hint,
    metadata_value,
    unreachable,
)
from mesos_security.credentials import AUTHORIZATION_KEY, Credential, basic_authorization
from mesos_security.tls import TlsConfig, open_channel
from mesos_values.addresses import HostPort
from protos import scheduler_pb2, scheduler_pb2_grpc

# Codes after which the same call may succeed later (or on the next subscription).
_TRANSIENT = frozenset({
    "UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED", "RESOURCE_EXHAUSTED", "ABORTED",
    "INTERNAL", "UNKNOWN",
})


class CallError(Exception):
    """A failed Subscribe or Send: the gRPC status code name, the master's message, the
    leader a non-leading master named (None if it named none), and whether the master could
    not be reached at all."""

    def __init__(
        self, code: str, message: str, *, leader: HostPort | None = None,
        unreachable: bool = False,
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.leader = leader
        self.unreachable = unreachable

    def retryable(self, *, subscribing: bool) -> bool:
        """Whether retrying may help. A Send refused with PERMISSION_DENIED used a stale stream
        id and succeeds after re-subscribing; a refused Subscribe is final."""
        if self.code in _TRANSIENT:
            return True
        return not subscribing and self.code == "PERMISSION_DENIED"


def call_error(error: grpc.aio.AioRpcError) -> CallError:
    """Translate a gRPC failure, picking up the leader a non-leading master named."""
    return CallError(
        error.code().name, error.details() or "",
        leader=leader_hint(error), unreachable=unreachable(error),
    )


class Subscription:
    """An open event stream."""

    def __init__(self, call: Any, stream_id: str) -> None:
        self._call = call
        self.stream_id = stream_id

    async def next_event(self) -> scheduler_pb2.Event | None:
        """The next event, or None when the master ended the stream; raises CallError."""
        try:
            event = await self._call.read()
        except grpc.aio.AioRpcError as exc:
            raise call_error(exc) from None
        if event is grpc.aio.EOF:
            return None
        assert isinstance(event, scheduler_pb2.Event)
        return event

    def cancel(self) -> None:
        """Close the stream from this side."""
        self._call.cancel()


async def _stream_id(stream: Any) -> str:
    try:
        stream_id = metadata_value(await stream.initial_metadata(), STREAM_ID_METADATA_KEY)
        if not stream_id:
            # A refused subscription carries no stream id; reading surfaces the refusal.
            await stream.read()
            raise CallError("INTERNAL", f"the master sent no {STREAM_ID_METADATA_KEY} metadata")
    except grpc.aio.AioRpcError as exc:
        raise call_error(exc) from None
    return stream_id


class GrpcTransport:
    """A gRPC channel to one master."""

    def __init__(self, address: HostPort, *, send_timeout: float = 10.0,
                 tls: TlsConfig | None = None,
                 credential: Credential | None = None) -> None:
        self.address = address
        self._tls = tls
        # Sent with every call: the master authenticates each one (ADR 0013).
        self._authorization: tuple[tuple[str, str], ...] = (
            ((AUTHORIZATION_KEY, basic_authorization(credential)),) if credential else ())
        self._send_timeout = send_timeout
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None  # the generated gRPC stubs are untyped

    def _connect(self) -> Any:
        if self._stub is None:
            self._channel = open_channel(str(self.address), self._tls, CLIENT_CHANNEL_OPTIONS)
            stub_class: Any = scheduler_pb2_grpc.SchedulerStub
            self._stub = stub_class(self._channel)
        return self._stub

    async def subscribe(self, call: scheduler_pb2.Call) -> Subscription:
        """Open the event stream; raises CallError."""
        stream = self._connect().Subscribe(call, metadata=self._authorization)
        try:
            stream_id = await _stream_id(stream)
        except BaseException:
            # Refused, timed out or cancelled: do not leave the subscription open on the master.
            stream.cancel()
            raise
        return Subscription(stream, stream_id)

    async def send(self, call: scheduler_pb2.Call, stream_id: str) -> None:
        """Send one call on behalf of stream `stream_id`; raises CallError."""
        try:
            await self._connect().Send(
                call, metadata=((STREAM_ID_METADATA_KEY, stream_id), *self._authorization),
                timeout=self._send_timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise call_error(exc) from None

    async def close(self) -> None:
        """Release the connection."""
        if self._channel is not None:
            await self._channel.close()
        self._channel = None
        self._stub = None
