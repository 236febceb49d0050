"""How long the agent's syncer thread takes to apply one checkpoint batch (issue 22, ADR 0007).

    python bench/group_commit_bench.py --records 513 --batches 15
    python bench/group_commit_bench.py --records 513 --batches 15 --busy

Applies `--batches` batches of `--records` task-log records (~450 bytes each, fsynced: the
arrivals and TASK_STARTINGs of a burst of 256 tasks) with `group_commit.apply_batch` in a
thread of its own, as the agent's syncer does, into a file under `--dir` (default: a temporary
directory). With `--busy`, another thread runs Python code all along, as the agent's loop does
during a burst: every system call of the batch then gives the GIL away and waits up to the
interpreter's switch interval to get it back. Prints the median and the slowest batch.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from mesos_agent.group_commit import Append, apply_batch

RECORD = b'{"task":"t","update":"' + b"A" * 420 + b'"}\n'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=513)
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--busy", action="store_true", help="a Python thread spins meanwhile")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    stop = threading.Event()

    def spin() -> None:
        count = 0
        while not stop.is_set():
            count += 1

    spinner = threading.Thread(target=spin, daemon=True)
    if args.busy:
        spinner.start()
    times: list[float] = []
    with tempfile.TemporaryDirectory(prefix="group-commit-bench-", dir=args.dir) as directory:
        log = Path(directory) / "tasks.log"

        def run() -> None:
            for _ in range(args.batches):
                ops = [Append(log, RECORD) for _ in range(args.records)]
                start = time.perf_counter()
                apply_batch(ops)
                times.append(time.perf_counter() - start)

        syncer = threading.Thread(target=run)
        syncer.start()
        syncer.join()
    stop.set()
    print(f"{args.batches} batches of {args.records} records"
          f"{', a Python thread spinning' if args.busy else ''}: "
          f"median {1e3 * statistics.median(times):.1f} ms, "
          f"slowest {1e3 * max(times):.1f} ms")


if __name__ == "__main__":
    main()
