"""An opt-in report of where a process's memory goes, for benchmarks and debugging.

With `MESOS_MEMORY_REPORT=PATH` in its environment, a service calling `install_memory_report`
writes to PATH on SIGUSR2 what glibc's malloc and CPython's small-object allocator hold (in
use, and freed but kept) and the most numerous live object types. With `MESOS_MEMORY_TRACE=1`
as well it traces Python allocations (tracemalloc, one frame) from then on and adds those still
held, grouped by file and line; tracing costs CPU and memory (tens of bytes per allocation) and
hides the small-object allocator's figures. Never set these in production. tracemalloc sees
Python objects (and protobuf's arenas only when they come from Python's allocator); what it
misses (gRPC's C memory, free lists) is the rest of the RSS.
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import sys
import tempfile
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import FrameType

ENVIRONMENT_VARIABLE = "MESOS_MEMORY_REPORT"
TRACE_VARIABLE = "MESOS_MEMORY_TRACE"
TOP_LINES = 40


def allocation_table(stats: Sequence[tracemalloc.Statistic], top: int = TOP_LINES) -> list[str]:
    """The total held and the `top` biggest (file:line, size, count), one line each."""
    held = sum(stat.size for stat in stats)
    lines = [f"python allocations held: {held / 2**20:.1f} MiB in "
             f"{sum(stat.count for stat in stats)} blocks"]
    for stat in stats[:top]:
        frame = stat.traceback[0]
        lines.append(f"{stat.size / 2**20:9.2f} MiB {stat.count:10d}  {frame.filename}:"
                     f"{frame.lineno}")
    return lines


def object_table(objects: Iterable[object], top: int = TOP_LINES) -> list[str]:
    """The `top` most numerous types among `objects`, with their counts."""
    counts = Counter(type(item).__qualname__ for item in objects)
    return [f"{count:10d}  {name}" for name, count in counts.most_common(top)]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def malloc_summary() -> str:
    """glibc's malloc: bytes in use and bytes free but not returned, over all its arenas
    ("" where there is no glibc 2.33+)."""
    try:
        mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return ""
    mallinfo2.restype = _MallInfo2
    info = mallinfo2()
    return (f"malloc: {(info.uordblks + info.hblkhd) / 2**20:.1f} MiB in use, "
            f"{info.fordblks / 2**20:.1f} MiB free and kept")


PYMALLOC_LINES = ("# bytes in allocated blocks", "# bytes in available blocks",
                  "# bytes lost to pool headers", "# bytes lost to quantization",
                  "# arenas allocated current")


def pymalloc_summary() -> list[str]:
    """CPython's small-object allocator: bytes in live objects, and bytes its arenas hold
    free (fragmentation), from `sys._debugmallocstats` (which writes to file descriptor 2)."""
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        text = captured.read().decode(errors="replace")
    return ["pymalloc " + line.lstrip("# ") for line in text.splitlines()
            if line.startswith(PYMALLOC_LINES)]


def write_report(path: Path) -> None:
    """Write malloc's summary, the allocation table (when tracing) and the object table to
    `path`."""
    lines = [malloc_summary(), *pymalloc_summary()]
    if tracemalloc.is_tracing():
        lines += allocation_table(tracemalloc.take_snapshot().statistics("lineno"))
    lines += ["live objects tracked by the garbage collector, by type:",
              *object_table(gc.get_objects())]
    path.write_text("\n".join(lines) + "\n")


def install_memory_report(environ: Mapping[str, str] | None = None) -> Path | None:
    """Report on SIGUSR2 (and start tracing) when the environment asks for it; returns the
    report's path (None: not asked)."""
    environ = os.environ if environ is None else environ
    target = environ.get(ENVIRONMENT_VARIABLE)
    if not target:
        return None
    path = Path(target)
    if environ.get(TRACE_VARIABLE) == "1":
        tracemalloc.start(1)

    def report(signum: int, frame: FrameType | None) -> None:
        write_report(path)

    signal.signal(signal.SIGUSR2, report)
    return path
