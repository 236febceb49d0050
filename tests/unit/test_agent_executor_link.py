"""Executor authentication's pure parts: reading the bearer token, judging it."""

from __future__ import annotations

import grpc
import pytest

from mesos_agent.executor_link import bearer_token, token_refusal


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        (None, None),
        ((), None),
        ((("authorization", "Bearer abc"),), "abc"),
        ((("Authorization", "bearer  abc "),), "abc"),
        ((("user-agent", "x"), ("authorization", "Bearer abc")), "abc"),
        ((("authorization", "Basic abc"),), None),
        ((("authorization", "Bearer "),), None),
        ((("authorization", "Bearer"),), None),
        ((("authorization-bin", b"Bearer abc"),), None),
    ],
    ids=["none", "empty", "bearer", "case-and-blanks", "among-others", "basic", "blank-token",
         "no-token", "binary"],
)
def test_bearer_token(
    metadata: tuple[tuple[str, str | bytes], ...] | None, expected: str | None
) -> None:
    assert bearer_token(metadata) == expected


@pytest.mark.parametrize(
    ("expected", "presented", "code"),
    [
        ("secret", "secret", None),
        ("secret", None, grpc.StatusCode.UNAUTHENTICATED),
        ("secret", "other", grpc.StatusCode.PERMISSION_DENIED),
        ("secret", "secret2", grpc.StatusCode.PERMISSION_DENIED),
        ("secret", "", grpc.StatusCode.PERMISSION_DENIED),
        ("", None, None),  # launched by an agent version that gave executors no token
        ("", "anything", None),
    ],
    ids=["match", "missing", "other", "prefix", "empty", "legacy", "legacy-with-token"],
)
def test_token_refusal(
    expected: str, presented: str | None, code: grpc.StatusCode | None
) -> None:
    refusal = token_refusal(expected, presented)
    assert (refusal[0] if refusal is not None else None) == code
    if refusal is not None:
        assert "secret" not in refusal[1]  # the message never shows a token
