"""The POSIX containerizer: each container is one child process leading its own session.

The root process runs with cwd = sandbox and stdout/stderr appended to `sandbox/stdout` and
`sandbox/stderr`. Because it leads a new session (and so a new process group), signals go to
the whole group, grandchildren included, unless they escape with setsid themselves; the cgroups
isolators kill whatever is left in the container's cgroups when it is destroyed. Pid + start
time identify the root across agent restarts. Before the sandbox is used the fetcher fills it;
the isolators' requests (`LaunchInfo`) and the user are applied by wrapping the command
(`launcher`), and a limit an isolator reports (`watch`) destroys the container.

A launch does not block the event loop. Where `mesos-launch` could be built, its spawn server
forks the root process, whose child makes the sandbox (unless the fetcher or an image needed it
first) and execs the command, and reports its exit status (`spawn_server`, ADR 0019). Without
it a worker thread creates the sandbox and opens its output files (creating files waits for the
file system, which the agent's checkpoint syncs keep busy) and the loop forks with
`subprocess.Popen` (blocking for the fork and exec), one launch per loop iteration.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import os
import pwd
import resource
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import psutil

from mesos_agent.containerizer.base import (
    ContainerLaunchError,
    Fetcher,
    FetchError,
    Isolator,
    Limitation,
    Termination,
)
from mesos_agent.containerizer.cgroups import make_cgroups
from mesos_agent.containerizer.image_runtime import ImageRuntime
from mesos_agent.containerizer.launcher import (
    Launch,
    LaunchTools,
    UserIdentity,
    find_launch_tools,
    plan_launch,
    resolve_user,
)
from mesos_agent.containerizer.spawn_server import Spawned, SpawnServer, SpawnServerLost
from mesos_agent.containers import ContainerConfig, ContainerProcess, LaunchInfo
from mesos_agent.images.manifest import ImageError
from mesos_values.resources import Resources
from protos import mesos_pb2

_RECOVERED_POLL_SECONDS = 0.2
_START_TIME_TOLERANCE = 0.05
_FD_HEADROOM = 256
_SANDBOX_THREADS = 2
_SANDBOX_MODE = 0o750  # the owner's; the agent's group may read (its UI and CLI as root)


def process_start_time(pid: int) -> float | None:
    """The start time of `pid` as psutil reports it, None when there is no such process."""
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def _is_same_process(pid: int, start_time: float) -> bool:
    started = process_start_time(pid)
    return started is not None and abs(started - start_time) < _START_TIME_TOLERANCE


_OUTPUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


class _Sandbox(NamedTuple):
    """A prepared sandbox: its output files, open (-1: the spawn server's child makes the
    sandbox and opens them), and the `PWD` its commands get: its physical path, as a shell
    sets it, or, when the spawn server's child makes it, its path as given (the child sets
    `PWD` to its physical working directory itself: resolving the path here took a Python
    lstat per component, ~0.16 ms of the loop per launch)."""

    stdout: int
    stderr: int
    real_path: str

    @property
    def made_by_child(self) -> bool:
        return self.stdout < 0


def _prepare_sandbox(sandbox: Path, user: UserIdentity | None) -> _Sandbox:
    """Create the sandbox (private to its owner: `user`, else the agent's user) and open its
    `stdout` and `stderr` for appending (blocking: creating files waits for the file system's
    journal, which is busy while checkpoints are synced)."""
    os.makedirs(sandbox, exist_ok=True)
    os.chmod(sandbox, _SANDBOX_MODE)
    real_path = os.path.realpath(sandbox)
    stdout = os.open(sandbox / "stdout", _OUTPUT_FLAGS, 0o644)
    try:
        stderr = os.open(sandbox / "stderr", _OUTPUT_FLAGS, 0o644)
        if user is not None:
            for owned in (sandbox, sandbox / "stdout", sandbox / "stderr"):
                os.chown(owned, user.uid, user.gid)
    except BaseException:
        os.close(stdout)
        with contextlib.suppress(NameError):
            os.close(stderr)
        raise
    return _Sandbox(stdout, stderr, real_path)


async def _prepare_sandbox_in(
    threads: ThreadPoolExecutor, sandbox: Path, user: UserIdentity | None
) -> _Sandbox:
    """`_prepare_sandbox` in one of `threads`; if cancelled, the files it opens get closed."""
    future = asyncio.get_running_loop().run_in_executor(threads, _prepare_sandbox, sandbox, user)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        future.add_done_callback(_close_outputs)
        raise


def _close_outputs(future: asyncio.Future[_Sandbox]) -> None:
    if not future.cancelled() and future.exception() is None:
        _close_outputs_of(future.result())


def _close_outputs_of(sandbox: _Sandbox) -> None:
    """Close the sandbox's output files (if it was made here: -1 when not)."""
    for fd in (sandbox.stdout, sandbox.stderr):
        if fd >= 0:
            os.close(fd)


def _start_process(
    config: ContainerConfig, launch: Launch, sandbox: _Sandbox
) -> subprocess.Popen[bytes]:
    """Fork and exec the container's root process (blocks for the fork and exec only, as
    asyncio's own subprocess transport does).

    `config.direct_argv` is tried first when nothing wraps the command, with `PWD` set as the
    shell would set it; if that exec fails the shell runs the command and reports what is
    wrong the way it always does.
    """
    if config.direct_argv is not None and not launch.wrapped:
        direct = dataclasses.replace(
            launch, argv=config.direct_argv,
            environment=dict(launch.environment, PWD=sandbox.real_path))
        with contextlib.suppress(OSError):
            return _popen(direct, config.sandbox, sandbox)
    return _popen(launch, config.sandbox, sandbox)


def _popen(launch: Launch, cwd: Path, sandbox: _Sandbox) -> subprocess.Popen[bytes]:
    user = launch.user
    return subprocess.Popen(
        launch.argv,
        cwd=cwd,
        env=launch.environment,
        stdin=subprocess.DEVNULL,
        stdout=sandbox.stdout,
        stderr=sandbox.stderr,
        start_new_session=True,
        user=user.uid if user is not None else None,
        group=user.gid if user is not None else None,
        extra_groups=list(user.groups) if user is not None else None,
    )


def _exit_code(child: subprocess.Popen[bytes]) -> asyncio.Future[int]:
    """A future of `child`'s return code (negative: the signal that ended it).

    On Linux the loop watches a pidfd of the child, so thousands of children cost no thread
    each (asyncio's default child watcher starts one per child). Elsewhere, or when pidfds
    would leave fewer than `_FD_HEADROOM` descriptors under the open-file limit for launching
    more processes, a thread of its own waits for the child.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    try:
        pidfd = os.pidfd_open(child.pid)
    except (AttributeError, OSError):
        pidfd = -1
    if pidfd >= max(0, resource.getrlimit(resource.RLIMIT_NOFILE)[0] - _FD_HEADROOM):
        os.close(pidfd)
        pidfd = -1
    if pidfd < 0:

        def wait() -> None:
            code = child.wait()
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
                loop.call_soon_threadsafe(_resolve, future, code)

        threading.Thread(target=wait, name=f"wait-{child.pid}", daemon=True).start()
        return future

    def exited() -> None:
        code = child.poll()
        if code is None:
            return
        loop.remove_reader(pidfd)
        os.close(pidfd)
        _resolve(future, code)

    loop.add_reader(pidfd, exited)
    return future


def _resolve(future: asyncio.Future[int], code: int) -> None:
    if not future.done():
        future.set_result(code)


@dataclass(slots=True)
class _Container:
    process: ContainerProcess
    exit_code: asyncio.Future[int] | None  # None when re-attached after a restart
    launch: Launch | None = None  # None when re-attached after a restart
    termination: Termination | None = None
    limitation: Limitation | None = None
    watching: asyncio.Task[None] | None = None
    cleaned_up: bool = False


class PosixContainerizer:
    """Process-group containers with isolator hooks (see `Containerizer`).

    `fetcher` fills sandboxes before launch; with `switch_user` (Mesos' `--switch_user`) a
    container whose config names a user runs as that user in a sandbox it owns;
    `launch_tools` are needed by isolators that ask for a pid namespace; `images` runs
    containers whose config names an image (`--image_providers`); `upkeep` is background
    work `run` does for as long as the agent runs (keeping premade cgroups ready).
    """

    def __init__(
        self,
        isolators: Sequence[Isolator] = (),
        *,
        fetcher: Fetcher | None = None,
        switch_user: bool = False,
        launch_tools: LaunchTools | None = None,
        images: ImageRuntime | None = None,
        upkeep: Sequence[Callable[[], Coroutine[object, object, None]]] = (),
    ) -> None:
        self._isolators = tuple(isolators)
        self._upkeep = tuple(upkeep)
        self._images = images
        self._fetcher = fetcher
        self._switch_user = switch_user
        self._launch_tools = launch_tools or find_launch_tools()
        self._spawner = (SpawnServer(self._launch_tools.helper)
                         if self._launch_tools.helper is not None else None)
        self._own_user_names = _own_user_names()
        self._containers: dict[str, _Container] = {}
        self._launching: set[str] = set()  # ids whose sandbox may exist, not yet in _containers
        # Sandboxes are made by two threads of their own (idle threads cost nothing but memory).
        self._sandbox_threads = ThreadPoolExecutor(_SANDBOX_THREADS, thread_name_prefix="sandbox")
        # One fork per loop iteration: many launches at once would otherwise fork hundreds of
        # processes in a row (about a millisecond each) while no network I/O is served.
        self._forking = asyncio.Lock()

    def containers(self) -> list[ContainerProcess]:
        """Containers currently known (alive or not yet destroyed)."""
        return [c.process for c in self._containers.values()]

    async def run(self) -> None:
        """The containerizer's background work, until cancelled."""
        async with asyncio.TaskGroup() as group:
            for work in self._upkeep:
                group.create_task(work())

    def live_ids(self) -> set[str]:
        """Ids of the containers known or being launched (whose sandboxes are in use)."""
        return self._launching | self._containers.keys()

    async def launch(self, config: ContainerConfig) -> ContainerProcess:
        if config.container_id in self._containers or config.container_id in self._launching:
            raise ContainerLaunchError(f"container {config.container_id} already exists")
        self._launching.add(config.container_id)
        try:
            return await self._launch(config)
        finally:
            self._launching.discard(config.container_id)

    async def _launch(self, config: ContainerConfig) -> ContainerProcess:
        user = None if config.image is not None else self._user(config)
        if self._spawner is not None and not config.uris and config.image is None:
            # The spawn server's child makes it (nothing needs it before the process starts).
            sandbox = _Sandbox(-1, -1, str(config.sandbox))
        else:
            try:
                sandbox = await _prepare_sandbox_in(self._sandbox_threads, config.sandbox, user)
            except OSError as exc:
                raise ContainerLaunchError(
                    f"cannot create sandbox {config.sandbox}: {exc}") from exc
        try:
            if config.uris and self._fetcher is not None:
                try:
                    await self._fetcher.fetch(config.uris, config.sandbox,
                                              user.name if user is not None else "")
                except FetchError as exc:
                    raise ContainerLaunchError(
                        str(exc), mesos_pb2.TaskStatus.REASON_FETCHER_FAILED) from exc
            if config.image is not None:
                launch = await self._prepare_image(config)
            else:
                launch = await self._prepare(config, user, sandbox.real_path)
            try:
                started = await self._start(config, launch, sandbox, user)
            except OSError as exc:
                await self._cleanup_isolators(config.container_id)
                raise ContainerLaunchError(
                    f"failed to launch {config.argv[0]!r}: {exc.strerror or exc}"
                ) from exc
        finally:
            _close_outputs_of(sandbox)
        pid, exit_code = started.pid, started.exit_code
        start_time = started.start_time or process_start_time(pid) or time.time()
        process = ContainerProcess(config.container_id, pid, start_time, config.sandbox)
        container = _Container(process, exit_code, launch)
        self._containers[config.container_id] = container
        try:
            for isolator in self._isolators:
                await isolator.isolate(config.container_id, pid)
        except Exception as exc:
            await self.destroy(config.container_id)
            del self._containers[config.container_id]
            raise ContainerLaunchError(f"failed to isolate the container: {exc}") from exc
        self._watch(config.container_id, container)
        return process

    async def _start(
        self, config: ContainerConfig, launch: Launch, sandbox: _Sandbox,
        user: UserIdentity | None,
    ) -> Spawned:
        """Start the container's root process (and make its sandbox, if not made yet)."""
        if self._spawner is not None and launch.user is None:
            with contextlib.suppress(ValueError):  # too large for a request: forked here
                return await self._spawn(self._spawner, config, launch, sandbox, user)
        if sandbox.made_by_child:
            made = await _prepare_sandbox_in(self._sandbox_threads, config.sandbox, user)
            if "PWD" in launch.environment:  # the given path, for the child to resolve
                launch = dataclasses.replace(
                    launch, environment=dict(launch.environment, PWD=made.real_path))
            try:
                return await self._fork(config, launch, made)
            finally:
                _close_outputs_of(made)
        return await self._fork(config, launch, sandbox)

    async def _fork(self, config: ContainerConfig, launch: Launch, sandbox: _Sandbox) -> Spawned:
        async with self._forking:
            child = _start_process(config, launch, sandbox)
        return Spawned(child.pid, None, _exit_code(child))

    async def _spawn(
        self, spawner: SpawnServer, config: ContainerConfig, launch: Launch, sandbox: _Sandbox,
        user: UserIdentity | None,
    ) -> Spawned:
        """`_start_process` through the spawn server: a launch under `mesos-launch` is done
        by the server's child itself; any other reports its exec's error as Popen would."""
        outputs = None if sandbox.made_by_child else (sandbox.stdout, sandbox.stderr)
        owner = (user.uid, user.gid) if user is not None else None

        async def spawn(launch: Launch) -> Spawned:
            helper = launch.argv[0] == self._launch_tools.helper
            args = launch.argv[1:] if helper else ("--", *launch.argv)
            return await spawner.spawn(args, launch.environment, str(config.sandbox), outputs,
                                       report_exec_errors=not helper, owner=owner,
                                       pwd_from_cwd=sandbox.made_by_child)

        if config.direct_argv is not None and not launch.wrapped:
            direct = dataclasses.replace(
                launch, argv=config.direct_argv,
                environment=dict(launch.environment, PWD=sandbox.real_path))
            try:
                return await spawn(direct)
            except SpawnServerLost:
                raise  # it may have forked: never start the command twice
            except OSError:
                pass  # not exec'd: the shell runs it and says what is wrong
        return await spawn(launch)

    def _user(self, config: ContainerConfig) -> UserIdentity | None:
        """Whom the container runs as: None for the agent's own user."""
        if not self._switch_user or not config.user or config.user in self._own_user_names:
            return None
        try:
            user = resolve_user(config.user)
        except LookupError as exc:
            raise ContainerLaunchError(f"cannot run as {config.user!r}: {exc}") from exc
        if user.uid == os.geteuid():
            return None
        if os.geteuid() != 0:
            raise ContainerLaunchError(
                f"cannot run as {config.user!r}: the agent runs as uid {os.geteuid()}, not root "
                "(start it as root, or with --switch_user=false to run every task as itself)")
        return user

    async def _prepare(
        self, config: ContainerConfig, user: UserIdentity | None, real_sandbox: str
    ) -> Launch:
        """Let the isolators prepare the container; the launch that applies what they ask."""
        try:
            info = await self._isolators_prepare(config)
            if self._launch_tools.helper is None:  # else the container's process does it
                make_cgroups(info.cgroups, info.cgroup_writes)
            launch = plan_launch(config.argv, dict(config.environment), info, user,
                                 self._launch_tools)
            direct = config.direct_argv
            if launch.wrapped and direct is not None and _findable(direct[0], config.environment):
                # Wrapped, the command cannot fall back to its shell if exec'ing the program
                # fails: it runs without the shell only when the program is there to run.
                environment = dict(config.environment, PWD=real_sandbox)
                launch = plan_launch(direct, environment, info, user, self._launch_tools)
            return launch
        except (OSError, ValueError) as exc:
            await self._cleanup_isolators(config.container_id)
            raise ContainerLaunchError(f"failed to prepare the container: {exc}") from exc

    async def _isolators_prepare(self, config: ContainerConfig) -> LaunchInfo:
        """What every isolator asks of the container's launch, merged."""
        info = LaunchInfo()
        for isolator in self._isolators:
            asked = await isolator.prepare(config)
            if asked is not None:
                info = info.merge(asked)
        return info

    async def _prepare_image(self, config: ContainerConfig) -> Launch:
        """Pull the container's image, let the isolators prepare (its cgroups; the runtime
        gives it its namespaces), and write its bundle; the launch of its runtime."""
        assert config.image is not None
        if self._images is None:
            raise ContainerLaunchError(
                f"cannot run image {config.image.name!r}: this agent runs no container images "
                "(start it with --image_providers=docker)")
        try:
            await self._images.claim(config.container_id, config.image.name)
            image = await self._images.store.get(config.image.name,
                                                 force_pull=config.image.force_pull)
        except ImageError as exc:
            raise ContainerLaunchError(
                f"failed to pull image {config.image.name!r}: {exc}") from exc
        try:
            info = await self._isolators_prepare(config)
            make_cgroups(info.cgroups, info.cgroup_writes)  # the runtime joins them
            user = config.user if self._switch_user else ""
            return await self._images.prepare(
                config, image, user=user, environment={**config.environment, **info.environment})
        except (OSError, ValueError) as exc:
            await self._cleanup_isolators(config.container_id)
            raise ContainerLaunchError(
                f"failed to prepare the container of image {config.image.name!r}: {exc}"
            ) from exc

    def _watch(self, container_id: str, container: _Container) -> None:
        """Watch the isolators' limits: the first one reached is recorded and the container
        killed (its root then ends, and `wait` reports the limitation)."""
        enforcing = [isolator for isolator in self._isolators if isolator.enforces_limits]
        if not enforcing:
            return

        async def watch() -> None:
            # Made here, not above: a watch cancelled before it starts (a container destroyed
            # at once) then leaves no coroutine never awaited.
            pending = {asyncio.ensure_future(isolator.watch(container_id))
                       for isolator in enforcing}
            try:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for finished in done:
                    if not finished.cancelled() and finished.exception() is None:
                        container.limitation = finished.result()
                        break
                else:
                    return
            finally:
                for other in pending:
                    other.cancel()
            await self.kill(container_id, signal.SIGKILL)

        container.watching = asyncio.ensure_future(watch())

    async def wait(self, container_id: str) -> Termination:
        container = self._get(container_id)
        if container.termination is not None:
            return container.termination
        code = None
        if container.exit_code is not None:
            with contextlib.suppress(SpawnServerLost):  # its child runs on: watched as below
                code = await asyncio.shield(container.exit_code)
        if code is not None:
            termination = _termination(code, container.launch)
        else:
            process = container.process
            while _is_same_process(process.pid, process.start_time):  # noqa: ASYNC110 (not our child)
                await asyncio.sleep(_RECOVERED_POLL_SECONDS)
            termination = Termination(None, None)
        if container.limitation is None:
            for isolator in self._isolators:
                container.limitation = await isolator.limitation(container_id)
                if container.limitation is not None:
                    break
        if container.termination is None:
            container.termination = dataclasses.replace(
                termination, limitation=container.limitation)
        return container.termination

    async def kill(self, container_id: str, sig: int) -> None:
        container = self._get(container_id)
        if container.cleaned_up:
            return
        if not _exit_watched(container) and container.termination is None and not (
            _is_same_process(container.process.pid, container.process.start_time)
        ):
            return  # a re-attached root that is gone: its pid may belong to someone else now
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(container.process.pid, sig)

    async def update(self, container_id: str, resources: Resources) -> None:
        self._get(container_id)
        for isolator in self._isolators:
            await isolator.update(container_id, resources)

    async def usage(self, container_id: str) -> mesos_pb2.ResourceStatistics:
        self._get(container_id)
        statistics = mesos_pb2.ResourceStatistics(timestamp=time.time())
        for isolator in self._isolators:
            statistics.MergeFrom(await isolator.usage(container_id))
        return statistics

    async def destroy(self, container_id: str) -> Termination:
        container = self._get(container_id)
        await self.kill(container_id, signal.SIGKILL)
        termination = await self.wait(container_id)
        if not container.cleaned_up:
            container.cleaned_up = True
            if container.watching is not None:
                container.watching.cancel()
            await self._cleanup_isolators(container_id)
            await asyncio.to_thread(_touch, container.process.sandbox)
        return termination

    def forget(self, container_id: str) -> None:
        """Drop a destroyed container's record."""
        self._containers.pop(container_id, None)

    async def run_check(self, container_id: str, argv: Sequence[str]) -> bool:
        """`argv` in the container: through the OCI runtime for an image container, else as
        a child of the agent in the container's sandbox with its environment."""
        container = self._get(container_id)
        if self._images is not None and self._images.has_bundle(container_id):
            command = self._images.exec_argv(container_id, argv)
            environment: Mapping[str, str] | None = {"PATH": os.defpath}
        else:
            command = tuple(argv)
            environment = (container.launch.environment if container.launch is not None
                           else None)
        try:
            process = await asyncio.create_subprocess_exec(
                *command, cwd=container.process.sandbox, env=environment,
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)
        except OSError:
            return False
        try:
            return await process.wait() == 0
        except asyncio.CancelledError:  # outlasted its timeout: killed, with its children
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.shield(process.wait())
            raise

    async def reclaim_disk(self) -> None:
        """Remove the images no container uses, and their layers (`ImageRuntime`)."""
        if self._images is not None:
            await self._images.collect_garbage()

    async def recover(
        self, containers: Iterable[ContainerProcess], owned: Collection[str] = ()
    ) -> set[str]:
        alive: set[str] = set()
        recovered: list[ContainerProcess] = []
        for process in containers:
            if _is_same_process(process.pid, process.start_time):
                self._containers[process.container_id] = _Container(process, None)
                alive.add(process.container_id)
                recovered.append(process)
        orphans = set(owned) - alive
        for isolator in self._isolators:
            await isolator.recover(recovered, orphans)
        if self._images is not None:
            for orphan in orphans:
                await self._images.destroy(orphan)
        for process in recovered:
            self._watch(process.container_id, self._containers[process.container_id])
        return alive

    def _get(self, container_id: str) -> _Container:
        try:
            return self._containers[container_id]
        except KeyError:
            raise KeyError(f"unknown container {container_id}") from None

    async def _cleanup_isolators(self, container_id: str) -> None:
        """Undo what the runtime and the isolators made for the container."""
        if self._images is not None:
            await self._images.destroy(container_id)
        for isolator in reversed(self._isolators):
            await isolator.cleanup(container_id)


def _exit_watched(container: _Container) -> bool:
    """Whether the container's exit status is known or will be (its pid cannot be reused
    before it is reaped): not for a re-attached one, nor one whose spawn server was lost."""
    code = container.exit_code
    return code is not None and not (code.done() and code.exception() is not None)


def _own_user_names() -> frozenset[str]:
    """The agent's own user, by name and by uid (a task naming it runs as the agent does)."""
    uid = os.geteuid()
    try:
        return frozenset({str(uid), pwd.getpwuid(uid).pw_name})
    except KeyError:
        return frozenset({str(uid)})


def _findable(program: str, environment: Mapping[str, str]) -> bool:
    """Whether exec'ing `program` with `environment`'s PATH finds an executable file (what
    was found is remembered for a few seconds: thousands of tasks run the same programs)."""
    return _which(program, environment.get("PATH", os.defpath),
                  int(time.monotonic() // _WHICH_SECONDS)) is not None


_WHICH_SECONDS = 5.0


@functools.lru_cache(maxsize=256)
def _which(program: str, path: str, period: int) -> str | None:
    del period  # part of the cache key only: entries expire with it
    return shutil.which(program, path=path)


def _touch(sandbox: Path) -> None:
    """Mark when the sandbox's container ended (its mtime; sandbox GC counts from it)."""
    with contextlib.suppress(OSError):
        os.utime(sandbox)


def _termination(code: int, launch: Launch | None) -> Termination:
    """The termination a root's return code (negative: the signal that ended it) means."""
    if code < 0:
        return Termination(None, -code)
    signalled = launch.exit_signal(code) if launch is not None else None
    return Termination(None, signalled) if signalled is not None else Termination(code, None)
