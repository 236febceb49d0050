"""`mesos-dns`: DNS names for the cluster's running tasks, agents and masters, following the
leading master's operator event stream (ADR 0016).

    mesos-dns --master HOST:PORT|zk://host:port/path --port 53 --http_port 8123
              --domain mesos --resolvers 8.8.8.8,1.1.1.1 --ttl 60 --listener 0.0.0.0

`--master` names the master's HTTP address (a standby redirects to the leader) or the
ZooKeeper group the masters elect their leader in. Port 0 picks a free port (the bound ports
are logged: "mesos-dns listening"). `--resolvers` take `IP` or `IP:PORT`.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import structlog

from mesos_coordination.process import run_service
from mesos_dns.follower import MasterFollower
from mesos_dns.http_api import http_app
from mesos_dns.records import RecordTable
from mesos_dns.server import DnsServer
from mesos_http.http_server import serve_while
from mesos_runtime.flags import (
    FlagParser,
    parse_duration,
    parse_flags,
    parse_log_level,
    parse_port,
)
from mesos_runtime.logging import configure_logging
from mesos_security.tls import TlsConfig, add_tls_flags, tls_from_args
from mesos_values.addresses import parse_host_port, parse_zk_url

__all__ = ["build_parser", "main"]


def _resolvers(text: str) -> list[tuple[str, int]]:
    resolvers = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            if item.count(":") == 1 or item.startswith("["):
                address = parse_host_port(item, what="resolver")
                resolvers.append((address.host, address.port))
            else:
                resolvers.append((item, 53))
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error
    return resolvers


def _master(text: str) -> str:
    try:
        if text.startswith("zk://"):
            parse_zk_url(text)
        else:
            parse_host_port(text, what="master address")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error
    return text


def _ttl(text: str) -> int:
    value = int(text)
    if not 0 <= value < 2**31:
        raise argparse.ArgumentTypeError("--ttl must be between 0 and 2^31-1 seconds")
    return value


def build_parser() -> FlagParser:
    parser = FlagParser(prog="mesos-dns", description=__doc__.split("\n\n")[0])
    parser.add_argument("--master", type=_master, required=True,
                        metavar="HOST:PORT|zk://host:port/path",
                        help="the master's HTTP address, or the masters' ZooKeeper group")
    parser.add_argument("--port", type=parse_port, default=53, help="DNS port (UDP and TCP)")
    parser.add_argument("--http_port", type=parse_port, default=8123, help="HTTP API port")
    parser.add_argument("--listener", default="0.0.0.0", help="the address to listen on")
    parser.add_argument("--domain", default="mesos", help="the domain served")
    parser.add_argument("--resolvers", type=_resolvers, default=[],
                        help="comma-separated IP[:PORT] of resolvers for other names "
                             "(none: those are REFUSED)")
    parser.add_argument("--ttl", type=_ttl, default=60, help="TTL of answers, in seconds")
    parser.add_argument("--timeout", type=parse_duration, default=5.0,
                        help="how long to wait for a resolver")
    parser.add_argument("--soa_mname", default="ns1",
                        help="label of the SOA's name server (ns1 gives ns1.<domain>)")
    parser.add_argument("--zk_session_timeout", type=parse_duration, default=10.0)
    parser.add_argument("--principal", default=None,
                        help="HTTP Basic principal for the master's operator API")
    parser.add_argument("--secret", default=None, help="the principal's secret")
    parser.add_argument("--log_level", type=parse_log_level, default="INFO")
    add_tls_flags(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parse_flags(parser, argv, "MESOS_DNS")
    if (args.principal is None) != (args.secret is None):
        parser.error("--principal and --secret go together")
    try:
        tls = tls_from_args(args)
    except ValueError as error:
        parser.error(str(error))
    configure_logging(args.log_level)
    table = RecordTable(args.domain, name_server=args.soa_mname, listener=args.listener)
    follower = MasterFollower(
        args.master, table, scheme="https" if tls.dials_tls else "http",
        verify=tls.client_context() if tls.dials_tls else True,
        auth=(args.principal, args.secret) if args.principal is not None else None,
        zk_session_timeout=args.zk_session_timeout)
    dns = DnsServer(table, ttl=args.ttl, resolvers=args.resolvers, forward_timeout=args.timeout)
    run_service("mesos-dns", lambda: _serve(args, table, follower, dns, tls))


def _config(args: argparse.Namespace, dns_port: int, http_port: int) -> dict[str, Any]:
    """The configuration as Mesos-DNS' `/v1/config` shows it."""
    zk = args.master if args.master.startswith("zk://") else ""
    return {
        "Masters": None if zk else [args.master],
        "Zk": zk,
        "RefreshSeconds": 0,  # no polling: the master's event stream is followed
        "TTL": args.ttl,
        "Port": dns_port,
        "Domain": args.domain,
        "Resolvers": [host if port == 53 else f"{host}:{port}" for host, port in args.resolvers],
        "Timeout": args.timeout,
        "Email": f"root.{args.soa_mname}.{args.domain}.",
        "Mname": f"{args.soa_mname}.{args.domain}.",
        "Listener": args.listener,
        "HttpPort": http_port,
        "DnsOn": True,
        "HttpOn": True,
    }


async def _serve(args: argparse.Namespace, table: RecordTable, follower: MasterFollower,
                 dns: DnsServer, tls: TlsConfig) -> None:
    log = structlog.get_logger("mesos_dns")
    dns_port, tcp_server, udp_transport = await dns.serve(args.listener, args.port)
    config: dict[str, Any] = {}

    async def run(http_port: int) -> None:
        config.update(_config(args, dns_port, http_port))
        log.info("mesos-dns listening", dns_port=dns_port, http_port=http_port,
                 domain=args.domain, master=args.master)
        await follower.run()

    try:
        async with tcp_server:
            await serve_while(http_app(table, config), args.listener, args.http_port, run,
                              tls=tls)
    finally:
        udp_transport.close()
        await dns.close()
