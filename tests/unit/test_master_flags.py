"""Flags of `mesos-master` that Mesos' own setups pass."""

from __future__ import annotations

import pytest

from mesos_master.main import build_parser
from mesos_runtime.flags import parse_flags


def test_quorum_is_accepted_as_a_flag_or_from_mesos_quorum(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert parse_flags(build_parser(), ["--quorum", "2"], "MESOS").quorum == 2
    monkeypatch.setenv("MESOS_QUORUM", "1")
    assert parse_flags(build_parser(), [], "MESOS").quorum == 1
    for bad in ("0", "-1", "two"):
        with pytest.raises(SystemExit):
            parse_flags(build_parser(), ["--quorum", bad], "MESOS")
