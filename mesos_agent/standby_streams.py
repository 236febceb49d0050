"""An agent's passive streams to the standby masters (ADR 0018).

    StandbyStreams.run(): every `refresh_interval`, and when woken (the link registered, sent
    or received a message: the agent's state may have changed)
        members of the election group (detector) - the master the link uses = standbys
        one keeper task per standby: open Connect, send Standby{1, snapshot}, await StandingBy;
                                     reopen with backoff when the stream ends
        the agent's snapshot (its Reregister), sent with the next number on every stream whose
        master holds an older one
    MasterLink, when its detector names a master it holds a passive stream to:
        take(master) -> the PassiveStream, no longer kept here; the link resumes on it.

With a `version` (what names the agent's snapshot: the hollow agents' task book), a snapshot is
built again only when the version moved, and a stream holds the current snapshot when it holds
that version: resuming builds nothing. Without one, snapshots are built after a `wake()` and
compared byte for byte.

A stream has one reader task from its opening to its closing, whoever owns it: messages go
to an inbox that `read()` drains, so a stream changes owner without cancelling a gRPC read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable

import grpc
import structlog

from mesos_runtime.backoff import Backoff
from mesos_runtime.channels import CLIENT_CHANNEL_OPTIONS
from mesos_runtime.tasks import cancel_and_wait
from mesos_security.tls import TlsConfig, open_channel
from mesos_values.addresses import HostPort
from protos import agent_pb2, agent_pb2_grpc

log = structlog.get_logger("mesos_agent.standby_streams")

Reregister = agent_pb2.AgentMessage.Reregister
Call = grpc.aio.StreamStreamCall[agent_pb2.AgentMessage, agent_pb2.MasterMessage]
SETTLE_SECONDS = 0.25


class StreamEnded(Exception):
    """A master's stream ended or answered something unexpected."""


class PassiveStream:
    """One open Connect stream to a master, opened as a standby's: its channel, its call,
    what it received, and the last snapshot sent on it (`seq`, `sent`)."""

    def __init__(self, address: HostPort, channel: grpc.aio.Channel, call: Call) -> None:
        self.address = address
        self.call = call
        self.seq = 0
        self.sent = b""
        self.version: Hashable = None
        """The version of the last snapshot sent (None: no version kept)."""
        self.taken = False
        self.ended = asyncio.Event()
        """Set when the stream ends, or when it is taken (its keeper lets go of it)."""
        self._channel = channel
        self._inbox: asyncio.Queue[agent_pb2.MasterMessage | BaseException | None] = (
            asyncio.Queue())
        self._writing = asyncio.Lock()
        self._reader = asyncio.create_task(self._read_all())

    @classmethod
    async def open(cls, address: HostPort, snapshot: Reregister, *, tls: TlsConfig | None,
                   metadata: tuple[tuple[str, str], ...], answer_within: float,
                   version: Hashable = None) -> PassiveStream:
        """Connect to `address`, send `snapshot` (of `version`) and wait for StandingBy."""
        channel = open_channel(str(address), tls, CLIENT_CHANNEL_OPTIONS)
        stream = cls(address, channel, agent_pb2_grpc.AgentLinkStub(channel).Connect(
            metadata=metadata))
        try:
            await stream.refresh(snapshot, snapshot.SerializeToString(), version)
            async with asyncio.timeout(answer_within):
                first = await stream.read()
            if not isinstance(first, agent_pb2.MasterMessage) or \
                    not first.HasField("standing_by"):
                raise StreamEnded(f"{address} answered a standby snapshot with {first!r:.80}")
        except BaseException:
            await stream.close()
            raise
        return stream

    def current(self, snapshot: Reregister) -> bool:
        """Whether `snapshot` is the last one sent: the master holds it as number `seq`."""
        return self.seq > 0 and snapshot.SerializeToString() == self.sent

    def holds(self, version: Hashable) -> bool:
        """Whether the last snapshot sent was built at `version` (not None)."""
        return self.seq > 0 and version is not None and self.version == version

    def holds_data(self, data: bytes, version: Hashable = None) -> bool:
        """Whether `refresh(_, data, version)` would send nothing: the stream was taken, or
        its last snapshot is `data` (then noted as built at `version`) and none is being
        written. Cheaper than `refresh`, which the caller runs under a timeout."""
        if self.taken:
            return True
        if self._writing.locked() or data != self.sent:
            return False
        self.version = version
        return True

    async def refresh(self, snapshot: Reregister, data: bytes, version: Hashable = None) -> None:
        """Send `snapshot` (serialized: `data`, built at `version`) with the next number, unless
        it is the last one sent or the stream was taken."""
        async with self._writing:
            if self.taken:
                return
            if data == self.sent:
                self.version = version  # the same snapshot, built again
                return
            self.seq += 1
            self.version = None  # while the write is under way
            await self.call.write(agent_pb2.AgentMessage(
                standby=agent_pb2.AgentMessage.Standby(seq=self.seq, snapshot=snapshot)))
            self.sent, self.version = data, version

    def hand_over(self) -> None:
        """From now on another owner has the stream: no more snapshots are sent on it."""
        self.taken = True
        self.ended.set()

    async def idle(self) -> None:
        """Wait until a snapshot being written (before `hand_over`) is written whole."""
        async with self._writing:
            pass

    async def read(self) -> object:
        """The next message; EOF when the master closed the stream; raises what the read
        raised (an AioRpcError carries the master's refusal)."""
        item = await self._inbox.get()
        if item is None:
            self._inbox.put_nowait(None)
            return grpc.aio.EOF
        if isinstance(item, BaseException):
            self._inbox.put_nowait(item)
            raise item
        return item

    async def close(self) -> None:
        await cancel_and_wait(self._reader)
        await self._channel.close()

    async def _read_all(self) -> None:
        try:
            while True:
                message = await self.call.read()
                if message is grpc.aio.EOF:
                    self._inbox.put_nowait(None)
                    return
                assert isinstance(message, agent_pb2.MasterMessage)
                self._inbox.put_nowait(message)
        except (grpc.aio.AioRpcError, OSError) as exc:
            self._inbox.put_nowait(exc)
        finally:
            self.ended.set()


class StandbyStreams:
    """Keeps one agent's passive streams to the standby masters; see the module docstring."""

    def __init__(
        self,
        members: Callable[[], Awaitable[tuple[HostPort, ...]]],
        leader: Callable[[], HostPort | None],
        snapshot: Callable[[], Reregister | None],
        *,
        version: Callable[[], Hashable] | None = None,
        tls: TlsConfig | None = None,
        metadata: tuple[tuple[str, str], ...] = (),
        refresh_interval: float = 5.0,
        open_timeout: float = 15.0,
        max_backoff: float = 10.0,
    ) -> None:
        """`members`: the masters of the election group; `leader`: the master the agent's
        active link uses (no passive stream to it); `snapshot`: the agent's Reregister now
        (None while it has no agent id: nothing to stand by with); `version`: names the
        snapshot (see the module docstring)."""
        self._members = members
        self._leader = leader
        self._snapshot = snapshot
        self._version = version
        self._tls = tls
        self._metadata = metadata
        self._refresh_interval = refresh_interval
        self._open_timeout = open_timeout
        self._max_backoff = max_backoff
        self._streams: dict[HostPort, PassiveStream] = {}
        self._wake = asyncio.Event()
        self._woken = False  # `wake()` was called (not only the refresh timer)
        self._dirty = True  # the agent's state may have moved since `_last` was built
        self._last: tuple[Reregister, bytes, Hashable] | None = None

    def wake(self) -> None:
        """Look at the members and the snapshot soon (`SETTLE_SECONDS`), not at the next
        refresh: the link registered, or the agent's state may have changed."""
        self._dirty = True
        self._woken = True
        self._wake.set()

    def state_moved(self) -> None:
        """The link sent or received a message: the agent's state may have changed. `wake()`,
        unless the version names the snapshot last built (nothing changed)."""
        if self._version is not None and self._last is not None \
                and self._last[2] == self._version():
            return
        self.wake()

    def version(self) -> Hashable:
        """The version of the agent's snapshot now (None: no version kept)."""
        return self._version() if self._version is not None else None

    @property
    def masters(self) -> tuple[HostPort, ...]:
        """The masters holding a passive stream of this agent now."""
        return tuple(self._streams)

    def current(self) -> int:
        """How many of them hold the agent's current snapshot."""
        snapshot = self._snapshot()
        if snapshot is None:
            return 0
        return sum(1 for stream in self._streams.values() if stream.current(snapshot))

    def take(self, address: HostPort) -> PassiveStream | None:
        """The passive stream to `address`, handed to the caller (who must close it); None when
        there is none open (the caller dials a new stream)."""
        stream = self._streams.pop(address, None)
        if stream is None or stream.ended.is_set():
            return None
        stream.hand_over()
        return stream

    async def run(self) -> None:
        """Keep the passive streams until cancelled."""
        keepers: dict[HostPort, asyncio.Task[None]] = {}
        async with asyncio.TaskGroup() as group:
            while True:
                snapshot, data, version = self._current_snapshot()
                members = await self._members() if snapshot is not None else ()
                leader = self._leader()
                wanted = {address for address in members if address != leader}
                for address in [a for a, task in keepers.items() if task.done()]:
                    del keepers[address]
                for address in wanted - keepers.keys():
                    keepers[address] = group.create_task(self._keep(address))
                for address in keepers.keys() - wanted:
                    keepers.pop(address).cancel()
                if snapshot is not None:
                    for stream in [s for s in self._streams.values() if not s.holds_data(
                            data, version)]:
                        try:
                            async with asyncio.timeout(self._open_timeout):
                                await stream.refresh(snapshot, data, version)
                        except (grpc.aio.AioRpcError, OSError, asyncio.InvalidStateError,
                                TimeoutError):
                            stream.ended.set()  # broken: its keeper opens another
                await self._until_woken()

    async def _until_woken(self) -> None:
        """Wait for a `wake()` and then `SETTLE_SECONDS` more (one snapshot for a burst), or
        `refresh_interval` in all. A timer ends the wait, not a timeout: 10,000 agents' loops
        each raise no exception every interval (ADR 0018)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._refresh_interval
        timer = loop.call_at(deadline, self._wake.set)
        try:
            await self._wake.wait()
            if self._woken and (settle := min(SETTLE_SECONDS, deadline - loop.time())) > 0:
                await asyncio.sleep(settle)
        finally:
            timer.cancel()
            self._wake.clear()
            self._woken = False

    def _current_snapshot(self) -> tuple[Reregister | None, bytes, Hashable]:
        """The agent's snapshot, its bytes and its version. Built again when the version moved;
        without a version, only after a `wake()`: every change of the agent's state goes with
        a message sent or received, and a resumption compares the agent's whole state anyway
        (`PassiveStream.current`)."""
        version = self.version()
        stale = self._dirty if self._version is None else (
            self._last is None or self._last[2] != version)
        if stale or self._last is None:
            self._dirty = False
            snapshot = self._snapshot()
            if snapshot is None:
                return None, b"", None
            self._last = (snapshot, snapshot.SerializeToString(), version)
        return self._last

    async def _keep(self, address: HostPort) -> None:
        """Hold a passive stream to `address` (reopening it as needed) until cancelled, until
        the stream is taken, or until the link uses that master."""
        backoff = Backoff(min(1.0, self._max_backoff), self._max_backoff, jitter=0.5)
        while True:
            version = self.version()
            snapshot = self._snapshot()
            if snapshot is None or self._leader() == address:
                return  # nothing to stand by with, or the link uses that master now
            try:
                stream = await PassiveStream.open(
                    address, snapshot, tls=self._tls, metadata=self._metadata,
                    answer_within=self._open_timeout, version=version)
            except (grpc.aio.AioRpcError, StreamEnded, TimeoutError, OSError) as exc:
                log.debug("no passive stream to a master; retrying", master=str(address),
                          error=str(exc) or type(exc).__name__)
                await asyncio.sleep(backoff.next_delay())
                continue
            backoff.reset()
            self._streams[address] = stream
            log.debug("passive stream open", master=str(address))
            try:
                await stream.ended.wait()
            finally:
                if self._streams.get(address) is stream:
                    del self._streams[address]
                if not stream.taken:
                    await stream.close()
            if stream.taken:
                return
            await asyncio.sleep(backoff.next_delay())
