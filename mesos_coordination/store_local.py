"""A `Store` in a directory, for the embedded default without ZooKeeper (`.store`).

Layout of the directory (the master uses `<work_dir>/registry/`):

    lock      flock'ed by the process that owns the store (one owner per directory)
    snapshot  one record: every entry at the time of the last compaction
    log       records appended since, one per committed batch

A record is `length (4 bytes, big endian) | crc32 (4 bytes) | StoredBatch`. A commit appends one
record and fsyncs the log before it returns, so a batch is durable exactly when its callbacks
run. A torn record at the end of the log (a crash during the append) was never acknowledged and
is cut off on recovery; a damaged record anywhere else is corruption and refused. Compaction
writes a new snapshot through a temp file (fsync, rename, fsync of the directory) and then empties
the log; replaying a log whose batches are already in the snapshot is harmless, because every
entry in it is an absolute put or delete.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.message import DecodeError

from mesos_coordination.store import Mutation, StoreError
from protos import store_pb2

_HEADER = struct.Struct(">II")
# Compact once the log is this large and larger than the snapshot.
COMPACT_AFTER_BYTES = 4 * 1024 * 1024


def encode_record(mutations: Sequence[Mutation]) -> bytes:
    """One log record holding `mutations`."""
    batch = store_pb2.StoredBatch(
        entries=[
            store_pb2.StoredBatch.Entry(
                key=m.key, value=m.value or b"", deleted=m.value is None
            )
            for m in mutations
        ]
    )
    payload = batch.SerializeToString()
    return _HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def decode_records(data: bytes, *, name: str) -> tuple[list[list[Mutation]], int]:
    """The batches in `data` and the length of its intact prefix.

    A damaged or incomplete record is accepted only as the last one (a torn append); anywhere
    else it raises StoreError.
    """
    batches: list[list[Mutation]] = []
    offset = 0
    while offset < len(data):
        start = offset + _HEADER.size
        if start > len(data):
            return batches, offset
        length, crc = _HEADER.unpack_from(data, offset)
        end = start + length
        payload = data[start:end]
        if end > len(data) or zlib.crc32(payload) != crc:
            if end >= len(data):
                return batches, offset
            raise StoreError(f"the store {name} is corrupt at byte {offset}")
        try:
            batch = store_pb2.StoredBatch.FromString(payload)
        except DecodeError as exc:
            raise StoreError(f"the store {name} is corrupt at byte {offset}: {exc}") from exc
        batches.append(
            [Mutation(e.key, None if e.deleted else e.value) for e in batch.entries]
        )
        offset = end
    return batches, offset


class LocalStore:
    """A `Store` in files under `directory`; see the module docstring."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._entries: dict[str, bytes] = {}
        self._lock_fd: int | None = None
        self._log_fd: int | None = None
        self._log_size = 0
        self._snapshot_size = 0

    async def recover(self) -> dict[str, bytes]:
        return await asyncio.to_thread(self._recover)

    async def commit(self, mutations: Sequence[Mutation]) -> None:
        await asyncio.to_thread(self._commit, list(mutations))

    async def close(self) -> None:
        for fd in (self._log_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._log_fd = self._lock_fd = None

    def _recover(self) -> dict[str, bytes]:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise StoreError(
                    f"another process holds the store in {self.directory}"
                ) from None
            entries: dict[str, bytes] = {}
            snapshot = self._read("snapshot")
            batches, intact = decode_records(snapshot, name="snapshot")
            if intact != len(snapshot):
                raise StoreError(f"the store snapshot in {self.directory} is truncated")
            self._snapshot_size = len(snapshot)
            log = self._read("log")
            log_batches, intact = decode_records(log, name="log")
            for batch in [*batches, *log_batches]:
                _apply(entries, batch)
            self._log_fd = os.open(self.directory / "log", os.O_WRONLY | os.O_CREAT, 0o644)
            if intact != len(log):
                os.ftruncate(self._log_fd, intact)  # a torn append: never acknowledged
                os.fsync(self._log_fd)
            os.lseek(self._log_fd, intact, os.SEEK_SET)
            self._log_size = intact
        except OSError as exc:
            raise StoreError(f"cannot read the store in {self.directory}: {exc}") from exc
        self._entries = entries
        return dict(entries)

    def _read(self, name: str) -> bytes:
        try:
            return (self.directory / name).read_bytes()
        except FileNotFoundError:
            return b""

    def _commit(self, mutations: list[Mutation]) -> None:
        if self._log_fd is None:
            raise StoreError("the store was not recovered (or is closed)")
        record = encode_record(mutations)
        try:
            _write_all(self._log_fd, record)
            os.fsync(self._log_fd)
        except OSError as exc:
            raise StoreError(f"cannot write the store log: {exc}") from exc
        self._log_size += len(record)
        _apply(self._entries, mutations)
        if self._log_size >= COMPACT_AFTER_BYTES and self._log_size > self._snapshot_size:
            self._compact()

    def _compact(self) -> None:
        assert self._log_fd is not None
        snapshot = encode_record([Mutation(k, v) for k, v in self._entries.items()])
        temp = self.directory / "snapshot.tmp"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, snapshot)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, self.directory / "snapshot")
            directory = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
            os.ftruncate(self._log_fd, 0)
            os.lseek(self._log_fd, 0, os.SEEK_SET)
            os.fsync(self._log_fd)
        except OSError as exc:
            raise StoreError(f"cannot compact the store: {exc}") from exc
        self._snapshot_size = len(snapshot)
        self._log_size = 0


def _apply(entries: dict[str, bytes], mutations: Sequence[Mutation]) -> None:
    for mutation in mutations:
        if mutation.value is None:
            entries.pop(mutation.key, None)
        else:
            entries[mutation.key] = mutation.value



def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
