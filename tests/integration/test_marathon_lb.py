"""marathon-lb as users run it: a real `marathon-lb` process running Debian's real `haproxy`,
fed by a real Marathon on a real master and agent, with traffic sent through HAProxy.

The app is a small HTTP server on `$PORT0` that answers its task id; its health endpoint fails
while a file named `unhealthy` is in its sandbox."""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import unique_zk_path
from tests.integration.cluster import Cluster, Process, free_port, port_answers, wait_for
from tests.zookeeper import ZooKeeperEnsemble

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("haproxy") is None, reason="needs Debian's haproxy"),
]

APP_SERVER = '''\
import http.server, os, pathlib, signal, threading

TASK = os.environ["MESOS_TASK_ID"]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 2  # an idle kept-alive connection ends, so that a graceful stop does not wait

    def do_GET(self):
        if self.path == "/health" and pathlib.Path("unhealthy").exists():
            status, body = 503, b"unhealthy"
        else:
            status, body = 200, TASK.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Task-Id", TASK)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the requests in flight

server = Server(("127.0.0.1", int(os.environ["PORT0"])), Handler)
# SIGTERM stops it gracefully, as a real service stops: no new connections, the requests in
# flight answered.
signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
server.serve_forever()
server.server_close()
'''

CHECK = {"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 30,
         "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 0}
"""Marathon's HTTP check of the app; 0 failures allowed means an unhealthy instance is never
killed, so that it stays running while it must get no traffic."""


@pytest.fixture
def app_script(tmp_path: Path) -> Path:
    script = tmp_path / "app_server.py"
    script.write_text(APP_SERVER)
    return script


@pytest.fixture
def marathon(cluster: Cluster) -> Iterator[httpx.Client]:
    """A Marathon on a master with one agent (named 127.0.0.1, so its tasks resolve)."""
    cluster.start_agent("cpus:8;mem:8192;disk:1000;ports:[31000-31999]", hostname="127.0.0.1")
    _, url = cluster.start_marathon()
    with httpx.Client(base_url=url, timeout=10) as client:
        wait_for(lambda: client.get("/v2/info").json()["frameworkId"], "marathon to register")
        yield client


@contextlib.contextmanager
def running_lb(cluster: Cluster, *urls_then_flags: str, sse: bool = True
               ) -> Iterator[dict[str, Any]]:
    """A `marathon-lb -H` (with `--sse` unless told) on free ports, for the Marathon URLs
    before the first flag; yields its ports, config path and process."""
    split = next((i for i, a in enumerate(urls_then_flags) if a.startswith("--")),
                 len(urls_then_flags))
    urls, flags = urls_then_flags[:split], urls_then_flags[split:]
    work = cluster.work_dir / f"lb-{free_port()}"  # made by marathon-lb
    ports = {"http": free_port(), "stats": free_port(), "config": work / "haproxy.cfg"}
    process = Process(
        "marathon-lb",
        [sys.executable, "-m", "marathon_lb", "--marathon", *urls, "--group", "external",
         *(["--sse"] if sse else []), "--health-check", "--haproxy-config", str(ports["config"]),
         "--http-port", str(ports["http"]), "--stats-port", str(ports["stats"]),
         "--syslog-socket", "/dev/null", "--log-level", "DEBUG", *flags],
        cluster.work_dir / f"{work.name}.log",
    ).start()
    cluster.processes.append(process)
    ports["process"] = process
    wait_for(lambda: port_answers(ports["stats"]) or not process.alive(), "haproxy's stats")
    assert process.alive(), process.log()
    try:
        yield ports
    finally:
        process.stop()


def web_app(app_script: Path, service_port: int, instances: int, **extra: Any) -> dict[str, Any]:
    return {"id": "/shop/web", "cmd": f"{sys.executable} {app_script}", "cpus": 0.1,
            "mem": 32, "instances": instances, "healthChecks": [CHECK],
            "portDefinitions": [{"port": service_port, "name": "http"}],
            "labels": {"HAPROXY_GROUP": "external"}, **extra}


def tasks(client: httpx.Client, app_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/v2/apps{app_id}", params={"embed": "app.tasks"})
    return list(answer.json()["app"]["tasks"]) if answer.status_code == 200 else []


def healthy_tasks(client: httpx.Client, app_id: str) -> set[str]:
    return {t["id"] for t in tasks(client, app_id)
            if t["state"] == "TASK_RUNNING" and t.get("healthCheckResults")
            and all(r["alive"] for r in t["healthCheckResults"])}


def answer(port: int, host: str | None = None, path: str = "/") -> str | None:
    """The body of one GET through HAProxy (a new connection each time), None on failure."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": host} if host else {})
        response = connection.getresponse()
        body = response.read().decode()
        return body if response.status == 200 else None
    except (OSError, http.client.HTTPException):
        return None
    finally:
        connection.close()


def seen_through(port: int, count: int = 40, host: str | None = None) -> set[str | None]:
    """Who answered `count` requests through `port` (None for a failed request)."""
    return {answer(port, host) for _ in range(count)}


def sandbox_of(cluster: Cluster, task_id: str) -> Path:
    found = list(cluster.work_dir.glob(f"agent-*/slaves/*/frameworks/*/executors/{task_id}/runs/*"))
    assert found, f"no sandbox for {task_id}"
    return found[0]


def test_traffic_reaches_every_healthy_instance_and_follows_health_and_scale(
    cluster: Cluster, marathon: httpx.Client, app_script: Path,
) -> None:
    service_port = free_port()
    created = marathon.post("/v2/apps", json=web_app(app_script, service_port, 3))
    assert created.status_code == 201, created.text
    with running_lb(cluster, str(marathon.base_url)) as lb:
        healthy = wait_for(lambda: len(h := healthy_tasks(marathon, "/shop/web")) == 3 and h,
                           "three healthy instances")
        wait_for(lambda: seen_through(service_port) == healthy,
                 "every healthy instance to answer through the service port")

        # One instance turns unhealthy: it leaves the backends, and gets no request after.
        sick = sorted(healthy)[0]
        (sandbox_of(cluster, sick) / "unhealthy").write_text("")
        wait_for(lambda: sick not in healthy_tasks(marathon, "/shop/web"), "marathon to see it")
        wait_for(lambda: sick not in seen_through(service_port), "the sick one to leave")
        assert seen_through(service_port, 60) == healthy - {sick}
        assert sick in {t["id"] for t in tasks(marathon, "/shop/web")}  # still running

        # Healthy again: back in.
        (sandbox_of(cluster, sick) / "unhealthy").unlink()
        wait_for(lambda: seen_through(service_port) == healthy, "the healed one to return")

        # Scale up: the new instances join once healthy; scale down: the killed ones leave.
        assert marathon.put("/v2/apps/shop/web", json={"instances": 5}).status_code == 200
        five = wait_for(lambda: len(h := healthy_tasks(marathon, "/shop/web")) == 5 and h,
                        "five healthy instances")
        wait_for(lambda: seen_through(service_port, 60) == five, "all five to answer")
        assert marathon.put("/v2/apps/shop/web", json={"instances": 2}).status_code == 200
        two = wait_for(lambda: len(h := {t["id"] for t in tasks(marathon, "/shop/web")}) == 2
                       and h, "two instances")
        wait_for(lambda: seen_through(service_port) == two, "only the two to answer")

        # The stats port answers marathon-lb's endpoints.
        stats = f"http://127.0.0.1:{lb['stats']}"
        assert httpx.get(f"{stats}/_haproxy_health_check").status_code == 200
        assert "shop_web_" in httpx.get(f"{stats}/haproxy?stats").text
        config = httpx.get(f"{stats}/_haproxy_getconfig").text
        assert f"bind *:{service_port}" in config and "option redispatch" in config


def test_vhosts_route_on_the_shared_http_port(
    cluster: Cluster, marathon: httpx.Client, app_script: Path,
) -> None:
    web = web_app(app_script, free_port(), 1, labels={
        "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.example.com,www.example.com"})
    api = {**web_app(app_script, free_port(), 1), "id": "/shop/api", "labels": {
        "HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.example.com",
        "HAPROXY_0_PATH": "/api"}}
    internal = {**web_app(app_script, free_port(), 1), "id": "/internal",
                "labels": {"HAPROXY_GROUP": "internal", "HAPROXY_0_VHOST": "internal.example"}}
    for app in (web, api, internal):
        assert marathon.post("/v2/apps", json=app).status_code == 201
    with running_lb(cluster, str(marathon.base_url)) as lb:
        web_task = wait_for(lambda: healthy_tasks(marathon, "/shop/web"), "web healthy")
        api_task = wait_for(lambda: healthy_tasks(marathon, "/shop/api"), "api healthy")
        wait_for(lambda: healthy_tasks(marathon, "/internal"), "internal healthy")
        port = lb["http"]
        wait_for(lambda: answer(port, "web.example.com") in web_task
                 and answer(port, "web.example.com", "/api/x") in api_task, "vhost routes")
        assert answer(port, "WWW.example.com:80") in web_task
        assert answer(port, "web.example.com", "/other") in web_task
        assert answer(port, "internal.example") is None  # another group's app is not here
        assert answer(port, "nowhere.example") is None
        vhost_map = httpx.get(f"http://127.0.0.1:{lb['stats']}/_haproxy_getvhostmap").text
        assert "web.example.com /api shop_api_" in vhost_map

        # Another group's app changing makes passes, but no reload: nothing of ours changed.
        process: Process = lb["process"]
        log = process.log()
        reloads, passes = log.count("haproxy reloaded"), log.count("configuration pass")
        assert marathon.put("/v2/apps/internal", json={"instances": 2}).status_code == 200
        wait_for(lambda: len(healthy_tasks(marathon, "/internal")) == 2, "internal scaled")
        wait_for(lambda: process.log().count("configuration pass") > passes, "a pass")
        assert process.log().count("haproxy reloaded") == reloads


def test_a_bad_label_leaves_haproxy_serving_and_other_apps_updating(
    cluster: Cluster, marathon: httpx.Client, app_script: Path,
) -> None:
    service_port = free_port()
    assert marathon.post("/v2/apps", json=web_app(app_script, service_port, 1)).status_code == 201
    with running_lb(cluster, str(marathon.base_url)) as lb:
        first = wait_for(lambda: healthy_tasks(marathon, "/shop/web"), "one healthy instance")
        wait_for(lambda: seen_through(service_port, 5) == first, "traffic")
        bad_port = free_port()
        bad = {**web_app(app_script, bad_port, 1), "id": "/bad", "labels": {
            "HAPROXY_GROUP": "external", "HAPROXY_0_BALANCE": "no-such-algorithm"}}
        assert marathon.post("/v2/apps", json=bad).status_code == 201
        wait_for(lambda: healthy_tasks(marathon, "/bad"), "the bad app healthy")
        lb["process"].wait_for_log("configuration is invalid")
        lb["process"].wait_for_log("leaving out apps")
        assert seen_through(service_port, 10) == first  # HAProxy kept serving
        assert not port_answers(bad_port)
        # The good app still follows Marathon.
        assert marathon.put("/v2/apps/shop/web", json={"instances": 2}).status_code == 200
        both = wait_for(lambda: len(h := healthy_tasks(marathon, "/shop/web")) == 2 and h,
                        "two healthy instances")
        wait_for(lambda: seen_through(service_port) == both, "both to answer")


def test_a_reload_keeps_a_held_connection(
    cluster: Cluster, marathon: httpx.Client, app_script: Path,
) -> None:
    # TCP mode, no health checks: HAProxy relays the held connection's bytes, and the old
    # worker keeps it after the reload until the client closes it.
    service_port = free_port()
    app = {**web_app(app_script, service_port, 1), "healthChecks": [],
           "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "tcp"}}
    assert marathon.post("/v2/apps", json=app).status_code == 201
    with running_lb(cluster, str(marathon.base_url)) as lb:
        wait_for(lambda: answer(service_port), "traffic")
        held = http.client.HTTPConnection("127.0.0.1", service_port, timeout=10)
        held.request("GET", "/")
        first = held.getresponse()
        first.read()
        assert first.status == 200

        # Another app (a new frontend) changes more than servers: HAProxy reloads.
        process: Process = lb["process"]
        reloads = process.log().count("haproxy reloaded")
        other = {**app, "id": "/other", "portDefinitions": [{"port": free_port()}]}
        assert marathon.post("/v2/apps", json=other).status_code == 201
        wait_for(lambda: process.log().count("haproxy reloaded") > reloads, "a reload")

        held.request("GET", "/")  # the same connection, served by the old worker
        second = held.getresponse()
        assert second.status == 200 and second.read()
        held.close()


def test_stopping_marathon_lb_stops_haproxy(
    cluster: Cluster, marathon: httpx.Client,
) -> None:
    with running_lb(cluster, str(marathon.base_url)) as lb:
        config: Path = lb["config"]
        master = int(config.with_suffix(".pid").read_text().split()[0])
        lb["process"].stop()
        assert lb["process"].popen is not None and lb["process"].popen.returncode == 0
        wait_for(lambda: not _alive(master), "haproxy's master to exit")
        assert not port_answers(lb["stats"])


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except OSError:
        return False


def test_marathon_failover_keeps_the_backends_and_the_new_leader_is_followed(
    tmp_path: Path, app_script: Path, shared_zookeeper: ZooKeeperEnsemble,
) -> None:
    from tests.integration.conftest import FAST_MASTER_FLAGS

    zk_url = shared_zookeeper.url(unique_zk_path("/marathon"))
    cluster = Cluster(tmp_path, FAST_MASTER_FLAGS)
    clients: list[httpx.Client] = []
    try:
        cluster.start_master()
        cluster.start_agent("cpus:8;mem:8192;disk:1000;ports:[31000-31999]",
                            hostname="127.0.0.1")
        marathons = []
        for name in ("marathon-a", "marathon-b"):
            process, url = cluster.start_marathon(
                "--zk", zk_url, "--zk_session_timeout", "2secs", name=name)
            clients.append(httpx.Client(base_url=url, timeout=10))
            marathons.append((process, clients[-1]))

        def leader() -> tuple[Process, httpx.Client]:
            def elected() -> list[tuple[Process, httpx.Client]]:
                return [(p, c) for p, c in marathons if p.alive()
                        and (info := c.get("/v2/info").json())["elected"]
                        and info["frameworkId"]]
            [found] = wait_for(lambda: len(e := elected()) == 1 and e, "one leader")
            return found

        first, client = leader()
        service_port = free_port()
        assert client.post("/v2/apps", json=web_app(app_script, service_port, 2)
                           ).status_code == 201
        urls = [str(c.base_url) for c in clients]
        with running_lb(cluster, urls[0], *urls[1:]) as lb:
            two = wait_for(lambda: len(h := healthy_tasks(client, "/shop/web")) == 2 and h,
                           "two healthy instances")
            wait_for(lambda: seen_through(service_port) == two, "both to answer")

            first.kill9()
            _, client = leader()
            # While the new leader has no health results yet, the backends stay.
            assert seen_through(service_port) == two
            lb["process"].wait_for_log(
                f"{client.base_url.port}.*following Marathon's events", timeout=60)
            assert client.put("/v2/apps/shop/web", json={"instances": 3}).status_code in (
                200, 201)
            # The new leader health-checks the instances it recovered.
            wait_for(lambda: healthy_tasks(client, "/shop/web") >= two,
                     "the new leader's health results of the recovered instances")
            # The new instance joins once the new leader has seen it healthy.
            new = wait_for(lambda: healthy_tasks(client, "/shop/web") - two,
                           "the new instance healthy", timeout=60)
            wait_for(lambda: seen_through(service_port, 60) == two | new, "all three")
    finally:
        for c in clients:
            c.close()
        cluster.close()


def test_polling_with_basic_auth_follows_marathon(
    cluster: Cluster, app_script: Path,
) -> None:
    cluster.start_agent("cpus:8;mem:8192;disk:1000;ports:[31000-31999]", hostname="127.0.0.1")
    _, url = cluster.start_marathon("--http_credentials", "lb:secret")
    with httpx.Client(base_url=url, timeout=10, auth=("lb", "secret")) as marathon:
        assert httpx.get(f"{url}/v2/apps").status_code == 401
        wait_for(lambda: marathon.get("/v2/info").json()["frameworkId"], "marathon")
        service_port = free_port()
        app = {**web_app(app_script, service_port, 1), "healthChecks": []}
        assert marathon.post("/v2/apps", json=app).status_code == 201
        credentials = cluster.work_dir / "marathon-credentials"
        credentials.write_text("lb:secret\n")
        with running_lb(cluster, url, "--marathon-auth-credential-file", str(credentials),
                        "--poll-interval", "0.5", sse=False) as lb:
            one = wait_for(lambda: {t["id"] for t in tasks(marathon, "/shop/web")
                                    if t["state"] == "TASK_RUNNING"}, "a running instance")
            wait_for(lambda: seen_through(service_port, 5) == one, "traffic")
            assert marathon.put("/v2/apps/shop/web", json={"instances": 2}).status_code == 200
            two = wait_for(lambda: len(r := {t["id"] for t in tasks(marathon, "/shop/web")
                                             if t["state"] == "TASK_RUNNING"}) == 2 and r,
                           "two running instances")
            wait_for(lambda: seen_through(service_port) == two, "both to answer")
            assert "following Marathon's events" not in lb["process"].log()
        # --dry prints what it would run, and exits.
        dry = subprocess.run(
            [sys.executable, "-m", "marathon_lb", "--marathon", url, "--group", "external",
             "--auth-credentials", "lb:secret", "--dry"],
            capture_output=True, text=True, timeout=60)
        assert dry.returncode == 0, dry.stderr
        assert f"frontend shop_web_{service_port}" in dry.stdout
        assert dry.stdout.count("  server ") - dry.stdout.count(" disabled\n") == 2


def test_configurations_of_every_label_pass_haproxy_check(tmp_path: Path) -> None:
    """What `build_services` and `render_config` make of marathon-lb's labels is a file
    Debian's haproxy accepts (and a bad label value is one it refuses)."""
    from marathon_lb.haproxy import LUA_ENDPOINTS
    from marathon_lb.haproxy_config import Layout, render_config
    from marathon_lb.services import HealthMemory, Selection, build_services

    def app(app_id: str, port: int, labels: dict[str, str], **extra: Any) -> dict[str, Any]:
        return {"id": app_id, "portDefinitions": [{"port": port}, {"port": port + 1}],
                "labels": {"HAPROXY_GROUP": "external", **labels}, **extra,
                "tasks": [{"id": f"{app_id}.{i}", "host": "127.0.0.1", "state": "TASK_RUNNING",
                           "ports": [31000 + i, 32000 + i],
                           "healthCheckResults": [{"alive": True}]} for i in range(3)]}

    apps = [
        app("/plain", 10001, {}),
        app("/web", 10003, {"HAPROXY_0_VHOST": "web.example.com,www.example.com",
                            "HAPROXY_0_BALANCE": "leastconn", "HAPROXY_0_STICKY": "true",
                            "HAPROXY_1_MODE": "http", "HAPROXY_1_BIND_ADDR": "127.0.0.1"},
            healthChecks=[{"protocol": "HTTP", "path": "/health", "portIndex": 0},
                          {"protocol": "TCP", "portIndex": 1}]),
        app("/shop/api", 10005, {"HAPROXY_0_VHOST": "web.example.com",
                                 "HAPROXY_0_PATH": "-i /api /v2", "HAPROXY_0_PORT": "10099",
                                 "HAPROXY_1_GROUP": "internal"}),
    ]
    cert = tmp_path / "cert.pem"
    if shutil.which("openssl"):
        key = tmp_path / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=web.example.com", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
        cert.write_text(cert.read_text() + key.read_text())
    layout = Layout(config_path=str(tmp_path / "haproxy.cfg"), lua_path=str(LUA_ENDPOINTS),
                    vhost_map_path=str(tmp_path / "haproxy.vhostmap"),
                    ssl_certs=(str(cert),) if cert.exists() else ())

    def check(apps: list[dict[str, Any]]) -> subprocess.CompletedProcess[str]:
        services = build_services(apps, Selection(frozenset({"external"}), respect_health=True),
                                  HealthMemory(), {"127.0.0.1": "127.0.0.1"})
        path = tmp_path / "haproxy.cfg"
        path.write_text(render_config(services, layout))
        return subprocess.run(["haproxy", "-c", "-f", str(path)], capture_output=True,
                              text=True)

    checked = check(apps)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    config = (tmp_path / "haproxy.cfg").read_text()
    assert "frontend shop_api_10099" in config and "shop_api_10006" not in config
    bad = check([*apps, app("/bad", 10007, {"HAPROXY_0_BALANCE": "no-such-algorithm"})])
    assert bad.returncode != 0 and "balance only supports" in bad.stdout + bad.stderr


def test_a_port_in_use_fails_the_reload_the_old_configuration_serves_and_it_is_retried(
    cluster: Cluster, marathon: httpx.Client, app_script: Path,
) -> None:
    service_port = free_port()
    plain = {**web_app(app_script, service_port, 1), "healthChecks": []}
    assert marathon.post("/v2/apps", json=plain).status_code == 201
    with running_lb(cluster, str(marathon.base_url), "--poll-interval", "1") as lb:
        first = wait_for(lambda: answer(service_port), "traffic")
        # `haproxy -c` does not bind ports: a port someone holds passes the check and fails
        # the reload.
        taken = socket.socket()
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        busy_port = taken.getsockname()[1]
        other = {**plain, "id": "/other", "portDefinitions": [{"port": busy_port}]}
        assert marathon.post("/v2/apps", json=other).status_code == 201
        lb["process"].wait_for_log("haproxy could not load the new configuration")
        assert answer(service_port) == first  # the previous workers serve on
        taken.close()
        other_task = wait_for(lambda: {t["id"] for t in tasks(marathon, "/other")
                                       if t["state"] == "TASK_RUNNING"}, "/other running")
        wait_for(lambda: answer(busy_port) in other_task, "the retried reload to bind it")


def test_instances_within_the_slots_change_without_a_reload_and_the_file_follows(
    cluster: Cluster, marathon: httpx.Client, app_script: Path,
) -> None:
    service_port = free_port()
    assert marathon.post("/v2/apps", json=web_app(app_script, service_port, 2)).status_code == 201
    with running_lb(cluster, str(marathon.base_url)) as lb:
        two = wait_for(lambda: len(h := healthy_tasks(marathon, "/shop/web")) == 2 and h,
                       "two healthy instances")
        wait_for(lambda: seen_through(service_port) == two, "both to answer")
        process: Process = lb["process"]
        reloads = process.log().count("haproxy reloaded")
        assert marathon.put("/v2/apps/shop/web", json={"instances": 3}).status_code == 200
        three = wait_for(lambda: len(h := healthy_tasks(marathon, "/shop/web")) == 3 and h,
                         "three healthy instances")
        wait_for(lambda: seen_through(service_port) == three, "all three to answer")
        assert marathon.put("/v2/apps/shop/web", json={"instances": 2}).status_code == 200
        left = wait_for(lambda: len(h := {t["id"] for t in tasks(marathon, "/shop/web")}) == 2
                        and h, "two instances")
        wait_for(lambda: seen_through(service_port) == left, "only the two to answer")
        assert "haproxy servers updated without a reload" in process.log()
        assert process.log().count("haproxy reloaded") == reloads
        # The file on disk is what runs: two servers in use, the other slots disabled.
        servers = [line.split() for line in lb["config"].read_text().splitlines()
                   if line.strip().startswith("server ")]
        assert len(servers) == 4 and sum("disabled" in s for s in servers) == 2
        stats = f"http://127.0.0.1:{lb['stats']}"
        assert httpx.get(f"{stats}/_haproxy_getconfig").text == lb["config"].read_text()

        # Five instances outgrow the four slots: one reload to eight.
        assert marathon.put("/v2/apps/shop/web", json={"instances": 5}).status_code == 200
        five = wait_for(lambda: len(h := healthy_tasks(marathon, "/shop/web")) == 5 and h,
                        "five healthy instances", 60.0)
        wait_for(lambda: seen_through(service_port) == five, "all five to answer")
        wait_for(lambda: process.log().count("haproxy reloaded") > reloads, "the reload")
        assert sum(line.strip().startswith("server ")
                   for line in lb["config"].read_text().splitlines()) == 8
        assert "haproxy exited" not in process.log()


def test_no_runtime_server_updates_reloads_for_every_change(
    cluster: Cluster, marathon: httpx.Client, app_script: Path,
) -> None:
    service_port = free_port()
    assert marathon.post("/v2/apps", json=web_app(app_script, service_port, 1)).status_code == 201
    with running_lb(cluster, str(marathon.base_url), "--no-runtime-server-updates") as lb:
        one = wait_for(lambda: len(h := healthy_tasks(marathon, "/shop/web")) == 1 and h,
                       "a healthy instance")
        wait_for(lambda: seen_through(service_port) == one, "it to answer")
        process: Process = lb["process"]
        reloads = process.log().count("haproxy reloaded")
        assert marathon.put("/v2/apps/shop/web", json={"instances": 2}).status_code == 200
        two = wait_for(lambda: len(h := healthy_tasks(marathon, "/shop/web")) == 2 and h,
                       "two healthy instances")
        wait_for(lambda: seen_through(service_port) == two, "both to answer")
        wait_for(lambda: process.log().count("haproxy reloaded") > reloads, "a reload")
        assert "haproxy servers updated without a reload" not in process.log()


def test_a_haproxy_that_dies_is_started_again(
    cluster: Cluster, marathon: httpx.Client, app_script: Path,
) -> None:
    service_port = free_port()
    plain = {**web_app(app_script, service_port, 1), "healthChecks": []}
    assert marathon.post("/v2/apps", json=plain).status_code == 201
    with running_lb(cluster, str(marathon.base_url)) as lb:
        first = wait_for(lambda: answer(service_port), "traffic")
        lb["process"].wait_for_log("haproxy started")
        pid_file: Path = lb["config"].with_suffix(".pid")
        master = int(pid_file.read_text().split()[0])
        os.kill(master, signal.SIGKILL)
        lb["process"].wait_for_log("haproxy exited; starting it again")
        wait_for(lambda: int(pid_file.read_text().split()[0]) != master, "a new master")
        wait_for(lambda: answer(service_port) == first, "traffic again")
        assert lb["process"].alive()
