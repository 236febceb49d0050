"""An agent stops on SIGTERM (exit 0) whether its link to the master is registered or retrying
a master it cannot reach. Each agent reaches its master through a proxy the test cuts.

A SIGTERM that arrived while the link cleaned up a stream that had just broken used to be
swallowed (the agent then retried the dead master until SIGKILL; mesos_runtime.tasks): that
window is a loop turn or two wide, too narrow to hit from outside the process, so
tests/integration/test_master_link.py cancels the link inside it."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fault.tcp_proxy import TcpProxy
from tests.integration.cluster import Cluster, Process, running_cluster
from tests.integration.conftest import FAST_MASTER_FLAGS

EXIT_BOUND_SECONDS = 30.0  # generous: a stopping agent exits well within it, a hung one never


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[tuple[Cluster, TcpProxy]]:
    """A master that agents started from the cluster reach through a proxy."""
    with running_cluster(tmp_path, FAST_MASTER_FLAGS) as cluster:
        proxy = TcpProxy(target_port=cluster.master_port)
        proxy.heal()
        cluster.master_port = proxy.port  # what agents started from now on are given
        try:
            yield cluster, proxy
        finally:
            proxy.cut()


def registered_agents(cluster: Cluster, count: int) -> list[Process]:
    agents = [cluster.start_agent() for _ in range(count)]
    for agent in agents:
        agent.wait_for_log("registered with master")
    return agents


def assert_exits(agent: Process) -> None:
    """`agent` exits, and with 0 (a clean stop), within EXIT_BOUND_SECONDS."""
    assert agent.popen is not None
    try:
        code = agent.popen.wait(EXIT_BOUND_SECONDS)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{agent.name} did not exit within {EXIT_BOUND_SECONDS:.0f}s of "
                             f"SIGTERM; its log ends with:\n{agent.log()[-3000:]}") from None
    assert code == 0, agent.log()[-3000:]
    assert "agent stopped" in agent.log()


def test_a_registered_agent_stops_on_sigterm(proxied: tuple[Cluster, TcpProxy]) -> None:
    cluster, _ = proxied
    [agent] = registered_agents(cluster, 1)
    agent.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert_exits(agent)


def test_an_agent_retrying_a_dead_master_stops_on_sigterm(
    proxied: tuple[Cluster, TcpProxy],
) -> None:
    cluster, proxy = proxied
    [agent] = registered_agents(cluster, 1)
    proxy.cut()
    agent.wait_for_log("master connection failed; retrying(.|\n)*"
                       "master connection failed; retrying")  # a second attempt failed too
    agent.popen.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
    assert_exits(agent)

