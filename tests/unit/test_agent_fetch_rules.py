"""The fetcher's pure decisions: file names from URIs, archive kinds, member safety, the
cache's LRU eviction."""

from __future__ import annotations

import pytest

from mesos_agent.fetch_rules import (
    ArchiveKind,
    FetchCacheBook,
    MemberCheck,
    MemberKind,
    Source,
    archive_kind,
    decompressed_name,
    permits,
    plan_fetch,
    safe_relative_path,
)
from protos import mesos_pb2

URI = mesos_pb2.CommandInfo.URI


@pytest.mark.parametrize(
    ("value", "source", "destination"),
    [
        ("http://h:8080/a/b/app.tar.gz", Source(url="http://h:8080/a/b/app.tar.gz"),
         "app.tar.gz"),
        ("https://h/x/run%20me.sh?token=1#top", Source(url="https://h/x/run%20me.sh?token=1#top"),
         "run me.sh"),
        ("file:///opt/data/in.txt", Source(path="/opt/data/in.txt"), "in.txt"),
        ("file://localhost/opt/a%20b", Source(path="/opt/a b"), "a b"),
        ("/opt/data//in.txt", Source(path="/opt/data/in.txt"), "in.txt"),
    ],
    ids=["http", "https-quoted-query", "file", "file-localhost", "plain-path"],
)
def test_plan_names_the_file_after_the_uri(value: str, source: Source, destination: str) -> None:
    plan = plan_fetch(URI(value=value))
    assert (plan.source, plan.destination) == (source, destination)


@pytest.mark.parametrize(
    ("value", "output_file", "complaint"),
    [
        ("ftp://h/x", "", "unsupported scheme 'ftp'"),
        ("relative/path", "", "must be absolute"),
        ("file://otherhost/x", "", "local file"),
        ("http:///x", "", "no host"),
        ("http://h/", "", "names no file"),
        ("http://h/x", "../x", "not a path inside the sandbox"),
        ("http://h/x", "/etc/passwd", "not a path inside the sandbox"),
        ("http://h/x", "a/../../x", "not a path inside the sandbox"),
    ],
)
def test_plan_refuses_what_it_cannot_fetch(value: str, output_file: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        plan_fetch(URI(value=value, output_file=output_file))


def test_output_file_names_the_file_and_decides_the_archive_kind() -> None:
    plan = plan_fetch(URI(value="http://h/download?id=3", output_file="./lib/app.tgz",
                          extract=True))
    assert (plan.destination, plan.archive) == ("lib/app.tgz", ArchiveKind.TAR)


@pytest.mark.parametrize(
    ("extract", "executable", "archive"),
    [(True, False, ArchiveKind.ZIP), (False, False, None), (True, True, None)],
    ids=["extract", "no-extract", "executable-wins"],
)
def test_extract_unless_executable(extract: bool, executable: bool,
                                   archive: ArchiveKind | None) -> None:
    plan = plan_fetch(URI(value="http://h/a.zip", extract=extract, executable=executable))
    assert (plan.archive, plan.executable) == (archive, executable)


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.tar", ArchiveKind.TAR), ("a.tar.gz", ArchiveKind.TAR), ("A.TGZ", ArchiveKind.TAR),
     ("a.tar.bz2", ArchiveKind.TAR), ("a.tbz2", ArchiveKind.TAR), ("a.tar.xz", ArchiveKind.TAR),
     ("a.txz", ArchiveKind.TAR), ("a.zip", ArchiveKind.ZIP), ("data.csv.gz", ArchiveKind.GZIP),
     (".gz", None), ("a.txt", None), ("gz", None), ("a.tar.gz.sig", None)],
)
def test_archive_kind_by_name(name: str, kind: ArchiveKind | None) -> None:
    assert archive_kind(name) is kind


def test_gz_decompresses_to_the_name_without_the_suffix() -> None:
    assert decompressed_name("data.csv.gz") == "data.csv"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("a/b", "a/b"), ("./a//b/", "a/b"), (".", ""), ("/a", None), ("a/../b", None),
     ("..", None), ("a\\b", None), ("", None)],
)
def test_safe_relative_path(name: str, expected: str | None) -> None:
    assert safe_relative_path(name) == expected


@pytest.mark.parametrize(
    ("members", "refused"),
    [
        ([("dir/", MemberKind.DIRECTORY, ""), ("dir/a.txt", MemberKind.FILE, "")], None),
        ([("../x", MemberKind.FILE, "")], "'../x' escapes"),
        ([("/etc/cron.d/x", MemberKind.FILE, "")], "escapes"),
        ([("a/../../x", MemberKind.FILE, "")], "escapes"),
        ([("dev", MemberKind.SPECIAL, "")], "special file"),
        ([("l", MemberKind.SYMLINK, "/etc")], "symlink 'l' points outside"),
        ([("d/l", MemberKind.SYMLINK, "../../etc")], "points outside"),
        ([("d/l", MemberKind.SYMLINK, "../d2/f")], None),
        ([("d/l", MemberKind.SYMLINK, "..")], None),
        ([("d/l", MemberKind.SYMLINK, ".."), ("x", MemberKind.SYMLINK, "d/l/..")],
         "symlink 'x' points outside"),
        ([("l", MemberKind.SYMLINK, "sub"), ("l/f", MemberKind.FILE, "")],
         "written through a symlink"),
        ([("h", MemberKind.HARDLINK, "../etc/passwd")], "hard link 'h' points outside"),
        ([("l", MemberKind.SYMLINK, "a"), ("h", MemberKind.HARDLINK, "l")], "hard link"),
        ([("a", MemberKind.FILE, ""), ("h", MemberKind.HARDLINK, "a")], None),
    ],
    ids=["plain", "dotdot", "absolute", "dotdot-inside-name", "device", "symlink-absolute",
         "symlink-up-out", "symlink-inside", "symlink-to-root", "symlink-chain-out",
         "through-symlink", "hardlink-out", "hardlink-to-symlink", "hardlink-inside"],
)
def test_member_check(members: list[tuple[str, MemberKind, str]], refused: str | None) -> None:
    check = MemberCheck()
    problems = [p for name, kind, link in members
                if (p := check.problem(name, kind, link)) is not None]
    if refused is None:
        assert problems == []
    else:
        assert len(problems) == 1 and refused in problems[0], problems


def test_cache_evicts_least_recently_used_unreferenced_entries() -> None:
    book = FetchCacheBook(100)
    for name in "abc":
        admitted = book.admit(("", name), name, 30)
        assert admitted is not None
        book.release(admitted[0])
    a = book.acquire(("", "a"))  # a is now the most recently used, and in use
    assert a is not None
    admitted = book.admit(("", "d"), "d", 50)  # 90 used, 10 free: evict b (LRU), then c
    assert admitted is not None
    entry, evicted = admitted
    assert [e.file_name for e in evicted] == ["b", "c"]
    assert [e.file_name for e in book.entries()] == ["a", "d"]
    assert book.used == 80 and entry.references == 1


def test_cache_never_evicts_entries_in_use_and_refuses_what_cannot_fit() -> None:
    book = FetchCacheBook(100)
    first = book.admit(("", "a"), "a", 60)
    assert first is not None  # still referenced by its downloader
    assert book.admit(("", "b"), "b", 50) is None
    assert book.admit(("", "huge"), "huge", 101) is None
    assert [e.file_name for e in book.entries()] == ["a"]
    book.release(first[0])
    second = book.admit(("", "b"), "b", 50)
    assert second is not None and [e.file_name for e in second[1]] == ["a"]


def test_cache_keys_by_user_and_uri() -> None:
    book = FetchCacheBook(100)
    book.admit(("alice", "http://h/x"), "1", 10)
    assert book.acquire(("bob", "http://h/x")) is None
    assert book.acquire(("alice", "http://h/x")) is not None
    with pytest.raises(ValueError, match="cached already"):
        book.admit(("alice", "http://h/x"), "2", 10)


def test_a_discarded_entry_is_forgotten() -> None:
    book = FetchCacheBook(100)
    admitted = book.admit(("", "http://h/x"), "1", 10)
    assert admitted is not None
    book.discard(admitted[0])
    assert book.acquire(("", "http://h/x")) is None and book.used == 0


@pytest.mark.parametrize(
    ("mode", "file_uid", "file_gid", "uid", "gids", "wanted", "allowed"),
    [
        (0o600, 1000, 1000, 1000, {1000}, 4, True),
        (0o600, 1000, 1000, 1001, {1000}, 4, False),
        (0o640, 1000, 1000, 1001, {1000}, 4, True),
        (0o604, 1000, 1000, 1001, {2000}, 4, True),
        (0o700, 1000, 1000, 1001, {1000}, 1, False),
        (0o000, 1000, 1000, 0, {0}, 4, True),
        (0o070, 1000, 1000, 1000, {1000}, 4, False),  # the owner class decides for the owner
    ],
)
def test_permits_by_mode_bits(mode: int, file_uid: int, file_gid: int, uid: int, gids: set[int],
                              wanted: int, allowed: bool) -> None:
    assert permits(mode, file_uid, file_gid, uid, frozenset(gids), wanted) is allowed
