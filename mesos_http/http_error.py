"""The one error answer of our HTTP APIs: raised by a handler, rendered by its API (JSON for
Marathon and the batch framework, Mesos' plain text for the agent)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HttpError"]


class HttpError(Exception):
    """An error answer: `status` and `message`; a JSON answer's body is `{"message": message}`
    unless `body` is given."""

    def __init__(self, status: int, message: str, body: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = dict(body) if body is not None else {"message": message}
