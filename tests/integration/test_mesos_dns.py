"""`mesos-dns` on real processes, asked with Debian's real `dig`: tasks resolve by A and SRV
records and through the HTTP API as soon as the master knows them running, and are gone as soon
as they leave TASK_RUNNING; other names are forwarded or refused; garbage does not stop it."""

from __future__ import annotations

import errno
import json
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from dnslib import QTYPE, RR, A, DNSRecord

from frameworks import OfferBudget, SchedulerDriver, command_task
from mesos_security.pki import CertificateAuthority
from mesos_security.tls import TlsConfig
from protos import mesos_pb2
from tests.integration.cluster import Cluster, Process, running_cluster, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.dns_helpers import dig, dig_status, start_mesos_dns
from tests.integration.recording import OfferHandler, RecordingScheduler
from tests.integration.test_authentication import HTTP_ACLS
from tests.integration.test_end_to_end import running
from tests.integration.test_tls_cluster import tls_flags

pytestmark = pytest.mark.integration

Capability = mesos_pb2.FrameworkInfo.Capability


def launch_named(*tasks: tuple[str, str, str], ports: int = 1,
                 kill_grace_period: float | None = None) -> OfferHandler:
    """Launch (task id, task name, command) tasks on the first offer, each with `ports`."""
    pending = list(tasks)

    def handle(driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            if not pending:
                driver.decline_offer(offer.id, filters=60)
                continue
            budget = OfferBudget(offer)
            launch = [command_task(task_id, budget, cmd, name=name, ports=ports,
                                   kill_grace_period=kill_grace_period)
                      for task_id, name, cmd in pending]
            pending.clear()
            driver.launch_tasks(offer.id, launch)

    return handle


@pytest.fixture
def dns(cluster: Cluster) -> tuple[Process, int]:
    """mesos-dns following the cluster's master, with one agent (host `dns-agent`)."""
    cluster.start_agent(hostname="dns-agent")
    process, port = start_mesos_dns(cluster)
    wait_for(lambda: dig(port, "slave.mesos") == ["127.0.0.1"], "the agent's record")
    return process, port


def test_a_task_resolves_by_a_srv_and_http_and_leaves_when_killed(
        cluster: Cluster, dns: tuple[Process, int]) -> None:
    process, port = dns
    master = cluster.masters[0]
    assert dig(port, "leader.mesos") == ["127.0.0.1"]
    assert dig(port, "_leader._tcp.mesos", "SRV") == [f"0 0 {master.http_port} leader.mesos."]

    scheduler = RecordingScheduler(on_offers=launch_named(("shop_web.1", "web.shop",
                                                           "sleep 600")))
    with running(cluster, scheduler, "shop") as driver:
        scheduler.wait_for_state("shop_web.1", "TASK_RUNNING")
        assert wait_for(lambda: dig(port, "web-shop.shop.mesos"), "the A record") == [
            "127.0.0.1"]
        assert dig(port, "web-shop.shop.mesos", "A", "+tcp") == ["127.0.0.1"]
        [srv] = wait_for(lambda: dig(port, "_web-shop._tcp.shop.mesos", "SRV"), "the SRV")
        _priority, _weight, task_port, target = srv.split()
        assert 31000 <= int(task_port) <= 31099
        assert target.startswith("web-shop-") and target.endswith("-s0.shop.slave.mesos.")
        assert dig(port, target) == ["127.0.0.1"]
        assert dig(port, "_web-shop._udp.shop.mesos", "SRV", "+tcp") == [srv]

        hosts = httpx.get(f"{process.http_url}/v1/hosts/web-shop.shop.mesos", timeout=10)
        assert hosts.json() == [{"host": "web-shop.shop.mesos.", "ip": "127.0.0.1"}]
        services = httpx.get(f"{process.http_url}/v1/services/_web-shop._tcp.shop.mesos.",
                             timeout=10).json()
        assert services == [{"service": "_web-shop._tcp.shop.mesos.", "host": target,
                             "ip": "127.0.0.1", "port": task_port}]
        version = httpx.get(f"{process.http_url}/v1/version", timeout=10).json()
        assert version["Service"] == "Mesos-DNS"
        config = httpx.get(f"{process.http_url}/v1/config", timeout=10).json()
        assert config["Domain"] == "mesos" and config["Port"] == port and config["TTL"] == 5

        driver.kill_task("shop_web.1")
        wait_for(lambda: dig_status(port, "web-shop.shop.mesos") == "NXDOMAIN",
                 "the killed task to leave DNS")
        assert dig(port, "_web-shop._tcp.shop.mesos", "SRV") == []
        assert httpx.get(f"{process.http_url}/v1/hosts/web-shop.shop.mesos",
                         timeout=10).json() == [{"host": "", "ip": ""}]


def test_a_task_being_killed_leaves_dns_while_it_still_runs(
        cluster: Cluster, dns: tuple[Process, int]) -> None:
    _, port = dns
    # The task ignores SIGTERM and has a minute of grace: it stays TASK_KILLING meanwhile.
    scheduler = RecordingScheduler(on_offers=launch_named(
        ("slow.1", "slow", "trap '' TERM; sleep 600"), kill_grace_period=60))
    killing = [Capability(type=Capability.TASK_KILLING_STATE)]
    with running(cluster, scheduler, "drain", capabilities=killing) as driver:
        scheduler.wait_for_state("slow.1", "TASK_RUNNING")
        wait_for(lambda: dig(port, "slow.drain.mesos") == ["127.0.0.1"], "the A record")
        driver.kill_task("slow.1")
        scheduler.wait_for_state("slow.1", "TASK_KILLING")
        wait_for(lambda: dig_status(port, "slow.drain.mesos") == "NXDOMAIN",
                 "the task being killed to leave DNS")
        assert scheduler.states("slow.1")[-1] == "TASK_KILLING"  # not ended yet


def test_names_outside_the_domain_are_refused_without_resolvers(
        dns: tuple[Process, int]) -> None:
    _, port = dns
    assert dig_status(port, "example.com") == "REFUSED"
    assert dig_status(port, "example.com", "A", "+tcp") == "REFUSED"
    assert dig_status(port, "nothing.marathon.mesos") == "NXDOMAIN"
    assert dig(port, "mesos", "SOA")[0].startswith("ns1.mesos. root.ns1.mesos.")
    assert dig(port, "mesos", "NS") == ["ns1.mesos."]
    assert dig(port, "ns1.mesos") == ["127.0.0.1"]


def _udp_and_tcp_on_one_port() -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same free port of 127.0.0.1 (the UDP port the
    kernel picks may be taken for TCP, by a listener or a connection: then another)."""
    for _ in range(100):
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
        except OSError as exc:
            udp.close()
            tcp.close()
            if exc.errno != errno.EADDRINUSE:
                raise
            continue
        return udp, tcp
    raise AssertionError("no port free for both UDP and TCP in 100 tries")


@contextmanager
def upstream_resolver(answers: dict[str, str], truncated: frozenset[str] = frozenset()
                      ) -> Iterator[int]:
    """A DNS server on 127.0.0.1 (UDP and TCP, one port) answering A queries for `answers`
    (else NXDOMAIN); over UDP, names in `truncated` get an empty answer with TC set."""
    udp, tcp = _udp_and_tcp_on_one_port()
    udp.settimeout(0.2)
    tcp.listen()
    tcp.settimeout(0.2)
    stop = threading.Event()

    def reply_to(data: bytes, *, over_udp: bool) -> bytes:
        request = DNSRecord.parse(data)
        reply = request.reply()
        name = str(request.q.qname).rstrip(".")
        if over_udp and name in truncated:
            reply.header.tc = 1
        elif name in answers:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(answers[name]), ttl=9))
        else:
            reply.header.rcode = 3
        return bytes(reply.pack())

    def serve_udp() -> None:
        while not stop.is_set():
            try:
                data, client = udp.recvfrom(4096)
            except TimeoutError:
                continue
            udp.sendto(reply_to(data, over_udp=True), client)

    def serve_tcp() -> None:
        while not stop.is_set():
            try:
                connection, _ = tcp.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                length = struct.unpack("!H", connection.recv(2))[0]
                data = b""
                while len(data) < length:
                    data += connection.recv(length - len(data))
                reply = reply_to(data, over_udp=False)
                connection.sendall(struct.pack("!H", len(reply)) + reply)

    servers = [threading.Thread(target=serve, daemon=True) for serve in (serve_udp, serve_tcp)]
    for server in servers:
        server.start()
    try:
        yield udp.getsockname()[1]
    finally:
        stop.set()
        for server in servers:
            server.join()
        udp.close()
        tcp.close()


def test_names_outside_the_domain_are_forwarded_to_the_resolvers(cluster: Cluster) -> None:
    with upstream_resolver({"www.example.test": "192.0.2.7", "big.example.test": "192.0.2.8"},
                           truncated=frozenset({"big.example.test"})) as upstream:
        _, port = start_mesos_dns(cluster, "--resolvers", f"127.0.0.1:{upstream}",
                                  name="mesos-dns-forwarding")
        wait_for(lambda: dig(port, "leader.mesos") == ["127.0.0.1"], "mesos-dns to follow")
        assert dig(port, "www.example.test") == ["192.0.2.7"]
        assert dig(port, "www.example.test", "A", "+tcp") == ["192.0.2.7"]
        assert dig_status(port, "missing.example.test") == "NXDOMAIN"
        # too big for UDP upstream: the UDP client gets it truncated and asks again over TCP,
        # which mesos-dns forwards over TCP
        assert dig(port, "big.example.test") == ["192.0.2.8"]
        assert dig(port, "big.example.test", "A", "+tcp") == ["192.0.2.8"]
        assert dig(port, "leader.mesos") == ["127.0.0.1"]  # its own domain stays its own


def test_malformed_queries_do_not_stop_the_server(dns: tuple[Process, int]) -> None:
    process, port = dns
    garbage = [b"", b"\x00", b"\xff" * 11, b"\x12\x34\x01\x00\x00\x01" + b"\x00" * 6 + b"\xc0",
               b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x3f" + b"a" * 70,
               bytes(range(256)) * 4]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for message in garbage:
            udp.sendto(message, ("127.0.0.1", port))
    for message in garbage:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
            tcp.sendall(struct.pack("!H", len(message)) + message)
            tcp.shutdown(socket.SHUT_WR)
            while tcp.recv(4096):
                pass
    with socket.create_connection(("127.0.0.1", port), timeout=5) as tcp:
        tcp.sendall(b"\xff\xff\x00")  # a length it never sends in full
    assert process.alive()
    assert dig(port, "leader.mesos") == ["127.0.0.1"]
    assert dig(port, "leader.mesos", "A", "+tcp") == ["127.0.0.1"]


def test_a_marathon_app_resolves_by_its_mesos_dns_name(cluster: Cluster) -> None:
    cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]", hostname="127.0.0.1")
    _, port = start_mesos_dns(cluster)
    _, url = cluster.start_marathon()
    with httpx.Client(base_url=url, timeout=10) as marathon:
        wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon to register")
        created = marathon.post("/v2/apps", json={
            "id": "/shop/web", "cmd": "sleep 600", "cpus": 0.1, "mem": 32, "instances": 2,
            "portDefinitions": [{"port": 0}]})
        assert created.status_code == 201, created.text

        def task_ports() -> list[int] | None:
            tasks = marathon.get("/v2/apps/shop/web/tasks").json()["tasks"]
            running = [t for t in tasks if t.get("state") == "TASK_RUNNING"]
            return sorted(t["ports"][0] for t in running) if len(running) == 2 else None

        ports = wait_for(task_ports, "two running instances")
        wait_for(lambda: len(dig(port, "_web-shop._tcp.marathon.mesos", "SRV")) == 2,
                 "both instances' SRV records")
        srv = dig(port, "_web-shop._tcp.marathon.mesos", "SRV")
        assert sorted(int(line.split()[2]) for line in srv) == ports
        assert dig(port, "web-shop.marathon.mesos") == ["127.0.0.1"]

        assert marathon.delete("/v2/apps/shop/web").status_code == 200
        wait_for(lambda: dig_status(port, "web-shop.marathon.mesos") == "NXDOMAIN",
                 "the destroyed app to leave DNS")


def test_with_http_authentication_mesos_dns_needs_credentials_and_sees_what_the_acls_allow(
        tmp_path: Path) -> None:
    credentials = tmp_path / "http-credentials"
    credentials.write_text("ops ops-secret\nviewer viewer-secret\n")
    http_flags = ["--authenticate_http_readonly", "true", "--authenticate_http_readwrite",
                  "true", "--http_credentials", str(credentials), "--acls",
                  json.dumps(HTTP_ACLS)]  # view_tasks: only ops
    with running_cluster(tmp_path, [*FAST_MASTER_FLAGS, *http_flags]) as cluster:
        cluster.start_agent(hostname="dns-agent")
        anonymous = httpx.post(f"{cluster.masters[0].http_url}/api/v1",
                               json={"type": "SUBSCRIBE"}, timeout=10)
        assert anonymous.status_code == 401
        ops_dns, ops_port = start_mesos_dns(cluster, "--principal", "ops",
                                            "--secret", "ops-secret", name="dns-ops")
        viewer_dns, viewer_port = start_mesos_dns(cluster, "--principal", "viewer",
                                                  "--secret", "viewer-secret",
                                                  name="dns-viewer")
        wrong, wrong_port = start_mesos_dns(cluster, "--principal", "ops", "--secret", "guess",
                                            name="dns-wrong")
        scheduler = RecordingScheduler(on_offers=launch_named(("api.1", "api", "sleep 600")))
        with running(cluster, scheduler, "secure"):
            scheduler.wait_for_state("api.1", "TASK_RUNNING")
            wait_for(lambda: dig(ops_port, "api.secure.mesos") == ["127.0.0.1"],
                     "the task's record, for ops")
            wait_for(lambda: dig(viewer_port, "slave.mesos") == ["127.0.0.1"],
                     "the agent's record, for viewer")
            assert dig_status(viewer_port, "api.secure.mesos") == "NXDOMAIN"  # no view_tasks
            wrong.wait_for_log('"status": 401')
            assert dig(wrong_port, "leader.mesos") == []
        assert ops_dns.alive() and viewer_dns.alive() and wrong.alive()


def test_mesos_dns_follows_a_master_over_mutual_tls(tmp_path: Path) -> None:
    ca = CertificateAuthority.create(tmp_path / "pki")
    with running_cluster(tmp_path, [*FAST_MASTER_FLAGS, *tls_flags(ca, ca.issue("master"))]
                         ) as cluster:
        cluster.agent_flags = tls_flags(ca, ca.issue("agent"))
        cluster.start_agent(hostname="tls-agent")
        plain, plain_port = start_mesos_dns(cluster, name="dns-plain")
        tls_dns, port = start_mesos_dns(cluster, *tls_flags(ca, ca.issue("mesos-dns")),
                                        name="dns-tls")
        wait_for(lambda: dig(port, "slave.mesos") == ["127.0.0.1"],
                 "the agent's record, over HTTPS")
        # Its own HTTP API is mutual TLS too, as every listener of a TLS cluster.
        user = ca.issue("cli")
        client = TlsConfig(str(user.cert_file), str(user.key_file), str(ca.cert_file))
        api = tls_dns.http_url.replace("http://", "https://") + "/v1/version"
        assert httpx.get(api, verify=client.client_context(), timeout=10).status_code == 200
        with pytest.raises(httpx.HTTPError):
            httpx.get(tls_dns.http_url + "/v1/version", timeout=10)
        assert dig(port, "leader.mesos") == ["127.0.0.1"]
        plain.wait_for_log("following the master failed")  # plain HTTP to an HTTPS master
        assert dig(plain_port, "slave.mesos") == []


def test_an_agent_advertising_a_host_name_gets_its_address_looked_up(cluster: Cluster) -> None:
    cluster.agent_flags = ["--ip", "localhost"]  # after the default --ip 127.0.0.1: it wins
    cluster.start_agent(hostname="named-agent")
    _, port = start_mesos_dns(cluster)
    wait_for(lambda: dig(port, "slave.mesos") == ["127.0.0.1"], "the agent's record")
    scheduler = RecordingScheduler(on_offers=launch_named(("api.1", "api", "sleep 600")))
    with running(cluster, scheduler, "named"):
        scheduler.wait_for_state("api.1", "TASK_RUNNING")
        wait_for(lambda: dig(port, "api.named.mesos") == ["127.0.0.1"], "the task's record")
