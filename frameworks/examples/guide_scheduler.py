"""The scheduler that docs/framework-guide.md builds step by step: run each given shell command
once to completion, retrying failures, and survive its own restarts.

    python -m frameworks.examples.guide_scheduler --master 127.0.0.1:5050 \\
        --state_file /tmp/guide.json --task "echo hello" --task "sleep 5"

The state file keeps the framework id and every task's id, agent and last state. A scheduler
started again on the same file re-subscribes with the framework id (within
`--failover_timeout` the master kept its tasks running), reconciles the tasks it knows and
carries on. `--hand_over` stops with failover once every task runs, as a scheduler being
upgraded would; `--executor` runs the tasks on the SDK's example custom executor.
Exits 0 when every task finished, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from frameworks import (
    TERMINAL_STATES,
    DriverStatus,
    OfferBudget,
    Resources,
    SandboxFiles,
    Scheduler,
    SchedulerDriver,
    command_task,
    executor_info,
    executor_task,
    state_name,
)
from mesos_runtime.flags import parse_duration, parse_flags
from mesos_runtime.logging import configure_logging
from protos import mesos_pb2

REFUSE_SECONDS = 30.0
"""How long declined resources stay away from this framework."""

ENDED = TERMINAL_STATES | {mesos_pb2.TASK_UNKNOWN}
"""States after which a task does not run: the terminal ones, and TASK_UNKNOWN (reconciliation's
answer for a task the master has no record of)."""


@dataclass
class TaskRecord:
    """One command to run, and what the scheduler last heard of it."""

    name: str
    cmd: str
    attempt: int = 0
    task_id: str = ""
    agent_id: str = ""
    state: str = "PENDING"

    @property
    def pending(self) -> bool:
        """Waiting for an offer."""
        return self.state == "PENDING"

    @property
    def ended(self) -> bool:
        """Launched, and it does not run any more (see `ENDED`)."""
        return not self.pending and mesos_pb2.TaskState.Value(self.state) in ENDED


class StateFile:
    """The framework id and the task records, rewritten atomically after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> tuple[str | None, dict[str, TaskRecord]]:
        if not self.path.exists():
            return None, {}
        saved = json.loads(self.path.read_text())
        tasks = {name: TaskRecord(**record) for name, record in saved["tasks"].items()}
        return saved.get("framework_id"), tasks

    def save(self, framework_id: str | None, tasks: dict[str, TaskRecord]) -> None:
        body = {"framework_id": framework_id,
                "tasks": {name: asdict(record) for name, record in tasks.items()}}
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(body, indent=2))
        os.replace(temporary, self.path)


class GuideScheduler(Scheduler):
    """Runs every `TaskRecord` to completion; see the module docstring."""

    def __init__(
        self, state: StateFile, commands: Sequence[str], *, cpus: float, mem: float,
        max_attempts: int, executor: mesos_pb2.ExecutorInfo | None = None,
        hand_over: bool = False,
    ) -> None:
        self.state = state
        self.framework_id, self.tasks = state.load()
        for index, cmd in enumerate(commands):
            self.tasks.setdefault(f"task-{index}", TaskRecord(f"task-{index}", cmd))
        self.cpus, self.mem, self.max_attempts = cpus, mem, max_attempts
        self.executor, self.hand_over = executor, hand_over
        self.by_task_id = {r.task_id: r for r in self.tasks.values() if r.task_id}
        self.suppressed = False
        self.master_info: mesos_pb2.MasterInfo | None = None

    # Step 1: subscribe. The first SUBSCRIBED gives the framework id; keep it.
    def registered(
        self, driver: SchedulerDriver, framework_id: mesos_pb2.FrameworkID,
        master_info: mesos_pb2.MasterInfo,
    ) -> None:
        print(f"registered as {framework_id.value}", flush=True)
        self.framework_id = framework_id.value
        self.master_info = master_info  # where the master's HTTP endpoints are
        self.save()
        self.reconcile(driver)

    def reregistered(self, driver: SchedulerDriver, master_info: mesos_pb2.MasterInfo) -> None:
        print("re-registered", flush=True)
        self.reconcile(driver)

    # Step 6: after any (re)subscription, ask for the latest state of every task we launched.
    def reconcile(self, driver: SchedulerDriver) -> None:
        known = [(r.task_id, r.agent_id) for r in self.tasks.values()
                 if r.task_id and not r.pending and not r.ended]
        if known:
            driver.reconcile_tasks(known)

    # Steps 2 and 3: match offers against pending tasks; decline what is not used.
    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            budget = OfferBudget(offer)
            launches = []
            for record in self.tasks.values():
                if record.pending and self.fits(budget):
                    launches.append(self.build_task(record, budget))
            if launches:
                print(f"launching {len(launches)} task(s) on {offer.hostname}", flush=True)
                driver.launch_tasks(offer.id, launches, filters=REFUSE_SECONDS)
            else:
                driver.decline_offer(offer.id, filters=REFUSE_SECONDS)
        self.save()
        # Step 5: nothing left to launch: stop the offers until a task needs a retry.
        if not any(r.pending for r in self.tasks.values()) and not self.suppressed:
            driver.suppress_offers()
            self.suppressed = True

    def fits(self, budget: OfferBudget) -> bool:
        """Whether one more task (and its executor, unless already paid for) fits."""
        extra = Resources.EMPTY if self.executor is None else budget.executor_cost(self.executor)
        return budget.fits(cpus=self.cpus, mem=self.mem, extra=extra)

    def build_task(self, record: TaskRecord, budget: OfferBudget) -> mesos_pb2.TaskInfo:
        record.attempt += 1
        record.task_id = f"{record.name}-{record.attempt}"
        record.agent_id = budget.agent_id.value
        record.state = "TASK_STAGING"
        self.by_task_id[record.task_id] = record
        if self.executor is None:
            return command_task(record.task_id, budget, record.cmd, cpus=self.cpus,
                                mem=self.mem, name=record.name)
        # Step 8: the same task for a custom executor; `data` is what the executor reads.
        work = json.dumps({"echo": record.cmd}).encode()
        return executor_task(record.task_id, budget, self.executor, cpus=self.cpus,
                             mem=self.mem, name=record.name, data=work)

    # Step 4: status updates. Record, make it durable, then acknowledge.
    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        record = self.by_task_id.get(status.task_id.value)
        reconciled = status.reason == mesos_pb2.TaskStatus.REASON_RECONCILIATION
        detail = "(reconciliation)" if reconciled else status.message
        print(f"{status.task_id.value}: {state_name(status)} {detail}".rstrip(), flush=True)
        if record is not None and record.task_id == status.task_id.value:
            self.on_state(driver, record, status)
        self.save()
        driver.acknowledge_status_update(status)
        self.finish_if_done(driver)

    def on_state(
        self, driver: SchedulerDriver, record: TaskRecord, status: mesos_pb2.TaskStatus
    ) -> None:
        record.state = state_name(status)
        if status.agent_id.value:
            record.agent_id = status.agent_id.value
        if status.state not in ENDED or status.state == mesos_pb2.TASK_FINISHED:
            return
        if record.attempt < self.max_attempts:
            record.state = "PENDING"  # try again on a later offer
            driver.revive_offers()
            self.suppressed = False

    # Step 7: done, or handing over to the next scheduler process.
    def finish_if_done(self, driver: SchedulerDriver) -> None:
        records = self.tasks.values()
        if all(r.state == "TASK_FINISHED" or self.gave_up(r) for r in records):
            driver.stop()  # TEARDOWN: the framework is done
        elif self.hand_over and all(r.state == "TASK_RUNNING" for r in records):
            print("handing over: stopping with failover", flush=True)
            driver.stop(failover=True)  # the framework and its tasks stay

    def gave_up(self, record: TaskRecord) -> bool:
        """Whether the task failed and has no launch left."""
        return (record.ended and record.state != "TASK_FINISHED"
                and record.attempt >= self.max_attempts)

    def offer_rescinded(self, driver: SchedulerDriver, offer_id: mesos_pb2.OfferID) -> None:
        print(f"offer {offer_id.value} rescinded", flush=True)

    def agent_lost(self, driver: SchedulerDriver, agent_id: mesos_pb2.AgentID) -> None:
        print(f"agent {agent_id.value} lost; its tasks' updates follow", flush=True)

    def disconnected(self, driver: SchedulerDriver) -> None:
        print("disconnected; the driver re-subscribes", flush=True)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        print(f"error: {message}", file=sys.stderr, flush=True)

    def save(self) -> None:
        self.state.save(self.framework_id, self.tasks)

    def summary(self) -> tuple[int, int]:
        """(finished, not finished) task counts."""
        finished = sum(1 for r in self.tasks.values() if r.state == "TASK_FINISHED")
        return finished, len(self.tasks) - finished


def framework_info(
    name: str, framework_id: str | None, failover_timeout: float
) -> mesos_pb2.FrameworkInfo:
    """Who we are; with `framework_id` we re-subscribe as the framework we were."""
    info = mesos_pb2.FrameworkInfo(
        name=name, failover_timeout=failover_timeout, checkpoint=True,
        capabilities=[mesos_pb2.FrameworkInfo.Capability(
            type=mesos_pb2.FrameworkInfo.Capability.PARTITION_AWARE)],
    )
    if framework_id:
        info.id.value = framework_id
    return info


async def print_outputs(master_info: mesos_pb2.MasterInfo, task_ids: Sequence[str]) -> None:
    """Print each task's stdout, read from its sandbox (`--show_output`)."""
    async with SandboxFiles.of_master(master_info) as files:
        for task_id in task_ids:
            print((await files.read(task_id, "stdout")).decode(), end="", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the scheduler; returns the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--master", default="127.0.0.1:5050", help="HOST:PORT or zk://...")
    parser.add_argument("--task", action="append", default=[], help="a shell command to run")
    parser.add_argument("--state_file", type=Path, required=True,
                        help="where the framework id and task states are kept")
    parser.add_argument("--cpus", type=float, default=0.1, help="CPUs per task")
    parser.add_argument("--mem", type=float, default=32.0, help="memory (MB) per task")
    parser.add_argument("--max_attempts", type=int, default=3, help="launches per task")
    parser.add_argument("--failover_timeout", type=parse_duration, default=3600.0,
                        help="how long the master keeps our tasks while we are away")
    parser.add_argument("--hand_over", action="store_true",
                        help="stop with failover once every task runs")
    parser.add_argument("--executor", action="store_true",
                        help="run the tasks on the example custom executor")
    parser.add_argument("--show_output", action="store_true",
                        help="print each finished task's stdout at the end")
    parser.add_argument("--name", default="guide-framework", help="framework name")
    parser.add_argument("--log_level", default="WARNING", help="log level of the driver")
    args = parse_flags(parser, argv, "MESOS")
    configure_logging(args.log_level)
    executor = executor_info(
        "guide-executor", [sys.executable, "-m", "frameworks.examples.custom_executor"],
        cpus=0.1, mem=64,
    ) if args.executor else None
    scheduler = GuideScheduler(
        StateFile(args.state_file), args.task, cpus=args.cpus, mem=args.mem,
        max_attempts=args.max_attempts, executor=executor, hand_over=args.hand_over,
    )
    if not scheduler.tasks:
        parser.error("give at least one --task (or a --state_file that has some)")
    info = framework_info(args.name, scheduler.framework_id, args.failover_timeout)
    driver = SchedulerDriver(scheduler, info, args.master, implicit_acknowledgements=False)
    status = driver.run()
    if args.show_output and scheduler.master_info is not None:
        asyncio.run(print_outputs(scheduler.master_info, [
            record.task_id for record in scheduler.tasks.values()
            if record.state == "TASK_FINISHED"]))
    finished, unfinished = scheduler.summary()
    print(f"{status.value}: {finished} finished, {unfinished} not finished", flush=True)
    return 0 if status is DriverStatus.STOPPED and (unfinished == 0 or args.hand_over) else 1


if __name__ == "__main__":
    sys.exit(main())
