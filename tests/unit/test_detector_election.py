"""The pure parts of leader election: the group's znode layout, MasterInfo data, client settings,
the factories (no I/O until started) and the standalone contender."""

from __future__ import annotations

import asyncio

import pytest
from kazoo.security import Permissions

from mesos_coordination.detector import StandaloneDetector, ZooKeeperDetector, create_detector
from mesos_coordination.election import (
    NOT_LEADING,
    STANDALONE_EPOCH,
    Leadership,
    StandaloneContender,
    ZooKeeperContender,
    create_contender,
)
from mesos_coordination.zookeeper import (
    decode_master_info,
    encode_master_info,
    make_client,
    master_address,
    member_sequence,
    order_members,
    public_read_acl,
)
from mesos_values.addresses import HostPort, parse_zk_url
from protos import mesos_pb2

INFO = mesos_pb2.MasterInfo(id="m1", hostname="node1", address="10.0.0.1", port=5050,
                            http_port=5051, version="1.0")


@pytest.mark.parametrize(
    ("name", "sequence"),
    [
        ("json.info_0000000000", 0),
        ("json.info_0000000042", 42),
        ("info_0000000001", None),
        ("json.info_", None),
        ("json.info_12ab", None),
        ("log_replicas", None),
    ],
    ids=["first", "42", "legacy-prefix", "no-number", "not-a-number", "other-child"],
)
def test_member_sequence(name: str, sequence: int | None) -> None:
    assert member_sequence(name) == sequence


def test_members_are_ordered_by_sequence_number_not_by_listing_order() -> None:
    children = ["json.info_0000000010", "registry", "json.info_0000000002", "json.info_0000000009"]
    assert order_members(children) == [
        (2, "json.info_0000000002"), (9, "json.info_0000000009"), (10, "json.info_0000000010"),
    ]


def test_master_info_round_trips_through_znode_json() -> None:
    data = encode_master_info(INFO)
    assert b'"http_port": 5051' in data
    assert decode_master_info(data) == INFO
    assert master_address(INFO) == HostPort("10.0.0.1", 5050)


@pytest.mark.parametrize(
    "data",
    [b"not json", b"\xff\xfe", b'{"port": "x"}', b'{"address": "10.0.0.1"}', b'{"port": 5050}',
     b"[]"],
    ids=["garbage", "not-utf8", "wrong-type", "no-port", "no-host", "not-an-object"],
)
def test_unusable_member_data_decodes_to_none(data: bytes) -> None:
    assert decode_master_info(data) is None


def test_hostname_stands_in_for_a_missing_address() -> None:
    info = decode_master_info(b'{"hostname": "node2", "port": 5050, "unknown_field": 1}')
    assert info is not None and master_address(info) == HostPort("node2", 5050)


def test_client_without_credentials_uses_open_defaults() -> None:
    client = make_client(parse_zk_url("zk://h1:2181,h2:2182/mesos"), session_timeout=4.0)
    assert client.hosts == [("h1", 2181), ("h2", 2182)]
    assert client.chroot == ""
    assert not client.auth_data and client.default_acl is None


def test_client_with_credentials_authenticates_and_protects_what_it_creates() -> None:
    client = make_client(parse_zk_url("zk://mesos:s3cret@h1:2181/mesos"), session_timeout=4.0)
    assert client.auth_data == {("digest", "mesos:s3cret")}
    [owner] = client.default_acl  # what it stores is its own alone (ADR 0013)
    assert owner.id.scheme == "digest" and owner.perms == Permissions.ALL
    assert owner.id.id.startswith("mesos:")
    public = public_read_acl(parse_zk_url("zk://mesos:s3cret@h1:2181/mesos"))
    assert public is not None  # the election's nodes: detectors read them
    by_scheme = {acl.id.scheme: acl for acl in public}
    assert by_scheme["digest"] == owner and by_scheme["world"].perms == Permissions.READ
    assert public_read_acl(parse_zk_url("zk://h1:2181/mesos")) is None


def test_create_detector_for_zookeeper_urls_does_no_io() -> None:
    detector = create_detector("zk://u:p@127.0.0.1:1,127.0.0.1:2/mesos", zk_session_timeout=3.0)
    assert isinstance(detector, ZooKeeperDetector)
    assert detector.url.credentials == ("u", "p") and detector.url.path == "/mesos"
    assert detector.session_timeout == 3.0
    assert isinstance(create_detector("127.0.0.1:5050"), StandaloneDetector)
    with pytest.raises(ValueError, match="path is required"):
        create_detector("zk://127.0.0.1:2181")


async def test_standalone_contender_leads_until_closed() -> None:
    contender = create_contender(None, INFO)
    assert isinstance(contender, StandaloneContender)
    assert contender.current == NOT_LEADING
    await contender.start()
    leading = Leadership(leading=True, epoch=STANDALONE_EPOCH, leader=INFO)
    assert contender.current == leading

    seen: list[Leadership] = []

    async def follow() -> None:
        async for state in contender.leadership():
            seen.append(state)
            if state.leading:
                await contender.close()

    async with asyncio.timeout(5):
        await follow()
    assert seen == [leading, NOT_LEADING]
    assert contender.current == NOT_LEADING


async def test_create_contender_with_zk_builds_an_unstarted_zookeeper_contender() -> None:
    contender = create_contender("zk://127.0.0.1:1/mesos", INFO, session_timeout=3.0)
    assert isinstance(contender, ZooKeeperContender)
    assert contender.url.path == "/mesos" and contender.session_timeout == 3.0
    assert contender.current == NOT_LEADING and contender.epoch is None
    await contender.close()  # never started: nothing to release
