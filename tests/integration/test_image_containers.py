"""Image containers run by the real `runc` from layers pulled out of a real registry (issue
19): the image's root filesystem, its Entrypoint/Cmd/Env/WorkingDir, the sandbox at
/mnt/mesos/sandbox, volumes, the cgroups limits, signals through the container's init, and
both provisioner backends."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from frameworks import OfferBudget, SchedulerDriver, command_task
from mesos_agent.config import IsolationConfig
from mesos_agent.containerizer import ContainerConfig, ContainerLaunchError, PosixContainerizer
from mesos_agent.containerizer.cgroups import Cgroups, mounts_under
from mesos_agent.containerizer.create import create_containerizer
from mesos_agent.containers import ContainerImage, Volume
from mesos_agent.sandbox_collector import SandboxCollector
from mesos_values.resources import Resources
from protos import mesos_pb2
from tests.integration.cluster import Cluster, wait_for
from tests.integration.recording import RecordingScheduler
from tests.integration.registries import Registry, Symlink, build_image, save_archive
from tests.integration.test_end_to_end import running

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runc") is None,
                       reason="image containers need root and runc"),
]
Reason = mesos_pb2.TaskStatus.Reason


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    layout = tmp_path_factory.mktemp("layout")
    app = build_image(
        layout,
        layers=[{"etc/motd": b"hello from the image\n", "bin/dd": Symlink("busybox"),
                 "bin/id": Symlink("busybox"),
                 "opt/app/data": b"app data\n", "opt/app/old": b"whited out above\n",
                 "var/cache/stale": b"hidden by an opaque directory above\n"},
                {"opt/app/old": None, "var/cache/.wh..wh..opq": b"", "var/cache/fresh": b"\n"}],
        entrypoint=["/bin/echo", "entrypoint"], cmd=["from-cmd"],
        env={"GREETING": "hi", "PATH": "/bin"}, working_dir="/opt/app", tag="v1")
    with Registry(tmp_path_factory.mktemp("registry")) as running:
        running.push(app, "team/app")
        yield running


@pytest.fixture
def cgroups_root() -> Iterator[str]:
    root = f"mesos-test-{uuid.uuid4().hex[:8]}"
    yield root
    cgroups = Cgroups(mounts_under(Path("/sys/fs/cgroup")), root)
    for controller in ("cpu", "cpuacct", "memory"):
        for container_id in cgroups.containers(controller):
            cgroups.destroy(controller, container_id)
        base = cgroups.hierarchy(controller) / root
        if base.is_dir():
            base.rmdir()


def containerizer(tmp_path: Path, registry: Registry, cgroups_root: str,
                  backend: str = "overlay") -> PosixContainerizer:
    return create_containerizer(IsolationConfig(
        isolation=("cgroups/cpu", "cgroups/mem"), cgroups_root=cgroups_root,
        image_providers=("docker",), docker_registry=registry.url,
        image_provisioner_backend=backend), tmp_path / "work")


def image_task(tmp_path: Path, registry: Registry, command: mesos_pb2.CommandInfo | None,
               *, name: str = "team/app:v1", volumes: tuple[Volume, ...] = (),
               resources: str = "cpus:0.5;mem:128") -> ContainerConfig:
    return ContainerConfig(
        container_id=str(uuid.uuid4()), argv=(), environment={"TASK_VAR": "task"},
        sandbox=tmp_path / f"sandbox-{uuid.uuid4().hex[:6]}",
        resources=Resources.parse(resources),
        image=ContainerImage(f"{registry.host}/{name}", command=command, volumes=volumes))


def shell(script: str) -> mesos_pb2.CommandInfo:
    return mesos_pb2.CommandInfo(value=script)


async def run(isolated: PosixContainerizer, config: ContainerConfig) -> tuple[int | None, str]:
    await isolated.launch(config)
    async with asyncio.timeout(60):
        termination = await isolated.wait(config.container_id)
    await isolated.destroy(config.container_id)
    output = (config.sandbox / "stdout").read_text() + (config.sandbox / "stderr").read_text()
    return termination.exit_code, output


@pytest.mark.parametrize("backend", ["overlay", "copy"])
async def test_the_command_runs_in_the_images_root_filesystem(
        tmp_path: Path, registry: Registry, cgroups_root: str, backend: str) -> None:
    isolated = containerizer(tmp_path, registry, cgroups_root, backend)
    script = ("cat /etc/motd; echo $GREETING $TASK_VAR $MESOS_SANDBOX; pwd; "
              "test -e /work && echo host-visible || echo host-hidden; "
              "echo note > $MESOS_SANDBOX/written; ps | wc -l; "
              "test -e /opt/app/old && echo old-visible || echo old-gone; ls /var/cache")
    status, output = await run(isolated, config := image_task(tmp_path, registry, shell(script)))
    lines = output.splitlines()
    assert status == 0, output
    assert lines[:4] == ["hello from the image", "hi task /mnt/mesos/sandbox", "/opt/app",
                         "host-hidden"]
    assert int(lines[4]) <= 5  # its init, the shell, ps, wc: its own pid namespace
    assert lines[5:] == ["old-gone", "fresh"]  # a whiteout, an opaque directory
    assert (config.sandbox / "written").read_text() == "note\n"
    assert not (tmp_path / "work" / "runtime" / config.container_id).exists()  # cleaned up


async def test_entrypoint_and_cmd_as_mesos_merges_them(
        tmp_path: Path, registry: Registry, cgroups_root: str) -> None:
    isolated = containerizer(tmp_path, registry, cgroups_root)
    assert (await run(isolated, image_task(tmp_path, registry, None)))[1] == (
        "entrypoint from-cmd\n")
    arguments = mesos_pb2.CommandInfo(shell=False, arguments=["from-task"])
    assert (await run(isolated, image_task(tmp_path, registry, arguments)))[1] == (
        "entrypoint from-task\n")
    program = mesos_pb2.CommandInfo(shell=False, value="/bin/cat",
                                    arguments=["cat", "/opt/app/data"])
    assert (await run(isolated, image_task(tmp_path, registry, program)))[1] == "app data\n"


async def test_volumes_read_only_and_read_write(
        tmp_path: Path, registry: Registry, cgroups_root: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "input").write_text("from the host\n")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    isolated = containerizer(tmp_path, registry, cgroups_root)
    config = image_task(tmp_path, registry, shell(
        "cat /data/input; touch /data/new 2>/dev/null && echo wrote-ro || echo refused; "
        "echo out > $MESOS_SANDBOX/scratch/result"), volumes=(
            Volume(str(shared), "/data", read_only=True), Volume(str(scratch), "scratch")))
    status, output = await run(isolated, config)
    assert (status, output) == (0, "from the host\nrefused\n")
    assert (scratch / "result").read_text() == "out\n"
    assert not (shared / "new").exists()


async def test_the_memory_limit_holds_in_the_container(
        tmp_path: Path, registry: Registry, cgroups_root: str) -> None:
    isolated = containerizer(tmp_path, registry, cgroups_root)
    config = image_task(tmp_path, registry, shell("dd if=/dev/zero of=/dev/null bs=300M count=1"),
                        resources="cpus:0.5;mem:64")
    await isolated.launch(config)
    async with asyncio.timeout(60):
        termination = await isolated.wait(config.container_id)
    await isolated.destroy(config.container_id)
    assert termination.limitation is not None
    assert termination.limitation.reason == Reason.REASON_CONTAINER_LIMITATION_MEMORY


async def test_sigterm_reaches_the_command_through_its_init(
        tmp_path: Path, registry: Registry, cgroups_root: str) -> None:
    isolated = containerizer(tmp_path, registry, cgroups_root)
    config = image_task(tmp_path, registry, shell("exec sleep 300"))
    await isolated.launch(config)
    await isolated.kill(config.container_id, 15)
    async with asyncio.timeout(20):  # a pid 1 `sleep` would ignore it for 300 s
        termination = await isolated.wait(config.container_id)
    await isolated.destroy(config.container_id)
    assert termination.signal == 15


async def test_images_that_cannot_be_had_fail_the_launch_saying_why(
        tmp_path: Path, registry: Registry, cgroups_root: str) -> None:
    isolated = containerizer(tmp_path, registry, cgroups_root)
    with pytest.raises(ContainerLaunchError, match=r"'.*team/none:v1'.*not found"):
        await isolated.launch(image_task(tmp_path, registry, shell("true"),
                                         name="team/none:v1"))
    with pytest.raises(ContainerLaunchError, match=r"user 'alice' does not exist in the image"):
        await isolated.launch(dataclasses.replace(
            image_task(tmp_path, registry, shell("true")), user="alice"))
    plain = create_containerizer(IsolationConfig(isolation=("posix/cpu",)), tmp_path / "w2")
    with pytest.raises(ContainerLaunchError, match="--image_providers=docker"):
        await plain.launch(image_task(tmp_path, registry, shell("true")))



def test_sdk_tasks_run_in_images_on_a_cluster(cluster: Cluster, registry: Registry,
                                              tmp_path: Path) -> None:
    """Through the SDK and a real master and agent: `command_task(..., image=...)` runs in
    the image (named as in the agent's default registry); an unknown image, a digest the
    registry does not have and a registry refusing the agent's credentials (`--docker_config`)
    each fail their task with the reason."""
    with Registry(tmp_path / "private", htpasswd=("puller", "secret")) as private:
        private.push(build_image(tmp_path / "layout", tag="v1"), "team/private")
        config = tmp_path / "docker.json"
        config.write_text(json.dumps({"auths": {private.host: {
            "auth": base64.b64encode(b"puller:wrong").decode()}}}))
        cluster.agent_flags += ["--image_providers=docker", f"--docker_registry={registry.url}",
                                f"--docker_config={config}"]
        cluster.start_agent()
        run_sdk_tasks(cluster, [
            ("in-image", "team/app:v1", "cat /etc/motd; echo sandbox=$MESOS_SANDBOX"),
            ("no-image", "team/none:v1", "true"),
            ("bad-digest", "team/app@sha256:" + "0" * 64, "true"),
            ("refused", f"{private.host}/team/private:v1", "true")])


def run_sdk_tasks(cluster: Cluster, tasks: list[tuple[str, str, str]]) -> None:
    """Launch (task id, image, command) tasks through the SDK and check how each ends."""

    def launch(driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            if not tasks:
                driver.decline_offer(offer.id, filters=60)
                continue
            budget = OfferBudget(offer)
            launched = [command_task(task_id, budget, cmd, image=image)
                        for task_id, image, cmd in tasks]
            tasks.clear()
            driver.launch_tasks(offer.id, launched)

    scheduler = RecordingScheduler(on_offers=launch)
    with running(cluster, scheduler):
        scheduler.wait_for_state("in-image", "TASK_FINISHED")
        unknown = scheduler.wait_for_state("no-image", "TASK_FAILED")
        bad_digest = scheduler.wait_for_state("bad-digest", "TASK_FAILED")
        refused = scheduler.wait_for_state("refused", "TASK_FAILED")
    assert "team/none:v1" in unknown.message and "not found" in unknown.message, unknown.message
    assert "sha256:0000" in bad_digest.message and "MANIFEST_UNKNOWN" in bad_digest.message, (
        bad_digest.message)
    assert "refused the credentials of 'puller'" in refused.message, refused.message
    assert outputs(cluster, "in-image") == ["hello from the image\nsandbox=/mnt/mesos/sandbox\n"]


def test_marathon_apps_run_in_images(cluster: Cluster, registry: Registry) -> None:
    """A MESOS container and a DOCKER one (served by the same containerizer) with the same
    image: both run, the DOCKER one with the image's Entrypoint and the app's `args`; the
    MESOS one's COMMAND health check runs in its container."""
    cluster.agent_flags += ["--image_providers=docker", f"--docker_registry={registry.url}"]
    cluster.start_agent()
    _, url = cluster.start_marathon()
    with httpx.Client(base_url=url, timeout=10) as marathon:
        wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon to register")
        apps = [
            # Its COMMAND health check runs on the agent, inside the container: the file it
            # tests is in the image only.
            {"id": "/ucr", "cmd": "cat /etc/motd; exec sleep 300", "cpus": 0.1, "mem": 32,
             "container": {"type": "MESOS", "docker": {"image": "team/app:v1"}},
             "healthChecks": [{"protocol": "COMMAND", "delaySeconds": 0, "intervalSeconds": 1,
                               "gracePeriodSeconds": 60,
                               "command": {"value": "test -f /opt/app/data"}}]},
            {"id": "/docker", "args": ["args-from-app"], "cpus": 0.1, "mem": 32,
             "container": {"type": "DOCKER", "docker": {"image": "team/app:v1",
                                                        "network": "HOST"}}},
            {"id": "/missing", "cmd": "true", "cpus": 0.1, "mem": 32,
             "container": {"type": "MESOS", "docker": {"image": "team/none:v1"}}},
        ]
        for app in apps:
            created = marathon.post("/v2/apps", json=app)
            assert created.status_code == 201, created.text

        def app_state(app_id: str) -> dict[str, Any]:
            return marathon.get(f"/v2/apps{app_id}",
                                params={"embed": "app.lastTaskFailure"}).json()["app"]

        wait_for(lambda: app_state("/ucr")["tasksHealthy"] == 1, "/ucr to run, healthy")
        # /docker's entrypoint echoes and exits: it finishes, and is restarted, every time.
        wait_for(lambda: any("entrypoint args-from-app" in out for out in outputs(
            cluster, "docker.")), "the /docker task's echo")

        def queued_failure() -> str | None:
            for item in marathon.get("/v2/queue").json()["queue"]:
                if item["app"]["id"] == "/missing" and "lastTaskFailure" in item:
                    return str(item["lastTaskFailure"]["message"])
            return None

        # An image that cannot be pulled: the queue says why its instance does not launch.
        message = wait_for(queued_failure, "the queue to say why /missing waits")
        assert "failed to pull image 'team/none:v1'" in message and "not found" in message
    assert outputs(cluster, "ucr.") == ["hello from the image\n"]


def outputs(cluster: Cluster, task_prefix: str) -> list[str]:
    """The stdout of the tasks whose ids start with `task_prefix` (in the agents' sandboxes,
    not their containers' root filesystems)."""
    return [path.read_text() for path in cluster.work_dir.glob(
        f"agent-*/slaves/*/frameworks/*/executors/{task_prefix}*/runs/*/stdout")]


async def test_unused_images_are_collected_and_images_in_use_kept(
        tmp_path: Path, registry: Registry, cgroups_root: str) -> None:
    other = build_image(tmp_path / "other", layers=[{"other": b"x"}], cmd=["true"], tag="v1")
    registry.push(other, "team/other")
    isolated = containerizer(tmp_path, registry, cgroups_root)
    await run(isolated, image_task(tmp_path, registry, shell("true")))  # team/app: done
    running = image_task(tmp_path, registry, shell("exec sleep 300"), name="team/other:v1")
    await isolated.launch(running)
    try:
        store = tmp_path / "work" / "store" / "docker"
        layers_before = set(os.listdir(store / "layers"))
        await isolated.reclaim_disk()
        layers_after = set(os.listdir(store / "layers"))
        # busybox (shared), team/app's two own layers, team/other's own one: team/app's went.
        assert len(layers_before) == 4 and len(layers_after) == 2
        assert len(os.listdir(store / "images")) == 1  # team/other's record stays
    finally:
        await isolated.destroy(running.container_id)
    await isolated.reclaim_disk()
    assert os.listdir(store / "layers") == []  # nothing in use any more


async def test_the_sandbox_collector_reclaims_disk_when_headroom_runs_out(
        tmp_path: Path) -> None:
    reclaimed: list[bool] = []

    async def reclaim() -> None:
        reclaimed.append(True)

    roomy = SandboxCollector(tmp_path, set, gc_delay=3600, headroom=0.0,
                             agent_id=lambda: "a", reclaim=reclaim)
    await roomy.collect()
    assert reclaimed == []  # a disk with any free space has room to spare at headroom 0
    tight = SandboxCollector(tmp_path, set, gc_delay=3600, headroom=1.0,
                             agent_id=lambda: "a", reclaim=reclaim)
    await tight.collect()
    assert reclaimed == [True]  # headroom 1: never enough room


async def test_the_task_runs_as_its_user_as_the_image_names_it(
        tmp_path: Path, registry: Registry, cgroups_root: str) -> None:
    isolated = containerizer(tmp_path, registry, cgroups_root)
    config = dataclasses.replace(image_task(tmp_path, registry, shell("id -u; id -g; touch "
                                                                     "$MESOS_SANDBOX/mine")),
                                 user="nobody")
    status, output = await run(isolated, config)
    assert (status, output.split()) == (0, ["65534", "65534"])
    assert (config.sandbox / "mine").stat().st_uid == 65534  # its sandbox is its own


async def test_images_from_a_directory_of_archives(tmp_path: Path, cgroups_root: str) -> None:
    """`--docker_registry` a directory: `docker save` output named `<repository>:<tag>.tar`,
    no registry at all."""
    archives = tmp_path / "archives"
    archives.mkdir()
    image = build_image(tmp_path / "layout", layers=[{"etc/motd": b"from an archive\n"}],
                        tag="v1")
    save_archive(image, tmp_path / "saved.tar", "tools:v1", format="docker-archive")
    (tmp_path / "saved.tar").rename(archives / "tools:v1.tar")
    isolated = create_containerizer(IsolationConfig(
        isolation=("cgroups/mem",), cgroups_root=cgroups_root, image_providers=("docker",),
        docker_registry=str(archives)), tmp_path / "work")
    config = ContainerConfig(
        container_id=str(uuid.uuid4()), argv=(), environment={}, sandbox=tmp_path / "s",
        resources=Resources.parse("cpus:0.1;mem:64"),
        image=ContainerImage("tools:v1", command=shell("cat /etc/motd")))
    assert await run(isolated, config) == (0, "from an archive\n")
