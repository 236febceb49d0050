"""The host every elected framework service runs in (`frameworks.service_host`): terms, the tick
loop, abdication and the scheduler adapter, with a recording core, a standalone contender and
state in memory (the driver points at a master nobody listens on: its calls wait)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
import structlog

from frameworks.actions import SchedulerActions
from frameworks.driver import SchedulerDriver
from frameworks.service_host import (
    CoreNotSet,
    CoreScheduler,
    ServiceConfig,
    ServiceHost,
    TermCore,
    add_service_flags,
    parse_service_flags,
)
from frameworks.set_aside import SetAside
from mesos_coordination.store import Sink
from mesos_runtime.flags import FlagParser
from protos import mesos_pb2

log = structlog.get_logger("tests.service_host")
TICK = 0.05
NO_DRIVER = cast(SchedulerDriver, None)


@dataclass
class RecordingCore:
    framework_id: str | None = None
    ticks: int = 0
    registrations: list[str] = field(default_factory=list)
    offers: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)
    settled: int = 0

    def registered(self, framework_id: str) -> None:
        self.registrations.append(framework_id)
        self.framework_id = framework_id

    def resource_offers(self, offers: Sequence[mesos_pb2.Offer]) -> None:
        self.offers += [offer.id.value for offer in offers]

    def status_update(self, status: mesos_pb2.TaskStatus) -> None:
        self.statuses.append(status.task_id.value)

    def tick(self) -> None:
        self.ticks += 1


@dataclass(frozen=True)
class Recovered:
    framework_id: str | None = None
    set_aside: tuple[SetAside, ...] = ()


class SettlingScheduler(CoreScheduler[RecordingCore]):
    settle_delay = 0.02

    def settle(self, core: RecordingCore) -> None:
        core.settled += 1


class RecordingService(ServiceHost[ServiceConfig, RecordingCore, Recovered]):
    def __init__(self, tick_interval: float = TICK) -> None:
        super().__init__(
            ServiceConfig(master="127.0.0.1:1", http_port=8080, framework_name="test",
                          tick_interval=tick_interval),
            version="1.0", kinds=("framework",), recover=lambda entries: Recovered(),
            scheduler=SettlingScheduler, log=log,
        )
        self.terms: list[RecordingCore] = []
        self.side_task_runs = 0
        self.ended = 0

    def start_term(
        self, recovered: Recovered, actions: SchedulerActions, sink: Sink
    ) -> TermCore[RecordingCore]:
        core = RecordingCore()
        self.terms.append(core)
        return TermCore(core, tasks=(self._side_task,))

    def term_ended(self) -> None:
        self.ended += 1

    async def _side_task(self) -> None:
        self.side_task_runs += 1
        await asyncio.Event().wait()


async def until(condition: Callable[[], bool]) -> None:
    """Poll the host's state (it offers no event to wait on) until `condition` holds, bounded."""
    async with asyncio.timeout(5.0):
        while not condition():  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0.005)


async def loop_turns(turns: int = 50) -> None:
    """Let the loop run whatever is ready, without waiting on the clock."""
    for _ in range(turns):
        await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def running(service: RecordingService) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(service.run(http_port=1234))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_term_ticks_at_once_then_waits_the_interval() -> None:
    service = RecordingService(tick_interval=60.0)
    async with running(service):
        await until(lambda: service.core is not None and service.core.ticks == 1)
        core = service.core
        assert service.side_task_runs == 1
        await loop_turns()  # no second tick before the 60 s interval, however often it runs
        assert core is service.core and core.ticks == 1
    assert service.core is None and service.ended == 1


async def test_a_term_ticks_every_interval() -> None:
    service = RecordingService()
    async with running(service):
        await until(lambda: service.core is not None and service.core.ticks >= 3)


async def test_the_host_advertises_itself_as_the_leader_and_forwards_nowhere() -> None:
    service = RecordingService()
    async with running(service):
        await until(lambda: service.core is not None)
        assert service.info.port == 1234
        assert service.leader_address == f"{service.hostname}:1234"
        assert service.leader_url is None  # this process leads
        await service.durable()  # state in memory: nothing to wait for


async def test_abdication_ends_the_term_at_once_and_contends_again() -> None:
    service = RecordingService()
    async with running(service) as task:
        await until(lambda: service.core is not None)
        first = service.core
        assert service.abdicate() is True
        assert service.core is None  # no longer answers as leader, from now on
        assert service.abdicate() is False
        await until(lambda: service.core is not None)
        assert service.core is not first and len(service.terms) == 2
        assert service.ended == 1 and not task.done()


async def test_the_scheduler_hands_callbacks_to_the_core_and_settles_once_per_burst() -> None:
    scheduler = SettlingScheduler(log)
    with pytest.raises(CoreNotSet):
        scheduler.resource_offers(NO_DRIVER, [])
    core = RecordingCore()
    scheduler.core = core
    scheduler.registered(NO_DRIVER, mesos_pb2.FrameworkID(value="fw-1"), mesos_pb2.MasterInfo())
    scheduler.reregistered(NO_DRIVER, mesos_pb2.MasterInfo())
    assert core.registrations == ["fw-1", "fw-1"]
    scheduler.resource_offers(NO_DRIVER, [mesos_pb2.Offer(id=mesos_pb2.OfferID(value="o-1"))])
    assert core.offers == ["o-1"]
    for task_id in ("a", "b", "c"):
        scheduler.status_update(
            NO_DRIVER, mesos_pb2.TaskStatus(task_id=mesos_pb2.TaskID(value=task_id)))
    assert core.statuses == ["a", "b", "c"] and core.settled == 0
    await until(lambda: core.settled == 1)
    await loop_turns()
    assert core.settled == 1  # one settle for the burst, no other scheduled


def test_the_shared_flags_fill_the_config_from_the_command_line_and_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    parser = FlagParser(prog="test")
    add_service_flags(parser, who="the test", http_port=7000, framework_name="test")
    monkeypatch.setenv("TEST_WORK_DIR", "/var/lib/test")
    args = parse_service_flags(parser, ["--zk_session_timeout", "5secs"], "TEST")
    config = ServiceConfig.from_flags(args, tick_interval=2.0)
    assert config == ServiceConfig(
        http_port=7000, framework_name="test", work_dir=Path("/var/lib/test"),
        zk_session_timeout=5.0, tick_interval=2.0,
    )


def _parsed(argv: list[str]) -> ServiceConfig:
    parser = FlagParser(prog="test")
    add_service_flags(parser, who="the test", http_port=7000, framework_name="test")
    return ServiceConfig.from_flags(parse_service_flags(parser, argv, "TEST"))


def test_http_users_come_from_both_credential_flags(tmp_path: Path) -> None:
    users = tmp_path / "users"
    users.write_text("alice a-pw\nbob b-pw\n")
    config = _parsed(["--http_credentials", "admin:pw:with:colons",
                      "--http_credentials_file", str(users)])
    assert dict(config.http_credentials.secrets) == {
        "admin": "pw:with:colons", "alice": "a-pw", "bob": "b-pw"}


def test_the_authorization_flag_takes_a_file_or_the_json(tmp_path: Path) -> None:
    document = '{"rules": [{"users": ["a"], "actions": ["view"], "paths": ["/dev"]}]}'
    (tmp_path / "authz.json").write_text(document)
    for value in (document, str(tmp_path / "authz.json"), f"file://{tmp_path}/authz.json"):
        config = _parsed(["--http_credentials", "a:pw", "--http_authorization", value])
        assert config.authorization.decide("a", "view", "/dev/x").allowed
        assert not config.authorization.decide("a", "update", "/dev/x").allowed
    assert not _parsed([]).authorization.enabled


@pytest.mark.parametrize(("argv", "message"), [
    (["--http_authorization", "{}"], "--http_authorization needs --http_credentials"),
    (["--http_credentials", "a:pw", "--http_authorization", '{"rules": 1}'],
     "--http_authorization: 'rules' must be a list"),
    (["--http_credentials", "a:pw", "--http_authorization", "/nonexistent/authz.json"],
     "--http_authorization: cannot read /nonexistent/authz.json"),
    (["--http_credentials", "a:pw", "--http_credentials_file", '{"credentials": '
      '[{"principal": "a", "secret": "x"}]}'], "user 'a' is also in --http_credentials_file"),
])
def test_bad_security_flags_stop_the_service_with_one_line(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parsed(argv)
    assert message in capsys.readouterr().err
