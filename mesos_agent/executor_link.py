"""`ExecutorLink.Subscribe` (protos/executor.proto): the agent's side of a custom executor's stream.

One stream per subscribed executor: this handler yields the events the agent queues for the
executor, while a reader task (owned and awaited here) hands the executor's calls to the agent.

Executors authenticate (always): the agent gives each executor container a random token
(`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`), and a SUBSCRIBE must carry it as gRPC metadata
`authorization: Bearer <token>`; without it the call ends UNAUTHENTICATED, with another token
(another executor's) PERMISSION_DENIED. The stream is then bound to the executor it subscribed
as: later calls claiming other ids are dropped.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator, Iterable
from typing import Protocol

import grpc
import structlog

from mesos_runtime.tasks import cancel_and_wait
from protos import executor_pb2, executor_pb2_grpc, mesos_pb2

log = structlog.get_logger("mesos_agent.executor_link")

Outbox = asyncio.Queue[executor_pb2.Event | None]
"""Events for one executor stream; None closes the stream."""


class ExecutorRegistry(Protocol):
    """What the servicer needs from the agent (its `ExecutorSupervisor`)."""

    def executor_token(self, framework_id: str, executor_id: str) -> str | None: ...

    def executor_subscribed(self, call: executor_pb2.Call, outbox: Outbox) -> str | None: ...

    def executor_disconnected(self, framework_id: str, executor_id: str, outbox: Outbox) -> None:
        ...

    def executor_update(
        self, framework_id: str, executor_id: str, status: mesos_pb2.TaskStatus
    ) -> None: ...

    def executor_message(self, framework_id: str, executor_id: str, data: bytes) -> None: ...


def bearer_token(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The token of an `authorization: Bearer <token>` metadata entry, else None."""
    for key, value in metadata or ():
        if key.lower() != "authorization" or not isinstance(value, str):
            continue
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
    return None


def token_refusal(expected: str, presented: str | None) -> tuple[grpc.StatusCode, str] | None:
    """Why a subscription presenting `presented` is refused when `expected` is the executor's
    token (compared in constant time); None when it is accepted. An empty `expected` (an
    executor launched by an agent version that gave none) accepts any."""
    if not expected:
        return None
    if presented is None:
        return (grpc.StatusCode.UNAUTHENTICATED,
                "executors authenticate with their MESOS_EXECUTOR_AUTHENTICATION_TOKEN "
                "(metadata 'authorization: Bearer <token>')")
    if not hmac.compare_digest(expected.encode(), presented.encode()):
        return (grpc.StatusCode.PERMISSION_DENIED,
                "the token is not the one of the executor this call claims to be")
    return None


def _error(message: str) -> executor_pb2.Event:
    return executor_pb2.Event(
        type=executor_pb2.Event.ERROR, error=executor_pb2.Event.Error(message=message)
    )


class ExecutorLinkServicer(executor_pb2_grpc.ExecutorLinkServicer):
    """Serves custom executors for one agent."""

    def __init__(self, registry: ExecutorRegistry, recovered: asyncio.Event) -> None:
        """`recovered` is set once the agent took back its checkpointed executors: until
        then a re-subscribing executor would be unknown."""
        self._registry = registry
        self._recovered = recovered

    async def Subscribe(
        self,
        request_iterator: AsyncIterator[executor_pb2.Call],
        context: grpc.aio.ServicerContext[executor_pb2.Call, executor_pb2.Event],
    ) -> AsyncIterator[executor_pb2.Event]:
        calls = request_iterator.__aiter__()
        try:
            first = await anext(calls)
        except StopAsyncIteration:
            return
        if first.type != executor_pb2.Call.SUBSCRIBE:
            yield _error("the first call must be SUBSCRIBE")
            return
        await self._recovered.wait()
        framework_id, executor_id = first.framework_id.value, first.executor_id.value
        expected = self._registry.executor_token(framework_id, executor_id)
        if expected is not None:  # an unknown executor is refused below, as before
            if not expected:
                log.warning("executor launched by an older agent subscribes without a token",
                            framework_id=framework_id, executor_id=executor_id)
            denied = token_refusal(expected, bearer_token(context.invocation_metadata()))
            if denied is not None:
                code, message = denied
                log.warning("refusing executor subscription", framework_id=framework_id,
                            executor_id=executor_id, code=code.name, peer=context.peer())
                await context.abort(code, message)
        outbox: Outbox = asyncio.Queue()
        refusal = self._registry.executor_subscribed(first, outbox)
        if refusal is not None:
            log.warning("refusing executor subscription", reason=refusal)
            yield _error(refusal)
            return
        reader = asyncio.create_task(self._read(calls, framework_id, executor_id, outbox))
        try:
            while (event := await outbox.get()) is not None:
                yield event
        finally:
            await cancel_and_wait(reader)
            self._registry.executor_disconnected(framework_id, executor_id, outbox)

    async def _read(
        self,
        calls: AsyncIterator[executor_pb2.Call],
        framework_id: str,
        executor_id: str,
        outbox: Outbox,
    ) -> None:
        try:
            async for call in calls:
                if (call.framework_id.value, call.executor_id.value) != (
                        framework_id, executor_id):
                    log.warning("dropping a call for another executor than the stream's",
                                framework_id=framework_id, executor_id=executor_id,
                                claimed_framework_id=call.framework_id.value,
                                claimed_executor_id=call.executor_id.value)
                elif call.type == executor_pb2.Call.UPDATE:
                    self._registry.executor_update(framework_id, executor_id, call.update.status)
                elif call.type == executor_pb2.Call.MESSAGE:
                    self._registry.executor_message(framework_id, executor_id, call.message.data)
                else:
                    log.warning("ignoring executor call",
                                type=executor_pb2.Call.Type.Name(call.type),
                                framework_id=framework_id, executor_id=executor_id)
        except grpc.aio.AioRpcError:
            pass
        finally:
            outbox.put_nowait(None)
