"""The CLI's failures and exit codes: every expected failure is a `CliError` whose message is
printed on one line (`mesos: ...`) and whose exit code tells scripts what went wrong."""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_UNREACHABLE",
    "EXIT_USAGE",
    "CliError",
    "connection_failure_reason",
    "http_error_message",
]

EXIT_OK = 0
EXIT_FAILED = 1
"""The operation failed: an error answer, a failed deployment or run, a timeout."""
EXIT_USAGE = 2
"""Bad command line (argparse uses 2 as well)."""
EXIT_UNREACHABLE = 3
"""A component could not be reached."""
EXIT_INTERRUPTED = 130
"""Ctrl-C, as shells report SIGINT."""


class CliError(Exception):
    """An expected failure: `message` for the user, `exit_code` for scripts."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


def connection_failure_reason(error: BaseException) -> str:
    """Why a connection failed, in a few words ("connection refused", "unknown host ...")."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, socket.gaierror):
            return f"unknown host ({str(current.strerror).lower()})"
        if isinstance(current, TimeoutError):
            return "timed out"
        if isinstance(current, OSError) and current.errno:
            if current.errno == errno.ECONNREFUSED:
                return "connection refused"
            return os.strerror(current.errno).lower()
        current = current.__cause__ or current.__context__
    return str(error) or type(error).__name__


def http_error_message(service: str, method: str, path: str, status: int, body: Any) -> str:
    """One line for an error answer: Marathon's and Metronome's `message` and `details`
    (`{"path": ..., "errors": [...]}`), or the plain-text body Mesos gives."""
    prefix = f"{service} refused {method} {path} ({status})"
    if isinstance(body, dict):
        message = str(body.get("message") or "").strip()
        details = body.get("details")
        parts = [message] if message else []
        if isinstance(details, list):
            parts += [_detail_text(detail) for detail in details]
        locked = body.get("deployments")
        if status == 409 and isinstance(locked, list) and locked:
            ids = ", ".join(str(d.get("id", d)) if isinstance(d, dict) else str(d)
                            for d in locked)
            parts.append(f"deployments in the way: {ids} (use --force to override)")
        if parts:
            return f"{prefix}: " + "; ".join(parts)
    text = " ".join(str(body).split()) if body not in (None, "") else ""
    return f"{prefix}: {text}" if text else prefix


def _detail_text(detail: Any) -> str:
    if not isinstance(detail, dict):
        return str(detail)
    errors = detail.get("errors")
    listed = ", ".join(str(e) for e in errors) if isinstance(errors, list) else str(errors)
    path = detail.get("path")
    return f"{path}: {listed}" if path else listed
