"""Leader election against a real ZooKeeper: contenders (mesos_master.election) and the
ZooKeeper detector (mesos_coordination.detector) in one process, each with its own session."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from mesos_coordination.detector import ZooKeeperDetector, create_detector
from mesos_coordination.election import (
    NOT_LEADING,
    Leadership,
    LeadershipLost,
    ZooKeeperContender,
)
from mesos_coordination.zookeeper import GroupReader, GroupView
from mesos_values.addresses import HostPort, parse_zk_url
from protos import mesos_pb2
from tests.zookeeper import ZooKeeperEnsemble, zookeeper

pytestmark = pytest.mark.integration

SESSION_TIMEOUT = 2.0
WAIT = 10.0


def master(port: int) -> mesos_pb2.MasterInfo:
    return mesos_pb2.MasterInfo(
        id=f"master-{port}", hostname="localhost", address="127.0.0.1", port=port, version="test"
    )


def address(port: int) -> HostPort:
    return HostPort("127.0.0.1", port)


class Recorder:
    """Follows one contender's `leadership()` in a task, stamping each state with the time."""

    def __init__(self, contender: ZooKeeperContender) -> None:
        self.contender = contender
        self.states: list[tuple[float, Leadership]] = []
        self.lost: LeadershipLost | None = None
        self.ended = False
        self._changed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for state in self.contender.leadership():
                self.states.append((time.monotonic(), state))
                self._notify()
        except LeadershipLost as exc:
            self.lost = exc
        self.ended = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def last(self) -> Leadership:
        return self.states[-1][1]

    def first_time(self, predicate: Callable[[Leadership], bool]) -> float:
        return next(stamp for stamp, state in self.states if predicate(state))

    async def wait(self, condition: Callable[[Recorder], bool], what: str,
                   within: float = WAIT) -> None:
        try:
            async with asyncio.timeout(within):
                while not condition(self):
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"timed out waiting for {what}; states: {[s for _, s in self.states]}"
            ) from None

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.wait({self._task})


class Election:
    """Contenders, recorders and detectors on one group path, all closed at the end."""

    def __init__(self, ensemble: ZooKeeperEnsemble, credentials: str = "") -> None:
        self.ensemble = ensemble
        self.path = f"/mesos-{uuid.uuid4().hex[:8]}"
        self.url = f"zk://{credentials}{ensemble.hosts}{self.path}"
        self.contenders: list[ZooKeeperContender] = []
        self.recorders: list[Recorder] = []
        self.detectors: list[ZooKeeperDetector] = []

    async def contender(self, port: int, session_timeout: float = SESSION_TIMEOUT
                        ) -> tuple[ZooKeeperContender, Recorder]:
        contender = ZooKeeperContender(parse_zk_url(self.url), master(port),
                                       session_timeout=session_timeout)
        self.contenders.append(contender)
        async with asyncio.timeout(WAIT):
            await contender.start()
        recorder = Recorder(contender)
        self.recorders.append(recorder)
        return contender, recorder

    def detector(self, retry_interval: float = 1.0) -> ZooKeeperDetector:
        detector = ZooKeeperDetector(parse_zk_url(self.url), session_timeout=SESSION_TIMEOUT,
                                     retry_interval=retry_interval)
        self.detectors.append(detector)
        return detector

    async def leader_and_standby(self, retry_interval: float
                                 ) -> tuple[ZooKeeperContender, ZooKeeperDetector]:
        """Contenders at 5001 (leading, returned) and 5002, and a detector that has found
        5001 leading."""
        leader, _ = await self.contender(5001)
        await self.contender(5002)
        detector = self.detector(retry_interval=retry_interval)
        async with asyncio.timeout(WAIT):
            assert await detector.detect() == address(5001)
        return leader, detector

    async def close(self) -> None:
        for contender in self.contenders:
            await contender.close()
        for recorder in self.recorders:
            await recorder.stop()
        for detector in self.detectors:
            await detector.close()


@pytest.fixture(scope="module")
def zk(shared_zookeeper: ZooKeeperEnsemble) -> ZooKeeperEnsemble:
    """The shared ZooKeeper: every test here keeps to a random path of its own."""
    return shared_zookeeper


@pytest.fixture
async def election(zk: ZooKeeperEnsemble) -> AsyncIterator[Election]:
    group = Election(zk)
    try:
        yield group
    finally:
        await group.close()


def raw_client(hosts: str) -> KazooClient:
    client = KazooClient(hosts=hosts, timeout=5.0)
    client.start(timeout=WAIT)
    return client


def expire_session(hosts: str, client_id: tuple[int, bytes]) -> None:
    """Take over a session from a second connection and close it: ZooKeeper ends the session,
    its ephemeral nodes go, and the original client hears SESSION_EXPIRED when it reconnects."""
    thief = KazooClient(hosts=hosts, client_id=client_id, timeout=SESSION_TIMEOUT)
    thief.start(timeout=WAIT)
    thief.stop()
    thief.close()


async def test_one_leader_among_three_contenders(election: Election) -> None:
    a, rec_a = await election.contender(5001)
    b, rec_b = await election.contender(5002)
    c, rec_c = await election.contender(5003)

    assert a.epoch is not None and b.epoch is not None and c.epoch is not None
    assert a.epoch < b.epoch < c.epoch
    assert a.current == Leadership(leading=True, epoch=a.epoch, leader=master(5001))
    standby = Leadership(leading=False, epoch=a.epoch, leader=master(5001))
    assert b.current == standby and c.current == standby
    for recorder in (rec_a, rec_b, rec_c):
        await recorder.wait(lambda r: bool(r.states), "the first state")
        assert recorder.last == recorder.contender.current

    client = await asyncio.to_thread(raw_client, election.ensemble.hosts)
    try:
        members = sorted(client.get_children(election.path))
        assert members == [f"json.info_{n:010d}" for n in (a.epoch, b.epoch, c.epoch)]
        data, stat = client.get(f"{election.path}/{members[0]}")
        assert json.loads(data) == {"id": "master-5001", "hostname": "localhost",
                                    "address": "127.0.0.1", "port": 5001, "version": "test"}
        assert stat.ephemeralOwner != 0
    finally:
        client.stop()
        client.close()

    detector = election.detector()
    async with asyncio.timeout(WAIT):
        assert await detector.detect() == address(5001)


async def test_leader_closes_and_the_next_lowest_leads(election: Election) -> None:
    a, rec_a = await election.contender(5001)
    b, rec_b = await election.contender(5002)
    _c, rec_c = await election.contender(5003)
    patient = election.detector(retry_interval=60.0)  # returns early only on a real change
    async with asyncio.timeout(WAIT):
        assert await patient.detect() == address(5001)
    following = asyncio.create_task(patient.detect(previous=address(5001)))

    await a.close()

    await rec_a.wait(lambda r: r.ended, "the old leader's iteration to end")
    assert rec_a.last == NOT_LEADING and rec_a.lost is None
    await rec_b.wait(lambda r: r.last.leading, "the second contender to lead")
    assert rec_b.last == Leadership(leading=True, epoch=b.epoch, leader=master(5002))
    await rec_c.wait(lambda r: r.last.leader == master(5002), "the third to see the new leader")
    assert rec_c.last == Leadership(leading=False, epoch=b.epoch, leader=master(5002))
    assert rec_b.first_time(lambda s: s.leading) >= rec_a.first_time(lambda s: not s.leading)
    async with asyncio.timeout(WAIT):
        assert await following == address(5002)

    fresh = create_detector(election.url, zk_session_timeout=SESSION_TIMEOUT)
    try:
        assert isinstance(fresh, ZooKeeperDetector)
        async with asyncio.timeout(WAIT):
            assert await fresh.detect() == address(5002)
    finally:
        await fresh.close()


async def test_expired_session_steps_down_at_once_then_for_good(election: Election) -> None:
    a, rec_a = await election.contender(5001)
    b, rec_b = await election.contender(5002)
    detector = election.detector()
    async with asyncio.timeout(WAIT):
        assert await detector.detect() == address(5001)
    await rec_a.wait(lambda r: r.last.leading, "the first contender to lead")
    client_id = a._session.client.client_id
    assert client_id is not None

    await asyncio.to_thread(expire_session, election.ensemble.hosts, client_id)

    await rec_a.wait(lambda r: not r.last.leading, "the old leader to step down")
    await rec_a.wait(lambda r: r.ended, "the old leader to lose leadership for good")
    assert rec_a.lost is not None and rec_a.last == NOT_LEADING
    assert a.current == NOT_LEADING
    await rec_b.wait(lambda r: r.last.leading, "the second contender to lead")
    assert rec_b.last.epoch == b.epoch
    # At most one acting leader at any moment: A stopped before B started.
    assert rec_a.first_time(lambda s: not s.leading) <= rec_b.first_time(lambda s: s.leading)
    async with asyncio.timeout(WAIT):
        assert await detector.detect(previous=address(5001)) == address(5002)


async def test_detector_waits_for_a_leader_that_appears_later(election: Election) -> None:
    detector = election.detector()
    waiting = asyncio.create_task(detector.detect())
    done, _ = await asyncio.wait({waiting}, timeout=1.0)
    assert not done, "detect() returned although no master contends"

    await election.contender(5007)

    async with asyncio.timeout(WAIT):
        assert await waiting == address(5007)


async def test_detect_with_the_same_leader_returns_within_the_retry_interval(
    election: Election,
) -> None:
    await election.contender(5001)
    detector = election.detector(retry_interval=1.0)
    async with asyncio.timeout(WAIT):
        leader = await detector.detect()
    assert leader == address(5001)

    started = time.monotonic()
    assert await detector.detect(previous=leader) == leader
    assert 0.9 <= time.monotonic() - started < 3.0

    started = time.monotonic()
    assert await detector.detect(previous=address(5999)) == leader
    assert time.monotonic() - started < 0.9


async def test_leader_other_than_waits_past_the_retry_interval_for_a_new_leader(
    election: Election,
) -> None:
    # What a link waiting for an election asks (mesos_coordination.reconnect): unlike
    # `detect(previous)`, it does not return the same leader after each retry interval.
    a, detector = await election.leader_and_standby(retry_interval=0.1)
    waiting = asyncio.create_task(detector.leader_other_than(address(5001)))
    done, _ = await asyncio.wait({waiting}, timeout=1.0)
    assert not done, "leader_other_than() returned although the leader did not change"
    await a.close()
    async with asyncio.timeout(WAIT):
        assert await waiting == address(5002)
    async with asyncio.timeout(WAIT):  # a leader other than the one given: at once
        assert await detector.leader_other_than(address(5001)) == address(5002)


class GroupReads:
    """How many times any `GroupReader` read the group (`count_group_reads`)."""

    def __init__(self) -> None:
        self.count = 0


def count_group_reads(monkeypatch: pytest.MonkeyPatch) -> GroupReads:
    """Count every group read from now on (the test's monkeypatch undoes it)."""
    reads = GroupReads()
    read = GroupReader.read

    async def counted(reader: GroupReader) -> GroupView:
        reads.count += 1
        return await read(reader)

    monkeypatch.setattr(GroupReader, "read", counted)
    return reads


async def test_concurrent_detects_share_one_read_of_the_group(
    election: Election, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = await election.contender(5001)
    await election.contender(5002)
    detector = election.detector(retry_interval=60.0)
    reads = count_group_reads(monkeypatch)
    async with asyncio.timeout(WAIT):
        leaders = await asyncio.gather(*(detector.detect() for _ in range(200)))
    assert leaders == [address(5001)] * 200
    assert reads.count == 1
    assert await detector.detect() == address(5001)
    assert reads.count == 1  # nothing changed since: no read

    followers = [asyncio.create_task(detector.detect(previous=address(5001)))
                 for _ in range(200)]
    await a.close()
    async with asyncio.timeout(WAIT):
        assert await asyncio.gather(*followers) == [address(5002)] * 200
    assert 2 <= reads.count < 10  # one read per change notified, not one per caller


def watchers() -> list[asyncio.Task[object]]:
    return [task for task in asyncio.all_tasks()
            if getattr(task.get_coro(), "__qualname__", "") == "ZooKeeperDetector._watch"]


async def test_leader_other_than_waiters_share_one_watcher_and_its_reads(
    election: Election, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Thousands of links of one process wait for an election on one detector (ADR 0018): one
    # task reads the group on each change and hands every waiter its result.
    a, detector = await election.leader_and_standby(retry_interval=0.1)
    reads = count_group_reads(monkeypatch)
    waiting = [asyncio.create_task(detector.leader_other_than(address(5001)))
               for _ in range(200)]
    cancelled = asyncio.create_task(detector.leader_other_than(address(5001)))
    done, _ = await asyncio.wait(waiting, timeout=0.5)
    assert not done and len(watchers()) == 1
    cancelled.cancel()  # a waiter that gives up leaves the others waiting
    await asyncio.gather(cancelled, return_exceptions=True)
    await a.close()
    async with asyncio.timeout(WAIT):
        assert await asyncio.gather(*waiting) == [address(5002)] * 200
    assert 1 <= reads.count < 10  # one read per change notified, not one per waiter
    async with asyncio.timeout(WAIT):  # no one waits: the watcher ends
        while watchers():  # noqa: ASYNC110 (a task's state, no event to wait on)
            await asyncio.sleep(0.01)


@pytest.mark.parametrize("call", ["detect", "leader_other_than"])
async def test_closing_a_detector_ends_a_waiting_call(election: Election, call: str) -> None:
    detector = election.detector()
    if call == "detect":  # no master contends
        waiting = asyncio.create_task(detector.detect())
    else:  # the leader does not change
        await election.contender(5001)
        async with asyncio.timeout(WAIT):
            assert await detector.detect() == address(5001)
        waiting = asyncio.create_task(detector.leader_other_than(address(5001)))
    done, _ = await asyncio.wait({waiting}, timeout=0.5)
    assert not done
    await detector.close()
    async with asyncio.timeout(WAIT):
        with pytest.raises(RuntimeError, match="closed"):
            await waiting


async def test_members_with_unparseable_data_are_skipped(election: Election) -> None:
    client = await asyncio.to_thread(raw_client, election.ensemble.hosts)
    try:
        client.create(f"{election.path}/json.info_", b"not json", ephemeral=True, sequence=True,
                      makepath=True)
        client.create(f"{election.path}/log_replicas", b"", makepath=True)
        a, _ = await election.contender(5001)
        assert a.current == Leadership(leading=True, epoch=a.epoch, leader=master(5001))
        async with asyncio.timeout(WAIT):
            assert await election.detector().detect() == address(5001)
    finally:
        client.stop()
        client.close()


async def test_digest_credentials_protect_the_group(zk: ZooKeeperEnsemble) -> None:
    election = Election(zk, credentials="mesos:s3cret@")
    try:
        a, _ = await election.contender(5001)
        detector = create_detector(election.url)
        assert isinstance(detector, ZooKeeperDetector)
        election.detectors.append(detector)
        assert detector.url.credentials == ("mesos", "s3cret")
        async with asyncio.timeout(WAIT):
            assert await detector.detect() == address(5001)

        anonymous = await asyncio.to_thread(raw_client, zk.hosts)
        try:
            member = f"{election.path}/json.info_{a.epoch:010d}"
            data, _ = anonymous.get(member)  # everyone may read, as in Mesos
            assert json.loads(data)["port"] == 5001
            with pytest.raises(NoAuthError):
                anonymous.delete(member)
            with pytest.raises(NoAuthError):
                anonymous.create(f"{election.path}/json.info_", b"{}", sequence=True)
            acls, _ = anonymous.get_acls(member)
            assert {acl.id.scheme for acl in acls} == {"digest", "world"}
        finally:
            anonymous.stop()
            anonymous.close()
        reader = create_detector(election.url.replace("mesos:s3cret@", ""))
        assert isinstance(reader, ZooKeeperDetector)
        election.detectors.append(reader)
        async with asyncio.timeout(WAIT):
            assert await reader.detect() == address(5001)
    finally:
        await election.close()


async def test_zookeeper_outage_suspends_then_restores_or_loses(tmp_path: Path) -> None:
    with zookeeper(tmp_path) as ensemble:
        election = Election(ensemble)
        try:
            patient, rec_patient = await election.contender(5001, session_timeout=3.0)
            _hasty, rec_hasty = await election.contender(5002, session_timeout=1.0)
            await rec_patient.wait(lambda r: r.last.leading, "the first contender to lead")
            epoch = patient.epoch

            await asyncio.to_thread(ensemble.nodes[0].stop)
            stopped = time.monotonic()

            await rec_patient.wait(lambda r: not r.last.leading, "the leader to step down",
                                   within=2.0)  # well before its 3 s session could expire
            assert rec_patient.first_time(lambda s: not s.leading) - stopped < 2.0
            await rec_hasty.wait(lambda r: r.ended, "the 1 s contender to give up", within=5.0)
            assert rec_hasty.lost is not None and "session timeout" in str(rec_hasty.lost)
            assert not rec_patient.ended

            await asyncio.to_thread(ensemble.nodes[0].start)
            await asyncio.to_thread(ensemble.nodes[0].wait_listening)

            await rec_patient.wait(lambda r: r.last.leading, "the leader to lead again")
            assert rec_patient.last == Leadership(leading=True, epoch=epoch, leader=master(5001))
            # Reconnecting in time disarms the local session-timeout: it keeps leading past it.
            with pytest.raises(AssertionError, match="timed out"):
                await rec_patient.wait(lambda r: r.ended or not r.last.leading,
                                       "the leader to step down again",
                                       within=stopped + 3.5 - time.monotonic())
        finally:
            await election.close()

