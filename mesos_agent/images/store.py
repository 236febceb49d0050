"""The agent's image store (`--docker_store_dir`): layers unpacked once and shared by every
image and container that uses them, and a record of each image pulled.

    <store>/layers/<diff_id hex>/            a layer, unpacked (overlayfs' format, `layers`)
    <store>/images/<sha256 of the name>.json what a name resolved to: manifest digest, layers
                                              (diff_ids, bottom first), configuration
    <store>/staging/<random>/                 a pull in progress (emptied when the store opens)

A name is pulled once however many tasks ask for it at the same time; later asks use the record
unless a forced pull (Marathon's `forcePullImage`) resolves the name again. A layer directory
appears by an atomic rename once complete, and a record is written after its layers, so a crash
leaves at most staging debris. `prune` removes the records of images no container uses and the
layers no remaining record names.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import structlog

from mesos_agent.images.layers import unpack_layer
from mesos_agent.images.manifest import ImageConfig, ImageError
from mesos_agent.images.reference import InvalidReference, parse_reference
from mesos_agent.images.sources import FetchedImage, ImageSource

__all__ = ["Image", "ImageStore", "PruneResult"]

_log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Image:
    """A pulled image: its name (normalized), the digest of its manifest, its layers'
    directories (bottom first) and its configuration."""

    name: str
    manifest_digest: str
    layers: tuple[Path, ...]
    config: ImageConfig


@dataclass(frozen=True, slots=True)
class PruneResult:
    """What `ImageStore.prune` removed."""

    images: tuple[str, ...]
    layers: int
    bytes_freed: int


class ImageStore:
    """Images from `source`, kept under `root` (see the module's docstring)."""

    def __init__(self, root: Path, source: ImageSource) -> None:
        self._root = root
        self._source = source
        self._pulls: dict[str, asyncio.Future[Image]] = {}
        # Pulls and prunes exclude each other: a prune would take a pull's fresh layers.
        self._turn = asyncio.Condition()
        self._active_pulls = 0
        self._pruning = False
        for directory in (self._layers, self._images, self._staging):
            directory.mkdir(parents=True, exist_ok=True)
        for leftover in self._staging.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)

    @property
    def _layers(self) -> Path:
        return self._root / "layers"

    @property
    def _images(self) -> Path:
        return self._root / "images"

    @property
    def _staging(self) -> Path:
        return self._root / "staging"

    @staticmethod
    def normalize(name: str) -> str:
        """`name` as the store keys it; raises ImageError when it is no image name."""
        try:
            return str(parse_reference(name))
        except InvalidReference as exc:
            raise ImageError(str(exc)) from None

    def layer_dir(self, diff_id: str) -> Path:
        return self._layers / diff_id.partition(":")[2]

    async def get(self, name: str, *, force_pull: bool = False) -> Image:
        """The image `name`, pulled if the store lacks it (or `force_pull`); raises
        ImageError saying why it cannot be had. Concurrent calls for one name pull once."""
        key = self.normalize(name)
        if not force_pull:
            known = await asyncio.to_thread(self._recorded, key)
            if known is not None:
                return known
        pulling = self._pulls.get(key)
        if pulling is None:
            pulling = asyncio.ensure_future(self._pull(key))
            self._pulls[key] = pulling
            pulling.add_done_callback(lambda _: self._pulls.pop(key, None))
        return await asyncio.shield(pulling)

    def recorded(self, name: str) -> Image | None:
        """The stored image `name` (blocking), None when it was not pulled or lost a layer."""
        return self._recorded(self.normalize(name))

    def _record_path(self, key: str) -> Path:
        return self._images / f"{hashlib.sha256(key.encode()).hexdigest()}.json"

    def _recorded(self, key: str) -> Image | None:
        try:
            document = json.loads(self._record_path(key).read_text())
            config = _config_from_record(document["config"])
            layers = tuple(self.layer_dir(d) for d in document["diff_ids"])
            image = Image(key, str(document["manifest_digest"]), layers, config)
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if not all(layer.is_dir() for layer in image.layers):
            return None
        return image

    async def _pull(self, key: str) -> Image:
        async with self._turn:
            await self._turn.wait_for(lambda: not self._pruning)
            self._active_pulls += 1
        try:
            return await self._pull_now(key)
        finally:
            async with self._turn:
                self._active_pulls -= 1
                self._turn.notify_all()

    async def _pull_now(self, key: str) -> Image:
        reference = parse_reference(key)
        staging = Path(await asyncio.to_thread(tempfile.mkdtemp, dir=self._staging))
        try:
            fetched = await self._source.fetch(
                reference, staging, lambda diff_id: self.layer_dir(diff_id).is_dir())
            await asyncio.to_thread(self._store, key, fetched, staging)
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)
        _log.info("image pulled", image=key, manifest=fetched.manifest_digest,
                  layers=len(fetched.layers),
                  fetched=sum(1 for layer in fetched.layers if layer.blob is not None))
        image = await asyncio.to_thread(self._recorded, key)
        if image is None:
            raise ImageError(f"image {key} was pulled but its layers are gone")
        return image

    def _store(self, key: str, fetched: FetchedImage, staging: Path) -> None:
        for layer in fetched.layers:
            if layer.blob is None:
                continue
            target = self.layer_dir(layer.diff_id)
            unpacked = staging / f"unpacked-{target.name}"
            unpacked.mkdir()
            unpack_layer(layer.blob, layer.compression, layer.diff_id, unpacked)
            layer.blob.unlink()
            try:
                os.rename(unpacked, target)
            except OSError:
                if not target.is_dir():  # not another pull's copy of the same layer
                    raise
        config = dataclasses.asdict(fetched.config)
        config.pop("platform", None)
        document = {"name": key, "manifest_digest": fetched.manifest_digest,
                    "diff_ids": [layer.diff_id for layer in fetched.layers], "config": config}
        _write_atomically(self._record_path(key), json.dumps(document).encode())

    async def prune(self, in_use: Collection[str]) -> PruneResult:
        """Remove the records of images not named in `in_use` and every layer no remaining
        record names (once no pull is running; pulls wait for it)."""
        async with self._turn:
            await self._turn.wait_for(lambda: self._active_pulls == 0)
            self._pruning = True
        try:
            return await asyncio.to_thread(self._prune, in_use)
        finally:
            async with self._turn:
                self._pruning = False
                self._turn.notify_all()

    def _prune(self, in_use: Collection[str]) -> PruneResult:
        keep = {self.normalize(name) for name in in_use}
        removed: list[str] = []
        needed: set[str] = set()
        for record in self._images.glob("*.json"):
            try:
                document = json.loads(record.read_text())
                name, diff_ids = str(document["name"]), [str(d) for d in document["diff_ids"]]
            except (OSError, ValueError, KeyError, TypeError):
                record.unlink(missing_ok=True)
                continue
            if name in keep:
                needed.update(self.layer_dir(d).name for d in diff_ids)
            else:
                record.unlink(missing_ok=True)
                removed.append(name)
        layers = freed = 0
        for layer in self._layers.iterdir():
            if layer.name not in needed:
                freed += _tree_size(layer)
                shutil.rmtree(layer, ignore_errors=True)
                layers += 1
        return PruneResult(tuple(sorted(removed)), layers, freed)


def _config_from_record(saved: dict[str, object]) -> ImageConfig:
    def strings(name: str) -> tuple[str, ...]:
        value = saved.get(name) or []
        if not isinstance(value, list):
            raise TypeError(f"{name} is not a list")
        return tuple(str(item) for item in value)

    return ImageConfig(entrypoint=strings("entrypoint"), cmd=strings("cmd"), env=strings("env"),
                       working_dir=str(saved.get("working_dir") or ""),
                       user=str(saved.get("user") or ""), diff_ids=strings("diff_ids"))


def _tree_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _write_atomically(path: Path, data: bytes) -> None:
    scratch = path.with_suffix(".tmp")
    with open(scratch, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(scratch, path)
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
