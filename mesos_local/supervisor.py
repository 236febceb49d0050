"""Supervision of mesos-local's component processes.

`RestartBackoff` is the pure policy: a component that exits is restarted after a delay that
doubles with each exit in a row (1 s, 2 s, 4 s, ... up to a minute) and starts over once the
component has stayed up for a while. `Supervisor` is the shell that owns the processes: it
starts them with their logs under `<work_dir>/logs/`, reports and restarts the ones that exit
while the rest keep running, reaps every child (tasks re-parented to mesos-local, the child
subreaper, included), and stops everything in reverse start order.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

import psutil

__all__ = ["Component", "RestartBackoff", "Supervisor"]


@dataclass(frozen=True)
class Component:
    """A process mesos-local runs: its name (and log file name), command line, and the
    address it serves once started (None: nothing to wait for)."""

    name: str
    argv: Sequence[str]
    listens_on: tuple[str, int] | None = None


@dataclass(frozen=True)
class RestartBackoff:
    """How long to wait before restarting a component that exited."""

    first_delay: float = 1.0
    max_delay: float = 60.0
    stable_after: float = 60.0
    """A component that ran this long before exiting is restarted after `first_delay`."""

    def delay(self, exits_in_a_row: int) -> float:
        """The wait before the restart after the `exits_in_a_row`-th exit (1 for the first)."""
        return min(self.max_delay, math.ldexp(self.first_delay, max(0, exits_in_a_row - 1)))

    def exits_in_a_row(self, previous: int, ran_for: float) -> int:
        """The count after one more exit of a component that ran `ran_for` seconds."""
        return 1 if ran_for >= self.stable_after else previous + 1


@dataclass
class _Running:
    component: Component
    process: subprocess.Popen[bytes]
    log: IO[bytes]
    started_at: float
    exits_in_a_row: int = 0
    restart_at: float | None = None
    """When an exited component is due to start again."""


@dataclass
class Supervisor:
    """Starts, watches, restarts and stops mesos-local's components (see the module doc)."""

    logs: Path
    backoff: RestartBackoff = field(default_factory=RestartBackoff)
    report: TextIO = field(default_factory=lambda: sys.stderr)
    clock: Callable[[], float] = time.monotonic
    _running: list[_Running] = field(default_factory=list)

    def start(self, component: Component, deadline: float) -> None:
        """Start `component` and wait until it listens (RuntimeError if it exits first or
        does not listen before the monotonic `deadline`)."""
        process, log = self._popen(component)
        running = _Running(component, process, log, self.clock())
        self._running.append(running)
        if component.listens_on is not None:
            _wait_for_port(*component.listens_on, running, deadline)

    def _popen(self, component: Component) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
        log = (self.logs / f"{component.name}.log").open("ab")
        process = subprocess.Popen(list(component.argv), stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        return process, log

    def watch(self) -> None:
        """One round of supervision: report components that exited and schedule their
        restart, restart those that are due, reap orphaned tasks that ended."""
        now = self.clock()
        for running in self._running:
            if running.restart_at is None and running.process.poll() is not None:
                running.log.close()
                running.exits_in_a_row = self.backoff.exits_in_a_row(
                    running.exits_in_a_row, now - running.started_at)
                delay = self.backoff.delay(running.exits_in_a_row)
                running.restart_at = now + delay
                name = running.component.name
                print(f"mesos-local: {name} exited with status {running.process.returncode} "
                      f"(see {self.logs / name}.log); restarting it in {delay:g} s",
                      file=self.report, flush=True)
            elif running.restart_at is not None and now >= running.restart_at:
                running.process, running.log = self._popen(running.component)
                running.started_at, running.restart_at = now, None
                print(f"mesos-local: {running.component.name} restarted", file=self.report,
                      flush=True)
        self.reap_orphans()

    def reap_orphans(self) -> None:
        """Reap children that are not components: tasks re-parented to us (the subreaper)
        after their agent exited, which would otherwise stay zombies."""
        ours = {running.process.pid for running in self._running}
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process().children():
                if child.pid in ours:
                    continue
                with contextlib.suppress(ChildProcessError, OSError):
                    os.waitpid(child.pid, os.WNOHANG)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the components, last started first (agents before the master); then kill
        and reap every remaining descendant (tasks of stopped agents)."""
        for running in reversed(self._running):
            if running.process.poll() is None:
                running.process.terminate()
        deadline = time.monotonic() + timeout
        for running in reversed(self._running):
            try:
                running.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
            running.log.close()
        _kill_orphans()


def _wait_for_port(host: str, port: int, running: _Running, deadline: float) -> None:
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise RuntimeError(f"{running.component.name} exited with status "
                               f"{running.process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{running.component.name} did not start listening on {host}:{port} "
                       "in time")


def _kill_orphans() -> None:
    """Kill the process groups of tasks re-parented to us and reap them."""
    me = psutil.Process()
    for _ in range(50):
        orphans = me.children()
        if not orphans:
            return
        for orphan in orphans:
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                os.killpg(os.getpgid(orphan.pid), signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError, psutil.NoSuchProcess):
                orphan.kill()
        psutil.wait_procs(orphans, timeout=1.0)
