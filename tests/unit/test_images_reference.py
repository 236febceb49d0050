"""Image names as Docker reads them (`parse_reference`)."""

from __future__ import annotations

import pytest

from mesos_agent.images.reference import (
    DOCKER_HUB,
    ImageReference,
    InvalidReference,
    parse_reference,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(("text", "expected"), [
    ("busybox", ImageReference("", "library/busybox", "latest")),
    ("library/busybox:1.36", ImageReference("", "library/busybox", "1.36")),
    ("team/app", ImageReference("", "team/app", "latest")),
    ("docker.io/busybox", ImageReference(DOCKER_HUB, "library/busybox", "latest")),
    ("registry:5000/team/app@" + DIGEST, ImageReference("registry:5000", "team/app", None, DIGEST)),
    ("127.0.0.1:5000/app:v1", ImageReference("127.0.0.1:5000", "app", "v1")),
    ("localhost/app", ImageReference("localhost", "app", "latest")),
    ("quay.io/org/sub/app:1.0@" + DIGEST, ImageReference("quay.io", "org/sub/app", "1.0", DIGEST)),
    ("my-app__x.y", ImageReference("", "library/my-app__x.y", "latest")),
], ids=lambda value: value if isinstance(value, str) else "")
def test_names_as_docker_reads_them(text: str, expected: ImageReference) -> None:
    assert parse_reference(text) == expected


def test_the_manifest_reference_is_the_digest_when_there_is_one() -> None:
    assert parse_reference("app:1@" + DIGEST).reference == DIGEST
    assert parse_reference("app:1").reference == "1"
    assert str(parse_reference("registry:5000/app:1")) == "registry:5000/app:1"
    assert str(parse_reference("busybox")) == "library/busybox:latest"


@pytest.mark.parametrize(("text", "why"), [
    ("", "no repository"),
    ("Busybox", "invalid repository name"),
    ("busybox:", "invalid tag"),
    ("busybox:-x", "invalid tag"),
    ("app@sha256:12", "invalid digest"),
    ("app@md5", "invalid digest"),
    ("a//b", "invalid repository name"),
    ("registry:5000/", "invalid repository name"),
    ("bad_host:x/app", "invalid registry"),
    ("x" * 256, "longer than 255"),
])
def test_what_is_no_image_name_is_refused_saying_why(text: str, why: str) -> None:
    with pytest.raises(InvalidReference, match=why):
        parse_reference(text)
