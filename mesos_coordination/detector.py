"""Leader detection (ADR 0011): agents and schedulers find the leading master here.

`create_detector` turns the `--master` value into a detector. A standalone detector always
names the one configured master; a ZooKeeper detector follows the election group that the
masters' contenders (`mesos_coordination.election`) maintain under the URL's path.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

import structlog
from kazoo.exceptions import KazooException

from mesos_coordination.zookeeper import GroupReader, ZooKeeperSession, master_address
from mesos_values.addresses import HostPort, ZooKeeperUrl, parse_host_port, parse_zk_url

log = structlog.get_logger("mesos_coordination.detector")


class MasterDetector(Protocol):
    """Tells where the leading master is."""

    async def detect(self, previous: HostPort | None = None) -> HostPort:
        """Return the leader; when `previous` is given, wait until the leader differs from it
        or until the caller should retry the same address (standalone detectors return at once)."""
        ...

    async def leader_other_than(self, previous: HostPort) -> HostPort:
        """Wait, however long it takes, until the leader is a master other than `previous`,
        and return it (a standalone detector's never is: it waits until cancelled)."""
        ...

    async def close(self) -> None:
        """Release any connection the detector holds."""
        ...


class StandaloneDetector:
    """A detector for a single, fixed master address."""

    def __init__(self, leader: HostPort) -> None:
        self.leader = leader

    async def detect(self, previous: HostPort | None = None) -> HostPort:
        return self.leader

    async def leader_other_than(self, previous: HostPort) -> HostPort:
        if self.leader != previous:
            return self.leader
        await asyncio.get_running_loop().create_future()  # never done: waits until cancelled
        raise AssertionError("unreachable")

    async def close(self) -> None:
        return None


class ZooKeeperDetector:
    """Finds the leading master in a ZooKeeper election group.

    The leader is the member with the lowest sequence number whose data parses as a MasterInfo
    (members with unparseable data are skipped and logged). The session is opened lazily by the
    first `detect()`, so building a detector does no I/O. `detect()`:

    - returns the leader's address at once when there is one and it differs from `previous`;
    - with no leader (or no connection to ZooKeeper), waits until there is one;
    - when the leader equals `previous`, waits until it changes, or at most `retry_interval`
      seconds and then returns the same address, so a caller whose connection failed for a
      transient reason retries it.
    """

    def __init__(
        self, url: ZooKeeperUrl, *, session_timeout: float = 10.0, retry_interval: float = 1.0
    ) -> None:
        self.url = url
        self.session_timeout = session_timeout
        self.retry_interval = retry_interval
        self._session: ZooKeeperSession | None = None
        self._reader: GroupReader | None = None
        self._closed = False
        # (the change event current when the group was last read, the leader's address, every
        # member's address) and the read in flight: see `_view`.
        self._cached: tuple[asyncio.Event, HostPort | None, tuple[HostPort, ...]] | None = None
        self._reading: asyncio.Future[None] | None = None
        # `leader_other_than`: how many wait, the task reading the group for them, and the
        # event it sets after each read.
        self._waiting = 0
        self._watcher: asyncio.Task[None] | None = None
        self._viewed = asyncio.Event()

    async def detect(self, previous: HostPort | None = None) -> HostPort:
        session, reader = self._open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_interval
        while True:
            if self._closed:
                raise RuntimeError("the detector was closed")
            change = session.next_change()
            address: HostPort | None = None
            failed = False
            if session.connected:
                try:
                    address = await self._leader(session, reader)
                except KazooException as exc:
                    failed = True
                    log.warning("reading the master group failed", path=self.url.path,
                                error=repr(exc))
            timeout: float | None = self.retry_interval if failed else None
            if address is not None:
                if address != previous or loop.time() >= deadline:
                    return address
                timeout = deadline - loop.time()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await change.wait()

    async def leader_other_than(self, previous: HostPort) -> HostPort:
        """As `detect(previous)`, without returning `previous` after `retry_interval`. A waiter
        wakes when a read of the group after a change is done, and takes its leader: one task
        (`_watch`) reads the group for every waiter (one detector serves every link of a process:
        thousands of hollow agents wait for an election on it, ADR 0018)."""
        session, reader = self._open()
        self._waiting += 1
        try:
            while True:
                if self._closed:
                    raise RuntimeError("the detector was closed")
                cached = self._cached
                if session.connected and cached is not None and not cached[0].is_set() \
                        and cached[1] is not None and cached[1] != previous:
                    return cached[1]
                watcher = self._watcher
                if watcher is not None and watcher.done():
                    self._watcher = None  # failed (not a KazooException): raised here once
                    if not watcher.cancelled() and (error := watcher.exception()) is not None:
                        raise error
                if self._watcher is None:
                    self._watcher = asyncio.create_task(self._watch(session, reader))
                await self._viewed.wait()
        finally:
            self._waiting -= 1
            if not self._waiting and self._watcher is not None:
                self._watcher.cancel()  # no one waits: the next waiter starts another
                self._watcher = None

    async def _watch(self, session: ZooKeeperSession, reader: GroupReader) -> None:
        """While links wait in `leader_other_than`: read the group when it changed since the
        last read, then wake them all with its result (`_viewed`); after a failed read, read
        again after `retry_interval` or the next change."""
        try:
            while True:
                change = session.next_change()
                timeout: float | None = None
                if session.connected and (self._cached is None or self._cached[0].is_set()):
                    try:
                        await self._view(session, reader)
                    except KazooException as exc:
                        timeout = self.retry_interval
                        log.warning("reading the master group failed", path=self.url.path,
                                    error=repr(exc))
                    else:
                        self._wake_waiters()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await change.wait()
        finally:
            self._wake_waiters()  # cancelled, closed or failed: the waiters look again

    def _wake_waiters(self) -> None:
        viewed, self._viewed = self._viewed, asyncio.Event()
        viewed.set()

    async def members(self) -> tuple[HostPort, ...]:
        """Every master in the election group, leader first (empty while ZooKeeper is not
        reachable); agents keep passive streams to the standbys among them (ADR 0018)."""
        session, reader = self._open()
        if not session.connected:
            return ()
        try:
            _, members = await self._view(session, reader)
        except KazooException:
            return ()
        return members

    async def _leader(self, session: ZooKeeperSession, reader: GroupReader) -> HostPort | None:
        return (await self._view(session, reader))[0]

    async def _view(
        self, session: ZooKeeperSession, reader: GroupReader
    ) -> tuple[HostPort | None, tuple[HostPort, ...]]:
        """The leader's and the members' addresses as last read, if no change was notified
        since; otherwise one read of the group, shared by every caller that asks meanwhile (one
        detector may serve many links: the hollow agents of a process share one)."""
        while True:
            if self._cached is not None and not self._cached[0].is_set():
                return self._cached[1], self._cached[2]
            reading = self._reading
            if reading is None:
                reading = self._reading = asyncio.ensure_future(self._read(session, reader))
                reading.add_done_callback(self._read_done)
            await asyncio.shield(reading)

    async def _read(self, session: ZooKeeperSession, reader: GroupReader) -> None:
        change = session.next_change()  # taken first: a change during the read invalidates it
        view = await reader.read()
        self._cached = (change, view.leader.address if view.leader is not None else None,
                        tuple(master_address(info) for info in view.infos))

    def _read_done(self, reading: asyncio.Future[None]) -> None:
        if self._reading is reading:
            self._reading = None
        if not reading.cancelled():
            reading.exception()  # retrieved here; each waiter gets it through `shield`

    async def close(self) -> None:
        """End the ZooKeeper session; a `detect()` still waiting raises RuntimeError."""
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()  # its end wakes the waiters, who raise
            self._watcher = None
        if self._session is not None:
            await self._session.close()

    def _open(self) -> tuple[ZooKeeperSession, GroupReader]:
        if self._closed:
            raise RuntimeError("the detector is closed")
        if self._session is None or self._reader is None:
            self._session = ZooKeeperSession(self.url, session_timeout=self.session_timeout)
            self._reader = GroupReader(self._session, self.url.path, all_members=True)
        self._session.begin()
        return self._session, self._reader


def create_detector(master: str, *, zk_session_timeout: float = 10.0) -> MasterDetector:
    """Build a detector for `HOST:PORT` or `zk://[user:pass@]h1:p,h2:p/path` without any I/O;
    raises ValueError on bad input."""
    if master.startswith("zk://"):
        return ZooKeeperDetector(parse_zk_url(master), session_timeout=zk_session_timeout)
    return StandaloneDetector(parse_host_port(master, what="master address"))
