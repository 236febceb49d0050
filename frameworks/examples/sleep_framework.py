"""Example framework: run N command tasks, packing as many into each offer as fit.

    python -m frameworks.examples.sleep_framework --master 127.0.0.1:5050 --tasks 10 --cmd "sleep 1"

Exits 0 when every task finished, 1 if any failed (or the driver aborted). Tasks dropped
before they started (e.g. the master connection broke) are launched again under a new id.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from frameworks import (
    DriverStatus,
    OfferBudget,
    Scheduler,
    SchedulerDriver,
    command_task,
    is_terminal,
    state_name,
)
from mesos_runtime.flags import parse_flags
from mesos_runtime.logging import configure_logging
from protos import mesos_pb2

_REFUSE_SECONDS = 5.0


class SleepScheduler(Scheduler):
    """Launches `count` copies of `cmd` and stops the driver when all are terminal."""

    def __init__(self, count: int, cmd: str, cpus: float, mem: float) -> None:
        self.cmd, self.cpus, self.mem = cmd, cpus, mem
        self.count = count
        self.pending = [f"task-{index}" for index in range(count)]
        self.finished: set[str] = set()
        self.failed: set[str] = set()
        self._attempts: dict[str, int] = {}

    def registered(
        self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
        master_info: mesos_pb2.MasterInfo,
    ) -> None:
        print(f"registered as {framework_id.value}; {self.count} tasks to run", flush=True)

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            budget = OfferBudget(offer)
            tasks = []
            while self.pending and budget.fits(cpus=self.cpus, mem=self.mem):
                name = self.pending.pop(0)
                attempt = self._attempts.get(name, 0)
                task_id = name if attempt == 0 else f"{name}-retry{attempt}"
                tasks.append(command_task(
                    task_id, budget, self.cmd, cpus=self.cpus, mem=self.mem, name=name,
                ))
            if tasks:
                print(f"launching {len(tasks)} task(s) on {offer.hostname}", flush=True)
                driver.launch_tasks(offer.id, tasks)
            else:
                driver.decline_offer(offer.id, filters=_REFUSE_SECONDS)
        if not self.pending:
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        task_id = status.task_id.value
        name = task_id.split("-retry")[0]
        print(f"{task_id}: {state_name(status)} {status.message}".rstrip(), flush=True)
        if not is_terminal(status):
            return
        if status.state == mesos_pb2.TASK_DROPPED:
            self._attempts[name] = self._attempts.get(name, 0) + 1
            self.pending.append(name)
            driver.revive_offers()
            return
        if status.state == mesos_pb2.TASK_FINISHED:
            self.finished.add(name)
        else:
            self.failed.add(name)
        done = len(self.finished) + len(self.failed)
        print(f"progress: {done}/{self.count} done ({len(self.failed)} failed)", flush=True)
        if done == self.count:
            driver.stop()

    def error(self, driver: SchedulerDriver, message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="127.0.0.1:5050", help="HOST:PORT or zk://...")
    parser.add_argument("--tasks", type=int, default=10, help="number of tasks")
    parser.add_argument("--cmd", default="sleep 1", help="shell command each task runs")
    parser.add_argument("--cpus", type=float, default=0.1, help="CPUs per task")
    parser.add_argument("--mem", type=float, default=32.0, help="memory (MB) per task")
    parser.add_argument("--name", default="sleep-framework", help="framework name")
    parser.add_argument("--log_level", default="WARNING", help="log level of the driver")
    args = parse_flags(parser, argv, "MESOS")
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    configure_logging(args.log_level)
    scheduler = SleepScheduler(args.tasks, args.cmd, args.cpus, args.mem)
    framework = mesos_pb2.FrameworkInfo(name=args.name)
    try:
        driver = SchedulerDriver(scheduler, framework, args.master)
    except ValueError as exc:
        parser.error(str(exc))
    status = driver.run()
    ok = status is DriverStatus.STOPPED and not scheduler.failed
    print(f"{'done' if ok else 'FAILED'}: {len(scheduler.finished)} finished, "
          f"{len(scheduler.failed)} failed ({status.value})", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
