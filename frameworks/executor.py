"""Custom executors: subclass `Executor`, run it with an `ExecutorDriver`.

    agent (ExecutorLink.Subscribe stream) ──▶ connection task ──▶ inbox ──▶ dispatcher ──▶ callbacks
    send_status_update() / send_framework_message() ──▶ stream outbox ──▶ writer ──▶ agent
    status updates stay in `unacknowledged` until the agent's ACKNOWLEDGED event, and are
    re-sent in SUBSCRIBE after a reconnect (the agent drops duplicates by uuid)

The agent starts the executor process with `MESOS_AGENT_ENDPOINT`, `MESOS_FRAMEWORK_ID`,
`MESOS_EXECUTOR_ID`, `MESOS_AGENT_ID`, `MESOS_SANDBOX` and `MESOS_DIRECTORY` (and
`MESOS_RECOVERY_TIMEOUT`: how long to keep trying while the agent restarts), and
`MESOS_EXECUTOR_AUTHENTICATION_TOKEN`, the secret the driver subscribes with (metadata
`authorization: Bearer <token>`); the driver takes it out of `os.environ` so that processes
the executor starts do not inherit it. A refused token is fatal (`Executor.error`). Like
`SchedulerDriver`: started from plain code the driver runs its loop on a background thread and
`join()`/`run()` block; inside a running loop use `await driver.start()` and
`await driver.join()`. Driver methods may be called from callbacks or from any thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc

from frameworks._lifecycle import DriverLifecycle, DriverStatus
from frameworks._logging import sdk_logger
from mesos_runtime.backoff import Backoff
from mesos_runtime.flags import parse_duration
from mesos_runtime.tasks import cancel_and_wait
from mesos_security.tls import open_channel, tls_from_environment
from protos import executor_pb2, executor_pb2_grpc, mesos_pb2

__all__ = ["Executor", "ExecutorDriver"]

Call = executor_pb2.Call
Event = executor_pb2.Event

_REQUIRED_ENV = ("MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID")
_TOKEN_ENV = "MESOS_EXECUTOR_AUTHENTICATION_TOKEN"
_REFUSED = (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED)
_DEFAULT_RECOVERY_TIMEOUT = 900.0
_STOP_FLUSH_TIMEOUT = 5.0


class Executor:
    """Callbacks of a custom executor; each may be a plain function or `async def`.

    Callbacks run one at a time on the driver's loop, in the order the agent sent the events,
    so a long-running callback delays the next one: start long work elsewhere.
    """

    def registered(
        self,
        driver: ExecutorDriver,
        executor_info: mesos_pb2.ExecutorInfo,
        framework_info: mesos_pb2.FrameworkInfo,
        agent_info: mesos_pb2.AgentInfo,
    ) -> Awaitable[None] | None:
        """The executor subscribed with its agent for the first time."""
        return None

    def reregistered(
        self, driver: ExecutorDriver, agent_info: mesos_pb2.AgentInfo
    ) -> Awaitable[None] | None:
        """The executor subscribed again after losing its agent (e.g. an agent restart)."""
        return None

    def disconnected(self, driver: ExecutorDriver) -> Awaitable[None] | None:
        """The stream to the agent broke; the driver is reconnecting."""
        return None

    def launch_task(
        self, driver: ExecutorDriver, task: mesos_pb2.TaskInfo
    ) -> Awaitable[None] | None:
        """Run `task`; report its progress with `driver.send_status_update`."""
        return None

    def kill_task(
        self, driver: ExecutorDriver, task_id: mesos_pb2.TaskID
    ) -> Awaitable[None] | None:
        """Kill a task and report TASK_KILLED."""
        return None

    def framework_message(self, driver: ExecutorDriver, data: bytes) -> Awaitable[None] | None:
        """A message from the scheduler."""
        return None

    def shutdown(self, driver: ExecutorDriver) -> Awaitable[None] | None:
        """Kill every task: the agent kills the executor after its grace period."""
        return None

    def error(self, driver: ExecutorDriver, message: str) -> Awaitable[None] | None:
        """A fatal error; the driver aborts after this callback."""
        return None


@dataclass(frozen=True, slots=True)
class _Disconnected:
    pass


@dataclass(frozen=True, slots=True)
class _Fatal:
    message: str


_InboxItem = Event | _Disconnected | _Fatal


class ExecutorDriver(DriverLifecycle):
    """Connects an `Executor` to the agent that launched it (see the module docstring).

    `environment` defaults to `os.environ`; a missing variable raises ValueError.
    """

    _kind = "executor"

    def __init__(
        self, executor: Executor, *, environment: Mapping[str, str] | None = None
    ) -> None:
        env = os.environ if environment is None else environment
        missing = [name for name in _REQUIRED_ENV if not env.get(name)]
        if missing:
            raise ValueError(
                f"ExecutorDriver needs {', '.join(missing)} in the environment "
                "(the agent sets them when it launches an executor)"
            )
        super().__init__()
        self.executor = executor
        self.agent_endpoint = env["MESOS_AGENT_ENDPOINT"]
        self._tls = tls_from_environment(env)  # LIBPROCESS_SSL_*: the agent sets them
        self.framework_id = mesos_pb2.FrameworkID(value=env["MESOS_FRAMEWORK_ID"])
        self.executor_id = mesos_pb2.ExecutorID(value=env["MESOS_EXECUTOR_ID"])
        self.agent_id = mesos_pb2.AgentID(value=env.get("MESOS_AGENT_ID", ""))
        token = env.get(_TOKEN_ENV, "")
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        if environment is None:
            os.environ.pop(_TOKEN_ENV, None)
        self.sandbox = env.get("MESOS_SANDBOX") or env.get("MESOS_DIRECTORY") or os.getcwd()
        self.recovery_timeout = (
            parse_duration(env["MESOS_RECOVERY_TIMEOUT"])
            if env.get("MESOS_RECOVERY_TIMEOUT")
            else _DEFAULT_RECOVERY_TIMEOUT
        )
        self._backoff_cap = 2.0
        self._inbox: asyncio.Queue[_InboxItem] = asyncio.Queue()
        self._stream: asyncio.Queue[Call] | None = None
        self._stop_requested = asyncio.Event()
        self._acknowledged = asyncio.Event()
        self._subscribed_once = False
        self._unacknowledged: dict[bytes, mesos_pb2.TaskStatus] = {}
        self._unacknowledged_tasks: dict[str, mesos_pb2.TaskInfo] = {}
        self._log = sdk_logger("frameworks.executor").bind(
            framework_id=self.framework_id.value, executor_id=self.executor_id.value
        )

    # ----------------------------------------------------------------- lifecycle

    @property
    def unacknowledged(self) -> list[mesos_pb2.TaskStatus]:
        """Status updates sent but not yet acknowledged by the agent."""
        return list(self._unacknowledged.values())

    def stop(self) -> DriverStatus:
        """Stop once pending status updates are acknowledged (or after a few seconds)."""
        return self._end(DriverStatus.STOPPED, self._stop_requested.set)

    def abort(self) -> DriverStatus:
        """Stop at once; unacknowledged updates are left to the agent's recovery."""
        return self._end(DriverStatus.ABORTED, self._finished.set)

    # ------------------------------------------------------------------- calls

    def send_status_update(self, status: mesos_pb2.TaskStatus) -> DriverStatus:
        """Send a task's status; a fresh uuid, the timestamp (when unset), the source and the
        executor and agent ids are filled in. Kept until the agent acknowledges it."""
        if self._status is not DriverStatus.RUNNING:
            self._log.warning("status update ignored: the driver is not running",
                              task_id=status.task_id.value)
            return self._status
        update = mesos_pb2.TaskStatus()
        update.CopyFrom(status)
        update.uuid = uuid.uuid4().bytes
        update.source = mesos_pb2.TaskStatus.SOURCE_EXECUTOR
        update.executor_id.CopyFrom(self.executor_id)
        if self.agent_id.value:
            update.agent_id.CopyFrom(self.agent_id)
        if not update.timestamp:
            update.timestamp = time.time()
        self._on_loop(self._queue_update, update)
        return DriverStatus.RUNNING

    def send_framework_message(self, data: bytes) -> DriverStatus:
        """Send `data` to the scheduler (best effort, like Mesos)."""
        if self._status is not DriverStatus.RUNNING:
            return self._status
        self._on_loop(self._send, self._call(Call.MESSAGE, message=Call.Message(data=data)))
        return DriverStatus.RUNNING

    # ----------------------------------------------------------------- internals

    def _call(self, call_type: Call.Type.ValueType, **fields: Any) -> Call:
        return Call(
            type=call_type, framework_id=self.framework_id, executor_id=self.executor_id, **fields
        )

    def _queue_update(self, update: mesos_pb2.TaskStatus) -> None:
        self._unacknowledged[update.uuid] = update
        self._acknowledged.clear()
        self._log.info("sending status update", task_id=update.task_id.value,
                       state=mesos_pb2.TaskState.Name(update.state))
        self._send(self._call(Call.UPDATE, update=Call.Update(status=update)))

    def _send(self, call: Call) -> None:
        if self._stream is not None:
            self._stream.put_nowait(call)
        elif call.type == Call.MESSAGE:
            self._log.warning("framework message dropped: not subscribed to the agent")

    async def _stop_when_requested(self) -> None:
        await self._stop_requested.wait()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_STOP_FLUSH_TIMEOUT):
                await self._wait_acknowledged()
        self._finished.set()

    async def _wait_acknowledged(self) -> None:
        while self._unacknowledged:
            await self._acknowledged.wait()
            self._acknowledged.clear()

    async def _run(self) -> None:
        await self._run_workers({
            "executor-connection": self._connection_loop,
            "executor-dispatcher": self._dispatch_loop,
            "executor-stop": self._stop_when_requested,
        })

    async def _connection_loop(self) -> None:
        backoff = Backoff(0.05, self._backoff_cap, jitter=0.5)
        lost_since: float | None = None
        while True:
            subscribed = False
            try:
                subscribed = await self._connect(backoff)
            except grpc.aio.AioRpcError as exc:
                if exc.code() in _REFUSED:
                    self._inbox.put_nowait(_Fatal(
                        f"the agent refused this executor: {exc.code().name}: {exc.details()}"
                    ))
                    return
                self._log.info("agent connection failed", endpoint=self.agent_endpoint,
                               error=f"{exc.code().name}: {exc.details()}")
            if subscribed:
                lost_since = None
                self._inbox.put_nowait(_Disconnected())
            now = time.monotonic()
            lost_since = now if lost_since is None else lost_since
            if now - lost_since > self.recovery_timeout:
                self._inbox.put_nowait(_Fatal(
                    f"could not reach the agent at {self.agent_endpoint} within the recovery "
                    f"timeout ({self.recovery_timeout:g}s)"
                ))
                return
            await asyncio.sleep(backoff.next_delay())

    async def _connect(self, backoff: Backoff) -> bool:
        """One subscription; returns whether it got as far as SUBSCRIBED."""
        subscribed = False
        async with open_channel(self.agent_endpoint, self._tls) as channel:
            stub = executor_pb2_grpc.ExecutorLinkStub(channel)
            call = stub.Subscribe(metadata=self._metadata)
            await call.write(self._call(
                Call.SUBSCRIBE,
                subscribe=Call.Subscribe(
                    unacknowledged_tasks=list(self._unacknowledged_tasks.values()),
                    unacknowledged_updates=list(self._unacknowledged.values()),
                ),
            ))
            stream: asyncio.Queue[Call] = asyncio.Queue()
            writer: asyncio.Task[None] | None = None
            try:
                while (event := await call.read()) is not grpc.aio.EOF:
                    assert isinstance(event, Event)
                    if event.type == Event.SUBSCRIBED and not subscribed:
                        subscribed = True
                        backoff.reset()
                        if event.subscribed.agent_info.id.value:
                            self.agent_id.CopyFrom(event.subscribed.agent_info.id)
                        self._stream = stream
                        writer = asyncio.create_task(self._write(call, stream))
                    elif event.type == Event.ACKNOWLEDGED:
                        self._unacknowledged.pop(event.acknowledged.uuid, None)
                        self._unacknowledged_tasks.pop(event.acknowledged.task_id.value, None)
                        self._acknowledged.set()
                        continue
                    elif event.type == Event.LAUNCH:
                        self._unacknowledged_tasks[event.launch.task.task_id.value] = (
                            event.launch.task
                        )
                    self._inbox.put_nowait(event)
            finally:
                self._stream = None
                if writer is not None:
                    with contextlib.suppress(grpc.aio.AioRpcError):
                        await cancel_and_wait(writer)
        return subscribed

    async def _write(
        self,
        call: grpc.aio.StreamStreamCall[Call, Event],
        stream: asyncio.Queue[Call],
    ) -> None:
        while True:
            await call.write(await stream.get())

    async def _dispatch_loop(self) -> None:
        executor = self.executor
        while True:
            item = await self._inbox.get()
            if isinstance(item, _Disconnected):
                await self._callback("disconnected", executor.disconnected, self)
            elif isinstance(item, _Fatal):
                await self._callback("error", executor.error, self, item.message)
                self.abort()
            elif item.type == Event.SUBSCRIBED:
                info = item.subscribed
                if self._subscribed_once:
                    await self._callback("reregistered", executor.reregistered, self,
                                         info.agent_info)
                else:
                    self._subscribed_once = True
                    await self._callback("registered", executor.registered, self,
                                         info.executor_info, info.framework_info,
                                         info.agent_info)
            elif item.type == Event.LAUNCH:
                await self._callback("launch_task", executor.launch_task, self, item.launch.task)
            elif item.type == Event.KILL:
                await self._callback("kill_task", executor.kill_task, self, item.kill.task_id)
            elif item.type == Event.MESSAGE:
                await self._callback("framework_message", executor.framework_message, self,
                                     item.message.data)
            elif item.type == Event.SHUTDOWN:
                await self._callback("shutdown", executor.shutdown, self)
                self.stop()
            elif item.type == Event.ERROR:
                await self._callback("error", executor.error, self, item.error.message)
                self.abort()
