"""`mesos-local`: a master, `--agents N` agents, Marathon and the batch framework on loopback,
in one command.

Each component runs as its own process (the same console scripts a real cluster uses), with its
log under `<work_dir>/logs/`. mesos-local makes itself the child subreaper, so tasks whose agent
has exited are re-parented to it; on Ctrl-C (or SIGTERM) it stops the agents and the master and
kills whatever tasks remain, leaving no child processes behind.

Agent i poses as host 127.0.0.i (every 127/8 address is loopback on Linux), so placement by
hostname sees distinct hosts, and gets its own port range for tasks.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psutil

from mesos_runtime.flags import FlagParser, parse_flags, parse_port
from mesos_security.pki import CertificateAuthority, IssuedCertificate, write_pkcs12

_PR_SET_CHILD_SUBREAPER = 36
PORTS_PER_AGENT = 1000


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


@dataclass
class Child:
    """A component process and its log file."""

    name: str
    process: subprocess.Popen[bytes]
    log: IO[bytes]


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
    parser.add_argument("--tls", action="store_true",
                        help="mutual TLS everywhere: a private CA and certificates under "
                             "<work_dir>/tls (the CA is reused), printed with how to use them")
    parser.add_argument("--startup_timeout", type=float, default=30.0)
    parser.add_argument("--log_level", default="INFO")
    return parser


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: tasks of a killed agent may outlive us


def _wait_for_port(host: str, port: int, child: Child, deadline: float) -> None:
    while time.monotonic() < deadline:
        if child.process.poll() is not None:
            raise RuntimeError(f"{child.name} exited with status {child.process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{child.name} did not start listening on {host}:{port} in time")


def _start(name: str, argv: list[str], logs: Path) -> Child:
    log = (logs / f"{name}.log").open("ab")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Child(name, process, log)


def _stop(children: Sequence[Child], timeout: float = 10.0) -> None:
    """Stop agents first, then the master; then kill and reap every remaining descendant."""
    for child in reversed(children):
        if child.process.poll() is None:
            child.process.terminate()
    deadline = time.monotonic() + timeout
    for child in reversed(children):
        try:
            child.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
        child.log.close()
    _kill_orphans()


def _kill_orphans() -> None:
    """Kill the process groups of tasks re-parented to us and reap them."""
    me = psutil.Process()
    for _ in range(50):
        orphans = me.children()
        if not orphans:
            return
        for orphan in orphans:
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                os.killpg(os.getpgid(orphan.pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                orphan.kill()
        psutil.wait_procs(orphans, timeout=1.0)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_flags(build_parser(), argv, "MESOS")
    if args.agents < 0 or args.agents > 200:
        sys.exit("mesos-local: --agents must be between 0 and 200")
    _become_subreaper()
    temporary = args.work_dir is None
    work_dir: Path = Path(tempfile.mkdtemp(prefix="mesos-local-")) if temporary else args.work_dir
    logs = work_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    children: list[Child] = []
    marathon_url = batch_url = ""

    def on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    deadline = time.monotonic() + args.startup_timeout
    hosts = list(dict.fromkeys([args.ip, "127.0.0.1", "localhost"]))
    tls = prepare_tls(work_dir / "tls", hosts) if args.tls else None
    scheme = "https" if tls is not None else "http"

    def secure(name: str, *more_hosts: str) -> list[str]:
        """The `--ssl_*` flags of component `name` under --tls (its certificate is issued
        afresh), else none."""
        return tls.flags(tls.authority.issue(name, [*hosts, *more_hosts])) if tls else []

    try:
        master = _start(
            "master",
            [
                python,
                "-m",
                "mesos_master",
                "--ip",
                args.ip,
                "--port",
                str(args.port),
                "--http_port",
                str(args.master_http_port),
                "--work_dir",
                str(work_dir / "master"),
                "--log_level",
                args.log_level,
                *secure("master"),
                *(["--authenticate_frameworks", "true", "--authenticate_agents", "true"]
                  if tls else []),
            ],
            logs,
        )
        children.append(master)
        _wait_for_port(args.ip, args.port, master, deadline)
        lines = [
            f"  master    {args.ip}:{args.port}  (gRPC: pass --master {args.ip}:{args.port})",
            f"  master    {scheme}://{args.ip}:{args.master_http_port}  (web UI; /state, /metrics, "
            "/api/v1)",
        ]
        for index in range(1, args.agents + 1):
            port = args.agent_port + index - 1
            first_port = 31000 + (index - 1) * PORTS_PER_AGENT
            hostname = f"127.0.0.{index}"
            resources = f"{args.resources};ports:[{first_port}-{first_port + PORTS_PER_AGENT - 1}]"
            agent = _start(
                f"agent-{index}",
                [
                    python,
                    "-m",
                    "mesos_agent",
                    "--master",
                    f"{args.ip}:{args.port}",
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--hostname",
                    hostname,
                    "--work_dir",
                    str(work_dir / f"agent-{index}"),
                    "--resources",
                    resources,
                    "--log_level",
                    args.log_level,
                    *secure(f"agent-{index}", hostname),
                ],
                logs,
            )
            children.append(agent)
            _wait_for_port("127.0.0.1", port, agent, deadline)
            lines.append(f"  agent {index:<3} 127.0.0.1:{port}  hostname {hostname}  {resources}")
        if not args.no_marathon:
            marathon = _start(
                "marathon",
                [
                    python, "-m", "marathon",
                    "--master", f"{args.ip}:{args.port}",
                    "--http_address", "127.0.0.1",
                    "--http_port", str(args.marathon_port),
                    "--work_dir", str(work_dir / "marathon"),
                    "--log_level", args.log_level,
                    *secure("marathon"),
                ],
                logs,
            )
            children.append(marathon)
            marathon_url = f"{scheme}://127.0.0.1:{args.marathon_port}"
            _wait_for_port("127.0.0.1", args.marathon_port, marathon, deadline)
            lines.append(f"  marathon  {marathon_url}  (REST API v2; web UI "
                         "at /ui/, API docs at /docs)")
        if not args.no_batch:
            batch = _start(
                "batch",
                [
                    python, "-m", "frameworks.batch",
                    "--master", f"{args.ip}:{args.port}",
                    "--http_address", "127.0.0.1",
                    "--http_port", str(args.batch_port),
                    "--work_dir", str(work_dir / "batch"),
                    "--log_level", args.log_level,
                    *secure("batch"),
                ],
                logs,
            )
            children.append(batch)
            batch_url = f"{scheme}://127.0.0.1:{args.batch_port}"
            _wait_for_port("127.0.0.1", args.batch_port, batch, deadline)
            lines.append(f"  batch     {batch_url}  (jobs API v1; web UI at "
                         "/ui/, API docs at /docs)")
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
        while all(child.process.poll() is None for child in children):
            time.sleep(0.2)
        dead = [c for c in children if c.process.poll() is not None]
        print(
            f"mesos-local: {dead[0].name} exited with status {dead[0].process.returncode}; "
            f"see {logs}/{dead[0].name}.log",
            file=sys.stderr,
        )
        status = 1
    except KeyboardInterrupt:
        status = 0
    except RuntimeError as exc:
        print(f"mesos-local: {exc}; logs in {logs}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        _stop(children)
        if temporary and status == 0:
            shutil.rmtree(work_dir, ignore_errors=True)
    print("mesos-local stopped.", flush=True)
    sys.exit(status)
