"""Where the agent keeps things under `--work_dir`.

Sandboxes follow Mesos' layout so operators find them where they expect::

    <work_dir>/slaves/<agent_id>/frameworks/<framework_id>/executors/<executor_id>/runs/<container_id>/

Checkpointed state lives under `<work_dir>/meta/` (one agent per work dir)::

    meta/agent.json                                   agent info with its id
    meta/frameworks/<framework_id>/framework.json     framework info
    meta/frameworks/<framework_id>/executors/<executor_id>.json   custom executor + container
    meta/frameworks/<framework_id>/tasks.log          its tasks: arrivals, status updates,
                                                      acks, command containers (a log)
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote


@functools.lru_cache(maxsize=4096)
def path_component(value: str) -> str:
    """Encode an id as one safe file-name component (reversible with `unquote`)."""
    encoded = quote(value, safe="-_.~@:+=,")
    if not encoded or encoded.startswith("."):
        encoded = "%2E" + encoded[1:] if encoded else "%00empty"
    return encoded


def from_path_component(name: str) -> str:
    """Decode a component made by `path_component`."""
    return "" if name == "%00empty" else unquote(name)


@dataclass(frozen=True, slots=True)
class AgentPaths:
    """The layout of one agent's work directory (its fixed directories are made once: the
    agent asks for task paths several times per task)."""

    work_dir: Path
    meta_dir: Path = field(init=False)
    frameworks_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "meta_dir", self.work_dir / "meta")
        object.__setattr__(self, "frameworks_dir", self.meta_dir / "frameworks")

    @property
    def agent_file(self) -> Path:
        return self.meta_dir / "agent.json"

    def framework_dir(self, framework_id: str) -> Path:
        return self.frameworks_dir / path_component(framework_id)

    def framework_file(self, framework_id: str) -> Path:
        return self.framework_dir(framework_id) / "framework.json"

    def executors_dir(self, framework_id: str) -> Path:
        return self.framework_dir(framework_id) / "executors"

    def executor_file(self, framework_id: str, executor_id: str) -> Path:
        return self.executors_dir(framework_id) / f"{path_component(executor_id)}.json"

    def task_log(self, framework_id: str) -> Path:
        return self.framework_dir(framework_id) / "tasks.log"

    def legacy_tasks_dir(self, framework_id: str) -> Path:
        """Where agents before the task log kept a directory per task (no longer read)."""
        return self.framework_dir(framework_id) / "tasks"

    def sandbox(
        self, agent_id: str, framework_id: str, executor_id: str, container_id: str
    ) -> Path:
        """The sandbox directory of one container run."""
        return _executors_dir(self.work_dir, agent_id, framework_id).joinpath(
            path_component(executor_id), "runs", path_component(container_id))


@functools.lru_cache(maxsize=64)
def _executors_dir(work_dir: Path, agent_id: str, framework_id: str) -> Path:
    """Where a framework's sandboxes go (made once: a path is parsed part by part, and every
    task launched asks for one)."""
    return work_dir.joinpath("slaves", path_component(agent_id), "frameworks",
                             path_component(framework_id), "executors")


def sandbox_container_ids(work_dir: Path) -> set[str]:
    """The container ids of every sandbox under `work_dir` (the last component of
    `slaves/*/frameworks/*/executors/*/runs/*`): the containers this agent ever ran."""
    return {run.name for run in (work_dir / "slaves").glob("*/frameworks/*/executors/*/runs/*")
            if run.name != "latest"}
