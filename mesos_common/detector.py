"""Leader detection (DESIGN decision 4): agents and schedulers find the leading master here.

`create_detector` turns the `--master` value into a detector. A standalone detector always
names the one configured master; the ZooKeeper detector arrives with the high-availability work.
"""

from __future__ import annotations

from typing import Protocol

from mesos_common.addresses import HostPort, parse_host_port, parse_zk_url


class MasterDetector(Protocol):
    """Tells where the leading master is."""

    async def detect(self, previous: HostPort | None = None) -> HostPort:
        """Return the leader; when `previous` is given, wait until the leader differs from it
        or until the caller should retry the same address (standalone detectors return at once)."""
        ...

    async def close(self) -> None:
        """Release any connection the detector holds."""
        ...


class StandaloneDetector:
    """A detector for a single, fixed master address."""

    def __init__(self, leader: HostPort) -> None:
        self.leader = leader

    async def detect(self, previous: HostPort | None = None) -> HostPort:
        return self.leader

    async def close(self) -> None:
        return None


def create_detector(master: str) -> MasterDetector:
    """Build a detector for `HOST:PORT` or `zk://...`; raises ValueError on bad input."""
    if master.startswith("zk://"):
        parse_zk_url(master)  # reject malformed URLs with the precise reason first
        raise ValueError(
            "ZooKeeper master detection (--master zk://...) is not supported yet; "
            "pass the master as HOST:PORT"
        )
    return StandaloneDetector(parse_host_port(master, what="master address"))
