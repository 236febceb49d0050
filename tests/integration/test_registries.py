"""The image and registry helpers of `registries.py`, checked with independent clients:
skopeo reads pushed images back, httpx speaks the registry's and the token server's HTTP,
umoci unpacks a layout, tar lists archives."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import re
import stat
import subprocess
import tarfile
from pathlib import Path

import httpx
import pytest

from tests.integration.registries import (
    MANIFEST_TYPE,
    File,
    Image,
    ManifestFormat,
    Registry,
    build_image,
    save_archive,
)

pytestmark = pytest.mark.integration

DOCKER_MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
ACCEPT_MANIFESTS = {"Accept": f"{DOCKER_MANIFEST_TYPE}, {MANIFEST_TYPE}"}
ENTRYPOINT = ["/bin/sh", "-c"]


@pytest.fixture
def image(tmp_path: Path) -> Image:
    return build_image(
        tmp_path / "layout",
        layers=[{"etc/motd": b"hello\n"}],
        entrypoint=ENTRYPOINT,
        cmd=["cat /etc/motd"],
        env={"GREETING": "hello"},
        working_dir="/tmp",
        user="nobody",
    )


@pytest.mark.parametrize(
    ("format", "media_type"), [("v2s2", DOCKER_MANIFEST_TYPE), ("oci", MANIFEST_TYPE)]
)
def test_a_pushed_image_reads_back_with_its_manifest_and_config(
    tmp_path: Path, image: Image, format: ManifestFormat, media_type: str
) -> None:
    with Registry(tmp_path / "registry") as registry:
        digest = registry.push(image, "team/app", format=format)
        raw = registry.inspect("team/app", "latest", raw=True)
        config = json.loads(registry.inspect("team/app", "latest", config=True))
        served = httpx.get(f"{registry.url}/v2/team/app/manifests/latest", headers=ACCEPT_MANIFESTS)

    manifest = json.loads(raw)
    assert manifest["mediaType"] == media_type
    assert len(manifest["layers"]) == 2
    assert digest == f"sha256:{hashlib.sha256(raw.encode()).hexdigest()}"
    assert served.headers["Docker-Content-Digest"] == digest
    if format == "oci":
        assert digest == image.manifest_digest  # pushed as built
    assert config["config"] == {
        "Entrypoint": ENTRYPOINT,
        "Cmd": ["cat /etc/motd"],
        "Env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "GREETING=hello",
        ],
        "WorkingDir": "/tmp",
        "User": "nobody",
    }
    assert config["os"] == "linux"
    assert config["rootfs"]["diff_ids"] == list(image.diff_ids)


def test_a_basic_auth_registry_refuses_anonymous_clients_and_accepts_the_credentials(
    tmp_path: Path, image: Image
) -> None:
    with Registry(tmp_path, htpasswd=("alice", "s3cret")) as registry:
        anonymous = httpx.get(f"{registry.url}/v2/")
        wrong = httpx.get(f"{registry.url}/v2/", auth=("alice", "wrong"))
        right = httpx.get(f"{registry.url}/v2/", auth=("alice", "s3cret"))
        digest = registry.push(image, "app")
        manifest_url = f"{registry.url}/v2/app/manifests/latest"
        anonymous_pull = httpx.get(manifest_url, headers=ACCEPT_MANIFESTS)
        pull = httpx.get(manifest_url, headers=ACCEPT_MANIFESTS, auth=("alice", "s3cret"))

    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Basic realm=")
    assert wrong.status_code == 401
    assert right.status_code == 200
    assert anonymous_pull.status_code == 401
    assert pull.status_code == 200
    assert pull.headers["Docker-Content-Digest"] == digest


def test_a_token_auth_registry_honours_tokens_of_its_token_server_for_their_scope(
    tmp_path: Path, image: Image
) -> None:
    with Registry(tmp_path, token_auth=True) as registry:
        assert registry.credentials is not None and registry.token_server is not None
        digest = registry.push(image, "team/app")
        base_challenge = httpx.get(f"{registry.url}/v2/")
        manifest_url = f"{registry.url}/v2/team/app/manifests/latest"
        challenge = httpx.get(manifest_url, headers=ACCEPT_MANIFESTS)
        params = dict(re.findall(r'(\w+)="([^"]*)"', challenge.headers["WWW-Authenticate"]))
        query = {"service": params["service"], "scope": params["scope"]}
        no_token = httpx.get(params["realm"], params=query)
        token = httpx.get(params["realm"], params=query, auth=registry.credentials).json()["token"]
        bearer = {"Authorization": f"Bearer {token}", **ACCEPT_MANIFESTS}
        pull = httpx.get(manifest_url, headers=bearer)
        out_of_scope = httpx.get(f"{registry.url}/v2/other/manifests/latest", headers=bearer)
        scopes = registry.token_server.scopes

    assert base_challenge.status_code == 401
    assert base_challenge.headers["WWW-Authenticate"].startswith('Bearer realm="http://127.0.0.1:')
    assert challenge.status_code == 401
    assert params["scope"] == "repository:team/app:pull"
    assert no_token.status_code == 401
    assert pull.status_code == 200
    assert pull.headers["Docker-Content-Digest"] == digest
    assert out_of_scope.status_code == 401
    assert ["repository:team/app:pull,push"] in scopes  # skopeo's push asked the server


def test_layers_hold_their_files_and_whiteouts_and_unpack_with_umoci(tmp_path: Path) -> None:
    image = build_image(
        tmp_path / "layout",
        layers=[
            {"opt/app/run.sh": File(b"#!/bin/sh\necho ran\n", 0o755), "opt/app/old": b"old"},
            {"opt/cache/a": b"a", "tmp/scratch": b"s"},
            {"opt/app/old": None, "opt/cache/.wh..wh..opq": None, "opt/cache/b": b"b"},
        ],
    )
    layer_tars = [
        gzip.decompress(image.blob(digest).read_bytes()) for digest in image.layer_digests
    ]
    assert [f"sha256:{hashlib.sha256(tar).hexdigest()}" for tar in layer_tars] == list(
        image.diff_ids
    )
    base, *_, top = [_members(tar) for tar in layer_tars]
    assert base["bin/busybox"].isreg() and base["bin/sh"].linkname == "busybox"
    assert base["tmp"].mode == 0o1777
    assert {"opt/app/.wh.old", "opt/cache/.wh..wh..opq", "opt/cache/b"} <= set(top)

    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--image", f"{image.layout}:{image.tag}", str(bundle)],
        check=True,
        capture_output=True,
    )
    rootfs = bundle / "rootfs"
    assert not (rootfs / "opt/app/old").exists()
    assert not (rootfs / "opt/cache/a").exists()
    assert (rootfs / "opt/cache/b").read_bytes() == b"b"
    assert stat.S_IMODE((rootfs / "opt/app/run.sh").stat().st_mode) == 0o755
    assert stat.S_IMODE((rootfs / "tmp").stat().st_mode) == 0o1777  # kept by the layer above
    assert "nobody:x:65534" in (rootfs / "etc/passwd").read_text()
    ran = subprocess.run(["chroot", str(rootfs), "/opt/app/run.sh"], capture_output=True)
    assert ran.stdout == b"ran\n"


def test_archives_hold_the_image(tmp_path: Path, image: Image) -> None:
    docker_archive = tmp_path / "docker.tar"
    oci_archive = tmp_path / "oci.tar"
    save_archive(image, docker_archive, "team/app:v1", format="docker-archive")
    save_archive(image, oci_archive, "v1", format="oci-archive")

    docker_names = _tar_listing(docker_archive)
    assert "manifest.json" in docker_names
    with tarfile.open(docker_archive) as tar:
        manifest_file = tar.extractfile("manifest.json")
        assert manifest_file is not None
        [entry] = json.load(manifest_file)
    assert entry["RepoTags"] == ["docker.io/team/app:v1"]
    assert len(entry["Layers"]) == 2 and set(entry["Layers"]) <= docker_names
    assert {"index.json", "oci-layout"} <= _tar_listing(oci_archive)


def test_a_layout_holds_one_image_per_tag(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    build_image(layout, cmd=["old"], tag="one")
    one = build_image(layout, cmd=["first"], tag="one")
    two = build_image(layout, cmd=["second"], tag="two")

    def cmd(image: Image) -> list[str]:
        inspected = subprocess.run(
            ["skopeo", "inspect", "--config", image.reference],
            check=True,
            capture_output=True,
            text=True,
        )
        return list(json.loads(inspected.stdout)["config"]["Cmd"])

    assert (cmd(one), cmd(two)) == (["first"], ["second"])
    index = json.loads((layout / "index.json").read_text())
    assert [entry["digest"] for entry in index["manifests"]] == [
        one.manifest_digest,
        two.manifest_digest,
    ]


def _members(layer_tar: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(layer_tar)) as tar:
        return {member.name: member for member in tar.getmembers()}


def _tar_listing(archive: Path) -> set[str]:
    listing = subprocess.run(
        ["tar", "tf", str(archive)], check=True, capture_output=True, text=True
    )
    return set(listing.stdout.split())
