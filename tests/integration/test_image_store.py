"""Pulling images into the agent's store from a real `docker-registry` (plain, basic and token
authentication) and from directories of archives written by skopeo (issue 19)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mesos_agent.images import (
    ArchiveSource,
    ImageError,
    ImageStore,
    Platform,
    RegistryCredentials,
    RegistrySource,
    load_docker_config,
    machine_platform,
)
from mesos_agent.images.layers import is_whiteout
from tests.integration.registries import Image, Registry, build_image, save_archive

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="layers hold device nodes: root")]


@pytest.fixture(scope="module")
def app_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    return build_image(
        tmp_path_factory.mktemp("layout"),
        layers=[{"etc/motd": b"hello\n", "opt/app/run.sh": b"echo ran\n"},
                {"etc/motd": None}],
        entrypoint=["/bin/sh", "-c"], cmd=["cat /etc/motd"], env={"GREETING": "hi"},
        working_dir="/opt/app", user="nobody", tag="v1")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with Registry(tmp_path / "registry") as running:
        yield running


def store_for(tmp_path: Path, registry: Registry, **credentials: RegistryCredentials
              ) -> ImageStore:
    source = RegistrySource(registry.url, credentials.get("credentials") and
                            {registry.host: credentials["credentials"]},
                            platform=machine_platform())
    return ImageStore(tmp_path / "store", source)


def blob_requests(registry: Registry) -> int:
    return sum("/blobs/sha256:" in line and '"GET ' in line
               for line in registry.log_path.read_text().splitlines())


@pytest.mark.parametrize("manifest_format", ["v2s2", "oci"])
async def test_pull_unpacks_layers_and_keeps_the_configuration(
        tmp_path: Path, registry: Registry, app_image: Image, manifest_format: str) -> None:
    digest = registry.push(app_image, "team/app", format=manifest_format)  # type: ignore[arg-type]
    store = store_for(tmp_path, registry)
    image = await store.get(f"{registry.host}/team/app:v1")
    assert image.manifest_digest == digest
    assert image.config.entrypoint == ("/bin/sh", "-c")
    assert image.config.cmd == ("cat /etc/motd",)
    assert image.config.environment()["GREETING"] == "hi"
    assert (image.config.working_dir, image.config.user) == ("/opt/app", "nobody")
    bottom, middle, top = image.layers
    assert (bottom / "bin" / "busybox").is_file()
    assert (middle / "etc" / "motd").read_text() == "hello\n"
    assert is_whiteout(top / "etc" / "motd")
    # Known now: a second get reads the record, no request.
    requests = blob_requests(registry)
    assert (await store.get(f"{registry.host}/team/app:v1")) == image
    assert blob_requests(registry) == requests


async def test_the_default_registry_serves_names_without_a_host_and_pinned_digests(
        tmp_path: Path, registry: Registry, app_image: Image) -> None:
    digest = registry.push(app_image, "library/app")
    store = store_for(tmp_path, registry)
    assert (await store.get("app:v1")).manifest_digest == digest
    assert (await store.get(f"app@{digest}")).manifest_digest == digest
    with pytest.raises(ImageError, match=r"not found in the registry \(MANIFEST_UNKNOWN"):
        await store.get("app@sha256:" + "0" * 64)


async def test_images_share_layers_and_concurrent_pulls_fetch_once(
        tmp_path: Path, registry: Registry, app_image: Image) -> None:
    registry.push(app_image, "team/app")
    other = build_image(tmp_path / "other", layers=[{"other": b"x"}], cmd=["true"], tag="v1")
    registry.push(other, "team/other")
    store = store_for(tmp_path, registry)
    first, again, *_ = await asyncio.gather(*(store.get(f"{registry.host}/team/app:v1")
                                              for _ in range(5)))
    assert first == again
    fetched = blob_requests(registry)
    assert fetched == 1 + len(app_image.layer_digests)  # the config and each layer, once
    second = await store.get(f"{registry.host}/team/other:v1")
    assert second.layers[0] == first.layers[0]  # busybox: one copy for both images
    assert blob_requests(registry) == fetched + 2  # other's config and its own layer only
    assert len(os.listdir(tmp_path / "store" / "layers")) == 4


async def test_a_forced_pull_resolves_the_tag_again(
        tmp_path: Path, registry: Registry, app_image: Image) -> None:
    registry.push(app_image, "team/app")
    store = store_for(tmp_path, registry)
    old = await store.get(f"{registry.host}/team/app:v1")
    newer = build_image(tmp_path / "newer", layers=[{"new": b"1"}], cmd=["true"], tag="v1")
    new_digest = registry.push(newer, "team/app")
    assert (await store.get(f"{registry.host}/team/app:v1")) == old
    assert (await store.get(f"{registry.host}/team/app:v1", force_pull=True)
            ).manifest_digest == new_digest


async def test_a_corrupt_blob_in_the_registry_is_refused(
        tmp_path: Path, registry: Registry, app_image: Image) -> None:
    registry.push(app_image, "team/app")
    top = app_image.layer_digests[-1].split(":")[1]
    data = next((registry.workdir).rglob(f"blobs/sha256/{top[:2]}/{top}/data"))
    data.write_bytes(data.read_bytes()[:-3] + b"bad")
    store = store_for(tmp_path, registry)
    with pytest.raises(ImageError, match=f"layer sha256:{top} does not match its digest"):
        await store.get(f"{registry.host}/team/app:v1")
    assert os.listdir(tmp_path / "store" / "staging") == []


async def test_unknown_images_and_unreachable_registries(tmp_path: Path, registry: Registry
                                                         ) -> None:
    store = store_for(tmp_path, registry)
    with pytest.raises(ImageError, match="not found in the registry"):
        await store.get(f"{registry.host}/team/none:v1")
    with pytest.raises(ImageError, match="cannot be reached"):
        await store.get("127.0.0.1:9/team/app:v1")
    with pytest.raises(ImageError, match="invalid tag"):
        await store.get("team/app:-x")


async def test_basic_authentication(tmp_path: Path, app_image: Image) -> None:
    with Registry(tmp_path / "registry", htpasswd=("puller", "secret")) as registry:
        registry.push(app_image, "team/app")
        name = f"{registry.host}/team/app:v1"
        with pytest.raises(ImageError, match="needs credentials"):
            await store_for(tmp_path / "a", registry).get(name)
        with pytest.raises(ImageError, match="refused the credentials of 'puller'"):
            await store_for(tmp_path / "b", registry, credentials=RegistryCredentials(
                "puller", "wrong")).get(name)
        image = await store_for(tmp_path / "c", registry, credentials=RegistryCredentials(
            "puller", "secret")).get(name)
        assert image.config.cmd == ("cat /etc/motd",)


async def test_token_authentication(tmp_path: Path, app_image: Image) -> None:
    with Registry(tmp_path / "registry", token_auth=True) as registry:
        registry.push(app_image, "team/app")
        assert registry.credentials is not None and registry.token_server is not None
        name = f"{registry.host}/team/app:v1"
        with pytest.raises(ImageError, match=r"token service of registry .* refused anonymous"):
            await store_for(tmp_path / "a", registry).get(name)
        user, password = registry.credentials
        config = tmp_path / "docker.json"
        config.write_text(json.dumps({"auths": {registry.host: {
            "auth": base64.b64encode(f"{user}:{password}".encode()).decode()}}}))
        credentials = load_docker_config(config)[registry.host]
        assert load_docker_config(config.read_text()) == {registry.host: credentials}  # inline
        image = await store_for(tmp_path / "b", registry, credentials=credentials).get(name)
        assert image.config.user == "nobody"
        assert ["repository:team/app:pull"] in registry.token_server.scopes


@pytest.mark.parametrize("archive_format", ["docker-archive", "oci-archive"])
async def test_archives_in_a_directory_without_a_registry(
        tmp_path: Path, app_image: Image, archive_format: str) -> None:
    archives = tmp_path / "archives"
    (archives / "team").mkdir(parents=True)
    for name in ("busybox:v1", "team/app:v1"):
        saved = tmp_path / "saved.tar"  # skopeo takes no ':' in a path: renamed after
        save_archive(app_image, saved, name, format=archive_format)  # type: ignore[arg-type]
        saved.rename(archives / f"{name}.tar")
    store = ImageStore(tmp_path / "store", ArchiveSource(archives, platform=machine_platform()))
    image = await store.get("busybox:v1")
    assert image.config.working_dir == "/opt/app"
    assert (image.layers[1] / "etc" / "motd").read_text() == "hello\n"
    assert (await store.get("team/app:v1")).layers == image.layers
    with pytest.raises(ImageError, match=r"not found: no .*/busybox:v2\.tar"):
        await store.get("busybox:v2")


def _foreign_platform() -> Platform:
    here = machine_platform()
    return Platform("linux", "s390x" if here.architecture != "s390x" else "amd64")


async def test_an_image_for_another_architecture_is_refused_saying_so(
        tmp_path: Path, registry: Registry, app_image: Image) -> None:
    """The image's configuration names this machine's architecture; agents that take
    themselves for another machine refuse it before fetching its layers, from a registry and
    from an archive alike."""
    registry.push(app_image, "team/app")
    source = RegistrySource(registry.url, None, platform=_foreign_platform())
    store = ImageStore(tmp_path / "store", source)
    with pytest.raises(ImageError, match=r"is built for linux/\w+, not for this machine "
                                         r"\(linux/(s390x|amd64)\)"):
        await store.get(f"{registry.host}/team/app:v1")
    assert blob_requests(registry) == 1  # the configuration only: no layer was fetched
    archives = tmp_path / "archives"
    archives.mkdir()
    save_archive(app_image, archives / "saved.tar", "app:v1", format="docker-archive")
    (archives / "saved.tar").rename(archives / "app:v1.tar")
    archived = ImageStore(tmp_path / "store2", ArchiveSource(archives,
                                                             platform=_foreign_platform()))
    with pytest.raises(ImageError, match=r"image archive .* is built for"):
        await archived.get("app:v1")


async def test_prune_keeps_what_is_in_use(tmp_path: Path, registry: Registry,
                                          app_image: Image) -> None:
    registry.push(app_image, "team/app")
    other = build_image(tmp_path / "other", layers=[{"other": b"x"}], cmd=["true"], tag="v1")
    registry.push(other, "team/other")
    store = store_for(tmp_path, registry)
    kept = await store.get(f"{registry.host}/team/app:v1")
    await store.get(f"{registry.host}/team/other:v1")
    result = await store.prune([f"{registry.host}/team/app:v1"])
    assert result.images == (f"{registry.host}/team/other:v1",)
    assert result.layers == 1 and result.bytes_freed > 0
    assert store.recorded(f"{registry.host}/team/app:v1") == kept
    assert store.recorded(f"{registry.host}/team/other:v1") is None
    assert all(layer.is_dir() for layer in kept.layers)
