"""The web UIs in a real headless browser (Debian's chromium driven by Playwright, never a
downloaded browser) against a real cluster: a master, an agent, Marathon and the batch
framework as processes on loopback.

With UPDATE_SCREENSHOTS=1 the tests also write the pages' screenshots into docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright

from tests.integration.cluster import Cluster, Process, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run"]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
AGENT_HOST = "ui-agent-1"
UI_TIMEOUT_MS = 30_000


@dataclass
class UiCluster:
    """The processes, and API clients for Marathon and the batch framework."""

    cluster: Cluster
    master: Process
    marathon: httpx.Client
    batch: httpx.Client


@dataclass(frozen=True)
class LoggingTask:
    """A Marathon task that prints `hello-ui`, then `tailed-ui` once `release` exists."""

    task_id: str
    release: Path


@pytest.fixture(scope="module")
def ui_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiCluster]:
    cluster = Cluster(tmp_path_factory.mktemp("webui"), FAST_MASTER_FLAGS)
    try:
        # Every process starts at once (their start-ups overlap); each follows the master.
        master = cluster.start_master(wait=False)
        cluster.start_agent("cpus:4;mem:4096;disk:10000;ports:[31000-31099]",
                            hostname=AGENT_HOST, attributes="rack:r1;zone:a")
        marathon_process, marathon_url = cluster.start_marathon(wait=False)
        batch_process, batch_url = cluster.start_batch(wait=False)
        for process in (master, marathon_process, batch_process):
            process.wait_listening()
        with httpx.Client(base_url=marathon_url, timeout=10) as marathon, \
                httpx.Client(base_url=batch_url, timeout=10) as batch:
            wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"],
                     "marathon to register")
            wait_for(lambda: batch.get("/info").json()["frameworkId"], "batch to register")
            yield UiCluster(cluster, master, marathon, batch)
    finally:
        cluster.close()


@pytest.fixture(scope="module")
def logging_task(ui_cluster: UiCluster) -> LoggingTask:
    release = ui_cluster.cluster.work_dir / "release-the-tail"
    created = ui_cluster.marathon.post("/v2/apps", json={
        "id": "/hello-ui", "cpus": 0.1, "mem": 32, "instances": 1,
        "cmd": f"echo hello-ui; echo oops-ui >&2; while [ ! -e {release} ]; do sleep 0.1; done;"
               " echo tailed-ui; sleep 600",
    })
    assert created.status_code == 201, created.text
    task_id = wait_for(lambda: next((t["id"] for t in _app(ui_cluster, "/hello-ui")["tasks"]
                                     if t["state"] == "TASK_RUNNING"), None),
                       "the logging task to run")
    return LoggingTask(task_id, release)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: the test command installs Debian's chromium"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(UI_TIMEOUT_MS)
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"the page raised: {errors}"


def _app(ui_cluster: UiCluster, app_id: str) -> dict[str, Any]:
    answer = ui_cluster.marathon.get(f"/v2/apps{app_id}", params={"embed": "app.tasks"})
    assert answer.status_code == 200, answer.text
    app: dict[str, Any] = answer.json()["app"]
    return app


def _screenshot(page: Page, name: str) -> None:
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_the_master_page_shows_agents_frameworks_and_tasks(
    ui_cluster: UiCluster, logging_task: LoggingTask, page: Page
) -> None:
    page.goto(ui_cluster.master.http_url + "/")
    agents = page.get_by_role("table", name="Agents")
    expect(agents).to_contain_text(AGENT_HOST)
    expect(agents).to_contain_text("rack: r1")
    expect(agents).to_contain_text("zone: a")
    cpus = agents.get_by_role("progressbar", name=f"cpus on {AGENT_HOST}")
    expect(cpus).to_have_attribute("aria-valuemax", "4")
    expect(cpus).to_have_attribute("aria-valuenow", "0.1")  # the logging task's cpus
    expect(agents.get_by_role("progressbar", name=f"mem on {AGENT_HOST}")).to_have_attribute(
        "aria-valuemax", "4096")

    frameworks = page.get_by_role("table", name="Frameworks")
    for name in ("marathon", "batch"):
        expect(frameworks.get_by_role("link", name=name, exact=True)).to_be_visible()
    expect(frameworks.get_by_role("progressbar", name="dominant share of marathon")
           ).to_have_attribute("aria-valuenow", "0.025")  # 0.1 of 4 cpus > 32 of 4096 MiB mem

    task_row = page.get_by_role("table", name="Active tasks").get_by_role("row").filter(
        has_text=logging_task.task_id)
    expect(task_row).to_contain_text("RUNNING")
    expect(task_row).to_contain_text(AGENT_HOST)
    expect(page.get_by_role("banner")).to_contain_text(
        f"Leader master@127.0.0.1:{ui_cluster.master.http_port}")
    _screenshot(page, "master.png")


def test_the_master_page_keeps_a_finished_framework_and_its_tasks(
    ui_cluster: UiCluster, page: Page
) -> None:
    master = ui_cluster.master
    done = subprocess.run(
        [sys.executable, "-m", "frameworks.examples.sleep_framework", "--master",
         f"127.0.0.1:{master.argv[master.argv.index('--port') + 1]}", "--tasks", "1",
         "--cmd", "true", "--name", "finished-ui"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    page.goto(master.http_url + "/#/frameworks")
    expect(page.get_by_role("table", name="Completed frameworks")).to_contain_text("finished-ui")
    page.goto(master.http_url + "/#/tasks")
    completed = page.get_by_role("table", name="Completed tasks")
    expect(completed.get_by_role("row").filter(has_text="finished-ui")).to_contain_text(
        "FINISHED")
    state = httpx.get(master.http_url + "/state", timeout=10).json()
    [gone] = [f for f in state["completed_frameworks"] if f["name"] == "finished-ui"]
    [task] = gone["completed_tasks"]
    page.goto(f"{master.http_url}/#/tasks/{gone['id']}/{task['id']}")
    updates = page.get_by_role("table", name="Status updates")
    for state_name in ("STARTING", "RUNNING", "FINISHED"):  # every state, not the latest only
        expect(updates).to_contain_text(state_name)


def test_the_master_page_sorts_agents_by_host(ui_cluster: UiCluster, page: Page) -> None:
    """Agents are listed by hostname (numbers in names in numeric order), whatever order the
    master's /state has them in (here: one more agent, registered later, sorting first)."""
    def more_agents(route: Route) -> None:
        answer = route.fetch()
        state = answer.json()
        [real] = state["slaves"]
        state["slaves"] = [real, {**real, "id": "S-late", "hostname": "ui-agent-0"},
                           {**real, "id": "S-ten", "hostname": "ui-agent-10"}]
        route.fulfill(response=answer, json=state)

    page.route("**/state", more_agents)
    page.goto(ui_cluster.master.http_url + "/#/agents")
    rows = page.get_by_role("table", name="Agents").get_by_role("row")
    expect(rows).to_have_count(4)  # the header row, then the agents
    hosts = [rows.nth(i).inner_text().split()[0] for i in range(1, 4)]
    assert hosts == ["ui-agent-0", AGENT_HOST, "ui-agent-10"]


def test_a_call_that_never_answers_does_not_leave_the_page_connecting(
    ui_cluster: UiCluster, page: Page
) -> None:
    """A request the browser holds (here: one never answered) fails after the call timeout
    (2 s on this page instead of 15 s); the page says so and keeps polling, and shows live
    data once answers come back."""
    page.add_init_script("globalThis.mesosUiCallTimeoutMs = 2000;")
    held: list[Route] = []
    page.route("**/v2/info", lambda route: held.append(route))
    page.goto(f"{ui_cluster.marathon.base_url}/ui/")
    expect(page.get_by_role("banner")).to_contain_text("no answer within 2 s", timeout=40_000)
    page.unroute("**/v2/info")
    expect(page.get_by_role("banner")).to_contain_text("live", timeout=40_000)


def test_a_tasks_sandbox_shows_its_output_and_follows_it(
    ui_cluster: UiCluster, logging_task: LoggingTask, page: Page
) -> None:
    page.goto(ui_cluster.master.http_url + "/#/tasks")
    page.get_by_role("link", name=logging_task.task_id).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(logging_task.task_id)
    expect(page.get_by_role("table", name="Sandbox files")).to_contain_text("stdout")
    log = page.get_by_role("log")
    expect(log).to_have_accessible_name("stdout")
    expect(log).to_have_text("hello-ui\n")

    page.get_by_role("button", name="stderr", exact=True).click()
    expect(log).to_have_accessible_name("stderr")
    expect(log).to_have_text("oops-ui\n")

    page.get_by_role("button", name="stdout", exact=True).click()
    expect(log).to_have_text("hello-ui\n")
    logging_task.release.touch()
    expect(log).to_have_text("hello-ui\ntailed-ui\n")
    _screenshot(page, "master-task-log.png")


def test_a_tasks_page_shows_its_usage(
    ui_cluster: UiCluster, logging_task: LoggingTask, page: Page
) -> None:
    page.goto(f"{ui_cluster.master.http_url}/#/tasks")
    page.get_by_role("link", name=logging_task.task_id).click()
    usage = page.get_by_role("region", name="Usage")
    memory = usage.get_by_role("progressbar", name="memory used")
    expect(memory).to_have_attribute("aria-valuemax", str(32 * 1024 * 1024))  # its mem: 32
    assert int(memory.get_attribute("aria-valuenow") or 0) > 0
    # CPU use is a rate: it shows from the second measurement on.
    expect(usage.get_by_role("progressbar", name="cpus used")).to_have_attribute(
        "aria-valuemax", "0.1")
    expect(usage).to_contain_text("CPU time")
    _screenshot(page, "master-task-usage.png")


def test_marathon_ui_shows_an_unchecked_instance_as_unknown_not_unhealthy(
    ui_cluster: UiCluster, page: Page
) -> None:
    """Before its first health check has answered, an instance's health is unknown."""
    created = ui_cluster.marathon.post("/v2/apps", json={
        "id": "/slow-check", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 1,
        "healthChecks": [{"protocol": "COMMAND", "command": {"value": "sleep 500"},
                          "timeoutSeconds": 550, "intervalSeconds": 600,
                          "gracePeriodSeconds": 600}]})
    assert created.status_code == 201, created.text
    wait_for(lambda: _app(ui_cluster, "/slow-check")["tasksRunning"] == 1, "the instance to run")
    page.goto(f"{ui_cluster.marathon.base_url}/ui/#/apps/slow-check")
    row = page.get_by_role("table", name="Instances").get_by_role("row").filter(
        has_text="RUNNING")
    expect(row).to_contain_text("unknown")
    expect(row).not_to_contain_text("unhealthy")
    assert ui_cluster.marathon.delete("/v2/apps/slow-check").status_code == 200


def test_marathon_ui_creates_an_app_and_scales_it(ui_cluster: UiCluster, page: Page) -> None:
    page.goto(f"{ui_cluster.marathon.base_url}")
    expect(page).to_have_url(re.compile(r"/ui/$"))
    page.get_by_role("button", name="Create application").click()
    form = page.get_by_role("form", name="New application")
    form.get_by_label("ID", exact=True).fill("/ui-made")
    form.get_by_label("Command", exact=True).fill("sleep 600")
    form.get_by_label("CPUs", exact=True).fill("0.1")
    form.get_by_label("Memory (MiB)", exact=True).fill("16")
    form.get_by_label("Instances", exact=True).fill("1")
    form.get_by_role("button", name="Create").click()

    expect(page).to_have_url(re.compile(r"#/apps/ui-made$"))
    instances = page.get_by_role("table", name="Instances")
    expect(instances.get_by_text("RUNNING", exact=True)).to_have_count(1)
    assert _app(ui_cluster, "/ui-made")["cmd"] == "sleep 600"
    _screenshot(page, "marathon-app.png")

    page.get_by_role("spinbutton", name="Instances").fill("3")
    page.get_by_role("button", name="Scale", exact=True).click()
    expect(instances.get_by_text("RUNNING", exact=True)).to_have_count(3)
    assert _app(ui_cluster, "/ui-made")["instances"] == 3

    page.get_by_role("link", name="Applications").first.click()
    row = page.get_by_role("table", name="Applications").get_by_role("row").filter(
        has_text="/ui-made")
    expect(row.get_by_role("progressbar", name="instances of /ui-made")).to_have_attribute(
        "aria-valuetext", "3 of 3 running")
    expect(row).to_contain_text("Running")
    _screenshot(page, "marathon-apps.png")


def test_batch_ui_lists_a_job_and_runs_it_now(ui_cluster: UiCluster, page: Page) -> None:
    created = ui_cluster.batch.post("/v1/jobs", json={
        "id": "ui-report", "description": "Prints a report",
        "run": {"cmd": "echo report-ui", "cpus": 0.1, "mem": 32},
        "schedules": [{"id": "nightly", "cron": "0 2 * * *"}],
    })
    assert created.status_code == 201, created.text
    page.goto(f"{ui_cluster.batch.base_url}")
    row = page.get_by_role("table", name="Jobs").get_by_role("row").filter(has_text="ui-report")
    expect(row).to_contain_text("0 2 * * *")
    expect(row).to_contain_text("never finished")

    row.get_by_role("button", name="Run ui-report now").click()
    expect(page.get_by_role("status").filter(has_text="Started run")).to_be_visible()
    expect(row).to_contain_text("SUCCESS")
    history = ui_cluster.batch.get("/v1/jobs/ui-report", params={"embed": "history"}).json()
    assert history["history"]["successCount"] == 1
    _screenshot(page, "batch-jobs.png")

    row.get_by_role("link", name="ui-report").click()
    finished = page.get_by_role("table", name="Finished runs")
    expect(finished).to_contain_text(history["history"]["successfulFinishedRuns"][0]["id"])
    expect(page.get_by_role("table", name="Schedules")).to_contain_text("nightly")


def test_the_master_passes_sandbox_reads_to_the_agent(
    ui_cluster: UiCluster, logging_task: LoggingTask
) -> None:
    state = httpx.get(ui_cluster.master.http_url + "/state", timeout=10).json()
    [agent] = state["slaves"]
    proxied = httpx.get(f"{ui_cluster.master.http_url}/ui/agent/{agent['id']}/state", timeout=10)
    assert proxied.status_code == 200 and proxied.json()["id"] == agent["id"]
    statistics = httpx.get(
        f"{ui_cluster.master.http_url}/ui/agent/{agent['id']}/monitor/statistics", timeout=10)
    assert statistics.status_code == 200
    assert logging_task.task_id in {entry["executor_id"] for entry in statistics.json()}
    refused = httpx.get(f"{ui_cluster.master.http_url}/ui/agent/{agent['id']}/flags", timeout=10)
    assert refused.status_code == 404
    unknown = httpx.get(f"{ui_cluster.master.http_url}/ui/agent/no-such-agent/state", timeout=10)
    assert unknown.status_code == 404
