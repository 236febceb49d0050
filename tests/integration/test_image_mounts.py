"""Leftover root filesystems of image containers are detached (`detach_mounts_under`):
real tmpfs mounts, nested, beside one outside the directory that must stay."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesos_agent.containerizer.image_runtime import detach_mounts_under


def _mounted() -> set[str]:
    lines = Path("/proc/self/mounts").read_text().splitlines()
    return {line.split()[1] for line in lines}


@pytest.fixture
def mounts(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    work, other = tmp_path / "work", tmp_path / "other"
    inner = work / "bundles" / "c1" / "rootfs"
    for path in (inner, other):
        path.mkdir(parents=True)
        subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(path)], check=True)
    nested = inner / "proc"
    nested.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(nested)], check=True)
    yield work, other
    for path in (nested, inner, other):
        subprocess.run(["umount", "-l", str(path)], check=False, capture_output=True)


def test_every_mount_below_the_directory_is_detached_and_no_other(
        mounts: tuple[Path, Path]) -> None:
    work, other = mounts
    below = {path for path in _mounted() if path.startswith(str(work.resolve()) + "/")}
    assert len(below) == 2
    detach_mounts_under(work)
    assert not {path for path in _mounted() if path.startswith(str(work.resolve()) + "/")}
    assert str(other.resolve()) in _mounted()
