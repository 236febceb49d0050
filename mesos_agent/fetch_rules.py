"""The fetcher's decisions, free of I/O (the shell is `mesos_agent.fetcher`).

    CommandInfo.URI --plan_fetch--> FetchPlan (where from, which file in the sandbox, then what)
    archive members --MemberCheck--> refused when they would land outside the sandbox
    cached downloads --FetchCacheBook--> which entries to evict (least recently used first)
"""

from __future__ import annotations

import enum
import posixpath
from collections import OrderedDict
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from protos import mesos_pb2

__all__ = [
    "ArchiveKind",
    "CacheEntry",
    "FetchCacheBook",
    "FetchPlan",
    "MemberCheck",
    "MemberKind",
    "Source",
    "archive_kind",
    "decompressed_name",
    "permits",
    "plan_fetch",
    "safe_relative_path",
]


class ArchiveKind(enum.Enum):
    TAR = "tar"  # plain or compressed with gzip, bzip2 or xz
    ZIP = "zip"
    GZIP = "gz"  # one compressed file


_TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tbz", ".tar.xz", ".txz")


def archive_kind(name: str) -> ArchiveKind | None:
    """Which archive a file is, judged by its name as Mesos does; None when it is none."""
    lower = name.lower()
    if lower.endswith(_TAR_SUFFIXES):
        return ArchiveKind.TAR
    if lower.endswith(".zip"):
        return ArchiveKind.ZIP
    if lower.endswith(".gz") and len(lower) > len(".gz"):
        return ArchiveKind.GZIP
    return None


def decompressed_name(name: str) -> str:
    """The name a `.gz` file decompresses to (as gunzip names it)."""
    return name[: -len(".gz")]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a URI's content comes from: an HTTP(S) URL or a local file's absolute path."""

    url: str | None = None
    path: str | None = None


@dataclass(frozen=True, slots=True)
class FetchPlan:
    """What fetching one URI does: take `source`, store it as `destination` (relative to the
    sandbox), then make it executable or extract it (at most one of the two)."""

    uri: str
    source: Source
    destination: str
    executable: bool
    archive: ArchiveKind | None
    cache: bool


def plan_fetch(uri: mesos_pb2.CommandInfo.URI) -> FetchPlan:
    """The plan for `uri`; raises ValueError saying what is wrong with it."""
    source, name = _source(uri.value)
    destination = safe_relative_path(uri.output_file) if uri.output_file else name
    if destination is None:
        raise ValueError(f"output_file {uri.output_file!r} is not a path inside the sandbox")
    if not destination:
        raise ValueError("the URI names no file (set output_file)")
    # Mesos: an executable is never extracted.
    archive = archive_kind(destination) if uri.extract and not uri.executable else None
    return FetchPlan(uri.value, source, destination, uri.executable, archive, uri.cache)


def _source(value: str) -> tuple[Source, str]:
    """The source of a URI and the file name it gives (its path's last segment)."""
    if value.startswith("/"):
        return Source(path=posixpath.normpath(value)), posixpath.basename(value.rstrip("/"))
    parts = urlsplit(value)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        if not parts.hostname:
            raise ValueError("the URL names no host")
        return Source(url=value), posixpath.basename(unquote(parts.path))
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URIs must name a local file, not one on {parts.netloc!r}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError("file URIs need an absolute path")
        return Source(path=posixpath.normpath(path)), posixpath.basename(path.rstrip("/"))
    if not scheme:
        raise ValueError("a plain path must be absolute")
    raise ValueError(f"unsupported scheme {scheme!r} (http, https, file or an absolute path)")


def safe_relative_path(name: str) -> str | None:
    """`name` normalised, when it is a relative path that stays inside its base directory
    (no absolute path, no `..`); None otherwise. "" for the base directory itself."""
    if not name or name.startswith("/") or "\\" in name or "\0" in name:
        return None
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        return None
    return "/".join(parts)


class MemberKind(enum.Enum):
    DIRECTORY = "directory"
    FILE = "file"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    SPECIAL = "special"  # devices, FIFOs


class MemberCheck:
    """Judges an archive's members in order, refusing any that would write or point outside
    the directory it is extracted into: absolute names, `..`, links leading out, members
    written through a symlink of the archive, special files."""

    def __init__(self) -> None:
        self._symlinks: set[str] = set()

    def problem(self, name: str, kind: MemberKind, link_target: str = "") -> str | None:
        """Why the member `name` may not be extracted; None when it may."""
        path = safe_relative_path(name)
        if path is None:
            return f"member {name!r} escapes the sandbox"
        if kind is MemberKind.SPECIAL:
            return f"member {name!r} is a special file"
        if self._through_symlink(path):
            return f"member {name!r} is written through a symlink of the archive"
        if kind is MemberKind.HARDLINK:
            target = safe_relative_path(link_target)
            if not target or self._through_symlink(target) or target in self._symlinks:
                return f"hard link {name!r} points outside the sandbox ({link_target!r})"
        if kind is MemberKind.SYMLINK:
            if not self._symlink_stays_inside(path, link_target):
                return f"symlink {name!r} points outside the sandbox ({link_target!r})"
            self._symlinks.add(path)
        return None

    def _through_symlink(self, path: str) -> bool:
        """Whether `path` passes through (not ends at) a symlink seen earlier."""
        parts = path.split("/")
        return any("/".join(parts[:i]) in self._symlinks for i in range(1, len(parts)))

    def _symlink_stays_inside(self, path: str, target: str) -> bool:
        if not target or target.startswith("/"):
            return False
        depth = len(path.split("/")) - 1  # directories above the link, inside the base
        walked = path.split("/")[:-1]
        for part in target.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if depth == 0:
                    return False
                depth -= 1
                walked.pop()
            else:
                depth += 1
                walked.append(part)
            if "/".join(walked) in self._symlinks:
                return False  # resolving it would depend on another link: refused
        return True


def permits(mode: int, file_uid: int, file_gid: int, uid: int, gids: frozenset[int],
            wanted: int) -> bool:
    """Whether a user (`uid`, groups `gids`) has the `wanted` permission bits (4 read,
    2 write, 1 search/execute) on a file with `mode` owned by `file_uid`/`file_gid`."""
    if uid == 0:
        return True
    if uid == file_uid:
        granted = (mode >> 6) & 7
    elif file_gid in gids:
        granted = (mode >> 3) & 7
    else:
        granted = mode & 7
    return granted & wanted == wanted


@dataclass(slots=True)
class CacheEntry:
    """A cached download: `key` (user and URI) and the file in the cache directory."""

    key: tuple[str, str]
    file_name: str
    size: int
    references: int = 0


class FetchCacheBook:
    """The fetcher cache's entries and their total size, kept within `capacity` bytes by
    evicting the least recently used entries no fetch is copying from."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple[str, str], CacheEntry] = OrderedDict()  # LRU first

    @property
    def used(self) -> int:
        return sum(e.size for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def entries(self) -> list[CacheEntry]:
        """The entries, least recently used first."""
        return list(self._entries.values())

    def acquire(self, key: tuple[str, str]) -> CacheEntry | None:
        """The entry for `key`, now the most recently used and referenced (release it when
        done); None when it is not cached."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            entry.references += 1
        return entry

    def release(self, entry: CacheEntry) -> None:
        entry.references -= 1

    def discard(self, entry: CacheEntry) -> None:
        """Forget `entry` (its file is gone or was never complete)."""
        if self._entries.get(entry.key) is entry:
            del self._entries[entry.key]

    def admit(self, key: tuple[str, str], file_name: str, size: int
              ) -> tuple[CacheEntry, list[CacheEntry]] | None:
        """Add a downloaded file (referenced once, by its downloader) and evict what it takes
        to make room: the new entry and the evicted ones (whose files are to be deleted).
        None, evicting nothing, when it cannot fit even then."""
        if key in self._entries:
            raise ValueError(f"{key} is cached already")
        free = self.capacity - self.used
        evicted: list[CacheEntry] = []
        for entry in self._entries.values():
            if free >= size:
                break
            if entry.references == 0:
                evicted.append(entry)
                free += entry.size
        if free < size:
            return None
        for entry in evicted:
            del self._entries[entry.key]
        admitted = CacheEntry(key, file_name, size, references=1)
        self._entries[key] = admitted
        return admitted, evicted
