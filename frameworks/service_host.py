"""One host for leader-elected framework services (Marathon, the batch framework): contention and
terms, the tick loop, abdication, the scheduler adapter, the shared flags and the process shell.
A service subclasses `ServiceHost` and supplies its core; the rest is here, once.

    ServiceHost.run()
      contender (ZooKeeper with --zk, standalone otherwise) ──serve_terms──▶ term:
        term_state() ─▶ recover(entries) ─▶ SchedulerDriver(scheduler(), FrameworkInfo with the
                                              stored framework id, so the master fails it over)
        start_term(recovered, DriverActions(driver), sink) ─▶ `core` set: the API answers as leader
        TaskGroup { BatchWriter.run(), tick loop (tick, then sleep), the service's tasks, driver }
      no longer leading: `core` is None at once; the term winds down behind it
      abdicate(): `core` is None at once, the contender leaves the election, run() contends again

    CoreScheduler: the driver's callbacks ─▶ core (registered, offers, status updates); `settle`
    runs once per burst of status updates, `settle_delay` after the first.

The API (`frameworks.service_http.LeaderGuard`) reads `core`, `leader_address` and `leader_url`.
"""

from __future__ import annotations

import abc
import argparse
import asyncio
import functools
import socket
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

from starlette.types import ASGIApp
from structlog.typing import FilteringBoundLogger

from frameworks.actions import SchedulerActions
from frameworks.authorization import Authorization, parse_authorization
from frameworks.driver import SchedulerDriver
from frameworks.driver_actions import DriverActions, service_framework_info
from frameworks.scheduler import Scheduler
from frameworks.set_aside import SetAside
from mesos_coordination.election import Contender, Leadership, create_contender, serve_terms
from mesos_coordination.store import BatchWriter, Sink
from mesos_coordination.term_store import term_state
from mesos_http.body_limit import DEFAULT_MAX_REQUEST_BYTES, BodyLimit
from mesos_http.browser_guard import BrowserGuard, origins_flag
from mesos_http.http_auth import HttpAuthentication
from mesos_http.http_forward import advertised_address, forward_url
from mesos_http.http_server import DEFAULT_KEEP_ALIVE_SECONDS, serve_while
from mesos_runtime.flags import (
    parse_duration,
    parse_flags,
    parse_log_level,
    parse_port,
    parse_positive_int,
    parse_zk_flag,
)
from mesos_runtime.logging import configure_logging
from mesos_runtime.tasks import cancel_and_wait
from mesos_security.authentication import Authenticator
from mesos_security.credentials import Credentials
from mesos_security.files import load_credentials
from mesos_security.tls import TlsConfig, add_tls_flags, tls_from_args
from mesos_values.addresses import advertised_host
from protos import mesos_pb2

__all__ = [
    "CoreNotSet",
    "CoreScheduler",
    "HostedCore",
    "RecoveredTerm",
    "ServiceConfig",
    "ServiceHost",
    "TermCore",
    "add_service_flags",
    "parse_service_flags",
    "serve_service",
]


class HostedCore(Protocol):
    """What the host and `CoreScheduler` ask of a service's pure scheduling core."""

    @property
    def framework_id(self) -> str | None:
        """The framework id the master gave (or a previous leader stored)."""
        ...

    def registered(self, framework_id: str) -> None:
        """The driver subscribed with `framework_id`."""
        ...

    def resource_offers(self, offers: Sequence[mesos_pb2.Offer]) -> None:
        """New offers."""
        ...

    def status_update(self, status: mesos_pb2.TaskStatus) -> None:
        """A task's new status."""
        ...

    def tick(self) -> None:
        """Periodic work (every `tick_interval`)."""
        ...


class RecoveredTerm(Protocol):
    """What the host reads of the state a term recovered."""

    @property
    def framework_id(self) -> str | None:
        """The framework id a previous leader stored, if any."""
        ...

    @property
    def set_aside(self) -> Sequence[SetAside]:
        """The records recovery could not read, left in the store (`frameworks.set_aside`)."""
        ...


ConfigT = TypeVar("ConfigT", bound="ServiceConfig")
CoreT = TypeVar("CoreT", bound=HostedCore)
RecoveredT = TypeVar("RecoveredT", bound=RecoveredTerm)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """The flags every framework service has; a service's config adds its own (and defaults)."""

    master: str = "127.0.0.1:5050"
    zk: str | None = None
    http_address: str = "127.0.0.1"
    http_port: int
    hostname: str | None = None
    framework_name: str
    role: str = "*"
    """The role the framework subscribes with (offers are made for it)."""
    user: str | None = None
    """The user tasks run as by default (this process's user when None)."""
    failover_timeout: float = 604800.0
    work_dir: Path | None = None
    zk_session_timeout: float = 10.0
    tick_interval: float = 1.0
    http_max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    """The largest request body the API accepts (larger: 413)."""
    gpu_resources: bool = False
    """Whether the framework subscribes with the GPU_RESOURCES capability (offers of agents
    with GPUs come only then)."""
    task_killing_state: bool = False
    """Whether the framework subscribes with the TASK_KILLING_STATE capability (a task being
    killed is reported TASK_KILLING first)."""
    tls: TlsConfig = field(default_factory=TlsConfig)
    """TLS of the API and of the connection to the master (ADR 0013)."""
    credential: mesos_pb2.Credential | None = None
    """What the framework authenticates to the master with."""
    http_credentials: Credentials = field(default_factory=Credentials)
    """Who may use the API (HTTP Basic); empty: anyone."""
    http_allowed_origins: tuple[str, ...] = ()
    """Other sites whose pages may change state through the API (`BrowserGuard`)."""
    authorization: Authorization = field(default_factory=Authorization)
    """Who may do what to which app or job path (`--http_authorization`); default: all."""

    @classmethod
    def from_flags(cls, args: argparse.Namespace, **own: Any) -> Self:
        """The config from parsed `add_service_flags` flags, plus the service's `own` fields."""
        return cls(
            master=args.master, zk=args.zk, http_address=args.http_address,
            http_port=args.http_port, hostname=args.hostname, framework_name=args.framework_name,
            failover_timeout=args.failover_timeout, work_dir=args.work_dir,
            zk_session_timeout=args.zk_session_timeout,
            http_max_request_bytes=args.http_max_request_bytes, tls=tls_from_args(args),
            credential=_mesos_credential(args), http_credentials=_http_credentials(args),
            http_allowed_origins=origins_flag(args.http_allowed_origins),
            authorization=_authorization(args), **own,
        )


@dataclass(frozen=True, slots=True)
class TermCore(Generic[CoreT]):
    """A term's core, and the service's own tasks that run beside it for the term."""

    core: CoreT
    tasks: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()


class CoreNotSet(RuntimeError):
    """A driver callback came before the host gave the scheduler its core."""


class CoreScheduler(Scheduler, Generic[CoreT]):
    """Hands the driver's callbacks to the core, which the host sets before the driver starts.

    Status updates go to `apply_status` at once; `settle(core)` runs once for a burst of them,
    `settle_delay` seconds after the first (work better done once than per update).
    """

    settle_delay: ClassVar[float] = 0.0

    def __init__(self, log: FilteringBoundLogger) -> None:
        self.log = log
        self._core: CoreT | None = None
        self._settle_pending = False

    @property
    def core(self) -> CoreT:
        """The core; CoreNotSet before the host set it."""
        if self._core is None:
            raise CoreNotSet("the core is set before the driver starts")
        return self._core

    @core.setter
    def core(self, core: CoreT) -> None:
        self._core = core

    def apply_status(self, core: CoreT, status: mesos_pb2.TaskStatus) -> None:
        """Hand one status update to the core."""
        core.status_update(status)

    def settle(self, core: CoreT) -> None:
        """The work after a burst of status updates (none unless a service overrides it)."""

    def registered(
        self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
        master_info: mesos_pb2.MasterInfo,
    ) -> None:
        self.log.info("registered with the master", framework_id=framework_id.value)
        self.core.registered(framework_id.value)

    def reregistered(self, driver: SchedulerDriver, master_info: mesos_pb2.MasterInfo) -> None:
        framework_id = self.core.framework_id
        if framework_id is not None:
            self.core.registered(framework_id)

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        self.core.resource_offers(offers)

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        self.apply_status(self.core, status)
        if not self._settle_pending:
            self._settle_pending = True
            asyncio.get_running_loop().call_later(self.settle_delay, self._settle)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self.log.error("the master reported an error", message=message)

    def _settle(self) -> None:
        self._settle_pending = False
        self.settle(self.core)


class ServiceHost(abc.ABC, Generic[ConfigT, CoreT, RecoveredT]):
    """Runs a framework service until cancelled; `core` is the leader's (None on a standby).

    A service passes how it decodes its stored state (`recover`), its scheduler adapter class
    (`scheduler`), the store `kinds` and its logger; it supplies `start_term` and may override
    `term_ended`.
    """

    def __init__(self, config: ConfigT, *, version: str, kinds: Sequence[str],
                 recover: Callable[[dict[str, bytes]], RecoveredT],
                 scheduler: Callable[[FilteringBoundLogger], CoreScheduler[CoreT]],
                 log: FilteringBoundLogger) -> None:
        self.config = config
        self.core: CoreT | None = None
        self.leader: mesos_pb2.MasterInfo | None = None
        self.hostname = advertised_host(config.hostname, config.http_address,
                                        socket.gethostname())
        self.info = mesos_pb2.MasterInfo(
            id=str(uuid.uuid4()), hostname=self.hostname, address=config.http_address,
            port=config.http_port, version=version,
        )
        self.log = log
        self.kinds = kinds
        self.recover = recover
        self.scheduler = scheduler
        self._framework_info = functools.partial(
            service_framework_info, config.framework_name, role=config.role, user=config.user,
            failover_timeout=config.failover_timeout, hostname=self.hostname,
            gpu_resources=config.gpu_resources, task_killing_state=config.task_killing_state,
        )
        self._writer: BatchWriter | None = None
        self._abdication = asyncio.Event()

    # ------------------------------------------------------------- the service's part

    @abc.abstractmethod
    def start_term(
        self, recovered: RecoveredT, actions: SchedulerActions, sink: Sink
    ) -> TermCore[CoreT]:
        """The term's core (writing to `sink`, acting through `actions`) and its tasks."""

    def term_ended(self) -> None:
        """Called once a term has ended and `core` is None again."""

    # --------------------------------------------------------------------- for the API

    @property
    def leader_address(self) -> str | None:
        """`host:port` of the leader's HTTP API, when known."""
        return advertised_address(self.leader)

    @property
    def leader_url(self) -> str | None:
        """Where a standby forwards requests (None while this process leads)."""
        return forward_url(self.leader, self.info.id, self.config.tls.http_scheme)

    @property
    def tls(self) -> TlsConfig:
        """The process's TLS (`--ssl_*`)."""
        return self.config.tls

    async def durable(self) -> None:
        """Wait until every write queued so far is durable (the API answers after this)."""
        if self._writer is not None:
            await self._writer.drain()

    def abdicate(self) -> bool:
        """Give up leadership and contend again; False when not leading."""
        if self.core is None:
            return False
        self.core = None  # no longer answers as leader, from now on
        self._abdication.set()
        return True

    # ------------------------------------------------------------------ terms

    async def run(self, http_port: int | None = None) -> None:
        """Contend for leadership and lead while elected, until cancelled; after `abdicate()`
        leave the election and contend again. Raises LeadershipLost when the ZooKeeper session
        (or the store) is lost for good."""
        if http_port is not None:
            self.info.port = http_port
        while True:
            self._abdication = asyncio.Event()
            contender = create_contender(
                self.config.zk, self.info, session_timeout=self.config.zk_session_timeout
            )
            await contender.start()
            terms = asyncio.create_task(serve_terms(
                contender, functools.partial(self._lead, contender), self._leadership_changed
            ))
            abdicated = asyncio.create_task(self._abdication.wait())
            try:
                await asyncio.wait({terms, abdicated}, return_when=asyncio.FIRST_COMPLETED)
                if abdicated.done():
                    await contender.close()  # ends the term; serve_terms returns
                await terms
            finally:
                await cancel_and_wait(abdicated, terms)
                await contender.close()
            if not self._abdication.is_set():
                return
            self.log.info("abdicated; contending again")

    def _leadership_changed(self, state: Leadership, leading: bool) -> None:
        self.leader = state.leader
        if state.leading and not leading:
            self.log.info("elected leader", epoch=state.epoch)
        elif not state.leading and leading:
            self.log.warning("no longer the leader")
            self.core = None  # stop serving at once; the term winds down behind it

    async def _lead(self, contender: Contender, state: Leadership) -> None:
        async with term_state(contender, state, self.kinds, self.config.work_dir) as term:
            recovered = self.recover(term.entries)
            for record in recovered.set_aside:
                self.log.error("record set aside", key=record.key, reason=record.reason)
            scheduler = self.scheduler(self.log)
            driver = SchedulerDriver(
                scheduler,
                self._framework_info(
                    webui_url=f"{self.config.tls.http_scheme}://{self.hostname}:{self.info.port}",
                    framework_id=recovered.framework_id),
                self.config.master, tls=self.config.tls, credential=self.config.credential,
            )
            started = self.start_term(recovered, DriverActions(driver), term.sink)
            scheduler.core = self.core = started.core
            self._writer = term.writer
            try:
                async with asyncio.TaskGroup() as tasks:
                    if term.writer is not None:
                        tasks.create_task(term.writer.run())
                    tasks.create_task(self._tick(started.core))
                    for task in started.tasks:
                        tasks.create_task(task())
                    tasks.create_task(driver.serve())
            finally:
                self.core = None
                self._writer = None
                self.term_ended()

    async def _tick(self, core: CoreT) -> None:
        while True:
            core.tick()
            await asyncio.sleep(self.config.tick_interval)


# ---------------------------------------------------------------------- the process shell


def add_service_flags(
    parser: argparse.ArgumentParser,
    *,
    who: str,
    http_port: int,
    framework_name: str,
    zk_session_timeout: Callable[[str], float] = parse_duration,
) -> None:
    """Add the flags every framework service has; `who` names the service in their help
    ("Marathon", "the framework"); `http_port` and `framework_name` are the defaults."""
    parser.add_argument("--master", default="127.0.0.1:5050",
                        help="the Mesos master: HOST:PORT or zk://host:port/mesos")
    parser.add_argument("--zk", type=parse_zk_flag, default=None,
                        help=f"ZooKeeper URL for {who}'s state and leader election, "
                        f"e.g. zk://127.0.0.1:2181/{framework_name}")
    parser.add_argument("--http_address", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--http_port", type=parse_port, default=http_port, help="REST API port")
    parser.add_argument("--http_max_request_bytes", type=parse_positive_int,
                        default=DEFAULT_MAX_REQUEST_BYTES,
                        help="the largest request body the REST API accepts (larger: 413)")
    parser.add_argument("--hostname", default=None, help="hostname advertised to others")
    parser.add_argument("--framework_name", default=framework_name)
    parser.add_argument("--failover_timeout", type=parse_duration, default=604800.0,
                        help=f"how long the master keeps tasks while {who} is away")
    parser.add_argument("--work_dir", type=Path, default=None,
                        help=f"directory for {who}'s state when there is no --zk")
    parser.add_argument("--zk_session_timeout", type=zk_session_timeout, default=10.0)
    parser.add_argument("--log_level", type=parse_log_level, default="INFO")
    add_tls_flags(parser)
    parser.add_argument("--mesos_authentication_principal", default=None,
                        help=f"the principal {who} authenticates to the master as")
    parser.add_argument("--mesos_authentication_secret_file", type=Path, default=None,
                        help="file holding that principal's secret")
    parser.add_argument("--http_allowed_origins", default="",
                        help="comma-separated origins (https://ui.example.com) whose pages may "
                        "change state through the API; other sites' are refused (403)")
    parser.add_argument("--http_credentials", default=None,
                        help="USER:PASSWORD: the API then needs HTTP Basic credentials "
                        "(/ping and the UI's page and files excepted)")
    parser.add_argument("--http_credentials_file", default=None,
                        help="more API users, in Mesos' credentials format (a path, file:// "
                        "URL or the JSON itself); adds to --http_credentials")
    parser.add_argument("--http_authorization", default=None,
                        help="who may view, create, update or delete which app or job paths: "
                        "a path, file:// URL or the JSON itself (see docs/security.md); "
                        "needs --http_credentials or --http_credentials_file")


def _mesos_credential(args: argparse.Namespace) -> mesos_pb2.Credential | None:
    principal = args.mesos_authentication_principal
    if principal is None:
        if args.mesos_authentication_secret_file is not None:
            raise ValueError("--mesos_authentication_secret_file needs "
                             "--mesos_authentication_principal")
        return None
    secret = b""
    if args.mesos_authentication_secret_file is not None:
        try:
            secret = args.mesos_authentication_secret_file.read_bytes().strip()
        except OSError as error:
            raise ValueError(f"--mesos_authentication_secret_file: "
                             f"{error.strerror or error}") from None
    return mesos_pb2.Credential(principal=principal, secret=secret)


def _http_credentials(args: argparse.Namespace) -> Credentials:
    secrets: dict[str, str] = {}
    if args.http_credentials_file:
        secrets.update(load_credentials(args.http_credentials_file,
                                        "--http_credentials_file").secrets)
    if args.http_credentials:
        user, colon, password = args.http_credentials.partition(":")
        if not colon or not user:
            raise ValueError("--http_credentials must be USER:PASSWORD")
        if user in secrets:
            raise ValueError(f"--http_credentials: user {user!r} is also in "
                             "--http_credentials_file")
        secrets[user] = password
    return Credentials(secrets)


def _authorization(args: argparse.Namespace) -> Authorization:
    value: str | None = args.http_authorization
    if not value:
        return Authorization()
    if not (args.http_credentials or args.http_credentials_file):
        raise ValueError("--http_authorization needs --http_credentials or "
                         "--http_credentials_file (users to authorize)")
    if value.lstrip().startswith("{"):
        text = value
    else:
        path = Path(value.removeprefix("file://"))
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise ValueError(f"--http_authorization: cannot read {path}: "
                             f"{getattr(error, 'strerror', None) or error}") from None
    try:
        return parse_authorization(text)
    except ValueError as error:
        raise ValueError(f"--http_authorization: {error}") from None


def parse_service_flags(
    parser: argparse.ArgumentParser, argv: Sequence[str] | None, env_prefix: str
) -> argparse.Namespace:
    """Parse the flags (each also read from `<env_prefix>_<FLAG>`) and log at `--log_level`."""
    args = parse_flags(parser, argv, env_prefix)
    try:  # the security flags: refused here with one clear line, as every other bad flag
        tls_from_args(args)
        _mesos_credential(args)
        _http_credentials(args)
        _authorization(args)
    except ValueError as error:
        parser.error(str(error))
    configure_logging(args.log_level)
    return args


async def serve_service(service: ServiceHost[Any, Any, Any], app: ASGIApp, name: str, *,
                        keep_alive: int = DEFAULT_KEEP_ALIVE_SECONDS) -> None:
    """Serve `app` (the service's API) on `--http_address:--http_port` and run `service` until
    cancelled; `name` opens the log line saying where it listens, `keep_alive` is the idle
    keep-alive timeout in seconds."""
    address = service.config.http_address

    config = service.config

    async def run(port: int) -> None:
        service.log.info(f"{name} listening", url=f"{config.tls.http_scheme}://{address}:{port}")
        await service.run(http_port=port)

    served: ASGIApp = BrowserGuard(BodyLimit(app, config.http_max_request_bytes),
                                   allowed_origins=config.http_allowed_origins)
    if config.http_credentials.secrets:
        served = HttpAuthentication(
            served, Authenticator(config.http_credentials), readonly=True, readwrite=True,
            realm=name, open_paths={"/ping", "/", "/ui", "/ui/"},
            open_prefixes=("/ui/static/",))
    await serve_while(served, address, config.http_port, run, keep_alive=keep_alive,
                      tls=config.tls)
