"""Finding the master's HTTP endpoints from the address every component takes (`--master`).

    HOST:PORT        a master's gRPC address --Scheduler.Info--> the leader's MasterInfo
    zk://h:p,.../P   ZooKeeper --detector--> the leader's gRPC address --Info--> its MasterInfo
    http://HOST:PORT the master's HTTP endpoints, used as they are

Any master answers `Info`, leading or not; the URL is the leader's HTTP address, or the
answering master's own while no leader is known (its `/state` then says so).
"""

from __future__ import annotations

import asyncio
import enum
from dataclasses import dataclass

import grpc

from mesos_cli.client import normalize_base_url
from mesos_cli.errors import EXIT_FAILED, EXIT_UNREACHABLE, EXIT_USAGE, CliError
from mesos_coordination.detector import create_detector
from mesos_security.tls import TlsConfig, open_channel
from mesos_values.addresses import HostPort, parse_host_port, parse_zk_url
from protos import mesos_pb2, scheduler_pb2, scheduler_pb2_grpc

__all__ = ["MasterAddress", "MasterAddressKind", "info_http_url", "master_http_url",
           "parse_master_address"]


class MasterAddressKind(enum.Enum):
    """How a `--master` value names the master."""

    GRPC = "gRPC address"
    ZOOKEEPER = "ZooKeeper URL"
    HTTP = "HTTP URL"


@dataclass(frozen=True)
class MasterAddress:
    """A parsed `--master` value; `text` is normalised (an HTTP URL has its scheme)."""

    kind: MasterAddressKind
    text: str


def parse_master_address(text: str, option: str = "--master") -> MasterAddress:
    """`HOST:PORT` (gRPC), `zk://...` or an `http(s)://` URL; CliError (usage) otherwise."""
    value = text.strip()
    try:
        if value.startswith("zk://"):
            parse_zk_url(value)
            return MasterAddress(MasterAddressKind.ZOOKEEPER, value)
        if "://" in value:
            return MasterAddress(MasterAddressKind.HTTP, normalize_base_url(value, option))
        return MasterAddress(MasterAddressKind.GRPC,
                             str(parse_host_port(value, what="master address")))
    except ValueError as error:
        raise CliError(f"{option}: {error} (expected HOST:PORT, zk://HOST:PORT/PATH or "
                       f"http://HOST:PORT)", EXIT_USAGE) from None


def info_http_url(answer: scheduler_pb2.InfoResponse, asked: str) -> str:
    """The leader's HTTP base URL from an `Info` answer (the answering master's own while no
    leader is known); CliError when that master serves no HTTP."""
    info = answer.leader if answer.HasField("leader") else answer.master
    host = info.address or info.hostname
    if not host or not info.http_port:
        who = "the leading master" if answer.HasField("leader") else "the master"
        raise CliError(f"{who} ({_name(info)}, asked at {asked}) serves no HTTP endpoints")
    return f"http://{HostPort(host, info.http_port)}"


async def master_http_url(address: MasterAddress, seconds: float,
                          tls: TlsConfig | None = None) -> str:
    """The HTTP base URL to ask for the master's `/state` (I/O for gRPC and ZooKeeper);
    each step (finding the leader in ZooKeeper, asking a master) may take `seconds`."""
    if address.kind is MasterAddressKind.HTTP:
        return address.text
    if address.kind is MasterAddressKind.GRPC:
        return info_http_url(await _info(address.text, seconds, tls), address.text)
    detector = create_detector(address.text, zk_session_timeout=seconds)
    try:
        async with asyncio.timeout(seconds):
            leader = await detector.detect()
    except TimeoutError:
        raise CliError(f"found no leading master in ZooKeeper at {address.text} within "
                       f"{seconds:g}s (is ZooKeeper up, and a master elected?)",
                       EXIT_UNREACHABLE) from None
    finally:
        await detector.close()
    return info_http_url(await _info(str(leader), seconds, tls), str(leader))


async def _info(target: str, seconds: float,
                tls: TlsConfig | None) -> scheduler_pb2.InfoResponse:
    async with open_channel(target, tls) as channel:
        stub = scheduler_pb2_grpc.SchedulerStub(channel)
        try:
            answer: scheduler_pb2.InfoResponse = await stub.Info(
                scheduler_pb2.InfoRequest(), timeout=seconds, wait_for_ready=False)
        except grpc.aio.AioRpcError as error:
            raise _rpc_failure(target, error) from None
    return answer


def _rpc_failure(target: str, error: grpc.aio.AioRpcError) -> CliError:
    code = error.code()
    details = error.details() or ""
    if code is grpc.StatusCode.UNAVAILABLE:
        reason = "connection refused" if "refused" in details.lower() else (
            details.splitlines()[0] if details else "unavailable")
        return CliError(f"cannot reach master at {target}: {reason}", EXIT_UNREACHABLE)
    if code is grpc.StatusCode.DEADLINE_EXCEEDED:
        return CliError(f"cannot reach master at {target}: timed out", EXIT_UNREACHABLE)
    return CliError(f"master at {target} refused Info ({code.name}): {details}", EXIT_FAILED)


def _name(info: mesos_pb2.MasterInfo) -> str:
    return info.id or f"{info.address or info.hostname}:{info.port}"
