"""Reading a task's sandbox files: the master's `/state` says where the task ran, the agent's
`/state` where its sandbox is, the agent's `/files/read` gives its bytes.

`/files/read?path=P&offset=N&length=M` answers `{"data": ..., "offset": N}` where `data` holds
the bytes read as one character per byte (Latin-1); `offset=-1` answers the file's size. The
pure parts (`LogCursor`, `tail_start`, `agent_task`, `master_task`, `agent_base_url`) turn
answers into bytes and places; `read_file`, `tail_offset` and `copy_file` read through any
`fetch(path, params)` that answers an agent's JSON (the CLI's client, or `SandboxFiles`').
`SandboxFiles` is the framework author's entry point (`frameworks.SandboxFiles`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from mesos_security.tls import TlsConfig
from mesos_values.addresses import HostPort
from mesos_values.task_states import TERMINAL_STATES
from protos import mesos_pb2

__all__ = ["READ_CHUNK", "AgentTask", "LogCursor", "MasterTask", "SandboxFiles",
           "SandboxNotFound", "agent_base_url", "agent_task", "copy_file", "file_size",
           "master_task", "read_file", "tail_offset", "tail_start"]

READ_CHUNK = 64 * 1024
"""Bytes asked of `/files/read` at a time."""
TERMINAL_TASK_STATES = frozenset(mesos_pb2.TaskState.Name(state) for state in TERMINAL_STATES)

Json = Mapping[str, Any]
Fetch = Callable[[str, Mapping[str, Any]], Awaitable[Any]]
"""`fetch(path, params)`: the JSON an agent answers for `GET path?params`."""


class SandboxNotFound(LookupError):
    """The task, its agent or its sandbox is not known (any more)."""


@dataclass
class LogCursor:
    """The position of the next byte to read in one sandbox file."""

    offset: int = 0

    def consume(self, answer: Mapping[str, Any]) -> bytes:
        """The bytes of one `/files/read` answer for a read at `offset`; moves past them."""
        answered = int(answer.get("offset", self.offset))
        if answered != self.offset:
            raise ValueError(f"asked for offset {self.offset}, got an answer for {answered}")
        data = str(answer.get("data", "")).encode("latin-1")
        self.offset += len(data)
        return data

    def restart_if_truncated(self, size: int) -> bool:
        """Go back to the start when the file is now smaller than the cursor (truncated,
        rotated); True if so."""
        if size < self.offset:
            self.offset = 0
            return True
        return False


def tail_start(data: bytes, data_offset: int, lines: int) -> int | None:
    """The file offset where the last `lines` lines begin, given `data`: the file's bytes from
    `data_offset` to its end. None when `data` does not reach back far enough (read more).

    A final newline ends the last line rather than starting an empty one; `lines=0` gives the
    end of the file.
    """
    if lines < 0:
        raise ValueError("lines must be 0 or more")
    end = len(data)
    if lines == 0:
        return data_offset + end
    position = end - 1 if data.endswith(b"\n") else end
    for _ in range(lines):
        position = data.rfind(b"\n", 0, position)
        if position == -1:
            return data_offset if data_offset == 0 else None
    return data_offset + position + 1


@dataclass(frozen=True)
class AgentTask:
    """A task as its agent's `/state` shows it: its sandbox directory and state."""

    directory: str
    state: str

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_TASK_STATES


def agent_task(agent_state: Json, framework_id: str, task_id: str) -> AgentTask | None:
    """The task's sandbox and state in an agent's `/state`; None when the agent has no such
    task (any more)."""
    frameworks = [*agent_state.get("frameworks", []), *agent_state.get("completed_frameworks", [])]
    for framework in frameworks:
        if framework.get("id") != framework_id:
            continue
        for executor in (*framework.get("executors", []),
                         *framework.get("completed_executors", [])):
            tasks = (*executor.get("tasks", []), *executor.get("queued_tasks", []),
                     *executor.get("completed_tasks", []))
            for task in tasks:
                if task.get("id") == task_id and executor.get("directory"):
                    return AgentTask(str(executor["directory"]), str(task.get("state", "")))
    return None


def agent_base_url(agent: Json, scheme: str = "http") -> str | None:
    """The base URL of an agent's HTTP endpoints, from a master `/state` `slaves` entry
    (`pid` is `slave(1)@IP:HTTP_PORT`; `http_port` wins when present); None if unknown."""
    address = str(agent.get("pid", "")).rpartition("@")[2]
    host, _, port = address.rpartition(":")
    host = host or str(agent.get("hostname", ""))
    http_port = agent.get("http_port") or port
    return f"{scheme}://{host}:{http_port}" if host and http_port else None


@dataclass(frozen=True)
class MasterTask:
    """Where a task ran, from the master's `/state`."""

    task_id: str
    framework_id: str
    agent_id: str
    agent_url: str | None


def master_task(state: Json, task_id: str, framework_id: str | None = None,
                scheme: str = "http") -> MasterTask | None:
    """The task `task_id` (of `framework_id`, when given) among the master's active and
    completed frameworks' tasks; None when the master does not know it."""
    for framework in (*state.get("frameworks", []), *state.get("completed_frameworks", [])):
        if framework_id is not None and framework.get("id") != framework_id:
            continue
        for task in (*framework.get("tasks", []), *framework.get("unreachable_tasks", []),
                     *framework.get("completed_tasks", [])):
            if task.get("id") != task_id:
                continue
            agent_id = str(task.get("slave_id", ""))
            agents = [a for a in state.get("slaves", []) if a.get("id") == agent_id]
            return MasterTask(task_id, str(task.get("framework_id", framework.get("id"))),
                              agent_id, agent_base_url(agents[0], scheme) if agents else None)
    return None


async def file_size(fetch: Fetch, path: str) -> int:
    """The size of the sandbox file `path` (an absolute path on the agent)."""
    answer = await fetch("/files/read", {"path": path, "offset": -1})
    return int(answer["offset"])


async def read_file(fetch: Fetch, path: str, offset: int, length: int) -> Json:
    """One `/files/read` answer."""
    answer: Json = await fetch("/files/read", {"path": path, "offset": offset,
                                               "length": length})
    return answer


async def tail_offset(fetch: Fetch, path: str, size: int, lines: int) -> int:
    """Where the last `lines` lines of the file (of `size` bytes) begin; reads backwards."""
    data = b""
    start = size
    while True:
        found = tail_start(data, start, lines)
        if found is not None:
            return found
        begin = max(0, start - READ_CHUNK)
        answer = await read_file(fetch, path, begin, start - begin)
        data = LogCursor(begin).consume(answer) + data
        start = begin


async def copy_file(fetch: Fetch, path: str, cursor: LogCursor, until: int | None,
                    write: Callable[[bytes], object]) -> None:
    """Hand the file's bytes from the cursor up to `until` (its current end when None) to
    `write`, a chunk at a time; a file truncated below the cursor is read from its start."""
    while until is None or cursor.offset < until:
        length = READ_CHUNK if until is None else min(READ_CHUNK, until - cursor.offset)
        data = cursor.consume(await read_file(fetch, path, cursor.offset, length))
        if not data:
            if until is None and cursor.restart_if_truncated(await file_size(fetch, path)):
                continue
            return
        write(data)


class SandboxFiles:
    """A task's sandbox files, found through the master's HTTP endpoints:

        async with SandboxFiles("http://127.0.0.1:5080") as files:
            print((await files.read("my-task", "stdout")).decode())
            async for chunk in files.follow("my-task", "stderr"):
                ...  # until the task has ended and everything it wrote was read

    Give the master's HTTP URL, or `SandboxFiles.of_master(master_info)` with the
    `MasterInfo` a scheduler's `registered` callback receives. With `tls` (the SDK's
    `TlsConfig`) URLs are https and the client presents its certificate; `auth` is an HTTP
    Basic (principal, secret) for clusters that authenticate HTTP. SandboxNotFound when the
    task or its sandbox is not known (any more).
    """

    def __init__(self, master_url: str, *, tls: TlsConfig | None = None,
                 auth: tuple[str, str] | None = None, timeout: float = 10.0,
                 poll_interval: float = 0.5) -> None:
        self._tls = tls or TlsConfig()
        self._scheme = "https" if self._tls.dials_tls else "http"
        self.master_url = master_url.rstrip("/")
        if self._tls.dials_tls and self.master_url.startswith("http://"):
            self.master_url = "https://" + self.master_url.removeprefix("http://")
        verify = self._tls.client_context() if self._tls.dials_tls else True
        self._client = httpx.AsyncClient(timeout=timeout, verify=verify, auth=auth)
        self._poll_interval = poll_interval

    @classmethod
    def of_master(cls, info: mesos_pb2.MasterInfo, **options: Any) -> SandboxFiles:
        """For the master `info` describes (its address and HTTP port)."""
        host = info.address or info.hostname
        return cls(f"http://{HostPort(host, info.http_port)}", **options)

    async def __aenter__(self) -> SandboxFiles:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def read(self, task_id: str, path: str = "stdout", *,
                   framework_id: str | None = None) -> bytes:
        """The whole file `path` (relative to the task's sandbox) as it is now."""
        fetch, directory, _ = await self._locate(task_id, framework_id)
        chunks: list[bytes] = []
        full = f"{directory}/{path}"
        await copy_file(fetch, full, LogCursor(), await file_size(fetch, full), chunks.append)
        return b"".join(chunks)

    async def follow(self, task_id: str, path: str = "stdout", *,
                     framework_id: str | None = None) -> AsyncIterator[bytes]:
        """The file's bytes as the task writes them, from its start, until the task has
        ended and all it wrote was read."""
        fetch, directory, terminal = await self._locate(task_id, framework_id)
        full = f"{directory}/{path}"
        cursor = LogCursor()
        chunks: list[bytes] = []
        while True:
            await copy_file(fetch, full, cursor, None, chunks.append)
            for chunk in chunks:
                yield chunk
            chunks.clear()
            if terminal:
                return
            await asyncio.sleep(self._poll_interval)
            _, _, terminal = await self._locate(task_id, framework_id)

    async def _locate(self, task_id: str, framework_id: str | None
                      ) -> tuple[Fetch, str, bool]:
        """A fetch for the task's agent, the sandbox directory, and whether it has ended."""
        state = await self._get(f"{self.master_url}/state", {})
        found = master_task(state, task_id, framework_id, self._scheme)
        if found is None or found.agent_url is None:
            raise SandboxNotFound(f"the master at {self.master_url} knows no task {task_id!r}"
                                  + ("" if found is None else " on a registered agent"))
        agent_url = found.agent_url

        async def fetch(path: str, params: Mapping[str, Any]) -> Any:
            return await self._get(agent_url + path, params)

        task = agent_task(await fetch("/state", {}), found.framework_id, task_id)
        if task is None:
            raise SandboxNotFound(f"agent {found.agent_id} keeps no sandbox of task "
                                  f"{task_id!r} (any more)")
        return fetch, task.directory, task.terminal

    async def _get(self, url: str, params: Mapping[str, Any]) -> Any:
        response = await self._client.get(url, params=dict(params))
        if response.status_code == 404:
            raise SandboxNotFound(f"{url}: {response.text.strip() or 'not found'}")
        response.raise_for_status()
        return response.json()
