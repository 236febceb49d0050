"""The master process's shell: gRPC servicers, timers and the allocation trigger around `Master`.

Flow::

    grpc.aio server ──▶ SchedulerServicer / AgentLinkServicer ──▶ LeaderGate ──▶ Master (core)
           ▲                                                                     │
           └──────────────── QueueOutbox (one per open stream) ◀─────────────────┘
    MasterServer.run(): follows the Contender; while leading it owns a fresh Master and a
    TaskGroup { allocation loop, tick loop, scheduler heartbeat loop }.

A standby (or a leader whose ZooKeeper session is suspended) answers every call with
UNAVAILABLE and names the leader in the `mesos-leader` trailing metadata. A new leader first
recovers the registry (fencing out earlier leaders: `mesos_coordination.store_zk`), then builds a
fresh core from it and learns tasks as agents re-register (ADR 0011). The
registry lives in ZooKeeper with --zk, under --work_dir without it, and only in memory when
neither is given. A registry failure ends leadership for good (`LeadershipLost`).
Subscribe, Send and an agent's Connect first wait for their principal's turn under
`--rate_limits` (`mesos_master.rate_limits`), or are refused with RESOURCE_EXHAUSTED.
Every servicer call ends with `request_allocation()` (an agent's heartbeat does not: it changes
nothing to allocate): allocation runs on the next loop pass, batching all changes of that pass
(ADR 0009); a new leader's resumption wave holds it until the wave is over (ADR 0018).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
import structlog
from google.protobuf.message import Message

from mesos_coordination.election import (
    Contender,
    Leadership,
    create_contender,
    serve_terms,
)
from mesos_coordination.store import BatchWriter, StoreError
from mesos_coordination.store_zk import StoreCopy, ZooKeeperStoreFollower
from mesos_coordination.term_store import follow_term_store, term_state
from mesos_coordination.zookeeper import master_address
from mesos_master.config import MasterConfig
from mesos_master.errors import ErrorCode, MasterError
from mesos_master.interceptors import CallPolicy, interceptor_chain
from mesos_master.master import Master
from mesos_master.rate_limits import RateLimited, RateLimits, Throttle
from mesos_master.records import FrameworkRecord
from mesos_master.registry import KINDS, RegistryDecoder
from mesos_master.standby import ResumptionWave, StandbyAgents
from mesos_runtime.backlog import MAX_BATCH_MESSAGES, batched
from mesos_runtime.channels import LEADER_METADATA_KEY, STREAM_ID_METADATA_KEY
from mesos_runtime.clock import SystemClock, WallClock
from mesos_runtime.tasks import cancel_and_wait
from mesos_security.authentication import AuthenticationFailed, Authenticator
from mesos_security.credentials import AUTHORIZATION_KEY
from mesos_security.tls import TlsConfig, add_listener, peer_principal
from mesos_values.addresses import advertised_host
from protos import (
    agent_pb2,
    agent_pb2_grpc,
    mesos_pb2,
    scheduler_pb2,
    scheduler_pb2_grpc,
)

log = structlog.get_logger("mesos_master")

VERSION = "0.1.0"
UNFREEZE_AFTER = 60.0
"""At most this long after its election a leader keeps the standby's heap frozen (`_lead`)."""
DECODE_EVERY = 0.5
"""How often (seconds) a standby looks for a new copy of the registry to decode (ADR 0018)."""
DECODE_BATCH = 1000
"""A standby decodes at most this many registry entries per pass of the event loop."""
Call = scheduler_pb2.Call
CallType = Call.Type
Event = scheduler_pb2.Event

_STATUS_CODES = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.ABORTED: grpc.StatusCode.ABORTED,
}

# Calls that gRPC core holds until the application picks them up: beyond
# `max_pending_requests` (default 1,000) it refuses new ones at random, beyond the hard
# limit (default 3,000) all of them ("INTERNAL: Internal error from Core"). Every agent's
# Connect and every scheduler's Subscribe and Send is such a call: with the defaults a storm
# of 10,000 registering agents was refused tens of thousands of times (17-20 s to admit them
# all, 9.8 s and no refusal with these limits). Received messages may be up to 64 MiB
# (default 4 MiB): an agent re-registering with many tasks, or a large ACCEPT, is valid.
SERVER_OPTIONS = (
    ("grpc.server.max_pending_requests", 100_000),
    ("grpc.server.max_pending_requests_hard_limit", 100_000),
    ("grpc.max_receive_message_length", 64 * 2**20),
)

MessageT = TypeVar("MessageT")
SentT = TypeVar("SentT", bound=Message)


class QueueOutbox(Generic[MessageT]):
    """An outbox backed by a list; iterate it to drain it until closed.

    Not an asyncio.Queue: with 10,000 agents connected the queues' four deques each cost the
    master 30 MiB (docs/benchmarks.md, "Master memory").
    """

    __slots__ = ("_pending", "_waiter", "closed")

    def __init__(self) -> None:
        self._pending: list[MessageT] = []
        self._waiter: asyncio.Future[None] | None = None  # set while `backlogs` waits
        self.closed = False

    def send(self, message: MessageT) -> None:
        if not self.closed:
            self._pending.append(message)
            self._wake()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    async def backlogs(self) -> AsyncIterator[list[MessageT]]:
        """Until closed: everything waiting, oldest first (at least one message) each step.
        Nothing is held while waiting for the next (10,000 idle streams would each keep their
        last backlog)."""
        while True:
            if not self._pending:
                if self.closed:
                    return
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            if len(self._pending) <= MAX_BATCH_MESSAGES:
                messages, self._pending = self._pending, []
            else:
                messages = self._pending[:MAX_BATCH_MESSAGES]
                del self._pending[:MAX_BATCH_MESSAGES]
            yield messages
            del messages


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: MasterError) -> None:
    await context.abort(_STATUS_CODES[error.code], error.message)


async def _throttle(throttle: Throttle, principal: str | None,
                    context: grpc.aio.ServicerContext[Any, Any]) -> None:
    """Wait for the principal's turn under --rate_limits; RESOURCE_EXHAUSTED when its queue
    is full."""
    if (refusal := await _wait_turn(throttle, principal)) is not None:
        await refusal.abort(context)
        raise AssertionError("unreachable")


async def _wait_turn(throttle: Throttle, principal: str | None) -> Refusal | None:
    """`_throttle` for a task that cannot abort the call: the refusal, if any."""
    try:
        delay = throttle.acquire(principal)
    except RateLimited as limited:
        log.info("call refused: rate limited", principal=principal, reason=limited.message)
        return Refusal(grpc.StatusCode.RESOURCE_EXHAUSTED, limited.message)
    if delay > 0:
        await asyncio.sleep(delay)
    return None


class LeaderGate:
    """Hands servicers the leading master's core, or turns callers away to the leader.

    Between election and the end of registry recovery this master is the leader but has no
    core yet: calls wait (up to `RECOVERY_WAIT` seconds) instead of being sent back to the
    very master they reached, which would cost every agent and scheduler a retry backoff.
    At a failover most agents' resumptions arrive in that window: they share one event and one
    timer (`_next_change`) instead of a timeout each (ADR 0018, "The gate at the election").
    """

    RECOVERY_WAIT = 10.0
    TICK = 1.0
    """Waiters look at their deadlines at least this often (so they end up to this late)."""

    def __init__(self, request_allocation: Callable[[], None], own_id: str = "") -> None:
        self._master: Master | None = None
        self._leader: mesos_pb2.MasterInfo | None = None
        self.request_allocation = request_allocation
        self.own_id = own_id
        self._changed = asyncio.Event()
        self._tick: asyncio.TimerHandle | None = None  # set while waiters may need waking
        self._elections = 0  # how often this master learnt that it is elected
        self._elected_at = 0.0  # when it last did (`time.monotonic()`)
        self.waiting = 0
        """Callers waiting in `core` right now."""
        self.standbys = StandbyAgents()  # agents' passive streams to this master (ADR 0018)
        # The masters in the election, as the contender last read them (set while running).
        self.members: Callable[[], Sequence[mesos_pb2.MasterInfo]] = lambda: ()
        # The ZooKeeper modification of the registry's epoch znode that this standby's copy
        # of the registry was read at, once decoded (0: none; set while running, ADR 0018).
        self.registry_copy: Callable[[], int] = lambda: 0

    @property
    def master(self) -> Master | None:
        """The core while this master leads and has recovered; None otherwise."""
        return self._master

    @master.setter
    def master(self, master: Master | None) -> None:
        self._master = master
        self._wake()

    @property
    def leader(self) -> mesos_pb2.MasterInfo | None:
        """The current leader (this master's own info while it leads); None when unknown."""
        return self._leader

    @leader.setter
    def leader(self, leader: mesos_pb2.MasterInfo | None) -> None:
        was_elected = self._elected()
        self._leader = leader
        if self._elected():
            if not was_elected:
                self._elections += 1
                self._elected_at = time.monotonic()
            if self._master is None:
                return  # no waiter acts on an election without a core: none is woken
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _ticked(self) -> None:
        self._tick = None
        self._wake()

    async def _next_change(self) -> None:
        """Wait until the gate changes, or for at most about `TICK` seconds: one timer for
        all waiters, each of which then looks at its own deadline."""
        if self._tick is None:
            self._tick = asyncio.get_running_loop().call_later(self.TICK, self._ticked)
        await self._changed.wait()

    def _elected(self) -> bool:
        return self._leader is not None and self._leader.id == self.own_id

    async def core(self, *, patience: float = 0.0) -> Master | None:
        """The core to act on, waiting for it while this master is elected and recovering
        (up to `RECOVERY_WAIT` seconds); None when not leading. With `patience`, first wait up
        to that long for this master to learn it is elected (the caller's detector saw the
        election first). A wait ends up to `TICK` seconds late."""
        if self._master is not None:
            return self._master
        arrived = time.monotonic()
        deadline = arrived + patience
        elections = self._elections
        seen_elected = False
        self.waiting += 1
        try:
            while self._master is None:
                if self._elected():
                    seen_elected = True
                    deadline = max(arrived, self._elected_at) + self.RECOVERY_WAIT
                elif seen_elected or self._elections != elections:
                    break  # elected, then not any more
                if time.monotonic() >= deadline:
                    break
                await self._next_change()
        finally:
            self.waiting -= 1
        return self._master

    def not_leading(self) -> Refusal:
        """The UNAVAILABLE answer of a master that does not lead, naming the leader."""
        hint = str(master_address(self.leader)) if self.leader is not None else ""
        return Refusal(
            grpc.StatusCode.UNAVAILABLE,
            f"not the leading master; the leader is {hint}" if hint
            else "not the leading master; no leader is elected right now",
            ((LEADER_METADATA_KEY, hint),),
        )

    async def enter(self, context: grpc.aio.ServicerContext[Any, Any]) -> Master:
        """The core to act on; aborts the call with UNAVAILABLE when not leading."""
        master = await self.core()
        if master is not None:
            return master
        await self.not_leading().abort(context)
        raise AssertionError("unreachable")


@dataclass(frozen=True, slots=True)
class Refusal:
    """How a call is refused: its status, message and trailing metadata."""

    code: grpc.StatusCode
    message: str
    trailing_metadata: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, error: MasterError) -> Refusal:
        return cls(_STATUS_CODES[error.code], error.message)

    async def abort(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        if self.trailing_metadata:
            context.set_trailing_metadata(self.trailing_metadata)
        await context.abort(self.code, self.message)


def _as_sent(messages: list[SentT], wrap: Callable[[list[SentT]], SentT]) -> Iterable[SentT]:
    """A stream's backlog as the messages to send: `batched`, without its generators for the
    usual backlog of one message (one per resumption, per offer, per status update)."""
    return messages if len(messages) == 1 else batched(messages, wrap)


def _event_batch(events: list[scheduler_pb2.Event]) -> scheduler_pb2.Event:
    return Event(type=Event.BATCH, batch=Event.Batch(events=events))


def _master_message_batch(messages: list[agent_pb2.MasterMessage]) -> agent_pb2.MasterMessage:
    return agent_pb2.MasterMessage(batch=agent_pb2.MasterMessage.Batch(messages=messages))


def _acknowledgements(call: Call) -> list[tuple[str, str, bytes]]:
    """An ACKNOWLEDGE call's (agent id, task id, uuid)s: `acknowledge`, then the batched ones."""
    first = [call.acknowledge] if call.HasField("acknowledge") or not call.acknowledgements else []
    return [(a.agent_id.value, a.task_id.value, a.uuid) for a in [*first, *call.acknowledgements]]


@dataclass(frozen=True, slots=True)
class CallerChecks:
    """Who may call (ADR 0013): the known credentials, and which entry points require a
    principal (`--authenticate_frameworks`, `--authenticate_agents`)."""

    authenticator: Authenticator = field(default_factory=Authenticator)
    frameworks: bool = False
    agents: bool = False

    async def principal(self, context: grpc.aio.ServicerContext[Any, Any], *,
                        required: bool) -> str | None:
        """The caller's principal (its credential's, else its client certificate's); aborts
        the call with UNAUTHENTICATED when that fails or is required and missing."""
        metadata = dict(context.invocation_metadata() or ())
        authorization = metadata.get(AUTHORIZATION_KEY)
        try:
            return self.authenticator.principal(
                authorization if isinstance(authorization, str) else None,
                peer_principal(context), required=required)
        except AuthenticationFailed as failure:
            log.info("call refused: not authenticated", reason=failure.message)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, failure.message)
            raise AssertionError("unreachable") from None


class SchedulerServicer(scheduler_pb2_grpc.SchedulerServicer):
    """Scheduler API: Subscribe (event stream) and Send (every other call)."""

    def __init__(self, gate: LeaderGate, info: mesos_pb2.MasterInfo,
                 checks: CallerChecks | None = None,
                 rate_limits: RateLimits | None = None) -> None:
        self._gate = gate
        self._info = info
        self._checks = checks or CallerChecks()
        self._throttle = Throttle(rate_limits or RateLimits(), SystemClock().now,
                                  "scheduler calls")
        self._handlers: dict[int, Callable[[Master, FrameworkRecord, Call], None]] = {
            CallType.TEARDOWN: lambda m, f, c: m.teardown(f),
            CallType.ACCEPT: lambda m, f, c: m.accept(
                f, [o.value for o in c.accept.offer_ids], c.accept.operations, c.accept.filters
            ),
            CallType.DECLINE: lambda m, f, c: m.decline(
                f, [o.value for o in c.decline.offer_ids], c.decline.filters
            ),
            CallType.REVIVE: lambda m, f, c: m.revive(f, c.revive.roles),
            CallType.SUPPRESS: lambda m, f, c: m.suppress(f, c.suppress.roles),
            CallType.KILL: lambda m, f, c: m.tasks.kill(
                f,
                c.kill.task_id.value,
                c.kill.kill_policy if c.kill.HasField("kill_policy") else None,
            ),
            CallType.SHUTDOWN: lambda m, f, c: m.tasks.shutdown_executor(
                f, c.shutdown.agent_id.value, c.shutdown.executor_id.value
            ),
            CallType.ACKNOWLEDGE: lambda m, f, c: m.tasks.acknowledge_all(f, _acknowledgements(c)),
            CallType.RECONCILE: lambda m, f, c: m.tasks.reconcile(
                f, [(t.task_id.value, t.agent_id.value) for t in c.reconcile.tasks]
            ),
            CallType.MESSAGE: lambda m, f, c: m.tasks.framework_message(
                f, c.message.agent_id.value, c.message.executor_id.value, c.message.data
            ),
        }

    async def Subscribe(
        self, request: scheduler_pb2.Call, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[scheduler_pb2.Event]:
        if request.type != CallType.SUBSCRIBE:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "Subscribe takes a SUBSCRIBE call"
            )
        info = request.subscribe.framework_info
        if request.framework_id.value and info.id.value != request.framework_id.value:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Call.framework_id and FrameworkInfo.id differ",
            )
        principal = await self._checks.principal(context, required=self._checks.frameworks)
        await _throttle(self._throttle, principal, context)
        master = await self._gate.enter(context)
        outbox: QueueOutbox[scheduler_pb2.Event] = QueueOutbox()
        try:
            framework_id, stream_id = master.subscribe(info, outbox, principal)
        except MasterError as error:
            await _abort(context, error)
            return
        self._gate.request_allocation()
        await context.send_initial_metadata(((STREAM_ID_METADATA_KEY, stream_id),))
        try:
            async for events in outbox.backlogs():
                if events[0].type == Event.SUBSCRIBED:  # alone and first (scheduler.proto)
                    yield events.pop(0)
                for event in _as_sent(events, _event_batch):
                    yield event
        finally:
            master.framework_disconnected(framework_id, stream_id)
            self._gate.request_allocation()

    async def Send(
        self, request: scheduler_pb2.Call, context: grpc.aio.ServicerContext[Any, Any]
    ) -> scheduler_pb2.Response:
        stream_id = dict(context.invocation_metadata() or ()).get(STREAM_ID_METADATA_KEY)
        if not stream_id:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"calls must carry the {STREAM_ID_METADATA_KEY} metadata received from Subscribe",
            )
        handler = self._handlers.get(request.type)
        if handler is None:
            name = (
                scheduler_pb2.Call.Type.Name(request.type)
                if request.type in CallType.values()
                else str(request.type)
            )
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"call type {name} cannot be sent with Send"
            )
            raise AssertionError("unreachable")
        principal = await self._checks.principal(context, required=self._checks.frameworks)
        await _throttle(self._throttle, principal, context)
        master = await self._gate.enter(context)
        try:
            framework = master.check_stream(request.framework_id.value, str(stream_id),
                                            principal)
            handler(master, framework, request)
        except MasterError as error:
            await _abort(context, error)
        finally:
            self._gate.request_allocation()
        return scheduler_pb2.Response()


    async def Info(
        self, request: scheduler_pb2.InfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> scheduler_pb2.InfoResponse:
        response = scheduler_pb2.InfoResponse(master=self._info)
        if self._gate.leader is not None:
            response.leader.CopyFrom(self._gate.leader)
        return response


class AgentLinkServicer(agent_pb2_grpc.AgentLinkServicer):
    """The agents' bidirectional link: an active stream to the leader, or a passive one to any
    master (ADR 0018) that becomes active when the agent resumes on it."""

    def __init__(self, gate: LeaderGate, checks: CallerChecks | None = None,
                 rate_limits: RateLimits | None = None,
                 info: mesos_pb2.MasterInfo | None = None) -> None:
        self._gate = gate
        self._checks = checks or CallerChecks()
        self._info = info or mesos_pb2.MasterInfo()
        self._throttle = Throttle(rate_limits or RateLimits(), SystemClock().now,
                                  "agent registrations")

    async def Connect(
        self,
        request_iterator: AsyncIterator[agent_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[agent_pb2.MasterMessage]:
        principal = await self._checks.principal(context, required=self._checks.agents)
        try:
            first = await anext(aiter(request_iterator))
        except StopAsyncIteration:
            return
        if first.WhichOneof("message") == "standby":
            async for message in self._passive(first.standby, principal, request_iterator,
                                               context):
                yield message
            return
        master = await self._gate.enter(context)
        await _throttle(self._throttle, principal, context)  # after reading: a clean refusal
        if self._gate.master is not master:  # leadership changed while waiting for the turn
            master = await self._gate.enter(context)
        outbox: QueueOutbox[agent_pb2.MasterMessage] = QueueOutbox()
        kind = first.WhichOneof("message")
        try:
            if kind == "register":
                agent_id = master.register_agent(first.register.agent_info, outbox, principal)
            elif kind == "reregister":
                agent_id = master.reregister_agent(first.reregister, outbox, principal)
            else:
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"the first message must be register or reregister, not {kind}",
                )
                return
        except MasterError as error:
            await _abort(context, error)
            return
        self._gate.request_allocation()
        del first  # held for the stream's life otherwise
        reader = asyncio.create_task(self._read(master, agent_id, request_iterator, outbox))
        try:
            async for messages in outbox.backlogs():
                for message in _as_sent(messages, _master_message_batch):
                    yield message
                del messages, message  # nor the last messages sent, while idle
        finally:
            await cancel_and_wait(reader)
            master.agent_disconnected(agent_id, outbox)
            self._gate.request_allocation()

    async def _passive(
        self,
        standby: agent_pb2.AgentMessage.Standby,
        principal: str | None,
        messages: AsyncIterator[agent_pb2.AgentMessage],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[agent_pb2.MasterMessage]:
        """A passive stream: hold the agent's snapshots until it resumes (or re-registers) on
        this stream with this master leading, then serve it as an active stream."""
        outbox: QueueOutbox[agent_pb2.MasterMessage] = QueueOutbox()
        try:
            held = self._gate.standbys.hold(standby, outbox, principal)
        except MasterError as error:
            await _abort(context, error)
            return
        outbox.send(agent_pb2.MasterMessage(
            standing_by=agent_pb2.MasterMessage.StandingBy(master_info=self._info)))
        refusals: list[Refusal] = []
        reader = asyncio.create_task(
            self._follow_passive(held.agent_id, principal, messages, outbox, refusals))
        try:
            async for batch in outbox.backlogs():
                for message in _as_sent(batch, _master_message_batch):
                    yield message
        finally:
            await cancel_and_wait(reader)
            self._gate.standbys.drop(held.agent_id, outbox)
        if refusals:
            await refusals[0].abort(context)

    async def _follow_passive(
        self,
        agent_id: str,
        principal: str | None,
        messages: AsyncIterator[agent_pb2.AgentMessage],
        outbox: QueueOutbox[agent_pb2.MasterMessage],
        refusals: list[Refusal],
    ) -> None:
        """Read a passive stream: keep its snapshots; on Resume or Reregister, re-register the
        agent with the leading core and go on as an active stream (`_read`)."""
        master: Master | None = None
        try:
            async for message in messages:
                kind = message.WhichOneof("message")
                if kind == "standby":
                    self._gate.standbys.hold(message.standby, outbox, principal,
                                             stream_agent=agent_id)
                    continue
                if kind not in ("resume", "reregister"):
                    log.warning("unexpected message on a passive stream", agent_id=agent_id,
                                kind=kind)
                    continue
                # The agent resumes here because its detector names this master: it may see
                # the election before this master does.
                # (No coroutine for the usual case: the core is there already.)
                master = self._gate.master
                if master is None:
                    master = await self._gate.core(patience=self._gate.RECOVERY_WAIT)
                    if master is None:
                        refusals.append(self._gate.not_leading())
                        return
                if (refusal := await _wait_turn(self._throttle, principal)) is not None:
                    refusals.append(refusal)
                    return
                if kind == "resume":
                    held = self._gate.standbys.take(agent_id, outbox, message.resume.seq)
                    master.reregister_agent(held.snapshot, outbox, principal,
                                            decoded=held.decoded)
                else:
                    self._gate.standbys.drop(agent_id, outbox)
                    master.reregister_agent(message.reregister, outbox, principal)
                self._gate.request_allocation()
                break
        except MasterError as error:
            refusals.append(Refusal.of(error))
            return
        except grpc.aio.AioRpcError:
            return
        except Exception:
            log.exception("passive stream handling failed", agent_id=agent_id)
            return
        finally:
            if master is None or refusals:
                outbox.close()
        if master is not None:
            await self._read(master, agent_id, messages, outbox)

    async def _read(
        self,
        master: Master,
        agent_id: str,
        messages: AsyncIterator[agent_pb2.AgentMessage],
        outbox: QueueOutbox[agent_pb2.MasterMessage],
    ) -> None:
        try:
            async for message in messages:
                if _dispatch(master, agent_id, message):
                    self._gate.request_allocation()
                del message  # nor the last message received, while idle
        except grpc.aio.AioRpcError:
            pass
        except Exception:
            log.exception("agent message handling failed", agent_id=agent_id)
        finally:
            master.agent_disconnected(agent_id, outbox)
            outbox.close()
            self._gate.request_allocation()


def _dispatch(master: Master, agent_id: str, message: agent_pb2.AgentMessage) -> bool:
    """Hand an agent's message (or each of a batch's) to the core; whether an allocation
    pass may now find something new (anything but heartbeats alone)."""
    if message.WhichOneof("message") == "batch":
        wanted = False
        for inner in message.batch.messages:
            wanted = _dispatch_one(master, agent_id, inner) or wanted
        return wanted
    return _dispatch_one(master, agent_id, message)


def _dispatch_one(master: Master, agent_id: str, message: agent_pb2.AgentMessage) -> bool:
    kind = message.WhichOneof("message")
    if kind == "heartbeat":  # records the agent's liveness only: nothing to allocate
        master.agent_heartbeat(agent_id)
        return False
    if kind == "status_update":
        update = message.status_update
        master.status_update(agent_id, update.framework_id.value, update.status)
    elif kind == "executor_to_framework":
        master.tasks.executor_to_framework(agent_id, message.executor_to_framework)
    elif kind == "executor_exited":
        master.tasks.executor_exited(agent_id, message.executor_exited)
    else:
        log.warning("unexpected agent message", agent_id=agent_id, kind=kind)
    return True


class MasterServer:
    """Runs the master's gRPC server and, while elected, a `Master` core, until cancelled.

    Raises `LeadershipLost` when the ZooKeeper session is gone for good: the process exits and
    its supervisor restarts it, as Mesos masters do.
    """

    def __init__(
        self,
        *,
        ip: str,
        port: int,
        hostname: str | None = None,
        advertise_port: int | None = None,
        config: MasterConfig | None = None,
        allocation_interval: float = 1.0,
        policies: tuple[CallPolicy, ...] = (),
        zk: str | None = None,
        zk_session_timeout: float = 10.0,
        work_dir: Path | None = None,
        tls: TlsConfig | None = None,
        checks: CallerChecks | None = None,
        rate_limits: RateLimits | None = None,
    ) -> None:
        self.config = config or MasterConfig()
        self._checks = checks or CallerChecks()
        self._rate_limits = rate_limits or RateLimits()
        self._work_dir = work_dir
        self._tls = tls
        self._ip = ip
        self._requested_port = port
        self._advertise_port = advertise_port
        self._allocation_interval = allocation_interval
        self._policies = policies
        self._zk = zk
        self._zk_session_timeout = zk_session_timeout
        self.info = mesos_pb2.MasterInfo(
            id=str(uuid.uuid4()),
            hostname=advertised_host(hostname, ip, socket.gethostname()),
            address=ip,
            port=port,
            version=VERSION,
        )
        self._allocation_wanted = asyncio.Event()
        # The new leader's resumption wave while its allocation loop holds allocation for it,
        # with the clock it is read by (`request_allocation`, ADR 0018).
        self._wave: tuple[ResumptionWave, Callable[[], float]] | None = None
        self.gate = LeaderGate(self.request_allocation, own_id=self.info.id)
        self.started = asyncio.Event()
        self.registrar: BatchWriter | None = None
        self._leading = False
        self._registry_follower: ZooKeeperStoreFollower | None = None
        # The decode of the registry: of the follower's copy `_decoded_copy` while standing by,
        # handed over to the core at the election (ADR 0018, "The registry at the election").
        self._registry_decoder = RegistryDecoder()
        self._decoded_copy: StoreCopy | None = None

    @property
    def master(self) -> Master | None:
        """The core while this master leads; None on a standby."""
        return self.gate.master

    def request_allocation(self) -> None:
        """Run an allocation pass soon (on the next pass of the event loop); during a
        resumption wave, once the wave is over (ADR 0018): the allocation loop is not woken
        by every resumption, only when one ends the wave (or at the wave's deadline)."""
        if (wave := self._wave) is not None and not wave[0].over(wave[1]()):
            return
        self._allocation_wanted.set()

    async def run(self, http_port: int = 0) -> None:
        """Serve until cancelled (or until leadership is lost for good); `http_port` is where
        this master's HTTP endpoints listen (0: none), published in its MasterInfo."""
        server = grpc.aio.server(
            interceptors=interceptor_chain(self._policies), options=SERVER_OPTIONS
        )
        scheduler_pb2_grpc.add_SchedulerServicer_to_server(
            SchedulerServicer(self.gate, self.info, self._checks, self._rate_limits), server
        )
        agent_pb2_grpc.add_AgentLinkServicer_to_server(
            AgentLinkServicer(self.gate, self._checks, self._rate_limits, self.info), server)
        port = add_listener(server, f"{self._ip}:{self._requested_port}", self._tls)
        if port == 0:
            raise OSError(f"cannot listen on {self._ip}:{self._requested_port}")
        self.info.port = self._advertise_port or port
        self.info.http_port = http_port
        await server.start()
        contender = create_contender(
            self._zk, self.info, session_timeout=self._zk_session_timeout
        )
        self.gate.members = lambda: contender.members
        log.info("master started", address=f"{self._ip}:{port}", master_id=self.info.id)
        # A standby keeps a copy of the registry: a new leader then reads no entry (ADR 0018).
        self._registry_follower = follow_term_store(
            contender, KINDS, "registry", paused=lambda: self._leading)
        if (registry_follower := self._registry_follower) is not None:
            self.gate.registry_copy = lambda: (
                registry_follower.latest.mzxid
                if registry_follower.latest is not None and not self._leading
                and registry_follower.latest is self._decoded_copy else 0)
        followers: list[asyncio.Task[None]] = []
        try:
            await contender.start()
            self.started.set()
            if registry_follower is not None:
                followers.append(asyncio.create_task(registry_follower.run()))
                followers.append(asyncio.create_task(self._decode_copies(registry_follower)))
            await self._follow(contender)
        finally:
            for task in followers:
                await cancel_and_wait(task)
            self._stop_leading()
            await server.stop(grace=1.0)
            await contender.close()

    async def _decode_copies(self, follower: ZooKeeperStoreFollower) -> None:
        """While standing by, keep the follower's latest copy of the registry decoded (only
        the entries that changed since the last copy, `DECODE_BATCH` at a time)."""
        while True:
            copy = follower.latest
            if copy is not None and copy is not self._decoded_copy and not self._leading:
                try:
                    while not self._registry_decoder.update(copy.entries, DECODE_BATCH):
                        await asyncio.sleep(0)
                        if self._leading or follower.latest is not copy:
                            break
                    else:
                        self._decoded_copy = copy
                except StoreError as exc:  # the election decodes it again and fails the term
                    log.warning("cannot decode the registry", error=str(exc))
                    self._decoded_copy = copy
            await asyncio.sleep(DECODE_EVERY)

    async def _follow(self, contender: Contender) -> None:
        """Lead while the contender says so; stand by otherwise (`serve_terms`)."""

        def changed(state: Leadership, leading: bool) -> None:
            self.gate.leader = state.leader
            if state.leading and not leading:
                log.info("elected leading master", epoch=state.epoch, master_id=self.info.id)
            elif not state.leading and leading:
                log.warning("no longer the leading master", master_id=self.info.id)
            elif not state.leading:
                leader = str(master_address(state.leader)) if state.leader else None
                log.info("standing by", leader=leader)

        await serve_terms(contender, lambda state: self._lead(contender, state), changed)

    async def _lead(self, contender: Contender, state: Leadership) -> None:
        """Recover the registry, then own a fresh core and its timers until cancelled."""
        # What this master held as a standby (agents' passive streams and snapshots) lives on:
        # keep the collector from walking it again and again while the core is built and the
        # agents resume; `_unfreeze` hands it back to the collector afterwards.
        gc.freeze()
        self._leading = True
        follower = self._registry_follower
        self._decoded_copy = None
        try:
            async with term_state(
                contender, state, KINDS, self._work_dir, name="registry",
                copy=follower.take() if follower is not None else None,
            ) as term:
                self.registrar = term.writer
                # Decodes only the entries the standby has not (all of them without a copy); the
                # decode is the core's to keep what it needs of, not the term's.
                master = Master(
                    self.info, SystemClock(), self.config, registry=term.sink,
                    recovered=self._registry_decoder.take(term.entries),
                    wall_clock=WallClock().now,
                )
                log.info("decoded the registry", entries=len(term.entries),
                         at_the_election=self._registry_decoder.decoded)
                self.gate.master = master
                async with asyncio.TaskGroup() as tasks:
                    tasks.create_task(self._allocation_loop(master))
                    tasks.create_task(self._tick_loop(master))
                    tasks.create_task(self._heartbeat_loop(master))
                    tasks.create_task(self._unfreeze())
                    if term.writer is not None:
                        tasks.create_task(term.writer.run())
        finally:
            self._stop_leading()
            self.registrar = None
            self._leading = False
            gc.unfreeze()

    async def _unfreeze(self) -> None:
        """Hand the heap frozen at the election back to the collector once the agents that
        held a passive stream here have resumed (or `UNFREEZE_AFTER` seconds have passed):
        what was frozen and has become garbage since is freed then."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(UNFREEZE_AFTER):
                while len(self.gate.standbys) > 0:
                    emptied = asyncio.Event()
                    self.gate.standbys.on_empty = emptied.set
                    await emptied.wait()
        gc.unfreeze()

    def _stop_leading(self) -> None:
        if self.gate.master is not None:
            self.gate.master.close_streams()
            self.gate.master = None

    async def _allocation_loop(self, master: Master) -> None:
        # Agents resuming over their passive streams come back by the thousand within a second
        # or two: allocate once they are back (or stopped coming), not on every loop pass
        # meanwhile, which made offers of a few agents at a time while the rest waited
        # (ADR 0018, "The allocation after an election").
        # While the wave lasts, `request_allocation` looks at it instead of waking this loop:
        # the loop wakes when a request finds the wave over, or at the wave's deadline.
        wave = ResumptionWave(self.gate.standbys, master.clock.now())
        self._wave = (wave, master.clock.now)
        try:
            while not wave.over(now := master.clock.now()):
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(wave.deadline() - now):
                        await self._allocation_wanted.wait()
                self._allocation_wanted.clear()
        finally:
            self._wave = None
        self._allocation_wanted.set()  # what was requested meanwhile
        allocator = master.allocator
        while True:
            timeout = self._allocation_interval
            wakeup = allocator.next_wakeup()
            if wakeup is not None:
                timeout = max(0.0, min(timeout, wakeup - master.clock.now()))
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._allocation_wanted.wait()
            self._allocation_wanted.clear()
            master.allocate()

    async def _tick_loop(self, master: Master) -> None:
        period = min(1.0, self.config.agent_ping_timeout / 4)
        if self.config.offer_timeout is not None:
            period = min(period, self.config.offer_timeout / 4)
        while True:
            await asyncio.sleep(period)
            master.tick()
            self.request_allocation()

    async def _heartbeat_loop(self, master: Master) -> None:
        while True:
            await asyncio.sleep(self.config.scheduler_heartbeat_interval)
            master.send_heartbeats()

