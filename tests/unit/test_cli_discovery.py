"""`--master` as every component takes it: which kind of address it is, and which HTTP URL an
`Info` answer leads to."""

from __future__ import annotations

import pytest

from mesos_cli.discovery import (
    MasterAddress,
    MasterAddressKind,
    info_http_url,
    parse_master_address,
)
from mesos_cli.errors import EXIT_FAILED, EXIT_USAGE, CliError
from mesos_cli.main import build_parser, context_of, default_master
from protos import mesos_pb2, scheduler_pb2

GRPC, ZOOKEEPER, HTTP = (MasterAddressKind.GRPC, MasterAddressKind.ZOOKEEPER,
                         MasterAddressKind.HTTP)


@pytest.mark.parametrize(
    ("typed", "address"),
    [
        ("127.0.0.1:5050", MasterAddress(GRPC, "127.0.0.1:5050")),
        (" master1:5050 ", MasterAddress(GRPC, "master1:5050")),
        ("[::1]:5050", MasterAddress(GRPC, "[::1]:5050")),
        ("zk://127.0.0.1:2181/mesos", MasterAddress(ZOOKEEPER, "zk://127.0.0.1:2181/mesos")),
        ("zk://u:p@z1:2181,z2:2181/a/b", MasterAddress(ZOOKEEPER, "zk://u:p@z1:2181,z2:2181/a/b")),
        ("http://127.0.0.1:5080/", MasterAddress(HTTP, "http://127.0.0.1:5080")),
        ("https://master.example", MasterAddress(HTTP, "https://master.example")),
    ],
)
def test_master_addresses(typed: str, address: MasterAddress) -> None:
    assert parse_master_address(typed) == address


@pytest.mark.parametrize(
    "typed",
    ["master1", "master1:http", "master1:70000", ":5050", "zk://z1:2181", "zk://z1:2181/",
     "zk:///mesos", "ftp://master1", "http://", ""],
)
def test_bad_master_addresses_are_usage_errors(typed: str) -> None:
    with pytest.raises(CliError) as refused:
        parse_master_address(typed)
    assert refused.value.exit_code == EXIT_USAGE
    assert refused.value.message.startswith("--master")


@pytest.mark.parametrize(
    ("environ", "master"),
    [
        ({}, "127.0.0.1:5050"),
        ({"MESOS_MASTER": "zk://z:2181/mesos", "MESOS_MASTER_URL": "http://h:5080"},
         "zk://z:2181/mesos"),
        ({"MESOS_MASTER_URL": "http://h:5080"}, "http://h:5080"),
        ({"MESOS_MASTER_URL": "h:5080"}, "http://h:5080"),  # it always named HTTP endpoints
        ({"MESOS_MASTER": " ", "MESOS_MASTER_URL": "h:5080"}, "http://h:5080"),
    ],
    ids=["default", "mesos-master-first", "url", "url-without-scheme", "empty-mesos-master"],
)
def test_the_default_master_comes_from_the_environment(environ: dict[str, str],
                                                       master: str) -> None:
    assert default_master(environ) == master
    assert build_parser(environ).parse_args(["cluster"]).master == master


def test_the_context_holds_the_parsed_master() -> None:
    ctx = context_of(build_parser({}).parse_args(["--master", "zk://z:2181/mesos", "agents"]))
    assert ctx.master_address == MasterAddress(ZOOKEEPER, "zk://z:2181/mesos")
    with pytest.raises(CliError):
        context_of(build_parser({}).parse_args(["--master", "nohost", "agents"]))


def master(master_id: str, address: str = "127.0.0.1", http_port: int = 5080,
           hostname: str = "") -> mesos_pb2.MasterInfo:
    return mesos_pb2.MasterInfo(id=master_id, address=address, hostname=hostname, port=5050,
                                http_port=http_port)


def test_info_leads_to_the_leaders_http_endpoints() -> None:
    answer = scheduler_pb2.InfoResponse(master=master("standby", http_port=5081),
                                        leader=master("leader", "10.0.0.2", 5082))
    assert info_http_url(answer, "127.0.0.1:5050") == "http://10.0.0.2:5082"
    by_name = scheduler_pb2.InfoResponse(master=master("m"),
                                         leader=master("l", "", 5082, hostname="m2"))
    assert info_http_url(by_name, "m:5050") == "http://m2:5082"
    ipv6 = scheduler_pb2.InfoResponse(master=master("m", "::1", 5080))
    assert info_http_url(ipv6, "[::1]:5050") == "http://[::1]:5080"


def test_without_a_leader_the_answering_master_is_asked() -> None:
    answer = scheduler_pb2.InfoResponse(master=master("standby", http_port=5081))
    assert info_http_url(answer, "127.0.0.1:5050") == "http://127.0.0.1:5081"


def test_a_leader_without_http_is_a_failure() -> None:
    answer = scheduler_pb2.InfoResponse(master=master("m"), leader=master("l", http_port=0))
    with pytest.raises(CliError) as refused:
        info_http_url(answer, "127.0.0.1:5050")
    assert refused.value.exit_code == EXIT_FAILED
    assert refused.value.message == ("the leading master (l, asked at 127.0.0.1:5050) serves "
                                     "no HTTP endpoints")
