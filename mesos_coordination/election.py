"""Leader election for masters (ADR 0011): the contender half of Mesos' split.

A master builds a contender with `create_contender`, awaits `start()`, then follows
`leadership()` from one task and acts as leader only while the latest value says `leading`:

    async for state in contender.leadership():   # the current state first, then each change
        if state.leading: become leader with fencing epoch state.epoch
        else: stop acting as leader; state.leader (if known) is who to redirect callers to
    # LeadershipLost raised: the ZooKeeper session is gone; exit and let the supervisor restart

With ZooKeeper, each contender owns an EPHEMERAL SEQUENTIAL znode `<path>/json.info_N` holding
its MasterInfo as JSON (see `mesos_coordination.zookeeper`); the lowest N leads and N is its epoch.
Connection states map as kazoo's docs prescribe: SUSPENDED -> not leading at once (leader
unknown); CONNECTED again with the same session -> leading again if still lowest (same epoch);
LOST, or SUSPENDED for longer than the session timeout (as Mesos does), or our znode deleted
-> not leading and then `LeadershipLost` for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from kazoo.exceptions import KazooException

from mesos_coordination.store import StoreError
from mesos_coordination.zookeeper import (
    CONNECTED,
    LOST,
    MEMBER_PREFIX,
    SUSPENDED,
    GroupReader,
    Wakeup,
    ZooKeeperSession,
    encode_master_info,
    master_address,
    member_sequence,
    public_read_acl,
)
from mesos_runtime.tasks import cancel_and_wait
from mesos_values.addresses import ZooKeeperUrl, parse_zk_url
from protos import mesos_pb2

log = structlog.get_logger("mesos_coordination.election")

STANDALONE_EPOCH = 0


@dataclass(frozen=True, slots=True)
class Leadership:
    """One contender's view of the election.

    `leading` is True only while this master may act as leader. `epoch` is the current leader's
    epoch (its znode sequence number; `STANDALONE_EPOCH` without ZooKeeper) and `leader` its
    MasterInfo (this master's own when leading); both are None while the leader is unknown.
    """

    leading: bool
    epoch: int | None
    leader: mesos_pb2.MasterInfo | None


NOT_LEADING = Leadership(leading=False, epoch=None, leader=None)


class LeadershipLost(Exception):
    """The contender left the election for good (its ZooKeeper session is gone)."""


class Contender(Protocol):
    """Takes part in the election on behalf of one master."""

    @property
    def current(self) -> Leadership:
        """The latest state, updated as soon as the loop hears of a change."""
        ...

    @property
    def members(self) -> tuple[mesos_pb2.MasterInfo, ...]:
        """Every contender in the election as last read (leader first), this one included."""
        ...

    async def start(self) -> None:
        """Enter the election; `current` is accurate when this returns."""
        ...

    def leadership(self) -> AsyncIterator[Leadership]:
        """Yield the current state, then every change; intermediate states may be coalesced.

        After `close()` a final NOT_LEADING is yielded and the iteration ends; when leadership is
        lost for good, NOT_LEADING is yielded and then `LeadershipLost` raised."""
        ...

    async def close(self) -> None:
        """Stop leading at once and leave the election."""
        ...


class _Feed:
    """The latest Leadership and the iterators that follow it (all inside the event loop)."""

    def __init__(self) -> None:
        self.current = NOT_LEADING
        self.finished = False
        self._lost: str | None = None
        self._wakeup = Wakeup()

    def publish(self, state: Leadership) -> None:
        if self.finished or state == self.current:
            return
        self.current = state
        self._wakeup.notify()

    def finish(self, lost: str | None = None) -> None:
        if self.finished:
            return
        self.publish(NOT_LEADING)
        self.finished = True
        self._lost = lost
        self._wakeup.notify()

    async def follow(self) -> AsyncIterator[Leadership]:
        last: Leadership | None = None
        while True:
            change = self._wakeup.event()
            if self.current != last:
                last = self.current
                yield last
                continue
            if self.finished:
                if self._lost is not None:
                    raise LeadershipLost(self._lost)
                return
            await change.wait()


class StandaloneContender:
    """The only master: leads from `start()` until `close()`, with epoch `STANDALONE_EPOCH`."""

    def __init__(self, info: mesos_pb2.MasterInfo) -> None:
        self.info = info
        self._feed = _Feed()

    @property
    def current(self) -> Leadership:
        return self._feed.current

    @property
    def members(self) -> tuple[mesos_pb2.MasterInfo, ...]:
        return (self.info,)

    async def start(self) -> None:
        self._feed.publish(Leadership(leading=True, epoch=STANDALONE_EPOCH, leader=self.info))

    def leadership(self) -> AsyncIterator[Leadership]:
        return self._feed.follow()

    async def close(self) -> None:
        self._feed.finish()


class ZooKeeperContender:
    """Contends through a ZooKeeper election group; see the module docstring for the states.

    `start()` waits (as long as it takes) for a ZooKeeper session, creates this master's znode
    and reads the group; kazoo errors during start propagate after the session is closed.
    """

    def __init__(
        self, url: ZooKeeperUrl, info: mesos_pb2.MasterInfo, *, session_timeout: float = 10.0
    ) -> None:
        self.url = url
        self.info = info
        self.session_timeout = session_timeout
        self._session = ZooKeeperSession(
            url, session_timeout=session_timeout, on_state=self._on_state
        )
        self._reader = GroupReader(self._session, url.path, all_members=True)
        self._feed = _Feed()
        self._members: tuple[mesos_pb2.MasterInfo, ...] = ()
        self._member: str | None = None
        self._epoch: int | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._log = log.bind(path=url.path, master=str(master_address(info)))

    @property
    def current(self) -> Leadership:
        return self._feed.current

    @property
    def members(self) -> tuple[mesos_pb2.MasterInfo, ...]:
        return self._members

    @property
    def epoch(self) -> int | None:
        """This master's own epoch: the sequence number of its znode once created."""
        return self._epoch

    @property
    def session(self) -> ZooKeeperSession:
        """The ZooKeeper session this contender's znode lives in (the registry writes in it)."""
        return self._session

    @property
    def member_path(self) -> str | None:
        """The path of this master's election znode once created."""
        return None if self._member is None else f"{self.url.path}/{self._member}"

    async def start(self) -> None:
        if self._member is not None or self._feed.finished:
            raise RuntimeError("a contender starts once")
        session = self._session
        try:
            await session.start()
            public = public_read_acl(self.url)
            await session.call(session.client.ensure_path_async, self.url.path, acl=public)
            created = await session.call(
                session.client.create_async,
                f"{self.url.path}/{MEMBER_PREFIX}",
                encode_master_info(self.info),
                ephemeral=True,
                sequence=True,
                acl=public,
            )
            self._member = str(created).rsplit("/", 1)[-1]
            self._epoch = member_sequence(self._member)
            self._log = self._log.bind(znode=f"{self.url.path}/{self._member}")
            self._log.info("entered the election", epoch=self._epoch)
            change = session.next_change()
            failed = await self._refresh()
            if self._feed.finished:
                raise LeadershipLost("the ZooKeeper session ended while entering the election")
        except BaseException:
            self._feed.finish()
            await session.close()
            raise
        self._task = asyncio.create_task(self._follow(change, failed), name="election-watch")

    def leadership(self) -> AsyncIterator[Leadership]:
        return self._feed.follow()

    async def close(self) -> None:
        self._feed.finish()
        self._cancel_expiry()
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait({self._task})
            self._task = None
        if self._member is not None and self._session.connected:
            try:
                async with asyncio.timeout(self.session_timeout):
                    await self._session.call(
                        self._session.client.delete_async, f"{self.url.path}/{self._member}"
                    )
            except (KazooException, TimeoutError) as exc:
                self._log.info("could not delete our znode; the session end removes it",
                               error=repr(exc))
        await self._session.close()
        self._log.info("left the election")

    async def _follow(self, change: asyncio.Event, failed: bool) -> None:
        """Re-read the group on every watch or connection change (and retry failed reads)."""
        try:
            while not self._feed.finished:
                if failed:
                    try:
                        async with asyncio.timeout(1.0):
                            await change.wait()
                    except TimeoutError:
                        pass
                else:
                    await change.wait()
                change = self._session.next_change()
                failed = await self._refresh()
        except Exception as exc:
            self._log.exception("election watch failed")
            self._lose(f"election watch failed: {exc!r}")

    async def _refresh(self) -> bool:
        """Read the group and publish the outcome; True when the read failed."""
        if not self._session.connected or self._feed.finished:
            return False
        try:
            view = await self._reader.read()
        except KazooException as exc:
            self._log.warning("reading the election group failed", error=repr(exc))
            return True
        if self._member not in view.members:
            self._lose("our znode disappeared from the election group")
            return False
        self._members = view.infos
        if not self._session.connected:
            return False  # SUSPENDED while reading: the next CONNECTED triggers a fresh read
        leader = view.leader
        if leader is None:
            state = NOT_LEADING
        elif leader.name == self._member:
            state = Leadership(leading=True, epoch=leader.sequence, leader=self.info)
        else:
            state = Leadership(leading=False, epoch=leader.sequence, leader=leader.info)
        if state != self._feed.current:
            if state.leading:
                self._log.info("elected leading master", epoch=state.epoch)
            else:
                self._log.info(
                    "standing by",
                    leader=str(master_address(leader.info)) if leader else None,
                    leader_epoch=state.epoch,
                )
        self._feed.publish(state)
        return False

    def _on_state(self, state: str) -> None:
        """Connection changes, applied in the loop before any waiter wakes."""
        if self._feed.finished:
            return
        if state == SUSPENDED:
            if self._feed.current.leading:
                self._log.warning("ZooKeeper connection suspended: no longer acting as leader")
            self._feed.publish(NOT_LEADING)
            if self._expiry is None and self._member is not None:
                self._expiry = asyncio.get_running_loop().call_later(
                    self.session_timeout,
                    self._lose,
                    f"disconnected from ZooKeeper for longer than the session timeout "
                    f"({self.session_timeout}s)",
                )
        elif state == CONNECTED:
            self._cancel_expiry()
        elif state == LOST and self._member is not None:
            self._lose("the ZooKeeper session expired")

    def _lose(self, reason: str) -> None:
        if self._feed.finished:
            return
        self._cancel_expiry()
        self._log.error("lost leadership for good", reason=reason)
        self._feed.finish(lost=reason)

    def _cancel_expiry(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None


def create_contender(
    zk: str | None, info: mesos_pb2.MasterInfo, *, session_timeout: float = 10.0
) -> Contender:
    """A ZooKeeper contender for `--zk zk://...`, a standalone one when `zk` is empty or None."""
    if zk:
        return ZooKeeperContender(parse_zk_url(zk), info, session_timeout=session_timeout)
    return StandaloneContender(info)


async def serve_terms(
    contender: Contender,
    term: Callable[[Leadership], Coroutine[Any, Any, None]],
    on_change: Callable[[Leadership, bool], None] | None = None,
) -> None:
    """Run `term(state)` as one task while `contender` says this process leads (a "term"),
    cancelling it as soon as leadership ends; `on_change(state, term_running)` sees every state
    first. Returns once the contender is closed. Raises `LeadershipLost` when leadership is
    lost for good, or when a term fails because its store failed (`StoreError`: it was fenced
    out or cannot write), so the process exits and its supervisor restarts it.
    """
    try:
        async with asyncio.TaskGroup() as group:
            running: asyncio.Task[None] | None = None
            async for state in contender.leadership():
                if on_change is not None:
                    on_change(state, running is not None)
                if state.leading and running is None:
                    running = group.create_task(term(state))
                elif not state.leading and running is not None:
                    await cancel_and_wait(running)
                    running = None
            if running is not None:
                await cancel_and_wait(running)
    except BaseExceptionGroup as group:
        raise _term_failure(group) from None


def _term_failure(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The one exception to raise for a failed term (task groups wrap them)."""
    leaves = list(_leaves(group))
    for error in leaves:
        if isinstance(error, StoreError):
            log.error("the store failed; stepping down", reason=str(error))
            return LeadershipLost(f"store: {error}")
    for error in leaves:
        if isinstance(error, LeadershipLost):
            return error
    return group


def _leaves(error: BaseException) -> Iterator[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            yield from _leaves(inner)
    else:
        yield error
