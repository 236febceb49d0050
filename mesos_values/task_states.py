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
