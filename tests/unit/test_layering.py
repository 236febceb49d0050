"""The import rules of the layering (ADR 0008), read from the source with `ast`.

Every import statement of every module in the rooms counts: at module level, inside functions
and under `if TYPE_CHECKING:`. Relative imports are resolved, and `from package import name`
counts as an import of `package.name` when that is one of our modules. A module is judged by
the imports it writes itself; they are not followed further.

The rules are the data below. When a room or a pure core is added (or split out of a module),
add it here; `EXCEPTIONS` lists what breaks a rule today and why, and the test fails as soon as
an exception is no longer needed, so that it is removed rather than forgotten.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

LAYERS: tuple[frozenset[str], ...] = (
    frozenset({"protos"}),
    frozenset({"mesos_values"}),
    frozenset({"mesos_runtime"}),
    frozenset({"mesos_security"}),
    frozenset({"mesos_coordination"}),
    frozenset({"mesos_http"}),
    frozenset({"webui"}),
    frozenset({"frameworks", "mesos_master", "mesos_agent"}),
    frozenset({"frameworks.batch", "marathon", "marathon_lb"}),
    frozenset({"mesos_local", "mesos_cli", "mesos_dns"}),
)
"""The rooms, lowest layer first. A module imports its own room and the rooms of lower layers,
never a room of its own layer (a sibling) or of a higher one."""

COMPONENTS = frozenset(
    {"frameworks", "mesos_master", "mesos_agent", "frameworks.batch", "marathon",
     "marathon_lb"}
)
OUTSIDE_COMPONENTS = frozenset({"mesos_local", "mesos_cli", "mesos_dns"})
"""Rooms that start the components as processes or talk to them over the network: they import
no component."""

CORES: tuple[str, ...] = (
    "mesos_values",
    "mesos_security.acls",
    "mesos_security.authentication",
    "mesos_security.credentials",
    "mesos_http.field_limits",
    "mesos_http.json_body",
    "mesos_http.json_input",
    "mesos_dns.names",
    "mesos_dns.records",
    "mesos_dns.resolver",
    "mesos_master.allocator",
    "mesos_master.config",
    "mesos_master.errors",
    "mesos_master.maintenance",
    "mesos_master.master",
    "mesos_master.observers",
    "mesos_master.offers",
    "mesos_master.quota",
    "mesos_master.rate_limits",
    "mesos_master.records",
    "mesos_master.registry",
    "mesos_master.standby",
    "mesos_master.tasks",
    "mesos_master.validation",
    "mesos_agent.environment",
    "mesos_agent.fetch_rules",
    "mesos_agent.ids",
    "mesos_agent.paths",
    "mesos_agent.status_updates",
    "mesos_agent.task_book",
    "mesos_agent.task_log",
    "mesos_agent.views",
    "mesos_agent.usage",
    "mesos_agent.completed",
    "mesos_agent.container_configs",
    "mesos_agent.containers",
    "mesos_agent.recovered",
    "mesos_agent.sandbox_gc",
    "frameworks._ids",
    "frameworks.authorization",
    "frameworks.actions",
    "frameworks._session",
    "frameworks.offers",
    "frameworks.placement",
    "frameworks.set_aside",
    "frameworks.tasks",
    "frameworks.batch.core",
    "frameworks.batch.cron",
    "frameworks.batch.jobs",
    "frameworks.batch.runs",
    "frameworks.batch.schedules",
    "marathon.app_definition",
    "marathon.app_parts",
    "marathon.app_rules",
    "marathon.constraints",
    "marathon.core",
    "marathon.deployments",
    "marathon.events",
    "marathon.groups",
    "marathon.launch_queue",
    "marathon.limits",
    "marathon.paths",
    "marathon.state",
    "marathon.validation",
    "marathon_lb.haproxy_config",
    "marathon_lb.protocol",
    "marathon_lb.services",
)
"""Pure cores (ADR 0009): a module, or a package with all its modules."""

CORE_HELPERS: tuple[str, ...] = ("protos", "mesos_runtime.clock", "mesos_coordination.store")
"""Modules of ours a core may import besides other cores: the messages, the `Clock` protocol,
and the store's `Sink` and `Mutation` (whose `BatchWriter`, the shell half, cores do not use)."""

IO_MODULES: tuple[str, ...] = (
    "asyncio", "concurrent", "fcntl", "grpc", "http.client", "http.server", "httpx", "kazoo",
    "multiprocessing", "os", "psutil", "selectors", "shutil", "signal", "socket", "ssl",
    "starlette", "subprocess", "tempfile", "threading", "time", "urllib.request", "uvicorn",
)
"""What no core imports: files, processes, threads, the network, the event loop, and the real
clock (a core reads time from the clock it is given)."""

EXCEPTIONS: dict[tuple[str, str], str] = {}
"""(importing module, imported module) pairs that break a rule today, with the reason."""


@dataclass(frozen=True, slots=True)
class Import:
    """One imported module, where it is imported."""

    module: str
    path: Path
    line: int
    target: str


@dataclass(frozen=True, slots=True)
class Violation:
    """An import that breaks a rule."""

    found: Import
    rule: str

    def __str__(self) -> str:
        found = self.found
        return f"{found.path}:{found.line}: {found.module} imports {found.target}: {self.rule}"


def _rooms() -> frozenset[str]:
    return frozenset().union(*LAYERS)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def room_of(module: str) -> str | None:
    """The room a module belongs to (the longest room name it lies within)."""
    rooms = [room for room in _rooms() if _within(module, room)]
    return max(rooms, key=len) if rooms else None


def layer_of(room: str) -> int:
    return next(index for index, layer in enumerate(LAYERS) if room in layer)


def is_core(module: str) -> bool:
    return any(_within(module, core) for core in CORES)


def modules(root: Path) -> dict[str, Path]:
    """Every module of the rooms under `root`, by dotted name."""
    found: dict[str, Path] = {}
    for top in sorted({room.split(".")[0] for room in _rooms()}):
        for path in sorted((root / top).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def imports(root: Path) -> Iterator[Import]:
    """Every import of every module of the rooms under `root`."""
    known = modules(root)
    for module, path in known.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.rsplit(".", node.level - 1)[0]
                    base = f"{anchor}.{base}" if base else anchor
                targets = [
                    f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                    for alias in node.names
                ]
            else:
                continue
            for target in dict.fromkeys(targets):
                yield Import(module, path.relative_to(root), node.lineno, target)


def check(found: Import) -> Iterator[str]:
    """The rules `found` breaks."""
    room, target_room = room_of(found.module), room_of(found.target)
    if room is not None and target_room is not None and target_room != room:
        if layer_of(target_room) > layer_of(room):
            yield f"{target_room} is in a higher layer than {room}"
        elif layer_of(target_room) == layer_of(room):
            yield f"{target_room} and {room} are siblings in one layer"
        if room in OUTSIDE_COMPONENTS and target_room in COMPONENTS:
            yield f"{room} reaches the components as processes or over the network"
    if is_core(found.module):
        if any(_within(found.target, io) for io in IO_MODULES):
            yield "a pure core imports no I/O"
        elif target_room is not None and not is_core(found.target) \
                and not any(_within(found.target, helper) for helper in CORE_HELPERS):
            yield "a pure core imports only cores, protos and the core helpers"


def violations(root: Path) -> list[Violation]:
    return [Violation(found, rule) for found in imports(root) for rule in check(found)]


def _report(found: Iterable[Violation]) -> str:
    return "\n".join(str(violation) for violation in found)


def test_the_rooms_keep_the_import_rules() -> None:
    found = violations(ROOT)
    broken = [v for v in found if (v.found.module, v.found.target) not in EXCEPTIONS]
    assert not broken, "imports that break the layering (ADR 0008):\n" + _report(broken)
    excused = {(v.found.module, v.found.target) for v in found}
    stale = sorted(set(EXCEPTIONS) - excused)
    assert not stale, f"exceptions no longer needed, remove them from EXCEPTIONS: {stale}"


def test_every_package_is_in_a_room_and_every_core_exists() -> None:
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "packages"]["find"]["include"]
    tops = {pattern.rstrip("*") for pattern in packages}
    assert tops == {room.split(".")[0] for room in _rooms()}, "place new packages in LAYERS"
    known = modules(ROOT)
    missing = [core for core in CORES if not any(_within(module, core) for module in known)]
    assert not missing, f"cores listed in CORES that no longer exist: {missing}"


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"mesos_values/resources.py": "x = 1\n\nfrom mesos_master.master import Master\n"},
            "mesos_values/resources.py:3: mesos_values.resources imports mesos_master.master: "
            "mesos_master is in a higher layer than mesos_values",
        ),
        (
            {"frameworks/driver.py": "def f() -> None:\n    import mesos_agent.agent\n"},
            "frameworks/driver.py:2: frameworks.driver imports mesos_agent.agent: "
            "mesos_agent and frameworks are siblings in one layer",
        ),
        (
            {"marathon/api.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
             "    from frameworks.batch.jobs import JobSpec\n"},
            "marathon/api.py:3: marathon.api imports frameworks.batch.jobs: "
            "frameworks.batch and marathon are siblings in one layer",
        ),
        (
            {"mesos_cli/main.py": "from mesos_master.http import routes\n"},
            "mesos_cli/main.py:1: mesos_cli.main imports mesos_master.http: "
            "mesos_cli reaches the components as processes or over the network",
        ),
        (
            {"marathon/constraints.py": "import os.path\n"},
            "marathon/constraints.py:1: marathon.constraints imports os.path: "
            "a pure core imports no I/O",
        ),
        (
            {"mesos_master/allocator/sorter.py": "from ..server import serve\n"},
            "mesos_master/allocator/sorter.py:1: mesos_master.allocator.sorter imports "
            "mesos_master.server: a pure core imports only cores, protos and the core helpers",
        ),
        (
            {"mesos_agent/task_log.py": "from . import checkpoint\n"},
            "mesos_agent/task_log.py:1: mesos_agent.task_log imports mesos_agent.checkpoint: "
            "a pure core imports only cores, protos and the core helpers",
        ),
    ],
    ids=["higher layer", "sibling", "sibling (TYPE_CHECKING)", "outside components",
         "core I/O", "core imports a shell", "core, relative import"],
)
def test_the_checker_reports_each_broken_rule(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    _tree(tmp_path, {"mesos_agent/__init__.py": "", "mesos_agent/checkpoint.py": "",
                     "mesos_master/__init__.py": "", "mesos_master/server.py": "", **files})
    assert [str(v) for v in violations(tmp_path)] == [expected]


def test_the_checker_accepts_what_the_rules_allow(tmp_path: Path) -> None:
    _tree(tmp_path, {
        "marathon/core.py": "import json\nfrom frameworks.offers import pick_ports\n"
                            "from mesos_coordination.store import Sink\nfrom . import paths\n",
        "marathon/paths.py": "",
        "marathon/service.py": "import asyncio\nfrom frameworks import SchedulerDriver\n",
        "frameworks/batch/api.py": "from frameworks.batch import core\nimport webui\n",
        "mesos_local/main.py": "import subprocess\nfrom mesos_runtime import flags\n",
    })
    assert violations(tmp_path) == []
