"""Reading sandbox files through `/files/read`: offsets and the last N lines."""

from __future__ import annotations

import pytest

from mesos_http.sandbox_files import LogCursor, agent_base_url, master_task, tail_start


def answer(data: bytes, offset: int) -> dict[str, object]:
    """What an agent answers: the bytes as Latin-1 characters."""
    return {"data": data.decode("latin-1"), "offset": offset}


def test_the_cursor_moves_by_bytes_not_characters() -> None:
    cursor = LogCursor()
    text = "héllo\n".encode()  # é is two bytes in UTF-8
    assert cursor.consume(answer(text, 0)) == text
    assert cursor.offset == 7
    assert cursor.consume(answer(b"", 7)) == b""
    assert cursor.offset == 7


def test_an_answer_for_another_offset_is_refused() -> None:
    with pytest.raises(ValueError, match="offset 5"):
        LogCursor(5).consume(answer(b"x", 0))


def test_a_truncated_file_is_read_again_from_its_start() -> None:
    cursor = LogCursor(100)
    assert not cursor.restart_if_truncated(100)
    assert cursor.offset == 100
    assert cursor.restart_if_truncated(10)
    assert cursor.offset == 0


@pytest.mark.parametrize(
    ("data", "offset", "lines", "start"),
    [
        (b"a\nb\nc\n", 0, 2, 2),        # "b\nc\n": the final newline ends the last line
        (b"a\nb\nc", 0, 2, 2),          # no final newline: same lines
        (b"a\nb\nc\n", 0, 5, 0),        # more lines than the file has: all of it
        (b"a\nb\nc\n", 0, 0, 6),        # none: the end
        (b"", 0, 3, 0),                 # an empty file
        (b"b\nc\n", 10, 1, 12),         # the window starts later in the file
        (b"b\nc\n", 10, 3, None),       # not enough of the file to tell: read more
        (b"\n\n\n", 0, 2, 1),           # empty lines count
    ],
    ids=["final-newline", "no-final-newline", "fewer-lines", "zero", "empty", "window",
         "need-more", "blank-lines"],
)
def test_tail_start(data: bytes, offset: int, lines: int, start: int | None) -> None:
    assert tail_start(data, offset, lines) == start


def test_negative_line_counts_are_refused() -> None:
    with pytest.raises(ValueError):
        tail_start(b"", 0, -1)


def last_lines_by_reading_backwards(content: bytes, lines: int, chunk: int) -> bytes:
    """What `mesos task log --lines` prints: windows of `chunk` bytes read from the end."""
    data, start = b"", len(content)
    while (found := tail_start(data, start, lines)) is None:
        begin = max(0, start - chunk)
        data = content[begin:start] + data
        start = begin
    return content[found:]


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
@pytest.mark.parametrize("lines", [0, 1, 2, 4, 10])
def test_reading_backwards_in_chunks_finds_the_last_lines(chunk: int, lines: int) -> None:
    content = b"first\nsecond line\n\nfourth\nfifth, the last\n"
    expected = b"".join(content.splitlines(keepends=True)[-lines:]) if lines else b""
    assert last_lines_by_reading_backwards(content, lines, chunk) == expected


def test_tasks_are_found_among_active_and_completed_frameworks() -> None:
    agent = {"id": "S1", "pid": "slave(1)@10.0.0.5:5051", "hostname": "h5"}
    state = {
        "slaves": [agent],
        "frameworks": [{"id": "F1", "tasks": [{"id": "live", "slave_id": "S1",
                                               "framework_id": "F1"}]}],
        "completed_frameworks": [{"id": "F0", "tasks": [], "completed_tasks": [
            {"id": "done", "slave_id": "S1", "framework_id": "F0"},
            {"id": "elsewhere", "slave_id": "S9", "framework_id": "F0"}]}],
    }
    live = master_task(state, "live")
    assert live is not None and (live.framework_id, live.agent_url) == (
        "F1", "http://10.0.0.5:5051")
    done = master_task(state, "done", scheme="https")
    assert done is not None and (done.framework_id, done.agent_url) == (
        "F0", "https://10.0.0.5:5051")
    assert master_task(state, "done", framework_id="F1") is None
    gone = master_task(state, "elsewhere")  # its agent is no longer registered
    assert gone is not None and gone.agent_url is None
    assert master_task(state, "nope") is None
    assert agent_base_url({**agent, "http_port": 5052}) == "http://10.0.0.5:5052"
    assert agent_base_url({"id": "S2"}) is None
