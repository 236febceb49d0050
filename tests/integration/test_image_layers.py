"""Unpacking image layers with the real file system (root: whiteouts are device nodes and
opaque directories extended attributes, as overlayfs reads them)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import pytest

from mesos_agent.images.layers import OPAQUE_XATTR, is_whiteout, unpack_layer
from mesos_agent.images.manifest import ImageError

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="whiteouts are device nodes: root")]


def layer(tmp_path: Path, members: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]],
          *, compress: bool = True) -> tuple[Path, str]:
    """A layer blob of `members`; its path and diff_id."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as archive:
        for member in members:
            if isinstance(member, tuple):
                info, data = member
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(member)
    tar = raw.getvalue()
    blob = tmp_path / f"blob-{hashlib.sha256(tar).hexdigest()[:8]}"
    blob.write_bytes(gzip.compress(tar) if compress else tar)
    return blob, "sha256:" + hashlib.sha256(tar).hexdigest()


def directory(name: str, mode: int = 0o755) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, mode
    return info


def file(name: str, data: bytes, mode: int = 0o644, uid: int = 0) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode, info.uid, info.gid = mode, uid, uid
    return info, data


def link(name: str, target: str, *, hard: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = (tarfile.LNKTYPE if hard else tarfile.SYMTYPE), target
    return info


def test_files_links_modes_and_owners(tmp_path: Path) -> None:
    blob, diff_id = layer(tmp_path, [
        directory("bin"), file("bin/busybox", b"#!", 0o4755),
        link("bin/sh", "busybox"), link("bin/abs", "/bin/busybox"),
        directory("home"), file("./home/nobody.txt", b"hi", 0o600, uid=65534),
        link("bin/hard", "bin/busybox", hard=True),
    ])
    target = tmp_path / "layer"
    target.mkdir()
    unpack_layer(blob, "gzip", diff_id, target)
    assert (target / "bin/busybox").read_bytes() == b"#!"
    assert (target / "bin/busybox").stat().st_mode & 0o7777 == 0o4755
    assert os.readlink(target / "bin/sh") == "busybox"
    assert os.readlink(target / "bin/abs") == "/bin/busybox"  # kept as is: it is the image's
    assert (target / "home/nobody.txt").stat().st_uid == 65534
    assert (target / "bin/hard").stat().st_ino == (target / "bin/busybox").stat().st_ino


def test_whiteouts_and_opaque_directories_in_overlay_format(tmp_path: Path) -> None:
    blob, diff_id = layer(tmp_path, [
        directory("etc"), file("etc/.wh.motd", b""), directory("var/cache"),
        file("var/cache/.wh..wh..opq", b""), file("var/cache/new", b"x"),
    ], compress=False)
    target = tmp_path / "layer"
    target.mkdir()
    unpack_layer(blob, "", diff_id, target)
    assert is_whiteout(target / "etc/motd")
    assert not (target / "etc/.wh.motd").exists()
    assert os.getxattr(target / "var/cache", OPAQUE_XATTR) == b"y"
    assert sorted(os.listdir(target / "var/cache")) == ["new"]


@pytest.mark.parametrize(("members", "why"), [
    ([file("../escape", b"x")], "escapes the image's root"),
    ([file("/etc/escape", b"x")], "escapes the image's root"),
    ([link("etc", "/etc"), file("etc/escape", b"x")], "goes through the symbolic link etc"),
    ([link("up", ".."), file("up/escape", b"x")], "goes through the symbolic link up"),
    ([link("hard", "../../etc/passwd", hard=True)], "escapes the image's root"),
    ([link("s", "/etc/passwd"), link("hard", "s", hard=True)], "not a file of this layer"),
], ids=["dotdot", "absolute", "symlink-dir", "symlink-up", "hardlink-out", "hardlink-symlink"])
def test_members_escaping_the_root_are_refused(
        tmp_path: Path, members: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]],
        why: str) -> None:
    blob, diff_id = layer(tmp_path, members)
    target = tmp_path / "deep" / "layer"
    target.mkdir(parents=True)
    with pytest.raises(ImageError, match=why):
        unpack_layer(blob, "gzip", diff_id, target)
    assert not (tmp_path / "deep" / "escape").exists()
    assert not Path("/etc/escape").exists()


def test_content_that_does_not_match_its_diff_id_is_refused(tmp_path: Path) -> None:
    blob, _ = layer(tmp_path, [file("a", b"x")])
    target = tmp_path / "layer"
    target.mkdir()
    with pytest.raises(ImageError, match="does not match its diff_id"):
        unpack_layer(blob, "gzip", "sha256:" + "0" * 64, target)


def test_a_corrupt_blob_is_refused(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x1f\x8bnot gzip at all")
    target = tmp_path / "layer"
    target.mkdir()
    with pytest.raises(ImageError, match="cannot be unpacked"):
        unpack_layer(blob, "gzip", "sha256:" + "0" * 64, target)
