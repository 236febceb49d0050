"""Sharing the event loop with a burst: at most so many waiters go on per loop iteration.

A burst of coroutines that become ready together (say, 500 tasks whose checkpoint batch became
durable) runs every one of their next steps in one iteration of the loop, before any other
work that became ready meanwhile: the messages they queue, the answers they wait for, the
checkpoint batches they start. `Turns` lets them through a few per iteration, in arrival
order, so that the loop interleaves that other work with the burst. It does not bound how many
are past it at once (a bound on work in flight is a semaphore's job), so a burst costs no
throughput: only its order changes.
"""

from __future__ import annotations

import asyncio
from collections import deque

__all__ = ["Turns"]


class Turns:
    """Lets at most `per_turn` waiters of `wait()` go on per iteration of the running loop."""

    def __init__(self, per_turn: int) -> None:
        if per_turn < 1:
            raise ValueError("per_turn must be positive")
        self._per_turn = per_turn
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._scheduled = False

    @property
    def waiting(self) -> int:
        """How many wait for their turn."""
        return len(self._waiting)

    async def wait(self) -> None:
        """Return in a later iteration of the loop, after every earlier waiter."""
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        self._waiting.append(turn)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._release)
        await turn

    def _release(self) -> None:
        """Wake the next `per_turn` waiters (they run in the next iteration) and come back
        in the next iteration while some still wait."""
        released = 0
        while self._waiting and released < self._per_turn:
            turn = self._waiting.popleft()
            if not turn.done():  # a cancelled waiter gives its turn away
                turn.set_result(None)
                released += 1
        if self._waiting:
            asyncio.get_running_loop().call_soon(self._release)
        else:
            self._scheduled = False
