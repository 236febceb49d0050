"""Deploys without dropped requests: a rolling restart of a 3-instance HTTP app behind
`marathon-lb` (real HAProxy), with a client loop through the service port the whole time.

New instances take traffic only once healthy (marathon-lb -H); an old instance is announced
TASK_KILLING and leaves HAProxy before its SIGTERM (Marathon's --sigterm_delay), so no request
through the load balancer fails, and mesos-dns drops it at the same moment."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.integration.cluster import Cluster, Process, free_port, port_answers, wait_for
from tests.integration.test_marathon_lb import answer, healthy_tasks, running_lb, web_app

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("haproxy") is None or shutil.which("dig") is None,
                       reason="needs Debian's haproxy and dig"),
]

PLAIN_SERVER = '''\
import http.server, os

TASK = os.environ["MESOS_TASK_ID"]

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = TASK.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT0"])), Handler).serve_forever()
'''
"""An app that does nothing special on SIGTERM (it dies at once, requests in flight cut)."""
SIGTERM_DELAY = "3secs"
"""Longer than marathon-lb needs to drop a killed instance on a busy 2-core machine."""


class ClientLoop(threading.Thread):
    """GETs through the load balancer, one new connection each, until stopped; counts who
    answered and how many requests failed."""

    def __init__(self, port: int) -> None:
        super().__init__(name="client-loop", daemon=True)
        self.port = port
        self.answers: Counter[str] = Counter()
        self.failures = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            body = answer(self.port)
            if body is None:
                self.failures += 1
            else:
                self.answers[body] += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)


def test_a_rolling_restart_drops_no_request_and_dns_follows(
        cluster: Cluster, tmp_path: Path) -> None:
    script = tmp_path / "app_server.py"
    script.write_text(PLAIN_SERVER)
    cluster.start_agent("cpus:8;mem:8192;disk:1000;ports:[31000-31999]", hostname="127.0.0.1")
    _, marathon_url = cluster.start_marathon("--sigterm_delay", SIGTERM_DELAY)
    dns_port, dns_http = free_port(), free_port()
    master = cluster.masters[0]
    dns = Process("mesos-dns", [
        sys.executable, "-m", "mesos_dns", "--master", f"127.0.0.1:{master.http_port}",
        "--listener", "127.0.0.1", "--port", str(dns_port), "--http_port", str(dns_http),
        "--ttl", "1"], cluster.work_dir / "mesos-dns.log").start()
    cluster.processes.append(dns)
    wait_for(lambda: port_answers(dns_http), "mesos-dns to listen")

    def srv_ports() -> set[int]:
        done = subprocess.run(["dig", "@127.0.0.1", "-p", str(dns_port), "+short",
                               "_web-shop._tcp.marathon.mesos", "SRV"],
                              capture_output=True, text=True, timeout=30)
        return {int(line.split()[2]) for line in done.stdout.splitlines()}

    with httpx.Client(base_url=marathon_url, timeout=10) as marathon:
        wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon to register")
        service_port = free_port()
        created = marathon.post("/v2/apps", json=web_app(script, service_port, 3))
        assert created.status_code == 201, created.text
        before = wait_for(lambda: len(h := healthy_tasks(marathon, "/shop/web")) == 3 and h,
                          "three healthy instances")
        with running_lb(cluster, str(marathon.base_url)):
            wait_for(lambda: {answer(service_port) for _ in range(30)} == before,
                     "every instance to answer through the service port")
            loop = ClientLoop(service_port)
            loop.start()
            try:
                restarted = marathon.post("/v2/apps/shop/web/restart")
                assert restarted.status_code == 200, restarted.text
                deployment = restarted.json()["deploymentId"]
                after = wait_for(
                    lambda: not any(d["id"] == deployment
                                    for d in marathon.get("/v2/deployments").json())
                    and len(h := healthy_tasks(marathon, "/shop/web")) == 3 and h,
                    "the rolling restart to finish", timeout=180)
                assert not after & before, "every instance was replaced"
                wait_for(lambda: set(loop.answers) & after == after,
                         "every new instance to take traffic")
            finally:
                loop.stop()
        assert loop.failures == 0, f"{loop.failures} failed requests, answers {loop.answers}"
        assert set(loop.answers) == before | after, loop.answers
        # mesos-dns named the new instances' ports, and the old ones are gone from it.
        tasks = marathon.get("/v2/apps/shop/web/tasks").json()["tasks"]
        wait_for(lambda: srv_ports() == {t["ports"][0] for t in tasks}, "DNS to follow")
