"""Reading a master's refusal (mesos_runtime.channels)."""

from __future__ import annotations

import grpc
import grpc.aio

from mesos_runtime.channels import LEADER_METADATA_KEY, leader_hint, unreachable
from mesos_values.addresses import HostPort


def refusal(code: grpc.StatusCode, *trailing: tuple[str, str]) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details="refused"
    )


def test_a_master_that_does_not_lead_names_the_leader() -> None:
    error = refusal(grpc.StatusCode.UNAVAILABLE, (LEADER_METADATA_KEY, "10.0.0.2:5050"))
    assert leader_hint(error) == HostPort("10.0.0.2", 5050)
    assert not unreachable(error)


def test_a_master_that_knows_no_leader_names_none_but_was_reached() -> None:
    error = refusal(grpc.StatusCode.UNAVAILABLE, (LEADER_METADATA_KEY, ""))
    assert leader_hint(error) is None
    assert not unreachable(error)


def test_unavailable_without_the_key_is_an_unreachable_master() -> None:
    error = refusal(grpc.StatusCode.UNAVAILABLE)
    assert leader_hint(error) is None
    assert unreachable(error)


def test_other_codes_carry_no_hint() -> None:
    error = refusal(grpc.StatusCode.FAILED_PRECONDITION, (LEADER_METADATA_KEY, "h:1"))
    assert leader_hint(error) is None
    assert not unreachable(error)
    assert leader_hint(refusal(grpc.StatusCode.UNAVAILABLE, (LEADER_METADATA_KEY, "bad"))) is None
