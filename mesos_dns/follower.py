"""Follows the leading master's operator event stream into the record table.

    --master HOST:PORT ──────────────┐
    --master zk://.../mesos ── group ┴─▶ leader's HTTP address (and every master's)
        ──▶ POST /api/v1 {"type": "SUBSCRIBE"} (a standby's 307 is followed)
        ──▶ RecordIO events ──▶ RecordTable.apply (SUBSCRIBED replaces everything)
    stream ended, failed or silent for 3 heartbeats, or the group names another leader
        ──▶ find the leader again and re-subscribe (with backoff while it fails)

Until the first SUBSCRIBED, and while no master answers, the table keeps what it last had:
DNS goes on answering from the last known state. Agents and masters that advertise host names
instead of IPs are looked up here, as each event or group read names them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from mesos_coordination.zookeeper import GroupReader, ZooKeeperSession
from mesos_dns.records import RecordTable
from mesos_runtime.backoff import Backoff
from mesos_values.addresses import HostPort, parse_host_port, parse_zk_url

__all__ = ["MasterFollower", "read_records"]

log = structlog.get_logger("mesos_dns")

MAX_RECORD = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Masters:
    leader: HostPort | None
    all: tuple[HostPort, ...]


async def read_records(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Split a RecordIO byte stream (`<length>\\n<data>`) into records."""
    buffer = bytearray()
    async for chunk in chunks:
        buffer += chunk
        while True:
            newline = buffer.find(b"\n")
            if newline < 0:
                if len(buffer) > 20:
                    raise ValueError("RecordIO: no record length")
                break
            length = int(buffer[:newline])
            if not 0 <= length <= MAX_RECORD:
                raise ValueError(f"RecordIO: record length {length} out of range")
            if len(buffer) < newline + 1 + length:
                break
            yield bytes(buffer[newline + 1:newline + 1 + length])
            del buffer[:newline + 1 + length]


class MasterFollower:
    """Keeps `table` in step with the leading master named by `master`."""

    def __init__(self, master: str, table: RecordTable, *, scheme: str = "http",
                 verify: ssl.SSLContext | bool = True, auth: tuple[str, str] | None = None,
                 zk_session_timeout: float = 10.0) -> None:
        self._master = master
        self._table = table
        self._scheme = scheme
        self._verify = verify
        self._auth = auth
        self._zk_session_timeout = zk_session_timeout

    async def run(self) -> None:
        """Follow the leader forever."""
        if self._master.startswith("zk://"):
            await self._follow_group()
        else:
            address = parse_host_port(self._master, what="master address")
            backoff = Backoff(0.1, 5.0, jitter=0.5)
            while True:
                await self._subscribe(address, _Masters(address, ()), backoff)
                await asyncio.sleep(backoff.next_delay())

    async def _follow_group(self) -> None:
        url = parse_zk_url(self._master)
        session = ZooKeeperSession(url, session_timeout=self._zk_session_timeout)
        reader = GroupReader(session, url.path, all_members=True)
        backoff = Backoff(0.1, 5.0, jitter=0.5)
        try:
            session.begin()
            while True:
                masters = await self._leading(session, reader)
                assert masters.leader is not None
                subscription = asyncio.create_task(
                    self._subscribe(masters.leader, masters, backoff))
                watch = asyncio.create_task(
                    self._until_leader_moves(session, reader, masters.leader))
                try:
                    done, _ = await asyncio.wait({subscription, watch},
                                                 return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in (subscription, watch):
                        task.cancel()
                    await asyncio.gather(subscription, watch, return_exceptions=True)
                if subscription in done:
                    await asyncio.sleep(backoff.next_delay())
        finally:
            await session.close()

    async def _leading(self, session: ZooKeeperSession, reader: GroupReader) -> _Masters:
        """The masters, once the group names a leader."""
        while True:
            change = session.next_change()
            masters = await self._read_group(session, reader)
            if masters is not None and masters.leader is not None:
                await self._set_masters(masters.leader, masters.all)
                return masters
            await change.wait()

    async def _until_leader_moves(self, session: ZooKeeperSession, reader: GroupReader,
                                  leader: HostPort) -> None:
        """Keep the masters' records current; return once the group names another leader
        (while ZooKeeper is unreachable, the stream to the leader decides)."""
        while True:
            change = session.next_change()
            masters = await self._read_group(session, reader)
            if masters is not None:
                if masters.leader != leader:
                    log.info("the master group names another leader",
                             leader=str(masters.leader), previous=str(leader))
                    return
                await self._set_masters(leader, masters.all)
            await change.wait()

    async def _read_group(self, session: ZooKeeperSession,
                          reader: GroupReader) -> _Masters | None:
        if not session.connected:
            return None
        try:
            view = await reader.read()
        except Exception as error:  # kazoo's errors: retried on the next change
            log.warning("reading the master group failed", error=repr(error))
            return None
        members = tuple(HostPort(info.address or info.hostname, info.http_port)
                        for info in view.infos if info.http_port)
        leader = view.leader.info if view.leader is not None else None
        if leader is None or not leader.http_port:
            return _Masters(None, members)
        return _Masters(HostPort(leader.address or leader.hostname, leader.http_port), members)

    async def _set_masters(self, leader: HostPort, masters: tuple[HostPort, ...]) -> None:
        """The masters' records, by IP (the addresses they advertise are kept for dialling
        them, so that TLS verifies the names their certificates carry)."""
        found: dict[str, str] = {}
        ips = [HostPort(await self._ip_of(m.host, found), m.port) for m in (leader, *masters)]
        self._table.set_masters(str(ips[0]), [str(m) for m in ips[1:]])

    async def _resolve_agents(self, event: dict[str, Any]) -> None:
        """Agents may advertise host names (a container's service name) where records need
        IPs, which the pure table cannot look up: they are put in the event here (the
        `pid`'s host, a recovered agent's `address`), each name looked up once per event."""
        found: dict[str, str] = {}
        agents = _object(_object(_object(event.get("subscribed")).get("get_state"))
                         .get("get_agents"))
        entries = [_object(entry) for entry in _array(agents.get("agents"))]
        entries.append(_object(_object(event.get("agent_added")).get("agent")))
        for entry in entries:
            pid = entry.get("pid")
            if isinstance(pid, str) and "@" in pid:
                name, _, where = pid.rpartition("@")
                host, _, port = where.rpartition(":")
                entry["pid"] = f"{name}@{await self._ip_of(host, found)}:{port}"
        for info in map(_object, _array(agents.get("recovered_agents"))):
            if isinstance(info.get("address"), str):
                info["address"] = await self._ip_of(info["address"], found)

    async def _ip_of(self, host: str, found: dict[str, str] | None = None) -> str:
        """`host`'s IPv4 address (`host` itself if it is one, or cannot be looked up);
        `found` keeps the answers of one batch."""
        if not host or _is_ipv4(host):
            return host
        if found is not None and host in found:
            return found[host]
        try:
            answers = await asyncio.get_running_loop().getaddrinfo(
                host, None, family=socket.AF_INET, type=socket.SOCK_STREAM)
        except OSError as error:
            log.warning("cannot resolve a host name", host=host, error=repr(error))
            return host
        address = str(answers[0][4][0])
        if found is not None:
            found[host] = address
        return address

    async def _subscribe(self, address: HostPort, masters: _Masters, backoff: Backoff) -> None:
        """One subscription, until its stream ends or fails (errors are logged)."""
        url = f"{self._scheme}://{address}/api/v1"
        timeout = httpx.Timeout(10.0, read=None)
        try:
            async with httpx.AsyncClient(verify=self._verify, auth=self._auth,
                                         follow_redirects=True, timeout=timeout) as client, \
                    client.stream("POST", url, json={"type": "SUBSCRIBE"},
                                  headers={"Accept": "application/recordio"}) as response:
                if response.status_code != 200:
                    body = (await response.aread())[:200].decode(errors="replace")
                    log.warning("the master refused SUBSCRIBE", url=url,
                                status=response.status_code, body=body)
                    return
                leader = HostPort(response.url.host or address.host,
                                  response.url.port or address.port)
                heartbeat = 15.0
                records = read_records(response.aiter_bytes())
                while True:
                    try:
                        async with asyncio.timeout(3 * heartbeat):
                            record = await anext(records)
                    except StopAsyncIteration:
                        log.info("the master's event stream ended", leader=str(leader))
                        return
                    except TimeoutError:
                        log.warning("the master's event stream went silent", leader=str(leader))
                        return
                    event = json.loads(record)
                    if not isinstance(event, dict):
                        raise ValueError("an event that is not a JSON object")
                    await self._resolve_agents(event)
                    if event.get("type") == "SUBSCRIBED":
                        subscribed = event.get("subscribed", {})
                        heartbeat = float(subscribed.get("heartbeat_interval_seconds") or 15.0)
                        await self._set_masters(leader, masters.all)
                        backoff.reset()
                        log.info("subscribed to the leading master", leader=str(leader))
                    self._table.apply(event)
        except (httpx.HTTPError, ValueError, OSError) as error:
            log.warning("following the master failed", url=url, error=repr(error))


def _is_ipv4(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _array(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
