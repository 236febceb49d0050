"""Reading the security flags' values (ADR 0013): as in Mesos, `--credentials`, `--credential`
and `--acls` take a path, a `file://` URL, or the document itself (JSON starting with `{`)."""

from __future__ import annotations

from pathlib import Path

from mesos_security.acls import Acls, parse_acls
from mesos_security.credentials import (
    Credential,
    Credentials,
    parse_credential,
    parse_credentials,
)

__all__ = ["load_acls", "load_credential", "load_credentials"]


def _text(flag: str, value: str) -> str:
    if value.lstrip().startswith("{"):
        return value
    path = Path(value.removeprefix("file://"))
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"{flag}: cannot read {path}: {error.strerror or error}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{flag}: {path} is not UTF-8 text") from None


def load_credentials(value: str, flag: str = "--credentials") -> Credentials:
    """The credentials a server accepts; ValueError (never quoting a secret) otherwise."""
    try:
        return parse_credentials(_text(flag, value))
    except ValueError as error:
        raise ValueError(f"{flag}: {error}") from None


def load_credential(value: str, flag: str = "--credential") -> Credential:
    """The one credential a client presents."""
    try:
        return parse_credential(_text(flag, value))
    except ValueError as error:
        raise ValueError(f"{flag}: {error}") from None


def load_acls(value: str, flag: str = "--acls") -> Acls:
    """Mesos' ACLs."""
    try:
        return parse_acls(_text(flag, value))
    except ValueError as error:
        raise ValueError(f"{flag}: {error}") from None
