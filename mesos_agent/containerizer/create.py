"""The agent's containerizer as its flags ask (`IsolationConfig`): the isolators `--isolation`
names, each checked against what this machine can provide (ADR 0014), and the fetcher with its
cache (`--fetcher_cache_dir`, `--fetcher_cache_size`)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

from mesos_agent.config import IsolationConfig
from mesos_agent.containerizer.base import Isolator
from mesos_agent.containerizer.cgroup_pool import CgroupPool
from mesos_agent.containerizer.cgroups import Cgroups, CgroupsUnavailable, mounts_under
from mesos_agent.containerizer.disk import DiskDuIsolator
from mesos_agent.containerizer.image_runtime import ImageRuntime, choose_backend
from mesos_agent.containerizer.isolators import (
    CgroupsCpuIsolator,
    CgroupsMemIsolator,
    CgroupsPidsIsolator,
    FilesystemLinuxIsolator,
    NamespacesPidIsolator,
    PosixIsolator,
    cgroup_controllers,
    cgroups_starting,
)
from mesos_agent.containerizer.launch_helper import is_static
from mesos_agent.containerizer.launcher import LaunchTools, find_launch_tools
from mesos_agent.containerizer.posix import PosixContainerizer
from mesos_agent.fetcher import UriFetcher
from mesos_agent.images import (
    ArchiveSource,
    ImageSource,
    ImageStore,
    RegistrySource,
    load_docker_config,
    machine_platform,
)

__all__ = ["IsolationUnavailable", "create_containerizer"]


class IsolationUnavailable(ValueError):
    """An isolator `--isolation` names that this machine or agent cannot provide."""


_Factory = Callable[[IsolationConfig, Cgroups, LaunchTools], Isolator]


def _cgroups(controllers: tuple[str, ...], make: Callable[[Cgroups], Isolator]) -> _Factory:
    def factory(config: IsolationConfig, cgroups: Cgroups, tools: LaunchTools) -> Isolator:
        _need_root("cgroups")
        for controller in controllers:
            cgroups.check(controller)
        return make(cgroups)

    return factory


def _namespaces(make: Callable[[], Isolator], *, programs: tuple[str, ...]) -> _Factory:
    def factory(config: IsolationConfig, cgroups: Cgroups, tools: LaunchTools) -> Isolator:
        _need_root("namespaces")
        missing = [name for name in programs if getattr(tools, name) is None]
        if missing and tools.helper is None:
            raise IsolationUnavailable(
                "it runs each container under mesos-launch, which needs a C compiler to be "
                f"built (Debian: apt-get install gcc libc6-dev), or under {', '.join(programs)}, "
                f"and {', '.join(missing)} is not installed (Debian: apt-get install util-linux "
                "tini)")
        return make()

    return factory


def _need_root(what: str) -> None:
    if os.geteuid() != 0:
        raise IsolationUnavailable(f"{what} need the agent to run as root")


_ISOLATORS: dict[str, _Factory] = {
    "posix/cpu": lambda config, cgroups, tools: PosixIsolator("posix/cpu"),
    "posix/mem": lambda config, cgroups, tools: PosixIsolator("posix/mem"),
    "cgroups/cpu": lambda config, cgroups, tools: _cgroups(
        ("cpu", "cpuacct"),
        lambda c: CgroupsCpuIsolator(c, enable_cfs=config.cgroups_enable_cfs),
    )(config, cgroups, tools),
    "cgroups/mem": _cgroups(("memory",), CgroupsMemIsolator),
    "cgroups/pids": _cgroups(("pids",), CgroupsPidsIsolator),
    "namespaces/pid": _namespaces(NamespacesPidIsolator, programs=("unshare", "tini")),
    "filesystem/linux": _namespaces(FilesystemLinuxIsolator, programs=("unshare", "mount")),
    "disk/du": lambda config, cgroups, tools: DiskDuIsolator(
        enforce=config.enforce_container_disk_quota,
        interval=config.container_disk_watch_interval),
}


def create_containerizer(
    config: IsolationConfig, work_dir: Path, *, launch_tools: LaunchTools | None = None
) -> PosixContainerizer:
    """The containerizer `config` asks for, launching with `launch_tools` (default: what this
    machine has, `mesos-launch` first); raises IsolationUnavailable naming the isolator and
    why this machine cannot provide it."""
    cgroups = Cgroups(mounts_under(config.cgroups_hierarchy), config.cgroups_root)
    tools = launch_tools or find_launch_tools()
    isolators: list[Isolator] = []
    for name in dict.fromkeys(config.isolation):
        factory = _ISOLATORS.get(name)
        if factory is None:
            raise IsolationUnavailable(
                f"--isolation: unknown isolator {name!r} (known: {', '.join(_ISOLATORS)})")
        try:
            isolators.append(factory(config, cgroups, tools))
        except (CgroupsUnavailable, IsolationUnavailable) as exc:
            raise IsolationUnavailable(f"--isolation: {name} is unavailable: {exc}") from exc
    fetcher = UriFetcher(config.fetcher_cache_dir or work_dir / "fetch",
                         config.fetcher_cache_size)
    images = (_image_runtime(config, work_dir, tools)
              if "docker" in config.image_providers else None)
    pool = _cgroup_pool(config, cgroups, isolators)
    return PosixContainerizer(isolators, fetcher=fetcher, switch_user=config.switch_user,
                              launch_tools=tools, images=images,
                              upkeep=(pool.keep,) if pool is not None else ())


def _cgroup_pool(config: IsolationConfig, cgroups: Cgroups, isolators: Sequence[Isolator]
                 ) -> CgroupPool | None:
    """The pool of premade cgroups for the v1 hierarchies the isolators use (None: no such
    hierarchy, or `--cgroups_pool_size=0`); `cgroups` takes from it. It is refilled only
    while no container of theirs is being started."""
    controllers = cgroup_controllers(isolators)
    bases = sorted({cgroups.base(c) for c in controllers if cgroups.version(c) == 1})
    if not bases or config.cgroups_pool_size <= 0:
        return None
    pool = CgroupPool(bases, config.cgroups_pool_size,
                      busy=lambda: cgroups_starting(isolators))
    cgroups.premade = pool
    return pool


def _image_runtime(config: IsolationConfig, work_dir: Path, tools: LaunchTools) -> ImageRuntime:
    """The runtime of `--image_providers=docker`; raises IsolationUnavailable saying what is
    missing."""
    runc = shutil.which("runc", path=os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/usr/bin", "/sbin"]))
    if runc is None:
        raise IsolationUnavailable("--image_providers=docker runs containers with runc, which "
                                   "is not installed (Debian: apt-get install runc)")
    if os.geteuid() != 0:
        raise IsolationUnavailable("--image_providers=docker needs the agent to run as root")
    platform = machine_platform()
    source: ImageSource
    if re.match(r"^https?://", config.docker_registry):
        try:
            credentials = (load_docker_config(config.docker_config)
                           if config.docker_config else {})
        except ValueError as exc:
            raise IsolationUnavailable(f"--docker_config: {exc}") from None
        source = RegistrySource(config.docker_registry, credentials, platform=platform)
    else:
        archives = Path(config.docker_registry)
        if not archives.is_dir():
            raise IsolationUnavailable(f"--docker_registry: {archives} is neither a registry "
                                       "URL (http:// or https://) nor a directory of archives")
        source = ArchiveSource(archives, platform=platform)
    store = ImageStore(config.docker_store_dir or work_dir / "store" / "docker", source)
    try:
        filesystems = Path("/proc/filesystems").read_text()
    except OSError:
        filesystems = ""
    backend = choose_backend(config.image_provisioner_backend, filesystems)
    return ImageRuntime(store, work_dir / "runtime", runc=runc, backend=backend,
                        cgroups_root=config.cgroups_root, launcher=tools.helper,
                        init=tools.helper if tools.helper and is_static(tools.helper) else None)
