"""Random (version 4) UUIDs for the ids the agent makes several times per task: status update
uuids and container ids. What `uuid.uuid4()` gives, without building a `uuid.UUID` (its
constructor checks and converts in Python: most of the ~2 us a call costs). Pure: the
randomness is the operating system's, as `uuid.uuid4` has it (`secrets` reads `os.urandom`)."""

from __future__ import annotations

import secrets

__all__ = ["random_uuid", "random_uuid_string"]

_CLEAR = ~((0xF000 << 64) | (0xC000 << 48)) & ((1 << 128) - 1)
_VERSION_4 = (0x4000 << 64) | (0x8000 << 48)  # version 4, RFC 4122 variant


def random_uuid() -> bytes:
    """16 bytes: a random UUID as `uuid.uuid4().bytes` has it."""
    value = int.from_bytes(secrets.token_bytes(16)) & _CLEAR | _VERSION_4
    return value.to_bytes(16)


def random_uuid_string() -> str:
    """A random UUID as `str(uuid.uuid4())` has it (lowercase hex with dashes)."""
    text = random_uuid().hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
