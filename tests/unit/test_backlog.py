"""Sending backlogs as batches: the queue drain and the size bound (mesos_runtime.backlog), and
the SDK's merged ACKNOWLEDGE call."""

from __future__ import annotations

import asyncio

from frameworks import _calls
from mesos_runtime.backlog import backlog, batched, size_bounded
from protos import agent_pb2, mesos_pb2


def _update(task_id: str, padding: int = 0) -> agent_pb2.AgentMessage:
    message = agent_pb2.AgentMessage()
    message.status_update.status.task_id.value = task_id
    message.status_update.status.message = "x" * padding
    return message


async def test_backlog_takes_what_waits_oldest_first_up_to_the_limit() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    assert backlog(queue) == []  # never waits
    for item in range(5):
        queue.put_nowait(item)
    assert backlog(queue, limit=3) == [0, 1, 2]
    assert backlog(queue) == [3, 4]
    assert queue.empty()


def test_size_bounded_keeps_order_and_splits_at_the_byte_bound() -> None:
    messages = [_update(f"t{i}", padding=400) for i in range(10)]
    size = messages[0].ByteSize()
    runs = list(size_bounded(messages, max_bytes=3 * size))
    assert [len(run) for run in runs] == [3, 3, 3, 1]
    assert [m.status_update.status.task_id.value for run in runs for m in run] == [
        f"t{i}" for i in range(10)
    ]


def test_size_bounded_sends_an_oversized_message_alone() -> None:
    small, big = _update("small"), _update("big", padding=10_000)
    runs = list(size_bounded([small, big, small], max_bytes=1_000))
    assert [[m.status_update.status.task_id.value for m in run] for run in runs] == [
        ["small"], ["big"], ["small"]
    ]
    assert list(size_bounded([big], max_bytes=1_000)) == [[big]]


def test_batched_wraps_runs_of_several_and_sends_a_lone_message_as_itself() -> None:
    def wrap(run: list[agent_pb2.AgentMessage]) -> agent_pb2.AgentMessage:
        return agent_pb2.AgentMessage(batch=agent_pb2.AgentMessage.Batch(messages=run))

    small, big = _update("a"), _update("big", padding=10_000)
    assert list(batched([small], wrap)) == [small]
    sent = list(batched([small, _update("b"), big], wrap, max_bytes=1_000))
    assert [m.WhichOneof("message") for m in sent] == ["batch", "status_update"]
    assert [m.status_update.status.task_id.value for m in sent[0].batch.messages] == ["a", "b"]
    assert sent[1] is big


def test_merged_acknowledgements_keep_every_acknowledgement_in_order() -> None:
    calls = []
    for i in range(4):
        status = mesos_pb2.TaskStatus(uuid=bytes([i]))
        status.task_id.value = f"t{i}"
        status.agent_id.value = "a1"
        call = _calls.acknowledge(status)
        assert call is not None
        calls.append(call)
    merged = _calls.merged_acknowledgements(calls)
    assert merged.acknowledge.task_id.value == "t0"
    assert [a.task_id.value for a in merged.acknowledgements] == ["t1", "t2", "t3"]
    assert [a.uuid for a in merged.acknowledgements] == [b"\x01", b"\x02", b"\x03"]
    assert merged.type == calls[0].type
