"""The Unix user a task or an executor runs as, as Mesos decides it (for `run_tasks` and the
`view_tasks` / `view_executors` ACLs): shared by the master and the agents."""

from __future__ import annotations

from protos import mesos_pb2

__all__ = ["executor_user", "own_user", "task_user"]


def own_user(task: mesos_pb2.TaskInfo) -> str:
    """The user a task names itself: its command's `user`, else its executor's; "" if none."""
    for command in (task.command, task.executor.command):
        if command.user:
            return command.user
    return ""


def task_user(task: mesos_pb2.TaskInfo, framework: mesos_pb2.FrameworkInfo | None) -> str:
    """The user a task runs as: `own_user`, else its framework's ("" when neither is known)."""
    return own_user(task) or (framework.user if framework is not None else "")


def executor_user(
    executor: mesos_pb2.ExecutorInfo, framework: mesos_pb2.FrameworkInfo | None
) -> str:
    """The user a custom executor runs as: its command's `user`, else its framework's."""
    return executor.command.user or (framework.user if framework is not None else "")
