from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, running_cluster

# Short timeouts so that failure detection happens quickly in tests.
FAST_MASTER_FLAGS = [
    "--agent_ping_timeout",
    "0.5secs",
    "--max_agent_ping_timeouts",
    "4",
    "--scheduler_heartbeat_interval",
    "1secs",
]


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """A running master (fast failure detection); start agents with `cluster.start_agent()`."""
    with running_cluster(tmp_path, FAST_MASTER_FLAGS) as running:
        yield running
