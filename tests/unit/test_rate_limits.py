"""`--rate_limits` (Mesos' RateLimits): parsing, and the per-principal queues of `Throttle`
(a permit every 1/qps seconds, at most `capacity` calls waiting, the aggregate default shared
by principals without an entry, anonymous callers as the principal "")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mesos_master.main import load_rate_limits
from mesos_master.rate_limits import Limit, RateLimited, RateLimits, Throttle, parse_rate_limits
from mesos_runtime.clock import FakeClock


def throttle(document: object) -> tuple[Throttle, FakeClock]:
    clock = FakeClock()
    return Throttle(parse_rate_limits(json.dumps(document)), clock.now, "calls"), clock


def test_parses_mesos_format() -> None:
    limits = parse_rate_limits(json.dumps({
        "limits": [{"principal": "marathon", "qps": 55.5, "capacity": 10},
                   {"principal": "batch"}],
        "aggregate_default_qps": 2, "aggregate_default_capacity": 0}))
    assert limits == RateLimits({"marathon": Limit(55.5, 10), "batch": Limit()}, Limit(2.0, 0))
    assert limits.enabled
    assert not parse_rate_limits('{"limits": [{"principal": "a"}]}').enabled
    assert not RateLimits().enabled


@pytest.mark.parametrize(("text", "error"), [
    ("[", "not JSON"),
    ("[]", "expected a JSON object"),
    ('{"limit": []}', "unknown field(s) 'limit'"),
    ('{"limits": {}}', "limits: expected a list"),
    ('{"limits": [1]}', "limits[0]: expected an object"),
    ('{"limits": [{"qps": 1}]}', "limits[0]: principal must be a string"),
    ('{"limits": [{"principal": "a", "qps": 0}]}', "qps must be a positive number"),
    ('{"limits": [{"principal": "a", "qps": true}]}', "qps must be a positive number"),
    ('{"limits": [{"principal": "a", "capacity": -1}]}', "capacity must be a non-negative"),
    ('{"limits": [{"principal": "a", "capacity": 1.5}]}', "capacity must be a non-negative"),
    ('{"limits": [{"principal": "a", "burst": 1}]}', "limits[0]: unknown field(s) 'burst'"),
    ('{"limits": [{"principal": "a"}, {"principal": "a"}]}', "'a' is listed twice"),
    ('{"aggregate_default_qps": "1"}', "aggregate_default_qps: qps must be"),
])
def test_refuses_bad_documents(text: str, error: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_rate_limits(text)
    assert error in str(raised.value)


def test_calls_wait_their_turn_up_to_capacity_then_are_refused() -> None:
    limiter, clock = throttle({"limits": [{"principal": "p", "qps": 2, "capacity": 2}]})
    assert limiter.acquire("p") == 0.0
    assert limiter.acquire("p") == 0.5
    assert limiter.acquire("p") == 1.0
    with pytest.raises(RateLimited) as raised:
        limiter.acquire("p")
    assert raised.value.message == (
        "too many calls of principal 'p': 2 per second are handled and 2 may wait for their "
        "turn (the limit of principal 'p' of --rate_limits); retry later")
    clock.advance(0.5)  # the second call's turn came: one place in the queue is free
    assert limiter.acquire("p") == 1.0
    clock.advance(10)  # idle: the next call goes at once
    assert limiter.acquire("p") == 0.0


def test_without_capacity_the_queue_is_unbounded_and_without_qps_there_is_no_limit() -> None:
    limiter, _ = throttle({"limits": [{"principal": "p", "qps": 1}, {"principal": "free"}],
                           "aggregate_default_qps": 1, "aggregate_default_capacity": 0})
    assert [limiter.acquire("p") for _ in range(4)] == [0.0, 1.0, 2.0, 3.0]
    assert all(limiter.acquire("free") == 0.0 for _ in range(100))


def test_principals_without_an_entry_and_anonymous_callers_share_the_aggregate() -> None:
    limiter, _ = throttle({"limits": [{"principal": "p", "qps": 1, "capacity": 0}],
                           "aggregate_default_qps": 1, "aggregate_default_capacity": 0})
    assert limiter.acquire("a") == 0.0
    with pytest.raises(RateLimited, match="the aggregate default of --rate_limits"):
        limiter.acquire("b")
    with pytest.raises(RateLimited, match="anonymous callers"):
        limiter.acquire(None)
    assert limiter.acquire("p") == 0.0  # its own limit, untouched by the others


def test_an_entry_for_the_empty_principal_limits_anonymous_callers_alone() -> None:
    limiter, _ = throttle({"limits": [{"principal": "", "qps": 0.001, "capacity": 0}]})
    assert limiter.acquire(None) == 0.0
    for _ in range(10):
        with pytest.raises(RateLimited, match="of anonymous callers"):
            limiter.acquire(None)
    assert limiter.acquire("someone") == 0.0  # no aggregate default: not limited


def test_the_flag_takes_the_json_a_path_or_a_file_url(tmp_path: Path) -> None:
    document = '{"limits": [{"principal": "p", "qps": 1}]}'
    (tmp_path / "limits.json").write_text(document)
    expected = RateLimits({"p": Limit(1.0)})
    assert load_rate_limits(document) == expected
    assert load_rate_limits(str(tmp_path / "limits.json")) == expected
    assert load_rate_limits(f"file://{tmp_path / 'limits.json'}") == expected
    with pytest.raises(ValueError, match="--rate_limits: cannot read"):
        load_rate_limits(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="--rate_limits: limits: expected a list"):
        load_rate_limits('{"limits": 1}')
