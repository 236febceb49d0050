"""bench/registry_decode_cost.py at its smallest, so that it keeps working as the code under it
changes (its figures are never asserted)."""

from __future__ import annotations

import re

import pytest

from tests.integration.benches import run_bench

pytestmark = pytest.mark.integration


def test_registry_decode_bench_times_the_election_with_and_without_the_standby_s_decode() -> None:
    output = run_bench("registry_decode_cost.py", "--agents", "20", "--frameworks", "2",
                       "--repeat", "1")

    lines = output.splitlines()
    assert lines[0] == "20 agents, 2 frameworks, best of 1 (CPU seconds):", output
    assert re.fullmatch(r"  decode +[\d.]+ s \(RegistryState.decode \+ Master\)", lines[1])
    assert re.fullmatch(r"  decoded +[\d.]+ s \(RegistryDecoder.take \+ Master\)", lines[2])
    assert re.fullmatch(r"  standby +[\d.]+ s \(first copy\), [\d.]+ ms \(a copy read again, "
                        r"one agent changed\)", lines[3])
    assert len(lines) == 4, output
