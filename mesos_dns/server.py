"""The DNS listeners (UDP and TCP, asyncio), a thin shell over `resolver.answer`.

    datagram / length-prefixed TCP message ──▶ answer() ──▶ reply
                                                  └─ Forward ──▶ each --resolvers in turn
                                                                 (UDP, then TCP for a TCP
                                                                 client's truncated answer;
                                                                 REFUSED without resolvers,
                                                                 SERVFAIL when none answers)
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Sequence
from typing import cast

import structlog

from mesos_dns.records import RecordTable
from mesos_dns.resolver import Forward, Reply, answer, refused, server_failure

__all__ = ["DnsServer"]

log = structlog.get_logger("mesos_dns")

TCP_IDLE_SECONDS = 10.0


class DnsServer:
    """Answers from `table` on UDP and TCP; forwards other names to `resolvers`."""

    def __init__(self, table: RecordTable, *, ttl: int, resolvers: Sequence[tuple[str, int]] = (),
                 forward_timeout: float = 5.0) -> None:
        self.table = table
        self.ttl = ttl
        self.resolvers = list(resolvers)
        self.forward_timeout = forward_timeout
        self._tasks: set[asyncio.Task[None]] = set()
        self._queries = 0  # rotates answers with several records

    async def serve(self, host: str, port: int) -> tuple[int, asyncio.Server,
                                                         asyncio.DatagramTransport]:
        """Listen on `host:port` (UDP and TCP; port 0 picks a free one for both)."""
        loop = asyncio.get_running_loop()
        for _attempt in range(20):
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), local_addr=(host, port))
            bound = transport.get_extra_info("sockname")[1]
            try:
                server = await asyncio.start_server(self._tcp_client, host, bound)
            except OSError:
                transport.close()
                if port:
                    raise
                continue
            return bound, server, transport
        raise OSError(f"no port free for both UDP and TCP on {host}")

    async def close(self) -> None:
        """Cancel the forwarded queries still waiting for a resolver."""
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def respond(self, data: bytes, *, udp: bool) -> bytes | None:
        try:
            result = self._answer(data, udp=udp)
        except Exception:  # a query must never take the server down
            log.exception("answering a query failed")
            return None
        if not isinstance(result, Forward):
            return result.data if result is not None else None
        if not self.resolvers:
            return refused(result.request, recursion=False)
        for resolver in self.resolvers:
            reply = await self._forward(data, resolver)
            if reply is not None and not udp and len(reply) > 2 and reply[2] & 0x02:
                reply = await self._forward_tcp(data, resolver) or reply  # truncated (TC)
            if reply is not None:
                return reply
        return server_failure(result.request, recursion=True)

    async def _forward_tcp(self, data: bytes, resolver: tuple[str, int]) -> bytes | None:
        try:
            async with asyncio.timeout(self.forward_timeout):
                reader, writer = await asyncio.open_connection(*resolver)
                try:
                    writer.write(struct.pack("!H", len(data)) + data)
                    length = struct.unpack("!H", await reader.readexactly(2))[0]
                    return await reader.readexactly(length)
                finally:
                    writer.close()
        except (OSError, TimeoutError, asyncio.IncompleteReadError) as error:
            log.warning("a resolver did not answer over TCP", resolver=resolver,
                        error=repr(error))
            return None

    def _answer(self, data: bytes, *, udp: bool) -> Reply | Forward | None:
        self._queries += 1
        return answer(self.table, data, ttl=self.ttl, recursion=bool(self.resolvers), udp=udp,
                      rotation=self._queries)

    async def _forward(self, data: bytes, resolver: tuple[str, int]) -> bytes | None:
        loop = asyncio.get_running_loop()
        replies: asyncio.Future[bytes] = loop.create_future()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _ForwardProtocol(replies, data[:2]), remote_addr=resolver)
        except OSError as error:
            log.warning("cannot reach a resolver", resolver=resolver, error=repr(error))
            return None
        try:
            transport.sendto(data)
            async with asyncio.timeout(self.forward_timeout):
                return await replies
        except TimeoutError:
            log.warning("a resolver did not answer", resolver=resolver)
            return None
        finally:
            transport.close()

    def handle_datagram(self, data: bytes, address: tuple[str, int],
                        transport: asyncio.DatagramTransport) -> None:
        try:
            result = self._answer(data, udp=True)
        except Exception:  # a query must never take the server down
            log.exception("answering a query failed")
            return
        if result is None:
            return
        if not isinstance(result, Forward):  # answered at once, without a task
            transport.sendto(result.data, address)
            return
        task = asyncio.ensure_future(self._answer_datagram(data, address, transport))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer_datagram(self, data: bytes, address: tuple[str, int],
                               transport: asyncio.DatagramTransport) -> None:
        reply = await self.respond(data, udp=True)
        if reply is not None and not transport.is_closing():
            transport.sendto(reply, address)

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                async with asyncio.timeout(TCP_IDLE_SECONDS):
                    header = await reader.readexactly(2)
                    data = await reader.readexactly(struct.unpack("!H", header)[0])
                reply = await self.respond(data, udp=False)
                if reply is None:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self._server = server
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._transport is not None:
            self._server.handle_datagram(data, addr, self._transport)


class _ForwardProtocol(asyncio.DatagramProtocol):
    """Takes the first datagram that answers the forwarded query's id."""

    def __init__(self, replies: asyncio.Future[bytes], query_id: bytes) -> None:
        self._replies = replies
        self._query_id = query_id

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if data[:2] == self._query_id and not self._replies.done():
            self._replies.set_result(data)
