"""The agent's one stream to the leading master (protos/agent.proto), kept alive forever.

    detect leader -> Connect -> (Re)Register -> (Re)Registered -> heartbeats + messages
          ^                                                               |
          +------ exponential backoff (capped) <- refused / error / EOF --+

Which master to try next, and when, is `mesos_coordination.reconnect.follow_leader`: it follows
the leader a master that does not lead names (a hint), unless the link could not reach that
master since it last registered. A link holding passive streams to standbys that loses its
master waits for the election (`STANDBY_PATIENCE_SECONDS`, cut short when the detector names the new
leader) rather than dialling the lost master again and again (ADR 0018).

Only one writer task touches the stream; everything else enqueues through `send`. The
writer sends a backlog as one batch message (mesos_runtime.backlog); batches received are
handed to the handler message by message.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Hashable
from typing import Protocol, cast

import grpc
import structlog

from mesos_agent.standby_streams import PassiveStream, StandbyStreams, StreamEnded
from mesos_agent.status_updates import PendingUpdate, StatusUpdateManager
from mesos_coordination.detector import MasterDetector, ZooKeeperDetector
from mesos_coordination.reconnect import Ended, follow_leader
from mesos_runtime.backlog import MAX_BATCH_MESSAGES, backlog, batched
from mesos_runtime.backoff import Backoff
from mesos_runtime.channels import CLIENT_CHANNEL_OPTIONS, leader_hint, unreachable
from mesos_runtime.clock import Clock
from mesos_security.credentials import AUTHORIZATION_KEY, Credential, basic_authorization
from mesos_security.tls import TlsConfig, open_channel
from mesos_values.addresses import HostPort
from protos import agent_pb2, agent_pb2_grpc

log = structlog.get_logger("mesos_agent.master_link")

_DEFAULT_HEARTBEAT_SECONDS = 5.0
STANDBY_PATIENCE_SECONDS = 4.0
"""The first wait, drawn from [half of it, all of it], before a link holding passive streams
dials the master it lost again (doubling up to twice as long): a dead leader's successor is
elected within the masters' ZooKeeper session timeout, and the detector ends the wait then.
Far below what a live leader tolerates (an agent is unreachable after 75 s of silence)."""
Call = grpc.aio.StreamStreamCall[agent_pb2.AgentMessage, agent_pb2.MasterMessage]


class MasterLinkHandler(Protocol):
    """What the link reports to the agent."""

    def registered(self, message: agent_pb2.MasterMessage) -> None:
        """The master answered Registered or Reregistered; `send` works from now on."""
        ...

    def received(self, message: agent_pb2.MasterMessage) -> None:
        """Any later message from the master."""
        ...

    def disconnected(self) -> None:
        """The stream is gone; the link is reconnecting."""
        ...

    async def refused(self, reason: str, *, reregistering: bool) -> None:
        """The master refused the (re)registration (FAILED_PRECONDITION)."""
        ...


class MasterLink:
    """Connects, (re)registers, heartbeats and reconnects; see the module docstring."""

    def __init__(
        self,
        detector: MasterDetector,
        handler: MasterLinkHandler,
        hello: Callable[[], agent_pb2.AgentMessage],
        *,
        initial_backoff: float = 0.1,
        max_backoff: float = 2.0,
        registration_timeout: float = 15.0,
        tls: TlsConfig | None = None,
        credential: Credential | None = None,
        standby_streams: bool = True,
        standby_refresh_interval: float = 5.0,
        state_version: Callable[[], Hashable] | None = None,
    ) -> None:
        """With `standby_streams` and a ZooKeeper detector, the link also keeps a passive
        stream to every standby master and resumes over it when that master leads (ADR 0018).
        `state_version`, if given, names what `hello` reports (it moves whenever that may
        change): a resumption then builds no report when the master holds that version."""
        self._detector = detector
        self._tls = tls
        self._authorization: tuple[tuple[str, str], ...] = (
            ((AUTHORIZATION_KEY, basic_authorization(credential)),) if credential else ())
        self._handler = handler
        self._hello = hello
        self._state_version = state_version
        self._backoff = Backoff(initial_backoff, max_backoff, jitter=0.2)
        self._patience = Backoff(STANDBY_PATIENCE_SECONDS, 2 * STANDBY_PATIENCE_SECONDS,
                                 jitter=0.5)
        self._registration_timeout = registration_timeout
        self._outbox: _SessionOutbox | None = None
        self._last_hello: str | None = None
        self._registered = False  # in the current connection
        self.leader: HostPort | None = None
        self.resumed = False
        """Whether the current (or last) registration resumed over a passive stream."""
        self.standbys: StandbyStreams | None = None
        if standby_streams and isinstance(detector, ZooKeeperDetector):
            self.standbys = StandbyStreams(
                detector.members, lambda: self.leader, self._snapshot, version=state_version,
                tls=tls,
                metadata=self._authorization, refresh_interval=standby_refresh_interval,
                open_timeout=registration_timeout)

    @property
    def connected(self) -> bool:
        """Registered with the master right now."""
        return self._outbox is not None

    def send(self, message: agent_pb2.AgentMessage) -> bool:
        """Queue `message` for the master; False (message dropped) when not connected."""
        if self.standbys is not None:
            self.standbys.state_moved()  # even when dropped: the agent's state moved
        if self._outbox is None:
            return False
        self._outbox.put(message)
        return True

    async def run(self) -> None:
        """Keep a registered stream to the leader (and passive ones to the standbys) until
        cancelled."""
        if self.standbys is None:
            await follow_leader(self._detector, self._connect, self._backoff, _log_retry)
            return
        async with asyncio.TaskGroup() as group:
            group.create_task(self.standbys.run())
            await follow_leader(self._detector, self._connect, self._backoff, _log_retry,
                                patience=self._patience)

    def _snapshot(self) -> agent_pb2.AgentMessage.Reregister | None:
        """What the agent would re-register with now; None before it has an agent id."""
        hello = self._hello()
        return hello.reregister if hello.WhichOneof("message") == "reregister" else None

    async def _connect(self, leader: HostPort) -> Ended:
        """One connection to `leader`, until it ends."""
        self.leader = leader
        self._registered = False
        try:
            await self._session(leader)
            return Ended("master closed the stream", connected=self._registered,
                         failover_expected=self._standbys_held())
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.UNAUTHENTICATED,
                              grpc.StatusCode.PERMISSION_DENIED):
                log.error("master refused the agent's principal; check --credential and the "
                          "master's --credentials and --acls", master=str(leader),
                          reason=exc.details())
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                log.error("master refused the agent", master=str(leader), reason=exc.details())
                await self._handler.refused(
                    exc.details() or "", reregistering=self._last_hello == "reregister"
                )
            hint = leader_hint(exc)
            return Ended(
                f"{exc.code().name}: {exc.details()}", connected=self._registered,
                leader_hint=hint, unreachable=unreachable(exc),
                failover_expected=exc.code() == grpc.StatusCode.UNAVAILABLE and hint is None
                and self._standbys_held(),
            )
        except (StreamEnded, TimeoutError, OSError) as exc:
            return Ended(str(exc) or type(exc).__name__, connected=self._registered,
                         failover_expected=self._standbys_held())

    def _standbys_held(self) -> bool:
        """Whether other masters hold passive streams of this agent (one may be elected)."""
        return self.standbys is not None and bool(self.standbys.masters)

    async def _session(self, leader: HostPort) -> None:
        passive = self.standbys.take(leader) if self.standbys is not None else None
        if passive is not None:
            try:
                if await self._resume(leader, passive):
                    return
            finally:
                await passive.close()
        hello = self._hello()
        async with open_channel(str(leader), self._tls, CLIENT_CHANNEL_OPTIONS) as channel:
            stub = agent_pb2_grpc.AgentLinkStub(channel)
            call = stub.Connect(metadata=self._authorization)
            self._last_hello = hello.WhichOneof("message")
            await call.write(hello)
            del hello  # freed now, not with the session (see `_registered_session`)
            await self._registered_session(leader, call, call.read, resumed=False)

    async def _resume(self, leader: HostPort, passive: PassiveStream) -> bool:
        """Re-register over the passive stream to `leader`: `Resume` when the master holds the
        agent's current snapshot (its version, else the same bytes), the whole `Reregister`
        otherwise (ADR 0018). False, with nothing sent, when the agent has no id to
        re-register with."""
        await passive.idle()
        message = self._resumption(passive)
        if message is None:
            return False
        self._last_hello = "reregister"
        await passive.call.write(message)
        del message  # freed now, not with the session (see `_registered_session`)
        await self._registered_session(leader, passive.call, passive.read, resumed=True)
        return True

    def _resumption(self, passive: PassiveStream) -> agent_pb2.AgentMessage | None:
        """What `_resume` sends on `passive`; None when the agent has no id."""
        if self._state_version is None or not passive.holds(self._state_version()):
            hello = self._hello()
            if not hello.HasField("reregister"):
                return None
            if not passive.current(hello.reregister):
                return hello
        message = agent_pb2.AgentMessage()
        message.resume.seq = passive.seq
        return message

    async def _registered_session(
        self, leader: HostPort, call: Call, read: Callable[[], Awaitable[object]], *,
        resumed: bool,
    ) -> None:
        """Wait for the master's (Re)Registered on `call`, then serve the stream until it
        ends; `read` reads it. The messages of the registration are dropped once handled, not
        kept in the session's frames until it ends: 10,000 agents' sessions end together when
        their master dies, and what they hold is freed then (ADR 0018)."""
        async with asyncio.timeout(self._registration_timeout):
            first = await read()
        if first is grpc.aio.EOF:
            raise StreamEnded("master closed the stream before answering the registration")
        assert isinstance(first, agent_pb2.MasterMessage)
        kind = first.WhichOneof("message")
        if kind not in ("registered", "reregistered"):
            raise StreamEnded(f"master answered the registration with {kind!r}")
        answer = first.registered if kind == "registered" else first.reregistered
        interval = answer.heartbeat_interval_seconds or _DEFAULT_HEARTBEAT_SECONDS
        self._registered = True
        self.resumed = resumed
        log.info(
            "registered with master",
            master=str(leader),
            agent_id=answer.agent_id.value,
            reregistered=kind == "reregistered",
            resumed=resumed,
            heartbeat_interval=interval,
        )
        if self.standbys is not None and not resumed:  # resumed: the other standbys are kept
            self.standbys.wake()
        outbox = self._outbox = _SessionOutbox(call, interval)
        try:
            self._handler.registered(first)
            del first, answer
            await self._read(read, call, outbox)
        finally:
            self._outbox = None
            outbox.close()
            self._handler.disconnected()

    async def _read(
        self, read: Callable[[], Awaitable[object]], call: Call, outbox: _SessionOutbox,
    ) -> None:
        while True:
            message = await read()
            if message is grpc.aio.EOF:
                code = await call.code()
                if code != grpc.StatusCode.OK:
                    raise StreamEnded(f"{code.name}: {await call.details()}")
                raise StreamEnded("master closed the stream")
            assert isinstance(message, agent_pb2.MasterMessage)
            if message.WhichOneof("message") == "batch":
                for inner in message.batch.messages:
                    self._handler.received(inner)
            else:
                self._handler.received(message)
            if self.standbys is not None:
                self.standbys.state_moved()
            outbox.check()


class _SessionOutbox:
    """A registered session's sending side: what `put` queues and a heartbeat every `interval`
    seconds (a timer queues it), written in order by one writer task, a backlog as one batch
    (mesos_runtime.backlog). The writer starts with the first message queued, not with the
    session: an agent that has nothing to send has no task until its first heartbeat, and
    10,000 agents resume at once after a failover (ADR 0018)."""

    def __init__(self, call: Call, interval: float) -> None:
        self._call = call
        self._interval = interval
        self._queue: asyncio.Queue[agent_pb2.AgentMessage | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None
        self._beat = asyncio.get_running_loop().call_later(interval, self._heartbeat)

    def put(self, message: agent_pb2.AgentMessage) -> None:
        self._queue.put_nowait(message)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())

    def check(self) -> None:
        """Raise what the writer raised, if it ended."""
        if self._writer is not None and self._writer.done():
            self._writer.result()

    def close(self) -> None:
        """The session ended: no more heartbeats, and the writer is told to end (None queued).
        It returns when it sees it, at once or after a write under way fails with the stream;
        not cancelled and waited for: 10,000 agents end their sessions at once when their master
        dies (ADR 0018). What it raised is retrieved when it ends (`_writer_ended`)."""
        self._beat.cancel()
        writer = self._writer
        if writer is None:
            return
        self._queue.put_nowait(None)
        if writer.done():
            _writer_ended(writer)
        else:
            writer.add_done_callback(_writer_ended)

    def _heartbeat(self) -> None:
        self._beat = asyncio.get_running_loop().call_later(self._interval, self._heartbeat)
        self.put(agent_pb2.AgentMessage(heartbeat=agent_pb2.AgentMessage.Heartbeat()))

    async def _write(self) -> None:
        """Write what is queued until None is queued (the session ended)."""
        while True:
            queued = [await self._queue.get()]
            queued += backlog(self._queue, MAX_BATCH_MESSAGES - 1)
            if None in queued:
                return
            messages = cast(list[agent_pb2.AgentMessage], queued)
            for message in batched(messages, _agent_message_batch):
                try:
                    await self._call.write(message)
                except asyncio.InvalidStateError:  # the call ended before the reader saw it
                    raise StreamEnded("the master's stream ended") from None


def _writer_ended(writer: asyncio.Task[None]) -> None:
    """Retrieve how a session's writer ended: raise what it raised, unless it is the stream's
    end (the session ended with it anyway) or a cancellation."""
    if writer.cancelled():
        return
    error = writer.exception()
    if error is not None and not isinstance(error, grpc.aio.AioRpcError | StreamEnded):
        raise error


def _log_retry(leader: HostPort, ended: Ended, delay: float) -> None:
    # Losing a master while standbys hold the agent's passive streams is a failover under
    # way, not a fault: no warning from each of thousands of agents.
    (log.info if ended.failover_expected else log.warning)(
        "master connection failed; retrying",
        master=str(leader),
        error=ended.problem,
        retry_in=round(delay, 3),
        leader_hint=str(ended.leader_hint) if ended.leader_hint else None,
    )


def _agent_message_batch(messages: list[agent_pb2.AgentMessage]) -> agent_pb2.AgentMessage:
    # Filled in place: each message is copied once (a `Batch` passed to the constructor is
    # copied again).
    batch = agent_pb2.AgentMessage()
    batch.batch.messages.extend(messages)
    return batch


def send_status_update(link: MasterLink, pending: PendingUpdate) -> None:
    """Send one status update to the master (dropped while disconnected: it is retried)."""
    message = agent_pb2.AgentMessage()  # filled in place: the status is copied once, not twice
    update = message.status_update
    update.framework_id.value = pending.framework_id
    update.status.CopyFrom(pending.status)
    link.send(message)


async def forward_status_updates(
    link: MasterLink, updates: StatusUpdateManager, wake: asyncio.Event, clock: Clock
) -> None:
    """Send due status updates while connected; sleep until the next retry or until `wake`
    is set (a new update, an acknowledgement, a reconnection). Runs until cancelled."""
    while True:
        wake.clear()
        timeout: float | None = None
        if link.connected:
            for pending in updates.due():
                send_status_update(link, pending)
            next_at = updates.next_retry_at()
            if next_at is not None:
                timeout = max(0.0, next_at - clock.now())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await wake.wait()
