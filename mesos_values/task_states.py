"""Task states every component agrees on."""

from __future__ import annotations

from protos import mesos_pb2

TERMINAL_STATES: frozenset[mesos_pb2.TaskState.ValueType] = frozenset(
    {
        mesos_pb2.TASK_FINISHED,
        mesos_pb2.TASK_FAILED,
        mesos_pb2.TASK_KILLED,
        mesos_pb2.TASK_LOST,
        mesos_pb2.TASK_ERROR,
        mesos_pb2.TASK_DROPPED,
        mesos_pb2.TASK_GONE,
        mesos_pb2.TASK_GONE_BY_OPERATOR,
    }
)
"""States after which a task never runs again."""

TERMINAL_OR_UNKNOWN_STATES: frozenset[mesos_pb2.TaskState.ValueType] = TERMINAL_STATES | {
    mesos_pb2.TASK_UNKNOWN
}
"""The terminal states and TASK_UNKNOWN: the states after which a scheduler counts a task as
gone. TASK_UNKNOWN is not terminal (the master has no record of the task, which may still run
on an agent it has not heard from), but it is reconciliation's answer for a task the master
does not know, so Marathon expunges such an instance and does not kill such a task."""
