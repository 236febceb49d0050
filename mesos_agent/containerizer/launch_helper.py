"""`mesos-launch`, the small C program that starts isolated containers (`mesos_launch.c`, ADR
0014): built from the source shipped in this package with the machine's C compiler on first
use, and kept, named by a hash of its source, in the user's cache directory
(`$XDG_CACHE_HOME/mesos`, else `~/.cache/mesos`). Where no compiler is installed (or the cache
cannot be written) there is none, and launches use util-linux' `unshare`, `tini` and `sh`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import structlog

__all__ = ["is_static", "launch_helper"]

_SOURCE = Path(__file__).with_name("mesos_launch.c")
_BUILD_SECONDS = 120
_log = structlog.get_logger(__name__)


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mesos"


@functools.cache
def launch_helper() -> str | None:
    """The path of the built `mesos-launch`, building it if needed; None when it cannot be
    built here (the reason is logged once)."""
    try:
        source = _SOURCE.read_bytes()
    except OSError as exc:
        _log.warning("launch_helper_source_missing", path=str(_SOURCE), error=str(exc))
        return None
    target = _cache_dir() / f"mesos-launch-{hashlib.sha256(source).hexdigest()[:16]}"
    if os.access(target, os.X_OK):
        return str(target)
    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if compiler is None:
        _log.info("launch_helper_unavailable", reason="no C compiler (cc) on PATH",
                  fallback="unshare, tini and sh")
        return None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return _build(compiler, target)
    except (OSError, subprocess.SubprocessError) as exc:
        _log.warning("launch_helper_unavailable", reason=str(exc),
                     fallback="unshare, tini and sh")
        return None


def _build(compiler: str, target: Path) -> str:
    """Compile the source into `target` (statically where the C library allows it: a static
    program starts faster), atomically: concurrent builders each rename a whole file."""
    fd, scratch = tempfile.mkstemp(prefix=".mesos-launch-", dir=target.parent)
    os.close(fd)
    try:
        errors = ""
        for static in (["-static"], []):
            built = subprocess.run(
                [compiler, "-O2", *static, "-o", scratch, str(_SOURCE)],
                capture_output=True, text=True, timeout=_BUILD_SECONDS, check=False)
            if built.returncode == 0:
                os.chmod(scratch, 0o755)
                os.replace(scratch, target)
                return str(target)
            errors = built.stderr.strip()
        raise OSError(f"{compiler} failed to build {_SOURCE.name}: {errors[-500:]}")
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)


_PT_INTERP = 3


def is_static(program: str) -> bool:
    """Whether the ELF executable `program` needs no dynamic loader (so it runs in any root
    file system, e.g. a container image's)."""
    try:
        with open(program, "rb") as elf:
            header = elf.read(64)
            if header[:4] != b"\x7fELF" or header[4] != 2:  # 64-bit ELF only
                return False
            order = "<" if header[5] == 1 else ">"
            (table,) = struct.unpack_from(order + "Q", header, 32)
            entry_size, count = struct.unpack_from(order + "HH", header, 54)
            elf.seek(table)
            entries = elf.read(entry_size * count)
    except (OSError, struct.error):
        return False
    return all(struct.unpack_from(order + "I", entries, i * entry_size)[0] != _PT_INTERP
               for i in range(count))
