"""The durable key/value stores behind the master's registry (and Marathon's and the batch
framework's state): the local log + snapshot, and ZooKeeper with epoch fencing (a real private
ZooKeeper)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError

from mesos_coordination import store_local
from mesos_coordination.election import ZooKeeperContender
from mesos_coordination.store import BatchWriter, Mutation, StoreError
from mesos_coordination.store_local import LocalStore, encode_record
from mesos_coordination.store_zk import StoreCopy, ZooKeeperStore, ZooKeeperStoreFollower
from mesos_coordination.zookeeper import ZooKeeperSession
from mesos_values.addresses import parse_zk_url
from protos import mesos_pb2
from tests.zookeeper import ZooKeeperEnsemble

pytestmark = pytest.mark.integration


async def recovered(directory: Path) -> tuple[LocalStore, dict[str, bytes]]:
    store = LocalStore(directory)
    return store, await store.recover()


async def test_local_store_survives_restarts(tmp_path: Path) -> None:
    store, entries = await recovered(tmp_path)
    assert entries == {}
    await store.commit([Mutation("agents/a1", b"one"), Mutation("agents/a2", b"two")])
    await store.commit([Mutation("agents/a1", None), Mutation("weights/r", b"w")])
    await store.close()

    store, entries = await recovered(tmp_path)
    assert entries == {"agents/a2": b"two", "weights/r": b"w"}
    await store.close()


async def test_local_store_cuts_off_a_torn_append(tmp_path: Path) -> None:
    store, _ = await recovered(tmp_path)
    await store.commit([Mutation("agents/a1", b"one")])
    await store.close()
    torn = encode_record([Mutation("agents/a2", b"two")])
    with (tmp_path / "log").open("ab") as log:
        log.write(torn[: len(torn) - 3])  # the crash came in the middle of the append

    store, entries = await recovered(tmp_path)
    assert entries == {"agents/a1": b"one"}
    await store.commit([Mutation("agents/a3", b"three")])  # appends after the intact prefix
    await store.close()
    _, entries = await recovered(tmp_path)
    assert entries == {"agents/a1": b"one", "agents/a3": b"three"}


async def test_local_store_refuses_corruption_before_the_end(tmp_path: Path) -> None:
    store, _ = await recovered(tmp_path)
    await store.commit([Mutation("agents/a1", b"one")])
    await store.commit([Mutation("agents/a2", b"two")])
    await store.close()
    data = bytearray((tmp_path / "log").read_bytes())
    data[10] ^= 0xFF  # inside the first record
    (tmp_path / "log").write_bytes(bytes(data))
    with pytest.raises(StoreError, match="corrupt"):
        await LocalStore(tmp_path).recover()


async def test_local_store_compacts_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_local, "COMPACT_AFTER_BYTES", 200)
    store, _ = await recovered(tmp_path)
    for index in range(50):
        await store.commit([Mutation("agents/a", str(index).encode() * 10)])
    await store.close()
    assert (tmp_path / "log").stat().st_size < 200
    assert (tmp_path / "snapshot").stat().st_size > 0
    _, entries = await recovered(tmp_path)
    assert entries == {"agents/a": b"49" * 10}


async def test_one_owner_per_directory(tmp_path: Path) -> None:
    first, _ = await recovered(tmp_path)
    with pytest.raises(StoreError, match="another process"):
        await LocalStore(tmp_path).recover()
    await first.close()
    second, _ = await recovered(tmp_path)
    await second.close()


async def test_registrar_runs_callbacks_after_commits_in_order(tmp_path: Path) -> None:
    store, _ = await recovered(tmp_path)
    registrar = BatchWriter(store)
    seen: list[str] = []
    registrar.write(Mutation("agents/a", b"1"), lambda: seen.append("a"))
    registrar.write(Mutation("agents/b", b"2"), lambda: seen.append("b"))
    registrar.write(Mutation("agents/a", None))
    task = asyncio.create_task(registrar.run())
    await registrar.drain()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["a", "b"]
    await store.close()
    _, entries = await recovered(tmp_path)
    assert entries == {"agents/b": b"2"}


# ---------------------------------------------------------------------------- ZooKeeper


@pytest.fixture(scope="module")
def zk(shared_zookeeper: ZooKeeperEnsemble) -> ZooKeeperEnsemble:
    """The shared ZooKeeper: every test here keeps to a random path of its own."""
    return shared_zookeeper


class Term:
    """A contender that has entered the election, with a registry store for its epoch."""

    def __init__(self, contender: ZooKeeperContender) -> None:
        self.contender = contender
        self.store = self.open_store()

    def open_store(self, copy: StoreCopy | None = None) -> ZooKeeperStore:
        assert self.contender.epoch is not None and self.contender.member_path is not None
        return ZooKeeperStore(
            self.contender.session,
            f"{self.contender.url.path}/registry",
            ("agents", "frameworks"),
            epoch=self.contender.epoch,
            member_path=self.contender.member_path,
            copy=copy,
        )

    async def follow(self) -> StoreCopy:
        """A copy of the registry, as a standby's follower reads it."""
        follower = ZooKeeperStoreFollower(
            self.contender.session, f"{self.contender.url.path}/registry",
            ("agents", "frameworks"), paused=lambda: False, settle=0.01, quick=0.01)
        task = asyncio.create_task(follower.run())
        try:
            async with asyncio.timeout(10):
                while follower.latest is None:  # noqa: ASYNC110 (a plain attribute)
                    await asyncio.sleep(0.01)
            return follower.latest
        finally:
            task.cancel()


@pytest.fixture
async def terms(zk: ZooKeeperEnsemble) -> AsyncIterator[list[Term]]:
    path = f"/store-{uuid.uuid4().hex[:8]}"
    started: list[Term] = []

    async def start() -> Term:
        info = mesos_pb2.MasterInfo(id=uuid.uuid4().hex, address="127.0.0.1", port=1)
        contender = ZooKeeperContender(
            parse_zk_url(zk.url(path)), info, session_timeout=5.0
        )
        await contender.start()
        started.append(Term(contender))
        return started[-1]

    try:
        yield [await start(), await start()]
    finally:
        for term in started:
            await term.store.close()
            await term.contender.close()


async def test_zookeeper_store_round_trip_and_fencing(terms: list[Term]) -> None:
    first, second = terms
    assert await first.store.recover() == {}
    await first.store.commit([Mutation("agents/a1", b"one"), Mutation("frameworks/f", b"f")])
    await first.store.commit([Mutation("frameworks/f", None), Mutation("agents/a1", b"uno")])

    # The next leader takes the registry over: it sees everything; the first is fenced out.
    assert await second.store.recover() == {"agents/a1": b"uno"}
    with pytest.raises(StoreError, match="newer leader"):
        await first.store.commit([Mutation("agents/a2", b"late")])
    await second.store.commit([Mutation("agents/a3", b"three")])

    # A deposed leader cannot take it back either.
    with pytest.raises(StoreError, match="newer leader"):
        await first.store.recover()


async def test_a_new_leader_takes_a_standbys_copy_when_nothing_changed_since(
    terms: list[Term],
) -> None:
    first, second = terms
    await first.store.recover()
    await first.store.commit([Mutation("agents/a1", b"one")])
    await first.store.commit([Mutation("frameworks/f", b"f")])
    copy = await second.follow()
    assert copy.entries == {"agents/a1": b"one", "frameworks/f": b"f"}

    # The takeover reads no entry: a forged copy of the same modification shows where the
    # entries came from.
    forged = StoreCopy({"agents/a1": b"from the copy"}, copy.mzxid)
    second.store = second.open_store(forged)
    assert await second.store.recover() == {"agents/a1": b"from the copy"}
    await second.store.commit([Mutation("agents/a2", b"two")])  # the fencing goes on
    await second.store.commit([Mutation("agents/a3", b"three")])
    with pytest.raises(StoreError, match="newer leader"):
        await first.store.commit([Mutation("agents/a4", b"late")])


async def test_a_copy_older_than_the_last_commit_is_not_used(terms: list[Term]) -> None:
    first, second = terms
    await first.store.recover()
    await first.store.commit([Mutation("agents/a1", b"one")])
    copy = await second.follow()
    await first.store.commit([Mutation("agents/a2", b"two")])
    second.store = second.open_store(StoreCopy({"agents/a1": b"stale"}, copy.mzxid))
    assert await second.store.recover() == {"agents/a1": b"one", "agents/a2": b"two"}


async def test_a_follower_started_before_any_leader_took_the_store_follows_it(
    terms: list[Term],
) -> None:
    first, second = terms
    follower = ZooKeeperStoreFollower(
        second.contender.session, f"{second.contender.url.path}/registry",
        ("agents", "frameworks"), paused=lambda: False, settle=0.01, quick=0.01)
    task = asyncio.create_task(follower.run())
    try:
        async with asyncio.timeout(10):
            while not follower.looks:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert follower.latest is None  # its first look found no store
        await first.store.recover()
        await first.store.commit([Mutation("agents/a1", b"one")])
        async with asyncio.timeout(10):
            while follower.latest is None or not follower.latest.entries:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert follower.latest.entries == {"agents/a1": b"one"}
    finally:
        task.cancel()


async def test_zookeeper_store_refuses_a_leader_whose_znode_is_gone(terms: list[Term]) -> None:
    first, _ = terms
    session: ZooKeeperSession = first.contender.session
    assert first.contender.member_path is not None
    await session.call(session.client.delete_async, first.contender.member_path)
    with pytest.raises(StoreError, match="election znode"):
        await first.store.recover()


async def test_with_credentials_stored_records_are_private_and_the_group_public(
    zk: ZooKeeperEnsemble,
) -> None:
    """`zk://user:pass@...`: what the store keeps (app and job definitions, secrets in their
    env) is unreadable to any other identity; the election's nodes stay readable so that
    detectors without credentials find the leader (ADR 0013)."""
    path = f"/private-{uuid.uuid4().hex[:8]}"
    url = parse_zk_url(zk.url(path).replace("zk://", "zk://owner:s3cret@"))
    info = mesos_pb2.MasterInfo(id=uuid.uuid4().hex, address="127.0.0.1", port=1)
    contender = ZooKeeperContender(url, info, session_timeout=5.0)
    await contender.start()
    term = Term(contender)
    try:
        await term.store.recover()
        await term.store.commit([Mutation("agents/a1", b"env SECRET=1")])
        stranger = KazooClient(hosts=zk.hosts, auth_data=[("digest", "other:guess")])
        anonymous = KazooClient(hosts=zk.hosts)
        for client in (stranger, anonymous):
            await asyncio.to_thread(client.start)
            try:
                registry = f"{path}/registry"
                with pytest.raises(NoAuthError):
                    await asyncio.to_thread(client.get_children, registry)
                with pytest.raises(NoAuthError):
                    await asyncio.to_thread(client.get_children, f"{registry}/agents")
                members = await asyncio.to_thread(client.get_children, path)
                assert contender.member_path is not None
                member = contender.member_path.rsplit("/", 1)[-1]
                assert member in members
                data, _ = await asyncio.to_thread(client.get, f"{path}/{member}")
                assert b"127.0.0.1" in data
            finally:
                await asyncio.to_thread(client.stop)
                await asyncio.to_thread(client.close)
    finally:
        await term.store.close()
        await contender.close()
