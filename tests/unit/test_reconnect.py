"""The reconnect loop of the agent's link and the scheduler driver (mesos_coordination.reconnect),
against a scripted detector and scripted connections."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from mesos_coordination.reconnect import Ended, follow_leader
from mesos_runtime.backoff import Backoff
from mesos_values.addresses import HostPort

A, B, C = HostPort("a", 1), HostPort("b", 2), HostPort("c", 3)
WAIT = 10.0


class Detector:
    """Names `leader` at once (as a standalone detector does), or with `waits`, when asked with
    `previous` equal to it, once `elect` names another (as a ZooKeeper detector does)."""

    def __init__(self, leader: HostPort, *, waits: bool = False) -> None:
        self.leader = leader
        self.waits = waits
        self.asked: list[HostPort | None] = []
        self._changed = asyncio.Event()

    def elect(self, leader: HostPort) -> None:
        self.leader = leader
        self._changed.set()

    async def detect(self, previous: HostPort | None = None) -> HostPort:
        self.asked.append(previous)
        while self.waits and self.leader == previous:
            self._changed.clear()
            await self._changed.wait()
        return self.leader

    async def leader_other_than(self, previous: HostPort) -> HostPort:
        self.asked.append(previous)
        while self.leader == previous:
            self._changed.clear()
            await self._changed.wait()
        return self.leader

    async def close(self) -> None:
        return None


class ElectionDetector(Detector):
    """Names `old` until asked for a leader other than it, then `new` (a ZooKeeper detector
    once it has seen the election)."""

    def __init__(self, old: HostPort, new: HostPort) -> None:
        super().__init__(old)
        self.new = new

    async def detect(self, previous: HostPort | None = None) -> HostPort:
        self.asked.append(previous)
        return self.leader if previous is None else self.new

    async def leader_other_than(self, previous: HostPort) -> HostPort:
        self.asked.append(previous)
        if self.new == previous:
            await asyncio.get_running_loop().create_future()  # no other is named: waits
        return self.new


class Script:
    """Ends the connections to masters with the `Ended`s given, in order; None ends the loop."""

    def __init__(self, endings: Iterable[Ended | None]) -> None:
        self.endings = list(endings)
        self.tried: list[HostPort] = []
        self.delays: list[float] = []

    async def connect(self, master: HostPort) -> Ended | None:
        self.tried.append(master)
        return self.endings.pop(0)

    def retrying(self, master: HostPort, ended: Ended, delay: float) -> None:
        self.delays.append(delay)


async def run(detector: Detector, script: Script, backoff: Backoff | None = None) -> None:
    backoff = backoff or Backoff(0.001, 0.004, jitter=0.0)
    async with asyncio.timeout(WAIT):
        await follow_leader(detector, script.connect, backoff, script.retrying)


async def test_a_hint_is_followed_at_once() -> None:
    script = Script([Ended("not the leader", leader_hint=B), None])
    await run(Detector(A), script)
    assert script.tried == [A, B]
    assert script.delays == [0.0]


async def test_a_hint_after_a_hint_waits_for_the_backoff() -> None:
    script = Script([
        Ended("not the leader", leader_hint=B), Ended("not the leader", leader_hint=A), None,
    ])
    await run(Detector(A), script)
    assert script.tried == [A, B, A]
    assert script.delays == [0.0, 0.001]


async def test_a_hint_to_a_master_found_unreachable_is_not_followed() -> None:
    # A is gone; B is elected but does not know it yet, and names A.
    detector = ElectionDetector(A, B)
    script = Script([
        Ended("no connection", unreachable=True), Ended("not the leader", leader_hint=A), None,
    ])
    await run(detector, script)
    assert script.tried == [A, B, B]
    assert detector.asked[-1] == A  # asked for a leader other than the unreachable one


async def test_a_hint_to_a_master_unreachable_before_a_connection_is_followed() -> None:
    script = Script([
        Ended("no connection", unreachable=True), Ended("lost", connected=True),
        Ended("not the leader", leader_hint=A), None,
    ])
    await run(ElectionDetector(A, B), script)
    assert script.tried == [A, B, B, A]


async def test_the_backoff_grows_and_starts_again_after_a_connection() -> None:
    script = Script([Ended("refused"), Ended("refused"), Ended("lost", connected=True),
                     Ended("refused"), None])
    await run(Detector(A), script)
    assert script.delays == [0.001, 0.002, 0.001, 0.002]


async def test_a_new_leader_cuts_the_backoff_short() -> None:
    detector = Detector(A, waits=True)
    script = Script([Ended("refused"), None])

    def retrying(master: HostPort, ended: Ended, delay: float) -> None:
        detector.elect(B)

    async with asyncio.timeout(WAIT):
        await follow_leader(detector, script.connect, Backoff(3600, 3600, jitter=0.0), retrying)
    assert script.tried == [A, B]


async def test_an_expected_failover_waits_the_patience_and_it_grows() -> None:
    # A holds the client's active stream; other masters hold its passive streams (ADR 0018).
    script = Script([Ended("lost", connected=True, failover_expected=True),
                     Ended("no connection", unreachable=True, failover_expected=True),
                     Ended("no connection", unreachable=True), None])
    patience = Backoff(0.002, 0.004, jitter=0.0)
    async with asyncio.timeout(WAIT):
        await follow_leader(Detector(A), script.connect, Backoff(0.001, 0.001, jitter=0.0),
                            script.retrying, patience=patience)
    assert script.tried == [A, A, A, A]
    assert script.delays == [0.002, 0.004, 0.001]  # the last ending expects no failover


async def test_a_hint_is_followed_at_once_even_when_a_failover_is_expected() -> None:
    script = Script([Ended("not the leader", leader_hint=B, failover_expected=True), None])
    async with asyncio.timeout(WAIT):
        await follow_leader(Detector(A), script.connect, Backoff(0.001, 0.001, jitter=0.0),
                            script.retrying, patience=Backoff(3600, 3600, jitter=0.0))
    assert script.tried == [A, B]
    assert script.delays == [0.0]


async def test_the_election_cuts_the_patience_short() -> None:
    detector = Detector(A, waits=True)
    script = Script([Ended("lost", connected=True, failover_expected=True), None])

    def retrying(master: HostPort, ended: Ended, delay: float) -> None:
        script.delays.append(delay)
        detector.elect(B)

    async with asyncio.timeout(WAIT):
        await follow_leader(detector, script.connect, Backoff(0.001, 0.001, jitter=0.0),
                            retrying, patience=Backoff(3600, 3600, jitter=0.0))
    assert script.tried == [A, B]
    assert script.delays == [3600]
