"""Refusals of the master's core: every module of the master raises these, the gRPC and HTTP
shells map `ErrorCode` to their status codes."""

from __future__ import annotations

import enum


class ErrorCode(enum.Enum):
    """Why a call was refused; the gRPC shell maps these to status codes."""

    INVALID_ARGUMENT = "invalid argument"
    NOT_FOUND = "not found"
    PERMISSION_DENIED = "permission denied"
    FAILED_PRECONDITION = "failed precondition"
    RESOURCE_EXHAUSTED = "resource exhausted"  # a cap or rate limit of the caller is reached
    ABORTED = "aborted"  # a passive stream's resume does not match the snapshot held (ADR 0018)


class MasterError(Exception):
    """A refused call, with a message meant for the caller."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
