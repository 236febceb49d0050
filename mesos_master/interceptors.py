"""The one interceptor chain every gRPC call of the master passes through.

Authentication and authorisation of principals plug in as `CallPolicy` objects: each sees the
method name and the call's metadata and may refuse the call with a reason. Refusals reach the
caller as UNAUTHENTICATED or PERMISSION_DENIED with that reason.

A request message that does not parse (garbage bytes) reaches the caller as INVALID_ARGUMENT
naming the message type, instead of grpc.aio's UNKNOWN: every handler decodes it to an
`Undecodable` that its behaviour refuses.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias

import grpc
import structlog
from google.protobuf.message import DecodeError

log = structlog.get_logger("mesos_master.grpc")

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


class CallRefused(Exception):
    """Raised by a policy to refuse a call."""

    def __init__(self, message: str, *, authenticated: bool = True) -> None:
        super().__init__(message)
        self.message = message
        self.code = (
            grpc.StatusCode.PERMISSION_DENIED if authenticated else grpc.StatusCode.UNAUTHENTICATED
        )


class CallPolicy(Protocol):
    """A check applied to every call before it reaches a servicer."""

    def check(self, method: str, metadata: Sequence[tuple[str, str | bytes]]) -> None:
        """Raise CallRefused to refuse the call."""
        ...


class PolicyInterceptor(grpc.aio.ServerInterceptor):
    """Runs every policy, in order, on each call; logs each call at debug level; has a request
    that does not parse refused with INVALID_ARGUMENT (`_decoding_handler`)."""

    def __init__(self, policies: Sequence[CallPolicy]) -> None:
        self._policies = tuple(policies)
        # method -> (its handler, that handler decoding tolerantly): made once, not per call
        self._decoding: dict[str, tuple[Handler, Handler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        known = self._decoding.get(method)
        if known is None or known[0] is not handler:
            known = self._decoding[method] = (handler, _decoding_handler(handler))
        handler = known[1]
        log.debug("grpc call", method=method)
        metadata = tuple(handler_call_details.invocation_metadata or ())
        for policy in self._policies:
            try:
                policy.check(method, metadata)
            except CallRefused as refusal:
                log.info("grpc call refused", method=method, reason=refusal.message)
                return _refusing_handler(handler, refusal)
        return handler


@dataclass(frozen=True)
class Undecodable:
    """What a request that does not parse decodes to: why, for the INVALID_ARGUMENT."""

    reason: str


def interceptor_chain(policies: Sequence[CallPolicy] = ()) -> list[grpc.aio.ServerInterceptor]:
    """The master's interceptors, in the order calls pass through them."""
    return [PolicyInterceptor(policies)]


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """`deserializer` returning `Undecodable` instead of raising DecodeError."""
    if deserializer is None:
        return None
    decode = deserializer

    def tolerant(raw: bytes) -> Any:
        try:
            return decode(raw)
        except DecodeError as error:
            return Undecodable(f"the request is not a valid message: {error}")

    return tolerant


async def _refuse_undecodable(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
    if isinstance(request, Undecodable):
        log.info("grpc request refused", reason=request.reason)
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.reason)


def _decoding_handler(handler: Handler) -> Handler:
    """`handler` decoding with `_tolerant` and refusing every `Undecodable` request."""
    behaviours: Any = handler  # the stubs type behaviours as synchronous; the master's are not
    codecs = {
        "request_deserializer": _tolerant(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        unary_unary = behaviours.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await _refuse_undecodable(request, context)
            return await unary_unary(request, context)

        return grpc.unary_unary_rpc_method_handler(unary, **codecs)
    if handler.unary_stream is not None:
        unary_stream = behaviours.unary_stream

        async def streaming(
            request: Any, context: grpc.aio.ServicerContext[Any, Any]
        ) -> AsyncIterator[Any]:
            await _refuse_undecodable(request, context)
            async for response in unary_stream(request, context):
                yield response
                del response  # not held while waiting for the next

        return grpc.unary_stream_rpc_method_handler(streaming, **codecs)

    async def checked(
        requests: AsyncIterable[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for request in requests:
            if type(request) is Undecodable:  # no coroutine per message (the stream's hot path)
                await _refuse_undecodable(request, context)
            yield request
            del request  # not held while waiting for the next

    if handler.stream_unary is not None:
        stream_unary = behaviours.stream_unary

        async def gathering(requests: AsyncIterable[Any],
                            context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            return await stream_unary(checked(requests, context), context)

        return grpc.stream_unary_rpc_method_handler(gathering, **codecs)
    stream_stream = behaviours.stream_stream

    async def bidirectional(
        requests: AsyncIterable[Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        async for response in stream_stream(checked(requests, context), context):
            yield response
            del response

    return grpc.stream_stream_rpc_method_handler(bidirectional, **codecs)


def _refusing_handler(handler: Handler, refusal: CallRefused) -> Handler:
    """A handler of the same shape as `handler` that aborts with the refusal."""

    async def unary(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort(refusal.code, refusal.message)

    async def streaming(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        await context.abort(refusal.code, refusal.message)
        yield  # pragma: no cover - abort raises

    codecs = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(unary, **codecs)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(streaming, **codecs)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(unary, **codecs)
    return grpc.stream_stream_rpc_method_handler(streaming, **codecs)
