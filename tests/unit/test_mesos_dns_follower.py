"""RecordIO framing of the master's event stream, however the bytes are chunked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_dns.follower import read_records
from mesos_master.operator_events import record_io


async def chunks(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    start = 0
    for cut in sorted(set(cuts)):
        yield data[start:cut]
        start = cut
    yield data[start:]


async def records(data: bytes, cuts: list[int]) -> list[bytes]:
    return [record async for record in read_records(chunks(data, cuts))]


@given(st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20), max_size=3),
                max_size=5),
       st.lists(st.integers(0, 400), max_size=10))
async def test_records_come_out_whole_whatever_the_chunks(
        events: list[dict[str, str]], cuts: list[int]) -> None:
    data = b"".join(record_io(event) for event in events)
    assert await records(data, cuts) == [record_io(event).split(b"\n", 1)[1]
                                         for event in events]


@pytest.mark.parametrize("data", [b"x\n{}", b"-1\n", b"1" * 30, b"99999999999\n"],
                         ids=["not-a-number", "negative", "no-newline", "too-long"])
async def test_a_broken_stream_raises(data: bytes) -> None:
    with pytest.raises(ValueError):
        await records(data, [])
