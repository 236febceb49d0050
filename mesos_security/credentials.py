"""Principals and secrets (ADR 0013): Mesos' credentials files, and checking a presented
credential without leaking the secret.

`--credentials` takes Mesos' JSON::

    {"credentials": [{"principal": "marathon", "secret": "s3cr3t"}, ...]}

or its older text form, one `principal secret` pair per line. A single `--credential` (what
an agent or a scheduler presents) is either form with exactly one pair. Secrets never appear
in a `repr`, and presented secrets are compared in constant time.

Over gRPC and HTTP a credential travels as `Basic base64(principal:secret)`, the
`authorization` header or metadata entry of Mesos' HTTP APIs.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = [
    "AUTHORIZATION_KEY",
    "Credential",
    "Credentials",
    "basic_authorization",
    "parse_basic_authorization",
    "parse_credential",
    "parse_credentials",
]

AUTHORIZATION_KEY = "authorization"
"""The gRPC metadata key (and HTTP header, case aside) that carries a credential."""


@dataclass(frozen=True, slots=True)
class Credential:
    """A principal and its secret; the secret is left out of `repr`."""

    principal: str
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class Credentials:
    """The principals a server accepts, with their secrets."""

    secrets: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def of(cls, credentials: Iterable[Credential]) -> Credentials:
        return cls({c.principal: c.secret for c in credentials})

    def verify(self, presented: Credential) -> bool:
        """Whether `presented` names a known principal with its secret (constant time in the
        secret; an unknown principal costs one comparison too)."""
        expected = self.secrets.get(presented.principal)
        matched = hmac.compare_digest(presented.secret.encode(),
                                      (expected if expected is not None else "").encode())
        return expected is not None and matched

    @property
    def principals(self) -> frozenset[str]:
        return frozenset(self.secrets)


def parse_credentials(text: str) -> Credentials:
    """Mesos' credentials file (JSON or `principal secret` lines); ValueError otherwise.
    The error never quotes a secret."""
    return Credentials.of(_pairs(text))


def parse_credential(text: str) -> Credential:
    """A file holding exactly one credential, in either form."""
    pairs = _pairs(text)
    if len(pairs) != 1:
        raise ValueError(f"a credential file must hold exactly one credential, not {len(pairs)}")
    return pairs[0]


def basic_authorization(credential: Credential) -> str:
    """`Basic base64(principal:secret)`."""
    token = base64.b64encode(f"{credential.principal}:{credential.secret}".encode())
    return f"Basic {token.decode('ascii')}"


def parse_basic_authorization(value: str) -> Credential | None:
    """The credential in a `Basic ...` authorization value; None when it is not one."""
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    principal, colon, secret = decoded.partition(":")
    if not colon or not principal:
        return None
    return Credential(principal, secret)


def _pairs(text: str) -> list[Credential]:
    stripped = text.strip()
    if stripped.startswith("{"):
        return _json_pairs(stripped)
    pairs = []
    for number, line in enumerate(stripped.splitlines(), start=1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) != 2:
            raise ValueError(f"credentials line {number}: expected 'principal secret'")
        pairs.append(Credential(words[0], words[1]))
    return _unique(pairs)


def _json_pairs(text: str) -> list[Credential]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ValueError(f"credentials are not JSON: {error.__class__.__name__} at "
                         f"position {getattr(error, 'pos', '?')}") from None
    entries = document.get("credentials") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise ValueError('credentials must be {"credentials": [{"principal": ..., '
                         '"secret": ...}, ...]}')
    pairs = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or not isinstance(entry.get("principal"), str) \
                or not isinstance(entry.get("secret"), str) or not entry["principal"]:
            raise ValueError(f"credentials[{index}] must have a non-empty string 'principal' "
                             f"and a string 'secret'")
        pairs.append(Credential(entry["principal"], entry["secret"]))
    return _unique(pairs)


def _unique(pairs: list[Credential]) -> list[Credential]:
    seen: set[str] = set()
    for pair in pairs:
        if pair.principal in seen:
            raise ValueError(f"credentials name principal {pair.principal!r} twice")
        seen.add(pair.principal)
    return pairs
