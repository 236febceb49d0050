"""The agent's --strict flag: Mesos' spellings, its default, and MESOS_STRICT."""

from __future__ import annotations

import pytest

from mesos_agent.config import parse_config

REQUIRED = ["--master", "127.0.0.1:5050", "--work_dir", "/tmp/agent", "--resources", "cpus:1"]


@pytest.mark.parametrize(
    ("flags", "strict"),
    [
        ([], True),
        (["--strict"], True),
        (["--strict=true"], True),
        (["--strict=false"], False),
        (["--strict", "false"], False),
        (["--strict=0"], False),
    ],
    ids=["default", "bare", "true", "false", "separate-value", "zero"],
)
def test_strict_flag(flags: list[str], strict: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESOS_STRICT", raising=False)
    config, _ = parse_config([*REQUIRED, *flags])
    assert config.strict is strict


def test_strict_comes_from_the_environment_unless_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESOS_STRICT", "false")
    assert parse_config(REQUIRED)[0].strict is False
    assert parse_config([*REQUIRED, "--strict=true"])[0].strict is True


def test_a_strict_value_that_is_not_a_boolean_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("MESOS_STRICT", raising=False)
    with pytest.raises(SystemExit) as exited:
        parse_config([*REQUIRED, "--strict=maybe"])
    assert exited.value.code == 1
    assert "--strict" in capsys.readouterr().err
