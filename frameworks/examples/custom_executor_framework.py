"""Example framework with a custom executor (`frameworks.examples.custom_executor`).

    python -m frameworks.examples.custom_executor_framework --master 127.0.0.1:5050 --tasks 3

Each task asks the executor to sleep and echo a text (JSON in `TaskInfo.data`). When a task
runs, the scheduler sends its executor a framework message, which the executor echoes back.
Prints every update and message; exits 0 when all tasks finished, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from frameworks import (
    DriverStatus,
    OfferBudget,
    Scheduler,
    SchedulerDriver,
    executor_info,
    executor_task,
    is_terminal,
    state_name,
)
from mesos_runtime.flags import parse_flags
from mesos_runtime.logging import configure_logging
from protos import mesos_pb2

EXECUTOR_ID = "example-custom-executor"


class CustomExecutorScheduler(Scheduler):
    """Launches `count` tasks on the custom executor and stops when all are terminal."""

    def __init__(self, count: int, sleep: float, cpus: float, mem: float) -> None:
        self.count, self.sleep, self.cpus, self.mem = count, sleep, cpus, mem
        self.pending = [f"echo-{index}" for index in range(count)]
        self.finished: set[str] = set()
        self.failed: set[str] = set()
        self.executor = executor_info(
            EXECUTOR_ID, [sys.executable, "-m", "frameworks.examples.custom_executor"],
            cpus=0.1, mem=64, name="example custom executor",
        )

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            budget = OfferBudget(offer)
            tasks = []
            while self.pending and budget.fits(
                cpus=self.cpus, mem=self.mem, extra=budget.executor_cost(self.executor)
            ):
                task_id = self.pending.pop(0)
                work = {"sleep": self.sleep, "echo": f"hello from {task_id}"}
                tasks.append(executor_task(
                    task_id, budget, self.executor, cpus=self.cpus, mem=self.mem,
                    data=json.dumps(work).encode(),
                ))
            if tasks:
                print(f"launching {len(tasks)} task(s) on {offer.hostname}", flush=True)
                driver.launch_tasks(offer.id, tasks)
            else:
                driver.decline_offer(offer.id, filters=5.0)
        if not self.pending:
            driver.suppress_offers()

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        task_id = status.task_id.value
        detail = status.data.decode(errors="replace") or status.message
        print(f"{task_id}: {state_name(status)} {detail}".rstrip(), flush=True)
        if status.state == mesos_pb2.TASK_RUNNING:
            driver.send_framework_message(
                status.executor_id.value or EXECUTOR_ID, status.agent_id,
                f"ping for {task_id}".encode(),
            )
        if not is_terminal(status):
            return
        (self.finished if status.state == mesos_pb2.TASK_FINISHED else self.failed).add(task_id)
        if len(self.finished) + len(self.failed) == self.count:
            driver.stop()

    def framework_message(
        self, driver: SchedulerDriver, executor_id: mesos_pb2.ExecutorID,
        agent_id: mesos_pb2.AgentID, data: bytes,
    ) -> None:
        print(f"message from {executor_id.value} on {agent_id.value}: "
              f"{data.decode(errors='replace')}", flush=True)

    def executor_lost(
        self, driver: SchedulerDriver, executor_id: mesos_pb2.ExecutorID,
        agent_id: mesos_pb2.AgentID, status: int | None,
    ) -> None:
        print(f"executor {executor_id.value} on {agent_id.value} exited ({status})", flush=True)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the example; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="127.0.0.1:5050", help="HOST:PORT or zk://...")
    parser.add_argument("--tasks", type=int, default=3, help="number of tasks")
    parser.add_argument("--sleep", type=float, default=1.0, help="seconds each task works")
    parser.add_argument("--cpus", type=float, default=0.1, help="CPUs per task")
    parser.add_argument("--mem", type=float, default=32.0, help="memory (MB) per task")
    parser.add_argument("--name", default="custom-executor-framework", help="framework name")
    parser.add_argument("--log_level", default="WARNING", help="log level of the driver")
    args = parse_flags(parser, argv, "MESOS")
    if args.tasks < 1:
        parser.error("--tasks must be at least 1")
    configure_logging(args.log_level)
    scheduler = CustomExecutorScheduler(args.tasks, args.sleep, args.cpus, args.mem)
    try:
        driver = SchedulerDriver(scheduler, mesos_pb2.FrameworkInfo(name=args.name), args.master)
    except ValueError as exc:
        parser.error(str(exc))
    status = driver.run()
    ok = status is DriverStatus.STOPPED and not scheduler.failed
    print(f"{'done' if ok else 'FAILED'}: {len(scheduler.finished)} finished, "
          f"{len(scheduler.failed)} failed ({status.value})", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
