"""The agent's fetcher: puts a command's URIs into its sandbox before the container starts
(Mesos' fetcher). Decisions are in `mesos_agent.fetch_rules`; this shell does the I/O in
worker threads, so the agent's loop never waits on a download, a copy or an extraction.

    fetch(uris) --for each URI--> plan_fetch
        cache=false: download (httpx) or copy into the sandbox
        cache=true:  one download per (user, URI) into the cache directory, concurrent fetches
                     of it wait for that one; then a copy into the sandbox (a file too
                     big for the cache is moved there instead)
        then: chmod +x (executable) or extract (tar, zip, gz), members checked
    finally the sandbox's new files are chowned to the task's user (when the agent is root)
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import itertools
import lzma
import os
import pwd
import shutil
import stat
import tarfile
import threading
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TypeVar

import httpx
import structlog

from mesos_agent.containerizer.base import FetchError
from mesos_agent.fetch_rules import (
    ArchiveKind,
    CacheEntry,
    FetchCacheBook,
    FetchPlan,
    MemberCheck,
    MemberKind,
    Source,
    decompressed_name,
    permits,
    plan_fetch,
)
from protos import mesos_pb2

__all__ = ["UriFetcher"]

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("mesos_agent.fetcher")

T = TypeVar("T")

_THREADS = 8
_CHUNK = 1 << 16
_TIMEOUT = httpx.Timeout(60.0, connect=30.0)  # like Mesos' --fetcher_stall_timeout (60 s)


class _Problem(Exception):
    """What went wrong with one URI (the caller adds the URI)."""


class _Cancelled(Exception):
    """The fetch was cancelled while a thread worked on it."""


@dataclass(frozen=True, slots=True)
class _Owner:
    """The user a sandbox's files are given to, and whose permissions local files are read
    with."""

    uid: int
    gid: int
    groups: frozenset[int]


@dataclass(frozen=True, slots=True)
class _Outcome:
    """How a cached download ended, for the fetches that waited for it: `failure` says why
    it failed; neither set: cached, or abandoned (a waiter then tries itself)."""

    failure: str | None = None
    uncacheable: bool = False


class UriFetcher:
    """Fetches `CommandInfo.URI`s into sandboxes (see the `Fetcher` protocol), with a cache of
    at most `cache_size` bytes in `cache_dir`, shared by every container of the agent and
    emptied when the agent starts (as Mesos does)."""

    def __init__(self, cache_dir: Path, cache_size: int) -> None:
        self._cache_dir = cache_dir
        self._book = FetchCacheBook(cache_size)
        self._downloads: dict[tuple[str, str], asyncio.Future[_Outcome]] = {}
        self._serials = itertools.count(1)
        self._cache_emptied = False
        self._emptying = asyncio.Lock()
        self._threads = ThreadPoolExecutor(_THREADS, thread_name_prefix="fetcher")

    async def fetch(
        self, uris: Sequence[mesos_pb2.CommandInfo.URI], sandbox: Path, user: str
    ) -> None:
        try:
            owner = await self._run(_owner, user) if user and os.geteuid() == 0 else None
        except _Problem as exc:
            raise FetchError(f"Failed to fetch for user {user!r}: {exc}") from exc
        for uri in uris:
            try:
                await self._fetch_one(plan_fetch(uri), sandbox, user, owner)
            except (ValueError, _Problem) as exc:
                raise FetchError(f"Failed to fetch {uri.value!r}: {exc}") from exc
            log.info("fetched", uri=uri.value, sandbox=str(sandbox), cache=uri.cache)
        if owner is not None:
            try:
                await self._run(_chown_tree, sandbox, owner)
            except _Problem as exc:
                raise FetchError(f"Failed to give the fetched files to {user!r}: {exc}"
                                 ) from exc

    def cached(self) -> dict[str, int]:
        """The cached URIs (prefixed with "user:" when fetched for a user) and their sizes
        in bytes, least recently used first."""
        return {f"{user}:{uri}" if user else uri: entry.size
                for entry in self._book.entries() for user, uri in [entry.key]}

    async def _fetch_one(
        self, plan: FetchPlan, sandbox: Path, user: str, owner: _Owner | None
    ) -> None:
        target = sandbox / plan.destination
        if not plan.cache:
            await self._run(_download, plan.source, target, owner)
        else:
            entry = await self._cache_entry((user, plan.uri), plan.source, owner)
            if entry is None:  # too big for the cache, downloaded by another fetch
                await self._run(_download, plan.source, target, owner)
            elif isinstance(entry, Path):  # too big for the cache, downloaded by this fetch
                await self._run(_move, entry, target)
            else:
                try:
                    await self._run(_copy, self._cache_dir / entry.file_name, target, None)
                finally:
                    self._book.release(entry)
        await self._run(_finish, plan, target)

    async def _cache_entry(
        self, key: tuple[str, str], source: Source, owner: _Owner | None
    ) -> CacheEntry | Path | None:
        """The cache's entry for `key` (referenced: release it), downloaded unless cached or
        being downloaded by another fetch, which this one then waits for. When the content
        does not fit into the cache: the file this fetch downloaded (to be moved into place),
        or None when another fetch downloaded it (this one then fetches it directly)."""
        await self._prepare_cache()
        while True:
            entry = self._book.acquire(key)
            if entry is not None:
                return entry
            download = self._downloads.get(key)
            if download is None:
                break
            outcome = await asyncio.shield(download)
            if outcome.failure is not None:
                raise _Problem(outcome.failure)
            if outcome.uncacheable:
                return None
            # Cached now (acquired next), or abandoned: the downloading fetch was cancelled.
        done: asyncio.Future[_Outcome] = asyncio.get_running_loop().create_future()
        self._downloads[key] = done
        outcome = _Outcome()
        try:
            downloaded = await self._download_to_cache(key, source, owner)
            outcome = _Outcome(uncacheable=isinstance(downloaded, Path))
            return downloaded
        except _Problem as exc:
            outcome = _Outcome(failure=str(exc))
            raise
        finally:
            del self._downloads[key]
            done.set_result(outcome)

    async def _download_to_cache(
        self, key: tuple[str, str], source: Source, owner: _Owner | None
    ) -> CacheEntry | Path:
        """The new entry, or the downloaded file when it does not fit into the cache."""
        name = str(next(self._serials))
        partial = self._cache_dir / f"{name}.part"
        size = await self._run(_download, source, partial, owner)
        admitted = self._book.admit(key, name, size)
        if admitted is None:
            log.info("fetcher cache too small", uri=key[1], size=size,
                     capacity=self._book.capacity)
            return partial
        entry, evicted = admitted
        try:
            await self._run(_replace, partial, self._cache_dir / name,
                            [self._cache_dir / e.file_name for e in evicted])
        except BaseException:  # cancelled too: the file may not be in place
            self._book.discard(entry)
            raise
        return entry

    async def _prepare_cache(self) -> None:
        """Empty the cache directory once (what it holds belongs to an earlier agent)."""
        async with self._emptying:
            if not self._cache_emptied:
                await self._run(_reset_dir, self._cache_dir)
                self._cache_emptied = True

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        """`work(*args, cancelled)` in a worker thread; if this coroutine is cancelled the
        work is told to stop (it checks between chunks). OSError becomes a _Problem."""
        cancelled = threading.Event()
        future = asyncio.get_running_loop().run_in_executor(
            self._threads, _guarded, work, args, cancelled)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled.set()
            raise


def _guarded(work: Callable[..., T], args: tuple[object, ...], cancelled: threading.Event) -> T:
    try:
        return work(*args, cancelled)
    except OSError as exc:
        raise _Problem(_describe_os_error(exc)) from exc


def _describe_os_error(exc: OSError) -> str:
    if exc.filename is not None:
        return f"{exc.strerror or exc}: {exc.filename}"
    return exc.strerror or str(exc)


def _owner(user: str, cancelled: threading.Event) -> _Owner:
    try:
        entry = pwd.getpwnam(user)
    except KeyError as exc:
        raise _Problem(f"unknown user {user!r}") from exc
    return _Owner(entry.pw_uid, entry.pw_gid,
                  frozenset(os.getgrouplist(user, entry.pw_gid)))


def _download(source: Source, target: Path, reader: _Owner | None,
              cancelled: threading.Event) -> int:
    """Put `source`'s content at `target` (parents created); its size in bytes. A local
    file must be readable by `reader` (when given), as if it copied the file itself."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if source.path is not None:
        return _copy(Path(source.path), target, reader, cancelled)
    assert source.url is not None
    try:
        with httpx.Client(follow_redirects=True, timeout=_TIMEOUT) as client, \
                client.stream("GET", source.url) as response:
            if response.status_code >= 400:
                raise _Problem(f"HTTP {response.status_code} {response.reason_phrase}".strip())
            size = 0
            with _fresh(target) as out:
                for chunk in response.iter_bytes(_CHUNK):
                    if cancelled.is_set():
                        raise _Cancelled
                    out.write(chunk)
                    size += len(chunk)
            return size
    except httpx.HTTPError as exc:
        raise _Problem(f"{type(exc).__name__}: {exc}") from exc


def _copy(path: Path, target: Path, reader: _Owner | None,
          cancelled: threading.Event) -> int:
    """Copy the regular file at `path` to `target`; its size. With `reader`, only a file that
    user could read (mode bits of the file and its directories; ACLs are not consulted)."""
    real = Path(os.path.realpath(path))
    if reader is not None:
        for directory in reversed(real.parents):
            _check_permitted(os.stat(directory), reader, 1, path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Non-blocking: a FIFO must not hang the thread; it is refused below.
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise _Problem(f"not a regular file: {path}")
        if reader is not None:
            _check_permitted(info, reader, 4, path)
    except BaseException:
        os.close(fd)
        raise
    size = 0
    with os.fdopen(fd, "rb") as source, _fresh(target) as out:
        while chunk := source.read(_CHUNK):
            if cancelled.is_set():
                raise _Cancelled
            out.write(chunk)
            size += len(chunk)
    return size


def _check_permitted(info: os.stat_result, reader: _Owner, wanted: int, path: Path) -> None:
    if not permits(info.st_mode, info.st_uid, info.st_gid, reader.uid, reader.groups, wanted):
        raise _Problem(f"Permission denied for the task's user: {path}")


@contextlib.contextmanager
def _fresh(target: Path) -> Iterator[BinaryIO]:
    """`target` opened for writing (replacing a file there, never following a symlink);
    removed again when writing fails."""
    with contextlib.suppress(FileNotFoundError):
        if target.is_symlink() or not target.is_dir():
            target.unlink()
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
    except BaseException:
        with contextlib.suppress(OSError):
            target.unlink()
        raise


def _replace(partial: Path, final: Path, evicted: list[Path],
             cancelled: threading.Event) -> None:
    os.replace(partial, final)
    for path in evicted:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _move(path: Path, target: Path, cancelled: threading.Event) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        if target.is_symlink() or not target.is_dir():
            target.unlink()
    shutil.move(path, target)


def _reset_dir(directory: Path, cancelled: threading.Event) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)


def _finish(plan: FetchPlan, target: Path, cancelled: threading.Event) -> None:
    """Make the fetched file executable, or extract it."""
    if plan.executable:
        os.chmod(target, os.stat(target).st_mode | 0o111)
    elif plan.archive is ArchiveKind.TAR:
        _extract_tar(target, target.parent)
    elif plan.archive is ArchiveKind.ZIP:
        _extract_zip(target, target.parent)
    elif plan.archive is ArchiveKind.GZIP:
        _gunzip(target, cancelled)


def _extract_tar(archive: Path, into: Path) -> None:
    check = MemberCheck()
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                problem = check.problem(member.name, _tar_kind(member), member.linkname)
                if problem is not None:
                    raise _Problem(f"bad archive: {problem}")
            # The `data` filter checks again against the disk (symlinks already there).
            tar.extractall(into, members=members, filter="data")
    except (tarfile.TarError, EOFError, ValueError, zlib.error, lzma.LZMAError) as exc:
        raise _Problem(f"bad archive: {exc}") from exc


def _tar_kind(member: tarfile.TarInfo) -> MemberKind:
    if member.isdir():
        return MemberKind.DIRECTORY
    if member.issym():
        return MemberKind.SYMLINK
    if member.islnk():
        return MemberKind.HARDLINK
    if member.isfile():
        return MemberKind.FILE
    return MemberKind.SPECIAL


def _extract_zip(archive: Path, into: Path) -> None:
    check = MemberCheck()
    try:
        with zipfile.ZipFile(archive) as zipped:
            infos = zipped.infolist()
            for info in infos:
                # Symlinks in zips are extracted as files holding the link's target.
                kind = MemberKind.DIRECTORY if info.is_dir() else MemberKind.FILE
                problem = check.problem(info.filename, kind)
                if problem is not None:
                    raise _Problem(f"bad archive: {problem}")
            for info in infos:
                path = Path(zipped.extract(info, into))
                mode = info.external_attr >> 16
                if not info.is_dir() and stat.S_ISREG(mode) and mode & 0o111:
                    os.chmod(path, 0o755)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, zlib.error,
            lzma.LZMAError) as exc:
        raise _Problem(f"bad archive: {exc}") from exc


def _gunzip(archive: Path, cancelled: threading.Event) -> None:
    target = archive.with_name(decompressed_name(archive.name))
    try:
        with gzip.open(archive, "rb") as source, _fresh(target) as out:
            while chunk := source.read(_CHUNK):
                if cancelled.is_set():
                    raise _Cancelled
                out.write(chunk)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise _Problem(f"bad archive: {exc}") from exc
    archive.unlink()


def _chown_tree(root: Path, owner: _Owner, cancelled: threading.Event) -> None:
    """Give everything under `root` (symlinks themselves, never their targets) to `owner`."""
    os.lchown(root, owner.uid, owner.gid)
    for directory, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            os.lchown(os.path.join(directory, name), owner.uid, owner.gid)
