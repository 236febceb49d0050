"""The loop that keeps a client connected to the leading master; the agent's master link and
the SDK's scheduler driver both run it.

    hint, or detector ──▶ connect(master) ──▶ how the connection ended ──▶ retrying(...) ──┐
           ▲                                                                              │
           └──── at once (a hint) / after the backoff, cut short by a new leader ◀────────┘

A master that does not lead answers with the leader it knows (a hint). The loop follows a hint
at once, except:

- a hint naming a master this client could not reach since it was last connected is dropped,
  and the detector is asked for a leader other than that one: the answering master's view may
  be older than the detector's (it may not know yet that it was just elected itself);
- after an attempt that was itself following a hint, the hint is followed after the backoff,
  so that two masters naming each other are not tried in a tight loop.

Every backoff ends early when the detector names a leader other than the master just tried
(after a failover the backoff has grown; the new leader should not wait for it).

A client that holds passive streams to other masters (an agent, ADR 0018) and lost the one it
used (gone, or no longer leading) expects a failover: with a `patience`, its next attempt at
that master waits for the longer of the backoff and the patience, which the detector cuts short
as soon as it names the new leader. Without it, every agent of a dead leader would dial it
again and again until the election (tens of thousands of failed dials for 10,000 agents).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from mesos_coordination.detector import MasterDetector
from mesos_runtime.backoff import Backoff
from mesos_values.addresses import HostPort

__all__ = ["Connect", "Ended", "Retrying", "follow_leader"]


@dataclass(frozen=True, slots=True)
class Ended:
    """How one connection to a master ended."""

    problem: str
    """What went wrong, for the log."""
    connected: bool = False
    """It got as far as registering (or subscribing): the backoff starts again."""
    leader_hint: HostPort | None = None
    """The leader a master that does not lead named."""
    unreachable: bool = False
    """The master could not be reached (no connection, or the connection broke)."""
    failover_expected: bool = False
    """The master is gone or does not lead, and other masters hold this client's passive
    streams: one of them is likely to be elected (see `patience` in `follow_leader`)."""


Connect = Callable[[HostPort], Awaitable[Ended | None]]
"""Connects to the master given and returns how the connection ended; None ends the loop."""

Retrying = Callable[[HostPort, Ended, float], None]
"""Told the master tried, how that ended and the delay before the next attempt."""


async def follow_leader(
    detector: MasterDetector, connect: Connect, backoff: Backoff, retrying: Retrying,
    *, patience: Backoff | None = None,
) -> None:
    """Connect to the leading master again and again (see the module docstring) until `connect`
    returns None or the task is cancelled. `patience`: the least wait before trying a master
    again after an ending that expects a failover (`Ended.failover_expected`)."""
    unreachable: set[HostPort] = set()
    previous: HostPort | None = None
    target: HostPort | None = None
    hinted = False
    while True:
        master = target or await detector.detect(previous)
        previous, target, following_hint = master, None, hinted
        ended = await connect(master)
        if ended is None:
            return
        if ended.connected:
            backoff.reset()
            unreachable.clear()
            if patience is not None:
                patience.reset()
        if ended.unreachable:
            unreachable.add(master)
        if ended.leader_hint in unreachable:
            previous = ended.leader_hint
        else:
            target = ended.leader_hint
        hinted = target is not None
        delay = 0.0 if hinted and not following_hint else backoff.next_delay()
        if patience is not None and ended.failover_expected and not hinted:
            delay = max(delay, patience.next_delay())
        retrying(master, ended, delay)
        if delay > 0:
            newer = await _new_leader_within(detector, master, delay)
            if newer is not None:
                target, hinted = newer, False
                backoff.reset()
                if patience is not None:
                    patience.reset()


async def _new_leader_within(
    detector: MasterDetector, master: HostPort, delay: float
) -> HostPort | None:
    """Wait `delay`, but return at once with the leader when the detector names one other than
    `master` meanwhile; None after the whole delay."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(delay):
            return await detector.leader_other_than(master)
    return None
