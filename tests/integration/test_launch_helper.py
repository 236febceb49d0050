"""`mesos-launch` built with the machine's real C compiler, and what it does when run."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesos_agent.containerizer import launch_helper as helper_module
from mesos_agent.containerizer.launch_helper import launch_helper

pytestmark = pytest.mark.integration


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    launch_helper.cache_clear()
    yield tmp_path
    launch_helper.cache_clear()


def test_built_once_into_the_cache_named_by_its_source(fresh_cache: Path) -> None:
    built = launch_helper()
    assert built is not None, "no C compiler? the test script installs gcc"
    assert Path(built).parent == fresh_cache / "mesos"
    assert os.access(built, os.X_OK)
    launch_helper.cache_clear()
    mtime = Path(built).stat().st_mtime_ns
    assert launch_helper() == built and Path(built).stat().st_mtime_ns == mtime  # not rebuilt


def test_no_compiler_means_no_helper(fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "no-such-cc")
    monkeypatch.setenv("PATH", str(fresh_cache))  # no gcc either
    assert launch_helper() is None


def test_a_source_that_does_not_build_means_no_helper(
        fresh_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = fresh_cache / "broken.c"
    broken.write_text("int main( {")
    monkeypatch.setattr(helper_module, "_SOURCE", broken)
    assert launch_helper() is None
    assert list((fresh_cache / "mesos").iterdir()) == []  # no half-built file left


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    helper = launch_helper()
    assert helper is not None
    return subprocess.run([helper, *argv], capture_output=True, text=True, timeout=30,
                          check=False)


def test_exit_codes_as_a_shell_reports_them() -> None:
    assert run("-m", "--", "sh", "-c", "exit 7").returncode == 7
    missing = run("-m", "--", "no-such-program-x")
    assert missing.returncode == 127
    assert "cannot run no-such-program-x" in missing.stderr
    bad = run("-c", "/nonexistent/cgroup.procs", "--", "true")
    assert bad.returncode == 125
    assert "cannot join the cgroup of /nonexistent/cgroup.procs" in bad.stderr
    assert run("-x", "--", "true").returncode == 125
    assert run("-p").returncode == 125


@pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")
def test_pid_namespace_init_and_signal_status() -> None:
    listed = run("-p", "--", "sh", "-c", "echo $$; ls /proc | grep -c '^[0-9]'")
    assert listed.returncode == 0, listed.stderr
    own_pid, processes = listed.stdout.split()
    assert own_pid == "2"  # pid 1 is mesos-launch itself, the namespace's init
    assert int(processes) <= 4
    killed = run("-p", "--", "sh", "-c", "kill -TERM $$")
    assert killed.returncode == 128 + 15


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_user_and_groups() -> None:
    who = run("-u", "65534", "-g", "65534", "-G", "65534", "--", "id", "-u")
    assert who.stdout == "65534\n"


_MEMORY = Path("/sys/fs/cgroup/memory")


@pytest.mark.skipif(os.geteuid() != 0 or not (_MEMORY / "memory.limit_in_bytes").exists(),
                    reason="needs root and a cgroup v1 memory hierarchy")
def test_makes_limits_and_joins_its_cgroup_before_the_command() -> None:
    base = _MEMORY / f"mesos-launch-test-{os.getpid()}"
    base.mkdir()
    try:
        (base / "pool-1").mkdir()
        cgroup = base / "c1"
        limit = str(64 * 2**20)
        joined = run("-k", str(cgroup), "pool-1", "-w", str(cgroup / "memory.limit_in_bytes"),
                     limit, "-c", str(cgroup / "cgroup.procs"), "--", "cat", "/proc/self/cgroup")
        assert joined.returncode == 0, joined.stderr
        memory = next(line for line in joined.stdout.splitlines() if ":memory:" in line)
        assert memory.endswith(f"/{base.name}/c1")  # the command ran in it
        assert (cgroup / "memory.limit_in_bytes").read_text().strip() == limit
        assert not (base / "pool-1").exists()  # the premade cgroup became the container's
        made = run("-k", str(base / "c2"), "", "-c", str(base / "c2" / "cgroup.procs"), "--",
                   "true")
        assert made.returncode == 0 and (base / "c2").is_dir()  # none premade: made
        bad = run("-k", str(base / "c3"), "", "-w", str(base / "c3" / "memory.limit_in_bytes"),
                  "a lot", "--", "true")
        assert bad.returncode == 125  # a limit that cannot be set: the command never runs
        assert f"cannot write {base / 'c3' / 'memory.limit_in_bytes'}" in bad.stderr
    finally:
        for child in base.iterdir():
            if child.is_dir():
                child.rmdir()
        base.rmdir()
