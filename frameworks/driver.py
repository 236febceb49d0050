"""`SchedulerDriver`: connects a `Scheduler` to the leading master.

    scheduler code ── launch_tasks() / decline_offer() / ... ──▶ outbox ──▶ ordered lane ──┐
                   └─ acknowledge_status_update() ──▶ acknowledgements ──▶ ack lane ──────┴▶ Send
    Subscribe stream ──▶ connection task ──▶ inbox ──▶ dispatcher ──▶ Scheduler callbacks
                         (Session: framework id,          (implicit ACKNOWLEDGE goes to the
                          stream id, reconnects)            acknowledgements queue)
    stop() ──▶ both queues (after earlier calls) ──▶ both lanes drained ──▶ TEARDOWN ──▶ done

The ordered lane sends one call at a time, in the order they were made: Mesos' HTTP API
promises no order across separate requests, and neither do concurrent unary gRPC calls (nor
retries), while a scheduler may rely on, say, DECLINE before REVIVE. ACKNOWLEDGE commutes with
every other call, so the ack lane sends acknowledgements concurrently (at most
`_ACKNOWLEDGEMENT_WINDOW` in flight) and never behind an ACCEPT, nor an ACCEPT behind them;
acknowledgements that wait for a free slot leave together, in one call.

The three tasks (the sender runs both lanes) share one `asyncio.TaskGroup` on the driver's
loop. Started from plain code, `start()` runs that loop on a background thread and `join()`
blocks; started inside a running loop, `start()` runs the driver as a task of that loop and
`join()` must be awaited (that lifecycle is `frameworks._lifecycle`, shared with
`ExecutorDriver`). Driver methods may be called from callbacks, from the loop, or from any
other thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from frameworks import _calls
from frameworks._calls import FiltersLike, ReconcileItem
from frameworks._ids import AgentIDLike, ExecutorIDLike, OfferIDLike, TaskIDLike
from frameworks._lifecycle import DriverLifecycle, DriverStatus
from frameworks._logging import sdk_logger
from frameworks._session import Action, Session
from frameworks._transport import CallError, GrpcTransport
from frameworks.scheduler import Scheduler
from mesos_coordination.detector import MasterDetector, create_detector
from mesos_coordination.reconnect import Ended, follow_leader
from mesos_runtime.backlog import MAX_BATCH_MESSAGES, backlog
from mesos_runtime.backoff import Backoff
from mesos_security.credentials import Credential
from mesos_security.tls import TlsConfig, tls_from_environment
from mesos_values.addresses import HostPort
from mesos_values.task_states import TERMINAL_STATES
from protos import mesos_pb2, scheduler_pb2

__all__ = ["DriverStatus", "SchedulerDriver"]

Call = scheduler_pb2.Call
Event = scheduler_pb2.Event

# How many ACKNOWLEDGE calls one driver may have in flight at once.
_ACKNOWLEDGEMENT_WINDOW = 64


@dataclass(frozen=True, slots=True)
class _Stop:
    failover: bool


@dataclass(frozen=True, slots=True)
class _Subscribed:
    first: bool
    framework_id: mesos_pb2.FrameworkID
    master_info: mesos_pb2.MasterInfo


@dataclass(frozen=True, slots=True)
class _Disconnected:
    pass


@dataclass(frozen=True, slots=True)
class _Error:
    message: str
    fatal: bool


_InboxItem = Event | _Subscribed | _Disconnected | _Error


class SchedulerDriver(DriverLifecycle):
    """Runs a `Scheduler` against the master at `master` (`HOST:PORT` or `zk://...`).

    Raises ValueError at construction for a bad master address or framework_info.
    With `implicit_acknowledgements` (the default) each status update that carries a uuid is
    acknowledged once `Scheduler.status_update` returns; otherwise call
    `acknowledge_status_update`. `tls` is how to reach a TLS master (default: Mesos'
    `LIBPROCESS_SSL_*` environment variables, plain TCP without them); `credential`, as in
    Mesos' driver, authenticates the framework (its principal becomes the framework's).
    """

    _kind = "scheduler"

    def __init__(
        self,
        scheduler: Scheduler,
        framework_info: mesos_pb2.FrameworkInfo | Mapping[str, Any],
        master: str = "127.0.0.1:5050",
        *,
        implicit_acknowledgements: bool = True,
        tls: TlsConfig | None = None,
        credential: mesos_pb2.Credential | None = None,
    ) -> None:
        super().__init__()
        self._tls = tls if tls is not None else tls_from_environment()
        self._credential = (
            Credential(credential.principal, credential.secret.decode("utf-8"))
            if credential is not None else None)
        self.scheduler = scheduler
        self.master = master
        self.implicit_acknowledgements = implicit_acknowledgements
        self._framework_info = _calls.framework_info(framework_info)
        self._detector: MasterDetector = create_detector(master)
        self._subscribe_timeout = 10.0
        self._backoff_cap = 2.0
        self._session = Session()
        self._stopping = False
        self._outbox: asyncio.Queue[Call | _Stop] = asyncio.Queue()
        self._acknowledgements: asyncio.Queue[Call | _Stop] = asyncio.Queue()
        self._acknowledgement_window = _ACKNOWLEDGEMENT_WINDOW
        self._inbox: asyncio.Queue[_InboxItem] = asyncio.Queue()
        self._wakeup = asyncio.Event()
        self._transport: GrpcTransport | None = None
        self._log = sdk_logger("frameworks.driver").bind(
            framework=self._framework_info.name
        )

    # ----------------------------------------------------------------- lifecycle

    @property
    def framework_id(self) -> mesos_pb2.FrameworkID | None:
        """The framework's id; None until the first subscription."""
        return self._session.framework_id

    def stop(self, failover: bool = False) -> DriverStatus:
        """Stop after the calls made so far are sent. Without `failover` the framework is torn
        down (TEARDOWN: the master removes it and kills its tasks); with `failover` the driver
        only disconnects, so another scheduler can take over with the same framework id."""
        return self._end(DriverStatus.STOPPED, self._request_stop, failover)

    def abort(self) -> DriverStatus:
        """Stop at once without tearing the framework down; unsent calls are dropped."""
        return self._end(DriverStatus.ABORTED, self._finished.set)

    async def serve(self) -> None:
        """Run inside the current event loop until cancelled, for a service that schedules
        while it leads: when cancelled, stop with `failover=True` (the framework stays
        registered for the next leader) and wait until the driver is done. Raises RuntimeError
        when the driver ends on its own (aborted, or the master refused the framework)."""
        self.start()
        try:
            status = await self._join_async()
        except asyncio.CancelledError:
            self.stop(failover=True)
            with contextlib.suppress(Exception):
                await self._join_async()
            raise
        raise RuntimeError(f"the scheduler driver ended ({status.value})")

    # ------------------------------------------------------------------- calls

    def launch_tasks(
        self,
        offer_ids: OfferIDLike | Iterable[OfferIDLike],
        tasks: Iterable[mesos_pb2.TaskInfo],
        filters: FiltersLike = None,
    ) -> DriverStatus:
        """Launch `tasks` on one offer or several offers of the same agent. Unused resources
        are declined (for `filters`' refuse_seconds). An empty `tasks` declines the offers."""
        call = _calls.launch(offer_ids, tasks, filters)
        launched = [task for operation in call.accept.operations
                    for task in operation.launch.task_infos]
        if launched:  # one line per call (the tasks of one agent's offers), not per task
            self._log.info(
                "launching tasks", framework_id=self._framework_id_text(),
                agent_id=launched[0].agent_id.value, count=len(launched),
                task_ids=[task.task_id.value for task in launched],
            )
        return self._submit(call)

    def accept_offers(
        self,
        offer_ids: OfferIDLike | Iterable[OfferIDLike],
        operations: Iterable[mesos_pb2.Offer.Operation],
        filters: FiltersLike = None,
    ) -> DriverStatus:
        """Apply offer operations to one or several offers."""
        return self._submit(_calls.accept(offer_ids, operations, filters))

    def decline_offer(
        self, offer_id: OfferIDLike | Iterable[OfferIDLike], filters: FiltersLike = None
    ) -> DriverStatus:
        """Decline offers; `filters` (Filters or seconds) keeps the resources away that long."""
        return self._submit(_calls.decline(offer_id, filters))

    def revive_offers(self, roles: str | Iterable[str] | None = None) -> DriverStatus:
        """Clear filters and resume offers (for `roles`, or all the framework's roles)."""
        return self._submit(_calls.revive(roles))

    def suppress_offers(self, roles: str | Iterable[str] | None = None) -> DriverStatus:
        """Stop receiving offers until `revive_offers`."""
        return self._submit(_calls.suppress(roles))

    def kill_task(
        self,
        task_id: TaskIDLike,
        agent_id: AgentIDLike | None = None,
        kill_policy: mesos_pb2.KillPolicy | float | None = None,
    ) -> DriverStatus:
        """Kill a task; `kill_policy` (a policy or grace seconds) overrides the task's own."""
        call = _calls.kill(task_id, agent_id, kill_policy)
        self._log.info(
            "killing task", framework_id=self._framework_id_text(),
            agent_id=call.kill.agent_id.value or None, task_id=call.kill.task_id.value,
        )
        return self._submit(call)

    def shutdown_executor(
        self, executor_id: ExecutorIDLike, agent_id: AgentIDLike
    ) -> DriverStatus:
        """Shut a custom executor down (its tasks are killed)."""
        return self._submit(_calls.shutdown(executor_id, agent_id))

    def acknowledge_status_update(self, status: mesos_pb2.TaskStatus) -> DriverStatus:
        """Acknowledge an update (with implicit acknowledgements off). Updates without a uuid
        need no acknowledgement and are ignored."""
        call = _calls.acknowledge(status)
        if call is None:
            return self._status
        return self._submit(call)

    def reconcile_tasks(self, statuses: Iterable[ReconcileItem]) -> DriverStatus:
        """Ask for the latest state of the given tasks (their statuses, ids or (task id,
        agent id) pairs), or of every task when `statuses` is empty. Answers arrive as status
        updates with reason REASON_RECONCILIATION."""
        return self._submit(_calls.reconcile(statuses))

    def send_framework_message(
        self, executor_id: ExecutorIDLike, agent_id: AgentIDLike, data: bytes
    ) -> DriverStatus:
        """Send `data` to an executor (best effort)."""
        return self._submit(_calls.message(executor_id, agent_id, data))

    # ---------------------------------------------------------------- plumbing

    def _framework_id_text(self) -> str | None:
        framework_id = self._session.framework_id
        return framework_id.value if framework_id is not None else None

    def _submit(self, call: Call) -> DriverStatus:
        if self._status is not DriverStatus.RUNNING:
            self._log.warning(
                "call ignored: the driver is not running",
                call=Call.Type.Name(call.type), status=self._status.value,
            )
            return self._status
        self._on_loop(self._queue_for(call).put_nowait, call)
        return DriverStatus.RUNNING

    def _queue_for(self, call: Call) -> asyncio.Queue[Call | _Stop]:
        return self._acknowledgements if call.type == Call.ACKNOWLEDGE else self._outbox

    def _request_stop(self, failover: bool) -> None:
        if self._stopping:
            return
        self._stopping = True
        stop = _Stop(failover)
        self._outbox.put_nowait(stop)
        self._acknowledgements.put_nowait(stop)
        self._wakeup.set()

    # ------------------------------------------------------------- the driver

    async def _run(self) -> None:
        try:
            await self._run_workers({
                "driver-connection": self._connection_loop,
                "driver-sender": self._send_loop,
                "driver-dispatcher": self._dispatch_loop,
            })
        finally:
            if self._transport is not None:
                await self._transport.close()
            await self._detector.close()
        self._log.info("scheduler driver finished", status=self._status.value)

    # The connection task: subscribe, follow the stream, re-subscribe when it breaks.

    async def _connection_loop(self) -> None:
        await follow_leader(self._detector, self._subscribe_to, self._backoff(), self._log_retry)

    async def _subscribe_to(self, address: HostPort) -> Ended | None:
        """One subscription to `address`, until it ends; None when the driver is done."""
        if self._stopping:
            return None
        transport = await self._transport_to(address)
        hint: HostPort | None = None
        unreachable = False
        try:
            if await self._follow_stream(transport):
                return None
            reason = "the master closed the event stream"
        except CallError as exc:
            if not exc.retryable(subscribing=True):
                self._inbox.put_nowait(
                    _Error(f"subscription refused by {address}: {exc}", fatal=True)
                )
                return None
            reason, hint, unreachable = str(exc), exc.leader, exc.unreachable
        except TimeoutError:
            reason = "no event from the master within the heartbeat timeout"
        subscribed = self._session.on_disconnected()
        if subscribed and not self._stopping:
            self._inbox.put_nowait(_Disconnected())
        if self._stopping:
            return None
        return Ended(reason, connected=subscribed, leader_hint=hint, unreachable=unreachable)

    def _log_retry(self, address: HostPort, ended: Ended, delay: float) -> None:
        self._log.info(
            "re-subscribing", master=str(address), reason=ended.problem, delay=round(delay, 3),
            leader_hint=str(ended.leader_hint) if ended.leader_hint else None,
            framework_id=self._framework_id_text(),
        )

    def _backoff(self) -> Backoff:
        return Backoff(min(0.1, self._backoff_cap), self._backoff_cap, jitter=0.5)

    async def _transport_to(self, address: HostPort) -> GrpcTransport:
        if self._transport is not None and self._transport.address == address:
            return self._transport
        if self._transport is not None:
            await self._transport.close()
        self._transport = GrpcTransport(address, tls=self._tls, credential=self._credential)
        return self._transport

    async def _follow_stream(self, transport: GrpcTransport) -> bool:
        """Subscribe and handle events until the stream ends; True if it ended fatally."""
        call = _calls.subscribe(self._framework_info)
        async with asyncio.timeout(self._subscribe_timeout):
            subscription = await transport.subscribe(call)
        try:
            timeout: float | None = self._subscribe_timeout
            while True:
                async with asyncio.timeout(timeout):
                    event = await subscription.next_event()
                if event is None:
                    return False
                if event.type == Event.SUBSCRIBED:
                    interval = event.subscribed.heartbeat_interval_seconds
                    timeout = 3 * interval if interval > 0 else None
                batch = event.batch.events if event.type == Event.BATCH else (event,)
                if any(self._on_event(inner, subscription.stream_id) for inner in batch):
                    return True
        finally:
            subscription.cancel()

    def _on_event(self, event: Event, stream_id: str) -> bool:
        """Bookkeeping for one event, then hand it to the dispatcher; True if fatal."""
        if event.type == Event.SUBSCRIBED:
            subscribed = event.subscribed
            first = self._session.on_subscribed(subscribed.framework_id, stream_id)
            self._framework_info.id.CopyFrom(subscribed.framework_id)
            self._log = self._log.bind(framework_id=subscribed.framework_id.value)
            self._log.info(
                "subscribed" if first else "re-subscribed",
                master=f"{subscribed.master_info.address}:{subscribed.master_info.port}",
                heartbeat_interval=subscribed.heartbeat_interval_seconds,
            )
            self._wakeup.set()
            self._inbox.put_nowait(
                _Subscribed(first, subscribed.framework_id, subscribed.master_info)
            )
        elif event.type == Event.HEARTBEAT:
            pass
        elif event.type == Event.ERROR:
            self._session.on_disconnected()
            self._inbox.put_nowait(_Error(event.error.message, fatal=True))
            return True
        elif event.type in (
            Event.OFFERS, Event.RESCIND, Event.UPDATE, Event.MESSAGE, Event.FAILURE
        ):
            self._inbox.put_nowait(event)
        else:
            self._log.warning("ignoring an unknown event", type=event.type)
        return False

    # The sender task: the ordered lane and the ack lane (see the module docstring).

    async def _send_loop(self) -> None:
        async with asyncio.TaskGroup() as lanes:
            ordered = lanes.create_task(self._send_in_order(), name="driver-ordered-lane")
            lanes.create_task(self._send_acknowledgements(), name="driver-ack-lane")
        await self._teardown(ordered.result().failover)
        self._finished.set()

    async def _send_in_order(self) -> _Stop:
        """Send the outbox's calls one at a time, in order, until the stop request."""
        backoff = self._backoff()
        while not isinstance(item := await self._outbox.get(), _Stop):
            await self._deliver(item, backoff)
        return item

    async def _send_acknowledgements(self) -> None:
        """Send ACKNOWLEDGE calls concurrently, at most `_acknowledgement_window` in flight,
        each carrying every acknowledgement waiting when it leaves; returns once those queued
        before the stop request are done."""
        window = asyncio.Semaphore(self._acknowledgement_window)
        stopped = False
        async with asyncio.TaskGroup() as in_flight:
            while not stopped and not isinstance(item := await self._acknowledgements.get(), _Stop):
                await window.acquire()
                calls = [item]
                for waiting in backlog(self._acknowledgements, MAX_BATCH_MESSAGES - 1):
                    if isinstance(waiting, _Stop):
                        stopped = True
                        break
                    calls.append(waiting)
                call = calls[0] if len(calls) == 1 else _calls.merged_acknowledgements(calls)
                in_flight.create_task(self._acknowledge(call, window))

    async def _acknowledge(self, call: Call, window: asyncio.Semaphore) -> None:
        try:
            await self._deliver(call, self._backoff())
        finally:
            window.release()

    async def _deliver(self, call: Call, backoff: Backoff) -> None:
        name = Call.Type.Name(call.type)
        while True:
            resolution = self._session.resolve(call, timestamp=time.time())
            if resolution.action is Action.DROP:
                self._log.info("call dropped: not subscribed", call=name)
                for status in resolution.updates:
                    self._log.info(
                        "task dropped", framework_id=self._framework_id_text(),
                        agent_id=status.agent_id.value, task_id=status.task_id.value,
                    )
                    self._inbox.put_nowait(
                        Event(type=Event.UPDATE, update=Event.Update(status=status))
                    )
                return
            if resolution.action is Action.WAIT:
                if self._stopping:
                    self._log.warning("call not sent: stopped before re-subscribing", call=name)
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            assert resolution.call is not None and self._transport is not None
            stream_id = self._session.stream_id
            assert stream_id is not None
            try:
                await self._transport.send(resolution.call, stream_id)
            except CallError as exc:
                if not exc.retryable(subscribing=False):
                    self._inbox.put_nowait(_Error(f"{name} refused by the master: {exc}", False))
                    return
                if self._stopping:
                    self._log.warning("call not sent while stopping", call=name, error=str(exc))
                    return
                delay = backoff.next_delay()
                self._log.warning(
                    "call failed; retrying", call=name, error=str(exc), delay=round(delay, 3)
                )
                await self._sleep_unless_woken(delay)
                continue
            backoff.reset()
            return

    async def _sleep_unless_woken(self, delay: float) -> None:
        self._wakeup.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._wakeup.wait()

    async def _teardown(self, failover: bool) -> None:
        if failover:
            self._log.info("stopping for failover; the framework stays registered")
            return
        resolution = self._session.resolve(_calls.teardown(), timestamp=time.time())
        if resolution.action is not Action.SEND or self._transport is None:
            self._log.warning(
                "cannot tear down: not subscribed; the master removes the framework "
                "after its failover timeout"
            )
            return
        assert resolution.call is not None and self._session.stream_id is not None
        try:
            await self._transport.send(resolution.call, self._session.stream_id)
        except CallError as exc:
            self._log.error("teardown failed", error=str(exc))
            return
        self._log.info("framework torn down")

    # The dispatcher task: scheduler callbacks, one at a time, in event order.

    async def _dispatch_loop(self) -> None:
        while True:
            item = await self._inbox.get()
            if self._status is DriverStatus.RUNNING:
                await self._dispatch(item)

    async def _dispatch(self, item: _InboxItem) -> None:
        scheduler = self.scheduler
        if isinstance(item, _Subscribed):
            if item.first:
                await self._callback(
                    "registered", scheduler.registered, self, item.framework_id, item.master_info
                )
            else:
                await self._callback(
                    "reregistered", scheduler.reregistered, self, item.master_info
                )
        elif isinstance(item, _Disconnected):
            await self._callback("disconnected", scheduler.disconnected, self)
        elif isinstance(item, _Error):
            self._log.error("error", message=item.message, fatal=item.fatal)
            await self._callback("error", scheduler.error, self, item.message)
            if item.fatal and self._status is DriverStatus.RUNNING:
                self._status = DriverStatus.ABORTED
                self._finished.set()
        else:
            await self._dispatch_event(item)

    async def _dispatch_event(self, event: Event) -> None:
        scheduler = self.scheduler
        if event.type == Event.OFFERS:
            await self._callback(
                "resource_offers", scheduler.resource_offers, self, list(event.offers.offers)
            )
        elif event.type == Event.RESCIND:
            await self._callback(
                "offer_rescinded", scheduler.offer_rescinded, self, event.rescind.offer_id
            )
        elif event.type == Event.UPDATE:
            await self._status_update(event.update.status)
        elif event.type == Event.MESSAGE:
            message = event.message
            await self._callback(
                "framework_message", scheduler.framework_message, self,
                message.executor_id, message.agent_id, message.data,
            )
        elif event.type == Event.FAILURE:
            failure = event.failure
            if failure.executor_id.value:
                await self._callback(
                    "executor_lost", scheduler.executor_lost, self, failure.executor_id,
                    failure.agent_id, failure.status if failure.HasField("status") else None,
                )
            else:
                await self._callback("agent_lost", scheduler.agent_lost, self, failure.agent_id)

    async def _status_update(self, status: mesos_pb2.TaskStatus) -> None:
        terminal = status.state in TERMINAL_STATES  # one INFO line per task, as the agent logs
        # No bound logger per update: binding cost more than the rest of a burst's bookkeeping.
        (self._log.info if terminal else self._log.debug)(
            "status update", framework_id=self._framework_id_text(),
            agent_id=status.agent_id.value or None, task_id=status.task_id.value,
            state=mesos_pb2.TaskState.Name(status.state),
            reason=mesos_pb2.TaskStatus.Reason.Name(status.reason), message=status.message,
        )
        handled = await self._callback("status_update", self.scheduler.status_update, self, status)
        if not (handled and self.implicit_acknowledgements):
            return
        acknowledgement = _calls.acknowledge(status)
        if acknowledgement is not None and self._status is DriverStatus.RUNNING:
            self._acknowledgements.put_nowait(acknowledgement)
