"""Mesos' credentials files, Basic authorization values, and secrets kept out of sight."""

from __future__ import annotations

import pytest

from mesos_security.credentials import (
    Credential,
    basic_authorization,
    parse_basic_authorization,
    parse_credential,
    parse_credentials,
)


def test_both_file_forms_and_the_check() -> None:
    json_form = parse_credentials(
        '{"credentials": [{"principal": "marathon", "secret": "m-secret"},'
        ' {"principal": "agent", "secret": "a-secret"}]}')
    text_form = parse_credentials("# operators\nmarathon m-secret\n\nagent   a-secret\n")
    assert json_form == text_form
    assert json_form.principals == {"marathon", "agent"}
    assert json_form.verify(Credential("marathon", "m-secret"))
    assert not json_form.verify(Credential("marathon", "a-secret"))
    assert not json_form.verify(Credential("nobody", ""))
    assert parse_credential("agent a-secret") == Credential("agent", "a-secret")


def test_secrets_never_show() -> None:
    credentials = parse_credentials("marathon hunter2")
    assert "hunter2" not in repr(credentials)
    assert "hunter2" not in repr(Credential("marathon", "hunter2"))
    for bad in ('{"credentials": [{"principal": "p", "secret": 7}]}', "p hunter2 extra",
                "p hunter2\np other", '{"credentials": [{"secret": "hunter2"}]}',
                '{"credentials": "hunter2"}', '{"credentials": [hunter2]}'):
        with pytest.raises(ValueError) as refused:
            parse_credentials(bad)
        assert "hunter2" not in str(refused.value), bad
    with pytest.raises(ValueError, match="exactly one"):
        parse_credential("a x\nb y")


def test_basic_authorization_round_trips_and_refuses_garbage() -> None:
    credential = Credential("fw", "s:e:c ret")
    value = basic_authorization(credential)
    assert value.startswith("Basic ")
    assert parse_basic_authorization(value) == credential
    assert parse_basic_authorization("basic " + value.split()[1]) == credential
    for garbage in ("", "Bearer abc", "Basic", "Basic !!!", "Basic bm9jb2xvbg==",
                    "Basic OnNlY3JldA==", "Basic //79"):
        assert parse_basic_authorization(garbage) is None, garbage
