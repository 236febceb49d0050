"""Bounds on the fields of task definitions, shared by Marathon's apps and the batch jobs.

Values within Marathon's and Metronome's own ranges but beyond these cannot run anyway (a
longer string cannot be passed to `exec`) or would only exhaust the service (millions of tasks).
"""

from __future__ import annotations

__all__ = [
    "MAX_ARG_BYTES",
    "MAX_DURATION_SECONDS",
    "MAX_ID_LENGTH",
    "MAX_TASKS",
    "exec_string_overflow",
]

MAX_ARG_BYTES = 131_071
"""The most UTF-8 bytes in a `cmd`, an argument or an environment variable: Linux's
MAX_ARG_STRLEN (128 KiB, with the terminating NUL) bounds each string `exec` is handed."""

MAX_ID_LENGTH = 255
"""The most characters in an app, group or job id (a directory name on the agents)."""

MAX_DURATION_SECONDS = 2_147_483_647
"""The longest duration a definition may give in seconds (a deadline, a delay, a grace period):
Metronome reads them as Java `int`s (about 68 years). Longer ones overflow `timedelta` and the
nanoseconds of Mesos' `DurationInfo`."""

MAX_TASKS = 1_000_000
"""The most tasks one definition may ask for: an app's `instances`, a job's `arraySize`."""


def exec_string_overflow(text: str) -> int | None:
    """The size in bytes of `text` when it is over MAX_ARG_BYTES, else None."""
    size = len(text.encode("utf-8", "surrogatepass"))
    return size if size > MAX_ARG_BYTES else None
