"""The one interceptor chain every gRPC call of the master passes through.

Authentication and authorisation of principals plug in as `CallPolicy` objects: each sees the
method name and the call's metadata and may refuse the call with a reason. Refusals reach the
caller as UNAUTHENTICATED or PERMISSION_DENIED with that reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeAlias

import grpc
import structlog

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
    """Runs every policy, in order, on each call; logs each call at debug level."""

    def __init__(self, policies: Sequence[CallPolicy]) -> None:
        self._policies = tuple(policies)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        log.debug("grpc call", method=method)
        metadata = tuple(handler_call_details.invocation_metadata or ())
        for policy in self._policies:
            try:
                policy.check(method, metadata)
            except CallRefused as refusal:
                log.info("grpc call refused", method=method, reason=refusal.message)
                return _refusing_handler(handler, refusal)
        return handler


def interceptor_chain(policies: Sequence[CallPolicy] = ()) -> list[grpc.aio.ServerInterceptor]:
    """The master's interceptors, in the order calls pass through them."""
    return [PolicyInterceptor(policies)]


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
