"""Reading a sandbox file through an agent's `/files/read` (offset tracking, no I/O).

`/files/read?path=P&offset=N&length=M` answers `{"data": ..., "offset": N}` where `data` holds
the bytes read as one character per byte (Latin-1); `offset=-1` answers the file's size in
`offset`. A `LogCursor` turns successive answers into the bytes to print and the next offset;
`tail_start` finds where the last N lines of a file begin from the bytes before its end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["LogCursor", "tail_start"]


@dataclass
class LogCursor:
    """The position of the next byte to read in one sandbox file."""

    offset: int = 0

    def consume(self, answer: Mapping[str, Any]) -> bytes:
        """The bytes of one `/files/read` answer for a read at `offset`; moves past them.

        A file that shrank below the cursor (truncated, rotated) is read again from its start:
        the caller reads at offset 0 next.
        """
        answered = int(answer.get("offset", self.offset))
        if answered != self.offset:
            raise ValueError(f"asked for offset {self.offset}, got an answer for {answered}")
        data = str(answer.get("data", "")).encode("latin-1")
        self.offset += len(data)
        return data

    def restart_if_truncated(self, size: int) -> bool:
        """Go back to the start when the file is now smaller than the cursor; True if so."""
        if size < self.offset:
            self.offset = 0
            return True
        return False


def tail_start(data: bytes, data_offset: int, lines: int) -> int | None:
    """The file offset where the last `lines` lines begin, given `data`: the file's bytes from
    `data_offset` to its end. None when `data` does not reach back far enough (read more).

    A final newline ends the last line rather than starting an empty one; `lines=0` gives the
    end of the file.
    """
    if lines < 0:
        raise ValueError("lines must be 0 or more")
    end = len(data)
    if lines == 0:
        return data_offset + end
    position = end - 1 if data.endswith(b"\n") else end
    for _ in range(lines):
        position = data.rfind(b"\n", 0, position)
        if position == -1:
            return data_offset if data_offset == 0 else None
    return data_offset + position + 1
