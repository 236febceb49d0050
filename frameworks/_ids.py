"""Id coercion: SDK functions accept either the protobuf id message or a plain string."""

from __future__ import annotations

from typing import TypeAlias, TypeVar

from protos import mesos_pb2

TaskIDLike: TypeAlias = mesos_pb2.TaskID | str
AgentIDLike: TypeAlias = mesos_pb2.AgentID | str
OfferIDLike: TypeAlias = mesos_pb2.OfferID | str
ExecutorIDLike: TypeAlias = mesos_pb2.ExecutorID | str
FrameworkIDLike: TypeAlias = mesos_pb2.FrameworkID | str

_Id = TypeVar(
    "_Id",
    mesos_pb2.TaskID,
    mesos_pb2.AgentID,
    mesos_pb2.OfferID,
    mesos_pb2.ExecutorID,
    mesos_pb2.FrameworkID,
)


def _coerce(value: _Id | str, kind: type[_Id]) -> _Id:
    if isinstance(value, kind):
        if not value.value:
            raise ValueError(f"{kind.__name__} must not be empty")
        return value
    if isinstance(value, str):
        if not value:
            raise ValueError(f"{kind.__name__} must not be empty")
        return kind(value=value)
    raise TypeError(f"expected {kind.__name__} or str, got {type(value).__name__}")


def task_id(value: TaskIDLike) -> mesos_pb2.TaskID:
    """A `TaskID` from a `TaskID` or a string."""
    return _coerce(value, mesos_pb2.TaskID)


def agent_id(value: AgentIDLike) -> mesos_pb2.AgentID:
    """An `AgentID` from an `AgentID` or a string."""
    return _coerce(value, mesos_pb2.AgentID)


def offer_id(value: OfferIDLike) -> mesos_pb2.OfferID:
    """An `OfferID` from an `OfferID` or a string."""
    return _coerce(value, mesos_pb2.OfferID)


def executor_id(value: ExecutorIDLike) -> mesos_pb2.ExecutorID:
    """An `ExecutorID` from an `ExecutorID` or a string."""
    return _coerce(value, mesos_pb2.ExecutorID)


def framework_id(value: FrameworkIDLike) -> mesos_pb2.FrameworkID:
    """A `FrameworkID` from a `FrameworkID` or a string."""
    return _coerce(value, mesos_pb2.FrameworkID)
