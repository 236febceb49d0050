"""The SDK's log lines in a framework author's program: stderr at INFO by default (never
stdout, no DEBUG), the application's `logging` set-up once it has one."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(program: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(program)], capture_output=True,
                          text=True, timeout=60, check=True)


def test_without_any_logging_set_up_info_goes_to_stderr_and_debug_nowhere() -> None:
    done = run("""
        from frameworks._logging import sdk_logger
        log = sdk_logger("frameworks.driver").bind(framework="demo")
        log.debug("a debug line")
        log.info("subscribed", framework_id="f-1")
        print("the framework's own output")
    """)
    assert done.stdout == "the framework's own output\n"
    assert "subscribed" in done.stderr and "framework_id=f-1" in done.stderr
    assert "framework=demo" in done.stderr and "a debug line" not in done.stderr


def test_the_applications_logging_set_up_and_level_are_honoured() -> None:
    done = run("""
        import logging, sys
        logging.basicConfig(stream=sys.stdout, format="APP %(name)s %(message)s")
        logging.getLogger("frameworks").setLevel(logging.DEBUG)
        from frameworks._logging import sdk_logger
        sdk_logger("frameworks.executor").debug("launching", task_id="t1")
    """)
    [line] = done.stdout.splitlines()
    assert line.startswith("APP frameworks.executor ") and "launching" in line
    assert "task_id=t1" in line and done.stderr == ""  # once, through the app's handler
