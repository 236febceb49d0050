"""Group commit of the agent's checkpoint files (ADRs 0011 and 0012).

The event loop never waits for the disk. Code on the loop requests file operations (append a
record, atomically replace a file, remove a file or tree) and gets a *ticket* at once: the number
of the batch the operation will be part of. One syncer task takes everything requested since
the previous batch and applies it in a worker thread, in request order, in four phases::

    loop:    append/replace/remove -> ticket N          (no I/O; only queues the operation)
    syncer:  take batch N --thread--> 1. write: appends (a file's consecutive ones in one
                                         write), temp files of replacements, removals
                                      2. fsync every file written (one pass over the batch)
                                      3. rename the temps over their targets
                                      4. fsync each directory whose entries changed, once
                                      (on Linux >= 5.8, in a batch that would need 8
                                      fsyncs or more: 2 and 4 are one syncfs(2) each)
             batch N durable -> waiters of tickets <= N resume, `on_durable(N)` runs

Only one batch is in flight; the next one collects meanwhile, so the number of operations per
batch grows with the load (up to a cap, so that a burst is made durable in a pipeline rather
than all at once) instead of the number of sync rounds.

The guarantee, exactly:

* Order: operations take effect in request order; batches become durable in ticket order.
* Durable: once `wait(N)` returns (or `when_durable(N, ...)` / `on_durable(N)` runs), every
  append and replacement with a ticket <= N is on stable storage, directory entries included
  (new files, new directories, renames). A replaced file is whole, old or new, at any crash.
* Acting on a write: the agent lets nothing leave on the strength of a write before its batch
  is durable. A status update is forwarded to the master only then (`StatusUpdateManager`
  holds it back until `synced`), a custom executor's update is ACKNOWLEDGED to the executor
  only then, a command task is forked only once its task checkpoint and TASK_STARTING are
  durable, an executor is launched and sent a task only once their checkpoints are.
* Crash: batches not yet durable may be lost in part or whole (any subset of their operations;
  an append may be torn at its tail, which the log reader drops). Nothing in them has been
  sent, acknowledged or launched, with one exception: the container record of a command task
  (appended with its TASK_RUNNING after the fork). Recovery then knows the task but not its
  process and reports it TASK_FAILED; a process that was forked is killed as an orphan
  (`mesos_agent.orphans`).
  The updates lost are regenerated: a custom executor re-sends updates it has not seen
  ACKNOWLEDGED; recovery re-reports a command task (TASK_RUNNING again if its container record
  survived, a terminal update otherwise).
* Not made durable at all (appended or removed without fsync): acknowledgement records and
  removals. Losing one only sends an update once more, which at-least-once delivery allows.
* Out of space: a write, file or directory creation or rename of a batch that fails with
  ENOSPC or EDQUOT (the work directory's disk is full) is undone: appended files are cut back to
  their size before the batch (files the batch created are removed) and temp files are removed,
  so the files are as the previous batches left them. The batch stays in flight and is tried
  again after a backoff (`retry_interval`, doubling up to `max_retry_interval`) until it fits;
  later batches queue behind it. Meanwhile nothing waiting for it proceeds (no update is sent,
  no task is forked), and the agent keeps serving; once space is freed (sandbox GC under
  `--gc_disk_headroom`, or the operator), everything proceeds in order. Records that were
  fsynced before the failure (a rename failed) and survive a crash during the backoff are
  the records of a batch that was durable but not yet reported, which recovery already handles.
* Failure: if a write, fsync or rename of a batch fails for any other reason (an fsync error
  leaves the page cache in an unknown state, so it is never retried), the batch and every
  later one are never reported durable: waiters get `DurabilityError`, `run()` raises it and
  the agent stops (as Mesos aborts when a checkpoint fails). Its tasks keep running; a restart
  recovers from what is durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import platform
import shutil
import sys
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import structlog

log: structlog.typing.FilteringBoundLogger = structlog.get_logger("mesos_agent")


@dataclass(frozen=True, slots=True)
class Append:
    """Append `data` to `path` (created with its parents if missing); fsynced unless not `sync`."""

    path: Path
    data: bytes
    sync: bool = True


@dataclass(frozen=True, slots=True)
class Replace:
    """Replace `path` with `data` atomically (temp file, fsync, rename, directory fsync);
    appends to `path` requested after it add to `data`, those before it are superseded."""

    path: Path
    data: bytes


@dataclass(frozen=True, slots=True)
class Remove:
    """Remove the file or directory tree `path` (not made durable)."""

    path: Path


FileOp = Append | Replace | Remove


class DurabilityError(OSError):
    """A batch of checkpoint writes could not be made durable."""


class OutOfSpace(OSError):
    """A batch did not fit on the disk (ENOSPC, EDQUOT) and was undone: it may be tried again."""


_OUT_OF_SPACE = frozenset({errno.ENOSPC, errno.EDQUOT})


# A batch holds at most this many operations. A batch costs about one fsync (or syncfs),
# whatever its size: task records are appends to one log per framework. With 256 a burst of
# 1,000 tasks was 16 batches made durable one after the other (their arrivals and
# TASK_STARTING, then their containers and TASK_RUNNING), and at ~0.2 s per fsync of a busy
# disk that, not the forks, paced the launches (docs/benchmarks.md, issue 22).
MAX_BATCH = 4096


class CommitQueue:
    """The bookkeeping of group commit: tickets, batches, durability callbacks (pure, no I/O).

    Ticket N names batch N. Operations added now go into the batch being collected, which is
    closed when it holds `max_batch` operations (so that the first of a burst become durable
    without waiting for the whole burst) or when `take()` hands it out; `take()` hands out the
    oldest closed batch, only when none is in flight; `synced(N)` or `failed(N, error)` reports
    its fate.
    """

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be positive")
        self._max_batch = max_batch
        self._closed: deque[tuple[int, list[FileOp]]] = deque()
        self._ops: list[FileOp] = []
        self._collecting = 1
        self._durable = 0
        self._in_flight: int | None = None
        self._error: DurabilityError | None = None
        self._callbacks: dict[int, list[Callable[[], None]]] = {}

    @property
    def next_ticket(self) -> int:
        """The ticket an operation added now gets."""
        return self._collecting + (len(self._ops) >= self._max_batch)

    @property
    def last_ticket(self) -> int:
        """The ticket that covers every operation added so far."""
        return self._collecting if self._ops else self._collecting - 1

    @property
    def durable(self) -> int:
        """Every batch with a ticket up to this one is durable."""
        return self._durable

    @property
    def error(self) -> DurabilityError | None:
        """Why a batch failed; once set, nothing is accepted or made durable any more."""
        return self._error

    def add(self, op: FileOp) -> int:
        """Queue `op` in the batch being collected; returns its ticket."""
        if self._error is not None:
            raise self._error
        if len(self._ops) >= self._max_batch:
            self._closed.append((self._collecting, self._ops))
            self._ops = []
            self._collecting += 1
        self._ops.append(op)
        return self._collecting

    def take(self) -> tuple[int, list[FileOp]] | None:
        """Close the batch being collected and hand it out; None if empty or one is in flight."""
        if self._in_flight is not None or self._error is not None:
            return None
        if self._closed:
            ticket, ops = self._closed.popleft()
        elif self._ops:
            ticket, ops = self._collecting, self._ops
            self._ops = []
            self._collecting += 1
        else:
            return None
        self._in_flight = ticket
        return ticket, ops

    def is_durable(self, ticket: int) -> bool:
        return ticket <= self._durable

    def when_durable(self, ticket: int, callback: Callable[[], None]) -> None:
        """Call `callback` once batch `ticket` is durable (now, if it already is); never if a
        batch fails first."""
        if ticket <= self._durable:
            callback()
        elif self._error is None:
            self._callbacks.setdefault(ticket, []).append(callback)

    def synced(self, ticket: int) -> list[Callable[[], None]]:
        """Batch `ticket` is durable; returns the callbacks now due, in registration order."""
        if ticket != self._in_flight:
            raise ValueError(f"batch {ticket} is not in flight")
        self._in_flight = None
        self._durable = ticket
        due = sorted(t for t in self._callbacks if t <= ticket)
        return [callback for t in due for callback in self._callbacks.pop(t)]

    def failed(self, ticket: int, error: DurabilityError) -> None:
        """Batch `ticket` failed: it and every later batch stay not durable forever."""
        if ticket != self._in_flight:
            raise ValueError(f"batch {ticket} is not in flight")
        self._in_flight = None
        self._error = error
        self._callbacks.clear()
        self._closed.clear()
        self._ops.clear()


def _load_syncfs() -> Callable[[int], None] | None:
    """syncfs(2) from libc on Linux >= 5.8 (before 5.8 it did not report writeback errors),
    else None."""
    if sys.platform != "linux":
        return None
    try:
        major, minor = (int(part) for part in platform.release().split(".")[:2])
        function = ctypes.CDLL(None, use_errno=True).syncfs
    except (ValueError, OSError, AttributeError):
        return None
    if (major, minor) < (5, 8):
        return None
    function.argtypes = [ctypes.c_int]
    function.restype = ctypes.c_int

    def syncfs(fd: int) -> None:
        if function(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"syncfs: {os.strerror(errno)}")

    return syncfs


# Where the kernel has it, one syncfs of the file system replaces the fsyncs of a batch that
# would need at least SYNCFS_FROM of them: with a few hundred tasks per batch that is hundreds
# of journal commits fewer (the disk, not the CPU, bounded the agent's launch rate). A syncfs
# also writes back whatever else is dirty on that file system (task output included), so a
# small batch, the usual one when few tasks start or end, keeps its per-file fsyncs.
SYNCFS = _load_syncfs()
SYNCFS_FROM = 8


def apply_batch(
    ops: Sequence[FileOp], syncfs: Callable[[int], None] | None = SYNCFS,
    syncfs_from: int = SYNCFS_FROM,
) -> None:
    """Apply `ops` in order and make them durable (blocking; runs in the syncer's thread).

    With `syncfs` and a batch that would need at least `syncfs_from` fsyncs, phases 2 and 4
    are one syncfs each (the second only when something was renamed); otherwise every written
    file and changed directory is fsynced. Raises OutOfSpace, with the batch undone, when a
    write, creation or rename did not fit on the disk; other errors leave it as it is."""
    files: dict[Path, int] = {}  # written files -> open descriptor
    synced: set[Path] = set()  # files among them that must be fsynced
    renames: dict[Path, Path] = {}  # target -> temp, in request order
    directories: set[Path] = set()  # directories whose entries changed
    sizes: dict[Path, int | None] = {}  # appended files -> size before (None: made by the batch)
    renamed: set[Path] = set()  # targets replaced so far
    syncing = False  # an fsync's error is never undone (the page cache's state is unknown)
    try:
        for op in coalesce(ops):
            if isinstance(op, Append):
                path = renames.get(op.path, op.path)  # replaced earlier in the batch: its temp
                fd = files.get(path)
                if fd is None:
                    fd = files[path] = _open_append(path, directories, sizes)
                _write_all(fd, op.data)
                if op.sync:
                    synced.add(path)
            elif isinstance(op, Replace):
                temp = op.path.with_name(f".{op.path.name}.tmp")
                old = files.pop(temp, None)
                if old is not None:
                    os.close(old)
                fd = files[temp] = _open_temp(temp, directories)
                _write_all(fd, op.data)
                synced.add(temp)
                renames.pop(op.path, None)
                renames[op.path] = temp
            else:
                _forget_under(op.path, files, synced, renames, directories)
                for path in sizes:
                    if path.is_relative_to(op.path):
                        sizes[path] = None  # gone: whatever the batch writes there is its own
                if op.path.is_dir() and not op.path.is_symlink():
                    shutil.rmtree(op.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(op.path)
        fsyncs = len(synced) + len(directories | {target.parent for target in renames})
        if syncfs is not None and fsyncs >= syncfs_from:
            if files and (synced or directories):
                syncing = True
                syncfs(next(iter(files.values())))
                syncing = False
            for target, temp in renames.items():
                os.replace(temp, target)
                renamed.add(target)
            if renames:
                syncing = True
                syncfs(files[next(iter(renames.values()))])
            return
        syncing = True
        for path in synced:
            os.fsync(files[path])
        syncing = False
        for target, temp in renames.items():
            os.replace(temp, target)
            renamed.add(target)
            directories.add(target.parent)
        syncing = True
        for directory in sorted(directories):
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
    except OSError as exc:
        if syncing or exc.errno not in _OUT_OF_SPACE:
            raise
        _undo(sizes, renames, renamed)
        raise OutOfSpace(exc.errno, f"{exc.strerror} (writing {exc.filename})") from exc
    finally:
        for fd in files.values():
            os.close(fd)


def coalesce(ops: Sequence[FileOp]) -> list[FileOp]:
    """`ops` with each run of consecutive appends to one file made one append (fsynced if any
    of them was): the same bytes in the same order, in one write. A burst's records are
    hundreds of appends to one task log, and every write is a system call that lets go of
    the GIL, which the syncer thread then waits to take back from a busy loop."""
    merged: list[FileOp] = []
    run: list[Append] = []  # consecutive appends to one file, not merged yet

    def end_run() -> None:
        if len(run) == 1:
            merged.append(run[0])
        elif run:
            merged.append(Append(run[0].path, b"".join(op.data for op in run),
                                 any(op.sync for op in run)))
        run.clear()

    for op in ops:
        if not isinstance(op, Append):
            end_run()
            merged.append(op)
            continue
        if run and run[0].path != op.path:
            end_run()
        run.append(op)
    end_run()
    return merged


def _write_all(fd: int, data: bytes) -> None:
    """Write all of `data` (a write cut short by a full disk raises on the next call)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _undo(sizes: dict[Path, int | None], renames: dict[Path, Path], renamed: set[Path]) -> None:
    """Take back what a batch that did not fit wrote: appended files cut back to their size
    before it (removed when it made them), temp files not renamed yet removed. A target
    already replaced keeps its new, whole content (the retry replaces it again)."""
    for path, size in sizes.items():
        if path in renamed:
            continue
        with contextlib.suppress(FileNotFoundError):
            if size is None:
                os.unlink(path)
            else:
                os.truncate(path, size)
    for target, temp in renames.items():
        if target not in renamed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


# Checkpoints hold task and executor infos (their environments) and executor tokens: the
# agent's alone.
_FILE_MODE = 0o600


def _open_append(path: Path, directories: set[Path], sizes: dict[Path, int | None]) -> int:
    """Open `path` for appending (made with its parents if missing); its size before the
    batch goes into `sizes` the first time."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        _make_dirs(path.parent, directories)
        directories.add(path.parent)
        sizes.setdefault(path, None)
        return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, _FILE_MODE)
    sizes.setdefault(path, os.fstat(fd).st_size)
    return fd


def _open_temp(temp: Path, directories: set[Path]) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    try:
        return os.open(temp, flags, _FILE_MODE)
    except FileNotFoundError:
        _make_dirs(temp.parent, directories)
        return os.open(temp, flags, _FILE_MODE)


def _make_dirs(directory: Path, directories: set[Path]) -> None:
    """Create `directory` and missing parents; each new one's parent needs an fsync."""
    try:
        os.mkdir(directory)
    except FileExistsError:
        return
    except FileNotFoundError:
        _make_dirs(directory.parent, directories)
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory)
    directories.add(directory.parent)


def _forget_under(
    root: Path, files: dict[Path, int], synced: set[Path], renames: dict[Path, Path],
    directories: set[Path],
) -> None:
    """Drop what this batch wrote at or under `root`, which is about to be removed."""
    doomed = [p for p in files if p.is_relative_to(root)]
    for target in [t for t in renames if t.is_relative_to(root)]:
        temp = renames.pop(target)
        if temp not in doomed:
            doomed.append(temp)
    for path in doomed:
        os.close(files.pop(path))
        synced.discard(path)
        if not path.is_relative_to(root):  # a replacement's temp file next to `root`
            os.unlink(path)
    directories.difference_update([d for d in directories if d.is_relative_to(root)])


class GroupCommitter:
    """Queues file operations from the loop and makes them durable in batches (see module doc).

    `run()` is the syncer; its owner awaits it. Everything else is called from the loop.
    """

    def __init__(
        self,
        *,
        apply: Callable[[Sequence[FileOp]], None] = apply_batch,
        on_durable: Callable[[int], None] | None = None,
        max_batch: int = MAX_BATCH,
        retry_interval: float = 0.5,
        max_retry_interval: float = 10.0,
    ) -> None:
        self._queue = CommitQueue(max_batch)
        self._apply = apply
        self._retry_interval = retry_interval
        self._max_retry_interval = max_retry_interval
        self._out_of_space: OutOfSpace | None = None
        self._on_durable = on_durable
        self._wake = asyncio.Event()
        self._waiters: set[asyncio.Future[None]] = set()

    @property
    def next_ticket(self) -> int:
        """The ticket an operation requested now gets."""
        return self._queue.next_ticket

    @property
    def last_ticket(self) -> int:
        """The ticket covering every operation requested so far."""
        return self._queue.last_ticket

    def is_durable(self, ticket: int) -> bool:
        return self._queue.is_durable(ticket)

    def append(self, path: Path, data: bytes, *, sync: bool = True) -> int:
        return self._add(Append(path, data, sync))

    def replace(self, path: Path, data: bytes) -> int:
        return self._add(Replace(path, data))

    def remove(self, path: Path) -> int:
        return self._add(Remove(path))

    def _add(self, op: FileOp) -> int:
        ticket = self._queue.add(op)
        self._wake.set()
        return ticket

    def when_durable(self, ticket: int, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop once batch `ticket` is durable (never if one fails)."""
        self._queue.when_durable(ticket, callback)

    async def wait(self, ticket: int) -> None:
        """Return once batch `ticket` is durable; raises DurabilityError if a batch failed."""
        if self._queue.is_durable(ticket):
            return
        if self._queue.error is not None:
            raise self._queue.error
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def release() -> None:
            if not done.done():
                done.set_result(None)

        self._queue.when_durable(ticket, release)
        self._waiters.add(done)
        try:
            await done
        finally:
            self._waiters.discard(done)

    @property
    def out_of_space(self) -> OutOfSpace | None:
        """Why the batch in flight does not fit on the disk now (None when nothing waits)."""
        return self._out_of_space

    async def run(self) -> None:
        """Commit batches until cancelled; on cancellation, commit what was requested first.

        Batches are applied by a thread of their own, so that other blocking work handed to
        the loop's default executor never delays a sync. A batch that does not fit on the disk
        is tried again (see the module doc).
        """
        with ThreadPoolExecutor(1, thread_name_prefix="checkpoint-sync") as thread:
            try:
                while True:
                    await self._wake.wait()
                    self._wake.clear()
                    while (batch := self._queue.take()) is not None:
                        await self._commit(thread, *batch)
            except asyncio.CancelledError:
                while (batch := self._queue.take()) is not None:
                    self._finish(batch[0], self._attempt(batch[1]))
                raise

    async def _commit(self, thread: ThreadPoolExecutor, ticket: int, ops: list[FileOp]) -> None:
        delay = self._retry_interval
        while True:
            attempt = asyncio.get_running_loop().run_in_executor(thread, self._attempt, ops)
            try:
                error = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                self._finish(ticket, await attempt)  # the thread cannot be stopped: let it end
                raise
            if not isinstance(error, OutOfSpace):
                if self._out_of_space is not None:
                    log.info("checkpoints fit on the disk again", batch=ticket)
                    self._out_of_space = None
                self._finish(ticket, error)
                return
            self._out_of_space = error
            log.warning("a checkpoint batch does not fit on the disk; it was undone and will be "
                        "tried again (nothing waiting for it proceeds meanwhile)",
                        batch=ticket, operations=len(ops), error=str(error), retry_in=delay)
            try:
                await asyncio.sleep(delay)
            except asyncio.CancelledError:
                self._finish(ticket, self._attempt(ops))  # one last try before stopping
                raise
            delay = min(2 * delay, self._max_retry_interval)

    def _attempt(self, ops: Sequence[FileOp]) -> OSError | None:
        try:
            self._apply(ops)
        except OSError as exc:
            return exc
        return None

    def _finish(self, ticket: int, error: OSError | None) -> None:
        if error is not None:
            failure = DurabilityError(f"checkpoint batch {ticket} could not be made durable: "
                                      f"{error}")
            failure.__cause__ = error
            self._queue.failed(ticket, failure)
            for waiter in self._waiters:
                if not waiter.done():
                    waiter.set_exception(failure)
            if isinstance(error, OutOfSpace):
                return  # stopping anyway: these batches were never reported, so nothing is lost
            raise failure
        callbacks = self._queue.synced(ticket)
        if self._on_durable is not None:
            self._on_durable(ticket)
        for callback in callbacks:
            callback()
