"""The agent's flags (`--flag` or `MESOS_<FLAG>`) and the validated configuration they give."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import psutil

from mesos_agent.containerizer.cgroups import default_isolation
from mesos_coordination.detector import create_detector
from mesos_http.operator_http import flag_values
from mesos_runtime.flags import (
    FlagParser,
    parse_bool,
    parse_bytes,
    parse_duration,
    parse_flags,
    parse_log_level,
    parse_port,
)
from mesos_security.acls import Acls
from mesos_security.credentials import Credential, Credentials
from mesos_security.files import load_acls, load_credential, load_credentials
from mesos_security.tls import TlsConfig, add_tls_flags, tls_from_args
from mesos_values.attributes import parse_attributes
from mesos_values.resources import Resources
from protos import mesos_pb2

DEFAULT_PORTS = "ports:[31000-32000]"
_MB = 1024 * 1024


_DAY = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class IsolationConfig:
    """How the agent contains what it runs (Mesos' containerizer flags; ADR 0014)."""

    isolation: tuple[str, ...] = ("posix/cpu", "posix/mem")
    """`--isolation`, Mesos' isolator names (the flag's default depends on the machine)."""
    switch_user: bool = True
    cgroups_hierarchy: Path = Path("/sys/fs/cgroup")
    cgroups_root: str = "mesos"
    cgroups_enable_cfs: bool = False
    cgroups_pool_size: int = 256
    """Empty cgroups kept ready per v1 hierarchy for launches (`cgroup_pool`; 0: none)."""
    enforce_container_disk_quota: bool = False
    container_disk_watch_interval: float = 15.0
    fetcher_cache_dir: Path | None = None
    """None: `<work_dir>/fetch`."""
    fetcher_cache_size: int = 2 * 1024 * _MB
    gc_delay: float = 7 * _DAY
    gc_disk_headroom: float = 0.1
    disk_watch_interval: float = 5.0
    """How often the sandbox collector looks at the work directory's disk (at most)."""
    image_providers: tuple[str, ...] = ()
    """`--image_providers`: "docker" lets tasks run in Docker/OCI images (ADR 0015)."""
    docker_registry: str = "https://registry-1.docker.io"
    """A registry URL, or a directory of `<repository>:<tag>.tar` archives."""
    docker_store_dir: Path | None = None
    """None: `<work_dir>/store/docker`."""
    docker_config: str = ""
    """A Docker config file with registries' credentials, or its JSON ("": none)."""
    image_provisioner_backend: str = ""
    """overlay or copy; "": overlay where the kernel has overlayfs, else copy."""


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """Everything the agent process needs to know at start-up."""

    master: str
    work_dir: Path
    resources: Resources
    ip: str = "127.0.0.1"
    port: int = 5051
    hostname: str = field(default_factory=socket.gethostname)
    attributes: tuple[mesos_pb2.Attribute, ...] = ()
    executor_registration_timeout: float = 60.0
    recovery_timeout: float = 900.0
    executor_shutdown_grace_period: float = 5.0
    default_kill_grace_period: float = 3.0
    status_update_retry_interval: float = 10.0
    status_update_max_retry_interval: float = 10.0
    registration_max_backoff: float = 2.0
    strict: bool = True
    http_port: int = 0  # the HTTP endpoints' port (mesos_agent.http); 0: any free one
    flags: Mapping[str, str] = field(default_factory=dict)  # as given, for /flags
    tls: TlsConfig = field(default_factory=TlsConfig)  # ADR 0013
    credential: Credential | None = None  # --credential: what it authenticates with
    # Its HTTP endpoints (ADR 0013): who may call them, and the ACLs of what they may see
    http_credentials: Credentials = field(default_factory=Credentials)
    authenticate_http_readonly: bool = False
    authenticate_http_readwrite: bool = False
    acls: Acls = field(default_factory=Acls)
    isolation: IsolationConfig = field(default_factory=IsolationConfig)


def build_parser() -> argparse.ArgumentParser:
    parser = FlagParser(
        prog="mesos-agent",
        description="Run a Mesos-style agent (every flag may also come from MESOS_<FLAG>).",
    )
    parser.add_argument("--master", help="HOST:PORT of the master, or zk://host:port/path")
    parser.add_argument("--ip", default="127.0.0.1", help="address of the agent's gRPC server")
    parser.add_argument(
        "--port", type=parse_port, default=5051, help="agent gRPC port (0: any free one)"
    )
    parser.add_argument(
        "--http_port", type=parse_port, default=0,
        help="port of the HTTP endpoints: /state, /metrics, /files/... (default 0: any free "
        "one, logged; several agents often share a host)",
    )
    parser.add_argument("--hostname", default=None, help="the host name offers and constraints see")
    parser.add_argument("--work_dir", help="directory for sandboxes and checkpoints (required)")
    parser.add_argument(
        "--resources",
        default=None,
        help='e.g. "cpus:4;mem:4096;disk:10000;ports:[31000-32000]" or a JSON list '
        "(default: detected from the machine)",
    )
    parser.add_argument("--attributes", default="", help='e.g. "rack:r1;zone:a"')
    parser.add_argument(
        "--executor_registration_timeout", type=parse_duration, default=60.0,
        help="how long a custom executor may take to subscribe (default 1mins)",
    )
    parser.add_argument(
        "--recovery_timeout", type=parse_duration, default=900.0,
        help="how long executors wait for a restarting agent (default 15mins)",
    )
    parser.add_argument(
        "--executor_shutdown_grace_period", type=parse_duration, default=5.0,
        help="time between SHUTDOWN to an executor and killing it (default 5secs)",
    )
    parser.add_argument(
        "--status_update_retry_interval", type=parse_duration, default=10.0,
        help="first retry interval of unacknowledged status updates (default 10secs, as in "
        "Mesos; shorter retries multiply the load on a busy cluster)",
    )
    parser.add_argument(
        "--strict", type=parse_bool, nargs="?", const=True, default=True, metavar="BOOL",
        help="refuse to start when a checkpoint is corrupt (default true); with false, recover "
        "what is readable and set the rest aside (see mesos_agent.checkpoint)",
    )
    parser.add_argument("--log_level", type=parse_log_level, default="INFO",
                        help="DEBUG, INFO, WARNING or ERROR")
    add_tls_flags(parser)
    parser.add_argument("--authenticate_http_readonly", type=parse_bool, default=False,
                        help="GET requests to the HTTP endpoints need HTTP Basic credentials "
                        "of --http_credentials")
    parser.add_argument("--authenticate_http_readwrite", type=parse_bool, default=False,
                        help="other requests to the HTTP endpoints need HTTP Basic credentials")
    parser.add_argument("--http_credentials", default=None,
                        help="credentials of HTTP users (Mesos' credentials file: a path, "
                        "file:// URL or the JSON itself)")
    parser.add_argument("--acls", default=None,
                        help="Mesos' ACLs (JSON; access_sandboxes, view_flags): a path, "
                        "file:// URL or the JSON itself")
    parser.add_argument("--credential", default=None,
                        help="the principal and secret this agent authenticates to the master "
                        "with (Mesos' credential file, JSON or 'principal secret'): a path, "
                        "file:// URL or the JSON itself")
    add_isolation_flags(parser)
    return parser


def add_isolation_flags(parser: argparse.ArgumentParser) -> None:
    """The containerizer's flags (`IsolationConfig`)."""
    parser.add_argument(
        "--isolation", default=None,
        help="isolators, comma-separated (Mesos' names): posix/cpu, posix/mem, cgroups/cpu, "
        "cgroups/mem, cgroups/pids, namespaces/pid, filesystem/linux, disk/du (default: "
        "cgroups/cpu,cgroups/mem where this machine has cgroups and the agent is root, else "
        "posix/cpu,posix/mem)")
    parser.add_argument(
        "--switch_user", type=parse_bool, nargs="?", const=True, default=True, metavar="BOOL",
        help="run each task as its command's user, else its framework's (default true; "
        "false: everything runs as the agent's user)")
    parser.add_argument("--cgroups_hierarchy", default="/sys/fs/cgroup",
                        help="where the cgroup hierarchies are mounted (default /sys/fs/cgroup)")
    parser.add_argument("--cgroups_root", default="mesos",
                        help="the cgroup under which containers' cgroups are made (default mesos)")
    parser.add_argument("--cgroups_enable_cfs", type=parse_bool, nargs="?", const=True,
                        default=False, metavar="BOOL",
                        help="cgroups/cpu also caps CPU time at `cpus` with a CFS quota "
                        "(default false: cpu.shares only)")
    parser.add_argument("--cgroups_pool_size", type=int, default=256,
                        help="empty cgroups kept ready per cgroup v1 hierarchy, made while "
                        "no launch is under way, so that a launch renames one rather than "
                        "making it (default 256, about 13 MB of kernel memory for cpu, "
                        "cpuacct and memory; 0: none; not a Mesos flag)")
    parser.add_argument("--enforce_container_disk_quota", type=parse_bool, nargs="?",
                        const=True, default=False, metavar="BOOL",
                        help="disk/du kills a container whose sandbox outgrows its `disk`")
    parser.add_argument("--container_disk_watch_interval", type=parse_duration, default=15.0,
                        help="how often disk/du measures sandboxes (default 15secs)")
    parser.add_argument("--fetcher_cache_dir", default=None,
                        help="where cached URIs are kept (default <work_dir>/fetch)")
    parser.add_argument("--fetcher_cache_size", type=parse_bytes, default=2 * 1024 * _MB,
                        help="the fetcher cache's size limit (default 2GB)")
    parser.add_argument("--gc_delay", type=parse_duration, default=7 * _DAY,
                        help="how long sandboxes of finished executors are kept (default 1weeks)")
    parser.add_argument("--gc_disk_headroom", type=float, default=0.1,
                        help="keep this fraction of the work directory's disk free by "
                        "collecting sandboxes sooner (default 0.1)")
    parser.add_argument("--disk_watch_interval", type=parse_duration, default=5.0,
                        help="how often the work directory's disk usage is checked for "
                        "sandboxes to collect (default 5secs; gc_delay / 2 when shorter)")
    parser.add_argument("--image_providers", default="",
                        help="image types tasks may run in: docker (default: none)")
    parser.add_argument("--docker_registry", default="https://registry-1.docker.io",
                        help="the registry images without a registry host are pulled from, "
                        "or a directory of <repository>:<tag>.tar archives (docker save or "
                        "OCI layout)")
    parser.add_argument("--docker_store_dir", default=None,
                        help="where image layers are kept (default <work_dir>/store/docker)")
    parser.add_argument("--docker_config", default=None,
                        help="a Docker config file (auths) with registries' credentials, or "
                        "its JSON")
    parser.add_argument("--image_provisioner_backend", choices=("overlay", "copy"),
                        default="",
                        help="how root filesystems are made from layers (default overlay "
                        "where the kernel has overlayfs, else copy)")


def isolation_from_args(args: argparse.Namespace, default_isolation: tuple[str, ...]
                        ) -> IsolationConfig:
    """The `IsolationConfig` of parsed flags; raises ValueError naming a bad flag."""
    isolation = (tuple(name.strip() for name in args.isolation.split(",") if name.strip())
                 if args.isolation is not None else default_isolation)
    if not 0.0 <= args.gc_disk_headroom <= 1.0:
        raise ValueError("--gc_disk_headroom must be between 0 and 1")
    if args.container_disk_watch_interval <= 0:
        raise ValueError("--container_disk_watch_interval must be positive")
    if args.cgroups_pool_size < 0:
        raise ValueError("--cgroups_pool_size must not be negative")
    if args.disk_watch_interval <= 0:
        raise ValueError("--disk_watch_interval must be positive")
    providers = tuple(name.strip().lower() for name in args.image_providers.split(",")
                      if name.strip())
    for provider in providers:
        if provider != "docker":
            raise ValueError(f"--image_providers: {provider!r} is not supported (only docker)")
    return IsolationConfig(
        isolation=isolation,
        switch_user=args.switch_user,
        cgroups_hierarchy=Path(args.cgroups_hierarchy),
        cgroups_root=args.cgroups_root.strip("/"),
        cgroups_enable_cfs=args.cgroups_enable_cfs,
        cgroups_pool_size=args.cgroups_pool_size,
        enforce_container_disk_quota=args.enforce_container_disk_quota,
        container_disk_watch_interval=args.container_disk_watch_interval,
        fetcher_cache_dir=Path(args.fetcher_cache_dir) if args.fetcher_cache_dir else None,
        fetcher_cache_size=args.fetcher_cache_size,
        gc_delay=args.gc_delay,
        gc_disk_headroom=args.gc_disk_headroom,
        disk_watch_interval=args.disk_watch_interval,
        image_providers=providers,
        docker_registry=args.docker_registry,
        docker_store_dir=Path(args.docker_store_dir) if args.docker_store_dir else None,
        docker_config=args.docker_config or "",
        image_provisioner_backend=args.image_provisioner_backend,
    )


def detect_resources(work_dir: Path) -> Resources:
    """What this machine offers, reserving some memory and disk for the system like Mesos."""
    cpus = os.cpu_count() or 1
    total_mem = psutil.virtual_memory().total // _MB
    mem = total_mem - 1024 if total_mem >= 2048 else total_mem // 2
    existing = next((p for p in (work_dir, *work_dir.parents) if p.exists()), Path("/"))
    total_disk = psutil.disk_usage(str(existing)).total // _MB
    disk = total_disk - 5120 if total_disk >= 10240 else total_disk // 2
    return Resources.parse(f"cpus:{cpus};mem:{mem};disk:{disk};{DEFAULT_PORTS}")


def parse_config(argv: Sequence[str] | None = None) -> tuple[AgentConfig, str]:
    """Parse flags into a config and the log level; exits 1 with one clear line on bad input."""
    parser = build_parser()
    args = parse_flags(parser, argv, "MESOS")
    if not args.master:
        parser.error("--master is required (HOST:PORT or zk://host:port/path)")
    if not args.work_dir:
        parser.error("--work_dir is required")
    try:
        create_detector(args.master)
    except ValueError as exc:
        parser.error(f"--master: {exc}")
    work_dir = Path(args.work_dir).absolute()
    try:
        resources = (
            Resources.parse(args.resources) if args.resources else detect_resources(work_dir)
        )
    except ValueError as exc:
        parser.error(f"--resources: {exc}")
    try:
        attributes = tuple(parse_attributes(args.attributes)) if args.attributes else ()
    except ValueError as exc:
        parser.error(f"--attributes: {exc}")
    if args.status_update_retry_interval <= 0:
        parser.error("--status_update_retry_interval must be positive")
    try:
        tls = tls_from_args(args)
        credential = load_credential(args.credential) if args.credential else None
        http_credentials = (load_credentials(args.http_credentials, "--http_credentials")
                            if args.http_credentials else Credentials())
        acls = load_acls(args.acls) if args.acls else Acls()
        isolation = isolation_from_args(args, default_isolation(Path(args.cgroups_hierarchy)))
    except ValueError as exc:
        parser.error(str(exc))
    config = AgentConfig(
        master=args.master,
        work_dir=work_dir,
        resources=resources,
        ip=args.ip,
        port=args.port,
        hostname=args.hostname or socket.gethostname(),
        attributes=attributes,
        executor_registration_timeout=args.executor_registration_timeout,
        recovery_timeout=args.recovery_timeout,
        executor_shutdown_grace_period=args.executor_shutdown_grace_period,
        status_update_retry_interval=args.status_update_retry_interval,
        status_update_max_retry_interval=max(10.0, args.status_update_retry_interval),
        strict=args.strict,
        http_port=args.http_port,
        flags=flag_values(parser, args),
        tls=tls,
        credential=credential,
        http_credentials=http_credentials,
        authenticate_http_readonly=args.authenticate_http_readonly,
        authenticate_http_readwrite=args.authenticate_http_readwrite,
        acls=acls,
        isolation=isolation,
    )
    return config, args.log_level


def fatal(message: str) -> NoReturn:
    """Print one error line and exit 1."""
    print(f"mesos-agent: error: {message}", file=sys.stderr)
    raise SystemExit(1)
