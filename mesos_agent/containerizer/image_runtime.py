"""Image containers: a root filesystem from the image store's layers, an OCI bundle, and the
`runc run` that the containerizer starts as the container's root process (ADR 0015).

    <runtime dir>/<container id>/config.json   the runtime configuration (`oci_spec`)
                                /rootfs         overlay of the layers (or a copy of them)
                                /upper, /work   overlay's writable layer and work directory
    <runtime dir>/runc/                         runc's own state (`runc --root`)

`runc run` stays in the foreground: the container's exit status is its own (128 + N for signal
N), signals sent to it are forwarded to the container, and the container's stdout and stderr
are the sandbox's files it inherits. `destroy` kills what is left (`runc delete --force`),
unmounts the root filesystem and removes the bundle; it is idempotent and needs only the id, so
it also cleans up after an agent restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import json
import os
import resource
import shutil
import stat
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import structlog

from mesos_agent.containerizer.launcher import Launch
from mesos_agent.containerizer.oci_spec import (
    SANDBOX_PATH,
    container_command,
    parse_passwd_user,
    runtime_spec,
)
from mesos_agent.containers import ContainerConfig, Volume
from mesos_agent.images.layers import OPAQUE_XATTR, is_whiteout
from mesos_agent.images.manifest import ImageError
from mesos_agent.images.store import Image, ImageStore, PruneResult

__all__ = ["Backend", "ImageRuntime", "choose_backend", "detach_mounts_under"]

Backend = Literal["overlay", "copy"]
_log = structlog.get_logger(__name__)
_MNT_DETACH = 2
_RUNC_SECONDS = 60
_HOST_FILES = ("/etc/resolv.conf", "/etc/hosts")  # host networking: the host's names
_INIT_PATH = "/mnt/mesos/init"
_IMAGE_FILE = "image"  # in a bundle: the name of the image its container uses


def choose_backend(asked: str, filesystems: str) -> Backend:
    """The provisioner backend: the one `asked` for (`--image_provisioner_backend`), else
    overlay where the kernel lists overlayfs in `filesystems` (`/proc/filesystems`), else
    copy."""
    if asked in ("overlay", "copy"):
        return "overlay" if asked == "overlay" else "copy"
    listed = {line.split()[-1] for line in filesystems.splitlines() if line.split()}
    return "overlay" if "overlay" in listed else "copy"


class ImageRuntime:
    """Runs image containers with `runc` (path `runc`), root filesystems by `backend`, bundles
    under `runtime_dir`, in the cgroups `<cgroups_root>/<container id>` the isolators make.
    `launcher` (`mesos-launch`) mounts each overlay root filesystem in a mount namespace of
    the container's own, just before exec'ing `runc` there: the host's mount table does not
    grow with every container (each new mount namespace copies it), and the mount goes with
    the container. `init` (the static `mesos-launch`) is bound into each container as its
    pid 1, so that the command gets the signals it is sent (a pid 1 ignores those it has no
    handler for) and orphans are reaped; without it the command is pid 1."""

    def __init__(self, store: ImageStore, runtime_dir: Path, *, runc: str, backend: Backend,
                 cgroups_root: str, launcher: str | None = None, init: str | None = None
                 ) -> None:
        self.store = store
        self._launcher = launcher
        self._init = init
        self._runtime_dir = runtime_dir
        self._runc = runc
        self._backend = backend
        self._cgroups_root = cgroups_root.strip("/")
        (runtime_dir / "runc").mkdir(parents=True, exist_ok=True)

    def bundle(self, container_id: str) -> Path:
        return self._runtime_dir / container_id

    def has_bundle(self, container_id: str) -> bool:
        """Whether the container is one of this runtime's (blocking, a stat)."""
        return (self.bundle(container_id) / "config.json").exists()

    def exec_argv(self, container_id: str, argv: Sequence[str]) -> tuple[str, ...]:
        """The command that runs `argv` in the running container (`runc exec`: its root
        filesystem, namespaces, cgroups, user and environment)."""
        return (self._runc, "--root", str(self._runtime_dir / "runc"), "exec", container_id,
                *argv)

    async def claim(self, container_id: str, image: str) -> None:
        """Note that the container uses `image` (before it is pulled: a garbage collection
        from then on keeps it), in its bundle directory."""
        bundle = self.bundle(container_id)
        await asyncio.to_thread(bundle.mkdir, parents=True, exist_ok=True)
        await asyncio.to_thread((bundle / _IMAGE_FILE).write_text, image)

    def images_in_use(self) -> set[str]:
        """The images of the containers that have a bundle (blocking)."""
        used = set()
        for marker in self._runtime_dir.glob(f"*/{_IMAGE_FILE}"):
            with contextlib.suppress(OSError):
                used.add(marker.read_text())
        return used

    async def collect_garbage(self) -> PruneResult:
        """Remove the images no container uses and the layers only they had."""
        result = await self.store.prune(await asyncio.to_thread(self.images_in_use))
        if result.images or result.layers:
            _log.info("unused images removed", images=list(result.images),
                      layers=result.layers, bytes_freed=result.bytes_freed)
        return result

    async def prepare(
        self, config: ContainerConfig, image: Image, *, user: str,
        environment: Mapping[str, str],
    ) -> Launch:
        """Provision the container's root filesystem and write its bundle; the launch of its
        `runc run`. `user` is the task's (a name or uid in the image; "" for the image's
        own). Raises ImageError saying what is wrong."""
        assert config.image is not None
        bundle = self.bundle(config.container_id)
        try:
            return await asyncio.to_thread(self._prepare, config, image, bundle, user,
                                           dict(environment))
        except (ImageError, OSError) as exc:
            await self.destroy(config.container_id)
            if isinstance(exc, ImageError):
                raise
            raise ImageError(f"cannot provision the container's root filesystem: {exc}"
                             ) from exc

    def _prepare(self, config: ContainerConfig, image: Image, bundle: Path, user: str,
                 environment: dict[str, str]) -> Launch:
        assert config.image is not None
        argv = container_command(config.image.command, image.config)
        rootfs = bundle / "rootfs"
        rootfs.mkdir(parents=True, exist_ok=True)
        runtime_prefix: tuple[str, ...] = ()
        if self._backend == "overlay":
            options = _overlay_options(image.layers, bundle)
            if self._launcher is not None:
                runtime_prefix = (self._launcher, "-O", options, str(rootfs), "--")
            else:
                _mount_overlay(options, rootfs)
        else:
            _copy_layers(image.layers, rootfs)
        who = parse_passwd_user(user or image.config.user or "0",
                                _read_in_layers(image.layers, "etc/passwd"),
                                _read_in_layers(image.layers, "etc/group"))
        for owned in (config.sandbox, config.sandbox / "stdout", config.sandbox / "stderr"):
            with contextlib.suppress(FileNotFoundError):
                os.chown(owned, who.uid, who.gid)
        mounts = [Volume(str(config.sandbox), SANDBOX_PATH)]
        mounts += [Volume(path, path, read_only=True) for path in _HOST_FILES
                   if os.path.isfile(path)]
        for volume in config.image.volumes:
            destination = (volume.container_path if volume.container_path.startswith("/")
                           else f"{SANDBOX_PATH}/{volume.container_path}")
            if not os.path.exists(volume.host_path):
                raise ImageError(f"volume {destination}: host path {volume.host_path} "
                                 "does not exist")
            mounts.append(Volume(volume.host_path, destination, read_only=volume.read_only))
        if self._init is not None:
            mounts.append(Volume(self._init, _INIT_PATH, read_only=True))
            argv = (_INIT_PATH, "-i", "--", *argv)
        environment["MESOS_SANDBOX"] = SANDBOX_PATH
        spec = runtime_spec(
            argv=argv, environment=environment, image=image.config, user=who, mounts=mounts,
            cgroups_path=f"/{self._cgroups_root}/{config.container_id}",
            open_files=resource.getrlimit(resource.RLIMIT_NOFILE))
        (bundle / "config.json").write_text(json.dumps(spec, indent=1))
        # --keep: the container (its cgroups, which are the isolators') stays until `destroy`.
        runc_argv = (*runtime_prefix, self._runc, "--root", str(self._runtime_dir / "runc"),
                     "run", "--keep", "--bundle", str(bundle), "--no-new-keyring",
                     config.container_id)
        return Launch(runc_argv, {"PATH": os.defpath}, None, wrapped=True, through_init=True)

    async def destroy(self, container_id: str) -> None:
        """Kill what is left of the container, unmount and remove its bundle (no-op for a
        container without one)."""
        bundle = self.bundle(container_id)
        if not await asyncio.to_thread(bundle.exists):
            return
        process = await asyncio.create_subprocess_exec(
            self._runc, "--root", str(self._runtime_dir / "runc"), "delete", "--force",
            container_id, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            async with asyncio.timeout(_RUNC_SECONDS):
                _, errors = await process.communicate()
        except TimeoutError:
            process.kill()
            errors = b"timed out"
        if process.returncode and b"does not exist" not in errors:
            _log.warning("runc delete failed", container_id=container_id,
                         error=errors.decode(errors="replace").strip())
        await asyncio.to_thread(_remove_bundle, bundle)


def _read_in_layers(layers: Sequence[Path], relative: str) -> str:
    """A file of the image as its layers stack up ("" when missing or whited out), never
    following a symbolic link (which would point into the host's file system)."""
    parts = relative.split("/")
    for layer in reversed(layers):
        path = layer
        for depth, part in enumerate(parts):
            path = path / part
            if is_whiteout(path) or path.is_symlink():
                return ""
            if depth < len(parts) - 1 and not path.is_dir() and path.exists():
                return ""
        if path.is_file():
            try:
                return path.read_text(errors="replace")
            except OSError:
                return ""
        if any(_opaque(layer.joinpath(*parts[:depth]))
               for depth in range(1, len(parts))):
            return ""
    return ""


_libc = ctypes.CDLL(None, use_errno=True)


def _overlay_options(layers: Sequence[Path], bundle: Path) -> str:
    """The overlay mount options of a root filesystem of `layers`, writing to the bundle."""
    upper, work = bundle / "upper", bundle / "work"
    upper.mkdir()
    work.mkdir()
    lower = ":".join(str(layer) for layer in reversed(layers))  # overlay: top layer first
    return f"lowerdir={lower},upperdir={upper},workdir={work}"


def _mount_overlay(options: str, rootfs: Path) -> None:
    if _libc.mount(b"overlay", str(rootfs).encode(), b"overlay", 0, options.encode()) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"cannot mount the overlay root filesystem: {os.strerror(code)} "
                      "(use --image_provisioner_backend=copy where overlayfs is unavailable)")


def _copy_layers(layers: Sequence[Path], rootfs: Path) -> None:
    """Lay the layers over each other into `rootfs`, bottom first, applying whiteouts and
    opaque directories as overlayfs would."""
    for layer in layers:
        for directory, subdirectories, files in os.walk(layer):
            relative = Path(directory).relative_to(layer)
            target_dir = rootfs / relative
            if relative != Path(".") and _opaque(Path(directory)) and target_dir.is_dir():
                shutil.rmtree(target_dir)
            if not target_dir.is_dir() or target_dir.is_symlink():
                _remove(target_dir)
                target_dir.mkdir()
            shutil.copystat(directory, target_dir, follow_symlinks=False)
            own = os.lstat(directory)
            os.lchown(target_dir, own.st_uid, own.st_gid)
            linked = [d for d in subdirectories if (Path(directory) / d).is_symlink()]
            for name in [*files, *linked]:
                source, target = Path(directory) / name, target_dir / name
                _remove(target)
                if is_whiteout(source):
                    continue
                if source.is_symlink():
                    os.symlink(os.readlink(source), target)
                elif stat.S_ISFIFO(os.lstat(source).st_mode):
                    os.mkfifo(target)
                else:
                    shutil.copy2(source, target, follow_symlinks=False)
                found = os.lstat(source)
                os.lchown(target, found.st_uid, found.st_gid)


def _opaque(directory: Path) -> bool:
    try:
        return os.getxattr(directory, OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def detach_mounts_under(directory: Path) -> None:
    """Detach every mount below `directory`, deepest first: the root filesystems that agents
    stopped before destroying their image containers leave on the host (with a compiler the
    overlay is mounted in the container's own mount namespace and none are left)."""
    root = str(directory.resolve())
    lines = Path("/proc/self/mounts").read_text().splitlines()
    targets = {fields[1] for fields in map(str.split, lines) if len(fields) > 1}
    for target in sorted(targets, reverse=True):
        if target.startswith(root + "/"):
            _libc.umount2(target.encode(), _MNT_DETACH)


def _remove_bundle(bundle: Path) -> None:
    rootfs = bundle / "rootfs"
    if _libc.umount2(str(rootfs).encode(), _MNT_DETACH) != 0:
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOENT):  # not mounted (the copy backend), gone
            raise OSError(code, f"cannot unmount {rootfs}: {os.strerror(code)}")
    shutil.rmtree(bundle, ignore_errors=True)
