"""ZooKeeper plumbing shared by the master contender and the leader detector (ADRs 0009 and 0011).

kazoo runs its own threads; everything here hands their results to the event loop:

    kazoo connection thread --state--> call_soon_threadsafe --> ZooKeeperSession.state, wake-up
    kazoo callback thread  --watch/result--> call_soon_threadsafe --> wake-up / awaited future

The election group follows Mesos: each contending master owns an EPHEMERAL SEQUENTIAL znode
`<path>/json.info_<10 digits>` holding its `MasterInfo` as JSON; the owner of the lowest sequence
number whose data parses is the leader, and that sequence number is its epoch.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from google.protobuf import json_format
from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import NoNodeError
from kazoo.retry import KazooRetry
from kazoo.security import ACL, READ_ACL_UNSAFE, make_digest_acl

from mesos_values.addresses import HostPort, ZooKeeperUrl
from protos import mesos_pb2

log = structlog.get_logger("mesos_coordination.zookeeper")

MEMBER_PREFIX = "json.info_"
GET_MANY_WINDOW = 256
"""Reads `ZooKeeperSession.get_many` keeps in flight."""

# kazoo's connection states (KazooState), as `ZooKeeperSession.state` and `on_state` see them.
CONNECTED: str = KazooState.CONNECTED
SUSPENDED: str = KazooState.SUSPENDED
LOST: str = KazooState.LOST


def make_client(url: ZooKeeperUrl, *, session_timeout: float) -> KazooClient:
    """A kazoo client for `url`, not yet started.

    Digest credentials (`zk://user:pass@...`) become the session's auth data, and the nodes it
    creates are readable and writable by that identity alone (state, registry, app and job
    definitions: ADR 0013); the election's nodes, which detectors must read, are created with
    `public_read_acl` instead, as Mesos does.
    """
    auth_data = None
    default_acl = None
    if url.credentials is not None:
        user, password = url.credentials
        auth_data = [("digest", f"{user}:{password}")]
        default_acl = [make_digest_acl(user, password, all=True)]
    reconnect = KazooRetry(
        max_tries=-1, delay=0.05, backoff=2, max_jitter=0.1, max_delay=min(1.0, session_timeout / 4)
    )
    return KazooClient(
        hosts=url.hosts,
        timeout=session_timeout,
        auth_data=auth_data,
        default_acl=default_acl,
        connection_retry=reconnect,
    )


def public_read_acl(url: ZooKeeperUrl) -> list[ACL] | None:
    """The ACL of nodes everyone may read (the election group and its members): the creator
    may do anything, the world may read. None without credentials (ZooKeeper's open ACL)."""
    if url.credentials is None:
        return None
    user, password = url.credentials
    return [make_digest_acl(user, password, all=True), *READ_ACL_UNSAFE]


def member_sequence(name: str) -> int | None:
    """The sequence number of a group member's znode name, or None for other children."""
    if not name.startswith(MEMBER_PREFIX):
        return None
    suffix = name[len(MEMBER_PREFIX) :]
    return int(suffix) if suffix.isdigit() else None


def encode_master_info(info: mesos_pb2.MasterInfo) -> bytes:
    """The znode data a contending master publishes."""
    return json_format.MessageToJson(info, preserving_proto_field_name=True).encode()


def decode_master_info(data: bytes) -> mesos_pb2.MasterInfo | None:
    """Parse a member's data; None when it is not a MasterInfo with an address and a port."""
    info = mesos_pb2.MasterInfo()
    try:
        json_format.Parse(data.decode(), info, ignore_unknown_fields=True)
    except (UnicodeDecodeError, json_format.ParseError):
        return None
    if not (info.address or info.hostname) or not 0 < info.port < 65536:
        return None
    return info


def master_address(info: mesos_pb2.MasterInfo) -> HostPort:
    """Where a master serves gRPC: its address (or hostname) and port."""
    return HostPort(info.address or info.hostname, info.port)


@dataclass(frozen=True, slots=True)
class GroupLeader:
    """The leading member of an election group."""

    name: str
    sequence: int
    info: mesos_pb2.MasterInfo

    @property
    def address(self) -> HostPort:
        return master_address(self.info)


@dataclass(frozen=True, slots=True)
class GroupView:
    """One read of an election group: member names in sequence order and the leader, and
    (from a reader built with `all_members`) every member's MasterInfo in sequence order."""

    members: tuple[str, ...]
    leader: GroupLeader | None
    infos: tuple[mesos_pb2.MasterInfo, ...] = ()


def order_members(children: Iterable[str]) -> list[tuple[int, str]]:
    """The group members among `children`, lowest sequence number first."""
    return sorted(
        (sequence, name)
        for name in children
        if (sequence := member_sequence(name)) is not None
    )


class Wakeup:
    """Wakes every waiter that took `event()` before the next `notify()`."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def event(self) -> asyncio.Event:
        """The event the next `notify()` sets; take it before checking a condition."""
        return self._event

    def notify(self) -> None:
        self._event.set()
        self._event = asyncio.Event()


class ZooKeeperSession:
    """A kazoo client whose connection states, watches and results arrive in the event loop.

    Use from one event loop: `begin()` (or `await start()`), `await call(client.xxx_async, ...)`,
    `await close()`. `state` is the loop's view of kazoo's connection state; every state change and
    every watch notification wakes the holders of `next_change()`. `on_state` runs in the loop
    before those waiters wake.
    """

    def __init__(
        self,
        url: ZooKeeperUrl,
        *,
        session_timeout: float,
        on_state: Callable[[str], None] | None = None,
    ) -> None:
        self.url = url
        self.client = make_client(url, session_timeout=session_timeout)
        self.state = LOST
        self._on_state = on_state
        self._wakeup = Wakeup()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    def next_change(self) -> asyncio.Event:
        """The event set by the next connection-state change or watch notification."""
        return self._wakeup.event()

    def begin(self) -> None:
        """Start connecting in kazoo's threads (idempotent); must run inside the event loop."""
        if self._closed:
            raise RuntimeError("the ZooKeeper session is closed")
        if self._loop is not None:
            return
        self._loop = asyncio.get_running_loop()
        self.client.add_listener(self._listener)
        self.client.start_async()  # spawns kazoo's threads and returns at once

    async def start(self) -> None:
        """Connect and wait until the session is established (as long as it takes); raises
        RuntimeError if the session is closed meanwhile."""
        self.begin()
        while not self.connected:
            await self.next_change().wait()
            if self._closed:
                raise RuntimeError("the ZooKeeper session was closed while connecting")

    async def call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Await one of the client's `*_async` methods; kazoo's exceptions propagate."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("the ZooKeeper session has not begun")
        future: asyncio.Future[Any] = loop.create_future()

        def settled(result: Any) -> None:  # runs in a kazoo thread
            try:
                value, error = result.get_nowait(), None
            except Exception as exc:
                value, error = None, exc
            self._post(_resolve, future, value, error)

        method(*args, **kwargs).rawlink(settled)
        return await future

    async def get_many(self, paths: Sequence[str]) -> list[bytes]:
        """The data of many znodes, read pipelined by a worker thread with at most
        `GET_MANY_WINDOW` reads in flight; kazoo's exceptions propagate (the first failed
        read's).

        `call` per znode costs the loop a future, a cross-thread wake-up and two socket
        writes per read: a fifth of a new leader's busy main thread when it read 10,000
        registry entries that way. All of them in flight at once let ZooKeeper queue
        megabytes of answers on the connection: a busy client reads them slowly, the server
        stops reading from it meanwhile, and a 2 s session can expire."""
        client = self.client

        def read_all() -> list[bytes]:
            values: list[bytes] = []
            in_flight: deque[Any] = deque()
            for path in paths:
                in_flight.append(client.get_async(path))
                if len(in_flight) >= GET_MANY_WINDOW:
                    values.append(bytes(in_flight.popleft().get()[0]))
            values.extend(bytes(result.get()[0]) for result in in_flight)
            return values

        return await asyncio.to_thread(read_all)

    def watch(self, _event: Any) -> None:
        """A kazoo watch function that wakes the loop's waiters (runs in a kazoo thread)."""
        self._post(self._wakeup.notify)

    async def close(self) -> None:
        """End the session (its ephemeral nodes go with it) and release kazoo's threads."""
        if self._closed:
            return
        self._closed = True
        self.client.remove_listener(self._listener)
        self.state = LOST
        self._wakeup.notify()
        await asyncio.to_thread(self.client.stop)
        self.client.close()

    def _listener(self, state: str) -> None:  # runs in kazoo's connection thread; must not block
        self._post(self._apply_state, state)

    def _apply_state(self, state: str) -> None:
        if self._closed:
            return
        self.state = state
        log.info("zookeeper connection state", state=state, servers=self.url.hosts)
        if self._on_state is not None:
            self._on_state(state)
        self._wakeup.notify()

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is waiting
            loop.call_soon_threadsafe(callback, *args)


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


class GroupReader:
    """Reads an election group and leaves a watch so the session wakes on the next change."""

    def __init__(self, session: ZooKeeperSession, path: str, *, all_members: bool = False) -> None:
        self.session = session
        self.path = path
        self.all_members = all_members  # read every member's data, not just the leader's
        self._reported: set[str] = set()

    async def read(self) -> GroupView:
        """The members and the leader (lowest member whose data parses); kazoo errors propagate."""
        client = self.session.client
        while True:
            try:
                children = await self.session.call(
                    client.get_children_async, self.path, watch=self.session.watch
                )
            except NoNodeError:
                watch = self.session.watch
                if await self.session.call(client.exists_async, self.path, watch=watch):
                    continue  # created between the two calls
                return GroupView((), None)
            members = order_members(children)
            names = tuple(name for _, name in members)
            leader: GroupLeader | None = None
            infos: list[mesos_pb2.MasterInfo] = []
            for sequence, name in members:
                try:
                    data, _stat = await self.session.call(client.get_async, f"{self.path}/{name}")
                except NoNodeError:
                    continue  # left meanwhile; the children watch fires as well
                info = decode_master_info(bytes(data))
                if info is not None:
                    infos.append(info)
                    if leader is None:
                        leader = GroupLeader(name, sequence, info)
                    if not self.all_members:
                        break
                elif name not in self._reported:
                    self._reported.add(name)
                    log.warning(
                        "skipping a group member whose data is not a MasterInfo",
                        znode=f"{self.path}/{name}",
                    )
            return GroupView(names, leader, tuple(infos) if self.all_members else ())
