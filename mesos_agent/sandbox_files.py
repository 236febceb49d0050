"""Opening files inside a sandbox without ever leaving it (the agent's `/files` endpoints).

A task owns its sandbox and may put anything there, at any moment: a symlink to `/etc/shadow`,
a symlink swapped in between a check and an open, a FIFO that blocks whoever opens it, a
device. So a sandbox path is never checked and then opened again: it is walked one component
at a time from a descriptor of the sandbox directory, each component opened relative to its
parent with `O_PATH | O_NOFOLLOW`. A symlink met on the way is read through that same descriptor
(so a swap after the open changes nothing) and its target walked the
same way, confined to the sandbox (an absolute target only when it names a place inside the
sandbox; `..` never above it). What the walk ends on is checked through its own descriptor
(`fstat`) and, when it is a regular file or a directory, reopened through that descriptor
(`/proc/self/fd/N`), so what is read is exactly what was checked. FIFOs, sockets and devices
are refused without being opened for reading.

Callers run these functions in a worker thread: they do file I/O.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import PurePosixPath

__all__ = ["MAX_SYMLINKS", "SandboxPathError", "open_in_sandbox"]

MAX_SYMLINKS = 40
"""How many symlinks one walk follows (Linux's own limit): more is a loop."""

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class SandboxPathError(Exception):
    """A path that cannot be served: `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def open_in_sandbox(root: str, sandbox: Sequence[str], relative: str, shown: str) -> int:
    """A read-only descriptor (the caller closes it) of the regular file or directory at
    `relative` inside the sandbox `root/sandbox...`, symlinks followed only within it.

    `root` (the agent's directory of sandboxes, a real path) is trusted; the `sandbox`
    components below it are opened as directories following no symlink. `shown` is how
    errors name the path. Raises `SandboxPathError`: 404 when nothing is there, 403 when the
    path leads out of the sandbox, 400 for FIFOs, sockets and devices.
    """
    base = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in sandbox:
            try:
                entered = os.open(name, _DIRECTORY_FLAGS, dir_fd=base)
            except OSError:
                if _is_symlink(name, base):  # where the agent made a directory
                    raise SandboxPathError(403, f"{shown} is not inside a sandbox") from None
                raise SandboxPathError(404, f"{shown} does not exist") from None
            os.close(base)
            base = entered
        location = os.path.join(root, *sandbox)
        with _walk(base, location, relative, shown) as found:
            info = os.fstat(found)
            if not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise SandboxPathError(
                    400, f"{shown} is not a regular file or a directory")
            return os.open(f"/proc/self/fd/{found}", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(base)


@contextmanager
def _walk(base: int, sandbox: str, relative: str, shown: str) -> Iterator[int]:
    """An `O_PATH` descriptor of what `relative` names under `base`; the stack of open
    directories it went through is closed on the way out."""
    stack: list[int] = []  # descriptors of the directories entered below `base`
    pending = _components(relative)
    followed = 0
    try:
        current = base
        while pending:
            name = pending.pop(0)
            if name == "..":
                if not stack:
                    raise SandboxPathError(403, f"{shown} leads out of its sandbox")
                os.close(stack.pop())
                current = stack[-1] if stack else base
                continue
            try:
                opened = os.open(name, _PATH_FLAGS, dir_fd=current)
            except (FileNotFoundError, NotADirectoryError):
                raise SandboxPathError(404, f"{shown} does not exist") from None
            except OSError as error:  # a name too long, say
                raise SandboxPathError(400, f"{shown}: {error.strerror or error}") from None
            if stat.S_ISLNK(os.fstat(opened).st_mode):
                try:  # the link this descriptor holds, whatever the name points at now
                    target = os.readlink("", dir_fd=opened)
                finally:
                    os.close(opened)
                followed += 1
                if followed > MAX_SYMLINKS:
                    raise SandboxPathError(403, f"{shown}: too many levels of symbolic links")
                pending = [*_link_components(target, sandbox, shown), *pending]
                if _is_absolute(pending):
                    pending = pending[1:]
                    while stack:
                        os.close(stack.pop())
                    current = base
                continue
            stack.append(opened)
            current = opened
        yield _own(stack, base)
    finally:
        for descriptor in stack:
            os.close(descriptor)


def _own(stack: list[int], base: int) -> int:
    """The descriptor the walk ended on; the sandbox itself when it entered nothing."""
    if stack:
        return stack[-1]
    duplicate = os.dup(base)
    stack.append(duplicate)
    return duplicate


_ROOT_MARK = "/"


def _is_symlink(name: str, directory: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=directory, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _components(relative: str) -> list[str]:
    return [part for part in relative.split("/") if part not in ("", ".")]


def _is_absolute(components: list[str]) -> bool:
    return bool(components) and components[0] == _ROOT_MARK


def _link_components(target: str, sandbox: str, shown: str) -> list[str]:
    """The components a symlink's `target` adds to the walk; an absolute target is allowed
    when it names a place inside the sandbox, and then starts with the root mark."""
    if not target.startswith("/"):
        return _components(target)
    inside = PurePosixPath(os.path.normpath(target))
    root = PurePosixPath(sandbox)
    if inside != root and root not in inside.parents:
        raise SandboxPathError(403, f"{shown} leads out of its sandbox")
    return [_ROOT_MARK, *_components(str(inside.relative_to(root)))]
