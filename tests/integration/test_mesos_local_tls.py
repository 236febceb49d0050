"""`mesos-local --tls`: the whole embedded cluster over mutual TLS, reached the way its start-up
message says: the `mesos` CLI with the printed exports lists the agent and deploys an app that
runs, a client without the certificate is refused, and the web UIs work in headless Chromium
presenting the user's certificate."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from playwright.sync_api import expect, sync_playwright

from mesos_local.main import prepare_tls
from mesos_security.tls import TlsConfig
from tests.integration.cluster import free_port, wait_for
from tests.integration.test_cli import run_mesos
from tests.integration.test_webui import BROWSER_ARGS, CHROMIUM, UI_TIMEOUT_MS

pytestmark = pytest.mark.integration

_EXPORT = re.compile(r"^\s+export (\w+)=(\S+)$", re.MULTILINE)


@dataclass
class SecureLocal:
    """A running `mesos-local --tls`, its start-up message and the exports it printed."""

    process: subprocess.Popen[bytes]
    work_dir: Path
    output: str
    env: dict[str, str]
    master_http_port: int

    def https(self) -> httpx.Client:
        """An HTTP client presenting the user's certificate."""
        tls = TlsConfig(self.env["LIBPROCESS_SSL_CERT_FILE"],
                        self.env["LIBPROCESS_SSL_KEY_FILE"], self.env["LIBPROCESS_SSL_CA_FILE"])
        return httpx.Client(verify=tls.client_context(), timeout=10)


@pytest.fixture(scope="module")
def secure_local(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureLocal]:
    tmp_path = tmp_path_factory.mktemp("local-tls")
    port, agent_port, http_port, marathon_port = free_port(), free_port(), free_port(), free_port()
    work_dir = tmp_path / "local"
    output = tmp_path / "mesos-local.out"
    with output.open("wb") as sink:
        local = subprocess.Popen(
            [sys.executable, "-m", "mesos_local", "--tls", "--port", str(port), "--agent_port",
             str(agent_port), "--agents", "1", "--work_dir", str(work_dir), "--marathon_port",
             str(marathon_port), "--master_http_port", str(http_port), "--no_batch"],
            stdout=sink, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "Press Ctrl-C" in output.read_text() or local.poll() is not None,
                 "mesos-local --tls to start")
        text = output.read_text()
        assert local.poll() is None, text
        yield SecureLocal(local, work_dir, text, dict(_EXPORT.findall(text)), http_port)
        local.send_signal(signal.SIGINT)
        assert local.wait(30) == 0, output.read_text()
    finally:
        if local.poll() is None:
            local.terminate()
            try:
                local.wait(30)
            except subprocess.TimeoutExpired:
                local.kill()
                local.wait()


def test_the_start_up_message_says_how_to_reach_the_cluster(secure_local: SecureLocal) -> None:
    tls = secure_local.work_dir / "tls"
    assert secure_local.env == {
        "LIBPROCESS_SSL_ENABLED": "true",
        "LIBPROCESS_SSL_CERT_FILE": str(tls / "cli.pem"),
        "LIBPROCESS_SSL_KEY_FILE": str(tls / "cli-key.pem"),
        "LIBPROCESS_SSL_CA_FILE": str(tls / "ca.pem"),
        "MESOS_MASTER": secure_local.env["MESOS_MASTER"],
        "MARATHON_URL": secure_local.env["MARATHON_URL"],
    }
    assert secure_local.env["MARATHON_URL"].startswith("https://127.0.0.1:")
    assert f"master    https://127.0.0.1:{secure_local.master_http_port}" in secure_local.output
    assert f"import {tls / 'cli.p12'}" in secure_local.output
    assert (tls / "cli.p12").stat().st_mode & 0o777 == 0o600
    assert (tls / "cli.p12.password").stat().st_mode & 0o777 == 0o600


def test_the_cli_with_the_printed_exports_deploys_an_app(
    secure_local: SecureLocal, tmp_path: Path,
) -> None:
    listed = run_mesos("--json", "agents", env=secure_local.env)
    assert listed.returncode == 0, listed.stderr
    assert [agent["hostname"] for agent in json.loads(listed.stdout)] == ["127.0.0.1"]

    definition = tmp_path / "app.json"
    definition.write_text(json.dumps({"id": "/secure-sleeper", "cmd": "sleep 600",
                                      "cpus": 0.1, "mem": 16, "instances": 1}))
    deployed = run_mesos("app", "deploy", str(definition), "--wait", env=secure_local.env)
    assert deployed.returncode == 0, deployed.stderr
    assert "finished: /secure-sleeper has 1/1 instances running" in deployed.stdout
    tasks = json.loads(run_mesos("--json", "tasks", env=secure_local.env).stdout)
    assert [(task["name"], task["state"]) for task in tasks] == [
        ("secure-sleeper", "TASK_RUNNING")]


def test_a_framework_with_the_printed_exports_runs_tasks(secure_local: SecureLocal) -> None:
    """The SDK reads the same variables: the scheduler dials TLS with the user's certificate,
    whose common name is its principal (the master requires frameworks to authenticate)."""
    result = subprocess.run(
        [sys.executable, "-m", "frameworks.examples.sleep_framework", "--master",
         secure_local.env["MESOS_MASTER"], "--tasks", "2", "--cmd", "true"],
        capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **secure_local.env})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done: 2 finished, 0 failed" in result.stdout


def test_a_client_without_the_certificate_is_refused(secure_local: SecureLocal) -> None:
    plain = {"MESOS_MASTER": secure_local.env["MESOS_MASTER"]}
    refused = run_mesos("agents", env=plain)
    assert refused.returncode == 3, refused.stdout  # cannot connect without TLS
    certificate_less = {**secure_local.env}
    del certificate_less["LIBPROCESS_SSL_CERT_FILE"], certificate_less["LIBPROCESS_SSL_KEY_FILE"]
    assert run_mesos("agents", env=certificate_less).returncode == 3
    with secure_local.https() as https:
        url = f"https://127.0.0.1:{secure_local.master_http_port}/state"
        state = https.get(url).json()
    # Frameworks and agents are authenticated by their certificates.
    assert "marathon" in [framework["principal"] for framework in state["frameworks"]]
    assert state["flags"]["authenticate_frameworks"] == "true"
    assert state["flags"]["authenticate_agents"] == "true"
    anonymous = TlsConfig(ca_file=secure_local.env["LIBPROCESS_SSL_CA_FILE"]).client_context()
    for service in (f"https://127.0.0.1:{secure_local.master_http_port}/state",
                    f"{secure_local.env['MARATHON_URL']}/v2/apps"):
        with pytest.raises(httpx.HTTPError):
            httpx.get(service, verify=anonymous, timeout=10)


def test_the_web_uis_in_chromium_with_the_users_certificate(secure_local: SecureLocal) -> None:
    """Chromium cannot be told to trust a CA without an NSS database, so the page ignores
    certificate errors of the server; it presents the user's certificate through Playwright,
    without which the servers refuse the connection."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: the test command installs Debian's chromium"
    with secure_local.https() as https:
        created = https.post(f"{secure_local.env['MARATHON_URL']}/v2/apps", json={
            "id": "/ui-listed", "cmd": "sleep 600", "cpus": 0.1, "mem": 16, "instances": 1})
        assert created.status_code == 201, created.text
    master_url = f"https://127.0.0.1:{secure_local.master_http_port}"
    marathon_url = secure_local.env["MARATHON_URL"]
    certificate = [{"origin": origin, "certPath": secure_local.env["LIBPROCESS_SSL_CERT_FILE"],
                    "keyPath": secure_local.env["LIBPROCESS_SSL_KEY_FILE"]}
                   for origin in (master_url, marathon_url)]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=BROWSER_ARGS)
        try:
            stranger = browser.new_context(ignore_https_errors=True)
            with pytest.raises(Exception, match="ERR_"):
                stranger.new_page().goto(master_url + "/", timeout=UI_TIMEOUT_MS)
            stranger.close()

            context = browser.new_context(ignore_https_errors=True,
                                          client_certificates=certificate)  # type: ignore[arg-type]
            page = context.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            page.goto(master_url + "/")
            expect(page.get_by_role("table", name="Agents")).to_contain_text("127.0.0.1")
            frameworks = page.get_by_role("table", name="Frameworks")
            expect(frameworks.get_by_role("link", name="marathon", exact=True)).to_be_visible()

            page.goto(marathon_url + "/ui/")
            row = page.get_by_role("table", name="Applications").get_by_role("row").filter(
                has_text="/ui-listed")
            expect(row).to_be_visible()
            context.close()
        finally:
            browser.close()


def test_the_ca_and_the_users_certificate_are_reused_with_the_work_dir(tmp_path: Path) -> None:
    """A browser or a shell set up for one run keeps working on the next with the same work
    dir; the browser bundle opens with its password and holds the user's certificate."""
    first = prepare_tls(tmp_path / "tls", ["127.0.0.1"])
    ca, cli = first.authority.cert_file.read_bytes(), first.client.cert_file.read_bytes()
    again = prepare_tls(tmp_path / "tls", ["127.0.0.1"])
    assert again.authority.cert_file.read_bytes() == ca
    assert again.client.cert_file.read_bytes() == cli
    password = again.password_file.read_text().strip().encode()
    bundle = pkcs12.load_pkcs12(again.browser_bundle.read_bytes(), password)
    assert bundle.cert is not None
    assert bundle.cert.certificate.public_bytes(serialization.Encoding.PEM) == cli
    assert [c.certificate.subject for c in bundle.additional_certs] == [
        again.authority.certificate.subject]
    with pytest.raises(ValueError):
        pkcs12.load_pkcs12(again.browser_bundle.read_bytes(), b"wrong")
