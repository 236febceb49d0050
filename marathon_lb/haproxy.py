"""The HAProxy process marathon-lb runs: master-worker mode, a configuration validated with
`haproxy -c` before it replaces the running one, reloads without dropping connections.

    apply(text) ─ unchanged? ─▶ nothing
                ─ haproxy -c on <config>.new ─ invalid ─▶ logged, the running config kept
                ─ rename over <config> ─▶ start the master (first time) or SIGUSR2 it
                                          ─▶ wait until `show proc` counts the reload

HAProxy's master (`-W`, in the foreground, our child) re-executes itself on SIGUSR2 with the
new file; the new workers take the listening sockets over from the old ones, which finish
the connections they hold and exit. Stopping sends SIGTERM to the master and reaps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from marathon_lb.protocol import Processes, parse_show_proc

__all__ = ["Applied", "HAProxy", "HAProxyExited"]

log = structlog.get_logger("marathon-lb")

LUA_ENDPOINTS = Path(__file__).with_name("endpoints.lua")
"""The stats port's `/_haproxy_getconfig` and `/_haproxy_getvhostmap` services."""
RELOAD_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
PR_SET_PDEATHSIG = 1


class HAProxyExited(Exception):
    """The master exited while marathon-lb waited for it (a file it could not start with, or
    a crash); the next `apply` starts it again."""


@dataclass(frozen=True, slots=True)
class Applied:
    """What `apply` did: `unchanged`, `invalid` (with HAProxy's complaint), `started`,
    `updated` (servers changed through the runtime API), `reloaded`, or `failed` (HAProxy
    could not load a valid file; its previous configuration runs on)."""

    outcome: str
    error: str = ""


MAX_SOCKET_PATH = 97
"""The longest UNIX socket path HAProxy accepts; the master's CLI socket lives next to the
configuration unless that path is longer, then in a private directory under the temp dir."""


class HAProxy:
    """One HAProxy master and its workers, fed configurations by `apply`."""

    def __init__(self, binary: str, config_path: Path) -> None:
        self.binary = binary
        self.config_path = config_path
        self.master_socket = config_path.with_suffix(".sock")
        self._socket_dir: Path | None = None
        if len(str(self.master_socket)) > MAX_SOCKET_PATH:  # HAProxy refuses longer ones
            self._socket_dir = Path(tempfile.mkdtemp(prefix="marathon-lb-"))
            self.master_socket = self._socket_dir / "master.sock"
        self.pid_file = config_path.with_suffix(".pid")
        self._process: asyncio.subprocess.Process | None = None
        self.started = asyncio.Event()
        """Set each time a master is started (its watcher clears it)."""
        self._running_text: str | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.returncode is None

    @property
    def master_pid(self) -> int | None:
        return self._process.pid if self.running and self._process else None

    async def validate(self, path: Path) -> str:
        """`haproxy -c` on `path`: empty when valid, else what HAProxy said."""
        process = await asyncio.create_subprocess_exec(
            self.binary, "-c", "-q", "-f", str(path), stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await process.communicate()
        if process.returncode == 0:
            return ""
        return output.decode(errors="replace").strip() or f"exit status {process.returncode}"

    async def check(self, text: str) -> str:
        """Validate `text` as a configuration without applying it."""
        candidate = self.config_path.with_name(self.config_path.name + ".check")
        candidate.write_text(text)
        try:
            return await self.validate(candidate)
        finally:
            candidate.unlink(missing_ok=True)

    async def apply(self, text: str, extra_files: dict[Path, str] | None = None,
                    server_commands: list[str] | None = None) -> Applied:
        """Make `text` the running configuration, unless it is what runs or is invalid.
        `extra_files` (the vhost map) are written along with it. `server_commands`, when the
        change is only one of server slots, are tried on the running worker first (no check,
        no reload; the files are written once they are done); if one is refused, the file is
        checked and reloaded as for any other change."""
        if text == self._running_text and self.running:
            return Applied("unchanged")
        try:
            return await self._apply(text, extra_files, server_commands)
        except HAProxyExited:
            self._running_text = None
            raise

    async def _apply(self, text: str, extra_files: dict[Path, str] | None,
                     server_commands: list[str] | None) -> Applied:
        if (server_commands is not None and self.running and self._running_text is not None
                and await self._run_on_worker(server_commands)):
            # Only slots changed, within a structure that was validated when it loaded: the
            # file is rewritten to what now runs, without `haproxy -c` or a reload.
            self._write(text, extra_files)
            log.info("haproxy servers updated without a reload", commands=len(server_commands))
            return Applied("updated")
        candidate = self.config_path.with_name(self.config_path.name + ".new")
        candidate.write_text(text)
        error = await self.validate(candidate)
        if error:
            log.error("the generated HAProxy configuration is invalid; keeping the running one",
                      error=error, rejected=str(candidate))
            return Applied("invalid", error)
        self._write(text, extra_files, candidate)
        if not self.running:
            await self.start()
            return Applied("started")
        if await self.reload():
            return Applied("reloaded")
        self._running_text = None  # the next pass tries again
        return Applied("failed", "HAProxy could not load the configuration; see its log")

    def _write(self, text: str, extra_files: dict[Path, str] | None,
               candidate: Path | None = None) -> None:
        """`text` (already in `candidate`, when given) and `extra_files` become the files."""
        for path, content in (extra_files or {}).items():
            _write_atomically(path, content)
        if candidate is None:
            _write_atomically(self.config_path, text)
        else:
            os.replace(candidate, self.config_path)
        self._running_text = text

    async def _run_on_worker(self, commands: list[str]) -> bool:
        """Each command on the current worker's runtime API, through the master CLI; False
        at the first one HAProxy refuses (or when the CLI does not answer)."""
        for command in commands:
            answer = await self.command(f"@1 {command}")
            if answer is None or not _accepted(command, answer):
                log.info("haproxy refused a runtime change; reloading instead",
                         command=command, answer=(answer or "").strip())
                return False
        return True

    async def command(self, line: str) -> str | None:
        """One master CLI command's answer; None while the CLI does not answer."""
        try:
            reader, writer = await asyncio.open_unix_connection(str(self.master_socket))
        except OSError:
            return None
        try:
            writer.write(line.encode() + b";quit\n")
            await writer.drain()
            async with asyncio.timeout(5):
                answer = await reader.read()
        except (OSError, TimeoutError):
            return None
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return answer.decode(errors="replace")

    async def start(self) -> None:
        """Start the master on the current configuration file and wait for its workers."""
        if self._process is not None:
            log.error("haproxy exited; starting it again", status=self._process.returncode)
        self.master_socket.unlink(missing_ok=True)
        self._process = await asyncio.create_subprocess_exec(
            self.binary, "-W", "-f", str(self.config_path), "-p", str(self.pid_file),
            "-S", str(self.master_socket), stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True, preexec_fn=_die_with_parent)
        self.started.set()
        processes = await self._wait_for(lambda p: bool(p.workers), "workers to start")
        log.info("haproxy started", master_pid=self._process.pid,
                 workers=list(processes.workers) if processes else [])

    async def reload(self) -> bool:
        """SIGUSR2 to the master; once it has reloaded, whether the new configuration loaded
        (True, new workers serve) or not (False: a valid file HAProxy still could not start,
        e.g. a port in use; the previous workers keep serving)."""
        assert self._process is not None
        before = await self.processes()
        self._process.send_signal(signal.SIGUSR2)
        reloads = before.reloads if before else 0
        failed = before.failed if before else 0
        previous = set(before.workers) if before else set()
        after = await self._wait_for(
            lambda p: p.reloads > reloads
            and (p.failed > failed or bool(set(p.workers) - previous)), "the reload")
        if after is not None and after.failed > failed:
            log.error("haproxy could not load the new configuration; the previous one keeps "
                      "running", reloads=after.reloads, failed=after.failed)
            return False
        log.info("haproxy reloaded", reloads=after.reloads if after else None,
                 workers=list(after.workers) if after else [],
                 old_workers=list(after.old_workers) if after else [])
        return after is not None

    async def processes(self) -> Processes | None:
        """The master's `show proc`; None while its CLI does not answer."""
        answer = await self.command("show proc")
        return parse_show_proc(answer) if answer is not None else None

    async def _wait_for(self, done: Callable[[Processes], bool], what: str
                        ) -> Processes | None:
        deadline = asyncio.get_running_loop().time() + RELOAD_TIMEOUT
        while asyncio.get_running_loop().time() < deadline:
            if not self.running:
                raise HAProxyExited(f"haproxy exited (status {self._process_status()}) "
                                    f"waiting for {what}")
            processes = await self.processes()
            if processes is not None and done(processes):
                return processes
            await asyncio.sleep(0.01)
        log.warning("haproxy did not confirm in time", waiting_for=what)
        return None

    def _process_status(self) -> int | None:
        return self._process.returncode if self._process else None

    @property
    def process(self) -> asyncio.subprocess.Process | None:
        """The master last started and not stopped by `stop`."""
        return self._process

    async def stop(self) -> None:
        """SIGTERM to the master (its workers stop with it), SIGKILL after `STOP_TIMEOUT`;
        the master is reaped either way."""
        process = self._process
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(STOP_TIMEOUT):
                await process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
        self._running_text = None
        self._process = None
        log.info("haproxy stopped", status=process.returncode)


def _accepted(command: str, answer: str) -> bool:
    """Whether the runtime API's `answer` to `command` says it was done: `set server ...
    addr` reports the change (or that there was none), the others answer nothing."""
    text = answer.strip()
    if " addr " in command:
        return text.startswith(("IP changed from", "no need to change", "port changed from"))
    return text == ""


def _write_atomically(path: Path, content: str) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(content)
    os.replace(temporary, path)


def _die_with_parent() -> None:
    """In the child before it runs HAProxy: SIGTERM it when marathon-lb dies, even by
    SIGKILL, so that no master outlives the process that manages it."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
