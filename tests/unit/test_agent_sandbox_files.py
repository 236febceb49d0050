"""`open_in_sandbox` on real files: symlinks are followed only within the sandbox, FIFOs,
sockets and devices are refused without blocking, and what is read is what was checked."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from mesos_agent.sandbox_files import MAX_SYMLINKS, SandboxPathError, open_in_sandbox

SANDBOX = ("agent", "frameworks", "f", "executors", "e", "runs", "c")


@pytest.fixture
def sandbox(tmp_path: Path) -> Path:
    directory = tmp_path.joinpath(*SANDBOX)
    (directory / "logs").mkdir(parents=True)
    (directory / "stdout").write_text("hello\n")
    (directory / "logs" / "app.log").write_text("log line\n")
    (tmp_path / "secret").write_text("not yours\n")
    return directory


def read(root: Path, relative: str) -> bytes:
    descriptor = open_in_sandbox(str(root), SANDBOX, relative, relative)
    try:
        return os.pread(descriptor, 100, 0)
    finally:
        os.close(descriptor)


def refused(root: Path, relative: str) -> SandboxPathError:
    with pytest.raises(SandboxPathError) as raised:
        os.close(open_in_sandbox(str(root), SANDBOX, relative, relative))
    return raised.value


def test_files_and_links_within_the_sandbox_are_read(sandbox: Path, tmp_path: Path) -> None:
    (sandbox / "out").symlink_to("stdout")
    (sandbox / "logs" / "up").symlink_to("../stdout")
    (sandbox / "absolute").symlink_to(sandbox / "logs" / "app.log")
    (sandbox / "dirlink").symlink_to("logs")
    (sandbox / "chain").symlink_to("dirlink/../out")
    assert read(tmp_path, "stdout") == b"hello\n"
    assert read(tmp_path, "./logs//app.log") == b"log line\n"
    assert read(tmp_path, "out") == b"hello\n"
    assert read(tmp_path, "logs/up") == b"hello\n"
    assert read(tmp_path, "absolute") == b"log line\n"
    assert read(tmp_path, "dirlink/app.log") == b"log line\n"
    assert read(tmp_path, "chain") == b"hello\n"
    directory = open_in_sandbox(str(tmp_path), SANDBOX, "", "")
    try:
        assert stat.S_ISDIR(os.fstat(directory).st_mode)
        assert sorted(os.listdir(directory)) == sorted(os.listdir(sandbox))
    finally:
        os.close(directory)


def test_links_out_of_the_sandbox_are_refused(sandbox: Path, tmp_path: Path) -> None:
    (sandbox / "etc").symlink_to("/etc")
    (sandbox / "shadow").symlink_to("/etc/shadow")
    (sandbox / "up").symlink_to("../../../../../../secret")
    (sandbox / "logs" / "updir").symlink_to("../..")
    (sandbox / "neighbour").symlink_to(sandbox.parent)
    (sandbox / "prefix").symlink_to(f"{sandbox}-other/stdout")
    for name in ("etc/passwd", "shadow", "up", "logs/updir/c/stdout", "neighbour", "prefix"):
        assert refused(tmp_path, name).status == 403, name


def test_a_symlink_loop_is_refused(sandbox: Path, tmp_path: Path) -> None:
    (sandbox / "a").symlink_to("b")
    (sandbox / "b").symlink_to("a")
    error = refused(tmp_path, "a")
    assert error.status == 403 and "symbolic links" in error.message
    previous = "stdout"
    for index in range(MAX_SYMLINKS):  # a chain exactly as long as allowed is followed
        (sandbox / f"l{index}").symlink_to(previous)
        previous = f"l{index}"
    assert read(tmp_path, previous) == b"hello\n"


def test_fifos_sockets_and_devices_are_refused_without_blocking(
    sandbox: Path, tmp_path: Path,
) -> None:
    os.mkfifo(sandbox / "fifo")  # no writer: opening it for reading would block
    (sandbox / "tofifo").symlink_to("fifo")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(str(sandbox / "socket"))
        (sandbox / "null").symlink_to("/dev/null")  # out of the sandbox anyway
        for name in ("fifo", "tofifo", "socket"):
            error = refused(tmp_path, name)
            assert error.status == 400 and "not a regular file" in error.message, name
        assert refused(tmp_path, "null").status == 403
    if os.geteuid() == 0:
        os.mknod(sandbox / "device", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
        assert refused(tmp_path, "device").status == 400


def test_missing_paths_and_a_symlinked_sandbox_are_refused(
    sandbox: Path, tmp_path: Path,
) -> None:
    assert refused(tmp_path, "missing").status == 404
    assert refused(tmp_path, "stdout/below").status == 404
    moved = sandbox.with_name("moved")
    sandbox.rename(moved)
    sandbox.symlink_to(moved)  # the task replaced its sandbox by a link: not followed
    assert refused(tmp_path, "stdout").status == 403
