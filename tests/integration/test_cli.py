"""The installed `mesos` command against a live cluster: a master, an agent, Marathon and the
batch framework as real processes, driven only through the CLI and checked against what the
components' own APIs say."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from frameworks import SandboxFiles, SandboxNotFound
from tests.conftest import unique_zk_path
from tests.integration.cluster import Cluster, Process, free_port, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.zookeeper import ZooKeeperEnsemble

pytestmark = pytest.mark.integration

# The command installed for this interpreter, found beside it first: a version manager's shim
# earlier on PATH (pyenv's) would run shell scripts before every call.
MESOS = shutil.which("mesos", path=str(Path(sys.executable).parent)) or shutil.which("mesos")
COMMAND = [MESOS] if MESOS else [sys.executable, "-m", "mesos_cli.main"]


def run_mesos(*args: str, env: dict[str, str],
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the installed command with `env` (no other master address leaks in)."""
    clean = {name: value for name, value in os.environ.items()
             if name not in ("MESOS_MASTER", "MESOS_MASTER_URL")}
    return subprocess.run([*COMMAND, *args], env={**clean, **env}, capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def grpc_address(master: Process) -> str:
    """The gRPC address a master was started on (`--port`)."""
    return f"127.0.0.1:{master.argv[master.argv.index('--port') + 1]}"


@dataclass
class LiveCluster:
    """The running cluster, the environment that points `mesos` at it, and a scratch dir."""

    cluster: Cluster
    master_url: str
    master_grpc: str
    marathon_url: str
    batch_url: str
    files: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "MESOS_MASTER_URL": self.master_url,
                "MARATHON_URL": self.marathon_url, "MESOS_BATCH_URL": self.batch_url}

    def mesos(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the installed command; its exit code, stdout and stderr."""
        return run_mesos(*args, env=self.env, timeout=timeout)

    def ok(self, *args: str) -> str:
        """Run the command, expecting success; its stdout."""
        done = self.mesos(*args)
        assert done.returncode == 0, f"mesos {' '.join(args)}: {done.stderr}"
        assert "Traceback" not in done.stderr
        return done.stdout

    def write(self, name: str, document: Any) -> str:
        path = self.files / name
        path.write_text(json.dumps(document))
        return str(path)

    def get(self, url: str) -> Any:
        response = httpx.get(url, timeout=10)
        response.raise_for_status()
        return response.json()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCluster]:
    work_dir = tmp_path_factory.mktemp("cli")
    cluster = Cluster(work_dir, FAST_MASTER_FLAGS)
    try:
        # Every process starts at once (their start-ups overlap); each follows the master.
        master = cluster.start_master(wait=False)
        cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]",
                            hostname="127.0.0.1")
        marathon, marathon_url = cluster.start_marathon(wait=False)
        batch, batch_url = cluster.start_batch(wait=False)
        for process in (master, marathon, batch):
            process.wait_listening()
        running = LiveCluster(cluster, master.http_url, grpc_address(master), marathon_url,
                              batch_url, work_dir / "files")
        running.files.mkdir()
        wait_for(lambda: running.get(marathon_url + "/v2/info")["frameworkId"],
                 "Marathon to register")
        wait_for(lambda: running.get(batch_url + "/info")["frameworkId"], "batch to register")
        wait_for(lambda: len(running.get(master.http_url + "/state")["slaves"]) == 1,
                 "the agent to register")
        yield running
    finally:
        cluster.close()


def app(live: LiveCluster, app_id: str) -> dict[str, Any]:
    answer: dict[str, Any] = live.get(f"{live.marathon_url}/v2/apps{app_id}")["app"]
    return answer


def test_cluster_agents_and_frameworks_as_tables_and_json(live: LiveCluster) -> None:
    state = live.get(live.master_url + "/state")
    [agent] = state["slaves"]

    summary = live.ok("cluster")
    assert f"leader      {state['leader']}" in summary
    assert "agents      1 active / 1" in summary
    assert "frameworks  2 active / 2" in summary
    assert re.search(r"^cpus\s+[\d.]+/4 \(", summary, re.MULTILINE)
    numbers = json.loads(live.ok("cluster", "--json"))
    assert (numbers["agents"], numbers["frameworks"], numbers["cpus_total"]) == (1, 2, 4.0)
    assert numbers["mem_total"] == 4096.0 and numbers["leader"] == state["leader"]

    header, *rows = live.ok("agents").splitlines()
    assert header.split() == ["ID", "HOSTNAME", "ADDRESS", "ACTIVE", "TASKS", "CPUS", "MEM",
                              "DISK", "ATTRIBUTES"]
    [row] = rows
    assert row.split()[:4] == [agent["id"], "127.0.0.1", f"127.0.0.1:{agent['http_port']}",
                               "yes"]
    assert [a["id"] for a in json.loads(live.ok("--json", "agents"))] == [agent["id"]]

    frameworks = live.ok("frameworks")
    assert {line.split()[1] for line in frameworks.splitlines()[1:]} == {"marathon", "batch"}
    assert {f["name"] for f in json.loads(live.ok("frameworks", "--json"))} == {
        "marathon", "batch"}


def test_the_master_given_as_every_component_takes_it(live: LiveCluster) -> None:
    leader = live.get(live.master_url + "/state")["leader"]
    by_grpc = run_mesos("--master", live.master_grpc, "cluster", "--json", env={})
    assert by_grpc.returncode == 0, by_grpc.stderr
    assert json.loads(by_grpc.stdout)["leader"] == leader
    from_env = run_mesos("agents", "--json", env={"MESOS_MASTER": live.master_grpc})
    assert from_env.returncode == 0, from_env.stderr
    assert len(json.loads(from_env.stdout)) == 1

    port = free_port()
    refused = run_mesos("--master", f"127.0.0.1:{port}", "cluster", env={})
    assert refused.returncode == 3
    assert refused.stderr == f"mesos: cannot reach master at 127.0.0.1:{port}: " \
                             "connection refused\n"
    bad = run_mesos("--master", "nohost", "cluster", env={})
    assert bad.returncode == 2 and bad.stderr.startswith("mesos: --master: invalid master ")


def test_deploy_wait_scale_tasks_and_task_log(live: LiveCluster) -> None:
    definition = live.write("hello.json", {
        "id": "/hello", "cmd": "echo hello-from-task; sleep 100", "cpus": 0.1, "mem": 32,
        "instances": 1, "portDefinitions": []})
    deployed = live.mesos("app", "deploy", definition, "--wait")
    assert deployed.returncode == 0, deployed.stderr
    assert deployed.stdout.startswith("Created app /hello (deployment ")
    assert "finished: /hello has 1/1 instances running" in deployed.stdout
    assert re.search(r"/hello \[#{24}\]\s+100%  step \d/\d  running 1/1", deployed.stderr)
    assert app(live, "/hello")["tasksRunning"] == 1

    [task] = json.loads(live.ok("tasks", "--json"))
    assert task["id"].startswith("hello.") and task["state"] == "TASK_RUNNING"
    table = live.ok("tasks", "--framework", "marathon").splitlines()
    assert table[0].split() == ["ID", "NAME", "FRAMEWORK", "STATE", "HOST", "CPUS", "MEM",
                                "CPU", "TIME", "MEM", "USED"]
    assert table[1].split()[:5] == [task["id"], "hello", "marathon", "TASK_RUNNING",
                                    "127.0.0.1"]
    assert re.search(r" [\d.]+s  +[\d.]+ [KMG]?B/32 MB$", table[1]), table[1]
    assert task["statistics"]["mem_limit_bytes"] == 32 * 1024 * 1024
    assert "hello" in live.ok("app", "list")

    log = wait_for(lambda: (out := live.ok("task", "log", task["id"]))
                   and "hello-from-task" in out and out, "the task's output in its log")
    assert log == "hello-from-task\n"
    assert live.ok("task", "log", "hello", "--file", "stderr") == ""

    scaled = live.mesos("app", "scale", "hello", "2", "--wait")
    assert scaled.returncode == 0, scaled.stderr
    assert "Scaling app /hello to 2 instances" in scaled.stdout
    assert "running 2/2" in scaled.stderr
    assert app(live, "/hello")["tasksRunning"] == 2
    assert len(json.loads(live.ok("app", "tasks", "/hello", "--json"))) == 2

    ambiguous = live.mesos("task", "log", "hello")
    assert ambiguous.returncode == 1 and "matches 2 tasks" in ambiguous.stderr

    updated = live.mesos("app", "deploy", definition, "--wait")  # the same id: a PUT
    assert updated.returncode == 0, updated.stderr
    assert updated.stdout.startswith("Updated app /hello")
    assert app(live, "/hello")["tasksRunning"] == 1


def test_task_log_follow_prints_until_the_task_ends(live: LiveCluster) -> None:
    definition = live.write("ticker.json", {
        "id": "/ticker", "cmd": "echo tick-1; sleep 1; echo tick-2; sleep 1; echo end-of-task",
        "cpus": 0.1, "mem": 32, "instances": 1, "portDefinitions": []})
    live.ok("app", "deploy", definition, "--wait")
    [task] = json.loads(live.ok("app", "tasks", "ticker", "--json"))
    followed = live.mesos("task", "log", task["id"], "--follow", timeout=30)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines()[-3:] == ["tick-1", "tick-2", "end-of-task"]
    assert live.ok("app", "remove", "ticker").startswith("Removing app /ticker")


def test_jobs_run_and_wait_for_their_outcome(live: LiveCluster) -> None:
    good = live.write("good.json", {"id": "good", "run": {
        "cmd": "echo done", "cpus": 0.1, "mem": 32}})
    bad = live.write("bad.json", {"id": "bad", "run": {"cmd": "exit 3", "cpus": 0.1,
                                                       "mem": 32}})
    assert live.ok("job", "add", good) == "Added job good\n"
    live.ok("job", "add", bad)

    succeeded = live.mesos("job", "run", "good", "--wait")
    assert succeeded.returncode == 0, succeeded.stderr
    run_id = re.search(r"Started run (\S+) of job good", succeeded.stdout)
    assert run_id and f"Run {run_id[1]} of job good: SUCCESS" in succeeded.stdout
    failed = live.mesos("job", "run", "bad", "--wait")
    assert failed.returncode == 1
    assert re.search(r"^mesos: run \S+ of job bad failed \(.*TASK_FAILED\)$", failed.stderr,
                     re.MULTILINE)
    assert "Traceback" not in failed.stderr

    jobs = {line.split()[0]: line.split() for line in live.ok("job", "list").splitlines()[1:]}
    assert jobs["good"][1:4] == ["-", "0", "1"] and jobs["bad"][1:5] == ["-", "0", "0", "1"]
    runs = live.ok("job", "runs", "good").splitlines()
    assert runs[1].split()[:2] == [run_id[1], "SUCCESS"]

    schedule = live.write("nightly.json", {"id": "nightly", "cron": "0 2 * * *"})
    live.ok("job", "schedule", "add", "good", schedule)
    [listed] = json.loads(live.ok("job", "schedule", "list", "good", "--json"))
    assert listed["id"] == "nightly" and listed["cron"] == "0 2 * * *"
    duplicate = live.mesos("job", "add", good)
    assert duplicate.returncode == 1 and "(409)" in duplicate.stderr


def test_task_log_of_a_finished_task(live: LiveCluster) -> None:
    job = live.write("printer.json", {"id": "printer", "run": {
        "cmd": "echo printed-by-a-finished-task; echo to-stderr >&2", "cpus": 0.1,
        "mem": 32}})
    live.ok("job", "add", job)
    done = live.mesos("job", "run", "printer", "--wait")
    assert done.returncode == 0, done.stderr
    run_id = re.search(r"Started run (\S+) of job printer", done.stdout)
    assert run_id
    finished = [task for task in json.loads(live.ok("tasks", "--all", "--json"))
                if task["id"].startswith(f"printer_{run_id[1]}.")]
    assert [task["state"] for task in finished] == ["TASK_FINISHED"]

    assert live.ok("task", "log", finished[0]["id"]) == "printed-by-a-finished-task\n"
    assert live.ok("task", "log", f"printer_{run_id[1]}", "--file", "stderr") == "to-stderr\n"
    followed = live.mesos("task", "log", finished[0]["id"], "--follow", timeout=30)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout == "printed-by-a-finished-task\n"


def test_a_bad_app_definition_shows_marathons_422_details(live: LiveCluster) -> None:
    definition = live.write("broken.json", {"id": "/broken", "cmd": "true", "cpus": -1})
    refused = live.mesos("app", "deploy", definition)
    assert refused.returncode == 1
    [line] = refused.stderr.splitlines()
    assert line.startswith("mesos: Marathon refused POST /v2/apps (422): ")
    assert "/cpus: error.min" in line
    missing = live.mesos("app", "show", "/nope")
    assert missing.returncode == 1 and "(404): App '/nope' does not exist" in missing.stderr


def test_an_unreachable_master_and_bad_usage(live: LiveCluster) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    unreachable = live.mesos("--master", url, "cluster")
    assert unreachable.returncode == 3
    assert unreachable.stderr == f"mesos: cannot reach master at {url}: connection refused\n"
    assert unreachable.stdout == ""
    usage = live.mesos("app", "scale", "hello")
    assert usage.returncode == 2 and "usage: mesos app scale" in usage.stderr


@pytest.fixture
def two_masters(
    tmp_path: Path, shared_zookeeper: ZooKeeperEnsemble
) -> Iterator[tuple[Cluster, str]]:
    """Two masters electing a leader in the shared ZooKeeper; the cluster and the zk:// URL."""
    url = shared_zookeeper.url(unique_zk_path("/mesos"))
    cluster = Cluster(tmp_path, FAST_MASTER_FLAGS, zk_url=url)
    try:
        cluster.start_master()
        cluster.start_master()
        yield cluster, url
    finally:
        cluster.close()


def test_the_master_found_through_zookeeper(two_masters: tuple[Cluster, str]) -> None:
    cluster, url = two_masters
    [leader] = wait_for(lambda: cluster.leading_masters(), "a leading master")
    [standby] = [m for m in cluster.masters if m is not leader]
    name = f"master@127.0.0.1:{leader.http_port}"
    wait_for(  # a standby's /state has no `leader` until it has read the group
        lambda: httpx.get(standby.http_url + "/state", timeout=10).json().get("leader") == name,
        "the standby to know the leader",
    )

    found = run_mesos("--master", url, "cluster", "--json", env={})
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["leader"] == name
    assert found.stderr == ""
    via_standby = run_mesos("cluster", "--json", env={"MESOS_MASTER": grpc_address(standby)})
    assert via_standby.returncode == 0, via_standby.stderr
    assert json.loads(via_standby.stdout)["leader"] == name

    nobody = url.replace("/mesos", "/nobody")
    missing = run_mesos("--timeout", "1", "--master", nobody, "cluster", env={})
    assert missing.returncode == 3
    assert missing.stderr == (f"mesos: found no leading master in ZooKeeper at {nobody} within "
                              "1s (is ZooKeeper up, and a master elected?)\n")


def test_deploy_wait_says_why_instances_do_not_launch(live: LiveCluster) -> None:
    """An app in an image, on agents that run no images: `--wait` shows the queue's reason
    and gives up with it at once, instead of waiting out its timeout."""
    definition = live.write("imaged.json", {
        "id": "/imaged", "cpus": 0.1, "mem": 32, "instances": 1, "portDefinitions": [],
        "container": {"type": "MESOS", "docker": {"image": "busybox"}}})
    waited = live.mesos("app", "deploy", definition, "--wait")  # not its 300 s timeout
    assert waited.returncode == 1
    assert "(waiting: offers declined: NoImageProvider" in waited.stderr, waited.stderr
    assert "cannot finish as it is: every agent's offer was declined: NoImageProvider" in (
        waited.stderr)
    assert live.ok("app", "remove", "imaged", "--force").startswith("Removing app /imaged")


def test_job_run_wait_says_why_its_tasks_wait(live: LiveCluster) -> None:
    """A job in an image, on agents that run no images: `job run --wait` shows why the run
    waits and gives up with it."""
    imaged = live.write("imaged-job.json", {"id": "imaged", "run": {
        "cpus": 0.1, "mem": 32, "docker": {"image": "busybox"}}})
    live.ok("job", "add", imaged)
    waited = live.mesos("--timeout", "3", "job", "run", "imaged", "--wait")
    assert waited.returncode == 1
    reason = "no offered agent runs container images (agents need --image_providers=docker)"
    assert f"waits: {reason}" in waited.stderr, waited.stderr
    assert f"waiting because {reason}" in waited.stderr
    queue = httpx.get(f"{live.batch_url}/v1/queue").json()
    [queued] = [q for q in queue if q["jobId"] == "imaged"]
    assert [r.get("waitingReason") for r in queued["runs"]] == [reason]


def test_without_urls_the_cli_finds_marathon_and_batch_through_the_master(
        live: LiveCluster) -> None:
    """No --marathon/MARATHON_URL, no --batch/MESOS_BATCH_URL: the CLI follows the web UI URLs
    the frameworks registered (which name an address they listen on)."""
    env = {name: value for name, value in live.env.items()
           if name not in ("MARATHON_URL", "MESOS_BATCH_URL")}
    env["MESOS_MASTER"] = live.master_grpc
    frameworks = {f["name"]: f for f in live.get(live.master_url + "/state")["frameworks"]}
    assert frameworks["marathon"]["webui_url"] == live.marathon_url
    assert frameworks["batch"]["webui_url"] == live.batch_url
    apps = run_mesos("--json", "app", "list", env=env)
    assert apps.returncode == 0, apps.stderr
    assert json.loads(apps.stdout) == live.get(live.marathon_url + "/v2/apps")["apps"]
    jobs = run_mesos("--json", "job", "list", env=env)
    assert jobs.returncode == 0, jobs.stderr
    assert isinstance(json.loads(jobs.stdout), list)


def test_a_finished_frameworks_tasks_stay_findable(live: LiveCluster) -> None:
    """Once a framework tears down, the master keeps it among completed_frameworks: its tasks
    are listed and `mesos task log` still reads their sandboxes."""
    done = subprocess.run(
        [sys.executable, "-m", "frameworks.examples.sleep_framework", "--master",
         live.master_grpc, "--tasks", "2", "--cmd", "echo finished-and-kept"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    state = live.get(live.master_url + "/state")
    [gone] = [f for f in state["completed_frameworks"] if f["name"] == "sleep-framework"]
    assert gone["active"] is False and gone["tasks"] == []
    assert {t["state"] for t in gone["completed_tasks"]} == {"TASK_FINISHED"}
    task_id = gone["completed_tasks"][0]["id"]
    assert live.ok("task", "log", task_id) == "finished-and-kept\n"
    listed = json.loads(live.ok("tasks", "--all", "--json"))
    assert task_id in {task["id"] for task in listed}


def test_the_sdk_reads_and_follows_a_tasks_sandbox_files(live: LiveCluster) -> None:
    """`frameworks.SandboxFiles`: a task's files by its id, without chaining the master's
    and the agent's endpoints by hand."""
    release = live.files / "release-sandbox-reader"
    app_body = {"id": "/sandboxed", "cpus": 0.1, "mem": 32, "instances": 1,
                "portDefinitions": [],
                "cmd": f"echo first; while [ ! -e {release} ]; do sleep 0.05; done; echo second"}
    created = httpx.post(live.marathon_url + "/v2/apps", json=app_body, timeout=10)
    assert created.status_code == 201, created.text
    task_id = wait_for(lambda: next((t["id"] for t in app(live, "/sandboxed").get("tasks", [])
                                     if t["state"] == "TASK_RUNNING"), None), "the task to run")

    async def scenario() -> tuple[bytes, bytes]:
        async with SandboxFiles(live.master_url) as files:
            await_first = b""
            async with asyncio.timeout(60):  # bounded: the task writes it at once
                while b"first\n" not in await_first:
                    await asyncio.sleep(0.05)
                    await_first = await files.read(task_id)
            followed = b""
            async for chunk in files.follow(task_id):
                followed += chunk
                if followed == b"first\n":
                    release.touch()  # the app writes "second" and exits; Marathon restarts it
            with pytest.raises(SandboxNotFound):
                await files.read("no-such-task")
            return await_first, followed

    read, followed = asyncio.run(scenario())
    assert read == b"first\n" and followed == b"first\nsecond\n"
    httpx.delete(live.marathon_url + "/v2/apps/sandboxed", timeout=10)
