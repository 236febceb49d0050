"""Answers from the record table on the wire (dnslib): authoritative answers, NXDOMAIN and
NODATA with the SOA, forwarding decisions, truncation, and malformed messages."""

from __future__ import annotations

from dnslib import EDNS0, QTYPE, RCODE, DNSRecord
from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_dns.records import RecordTable
from mesos_dns.resolver import Forward, Reply, answer, refused
from tests.unit.test_mesos_dns_records import agent, state, task


def table() -> RecordTable:
    records = RecordTable("mesos", listener="127.0.0.1")
    records.set_masters("127.0.0.1:5050")
    records.replace(state([task()]))
    return records


def ask(records: RecordTable, name: str, qtype: str = "A", *, udp: bool = True,
        query: DNSRecord | None = None) -> DNSRecord:
    query = query or DNSRecord.question(name, qtype)
    result = answer(records, bytes(query.pack()), ttl=30, recursion=False, udp=udp)
    assert isinstance(result, Reply)
    reply = DNSRecord.parse(result.data)
    assert reply.header.id == query.header.id
    return reply


def test_a_and_srv_answers_are_authoritative_with_the_ttl() -> None:
    reply = ask(table(), "web-shop.marathon.mesos")
    assert reply.header.aa and reply.header.rcode == RCODE.NOERROR
    assert [(str(rr.rdata), rr.ttl) for rr in reply.rr] == [("10.0.0.5", 30)]

    reply = ask(table(), "_web-shop._tcp.marathon.mesos", "SRV")
    assert sorted(rr.rdata.port for rr in reply.rr) == [31000, 31001]
    [target] = {str(rr.rdata.target) for rr in reply.rr}
    assert target.endswith(".marathon.slave.mesos.")
    # the targets' addresses come along
    assert [(str(rr.rname), str(rr.rdata)) for rr in reply.ar] == [(target, "10.0.0.5")]


def test_unknown_names_are_nxdomain_and_known_names_without_the_type_nodata() -> None:
    missing = ask(table(), "nothing.marathon.mesos")
    assert missing.header.rcode == RCODE.NXDOMAIN
    assert [QTYPE[rr.rtype] for rr in missing.auth] == ["SOA"]
    nodata = ask(table(), "web-shop.marathon.mesos", "AAAA")
    assert nodata.header.rcode == RCODE.NOERROR and not nodata.rr
    assert [QTYPE[rr.rtype] for rr in nodata.auth] == ["SOA"]


def test_the_apex_has_soa_and_ns() -> None:
    soa = ask(table(), "mesos", "SOA")
    assert str(soa.rr[0].rdata.mname) == "ns1.mesos."
    ns = ask(table(), "mesos", "NS")
    assert str(ns.rr[0].rdata) == "ns1.mesos."
    assert [str(rr.rdata) for rr in ns.ar] == ["127.0.0.1"]


def test_names_outside_the_domain_are_for_the_resolvers_or_refused() -> None:
    query = DNSRecord.question("example.com", "A")
    result = answer(table(), bytes(query.pack()), ttl=30, recursion=False, udp=True)
    assert isinstance(result, Forward)
    reply = DNSRecord.parse(refused(result.request, recursion=False))
    assert reply.header.rcode == RCODE.REFUSED and reply.header.id == query.header.id


def test_a_udp_answer_too_big_is_truncated_but_not_over_tcp_or_with_edns() -> None:
    records = RecordTable("mesos")
    records.replace(state([task(f"big.{i}", name="big", ports=((31000, 31010),))
                           for i in range(10)]))
    udp = ask(records, "_big._tcp.marathon.mesos", "SRV")
    assert udp.header.tc and not udp.rr
    tcp = ask(records, "_big._tcp.marathon.mesos", "SRV", udp=False)
    assert not tcp.header.tc and len(tcp.rr) == 110
    query = DNSRecord.question("_big._tcp.marathon.mesos", "SRV")
    query.add_ar(EDNS0(udp_len=65000))
    edns = ask(records, "", query=query)
    assert not edns.header.tc and len(edns.rr) == 110


def test_garbage_with_a_header_is_formerr_and_without_one_dropped() -> None:
    formerr = answer(table(), b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff",
                     ttl=30, recursion=False, udp=True)
    assert isinstance(formerr, Reply)
    reply = DNSRecord.parse(formerr.data)
    assert reply.header.id == 0x1234 and reply.header.rcode == RCODE.FORMERR
    assert answer(table(), b"\x00", ttl=30, recursion=False, udp=True) is None
    response = DNSRecord.question("x.mesos").reply()  # a response is never answered
    assert answer(table(), bytes(response.pack()), ttl=30, recursion=False, udp=True) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_no_message_makes_the_resolver_fail(data: bytes) -> None:
    records = table()
    result = answer(records, data, ttl=30, recursion=False, udp=True)
    if isinstance(result, Reply):
        reply = DNSRecord.parse(result.data)  # whatever is answered is a well-formed reply
        assert reply.header.qr and reply.header.id == int.from_bytes(data[:2], "big")


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40), st.integers(0, 60))
def test_corrupted_real_queries_never_fail(noise: bytes, at: int) -> None:
    query = bytearray(DNSRecord.question("web-shop.marathon.mesos", "SRV").pack())
    at = min(at, len(query))
    corrupted = bytes(query[:at] + noise + query[at + len(noise):])
    answer(table(), corrupted, ttl=30, recursion=False, udp=True)


def test_answers_rotate_so_that_clients_taking_the_first_spread_out() -> None:
    records = RecordTable("mesos")
    records.replace(state(
        [task("web.1", name="web", agent_id="M1-S1"), task("web.2", name="web", agent_id="M1-S2")],
        agents=[agent("M1-S1", "10.0.0.5"), agent("M1-S2", "10.0.0.6")]))
    query = bytes(DNSRecord.question("web.marathon.mesos", "A").pack())
    firsts = set()
    for rotation in range(2):
        result = answer(records, query, ttl=30, recursion=False, udp=True, rotation=rotation)
        assert isinstance(result, Reply)
        addresses = [str(rr.rdata) for rr in DNSRecord.parse(result.data).rr]
        assert sorted(addresses) == ["10.0.0.5", "10.0.0.6"]
        firsts.add(addresses[0])
    assert firsts == {"10.0.0.5", "10.0.0.6"}
