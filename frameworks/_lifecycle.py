"""The lifecycle both SDK drivers share: where the driver's loop runs and how callers wait.

    start() ── inside a running loop ──▶ task of that loop ─┐
            └─ from plain code ──▶ thread with its own loop ─┴─▶ _main() ──▶ _run() ──▶ _done
    join()  ── plain code: blocks on _done ; inside a loop: a coroutine awaiting _done
    stop() / abort() / calls from any thread ──▶ _on_loop() ──▶ the driver's loop

A driver subclasses `DriverLifecycle`, implements `_run` (usually `_run_workers` over its
tasks, which end when `_finished` is set) and `abort`, and keeps its own protocol and calls.
"""

from __future__ import annotations

import abc
import asyncio
import concurrent.futures
import contextlib
import enum
import inspect
import threading
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from typing import Any, ClassVar

from structlog.typing import FilteringBoundLogger

__all__ = ["DriverLifecycle", "DriverStatus"]


class DriverStatus(enum.Enum):
    """The driver's state, as Mesos names it. Members are awaitable (they resolve to
    themselves), so `await driver.start()` and `driver.start()` both work."""

    NOT_STARTED = "DRIVER_NOT_STARTED"
    RUNNING = "DRIVER_RUNNING"
    ABORTED = "DRIVER_ABORTED"
    STOPPED = "DRIVER_STOPPED"

    def __await__(self) -> Generator[Any, None, DriverStatus]:
        return _resolved(self).__await__()


async def _resolved(status: DriverStatus) -> DriverStatus:
    return status


def _in_running_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class DriverLifecycle(abc.ABC):
    """Start, join, run and status bookkeeping for a driver whose work runs on one loop.

    `_kind` ("scheduler", "executor") names the driver's thread, task and log events;
    subclasses set `_log` in their constructor.
    """

    _kind: ClassVar[str]
    _log: FilteringBoundLogger

    def __init__(self) -> None:
        self._status = DriverStatus.NOT_STARTED
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._done: concurrent.futures.Future[DriverStatus] = concurrent.futures.Future()
        self._finished = asyncio.Event()

    @property
    def status(self) -> DriverStatus:
        """The driver's current status."""
        return self._status

    def start(self) -> DriverStatus:
        """Start the driver; returns RUNNING (awaitable, so `await driver.start()` works).

        Inside a running event loop the driver runs as a task of that loop; otherwise it runs
        on a background thread with its own loop. Starting twice returns the current status.
        """
        if self._status is not DriverStatus.NOT_STARTED:
            return self._status
        self._status = DriverStatus.RUNNING
        name = f"{self._kind}-driver"
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._run_thread, name=name, daemon=True)
            self._thread.start()
        else:
            self._loop = running
            self._task = running.create_task(self._main(), name=name)
        return DriverStatus.RUNNING

    def join(self) -> DriverStatus | Coroutine[Any, Any, DriverStatus]:
        """Wait until the driver is stopped or aborted and return its final status.

        Blocks in plain code; inside a running event loop returns a coroutine to await.
        Raises if the driver itself crashed.
        """
        if self._status is DriverStatus.NOT_STARTED:
            return DriverStatus.NOT_STARTED
        if _in_running_loop():
            return self._join_async()
        return self._join_blocking()

    def run(self) -> DriverStatus:
        """`start()` then `join()`, blocking; for plain scripts. Ctrl-C aborts the driver."""
        if _in_running_loop():
            raise RuntimeError(
                f"{type(self).__name__}.run() blocks; inside an event loop use "
                "`await driver.start()` and `await driver.join()`"
            )
        self.start()
        try:
            return self._join_blocking()
        except KeyboardInterrupt:
            self.abort()
            self._join_blocking()
            raise

    @abc.abstractmethod
    def abort(self) -> DriverStatus:
        """Stop at once (what is dropped depends on the driver)."""

    @abc.abstractmethod
    async def _run(self) -> None:
        """The driver's work; returns once `_finished` is set."""

    def _end(
        self, status: DriverStatus, function: Callable[..., object], *args: Any
    ) -> DriverStatus:
        """Move a running driver to `status` (STOPPED or ABORTED) and run `function(*args)`
        on its loop to make it so; any other driver keeps (and returns) its status."""
        if self._status is not DriverStatus.RUNNING:
            return self._status
        self._status = status
        self._on_loop(function, *args)
        return status

    def _on_loop(self, function: Callable[..., object], *args: Any) -> None:
        """Run `function(*args)` on the driver's loop: now if we are on it, else soon."""
        loop = self._loop
        if loop is None or self._done.done():
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            function(*args)
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: driver is done
            loop.call_soon_threadsafe(function, *args)

    def _run_thread(self) -> None:
        loop = self._loop
        assert loop is not None
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def _join_blocking(self) -> DriverStatus:
        status = self._done.result()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        return status

    async def _join_async(self) -> DriverStatus:
        task = self._task
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            await asyncio.shield(task)
        return await asyncio.wrap_future(self._done)

    async def _main(self) -> None:
        try:
            await self._run()
        except asyncio.CancelledError:
            self._status = DriverStatus.ABORTED
            self._done.set_result(DriverStatus.ABORTED)
            raise
        except Exception as exc:
            self._log.exception(f"{self._kind} driver crashed")
            self._status = DriverStatus.ABORTED
            self._done.set_exception(exc)
        else:
            self._done.set_result(self._status)

    async def _run_workers(
        self, workers: Mapping[str, Callable[[], Coroutine[Any, Any, None]]]
    ) -> None:
        """Run each worker as a named task of one TaskGroup until `_finished` is set, then
        cancel them; a worker that raises ends the group (and the driver) with its error."""
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(worker(), name=name) for name, worker in workers.items()]
            await self._finished.wait()
            for task in tasks:
                task.cancel()

    async def _callback(
        self, name: str, function: Callable[..., Awaitable[None] | None], *args: Any
    ) -> bool:
        """Call a user callback (plain or async); False if it raised (logged)."""
        try:
            result = function(*args)
            if inspect.isawaitable(result):
                await result
        except Exception:
            self._log.exception(f"{self._kind} callback raised", callback=name)
            return False
        return True
