"""bench/quota_bench.py, bench/tasks_rss_bench.py and bench/grpc_stream_cost.py at their
smallest, so that the benchmarks keep working as the code under them changes."""

from __future__ import annotations

import re

import pytest

from tests.integration.benches import run_bench

pytestmark = pytest.mark.integration


def figure(pattern: str, text: str) -> re.Match[str]:
    found = re.search(pattern, text, re.M)
    assert found is not None, f"no match for {pattern!r} in:\n{text}"
    return found


def test_quota_bench_satisfies_every_quota_in_both_variants() -> None:
    # 60 roles: 50 with a 1-cpu quota, 10 with a 4-cpu one -> 90 cpus of quota; Mesos' agent
    # count 50 / 5 + 10 * 5 = 60 agents of 2 cpus -> 120 cpus.
    output = run_bench("quota_bench.py", "--roles", "60", "--parents", "6", "--cycles", "3")

    assert output.startswith("machine: ")
    sections = output.split("scenario ")[1:]
    assert [section.split(":", 1)[0] for section in sections] == [
        "flat", "hierarchical (6 parents)"
    ]
    for section in sections:
        cluster = section.split(":", 1)[1]
        assert cluster.startswith(" 60 agents x cpus:2;mem:2048;disk:2048, 60 roles")
        figure(r"setup \(add agents, frameworks, quotas\): [\d.]+ s$", section)
        first = figure(r"\(a\) first cycle, allocate\(\) over 60 agents: (\d+) grants in "
                       r"[\d.]+ s  \[Mesos 1\.9: ~15 s per cycle; (meets|MISSES) the", section)
        assert int(first.group(1)) >= 60  # every agent offered, the halves of some to two roles
        figure(r"quota consumed: 90 of 90 cpus of quota \(120 cpus in the cluster\)$", section)
        figure(r"\(b\) second full cycle, every role at its limit: 0 grants in [\d.]+ s", section)
        churn = figure(r"\(c\) 3 churn cycles, 10% of grants back .*: allocate\(\) p50 [\d.]+ ms, "
                       r"max [\d.]+ ms, median (\d+) grants per cycle", section)
        assert int(churn.group(1)) > 0  # what finished is offered again


def test_tasks_rss_bench_measures_the_master_with_every_task_running() -> None:
    output = run_bench(
        "tasks_rss_bench.py", "--agents", "40", "--tasks-per-agent", "3",
        "--agent_processes", "2", "--frameworks", "2", "--timeout", "60",
    )

    assert output.startswith("machine: ")
    figure(r"master RSS, no agents: \d+ MiB", output)
    figure(r"\(a\) register 40 agents \(2 processes\): [\d.]+ s$", output)
    figure(r"master RSS with 40 agents registered: \d+ MiB", output)
    launch = figure(r"\(b\) launch 120 tasks \(3 per agent, 2 frameworks\), first launch to last "
                    r"TASK_RUNNING: ([\d.]+) s \((\d+) tasks/s\)", output)
    assert 0 < float(launch.group(1)) < 60
    rss = figure(r"\(c\) master RSS with 40 agents and 120 running tasks: (\d+) MiB.*"
                 r"\[meets the <= 512 MiB target\]", output)
    assert 0 < int(rss.group(1)) <= 512
    figure(r"growth since \(a\): -?\d+ MiB, -?[\d.]+ MiB per 1,000 tasks", output)


def test_grpc_stream_cost_bench_opens_every_stream_and_round_trips_on_each() -> None:
    output = run_bench("grpc_stream_cost.py", "--streams", "50")
    lines = output.splitlines()
    assert len(lines) == 3, output
    figure(r"^server RSS with no stream: \d+ MiB$", lines[0])
    figure(r"^open a stream, one message each way: 50 in [\d.]+ s; CPU client [\d.]+ s "
           r"\([\d.]+ ms each\), server [\d.]+ s \([\d.]+ ms each\); server RSS \d+ MiB$",
           lines[1])
    figure(r"^one more round trip on each open stream: 50 in [\d.]+ s; .*server RSS \d+ MiB$",
           lines[2])
