"""A whole cluster over mutual TLS (ADR 0013): the master, an agent, a scheduler through the
SDK and a custom executor through the agent, each presenting a certificate of the cluster's
CA; plain and certificate-less clients are refused, HTTP endpoints are HTTPS only."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import grpc.aio
import httpx
import pytest

from mesos_security.pki import CertificateAuthority, IssuedCertificate
from mesos_security.tls import TlsConfig, open_channel
from protos import scheduler_pb2, scheduler_pb2_grpc
from tests.integration.cluster import Cluster, free_port, running_cluster, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.integration.recording import RecordingScheduler
from tests.integration.test_cli import run_mesos
from tests.integration.test_end_to_end import launch_once, run_example, running

pytestmark = pytest.mark.integration


def tls_flags(ca: CertificateAuthority, issued: IssuedCertificate) -> list[str]:
    return ["--ssl_cert_file", str(issued.cert_file), "--ssl_key_file", str(issued.key_file),
            "--ssl_ca_file", str(ca.cert_file), "--ssl_require_client_cert", "true"]


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.create(tmp_path / "pki")


@pytest.fixture
def tls_cluster(tmp_path: Path, ca: CertificateAuthority) -> Iterator[Cluster]:
    flags = [*FAST_MASTER_FLAGS, *tls_flags(ca, ca.issue("master"))]
    with running_cluster(tmp_path, flags) as cluster:
        cluster.agent_flags = tls_flags(ca, ca.issue("agent"))
        yield cluster


def client(ca: CertificateAuthority, name: str) -> TlsConfig:
    issued = ca.issue(name)
    return TlsConfig(str(issued.cert_file), str(issued.key_file), str(ca.cert_file))


async def _info(target: str, tls: TlsConfig | None) -> str:
    async with (open_channel(target, tls) if tls else grpc.aio.insecure_channel(target)
                ) as channel:
        stub = scheduler_pb2_grpc.SchedulerStub(channel)  # type: ignore[no-untyped-call]
        try:
            answer = await stub.Info(scheduler_pb2.InfoRequest(), timeout=5)
        except grpc.aio.AioRpcError as error:
            return f"refused: {error.code().name}"
        return f"leader {answer.leader.port}" if answer.HasField("leader") else "no leader"


def test_everything_speaks_mutual_tls(tls_cluster: Cluster, ca: CertificateAuthority) -> None:
    master_target = tls_cluster.master_address
    port = tls_cluster.master_port
    assert asyncio.run(_info(master_target, client(ca, "operator"))) == f"leader {port}"
    assert asyncio.run(_info(master_target, None)) == "refused: UNAVAILABLE"
    anonymous = TlsConfig(ca_file=str(ca.cert_file))
    assert asyncio.run(_info(master_target, anonymous)) == "refused: UNAVAILABLE"
    stranger = CertificateAuthority.create(ca.directory / "stranger").issue("mallory")
    forged = TlsConfig(str(stranger.cert_file), str(stranger.key_file), str(ca.cert_file))
    assert asyncio.run(_info(master_target, forged)) == "refused: UNAVAILABLE"

    agent = tls_cluster.start_agent(http_port=free_port())
    scheduler = RecordingScheduler(on_offers=launch_once(("hello", "echo over tls; sleep 300")))
    cli = ca.issue("cli")
    tls_env = {"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CERT_FILE": str(cli.cert_file),
               "LIBPROCESS_SSL_KEY_FILE": str(cli.key_file),
               "LIBPROCESS_SSL_CA_FILE": str(ca.cert_file)}
    with running(tls_cluster, scheduler, "secure", tls=client(ca, "tester")):
        scheduler.wait_for_state("hello", "TASK_RUNNING")
        listed = run_mesos("--master", master_target, "--json", "agents", env=tls_env)
        assert listed.returncode == 0, listed.stderr
        assert [a["hostname"] for a in json.loads(listed.stdout)] == ["host1"]
        wait_for(lambda: "over tls" in run_mesos("--master", master_target, "task", "log",
                                                  "hello", env=tls_env).stdout,
                 "the CLI to read the task's stdout over TLS")
        plain = run_mesos("--master", master_target, "agents", env={})
        assert plain.returncode == 3, plain.stdout  # cannot connect without TLS

    operator = client(ca, "operator").client_context()
    master = tls_cluster.masters[0]
    with httpx.Client(verify=operator, timeout=10) as https:
        state = https.get(f"https://127.0.0.1:{master.http_port}/state").json()
        [registered] = state["slaves"]
        agent_state = https.get(f"https://127.0.0.1:{agent.http_port}/state")
        assert agent_state.status_code == 200
        # The master's UI reaches the agent over TLS with its own certificate.
        proxied = https.get(f"https://127.0.0.1:{master.http_port}/ui/agent/"
                            f"{registered['id']}/state")
        assert proxied.status_code == 200 and proxied.json()["id"] == registered["id"]
    with httpx.Client(verify=TlsConfig(ca_file=str(ca.cert_file)).client_context(),
                      timeout=10) as certificate_less, pytest.raises(httpx.HTTPError):
        certificate_less.get(f"https://127.0.0.1:{master.http_port}/state")
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{master.http_port}/state", timeout=10)


def test_a_custom_executor_reaches_its_agent_over_tls(
    tls_cluster: Cluster, ca: CertificateAuthority,
) -> None:
    tls_cluster.start_agent()
    scheduler = ca.issue("examples")
    result = run_example("frameworks.examples.custom_executor_framework", tls_cluster,
                         "--tasks", "2", "--sleep", "0.1", env={
                             "LIBPROCESS_SSL_ENABLED": "true",
                             "LIBPROCESS_SSL_CERT_FILE": str(scheduler.cert_file),
                             "LIBPROCESS_SSL_KEY_FILE": str(scheduler.key_file),
                             "LIBPROCESS_SSL_CA_FILE": str(ca.cert_file)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("TASK_FINISHED") == 2, result.stdout


def test_marathon_and_batch_over_tls_authenticated_to_the_master(
    tmp_path: Path, ca: CertificateAuthority,
) -> None:
    """Marathon and the batch framework dial the mutual-TLS master with their certificates,
    authenticate with a principal and secret, and serve HTTPS behind HTTP Basic."""
    (tmp_path / "credentials").write_text("marathon m-secret\nbatch b-secret\n")
    (tmp_path / "marathon-secret").write_text("m-secret\n")
    (tmp_path / "batch-secret").write_text("b-secret\n")
    flags = [*FAST_MASTER_FLAGS, *tls_flags(ca, ca.issue("master")),
             "--authenticate_frameworks", "true", "--credentials",
             str(tmp_path / "credentials")]
    with running_cluster(tmp_path, flags) as cluster:
        cluster.agent_flags = tls_flags(ca, ca.issue("agent"))
        cluster.start_agent()
        operator = client(ca, "operator").client_context()
        services = {
            "marathon": cluster.start_marathon(
                *tls_flags(ca, ca.issue("marathon")), "--mesos_authentication_principal",
                "marathon", "--mesos_authentication_secret_file",
                str(tmp_path / "marathon-secret"), "--http_credentials", "admin:pw"),
            "batch": cluster.start_batch(
                *tls_flags(ca, ca.issue("batch")), "--mesos_authentication_principal",
                "batch", "--mesos_authentication_secret_file", str(tmp_path / "batch-secret"),
                "--http_credentials", "admin:pw"),
        }
        urls = {name: url.replace("http://", "https://") for name, (_, url) in services.items()}
        with httpx.Client(verify=operator, timeout=10) as https:
            info = {"marathon": "/v2/info", "batch": "/info"}
            for name, url in urls.items():
                # The operator's certificate authenticates it; a wrong password does not.
                assert https.get(f"{url}{info[name]}", auth=("admin", "guess")
                                 ).status_code == 401
                assert https.get(f"{url}/ping").status_code == 200
                wait_for(lambda u=url, p=info[name]: https.get(  # type: ignore[misc]
                    f"{u}{p}", auth=("admin", "pw")).json()["frameworkId"],
                    f"{name} to register")
            app = {"id": "/secure", "cmd": "sleep 300", "cpus": 0.1, "mem": 32}
            assert https.post(f"{urls['marathon']}/v2/apps", json=app,
                              auth=("admin", "pw")).status_code == 201
            wait_for(lambda: https.get(f"{urls['marathon']}/v2/apps/secure",
                                       auth=("admin", "pw")).json()["app"]["tasksRunning"] == 1,
                     "the app to run")
            master = cluster.masters[0]
            state = https.get(f"https://127.0.0.1:{master.http_port}/state").json()
            assert sorted(f["principal"] for f in state["frameworks"]) == ["batch", "marathon"]
