"""Who is calling (ADR 0013): the principal of a call, from its credential or its client
certificate, as a pure core.

    authenticator.principal(authorization, certificate, required=...) -> principal | None

A call may carry a credential (`authorization: Basic ...`, see `credentials`) and, over mutual
TLS, a verified client certificate whose common name is a principal. A credential is checked
against the known ones whenever the server has any: a wrong one is always refused, never
quietly treated as anonymous. Without a credential the certificate's principal counts. When
the entry point requires authentication (`--authenticate_frameworks`, `--authenticate_agents`,
`--authenticate_http_*`) a call with neither is refused. `AuthenticationFailed` never says
which of principal and secret was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mesos_security.credentials import Credentials, parse_basic_authorization

__all__ = ["AuthenticationFailed", "Authenticator"]


class AuthenticationFailed(Exception):
    """The call is refused as unauthenticated (gRPC UNAUTHENTICATED, HTTP 401)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Authenticator:
    """The known credentials of a server (empty: it knows none)."""

    credentials: Credentials = field(default_factory=Credentials)

    def principal(self, authorization: str | None, certificate: str | None, *,
                  required: bool) -> str | None:
        """The call's principal; None for an anonymous call that is allowed."""
        if authorization:
            presented = parse_basic_authorization(authorization)
            if presented is None:
                raise AuthenticationFailed("the authorization is not 'Basic' with a "
                                           "base64 'principal:secret'")
            if self.credentials.verify(presented):
                return presented.principal
            if self.credentials.secrets or required:
                raise AuthenticationFailed(
                    f"invalid credential for principal {presented.principal!r}")
            # A server that knows no credentials and requires none takes the call as it
            # takes every other: anonymous (its FrameworkInfo.principal is a claim).
        if certificate:
            return certificate
        if required:
            raise AuthenticationFailed(
                "authentication is required: present a credential (principal and secret) "
                "or a client certificate")
        return None
