"""docs/operator-guide.md documents every flag of every program (and no flag that does not
exist), and every metric of the master and the agents.

Each program has a section headed ``### `program` `` whose table rows start with the flag in
backquotes (`` | `--flag` | ``); a flag added to a parser without a row (or a row left behind by
a removed flag) fails here, as does a metric name missing from the guide.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from frameworks.batch.main import build_parser as batch_parser
from marathon.main import build_parser as marathon_parser
from marathon_lb.main import build_parser as marathon_lb_parser
from mesos_agent.config import build_parser as agent_parser
from mesos_agent.http import agent_metrics
from mesos_agent.views import AgentSnapshot
from mesos_dns.main import build_parser as dns_parser
from mesos_local.main import build_parser as local_parser
from mesos_master.http import master_metrics
from mesos_master.main import build_parser as master_parser
from protos import mesos_pb2

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "operator-guide.md"
PROGRAMS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "mesos-master": master_parser,
    "mesos-agent": agent_parser,
    "marathon": marathon_parser,
    "mesos-batch": batch_parser,
    "mesos-local": local_parser,
    "mesos-dns": dns_parser,
    "marathon-lb": marathon_lb_parser,
}
_ROW_FLAG = re.compile(r"^\|\s*`(--[a-z0-9_-]+)", re.MULTILINE)


def section(text: str, program: str) -> str:
    """The part of the guide under ``### `program` ``, up to the next heading of level 1-3."""
    match = re.search(rf"^### `{re.escape(program)}`\s*$(.*?)(?=^#{{1,3}} |\Z)", text,
                      flags=re.MULTILINE | re.DOTALL)
    assert match is not None, f"the operator's guide has no section ### `{program}`"
    return match.group(1)


def parser_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {option for action in parser._actions  # argparse has no public list of actions
            for option in action.option_strings
            if option.startswith("--") and action.dest != "help"}


@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_every_flag_has_a_row_and_every_row_is_a_flag(program: str) -> None:
    documented = set(_ROW_FLAG.findall(section(GUIDE.read_text(), program)))
    actual = parser_flags(PROGRAMS[program]())
    assert sorted(actual - documented) == [], f"{program}: flags without a row in the guide"
    assert sorted(documented - actual) == [], f"{program}: rows for flags that do not exist"


def test_parser_flags_sees_every_kind_of_option() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--value")
    parser.add_argument("--switch", action="store_true")
    parser.add_argument("-s", "--short_too", type=int)
    assert parser_flags(parser) == {"--value", "--switch", "--short_too"}


def test_section_stops_at_the_next_heading() -> None:
    text = "### `a`\n| `--one` | x |\n### `b`\n| `--two` | y |\n"
    assert _ROW_FLAG.findall(section(text, "a")) == ["--one"]
    assert _ROW_FLAG.findall(section(text, "b")) == ["--two"]


def test_every_master_and_agent_metric_is_in_the_guide() -> None:
    text = GUIDE.read_text()
    empty_agent = AgentSnapshot(
        info=mesos_pb2.AgentInfo(), master=None, registered=False, frameworks={}, tasks=(),
        executors=(), terminal_tasks={}, sandboxes_root=Path("/"),
    )
    names = [*master_metrics(None, uptime=0.0), *agent_metrics(empty_agent, uptime=0.0)]
    assert len(names) > 50
    assert [name for name in names if f"`{name}`" not in text] == []
