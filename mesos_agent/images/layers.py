"""Unpacking one image layer into a directory of its own, in overlayfs' format.

A layer is a tar stream (gzip-compressed or not) of the changes to the layers below it. Its
uncompressed bytes must hash to the layer's `diff_id` (the image configuration names it), or
the layer is refused. Whiteouts become what overlayfs reads in a lower layer: `.wh.NAME` a
character device 0/0 named NAME, `.wh..wh..opq` the `trusted.overlay.opaque` attribute on its
directory; the copy backend reads the same (`rootfs`). Members that would land outside the
layer's directory are refused: absolute or `..` paths, paths through a symbolic link, hard
links to outside. Device nodes other than whiteouts are skipped (the runtime makes /dev).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from pathlib import Path
from typing import Protocol

from mesos_agent.images.manifest import ImageError

__all__ = ["OPAQUE_XATTR", "WHITEOUT_PREFIX", "is_whiteout", "unpack_layer"]

WHITEOUT_PREFIX = ".wh."
_OPAQUE_MARKER = ".wh..wh..opq"
OPAQUE_XATTR = "trusted.overlay.opaque"
_CHUNK = 1 << 20


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, stream: _Readable) -> None:
        self._stream = stream
        self.hash = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(size)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(_CHUNK):
            pass


def is_whiteout(path: Path) -> bool:
    """Whether `path` (not followed) is an overlay whiteout: a character device 0/0."""
    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return False
    return stat.S_ISCHR(found.st_mode) and found.st_rdev == 0


def unpack_layer(blob: Path, compression: str, diff_id: str, target: Path) -> None:
    """Unpack the layer `blob` into the empty directory `target`; raises ImageError when its
    content does not hash to `diff_id` or a member is refused."""
    with open(blob, "rb") as raw:
        stream: _Readable = gzip.GzipFile(fileobj=raw) if compression == "gzip" else raw
        reader = _HashingReader(stream)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as archive:  # type: ignore[call-overload]
                for member in archive:
                    _unpack_member(archive, member, target)
            reader.drain()  # the tar's trailing blocks are part of the digest
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as exc:
            raise ImageError(f"layer {diff_id} cannot be unpacked: {exc}") from exc
    actual = "sha256:" + reader.hash.hexdigest()
    if actual != diff_id:
        raise ImageError(f"layer content does not match its diff_id: expected {diff_id}, "
                         f"got {actual}")


def _inside(target: Path, name: str) -> Path:
    """Where member `name` goes: refused if absolute, with `..`, or through a symlink."""
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts:
        raise ImageError(f"layer member {name!r} escapes the image's root")
    if not parts:
        return target
    here = target
    for part in parts[:-1]:
        here = here / part
        if here.is_symlink():
            raise ImageError(f"layer member {name!r} goes through the symbolic link "
                             f"{here.relative_to(target)}")
    return here / parts[-1]


def _unpack_member(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    path = _inside(target, member.name)
    if path == target:
        return
    base = path.name
    if base == _OPAQUE_MARKER:
        path.parent.mkdir(parents=True, exist_ok=True)
        os.setxattr(path.parent, OPAQUE_XATTR, b"y")
        return
    if base.startswith(WHITEOUT_PREFIX):
        hidden = path.with_name(base[len(WHITEOUT_PREFIX):])
        hidden.parent.mkdir(parents=True, exist_ok=True)
        _remove(hidden)
        os.mknod(hidden, 0o600 | stat.S_IFCHR, os.makedev(0, 0))
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    if member.isdir():
        if not path.is_dir() or path.is_symlink():
            _remove(path)
            path.mkdir()
    elif member.isfile():
        _remove(path)
        source = archive.extractfile(member)
        assert source is not None
        with open(path, "wb") as out:
            while chunk := source.read(_CHUNK):
                out.write(chunk)
    elif member.issym():
        _remove(path)
        os.symlink(member.linkname, path)
    elif member.islnk():
        linked = _inside(target, member.linkname)
        if linked.is_symlink() or not linked.exists():
            raise ImageError(f"layer member {member.name!r} is a hard link to "
                             f"{member.linkname!r}, which is not a file of this layer")
        _remove(path)
        os.link(linked, path)
        return  # the same inode as its target: its owner and mode are the target's
    elif member.isfifo():
        _remove(path)
        os.mkfifo(path)
    else:
        return  # device nodes: the runtime provides /dev
    os.lchown(path, member.uid, member.gid)
    if not member.issym():
        os.chmod(path, member.mode & 0o7777)
        os.utime(path, (member.mtime, member.mtime))


def _remove(path: Path) -> None:
    """Remove whatever `path` is (a later member replaces an earlier one of the same name)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
