"""What every command gets: where the components are, how to print, how long to wait."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TextIO

from mesos_cli.client import ApiClient
from mesos_cli.discovery import MasterAddress, master_http_url
from mesos_cli.errors import CliError
from mesos_cli.tables import Cell, render_table
from mesos_security.tls import TlsConfig

__all__ = ["BATCH", "MARATHON", "Context", "FrameworkApi", "ProgressLine", "load_json_file",
           "registered_webui_url"]


@dataclass
class Context:
    """Addresses, output mode and timeouts of one `mesos` invocation."""

    master_address: MasterAddress
    """`--master` as given: a gRPC address, a ZooKeeper URL or an HTTP URL."""
    marathon_url: str | None
    """`--marathon`; None: the `webui_url` the framework named `marathon` registered."""
    batch_url: str | None
    """`--batch`; None: the `webui_url` the framework named `batch` registered."""
    json_output: bool = False
    request_timeout: float = 10.0
    """Seconds to wait for each HTTP answer."""
    wait_timeout: float = 300.0
    """Seconds `--wait` waits for a deployment or a run to finish."""
    poll_interval: float = 0.5
    tls: TlsConfig = field(default_factory=TlsConfig)
    """How to reach a TLS cluster: every `http://` URL becomes `https://` (ADR 0013)."""
    credentials: tuple[str, str] | None = None
    """The HTTP Basic principal and secret (`--principal`, `--secret`)."""
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    _master_url: str | None = field(default=None, init=False, repr=False)

    def client(self, service: str, base_url: str) -> ApiClient:
        """A client for `service` at `base_url` (close it: `async with`)."""
        if self.tls.dials_tls and base_url.startswith("http://"):
            base_url = "https://" + base_url.removeprefix("http://")
        verify = self.tls.client_context() if self.tls.dials_tls else True
        return ApiClient(service, base_url, timeout=self.request_timeout, verify=verify,
                         auth=self.credentials)

    async def master_url(self) -> str:
        """The HTTP base URL of the master `--master` leads to (found once, then kept)."""
        if self._master_url is None:
            self._master_url = await master_http_url(self.master_address, self.request_timeout,
                                                     self.tls)
        return self._master_url

    def master(self, base_url: str) -> ApiClient:
        """A client for the master's HTTP endpoints at `base_url` (from `master_url()`)."""
        return self.client("master", base_url)

    @contextlib.asynccontextmanager
    async def marathon(self) -> AsyncIterator[ApiClient]:
        """A client for Marathon (`--marathon`, else found through the master)."""
        url = self.marathon_url or await self.framework_url(MARATHON)
        async with self.client("Marathon", url) as client:
            yield client

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[ApiClient]:
        """A client for the batch framework (`--batch`, else found through the master)."""
        url = self.batch_url or await self.framework_url(BATCH)
        async with self.client("batch API", url) as client:
            yield client

    async def framework_url(self, wanted: FrameworkApi) -> str:
        """The `webui_url` the active framework named `wanted.name` registered with the
        master (the leader's, when several instances elect one); CliError when none did."""
        master_url = await self.master_url()
        async with self.master(master_url) as master:
            state = await master.get("/state")
        url = registered_webui_url(state, wanted.name)
        if url is None:
            raise CliError(
                f"no active framework named {wanted.name!r} with a web UI is registered with "
                f"the master at {master_url}; give {wanted.option} URL (or {wanted.env})")
        return url

    @property
    def out_bytes(self) -> BinaryIO:
        """stdout for raw bytes (task logs are printed as the task wrote them)."""
        return self.out.buffer

    def print(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def note(self, text: str) -> None:
        """A line for people on stderr (progress, hints); stdout stays parseable."""
        self.err.write(text + "\n")
        self.err.flush()

    def print_json(self, value: Any) -> None:
        self.print(json.dumps(value, indent=2, sort_keys=True))

    def print_table(self, headers: Sequence[str], rows: Iterable[Sequence[Cell]]) -> None:
        self.print(render_table(headers, rows))


@dataclass(frozen=True)
class FrameworkApi:
    """A framework whose API the CLI uses: its registered name and how users name its URL."""

    name: str
    option: str
    env: str


MARATHON = FrameworkApi("marathon", "--marathon", "MARATHON_URL")
BATCH = FrameworkApi("batch", "--batch", "MESOS_BATCH_URL")


def registered_webui_url(state: Any, name: str) -> str | None:
    """The `webui_url` of the active framework named `name` in the master's `/state`."""
    for framework in state.get("frameworks") or [] if isinstance(state, dict) else []:
        if isinstance(framework, dict) and framework.get("name") == name \
                and framework.get("active", True) and framework.get("webui_url"):
            return str(framework["webui_url"])
    return None


def load_json_file(path: str, what: str) -> Any:
    """The JSON document in the file `path` (`-` reads stdin); CliError when it cannot be read
    or parsed. `what` names the document in messages ("app definition")."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CliError(f"cannot read the {what} {path}: {error.strerror or error}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"the {what} {path} is not valid JSON: {error.msg} "
                       f"(line {error.lineno}, column {error.colno})") from None


class ProgressLine:
    """One line of progress on a stream: redrawn in place on a terminal, printed when it
    changes otherwise (logs and pipes get one line per change)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last: str | None = None

    def show(self, text: str) -> None:
        if text == self._last:
            return
        self._stream.write(f"\r{text}\x1b[K" if self._tty else text + "\n")
        self._stream.flush()
        self._last = text

    def close(self) -> None:
        """End the line on a terminal, so that what follows starts on a new one."""
        if self._tty and self._last is not None:
            self._stream.write("\n")
            self._stream.flush()
