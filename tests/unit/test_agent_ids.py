"""The agent's random uuids: version 4 and RFC 4122 variant, as `uuid.uuid4` makes them."""

from __future__ import annotations

import re
import uuid

from mesos_agent.ids import random_uuid, random_uuid_string


def test_random_uuids_are_version_4_and_differ() -> None:
    made = [random_uuid() for _ in range(1000)]
    assert len(set(made)) == len(made)
    for value in made:
        parsed = uuid.UUID(bytes=value)
        assert len(value) == 16
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)


def test_random_uuid_strings_are_what_str_of_a_uuid4_looks_like() -> None:
    made = [random_uuid_string() for _ in range(1000)]
    assert len(set(made)) == len(made)
    for text in made:
        assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}",
                            text)
        assert str(uuid.UUID(text)) == text
