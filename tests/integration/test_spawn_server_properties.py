"""The spawn server's request format (ADR 0019) against any arguments and environment: what
the agent sends is exactly what the real `mesos-launch --serve` child execs with, bytes that are
not UTF-8 included (surrogate escapes); a NUL anywhere or a request over `REQUEST_MAX` is
refused before anything is sent, and the server keeps serving after either."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesos_agent.containerizer.launch_helper import launch_helper
from mesos_agent.containerizer.spawn_server import REQUEST_MAX, SpawnServer

pytestmark = pytest.mark.integration

PRINTF = "/usr/bin/printf"
ENV = "/usr/bin/env"

# Any character but NUL; lone surrogates only in the range that stands for undecodable bytes.
_CHARACTER = st.one_of(
    st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)),
    st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF),
)
_TEXT = st.text(_CHARACTER, max_size=40)
_NAME = st.text(st.characters(blacklist_characters="\0=", blacklist_categories=("Cs",)),
                min_size=1, max_size=20)
_ARGS = st.lists(_TEXT, max_size=8)
_ENVIRONMENT = st.dictionaries(_NAME, _TEXT, max_size=8)


class _Server:
    """A real spawn server on a loop of its own (hypothesis drives plain functions)."""

    def __init__(self, helper: str, root: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.server = SpawnServer(helper)
        self._root = root
        self._names = itertools.count()

    def run_to_exit(
        self, args: Sequence[str], environment: Mapping[str, str], *,
        pwd_from_cwd: bool = False, through_link: bool = False,
    ) -> tuple[int, bytes]:
        """Spawn `mesos-launch ARGS` in a new sandbox (`through_link`: named through a
        symbolic link to `physical`); its exit code and its stdout."""
        parent = self._root / ("link" if through_link else "")
        if through_link and not parent.exists():
            self.physical.mkdir()
            parent.symlink_to(self.physical)
        sandbox = parent / f"s{next(self._names)}"

        async def spawn() -> int:
            started = await self.server.spawn(args, environment, str(sandbox), None,
                                              report_exec_errors=False,
                                              pwd_from_cwd=pwd_from_cwd)
            return await started.exit_code

        code = self.loop.run_until_complete(spawn())
        return code, (sandbox / "stdout").read_bytes()

    @property
    def physical(self) -> Path:
        """Where the sandboxes named through the link are."""
        return self._root.resolve() / "physical"

    def refused(self, args: Sequence[str], environment: Mapping[str, str]) -> str:
        """The ValueError's message of a spawn that must not be sent."""
        with pytest.raises(ValueError) as raised:
            self.loop.run_until_complete(
                self.server.spawn(args, environment, str(self._root / "never"), None,
                                  report_exec_errors=False))
        assert not (self._root / "never").exists()
        return str(raised.value)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    helper = launch_helper()
    if helper is None:
        pytest.fail("mesos-launch cannot be built here (the test script installs gcc)")
    served = _Server(helper, tmp_path_factory.mktemp("spawn"))
    yield served

    async def close() -> None:
        served.server.close()

    served.loop.run_until_complete(close())
    served.loop.close()


def _nul_split(output: bytes) -> list[bytes]:
    assert output == b"" or output.endswith(b"\0")
    return output.split(b"\0")[:-1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=_ARGS, environment=_ENVIRONMENT)
def test_arguments_and_environment_arrive_byte_for_byte(
    server: _Server, args: list[str], environment: dict[str, str]
) -> None:
    code, printed = server.run_to_exit(["--", PRINTF, "%s\\0", "argv:", *args], environment)
    assert code == 0
    assert _nul_split(printed) == [b"argv:", *(os.fsencode(arg) for arg in args)]

    code, printed = server.run_to_exit(["--", ENV, "-0"], environment)
    assert code == 0
    assert sorted(_nul_split(printed)) == sorted(
        os.fsencode(f"{name}={value}") for name, value in environment.items())


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(args=_ARGS, environment=_ENVIRONMENT, data=st.data())
def test_a_nul_anywhere_is_refused_and_the_server_serves_on(
    server: _Server, args: list[str], environment: dict[str, str], data: st.DataObject
) -> None:
    where = data.draw(st.sampled_from(["argument", "name", "value"]))
    if where == "argument":
        at = data.draw(st.integers(0, len(args)))
        args = [*args[:at], data.draw(_TEXT) + "\0" + data.draw(_TEXT), *args[at:]]
    elif where == "name":
        environment = {**environment, data.draw(_NAME) + "\0": data.draw(_TEXT)}
    else:
        environment = {**environment, data.draw(_NAME): data.draw(_TEXT) + "\0"}
    assert "NUL" in server.refused(["--", PRINTF, "%s\\0", *args], environment)
    assert server.run_to_exit(["--", PRINTF, "ok"], {}) == (0, b"ok")


def test_a_request_over_the_limit_is_refused_and_the_server_serves_on(server: _Server) -> None:
    too_large = {"BIG": "x" * REQUEST_MAX}
    assert "too large" in server.refused(["--", PRINTF, "x"], too_large)
    assert server.run_to_exit(["--", PRINTF, "ok"], {}) == (0, b"ok")


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(environment=_ENVIRONMENT, given_pwd=st.one_of(st.none(), _TEXT))
def test_pwd_from_cwd_sets_only_a_given_pwd_to_the_physical_sandbox(
    server: _Server, environment: dict[str, str], given_pwd: str | None
) -> None:
    """What the agent asks when it leaves the sandbox's symbolic links to the child: PWD, if
    the environment has one, becomes the physical path, as a shell sets it; nothing else
    changes, and no PWD is added."""
    environment = {name: value for name, value in environment.items() if name != "PWD"}
    if given_pwd is not None:
        environment["PWD"] = given_pwd
    code, printed = server.run_to_exit(["--", ENV, "-0"], environment, pwd_from_cwd=True,
                                       through_link=True)
    assert code == 0
    variables = dict(item.split(b"=", 1) for item in _nul_split(printed))
    expected = {os.fsencode(name): os.fsencode(value) for name, value in environment.items()}
    if given_pwd is not None:
        newest = max(server.physical.iterdir(), key=lambda path: int(path.name[1:]))
        expected[b"PWD"] = os.fsencode(newest)
    assert variables == expected
