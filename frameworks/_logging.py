"""Where the SDK's own log lines go.

A process that configured structlog (our services do, with `mesos_runtime.logging`) gets the
SDK's lines as it renders its own. Otherwise (a framework author's program) they go through the
standard `logging` module, under the logger `frameworks` (`frameworks.driver`,
`frameworks.executor`), at INFO unless the application sets that logger's level: to the
application's handlers once it has configured `logging`, else to stderr, never to stdout.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import FilteringBoundLogger

__all__ = ["sdk_logger"]

SDK_LOGGER = "frameworks"


class _StderrUntilConfigured(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to stderr while the root logger has no handler (the application has not set up
    logging); after that, records reach the application's handlers by propagation only."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if not logging.getLogger().handlers:
            self.setStream(sys.stderr)  # the current one (tests and apps may swap it)
            super().emit(record)


def _prepare_stdlib_logger() -> None:
    sdk = logging.getLogger(SDK_LOGGER)
    if sdk.level == logging.NOTSET:
        sdk.setLevel(logging.INFO)
    if not any(isinstance(h, _StderrUntilConfigured) for h in sdk.handlers):
        sdk.addHandler(_StderrUntilConfigured())


def sdk_logger(name: str) -> FilteringBoundLogger:
    """The logger of SDK module `name` (`frameworks.driver`); see the module docstring."""
    if structlog.is_configured():
        logger: FilteringBoundLogger = structlog.get_logger(name)
        return logger
    _prepare_stdlib_logger()
    wrapped: FilteringBoundLogger = structlog.wrap_logger(
        logging.getLogger(name),
        processors=[
            structlog.stdlib.filter_by_level,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
    )
    return wrapped
