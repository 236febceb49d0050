"""Manifests, indexes and configurations as registries serve them (`manifest`)."""

from __future__ import annotations

import hashlib
import json

import pytest

from mesos_agent.images.manifest import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageError,
    ImageIndex,
    ImageManifest,
    Platform,
    check_digest,
    check_platform,
    parse_config,
    parse_manifest,
    select_platform,
)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


CONFIG = digest(b"config")
LAYER = digest(b"layer")


def manifest(media_type: str, layer_type: str) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": media_type,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": CONFIG,
                   "size": 6},
        "layers": [{"mediaType": layer_type, "digest": LAYER, "size": 5}],
    }).encode()


def index(media_type: str, *platforms: tuple[str, str, str]) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest(f"{os}{arch}{variant}".encode()), "size": 9,
         "platform": {"os": os, "architecture": arch, **({"variant": variant} if variant else {})}}
        for os, arch, variant in platforms]}).encode()


@pytest.mark.parametrize(("media_type", "layer_type", "compression"), [
    (DOCKER_MANIFEST, "application/vnd.docker.image.rootfs.diff.tar.gzip", "gzip"),
    (OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar+gzip", "gzip"),
    (OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar", ""),
])
def test_docker_and_oci_manifests(media_type: str, layer_type: str, compression: str) -> None:
    parsed = parse_manifest(media_type, manifest(media_type, layer_type))
    assert isinstance(parsed, ImageManifest)
    assert parsed.config.digest == CONFIG
    assert [(layer.digest, layer.compression) for layer in parsed.layers] == [
        (LAYER, compression)]


@pytest.mark.parametrize("media_type", [OCI_INDEX, DOCKER_MANIFEST_LIST])
def test_an_index_resolves_to_this_machines_platform(media_type: str) -> None:
    parsed = parse_manifest(media_type, index(media_type, ("linux", "arm", "v7"),
                                              ("linux", "amd64", ""), ("linux", "arm64", "v8")))
    assert isinstance(parsed, ImageIndex)
    assert select_platform(parsed, Platform("linux", "amd64")).digest == digest(b"linuxamd64")
    assert select_platform(parsed, Platform("linux", "arm64")).digest == digest(b"linuxarm64v8")
    with pytest.raises(ImageError, match=r"no manifest for linux/s390x \(it has: linux/arm/v7, "
                                         r"linux/amd64, linux/arm64/v8\)"):
        select_platform(parsed, Platform("linux", "s390x"))


def test_the_content_type_decides_when_the_document_names_no_type() -> None:
    body = json.loads(manifest(OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar"))
    del body["mediaType"]
    assert isinstance(parse_manifest(OCI_MANIFEST + "; charset=utf-8",
                                     json.dumps(body).encode()), ImageManifest)


@pytest.mark.parametrize(("body", "why"), [
    (b"not json", "not JSON"),
    (b"[]", "not a JSON object"),
    (json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "schema 1 is not supported"),
    (manifest(OCI_MANIFEST, "application/vnd.oci.image.layer.v1.tar+zstd"),
     "unsupported media type"),
    (manifest(OCI_MANIFEST, "x").replace(LAYER.encode(), b"sha256:12"), "no sha256 digest"),
    (json.dumps({"mediaType": OCI_MANIFEST, "layers": []}).encode(), "'config' is missing"),
])
def test_unusable_manifests_are_refused_saying_why(body: bytes, why: str) -> None:
    with pytest.raises(ImageError, match=why):
        parse_manifest(OCI_MANIFEST, body)


def test_configuration() -> None:
    config = parse_config(json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/bin/app"], "Cmd": ["--flag"], "Env": ["PATH=/bin", "A=b=c"],
                   "WorkingDir": "/srv", "User": "nobody"},
        "rootfs": {"type": "layers", "diff_ids": [LAYER]},
    }).encode())
    assert (config.entrypoint, config.cmd, config.working_dir, config.user) == (
        ("/bin/app",), ("--flag",), "/srv", "nobody")
    assert config.environment() == {"PATH": "/bin", "A": "b=c"}
    assert config.diff_ids == (LAYER,)
    assert config.platform == Platform("linux", "amd64")
    assert parse_config(b'{"rootfs": {"diff_ids": []}}').entrypoint == ()
    with pytest.raises(ImageError, match="Cmd is not a list of strings"):
        parse_config(b'{"config": {"Cmd": "sh -c x"}}')


def test_a_configuration_for_another_platform_is_refused() -> None:
    arm = parse_config(b'{"os": "linux", "architecture": "arm64", "variant": "v8"}')
    check_platform(arm, Platform("linux", "arm64"), "image a")  # the variant is not compared
    with pytest.raises(ImageError, match=r"image a is built for linux/arm64/v8, not for this "
                                         r"machine \(linux/amd64\)"):
        check_platform(arm, Platform("linux", "amd64"), "image a")
    with pytest.raises(ImageError, match="built for windows/amd64"):
        check_platform(parse_config(b'{"os": "windows", "architecture": "amd64"}'),
                       Platform("linux", "amd64"), "image b")
    check_platform(parse_config(b"{}"), Platform("linux", "amd64"), "image c")  # names none


def test_digests_are_checked() -> None:
    check_digest(digest(b"data"), b"data", "blob")
    with pytest.raises(ImageError, match="blob does not match its digest"):
        check_digest(digest(b"data"), b"other", "blob")
    with pytest.raises(ImageError, match="only sha256"):
        check_digest("sha512:" + "0" * 128, b"data", "blob")
