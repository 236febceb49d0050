"""Start `mesos-dns` as a process and ask it with Debian's real `dig`."""

from __future__ import annotations

import subprocess
import sys

from tests.integration.cluster import Cluster, Process, free_port, port_answers, wait_for

DIG = "/usr/bin/dig"


def start_mesos_dns(cluster: Cluster, *flags: str, master: str | None = None,
                    name: str = "mesos-dns") -> tuple[Process, int]:
    """`mesos-dns` following the cluster's master (the leader's HTTP address, or the
    ZooKeeper group); returns it and its DNS port (its HTTP API is `process.http_url`)."""
    if master is None:
        master = cluster.zk_url or f"127.0.0.1:{cluster.masters[0].http_port}"
    dns_port, http_port = free_port(), free_port()
    process = Process(
        name,
        [sys.executable, "-m", "mesos_dns", "--master", master, "--port", str(dns_port),
         "--http_port", str(http_port), "--listener", "127.0.0.1", "--ttl", "5",
         "--log_level", "DEBUG", *flags],
        cluster.work_dir / f"{name}.log",
        http_port=http_port,
    ).start()
    cluster.processes.append(process)
    wait_for(lambda: port_answers(http_port) or not process.alive(), f"{name} to listen")
    assert process.alive(), process.log()
    return process, dns_port


def dig(port: int, name: str, qtype: str = "A", *options: str) -> list[str]:
    """`dig +short` answer lines."""
    output = _dig(port, name, qtype, "+short", *options)
    return sorted(line for line in output.splitlines() if line and not line.startswith(";"))


def dig_status(port: int, name: str, qtype: str = "A", *options: str) -> str:
    """The answer's status (NOERROR, NXDOMAIN, REFUSED, ...)."""
    output = _dig(port, name, qtype, *options)
    for line in output.splitlines():
        if "status:" in line:
            return line.split("status:")[1].split(",")[0].strip()
    raise AssertionError(f"dig printed no status:\n{output}")


def _dig(port: int, name: str, qtype: str, *options: str) -> str:
    result = subprocess.run(
        [DIG, "@127.0.0.1", "-p", str(port), name, qtype, "+time=2", "+tries=2", *options],
        capture_output=True, text=True, timeout=30, check=False)
    return result.stdout
