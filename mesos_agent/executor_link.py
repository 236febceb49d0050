"""`ExecutorLink.Subscribe` (protos/executor.proto): the agent's side of a custom executor's stream.

One stream per subscribed executor: this handler yields the events the agent queues for the
executor, while a reader task (owned and awaited here) hands the executor's calls to the agent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Protocol

import grpc
import structlog

from protos import executor_pb2, executor_pb2_grpc, mesos_pb2

log = structlog.get_logger("mesos_agent.executor_link")

Outbox = asyncio.Queue[executor_pb2.Event | None]
"""Events for one executor stream; None closes the stream."""


class ExecutorRegistry(Protocol):
    """What the servicer needs from the agent (its `ExecutorSupervisor`)."""

    def executor_subscribed(self, call: executor_pb2.Call, outbox: Outbox) -> str | None: ...

    def executor_disconnected(self, framework_id: str, executor_id: str, outbox: Outbox) -> None:
        ...

    def executor_update(
        self, framework_id: str, executor_id: str, status: mesos_pb2.TaskStatus
    ) -> None: ...

    def executor_message(self, framework_id: str, executor_id: str, data: bytes) -> None: ...


def _error(message: str) -> executor_pb2.Event:
    return executor_pb2.Event(
        type=executor_pb2.Event.ERROR, error=executor_pb2.Event.Error(message=message)
    )


class ExecutorLinkServicer(executor_pb2_grpc.ExecutorLinkServicer):
    """Serves custom executors for one agent."""

    def __init__(self, registry: ExecutorRegistry) -> None:
        self._registry = registry

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
        outbox: Outbox = asyncio.Queue()
        refusal = self._registry.executor_subscribed(first, outbox)
        if refusal is not None:
            log.warning("refusing executor subscription", reason=refusal)
            yield _error(refusal)
            return
        framework_id, executor_id = first.framework_id.value, first.executor_id.value
        reader = asyncio.create_task(self._read(calls, framework_id, executor_id, outbox))
        try:
            while (event := await outbox.get()) is not None:
                yield event
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
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
                if call.type == executor_pb2.Call.UPDATE:
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
