"""Who is calling: a credential, else a client certificate; wrong credentials are refused."""

from __future__ import annotations

import pytest

from mesos_security.authentication import AuthenticationFailed, Authenticator
from mesos_security.credentials import Credential, basic_authorization, parse_credentials

KNOWN = Authenticator(parse_credentials("marathon m-secret\nagent a-secret"))
GOOD = basic_authorization(Credential("marathon", "m-secret"))
WRONG = basic_authorization(Credential("marathon", "guess"))


def test_a_credential_names_the_principal_and_a_wrong_one_is_refused() -> None:
    for required in (False, True):
        assert KNOWN.principal(GOOD, None, required=required) == "marathon"
        assert KNOWN.principal(GOOD, "cert-name", required=required) == "marathon"
        for bad in (WRONG, "Basic !!", "Bearer x",
                    basic_authorization(Credential("nobody", "m-secret"))):
            with pytest.raises(AuthenticationFailed) as refused:
                KNOWN.principal(bad, None, required=required)
            assert "m-secret" not in refused.value.message and "guess" not in str(
                refused.value)


def test_a_certificate_counts_without_a_credential() -> None:
    assert KNOWN.principal(None, "agent-7", required=True) == "agent-7"
    assert Authenticator().principal(None, "agent-7", required=True) == "agent-7"


def test_anonymous_calls_only_where_nothing_is_required() -> None:
    assert KNOWN.principal(None, None, required=False) is None
    with pytest.raises(AuthenticationFailed, match="authentication is required"):
        KNOWN.principal(None, None, required=True)
    # A server that knows no credentials and requires none takes a credential as anonymous.
    assert Authenticator().principal(WRONG, None, required=False) is None
    with pytest.raises(AuthenticationFailed):
        Authenticator().principal(WRONG, None, required=True)
