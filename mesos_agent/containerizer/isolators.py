"""The isolators `--isolation` names (Mesos' names and semantics; ADR 0014).

- `posix/cpu`, `posix/mem`: no limits; usage measured over the container's process tree.
- `cgroups/cpu`: cpu.shares (v2: cpu.weight) from `cpus`; with `--cgroups_enable_cfs` also a
  CFS quota of `cpus` cores; usage from cpuacct (v2: cpu.stat).
- `cgroups/mem`: a hard limit of `mem`; a container the OOM killer hits is destroyed and ends
  with REASON_CONTAINER_LIMITATION_MEMORY.
- `cgroups/pids`: the container's processes are counted (and all killed on destroy).
- `namespaces/pid`: a pid namespace of its own, with its own /proc.
- `filesystem/linux`: a private mount namespace with the sandbox's `tmp` over /tmp.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import os
import time
from collections.abc import Collection, Sequence
from pathlib import Path

import psutil

from mesos_agent.containerizer.base import Limitation, NoopIsolator
from mesos_agent.containerizer.cgroups import Cgroups, stat_fields, write_control
from mesos_agent.containers import ContainerConfig, ContainerProcess, LaunchInfo
from mesos_values.resources import Resources
from protos import mesos_pb2

__all__ = [
    "CgroupsCpuIsolator",
    "CgroupsMemIsolator",
    "CgroupsPidsIsolator",
    "FilesystemLinuxIsolator",
    "NamespacesPidIsolator",
    "PosixIsolator",
    "cgroup_controllers",
    "cgroups_starting",
]

_MB = 1024 * 1024
_MIN_MEMORY = 32 * _MB  # Mesos' smallest memory limit
_MIN_SHARES = 2
_SHARES_PER_CPU = 1024
_CFS_PERIOD_US = 100_000
_MIN_CFS_QUOTA_US = 1_000
_V2_OOM_POLL_SECONDS = 0.5
_CGROUP_WAIT_ROUNDS = 200
_Reason = mesos_pb2.TaskStatus.Reason


def _scalar(resources: Resources, name: str) -> float:
    return float(resources.scalar(name))


class PosixIsolator(NoopIsolator):
    """`posix/cpu` or `posix/mem`: the usage of the container's process tree, no limits."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._cpu = name == "posix/cpu"
        self._roots: dict[str, int] = {}
        self._resources: dict[str, Resources] = {}

    async def recover(
        self, containers: Sequence[ContainerProcess], orphans: Collection[str]
    ) -> None:
        for container in containers:
            self._roots[container.container_id] = container.pid

    async def prepare(self, config: ContainerConfig) -> LaunchInfo | None:
        self._resources[config.container_id] = config.resources
        return None

    async def isolate(self, container_id: str, pid: int) -> None:
        self._roots[container_id] = pid

    async def update(self, container_id: str, resources: Resources) -> None:
        self._resources[container_id] = resources

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        statistics = mesos_pb2.ResourceStatistics()
        root = self._roots.get(container_id)
        if root is None:
            return statistics
        processes = _process_tree(root)
        resources = self._resources.get(container_id)
        if self._cpu:
            user = system = 0.0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    times = process.cpu_times()
                    user += times.user + times.children_user
                    system += times.system + times.children_system
            statistics.cpus_user_time_secs = user
            statistics.cpus_system_time_secs = system
            if resources is not None:
                statistics.cpus_limit = _scalar(resources, "cpus")
            statistics.processes = len(processes)
        else:
            rss = 0
            for process in processes:
                with contextlib.suppress(psutil.Error):
                    rss += process.memory_info().rss
            statistics.mem_rss_bytes = rss
            if resources is not None:
                statistics.mem_limit_bytes = int(_scalar(resources, "mem") * _MB)
        return statistics

    async def cleanup(self, container_id: str) -> None:
        self._roots.pop(container_id, None)
        self._resources.pop(container_id, None)


class _ProcessTable:
    """Parent -> children of every process, read at most once per `_TABLE_SECONDS`: measuring
    many containers walks the machine's processes once, not once per container."""

    def __init__(self) -> None:
        self._children: dict[int, list[int]] = {}
        self._read_at = -math.inf

    def tree(self, root: int) -> list[psutil.Process]:
        """`root` and its descendants."""
        if time.monotonic() - self._read_at > _TABLE_SECONDS:
            children: dict[int, list[int]] = {}
            for process in psutil.process_iter(["ppid"]):
                children.setdefault(process.info["ppid"], []).append(process.pid)
            self._children, self._read_at = children, time.monotonic()
        found, pending = [], [root]
        while pending:
            pid = pending.pop()
            with contextlib.suppress(psutil.Error):
                found.append(psutil.Process(pid))
                pending.extend(self._children.get(pid, ()))
        return found


_TABLE_SECONDS = 1.0
_processes = _ProcessTable()


def _process_tree(pid: int) -> list[psutil.Process]:
    return _processes.tree(pid)


class _CgroupsIsolator(NoopIsolator):
    """What the cgroups isolators share: a cgroup per container in each of `controllers`."""

    controllers: tuple[str, ...] = ()

    def __init__(self, cgroups: Cgroups) -> None:
        self._cgroups = cgroups
        self._known: set[str] = set()
        self._launching: dict[str, Resources | None] = {}  # prepared, not isolated yet
        self._premade: dict[str, list[str]] = {}  # premade cgroups a launch was handed
        self._distinct: list[str] | None = None

    def _hierarchies(self) -> list[str]:
        """`controllers`, one per distinct hierarchy (v1 may mount several together)."""
        if self._distinct is None:
            seen: set[Path] = set()
            self._distinct = []
            for controller in self.controllers:
                hierarchy = self._cgroups.hierarchy(controller)
                if hierarchy not in seen:
                    seen.add(hierarchy)
                    self._distinct.append(controller)
        return self._distinct

    async def recover(
        self, containers: Sequence[ContainerProcess], orphans: Collection[str]
    ) -> None:
        for container in containers:
            if all(self._cgroups.exists(c, container.container_id) for c in self._hierarchies()):
                self._known.add(container.container_id)
                await self._recovered(container.container_id)
        for orphan in orphans:
            await self._destroy(orphan)

    async def _recovered(self, container_id: str) -> None:
        """A container taken back after an agent restart (its limits are in place)."""

    async def prepare(self, config: ContainerConfig) -> LaunchInfo | None:
        # Planned only: the container's own process makes its cgroups (renaming premade ones,
        # `cgroup_pool`), writes its limits and joins them (`mesos-launch -k -w -c`, ADR 0014
        # decision 9), so the loop waits for no cgroup system call and its kernel lock.
        container_id = config.container_id
        cgroups = tuple(self._cgroups.reserve(c, container_id) for c in self._hierarchies())
        self._known.add(container_id)
        self._launching[container_id] = None
        self._premade[container_id] = [f"{path.rpartition('/')[0]}/{premade}"
                                       for path, premade in cgroups if premade]
        return LaunchInfo(
            cgroups=cgroups,
            cgroup_writes=self._limits(container_id, config.resources),
            cgroup_procs=tuple(self._cgroups.procs_file(c, container_id)
                               for c in self._hierarchies()))

    async def isolate(self, container_id: str, pid: int) -> None:
        self._premade.pop(container_id, None)  # renamed (or removed) by the launch
        resized = self._launching.pop(container_id, None)
        if resized is None:
            return
        # Updated while launching: written over the planned limits once the container's
        # process has written those and joined its cgroups, which it does after the spawn
        # server answered (rare: only an executor's container is resized, and seldom while it
        # starts).
        for _ in range(_CGROUP_WAIT_ROUNDS):
            if all(pid in self._cgroups.pids(c, container_id) for c in self._hierarchies()):
                break
            await asyncio.sleep(_CGROUP_PENDING_SECONDS)
        self._write(self._limits(container_id, resized))

    def _limits(self, container_id: str, resources: Resources) -> tuple[tuple[str, str], ...]:
        """The container's limits: (control file, value) pairs to write."""
        return ()

    def _write(self, writes: Sequence[tuple[str, str]]) -> None:
        for file, value in writes:
            write_control(file, value)

    async def update(self, container_id: str, resources: Resources) -> None:
        if container_id in self._launching:  # its cgroups may not exist yet: see `isolate`
            self._launching[container_id] = resources
        elif container_id in self._known:
            self._write(self._limits(container_id, resources))

    async def cleanup(self, container_id: str) -> None:
        self._known.discard(container_id)
        self._launching.pop(container_id, None)
        premade = self._premade.pop(container_id, ())
        await asyncio.to_thread(self._destroy_all, container_id, premade)

    async def _destroy(self, container_id: str) -> None:
        await asyncio.to_thread(self._destroy_all, container_id)  # one hop, not one per cgroup

    def _destroy_all(self, container_id: str, premade: Sequence[str] = ()) -> None:
        for controller in self._hierarchies():
            self._cgroups.destroy(controller, container_id)
        for path in premade:  # a launch that failed before its process renamed them
            with contextlib.suppress(OSError):
                os.rmdir(path)

    def _read(self, controller: str, container_id: str, name: str) -> str | None:
        try:
            return self._cgroups.read(controller, container_id, name)
        except OSError:
            return None


class CgroupsCpuIsolator(_CgroupsIsolator):
    """`cgroups/cpu`: cpu shares from `cpus`, a CFS quota with `enable_cfs`."""

    name = "cgroups/cpu"
    controllers = ("cpu", "cpuacct")

    def __init__(self, cgroups: Cgroups, *, enable_cfs: bool) -> None:
        super().__init__(cgroups)
        self._enable_cfs = enable_cfs
        self._cpus: dict[str, float] = {}

    def _limits(self, container_id: str, resources: Resources) -> tuple[tuple[str, str], ...]:
        cpus = _scalar(resources, "cpus")
        self._cpus[container_id] = cpus
        shares = max(_MIN_SHARES, int(cpus * _SHARES_PER_CPU))
        quota = max(_MIN_CFS_QUOTA_US, int(cpus * _CFS_PERIOD_US)) if cpus > 0 else None
        cfs = self._enable_cfs and quota is not None
        file = functools.partial(self._cgroups.control_file, "cpu", container_id)
        if self._cgroups.version("cpu") == 1:
            writes = [(file("cpu.shares"), str(shares))]
            if cfs:
                writes += [(file("cpu.cfs_period_us"), str(_CFS_PERIOD_US)),
                           (file("cpu.cfs_quota_us"), str(quota))]
        else:
            weight = 1 + ((shares - _MIN_SHARES) * 9999) // 262142  # the kernel's mapping
            writes = [(file("cpu.weight"), str(min(weight, 10000)))]
            if cfs:
                writes.append((file("cpu.max"), f"{quota} {_CFS_PERIOD_US}"))
        return tuple(writes)

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        statistics = mesos_pb2.ResourceStatistics()
        if container_id not in self._known:
            return statistics
        if container_id in self._cpus:
            statistics.cpus_limit = self._cpus[container_id]
        if self._cgroups.version("cpu") == 1:
            accounting = self._read("cpuacct", container_id, "cpuacct.stat")
            if accounting is not None:
                ticks = stat_fields(accounting)
                hertz = os.sysconf("SC_CLK_TCK")
                statistics.cpus_user_time_secs = ticks.get("user", 0) / hertz
                statistics.cpus_system_time_secs = ticks.get("system", 0) / hertz
            throttling = self._read("cpu", container_id, "cpu.stat")
            if throttling is not None:
                fields = stat_fields(throttling)
                statistics.cpus_nr_periods = fields.get("nr_periods", 0)
                statistics.cpus_nr_throttled = fields.get("nr_throttled", 0)
                statistics.cpus_throttled_time_secs = fields.get("throttled_time", 0) / 1e9
        else:
            text = self._read("cpu", container_id, "cpu.stat")
            if text is not None:
                fields = stat_fields(text)
                statistics.cpus_user_time_secs = fields.get("user_usec", 0) / 1e6
                statistics.cpus_system_time_secs = fields.get("system_usec", 0) / 1e6
                statistics.cpus_nr_periods = fields.get("nr_periods", 0)
                statistics.cpus_nr_throttled = fields.get("nr_throttled", 0)
                statistics.cpus_throttled_time_secs = fields.get("throttled_usec", 0) / 1e6
        return statistics

    async def cleanup(self, container_id: str) -> None:
        self._cpus.pop(container_id, None)
        await super().cleanup(container_id)


class CgroupsMemIsolator(_CgroupsIsolator):
    """`cgroups/mem`: a hard memory limit of `mem`; the OOM killer's work is a limitation."""

    name = "cgroups/mem"
    controllers = ("memory",)
    enforces_limits = True

    def __init__(self, cgroups: Cgroups) -> None:
        super().__init__(cgroups)
        self._v1 = cgroups.version("memory") == 1
        self._events = _OomEvents()

    def _limits(self, container_id: str, resources: Resources) -> tuple[tuple[str, str], ...]:
        limit = max(_MIN_MEMORY, int(_scalar(resources, "mem") * _MB))
        name = "memory.limit_in_bytes" if self._v1 else "memory.max"
        return ((self._cgroups.control_file("memory", container_id, name), str(limit)),)

    async def watch(self, container_id: str) -> Limitation:
        if self._v1:
            await self._oom_event_v1(container_id)
            if not self._cgroups.path("memory", container_id).is_dir():
                # The eventfd also fires when the cgroup is removed (by an OCI runtime that
                # tears its container down): not a limit reached. Nothing left to watch.
                await asyncio.Event().wait()
        else:
            while self._oom_kills(container_id) == 0:  # noqa: ASYNC110 (v2 has no eventfd)
                await asyncio.sleep(_V2_OOM_POLL_SECONDS)
        return self._limitation(container_id)

    async def _oom_event_v1(self, container_id: str) -> None:
        """Wait for the kernel's OOM notification: an eventfd registered through
        cgroup.event_control (the kernel keeps what it needs of memory.oom_control, so only the
        eventfd stays open while the container runs), registered off the loop (`_OomEvents`)."""
        event = await self._events.register(f"{self._cgroups.base('memory')}/{container_id}")
        loop = asyncio.get_running_loop()
        fired: asyncio.Future[None] = loop.create_future()
        try:
            def readable() -> None:
                # The kernel signals this eventfd on OOM only (and when the cgroup goes away,
                # after `cleanup` cancelled the watch). Its counters may not show it yet.
                with contextlib.suppress(BlockingIOError):
                    os.eventfd_read(event)
                    if not fired.done():
                        fired.set_result(None)

            loop.add_reader(event, readable)
            try:
                await fired
            finally:
                loop.remove_reader(event)
        finally:
            os.close(event)

    def _oom_kills(self, container_id: str) -> int:
        name = "memory.oom_control" if self._v1 else "memory.events"
        text = self._read("memory", container_id, name)
        return stat_fields(text).get("oom_kill", 0) if text is not None else 0

    async def limitation(self, container_id: str) -> Limitation | None:
        if container_id in self._known and self._oom_kills(container_id) > 0:
            return self._limitation(container_id)
        return None

    def _limitation(self, container_id: str) -> Limitation:
        limit, peak = self._bytes(container_id, "limit"), self._bytes(container_id, "peak")
        return Limitation(
            _Reason.REASON_CONTAINER_LIMITATION_MEMORY,
            f"Memory limit exceeded: Requested: {limit // _MB}MB Maximum Used: {peak // _MB}MB",
        )

    def _bytes(self, container_id: str, which: str) -> int:
        names = {("limit", True): "memory.limit_in_bytes",
                 ("peak", True): "memory.max_usage_in_bytes",
                 ("limit", False): "memory.max", ("peak", False): "memory.peak"}
        text = self._read("memory", container_id, names[(which, self._v1)])
        try:
            return int(text) if text is not None else 0
        except ValueError:
            return 0  # "max"

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        statistics = mesos_pb2.ResourceStatistics()
        if container_id not in self._known:
            return statistics
        text = self._read("memory", container_id, "memory.stat")
        if text is not None:
            fields = stat_fields(text)
            if self._v1:
                statistics.mem_rss_bytes = fields.get("total_rss", fields.get("rss", 0))
                statistics.mem_cache_bytes = fields.get("total_cache", fields.get("cache", 0))
            else:
                statistics.mem_rss_bytes = fields.get("anon", 0)
                statistics.mem_cache_bytes = fields.get("file", 0)
        current = self._read("memory", container_id,
                             "memory.usage_in_bytes" if self._v1 else "memory.current")
        if current is not None:
            with contextlib.suppress(ValueError):
                statistics.mem_total_bytes = int(current)
        statistics.mem_limit_bytes = self._bytes(container_id, "limit")
        statistics.mem_max_usage_bytes = self._bytes(container_id, "peak")
        return statistics


class _OomEvents:
    """OOM eventfds of v1 memory cgroups, registered in a worker thread, a batch per hop.

    A registration opens the cgroup's `memory.oom_control` and writes `cgroup.event_control`:
    in a burst of launches these wait for the cgroup file system's locks while containers'
    cgroups are being made and joined (a py-spy profile of an agent launching 1,000 isolated
    containers: its loop blocked up to 30 % of the burst's wall time in that open). A thread
    hop per container cost ~0.3 ms of CPU (ADR 0014, decision 8); one hop per batch of the
    registrations asked meanwhile does not. The container's process makes its cgroup after
    the spawn server has answered (ADR 0019): one not made yet is tried again in the next
    batch, until its watch is cancelled.
    """

    def __init__(self) -> None:
        self._asked: list[tuple[str, asyncio.Future[int]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def register(self, cgroup: str) -> int:
        """An eventfd the kernel signals when the memory cgroup `cgroup` is out of memory."""
        registered: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._asked.append((cgroup, registered))
        if self._worker is None:
            self._worker = asyncio.create_task(self._work())
        return await registered

    async def _work(self) -> None:
        batch: list[tuple[str, asyncio.Future[int]]] = []
        try:
            while self._asked:
                batch, self._asked = self._asked, []
                results = await asyncio.to_thread(_register_oom_events, [c for c, _ in batch])
                waiting = False
                for asked, result in zip(batch, results, strict=True):
                    registered = asked[1]
                    if result is None:  # not made yet
                        if not registered.done():
                            self._asked.append(asked)
                            waiting = True
                    elif isinstance(result, int):
                        if registered.done():
                            os.close(result)  # its watch was cancelled meanwhile
                        else:
                            registered.set_result(result)
                    elif not registered.done():
                        registered.set_exception(result)
                batch = []
                if waiting:
                    await asyncio.sleep(_CGROUP_PENDING_SECONDS)
        finally:
            self._worker = None
            for _, registered in (*batch, *self._asked):  # cancelled: the agent stopping
                registered.cancel()
            self._asked.clear()


_CGROUP_PENDING_SECONDS = 0.005


_LIST_ABOVE = 16
"""A batch of more registrations than this first lists the cgroups that exist (one `listdir`
of their parent) and tries only those."""


def _register_oom_events(cgroups: Sequence[str]) -> list[int | OSError | None]:
    """For each memory cgroup (v1), an eventfd registered for its OOM notifications, None if
    the cgroup does not exist (yet), or the error (blocking). In a burst most of a batch's
    cgroups are not made yet, and are asked again in each following batch until they are: a
    large batch skips, after one listing of their parent, those not there (a failed `open`
    each cost more, batch after batch)."""
    listed: dict[str, set[str]] = {}
    if len(cgroups) > _LIST_ABOVE:
        for parent in {cgroup.rpartition("/")[0] for cgroup in cgroups}:
            with contextlib.suppress(OSError):
                listed[parent] = set(os.listdir(parent))
    results: list[int | OSError | None] = []
    for cgroup in cgroups:
        parent, _, name = cgroup.rpartition("/")
        present = listed.get(parent)
        if present is not None and name not in present:
            results.append(None)
            continue
        try:
            results.append(_register_oom_event(cgroup))
        except FileNotFoundError:
            results.append(None)
        except OSError as exc:
            results.append(exc)
    return results


def _register_oom_event(cgroup: str) -> int:
    # memory.oom_control first: in a burst most first tries find no cgroup yet (its container's
    # process makes it after the spawn server's answer), and such a try then costs one failed
    # open, no eventfd made and closed (ADR 0014, decision 9).
    control = os.open(f"{cgroup}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
    try:
        event = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            registration = os.open(f"{cgroup}/cgroup.event_control", os.O_WRONLY | os.O_CLOEXEC)
            try:
                os.write(registration, f"{event} {control}".encode())
            finally:
                os.close(registration)
        except BaseException:
            os.close(event)
            raise
    finally:
        os.close(control)
    return event


class CgroupsPidsIsolator(_CgroupsIsolator):
    """`cgroups/pids`: the container's processes, counted and all reachable on destroy."""

    name = "cgroups/pids"
    controllers = ("pids",)

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        statistics = mesos_pb2.ResourceStatistics()
        if container_id in self._known:
            statistics.processes = len(self._cgroups.pids("pids", container_id))
        return statistics


def cgroup_controllers(isolators: Sequence[object]) -> set[str]:
    """The cgroup controllers the cgroups isolators among `isolators` make cgroups in."""
    return {controller for isolator in isolators if isinstance(isolator, _CgroupsIsolator)
            for controller in isolator.controllers}


def cgroups_starting(isolators: Sequence[object]) -> bool:
    """Whether a cgroups isolator among `isolators` has a container being started (prepared,
    its process not started yet: it may still be making and joining its cgroups)."""
    return any(isinstance(isolator, _CgroupsIsolator) and isolator._launching
               for isolator in isolators)


class NamespacesPidIsolator(NoopIsolator):
    """`namespaces/pid`: each container in a pid namespace of its own, with its own /proc."""

    name = "namespaces/pid"

    async def prepare(self, config: ContainerConfig) -> LaunchInfo | None:
        return LaunchInfo(pid_namespace=True)  # `unshare --mount-proc`: its /proc, privately


class FilesystemLinuxIsolator(NoopIsolator):
    """`filesystem/linux`: a private mount namespace; the sandbox's `tmp` is the task's /tmp."""

    name = "filesystem/linux"

    async def prepare(self, config: ContainerConfig) -> LaunchInfo | None:
        tmp = config.sandbox / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)  # the sandbox may not be made yet
        tmp.chmod(0o1777)  # whoever the task runs as, as /tmp is
        return LaunchInfo(mount_namespace=True, bind_mounts=((str(tmp), "/tmp"),))
