"""Processes left in sandboxes that no recovered container owns (Mesos' orphan containers).

After a restart the agent re-attaches to the containers its checkpoints name. A process still
running in a sandbox under `<work_dir>/slaves/` that belongs to none of the live ones would run
unsupervised, holding resources the agent offers again: the task of a corrupt checkpoint that a
non-strict recovery dropped, a process forked just before a crash whose container record never
became durable, the tasks of a meta directory that the operator removed, or what is left of a
container whose root process died. Recovery kills them.

Processes are recognised by their working directory, so one that left its sandbox is not found
(closing that gap needs a cgroup isolator).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True, slots=True)
class Orphan:
    """A process killed because no live container owns its sandbox."""

    pid: int
    cwd: str
    cmdline: tuple[str, ...]


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def kill_orphans(sandboxes_root: Path, owned_sandboxes: Iterable[Path]) -> list[Orphan]:
    """SIGKILL every process whose working directory is under `sandboxes_root` but inside none
    of `owned_sandboxes`; returns them. Blocking (it reads every process's cwd)."""
    if not sandboxes_root.is_dir():
        return []
    root = os.path.realpath(sandboxes_root)
    owned = [os.path.realpath(sandbox) for sandbox in owned_sandboxes]
    killed: list[Orphan] = []
    for process in psutil.process_iter(["cwd"]):
        cwd = process.info.get("cwd") or ""
        if not _inside(cwd, root) or any(_inside(cwd, sandbox) for sandbox in owned):
            continue
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            cmdline = tuple(process.cmdline())
            process.kill()  # psutil checks that the pid still names the same process
            killed.append(Orphan(process.pid, cwd, cmdline))
    return killed
