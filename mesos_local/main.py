"""`mesos-local`: a master, `--agents N` agents, Marathon and the batch framework on loopback,
in one command.

Each component runs as its own process (the same console scripts a real cluster uses), with its
log under `<work_dir>/logs/`, supervised (`mesos_local.supervisor`): one that exits is reported
and restarted with backoff while the others keep running. mesos-local makes itself the child
subreaper, so tasks whose agent has exited are re-parented to it and reaped; on SIGINT, SIGTERM
or SIGHUP (however it was started) it stops the components and kills whatever tasks remain,
leaving no child processes behind.

Agent i poses as host 127.0.0.i (every 127/8 address is loopback on Linux), so placement by
hostname sees distinct hosts, and gets its own slice of `--task_ports` for tasks.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mesos_local.supervisor import Component, Supervisor
from mesos_runtime.flags import FlagParser, parse_flags, parse_port
from mesos_security.pki import CertificateAuthority, IssuedCertificate, write_pkcs12

_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class LocalTls:
    """The TLS material of a `--tls` cluster, under `<work_dir>/tls/`."""

    authority: CertificateAuthority
    client: IssuedCertificate
    """The user's certificate (common name `cli`) for the CLI, the SDK, curl."""
    browser_bundle: Path
    """`client` as PKCS#12 for a browser, protected by the password in `password_file`."""
    password_file: Path

    def flags(self, issued: IssuedCertificate) -> list[str]:
        """The `--ssl_*` flags of a component presenting `issued`, requiring client
        certificates of the CA on every listener."""
        return ["--ssl_cert_file", str(issued.cert_file), "--ssl_key_file", str(issued.key_file),
                "--ssl_ca_file", str(self.authority.cert_file),
                "--ssl_require_client_cert", "true"]

    def environment(self) -> dict[str, str]:
        """The `LIBPROCESS_SSL_*` variables that make the CLI and the SDK dial the cluster."""
        return {"LIBPROCESS_SSL_ENABLED": "true",
                "LIBPROCESS_SSL_CERT_FILE": str(self.client.cert_file),
                "LIBPROCESS_SSL_KEY_FILE": str(self.client.key_file),
                "LIBPROCESS_SSL_CA_FILE": str(self.authority.cert_file)}


def prepare_tls(directory: Path, hosts: Sequence[str]) -> LocalTls:
    """The CA in `directory` (made there the first time, reused afterwards, so that a browser
    that trusts it keeps trusting it) and the user's certificate and browser bundle (made
    once too); `hosts` are the addresses the components' certificates serve."""
    if (directory / "ca-key.pem").exists():
        authority = CertificateAuthority.load(directory)
    else:
        authority = CertificateAuthority.create(directory)
    client = IssuedCertificate(directory / "cli.pem", directory / "cli-key.pem")
    if not (client.cert_file.exists() and client.key_file.exists()):
        client = authority.issue("cli", hosts)
    password_file = directory / "cli.p12.password"
    bundle = directory / "cli.p12"
    if not (bundle.exists() and password_file.exists()):
        password = secrets.token_urlsafe(12)
        descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(password + "\n")
        write_pkcs12(client, bundle, password.encode(), authority.cert_file)
    return LocalTls(authority, client, bundle, password_file)


def tls_instructions(tls: LocalTls, master: str, master_url: str, marathon_url: str | None,
                     batch_url: str | None) -> list[str]:
    """How a user reaches a `--tls` cluster: the shell exports for the CLI and the SDK, and
    what a browser must trust and import."""
    exports = {**tls.environment(), "MESOS_MASTER": master}
    if marathon_url is not None:
        exports["MARATHON_URL"] = marathon_url
    if batch_url is not None:
        exports["MESOS_BATCH_URL"] = batch_url
    ca = tls.authority.cert_file
    return [
        "TLS: every listener serves mutual TLS only (a certificate of the CA below is required).",
        "  for the mesos CLI and the SDK:",
        *(f"    export {name}={value}" for name, value in exports.items()),
        f"  curl:     curl --cacert {ca} --cert {tls.client.cert_file} "
        f"--key {tls.client.key_file} {master_url}/state",
        f"  browser:  trust {ca} as a certificate authority and import {tls.browser_bundle}",
        f"            as your certificate (its password is in {tls.password_file})",
    ]


def build_parser() -> argparse.ArgumentParser:
    parser = FlagParser(
        prog="mesos-local",
        description="Run a master and agents here. Flags can also be set as MESOS_<FLAG>.",
    )
    parser.add_argument("--ip", default="127.0.0.1", help="address the master listens on")
    parser.add_argument("--port", type=parse_port, default=5050, help="master gRPC port")
    parser.add_argument("--agents", type=int, default=2, help="number of agents (default 2)")
    parser.add_argument("--agent_port", type=parse_port, default=5051, help="first agent's port")
    parser.add_argument(
        "--resources",
        default="cpus:2;mem:2048;disk:10000",
        help="each agent's resources (a ports range is added per agent)",
    )
    parser.add_argument(
        "--work_dir",
        type=Path,
        default=None,
        help="where state and logs go (default: a temporary directory, removed on exit)",
    )
    parser.add_argument("--master_http_port", type=parse_port, default=5080,
                        help="the master's HTTP endpoints (/state, /metrics, ...)")
    parser.add_argument("--marathon_port", type=parse_port, default=8080,
                        help="Marathon's REST API port")
    parser.add_argument("--no_marathon", action="store_true", help="do not start Marathon")
    parser.add_argument("--batch_port", type=parse_port, default=9000,
                        help="the batch framework's REST API port (Metronome's v1 API)")
    parser.add_argument("--no_batch", action="store_true",
                        help="do not start the batch framework")
    parser.add_argument("--dns_port", type=parse_port, default=0,
                        help="mesos-dns' DNS port, UDP and TCP (default: a free one, printed)")
    parser.add_argument("--dns_http_port", type=parse_port, default=0,
                        help="mesos-dns' HTTP API port (default: a free one, printed)")
    parser.add_argument("--no_dns", action="store_true", help="do not start mesos-dns")
    parser.add_argument("--lb_http_port", type=parse_port, default=0,
                        help="marathon-lb's shared HTTP port for virtual hosts (default: a free "
                        "one, printed); apps' service ports are bound as they come")
    parser.add_argument("--lb_stats_port", type=parse_port, default=0,
                        help="marathon-lb's stats and health port (default: a free one)")
    parser.add_argument("--no_lb", action="store_true",
                        help="do not start marathon-lb (it starts only where haproxy is installed)")
    parser.add_argument("--tls", action="store_true",
                        help="mutual TLS everywhere: a private CA and certificates under "
                             "<work_dir>/tls (the CA is reused), printed with how to use them")
    parser.add_argument("--task_ports", type=parse_port_range, default=(31000, 32999),
                        help="the ports tasks may use, split evenly among the agents "
                        "(default 31000-32999; give two clusters on one host different ones)")
    parser.add_argument("--startup_timeout", type=float, default=30.0)
    parser.add_argument("--log_level", default="INFO")
    return parser


def parse_port_range(text: str) -> tuple[int, int]:
    """`BEGIN-END`, two ports with BEGIN <= END."""
    begin, dash, end = text.partition("-")
    try:
        if not dash:
            raise ValueError
        first, last = parse_port(begin.strip()), parse_port(end.strip())
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a port range such as 31000-32999") from None
    if first < 1 or first > last:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port range from 1 to 65535 "
                                         "that ends after it begins")
    return first, last


def _free_port() -> int:
    """A TCP port free on loopback now (for a component whose port the user left to us)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: tasks of a killed agent may outlive us


class _StopRequested(Exception):
    """SIGINT, SIGTERM or SIGHUP arrived."""


def _on_stop_signal(signum: int, frame: object) -> None:
    raise _StopRequested(signal.Signals(signum).name)


def agent_port_ranges(task_ports: tuple[int, int], agents: int) -> list[tuple[int, int]]:
    """`--task_ports` split evenly among `agents` (each a contiguous range); ValueError when
    some agent would get no port."""
    first, last = task_ports
    size = (last - first + 1) // agents if agents else 0
    if agents and size < 1:
        raise ValueError(f"--task_ports {first}-{last} has fewer ports than --agents {agents}")
    return [(first + i * size, first + (i + 1) * size - 1) for i in range(agents)]


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_flags(build_parser(), argv, "MESOS")
    if args.agents < 0 or args.agents > 200:
        sys.exit("mesos-local: --agents must be between 0 and 200")
    try:
        port_ranges = agent_port_ranges(args.task_ports, args.agents)
    except ValueError as exc:
        sys.exit(f"mesos-local: {exc}")
    _become_subreaper()
    # However it was started (a background job of a non-interactive shell ignores SIGINT),
    # these three stop the cluster.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _on_stop_signal)
    temporary = args.work_dir is None
    work_dir: Path = Path(tempfile.mkdtemp(prefix="mesos-local-")) if temporary else args.work_dir
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    supervisor = Supervisor(logs)
    marathon_url = batch_url = ""
    deadline = time.monotonic() + args.startup_timeout
    hosts = list(dict.fromkeys([args.ip, "127.0.0.1", "localhost"]))
    status = 0

    def secure(name: str, *more_hosts: str) -> list[str]:
        """The `--ssl_*` flags of component `name` under --tls (its certificate is issued
        afresh), else none."""
        return tls.flags(tls.authority.issue(name, [*hosts, *more_hosts])) if tls else []

    try:
        tls = prepare_tls(work_dir / "tls", hosts) if args.tls else None
        scheme = "https" if tls is not None else "http"
        supervisor.start(Component("master", [
            python, "-m", "mesos_master",
            "--ip", args.ip, "--port", str(args.port),
            "--http_port", str(args.master_http_port),
            "--work_dir", str(work_dir / "master"),
            "--log_level", args.log_level,
            *secure("master"),
            *(["--authenticate_frameworks", "true", "--authenticate_agents", "true"]
              if tls else []),
        ], (args.ip, args.port)), deadline)
        lines = [
            f"  master    {args.ip}:{args.port}  (gRPC: pass --master {args.ip}:{args.port})",
            f"  master    {scheme}://{args.ip}:{args.master_http_port}  (web UI; /state, "
            "/metrics, /api/v1)",
        ]
        for index, (first_port, last_port) in enumerate(port_ranges, start=1):
            port = args.agent_port + index - 1
            hostname = f"127.0.0.{index}"
            resources = f"{args.resources};ports:[{first_port}-{last_port}]"
            supervisor.start(Component(f"agent-{index}", [
                python, "-m", "mesos_agent",
                "--master", f"{args.ip}:{args.port}",
                "--ip", "127.0.0.1", "--port", str(port),
                "--hostname", hostname,
                "--work_dir", str(work_dir / f"agent-{index}"),
                "--resources", resources,
                "--log_level", args.log_level,
                *secure(f"agent-{index}", hostname),
            ], ("127.0.0.1", port)), deadline)
            lines.append(f"  agent {index:<3} 127.0.0.1:{port}  hostname {hostname}  {resources}")
        def framework(name: str, module: str, port: int) -> str:
            """Start the elected framework service `module` on `port`; its URL."""
            supervisor.start(Component(name, [
                python, "-m", module,
                "--master", f"{args.ip}:{args.port}",
                "--http_address", "127.0.0.1",
                "--http_port", str(port),
                "--work_dir", str(work_dir / name),
                "--log_level", args.log_level,
                *secure(name),
            ], ("127.0.0.1", port)), deadline)
            return f"{scheme}://127.0.0.1:{port}"

        if not args.no_marathon:
            marathon_url = framework("marathon", "marathon", args.marathon_port)
            lines.append(f"  marathon  {marathon_url}  (REST API v2; web UI "
                         "at /ui/, API docs at /docs)")
        if not args.no_batch:
            batch_url = framework("batch", "frameworks.batch", args.batch_port)
            lines.append(f"  batch     {batch_url}  (jobs API v1; web UI at "
                         "/ui/, API docs at /docs)")
        if not args.no_dns:
            dns_port = args.dns_port or _free_port()
            dns_http_port = args.dns_http_port or _free_port()
            supervisor.start(Component("mesos-dns", [
                python, "-m", "mesos_dns",
                "--master", f"{args.ip}:{args.master_http_port}",
                "--listener", "127.0.0.1", "--port", str(dns_port),
                "--http_port", str(dns_http_port),
                "--log_level", args.log_level,
                *secure("mesos-dns"),
            ], ("127.0.0.1", dns_http_port)), deadline)
            lines.append(f"  dns       127.0.0.1:{dns_port}  (UDP and TCP: dig @127.0.0.1 -p "
                         f"{dns_port} <app>.marathon.mesos; HTTP API http://127.0.0.1:"
                         f"{dns_http_port}/v1/services/_<app>._tcp.marathon.mesos.)")
        haproxy = shutil.which("haproxy")
        if args.no_marathon or args.no_lb:
            pass
        elif haproxy is None:
            lines.append("  lb        not started: haproxy is not installed (apt-get install "
                         "haproxy)")
        elif tls is not None:
            lines.append("  lb        not started under --tls: marathon-lb presents no client "
                         "certificate to Marathon")
        else:
            lb_http = args.lb_http_port or _free_port()
            lb_stats = args.lb_stats_port or _free_port()
            (work_dir / "marathon-lb").mkdir(exist_ok=True)
            supervisor.start(Component("marathon-lb", [
                python, "-m", "marathon_lb",
                "--marathon", marathon_url, "--group", "external", "--sse", "--health-check",
                "--haproxy-config", str(work_dir / "marathon-lb" / "haproxy.cfg"),
                "--haproxy-bin", haproxy,
                "--http-port", str(lb_http), "--stats-port", str(lb_stats),
                "--log-level", args.log_level,
            ], ("127.0.0.1", lb_stats)), deadline)
            lines.append(f"  lb        marathon-lb: apps labelled HAPROXY_GROUP=external on "
                         f"their service ports; virtual hosts on :{lb_http}; stats "
                         f"http://127.0.0.1:{lb_stats}/haproxy?stats")
        if tls is not None:
            lines += tls_instructions(
                tls, f"{args.ip}:{args.port}", f"https://{args.ip}:{args.master_http_port}",
                None if args.no_marathon else marathon_url, None if args.no_batch else batch_url)
        print(
            "mesos-local is running:",
            *lines,
            f"  logs      {logs}",
            "Press Ctrl-C to stop.",
            sep="\n",
            flush=True,
        )
        while True:
            supervisor.watch()
            time.sleep(0.2)
    except _StopRequested:
        pass
    except RuntimeError as exc:
        print(f"mesos-local: {exc}; logs in {logs}", file=sys.stderr)
        status = 1
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        supervisor.stop()
        if temporary and status == 0:
            shutil.rmtree(work_dir, ignore_errors=True)
    print("mesos-local stopped.", flush=True)
    sys.exit(status)
