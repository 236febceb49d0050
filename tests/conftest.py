"""Settings shared by every test: a deterministic, bounded Hypothesis profile.

Property tests run the same examples on every run (`derandomize`), keep no example database
between runs and have no per-example deadline (the machine is shared), so they are never flaky
and stay fast. `HYPOTHESIS_PROFILE=thorough` runs many more examples when hunting for bugs.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.zookeeper import ZooKeeperEnsemble, zookeeper

_PHASES = (Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink)

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=80,
    print_blob=False,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile(
    "thorough",
    derandomize=False,
    database=None,
    deadline=None,
    max_examples=5_000,
    phases=_PHASES,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def compiled_once_for_child_processes(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Where the environment forbids bytecode files (PYTHONDONTWRITEBYTECODE), every component
    process the suite starts (masters, agents, services, the CLI: thousands) would compile each
    module it imports from source again, about a tenth of a second of CPU per start. The suite's
    child processes instead keep their bytecode in the session's temporary directory
    (PYTHONPYCACHEPREFIX), never beside the sources, so only the first start compiles."""
    if os.environ.get("PYTHONDONTWRITEBYTECODE") and not os.environ.get("PYTHONPYCACHEPREFIX"):
        del os.environ["PYTHONDONTWRITEBYTECODE"]
        os.environ["PYTHONPYCACHEPREFIX"] = str(tmp_path_factory.mktemp("pycache"))


@pytest.fixture(scope="session")
def shared_zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperEnsemble]:
    """One standalone ZooKeeper for the tests that only use it (starting one costs seconds);
    each test keeps to a path of its own (`unique_zk_path`). A test that stops, kills or
    partitions ZooKeeper starts a private one instead."""
    with zookeeper(tmp_path_factory.mktemp("shared-zk")) as ensemble:
        yield ensemble


def unique_zk_path(prefix: str) -> str:
    """`prefix` with a random suffix: a test's own znode in the shared ZooKeeper."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
