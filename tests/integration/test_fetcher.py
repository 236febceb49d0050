"""The fetcher with real files and real HTTP servers on 127.0.0.1: first the `UriFetcher` on
its own (archives, failures, cache, ownership), then through real agent processes, Marathon's
`fetch` and the batch framework's `artifacts`."""

from __future__ import annotations

import asyncio
import gzip
import io
import os
import pwd
import tarfile
import tempfile
import threading
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from frameworks import OfferBudget, SchedulerDriver, command_task
from mesos_agent.containerizer.base import FetchError
from mesos_agent.fetcher import UriFetcher
from protos import mesos_pb2
from tests.integration.cluster import Cluster, wait_for
from tests.integration.recording import RecordingScheduler
from tests.integration.test_end_to_end import running, sandbox_file

pytestmark = pytest.mark.integration

URI = mesos_pb2.CommandInfo.URI
HELLO = b"hello from the archive\n"


class FileServer:
    """Serves `files` (path to bytes) on 127.0.0.1 and counts the requests for each path;
    while `gate` is clear, requests wait before they are answered."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: Counter[str] = Counter()
        self.gate = threading.Event()
        self.gate.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests[self.path] += 1
                server.gate.wait(30)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.05,),
                                        daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}{path}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.gate.set()
        self._http.shutdown()
        self._http.server_close()


@pytest.fixture
def server() -> Iterator[FileServer]:
    with FileServer() as serving:
        yield serving


def tarball(members: dict[str, bytes], mode: str = "w:gz",
            extra: Callable[[tarfile.TarFile], None] = lambda tar: None) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:  # type: ignore[call-overload]
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o755 if name.endswith(".sh") else 0o644
            tar.addfile(info, io.BytesIO(content))
        extra(tar)
    return buffer.getvalue()


def _symlink(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    return info


def _corrupt(data: bytes) -> bytes:
    """`data` with bytes in its middle flipped."""
    middle = len(data) // 2
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 8]) + data[middle + 8:]


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


ARCHIVES: dict[str, Callable[[], bytes]] = {
    "app.tar": lambda: tarball({"data/hello.txt": HELLO}, "w"),
    "app.tar.gz": lambda: tarball({"data/hello.txt": HELLO}, "w:gz"),
    "app.tgz": lambda: tarball({"data/hello.txt": HELLO}, "w:gz"),
    "app.tar.bz2": lambda: tarball({"data/hello.txt": HELLO}, "w:bz2"),
    "app.tar.xz": lambda: tarball({"data/hello.txt": HELLO}, "w:xz"),
    "app.zip": lambda: zipped({"data/hello.txt": HELLO}),
}


def fetcher(tmp_path: Path, cache_size: int = 1 << 20) -> UriFetcher:
    return UriFetcher(tmp_path / "cache", cache_size)


def sandbox(tmp_path: Path, name: str = "sandbox") -> Path:
    path = tmp_path / name
    path.mkdir()
    return path


@pytest.mark.parametrize("name", list(ARCHIVES))
async def test_archives_are_extracted_into_the_sandbox(
    tmp_path: Path, server: FileServer, name: str
) -> None:
    server.files[f"/{name}"] = ARCHIVES[name]()
    box = sandbox(tmp_path)
    await fetcher(tmp_path).fetch([URI(value=server.url(f"/{name}"), extract=True)], box, "")
    assert (box / "data" / "hello.txt").read_bytes() == HELLO
    assert (box / name).exists()  # the archive stays, as Mesos leaves it


async def test_a_gz_file_is_decompressed_to_its_name_without_gz(
    tmp_path: Path, server: FileServer
) -> None:
    server.files["/table.csv.gz"] = gzip.compress(b"a,b\n1,2\n")
    box = sandbox(tmp_path)
    await fetcher(tmp_path).fetch([URI(value=server.url("/table.csv.gz"), extract=True)], box, "")
    assert (box / "table.csv").read_bytes() == b"a,b\n1,2\n"
    assert not (box / "table.csv.gz").exists()


async def test_executable_output_file_and_no_extract(tmp_path: Path, server: FileServer) -> None:
    server.files["/download?id=7"] = b"#!/bin/sh\necho hi\n"
    server.files["/app.tgz"] = ARCHIVES["app.tgz"]()
    box = sandbox(tmp_path)
    await fetcher(tmp_path).fetch([
        URI(value=server.url("/download?id=7"), executable=True, output_file="bin/run"),
        URI(value=server.url("/app.tgz"), extract=False),
    ], box, "")
    assert os.stat(box / "bin" / "run").st_mode & 0o111 == 0o111
    assert (box / "bin" / "run").read_bytes() == b"#!/bin/sh\necho hi\n"
    assert (box / "app.tgz").exists() and not (box / "data").exists()


async def test_local_files_by_file_uri_and_plain_path(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a b.txt").write_text("A")
    (tmp_path / "in" / "app.zip").write_bytes(zipped({"z/hello.txt": HELLO}))
    box = sandbox(tmp_path)
    await fetcher(tmp_path).fetch([
        URI(value=f"file://{tmp_path}/in/a%20b.txt"),
        URI(value=f"{tmp_path}/in/app.zip", extract=True),
    ], box, "")
    assert (box / "a b.txt").read_text() == "A"
    assert (box / "z" / "hello.txt").read_bytes() == HELLO


@pytest.mark.parametrize(
    ("path", "body", "output_file", "cause"),
    [
        ("/missing.tgz", None, "", "HTTP 404"),
        ("/garbage.tar.gz", b"not a tarball", "", "bad archive"),
        ("/truncated.tar.xz", tarball({"big": os.urandom(50_000)}, "w:xz")[:20_000], "",
         "bad archive"),
        ("/corrupt.tgz", _corrupt(tarball({"big": bytes(50_000)})), "", "bad archive"),
        ("/corrupt.csv.gz", _corrupt(gzip.compress(bytes(50_000))), "", "bad archive"),
        ("/evil.tar.gz", tarball({"../escaped.txt": b"x"}), "", "'../escaped.txt' escapes"),
        ("/abs.tar", tarball({"/tmp/escaped.txt": b"x"}, "w"), "", "escapes the sandbox"),
        ("/link.tar.gz", tarball({}, extra=lambda tar: tar.addfile(_symlink("l", "/etc"))), "",
         "symlink 'l' points outside"),
        ("/x", b"x", "../x", "not a path inside the sandbox"),
        ("/zip-evil.zip", zipped({"../escaped.txt": b"x"}), "", "escapes the sandbox"),
    ],
    ids=["404", "bad-archive", "truncated-xz", "corrupt-tgz", "corrupt-gz", "dotdot-member",
         "absolute-member", "symlink-out", "output-file-escapes", "zip-dotdot"],
)
async def test_failures_name_the_uri_and_the_cause(
    tmp_path: Path, server: FileServer, path: str, body: bytes | None, output_file: str,
    cause: str | None,
) -> None:
    if body is not None:
        server.files[path] = body
    box = sandbox(tmp_path / "nested" if False else tmp_path)
    uri = URI(value=server.url(path), extract=True, output_file=output_file)
    if cause is None:  # the control case: the same shape, harmless, is fetched
        await fetcher(tmp_path).fetch([uri], box, "")
        assert (box / "l" / "passwd").read_bytes() == b"x"
        return
    with pytest.raises(FetchError) as failure:
        await fetcher(tmp_path).fetch([uri], box, "")
    assert server.url(path) in str(failure.value) and cause in str(failure.value)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "x").exists()


async def test_missing_or_irregular_local_files_and_unreachable_servers_fail(
    tmp_path: Path
) -> None:
    box = sandbox(tmp_path)
    with pytest.raises(FetchError, match=r"'/no/such/file': No such file or directory"):
        await fetcher(tmp_path).fetch([URI(value="/no/such/file")], box, "")
    os.mkfifo(tmp_path / "fifo")
    for irregular in (tmp_path / "fifo", tmp_path):
        with pytest.raises(FetchError, match="not a regular file"):
            await fetcher(tmp_path).fetch([URI(value=str(irregular))], box, "")
    with pytest.raises(FetchError, match=r"'http://127.0.0.1:1/x': ConnectError"):
        await fetcher(tmp_path).fetch([URI(value="http://127.0.0.1:1/x")], box, "")


async def test_a_cached_uri_is_downloaded_once(tmp_path: Path, server: FileServer) -> None:
    server.files["/app.tgz"] = ARCHIVES["app.tgz"]()
    shared = fetcher(tmp_path)
    uri = URI(value=server.url("/app.tgz"), extract=True, cache=True)
    for name in ("first", "second"):
        box = sandbox(tmp_path, name)
        await shared.fetch([uri], box, "")
        assert (box / "data" / "hello.txt").read_bytes() == HELLO
    assert server.requests["/app.tgz"] == 1
    assert shared.cached() == {uri.value: len(server.files["/app.tgz"])}
    # Without `cache` every fetch downloads.
    await shared.fetch([URI(value=uri.value)], sandbox(tmp_path, "third"), "")
    assert server.requests["/app.tgz"] == 2


async def test_concurrent_fetches_of_one_uri_download_once(
    tmp_path: Path, server: FileServer
) -> None:
    server.files["/warm"] = b"w"
    server.files["/app.tgz"] = ARCHIVES["app.tgz"]()
    shared = fetcher(tmp_path)
    await shared.fetch([URI(value=server.url("/warm"), cache=True)], sandbox(tmp_path, "w"), "")
    server.gate.clear()  # the download hangs until every fetch has started
    uri = URI(value=server.url("/app.tgz"), extract=True, cache=True)
    boxes = [sandbox(tmp_path, f"box-{i}") for i in range(4)]
    fetches = asyncio.gather(*(shared.fetch([uri], box, "") for box in boxes))
    while server.requests["/app.tgz"] == 0:  # noqa: ASYNC110 (the server is another thread)
        await asyncio.sleep(0.01)
    server.gate.set()
    await fetches
    assert server.requests["/app.tgz"] == 1
    assert all((box / "data" / "hello.txt").read_bytes() == HELLO for box in boxes)


async def test_a_failed_cached_download_fails_every_waiting_fetch_and_is_not_cached(
    tmp_path: Path, server: FileServer
) -> None:
    shared = fetcher(tmp_path)
    uri = URI(value=server.url("/later.txt"), cache=True)
    results = await asyncio.gather(
        *(shared.fetch([uri], sandbox(tmp_path, f"b{i}"), "") for i in range(3)),
        return_exceptions=True)
    assert all(isinstance(r, FetchError) and "HTTP 404" in str(r) for r in results)
    server.files["/later.txt"] = b"now"
    await shared.fetch([uri], sandbox(tmp_path, "ok"), "")
    assert (tmp_path / "ok" / "later.txt").read_bytes() == b"now"


async def test_the_cache_evicts_the_least_recently_used_and_bypasses_when_too_small(
    tmp_path: Path, server: FileServer
) -> None:
    for name in "abc":
        server.files[f"/{name}"] = name.encode() * 400
    server.files["/huge"] = b"h" * 2000
    shared = fetcher(tmp_path, cache_size=1000)  # room for two of a, b, c

    async def fetch(name: str) -> None:
        box = tmp_path / f"box-{name}-{server.requests[f'/{name}']}-{len(os.listdir(tmp_path))}"
        box.mkdir()
        await shared.fetch([URI(value=server.url(f"/{name}"), cache=True)], box, "")
        assert (box / name).read_bytes() == server.files[f"/{name}"]

    for name in ("a", "b", "a", "c"):  # c evicts b, the least recently used
        await fetch(name)
    assert list(shared.cached()) == [server.url("/a"), server.url("/c")]
    assert sorted(os.listdir(tmp_path / "cache")) == ["1", "3"]
    await fetch("b")  # evicts a
    assert server.requests == Counter({"/a": 1, "/b": 2, "/c": 1})
    await fetch("huge")
    await fetch("huge")
    assert server.requests["/huge"] == 2  # never fits: downloaded by each fetch, once
    assert len(shared.cached()) == 2


async def test_the_cache_directory_is_emptied_first(tmp_path: Path, server: FileServer) -> None:
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "stale").write_text("from an earlier agent")
    server.files["/f"] = b"f"
    await fetcher(tmp_path).fetch([URI(value=server.url("/f"), cache=True)],
                                  sandbox(tmp_path), "")
    assert os.listdir(tmp_path / "cache") == ["1"]


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="giving files to a user needs root")


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may search (pytest's own are private to root)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as name:
        os.chmod(name, 0o755)
        yield Path(name)


@needs_root
async def test_files_belong_to_the_user_who_may_read_only_what_it_could(
    tmp_path: Path, server: FileServer, shared_dir: Path
) -> None:
    nobody = pwd.getpwnam("nobody")
    server.files["/app.tgz"] = ARCHIVES["app.tgz"]()
    public = shared_dir / "public.txt"
    public.write_text("public")
    secret = shared_dir / "secret.txt"
    secret.write_text("secret")
    secret.chmod(0o600)
    private = tmp_path / "private.txt"  # readable, in a directory nobody cannot search
    private.write_text("private")
    box = sandbox(tmp_path)
    await fetcher(tmp_path).fetch([URI(value=server.url("/app.tgz"), extract=True, cache=True),
                                   URI(value=str(public))], box, "nobody")
    for path in (box, box / "app.tgz", box / "data", box / "data" / "hello.txt",
                 box / "public.txt"):
        assert (path.stat().st_uid, path.stat().st_gid) == (nobody.pw_uid, nobody.pw_gid), path
    for unreadable in (secret, private):
        with pytest.raises(FetchError, match="Permission denied for the task's user"):
            await fetcher(tmp_path).fetch([URI(value=str(unreadable))],
                                          sandbox(tmp_path, f"as-nobody-{unreadable.name}"),
                                          "nobody")
    await fetcher(tmp_path).fetch([URI(value=str(secret))], sandbox(tmp_path, "as-agent"), "")


# Through real agents, Marathon and the batch framework.


class Launcher:
    """An offer handler that launches each task put into `pending` on the next offer."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, str, list[URI], str]] = []
        self.lock = threading.Lock()

    def launch(self, task_id: str, cmd: str, *uris: URI, user: str = "") -> None:
        with self.lock:
            self.pending.append((task_id, cmd, list(uris), user))

    def __call__(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        with self.lock:
            pending, self.pending = self.pending, []
        for offer in offers:
            if not pending:
                driver.decline_offer(offer.id, filters=0.1)
                continue
            budget = OfferBudget(offer)
            tasks = []
            for task_id, cmd, uris, user in pending:
                task = command_task(task_id, budget, cmd)
                task.command.uris.extend(uris)
                task.command.user = user
                tasks.append(task)
            pending = []
            driver.launch_tasks(offer.id, tasks)


def test_an_agent_fetches_extracts_and_caches_before_the_task_runs(
    cluster: Cluster, server: FileServer
) -> None:
    server.files["/app.tgz"] = tarball({"data/hello.txt": HELLO, "run.sh": b"cat data/*\n"})
    cluster.start_agent()
    launcher = Launcher()
    scheduler = RecordingScheduler(on_offers=launcher)
    uri = URI(value=server.url("/app.tgz"), extract=True, cache=True)
    with running(cluster, scheduler):
        launcher.launch("first", "./run.sh", uri)
        scheduler.wait_for_state("first", "TASK_FINISHED")
        launcher.launch("second", "./run.sh", uri)
        scheduler.wait_for_state("second", "TASK_FINISHED")
    for task_id in ("first", "second"):
        stdout = sandbox_file(cluster.work_dir, task_id, "stdout")
        assert stdout is not None and stdout.read_bytes() == HELLO
    assert server.requests["/app.tgz"] == 1
    cache = cluster.work_dir / "agent-1" / "fetch"
    assert [p.read_bytes() for p in cache.iterdir()] == [server.files["/app.tgz"]]


@needs_root
def test_a_task_of_another_user_owns_what_was_fetched_for_it(
    cluster: Cluster, server: FileServer
) -> None:
    server.files["/app.tgz"] = tarball({"data/hello.txt": HELLO})
    cluster.agent_flags = ["--switch_user=true"]
    cluster.start_agent()
    launcher = Launcher()
    scheduler = RecordingScheduler(on_offers=launcher)
    with running(cluster, scheduler):
        # Writing into the extracted directory needs it to be nobody's.
        launcher.launch("as-nobody", "id -un; cat data/hello.txt; echo more >> data/hello.txt",
                        URI(value=server.url("/app.tgz"), extract=True, cache=True),
                        user="nobody")
        finished = scheduler.wait_for_state("as-nobody", "TASK_FINISHED")
    assert finished.state == mesos_pb2.TASK_FINISHED
    stdout = sandbox_file(cluster.work_dir, "as-nobody", "stdout")
    assert stdout is not None and stdout.read_bytes() == b"nobody\n" + HELLO
    assert (stdout.parent / "data" / "hello.txt").read_bytes() == HELLO + b"more\n"


def test_an_agent_fails_tasks_whose_uris_cannot_be_fetched(
    cluster: Cluster, server: FileServer, tmp_path: Path
) -> None:
    server.files["/evil.tar.gz"] = tarball({"../../escaped.txt": b"x"})
    cluster.start_agent()
    launcher = Launcher()
    scheduler = RecordingScheduler(on_offers=launcher)
    bad = {"not-found": (server.url("/nope.tgz"), "HTTP 404"),
           "missing": (str(tmp_path / "missing.txt"), "No such file or directory"),
           "evil": (server.url("/evil.tar.gz"), "escapes the sandbox")}
    with running(cluster, scheduler):
        for task_id, (value, _) in bad.items():
            launcher.launch(task_id, "echo ran > ran.txt", URI(value=value, extract=True))
        failures = {task_id: scheduler.wait_for_state(task_id, "TASK_FAILED") for task_id in bad}
    for task_id, (value, cause) in bad.items():
        status = failures[task_id]
        assert status.reason == mesos_pb2.TaskStatus.REASON_FETCHER_FAILED, status
        assert value in status.message and cause in status.message, status.message
        assert "TASK_RUNNING" not in scheduler.states(task_id)
        assert sandbox_file(cluster.work_dir, task_id, "ran.txt") is None
    assert not list(cluster.work_dir.rglob("escaped.txt"))


def test_marathon_fetch_and_uris_reach_the_sandbox(
    cluster: Cluster, server: FileServer
) -> None:
    server.files["/app.tgz"] = tarball({"data/hello.txt": HELLO})
    server.files["/tool.sh"] = b"#!/bin/sh\necho tool ran\n"
    cluster.start_agent()
    _, url = cluster.start_marathon()
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/v2/info").json()["frameworkId"], "marathon to register")
        created = client.post("/v2/apps", json={
            "id": "/fetching", "cmd": "cat data/hello.txt; ./tool.sh; sleep 600",
            "cpus": 0.1, "mem": 32, "instances": 1,
            "fetch": [{"uri": server.url("/app.tgz")},
                      {"uri": server.url("/tool.sh"), "executable": True, "cache": True}]})
        assert created.status_code == 201, created.text
        legacy = client.post("/v2/apps", json={
            "id": "/legacy", "cmd": "cat data/hello.txt; sleep 600", "cpus": 0.1, "mem": 32,
            "uris": [server.url("/app.tgz")]})
        assert legacy.status_code == 201, legacy.text
        broken = client.post("/v2/apps", json={
            "id": "/broken", "cmd": "sleep 600", "cpus": 0.1, "mem": 32,
            "fetch": [{"uri": server.url("/gone.tgz")}]})
        assert broken.status_code == 201, broken.text

        def output(app_id: str) -> str | None:
            tasks = client.get(f"/v2/apps/{app_id}/tasks").json()["tasks"]
            if not tasks:
                return None
            stdout = sandbox_file(cluster.work_dir, tasks[0]["id"], "stdout")
            return stdout.read_text() if stdout is not None and "\n" in stdout.read_text() \
                else None

        assert wait_for(lambda: output("fetching") if "tool ran" in (output("fetching") or "")
                        else None, "the app's output") == HELLO.decode() + "tool ran\n"
        assert wait_for(lambda: output("legacy"), "the legacy app's output") == HELLO.decode()

        def last_failure() -> dict[str, Any] | None:
            app = client.get("/v2/apps/broken", params={"embed": "app.lastTaskFailure"}).json()
            failure: dict[str, Any] | None = app["app"].get("lastTaskFailure")
            return failure

        failure = wait_for(last_failure, "the broken app's task failure")
        assert failure["state"] == "TASK_FAILED"
        assert server.url("/gone.tgz") in failure["message"] and "404" in failure["message"]


def test_batch_artifacts_reach_the_sandbox(cluster: Cluster, server: FileServer) -> None:
    server.files["/job.tar.bz2"] = tarball({"data/hello.txt": HELLO}, "w:bz2")
    cluster.start_agent()
    _, url = cluster.start_batch()
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/info").json()["frameworkId"], "batch to register")
        client.post("/v1/jobs", json={"id": "fetching", "run": {
            "cmd": f"test \"$(cat data/hello.txt)\" = '{HELLO.decode().strip()}'",
            "cpus": 0.1, "mem": 32,
            "artifacts": [{"uri": server.url("/job.tar.bz2"), "extract": True,
                           "cache": True}]}}).raise_for_status()
        client.post("/v1/jobs/fetching/runs").raise_for_status()
        wait_for(lambda: client.get("/v1/jobs/fetching", params={"embed": "history"}).json()
                 ["history"]["successCount"] == 1, "the run to succeed")
    assert server.requests["/job.tar.bz2"] == 1
