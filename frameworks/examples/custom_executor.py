"""An example custom executor: runs "sleep and echo" tasks described by JSON in `TaskInfo.data`.

Run it as the ExecutorInfo's command, e.g. with the SDK helpers::

    executor = executor_info(
        "sleeper-executor",
        f"{sys.executable} -m frameworks.examples.custom_executor",  # or the path of this file
        cpus=0.1, mem=64,
    )
    task = executor_task("task-1", offer, executor,
                         data=json.dumps({"sleep": 2, "echo": "hello"}).encode())

`TaskInfo.data` is a JSON object (empty data means `{}`) with optional keys:

- `sleep`: seconds to work before finishing (default 0);
- `echo`: a text written to the sandbox's stdout and returned as the TASK_FINISHED `data`;
- `fail`: when true the task ends with TASK_FAILED instead of TASK_FINISHED.

For every launched task the executor reports TASK_RUNNING, then TASK_FINISHED (or TASK_FAILED).
Bad JSON fails the task at once. A kill reports TASK_KILLED; SHUTDOWN kills every task. A
framework message is sent straight back to the scheduler, unchanged. The executor keeps running
with no tasks until the agent shuts it down.
"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from frameworks.driver import DriverStatus
from frameworks.executor import Executor, ExecutorDriver
from protos import mesos_pb2


@dataclass(frozen=True, slots=True)
class Work:
    """What one task asks for."""

    sleep: float = 0.0
    echo: str | None = None
    fail: bool = False

    @classmethod
    def parse(cls, data: bytes) -> Work:
        """Parse `TaskInfo.data`; raises ValueError with a clear message."""
        try:
            body: Any = json.loads(data) if data.strip() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"task data is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise ValueError("task data must be a JSON object")
        sleep = body.get("sleep", 0)
        if not isinstance(sleep, int | float) or isinstance(sleep, bool) or sleep < 0:
            raise ValueError("'sleep' must be a non-negative number of seconds")
        echo = body.get("echo")
        if echo is not None and not isinstance(echo, str):
            raise ValueError("'echo' must be a string")
        return cls(float(sleep), echo, bool(body.get("fail", False)))


def _status(
    task_id: mesos_pb2.TaskID, state: mesos_pb2.TaskState.ValueType, message: str = "",
    data: bytes = b"",
) -> mesos_pb2.TaskStatus:
    return mesos_pb2.TaskStatus(task_id=task_id, state=state, message=message, data=data)


class SleepEchoExecutor(Executor):
    """Runs each task as an asyncio task of `group`, a TaskGroup that `serve` owns."""

    def __init__(self) -> None:
        self.group: asyncio.TaskGroup | None = None
        self._running: dict[str, asyncio.Task[None]] = {}

    def launch_task(self, driver: ExecutorDriver, task: mesos_pb2.TaskInfo) -> None:
        try:
            work = Work.parse(task.data)
        except ValueError as exc:
            driver.send_status_update(_status(task.task_id, mesos_pb2.TASK_FAILED, str(exc)))
            return
        assert self.group is not None, "serve() sets the group before starting the driver"
        driver.send_status_update(_status(task.task_id, mesos_pb2.TASK_RUNNING))
        self._running[task.task_id.value] = self.group.create_task(
            self._work(driver, task.task_id, work)
        )

    async def _work(self, driver: ExecutorDriver, task_id: mesos_pb2.TaskID, work: Work) -> None:
        await asyncio.sleep(work.sleep)
        self._running.pop(task_id.value, None)
        if work.echo is not None:
            print(work.echo, flush=True)
        data = (work.echo or "").encode()
        if work.fail:
            driver.send_status_update(
                _status(task_id, mesos_pb2.TASK_FAILED, "the task was asked to fail", data)
            )
        else:
            driver.send_status_update(_status(task_id, mesos_pb2.TASK_FINISHED, data=data))

    def kill_task(self, driver: ExecutorDriver, task_id: mesos_pb2.TaskID) -> None:
        running = self._running.pop(task_id.value, None)
        if running is None:
            return  # already finished: its terminal update is on its way
        running.cancel()
        driver.send_status_update(_status(task_id, mesos_pb2.TASK_KILLED, "killed on request"))

    def framework_message(self, driver: ExecutorDriver, data: bytes) -> None:
        driver.send_framework_message(data)

    def shutdown(self, driver: ExecutorDriver) -> None:
        for task_id in list(self._running):
            self.kill_task(driver, mesos_pb2.TaskID(value=task_id))

    def cancel_all(self) -> None:
        """Stop every task without reporting (the driver is gone)."""
        for running in self._running.values():
            running.cancel()
        self._running.clear()


async def serve() -> DriverStatus:
    """Run the executor until the agent shuts it down."""
    executor = SleepEchoExecutor()
    driver = ExecutorDriver(executor)
    async with asyncio.TaskGroup() as group:
        executor.group = group
        await driver.start()
        status = await driver.join()
        executor.cancel_all()
    return status


def main() -> None:
    try:
        status = asyncio.run(serve())
    except ValueError as exc:  # not started by an agent: the environment is missing
        sys.exit(f"custom_executor: {exc}")
    sys.exit(0 if status is DriverStatus.STOPPED else 1)


if __name__ == "__main__":
    main()
