"""The agent's spawn server (ADR 0019): `mesos-launch --serve`, one long-lived child of the
agent that forks and execs containers on its behalf, so that the agent's event loop never waits
for a fork and exec.

    agent loop --request (argv, environment, cwd; stdout/stderr or "make them")--> server
               <--started(pid) | failed(errno)------------------------------- (forks, the child
               <--exited(pid, wait status), whenever a child ends ----------    applies the
                                                                                mesos-launch
                                                                                options, execs)

Requests are SOCK_SEQPACKET messages: u64 id, u32 flags (report exec errors, make the
sandbox, PWD from the child's working directory), u32 argument count, u32 environment
count, i32 uid and gid (of the sandbox the child makes, -1: the server's), then NUL-terminated
strings (cwd, `mesos-launch` arguments `[OPTIONS] -- COMMAND...`,
`NAME=VALUE` variables). Replies are 32 bytes: a kind byte, then three i64 (a start carries the
child's start time from /proc/PID/stat, read by the server rather than by the agent's loop). The
server answers each request once its child has its own session (and its sandbox, if it makes
it), or with `report_exec_errors` once the command is exec'd, or with the errno that stopped it
(as `subprocess.Popen` raises it); without that flag a failure to exec is the child's exit
status, as with `mesos-launch` exec'd. It forks the next requests meanwhile (up to 64 children
unanswered), so answers may come out of order; a child's answer always precedes its exit.

If the server goes away (it exits only when the agent closes its end, so this is a crash), the
pending spawns fail with `SpawnServerLost`, and so do the exit statuses of its children (which
keep running: the containerizer watches them as it watches recovered ones); the next spawn
starts a new server.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import os
import socket
import struct
import subprocess
import sys
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import psutil
import structlog

__all__ = ["SpawnServer", "SpawnServerLost", "Spawned"]

_log = structlog.get_logger("mesos_agent")

_HEADER = struct.Struct("=QIIIii")
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()
_REPLY = struct.Struct("=B7xqqq")
_REPORT_EXEC_ERRORS = 1
_MAKE_SANDBOX = 2
_PWD_FROM_CWD = 4
REQUEST_MAX = 64 * 1024
"""Larger requests (a huge environment) are not sent: the caller forks itself."""
_SOCKET_BUFFER = 1 << 20


class Spawned(NamedTuple):
    """A process the server started."""

    pid: int
    start_time: float | None
    """As `psutil.Process.create_time` has it (None: unknown)."""
    exit_code: asyncio.Future[int]
    """Its return code once it ends (negative: the signal that ended it)."""


class SpawnServerLost(OSError):
    """The spawn server exited: its answer, or a child's exit status, will never come."""


class SpawnServer:
    """A client of one `mesos-launch --serve` process (started on first use, by the loop)."""

    def __init__(self, helper: str) -> None:
        self._helper = helper
        self._process: subprocess.Popen[bytes] | None = None
        self._socket: socket.socket | None = None
        self._ids = itertools.count(1)
        self._spawns: dict[int, asyncio.Future[Spawned]] = {}
        self._exits: dict[int, asyncio.Future[int]] = {}
        self._writable: asyncio.Future[None] | None = None

    def _connect(self) -> socket.socket:
        if self._socket is not None:
            return self._socket
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            for end in (ours, theirs):
                with contextlib.suppress(OSError):
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SOCKET_BUFFER)
                    end.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _SOCKET_BUFFER)
            process = subprocess.Popen(
                [self._helper, "--serve", str(theirs.fileno())], pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._process = process
        ours.setblocking(False)
        asyncio.get_running_loop().add_reader(ours.fileno(), self._read)
        self._socket = ours
        # Dropped without `close` (its containerizer is): the server still goes, and is reaped.
        weakref.finalize(self, _stop, ours, process)
        return ours

    async def spawn(
        self,
        args: Sequence[str],
        environment: Mapping[str, str],
        cwd: str,
        outputs: tuple[int, int] | None,
        *,
        report_exec_errors: bool,
        owner: tuple[int, int] | None = None,
        pwd_from_cwd: bool = False,
    ) -> Spawned:
        """Start `mesos-launch ARGS` (`[OPTIONS] -- COMMAND...`) in its own session with `cwd`,
        `environment` and `outputs` (stdout, stderr); None: the child makes `cwd` (mode 0750,
        owned by `owner`'s uid and gid if given) with its `stdout` and `stderr` files, and a
        failure to do so is raised as OSError. `pwd_from_cwd`: the child sets `PWD`, if the
        environment has it, to its physical working directory (as a shell sets it), so the
        caller need not resolve `cwd`'s symbolic links. Raises OSError
        (`report_exec_errors`: also the exec's own error), ValueError when the request is too
        large to send."""
        strings = [cwd, *args, *(f"{name}={value}" for name, value in environment.items())]
        joined = "\0".join(strings)
        if joined.count("\0") != len(strings) - 1:
            raise ValueError("an argument or environment variable holds a NUL byte")
        request_id = next(self._ids)
        flags = (_REPORT_EXEC_ERRORS if report_exec_errors else 0) | (
            _MAKE_SANDBOX if outputs is None else 0) | (_PWD_FROM_CWD if pwd_from_cwd else 0)
        uid, gid = owner if owner is not None else (-1, -1)
        header = _HEADER.pack(request_id, flags, len(args), len(environment), uid, gid)
        # One encoding of the whole (as os.fsencode does per string): ~12x cheaper for 60 vars.
        payload = header + joined.encode(_FS_ENCODING, _FS_ERRORS) + b"\0"
        if len(payload) > REQUEST_MAX:
            raise ValueError(f"a spawn request of {len(payload)} bytes is too large")
        loop = asyncio.get_running_loop()
        for attempt in range(2):
            started: asyncio.Future[Spawned] = loop.create_future()
            self._spawns[request_id] = started
            try:
                try:
                    await self._send(self._connect(), payload, outputs)
                except SpawnServerLost:
                    if attempt:
                        raise
                    continue  # it never reached a server: start a new one and send again
                return await started
            finally:
                self._spawns.pop(request_id, None)
        raise AssertionError("unreachable")

    async def _send(
        self, sock: socket.socket, payload: bytes, fds: tuple[int, int] | None
    ) -> None:
        ancillary = ([(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack("=ii", *fds))]
                     if fds is not None else [])
        while True:
            try:
                sock.sendmsg([payload], ancillary)
                return
            except BlockingIOError:
                if self._writable is None:
                    self._writable = asyncio.get_running_loop().create_future()
                    asyncio.get_running_loop().add_writer(sock.fileno(), self._can_write)
                await asyncio.shield(self._writable)
            except OSError as exc:
                self._lost(exc)
                raise SpawnServerLost(f"the spawn server is gone: {exc}") from exc

    def _can_write(self) -> None:
        if self._socket is not None:
            asyncio.get_running_loop().remove_writer(self._socket.fileno())
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None

    def _read(self) -> None:
        sock = self._socket
        assert sock is not None
        while True:
            try:
                message = sock.recv(_REPLY.size)
            except BlockingIOError:
                return
            except OSError as exc:
                self._lost(exc)
                return
            if not message:
                self._lost(None)
                return
            kind, first, second, third = _REPLY.unpack(message)
            if kind == ord("X"):
                exited = self._exits.pop(first, None)
                if exited is not None and not exited.done():
                    exited.set_result(os.waitstatus_to_exitcode(second))
                continue
            started = self._spawns.get(first)
            if started is None or started.done():
                continue
            if kind == ord("S"):  # its exit is watched from now: it may come in this very read
                exited = self._exits[second] = asyncio.get_running_loop().create_future()
                start_time = _boot_time() + third / _CLOCK_TICKS if third >= 0 else None
                started.set_result(Spawned(second, start_time, exited))
            else:
                started.set_exception(OSError(second, os.strerror(second)))

    def _lost(self, error: OSError | None) -> None:
        """The server is gone: fail what waits on it and forget it (the next spawn restarts
        it)."""
        _log.error("spawn server lost; its containers are watched by polling",
                   error=str(error) if error is not None else "end of file",
                   returncode=self._process.poll() if self._process is not None else None)
        self.close()

    def close(self) -> None:
        """Close the connection (the server exits; its children run on)."""
        sock, self._socket = self._socket, None
        if sock is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(sock.fileno())
            loop.remove_writer(sock.fileno())
            sock.close()
        lost = SpawnServerLost("the spawn server exited")
        futures: list[asyncio.Future[Any]] = [*self._spawns.values(), *self._exits.values()]
        for future in futures:
            if not future.done():
                future.set_exception(lost)
                future.exception()  # retrieved: nobody may wait for it any more
        self._spawns.clear()
        self._exits.clear()
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)
        self._writable = None
        process, self._process = self._process, None
        if process is not None:
            process.poll()  # reaped if it is gone; else it exits at end of file, reaped later


def _stop(sock: socket.socket, process: subprocess.Popen[bytes]) -> None:
    """Close a dropped client's connection; its server exits at end of file."""
    sock.close()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(1.0)


@functools.cache
def _boot_time() -> float:
    return float(psutil.boot_time())


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
