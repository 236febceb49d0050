"""Answers DNS queries from the record table (pure: bytes in, bytes out).

    datagram or TCP message ──▶ answer(table, data) ──▶ Reply(bytes) or Forward (outside the
    domain, for the shell to send to a resolver or refuse)

Within the domain the server is authoritative (AA): A, SRV, SOA and NS, ANY for all of them;
NXDOMAIN for a name without records, NOERROR without answers (and the SOA, for negative
caching) for a name that exists with other types. A malformed message is answered FORMERR
when its header can be read, and dropped otherwise; a UDP answer larger than the client's
buffer (512 bytes, or its EDNS size) comes truncated (TC), so the client asks again over TCP.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from dnslib import (
    NS,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    A,
    DNSError,
    DNSHeader,
    DNSRecord,
)
from dnslib.buffer import Buffer
from dnslib.buffer import BufferError as DnsBufferError

from mesos_dns.records import RecordTable

__all__ = ["Forward", "Reply", "answer", "refused", "server_failure"]

UDP_PAYLOAD = 512
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reply:
    data: bytes


@dataclass(frozen=True, slots=True)
class Forward:
    """A query for a name outside the domain."""

    request: DNSRecord


def answer(table: RecordTable, data: bytes, *, ttl: int, recursion: bool,
           udp: bool, rotation: int = 0) -> Reply | Forward | None:
    """The answer to one DNS message; None when it cannot even be answered FORMERR.
    Answers with several records start `rotation` records further on (round robin, so
    that clients taking the first spread over the instances, as Mesos-DNS' shuffling does)."""
    try:
        request = DNSRecord.parse(data)
    except (DNSError, DnsBufferError, ValueError, IndexError, UnicodeError):
        return _format_error(data)
    if request.header.qr or request.header.opcode != 0 or len(request.questions) != 1:
        reply = request.reply() if not request.header.qr else None
        if reply is None:
            return None
        reply.header.rcode = RCODE.NOTIMP if request.header.opcode else RCODE.FORMERR
        return Reply(bytes(reply.pack()))
    question = request.q
    name = str(question.qname)
    if not table.in_domain(name):
        return Forward(request)
    reply = request.reply(ra=int(recursion), aa=1)
    qtype = question.qtype
    if qtype in (QTYPE.A, QTYPE.ANY):
        for ip in _rotated(table.a(name), rotation):
            reply.add_answer(RR(name, QTYPE.A, rdata=A(ip), ttl=ttl))
    if qtype in (QTYPE.SRV, QTYPE.ANY):
        targets: dict[str, None] = {}
        for target, port in _rotated(table.srv(name), rotation):
            reply.add_answer(RR(name, QTYPE.SRV, ttl=ttl,
                                rdata=SRV(priority=0, weight=0, port=port, target=target + ".")))
            targets[target] = None
        for target in targets:
            for ip in table.a(target):
                reply.add_ar(RR(target + ".", QTYPE.A, rdata=A(ip), ttl=ttl))
    apex = table.in_domain(name) and name.lower().rstrip(".") == table.domain
    if apex and qtype in (QTYPE.SOA, QTYPE.ANY):
        reply.add_answer(_soa(table, ttl))
    if apex and qtype in (QTYPE.NS, QTYPE.ANY):
        reply.add_answer(RR(table.domain + ".", QTYPE.NS, rdata=NS(table.name_server + "."),
                            ttl=ttl))
        for ip in table.a(table.name_server):
            reply.add_ar(RR(table.name_server + ".", QTYPE.A, rdata=A(ip), ttl=ttl))
    if not reply.rr:
        if not table.has_name(name):
            reply.header.rcode = RCODE.NXDOMAIN
        reply.add_auth(_soa(table, ttl))
    packed = reply.pack()
    if udp and len(packed) > _udp_limit(request):
        reply.rr, reply.ar, reply.auth = [], [], []
        reply.header.tc = 1
        packed = reply.pack()
    return Reply(bytes(packed))


def refused(request: DNSRecord, *, recursion: bool) -> bytes:
    """REFUSED, for a name outside the domain when there is no resolver to ask."""
    reply = request.reply(ra=int(recursion))
    reply.header.rcode = RCODE.REFUSED
    return bytes(reply.pack())


def server_failure(request: DNSRecord, *, recursion: bool) -> bytes:
    """SERVFAIL, when no resolver answered a forwarded query."""
    reply = request.reply(ra=int(recursion))
    reply.header.rcode = RCODE.SERVFAIL
    return bytes(reply.pack())


def _rotated(items: list[T], by: int) -> list[T]:
    if len(items) < 2:
        return items
    by %= len(items)
    return items[by:] + items[:by]


def _soa(table: RecordTable, ttl: int) -> RR:
    return RR(table.domain + ".", QTYPE.SOA, ttl=ttl, rdata=SOA(
        table.name_server + ".", f"root.{table.name_server}.",
        (table.generation % 2**32, 60, 600, 86400, ttl)))


def _udp_limit(request: DNSRecord) -> int:
    for record in request.ar:
        if record.rtype == QTYPE.OPT and isinstance(record, RR):
            return max(UDP_PAYLOAD, min(int(record.rclass), 65535))
    return UDP_PAYLOAD


def _format_error(data: bytes) -> Reply | None:
    if len(data) < 12 or data[2] & 0x80:  # no header, or a response: never answer those
        return None
    try:
        header = DNSHeader.parse(Buffer(data[:12]))
    except (DNSError, DnsBufferError, ValueError, IndexError):
        return None
    reply = DNSRecord(DNSHeader(id=header.id, qr=1, opcode=header.opcode, rcode=RCODE.FORMERR))
    return Reply(bytes(reply.pack()))
