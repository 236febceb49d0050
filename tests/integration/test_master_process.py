"""`mesos-master` refuses bad flags with one clear line and exit status 1."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("argv", "env", "fragment"),
    [
        (["--port", "abc"], {}, "--port"),
        (["--port", "70000"], {}, "not a port number"),
        (["--agent_ping_timeout", "soon"], {}, "invalid duration"),
        (["--agent_ping_timeout", "0secs"], {}, "must be positive"),
        (["--max_agent_ping_timeouts", "0"], {}, "at least 1"),
        (["--weights", "web"], {}, "ROLE=WEIGHT"),
        (["--weights", "web=-2"], {}, "must be positive"),
        (["--weights", "bad role=1"], {}, "whitespace"),
        (["--log_level", "LOUD"], {}, "--log_level"),
        ([], {"MESOS_OFFER_TIMEOUT": "later"}, "MESOS_OFFER_TIMEOUT"),
    ],
    ids=["port-text", "port-range", "duration", "zero-timeout", "zero-pings", "weight-syntax",
         "weight-negative", "weight-role", "log-level", "env-var"],
)
def test_bad_flags_exit_1_with_one_line(
    argv: list[str], env: dict[str, str], fragment: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mesos_master", "--port", "0", *argv],
        capture_output=True, text=True, timeout=30, env={**os.environ, **env},
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mesos-master: error:") and fragment in lines[0]
