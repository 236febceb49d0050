"""The driver's pure bookkeeping: subscription state and what to do with each outgoing call.
No I/O; the driver's event loop owns one `Session`.

Rules for an outgoing call:

    subscribed ─────────────────────────────────────────▶ SEND (framework id stamped on)
    not subscribed, ACCEPT / DECLINE / ACKNOWLEDGE ─────▶ DROP (the offers and updates it
        refers to belong to a broken stream; ACCEPT's tasks come back as TASK_DROPPED)
    not subscribed, any other call ──────────────────────▶ WAIT for the next subscription
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from protos import mesos_pb2, scheduler_pb2

Call = scheduler_pb2.Call

_VOID_WHEN_DISCONNECTED = frozenset({Call.ACCEPT, Call.DECLINE, Call.ACKNOWLEDGE})


class Action(enum.Enum):
    """What the sender does with a call."""

    SEND = "send"
    WAIT = "wait"
    DROP = "drop"


@dataclass(frozen=True, slots=True)
class Resolution:
    """The decision for one call; `updates` are synthesized for the scheduler on DROP."""

    action: Action
    call: Call | None = None
    updates: tuple[mesos_pb2.TaskStatus, ...] = ()


class Session:
    """Subscription state of one driver: framework id, current stream, subscription count."""

    def __init__(self, framework_id: mesos_pb2.FrameworkID | None = None) -> None:
        self.framework_id = framework_id
        self.stream_id: str | None = None
        self.subscriptions = 0

    @property
    def subscribed(self) -> bool:
        """Whether a stream is currently open."""
        return self.stream_id is not None

    def on_subscribed(self, framework_id: mesos_pb2.FrameworkID, stream_id: str) -> bool:
        """Record a SUBSCRIBED event; True if it is this driver's first subscription."""
        self.framework_id = framework_id
        self.stream_id = stream_id
        self.subscriptions += 1
        return self.subscriptions == 1

    def on_disconnected(self) -> bool:
        """Record a broken stream; True if a subscription was open."""
        was_subscribed = self.subscribed
        self.stream_id = None
        return was_subscribed

    def resolve(self, call: Call, *, timestamp: float) -> Resolution:
        """Decide what to do with `call` now (see the module docstring).

        `timestamp` (seconds since the epoch) dates the synthesized TASK_DROPPED updates.
        """
        if self.subscribed:
            stamped = Call()
            stamped.CopyFrom(call)
            if self.framework_id is not None:
                stamped.framework_id.CopyFrom(self.framework_id)
            return Resolution(Action.SEND, stamped)
        if call.type not in _VOID_WHEN_DISCONNECTED:
            return Resolution(Action.WAIT)
        return Resolution(Action.DROP, updates=dropped_launches(call, timestamp))


def dropped_launches(call: Call, timestamp: float) -> tuple[mesos_pb2.TaskStatus, ...]:
    """TASK_DROPPED updates for every task an ACCEPT would have launched."""
    if call.type != Call.ACCEPT:
        return ()
    return tuple(
        mesos_pb2.TaskStatus(
            task_id=task.task_id,
            agent_id=task.agent_id,
            state=mesos_pb2.TASK_DROPPED,
            source=mesos_pb2.TaskStatus.SOURCE_MASTER,
            reason=mesos_pb2.TaskStatus.REASON_MASTER_DISCONNECTED,
            message="not launched: the connection to the master broke before the offer was used",
            timestamp=timestamp,
        )
        for operation in call.accept.operations
        if operation.type == mesos_pb2.Offer.Operation.LAUNCH
        for task in operation.launch.task_infos
    )

