"""marathon-lb's figures (issue 20): HAProxy reloads with 1,000 backends, and the time from a
task's TASK_RUNNING (or healthy verdict) to load-balanced traffic reaching it.

    python bench/haproxy_bench.py [--apps 100] [--instances 10] [--reloads 20]
        [--samples 30] [--part reload|traffic|both] [--no-runtime-server-updates]

(a) reload: `--apps` apps of `--instances` running instances each (1,000 backends), built by
    `marathon_lb.services.build_services` from Marathon-shaped JSON and rendered by
    `render_config`, their instances pointing at `--instances` real HTTP servers. The real
    shell (`marathon_lb.haproxy.HAProxy`) starts Debian's haproxy in master-worker mode; then
    `--reloads` times a configuration that adds (or removes) one app is applied. Figures:
    render time, `haproxy -c` time, apply time (validate + switch + SIGUSR2 until the master's
    `show proc` counts the reload and lists the new worker), from the start of `apply` until
    the added app's new frontend answers a request (the new worker serving), and how many of
    the requests a client loop sends to another app during all the reloads fail.
(b) traffic: a real master, one agent, Marathon and `marathon-lb --sse` (and `-H` for the
    health-checked app). An app of one instance, a small Python HTTP server on `$PORT0`
    answering its task id, is scaled 0 -> 1 `--samples` times. For each new task: when our
    own `/v2/events` subscription sees its TASK_RUNNING (or its health_status_changed_event
    alive), when the task answers on its own port (polled directly), and when a request
    through HAProxy's service port first reaches it. Without health checks the LB lag is
    counted from the later of TASK_RUNNING and the task answering directly (the app's own
    start-up is not the load balancer's); with them, from the healthy event. marathon-lb
    applies these changes through its server slots (`set server`, no reload) unless
    `--no-runtime-server-updates` (then every change is a reload). At the end: HAProxy
    masters restarted after exiting, workers that exited with a signal or an error code (both
    from HAProxy's and marathon-lb's log), and the master's `show proc`.
Every process started is stopped on exit. Prints figures only; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from _cluster import BenchCluster, free_port, machine, wait_for

from marathon_lb.haproxy import LUA_ENDPOINTS, HAProxy
from marathon_lb.haproxy_config import Layout, render_config
from marathon_lb.services import HealthMemory, Selection, build_services
from mesos_runtime.logging import configure_logging

APP_SERVER = '''\
import http.server, os
TASK = os.environ["MESOS_TASK_ID"].encode()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(TASK)))
        self.end_headers()
        self.wfile.write(TASK)
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT0"])), H).serve_forever()
'''


def percentiles(values: list[float]) -> str:
    ordered = sorted(values)
    if not ordered:
        return "no samples"
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered) * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, "
            f"max {ordered[-1] * 1000:.1f} ms (n={len(ordered)})")


def get(port: int, timeout: float = 1.0) -> str | None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        body = response.read().decode()
        return body if response.status == 200 else None
    except OSError:
        return None
    finally:
        connection.close()


# ----------------------------------------------------------------------------- (a) reload


@contextlib.contextmanager
def echo_servers(count: int) -> Iterator[list[int]]:
    """`count` threaded HTTP servers on loopback answering 200."""
    import http.server

    class Quiet(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet) for _ in range(count)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield [server.server_address[1] for server in servers]
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def synthetic_apps(apps: int, instances: int, ports: list[int], service_ports: list[int]
                   ) -> list[dict[str, Any]]:
    return [{
        "id": f"/bench/app-{a:03d}", "portDefinitions": [{"port": service_ports[a]}],
        "labels": {"HAPROXY_GROUP": "external", "HAPROXY_0_MODE": "http"},
        "healthChecks": [],
        "tasks": [{"id": f"app-{a:03d}.{i}", "host": "127.0.0.1", "state": "TASK_RUNNING",
                   "ports": [ports[i % len(ports)]]} for i in range(instances)],
    } for a in range(apps)]


async def reload_bench(args: argparse.Namespace, work: Path) -> None:
    with echo_servers(args.instances) as ports:
        service_ports = [free_port() for _ in range(args.apps + 1)]  # after the servers bound
        apps = synthetic_apps(args.apps + 1, args.instances, ports, service_ports)
        layout = Layout(config_path=str(work / "haproxy.cfg"), lua_path=str(LUA_ENDPOINTS),
                        vhost_map_path=str(work / "haproxy.vhostmap"), stats_port=free_port(),
                        http_port=free_port())
        selection = Selection(frozenset({"external"}))

        def render(count: int) -> tuple[str, float]:
            began = time.perf_counter()
            services = build_services(apps[:count], selection, HealthMemory(),
                                      {"127.0.0.1": "127.0.0.1"})
            return render_config(services, layout), time.perf_counter() - began

        base, _ = render(args.apps)
        backends = args.apps * args.instances
        print(f"configuration: {args.apps} apps x {args.instances} instances = {backends} "
              f"backends, {len(base.splitlines())} lines, {len(base) / 1024:.0f} KiB")
        haproxy = HAProxy(shutil.which("haproxy") or "haproxy", Path(layout.config_path))
        renders, checks, applies, serving = [], [], [], []
        client = RequestLoop(service_ports[0])
        try:
            await haproxy.apply(base)
            await asyncio.to_thread(answers, service_ports[0])
            client.start()
            new_port = service_ports[args.apps]
            for index in range(args.reloads):
                adding = index % 2 == 0
                text, rendered = render(args.apps + 1 if adding else args.apps)
                renders.append(rendered)
                began = time.perf_counter()
                error = await haproxy.check(text)
                checks.append(time.perf_counter() - began)
                assert not error, error
                began = time.perf_counter()
                applied = await haproxy.apply(text)
                applies.append(time.perf_counter() - began)
                assert applied.outcome == "reloaded", applied
                if adding:
                    await asyncio.to_thread(answers, new_port)
                    serving.append(time.perf_counter() - began)
        finally:
            client.stop()
            await haproxy.stop()
        print(f"requests to one app during the reloads (a new connection each): {client.ok} "
              f"answered, {client.failed} failed")
        print(f"render (build_services + render_config): {percentiles(renders)}")
        print(f"haproxy -c: {percentiles(checks)}")
        print(f"apply (haproxy -c + switch + SIGUSR2 until the new worker is listed): "
              f"{percentiles(applies)}")
        print(f"apply start -> the added app's new frontend answers: {percentiles(serving)}")


class RequestLoop:
    """GETs on `port`, one connection each, on a thread until stopped; counts the answers."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.ok = 0
        self.failed = 0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        while not self._stopping.is_set():
            if get(self.port, 2.0) == "ok":
                self.ok += 1
            else:
                self.failed += 1


# ---------------------------------------------------------------------------- (b) traffic


class EventWatch:
    """Our own `/v2/events` subscription, timing TASK_RUNNING and healthy events per task."""

    def __init__(self, url: str) -> None:
        self.running: dict[str, float] = {}
        self.healthy: dict[str, float] = {}
        self._url = url
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self._follow()

    def _follow(self) -> None:
        with httpx.stream("GET", f"{self._url}/v2/events", params=[
                ("event_type", "status_update_event"),
                ("event_type", "health_status_changed_event")],
                timeout=httpx.Timeout(10, read=None)) as response:
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.perf_counter()
                event = json.loads(line[5:])
                if event.get("taskStatus") == "TASK_RUNNING":
                    self.running.setdefault(event["taskId"], now)
                if event.get("eventType") == "health_status_changed_event" and event["alive"]:
                    self.healthy.setdefault(event["taskId"], now)


def start_agent(cluster: BenchCluster) -> None:
    name = "agent-1"
    agent = cluster.start_process(name, [
        "-m", "mesos_agent", "--master", cluster.master_address, "--ip", "127.0.0.1",
        "--port", str(free_port()), "--hostname", "127.0.0.1",
        "--work_dir", str(cluster.work_dir / name),
        "--resources", "cpus:8;mem:8192;disk:1000;ports:[31000-31999]"])
    cluster.agents.append(agent)
    wait_for(lambda: "registered with master" in cluster.log(name), "the agent", 30.0)


def start_marathon(cluster: BenchCluster) -> str:
    port = free_port()
    cluster.start_process("marathon", [
        "-m", "marathon", "--master", cluster.master_address, "--http_port", str(port),
        "--work_dir", str(cluster.work_dir / "marathon")])
    url = f"http://127.0.0.1:{port}"

    def registered() -> bool:
        try:
            return bool(httpx.get(f"{url}/v2/info", timeout=2).json().get("frameworkId"))
        except httpx.HTTPError:
            return False

    wait_for(registered, "marathon to register", 60.0)
    return url


def traffic_bench(args: argparse.Namespace, work: Path) -> None:
    cluster = BenchCluster(work, "INFO")
    lb: subprocess.Popen[bytes] | None = None
    try:
        cluster.start_master()
        start_agent(cluster)
        url = start_marathon(cluster)
        script = work / "app_server.py"
        script.write_text(APP_SERVER)
        stats_port = free_port()
        with (work / "marathon-lb.log").open("ab") as log:
            lb = subprocess.Popen(
                [sys.executable, "-m", "marathon_lb", "--marathon", url, "--group", "external",
                 "--sse", "--health-check", "--haproxy-config", str(work / "lb" / "haproxy.cfg"),
                 "--http-port", str(free_port()), "--stats-port", str(stats_port),
                 *([] if args.runtime_server_updates else ["--no-runtime-server-updates"])],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        (work / "lb").mkdir(exist_ok=True)
        wait_for(lambda: get_status(stats_port), "marathon-lb's haproxy", 30.0)
        watch = EventWatch(url)
        client = httpx.Client(base_url=url, timeout=10)
        for checked in (False, True):
            service_port = free_port()
            app_id = "/bench/checked" if checked else "/bench/plain"
            app: dict[str, Any] = {
                "id": app_id, "cmd": f"{sys.executable} {script}", "cpus": 0.1, "mem": 32,
                "instances": 0, "portDefinitions": [{"port": service_port}],
                "labels": {"HAPROXY_GROUP": "external"}}
            if checked:
                app["healthChecks"] = [{"protocol": "HTTP", "path": "/", "portIndex": 0,
                                        "intervalSeconds": 1, "timeoutSeconds": 1,
                                        "gracePeriodSeconds": 30}]
            client.post("/v2/apps", json=app).raise_for_status()
            samples = [one_sample(client, watch, app_id, service_port, checked)
                       for _ in range(args.samples)]
            lags = [lag for lag in samples if lag is not None]
            if len(lags) < len(samples):
                print(f"({len(samples) - len(lags)} samples lost: the task never served)")
            what = ("healthy event -> traffic through HAProxy (-H, HTTP health check)"
                    if checked else
                    "TASK_RUNNING (and answering directly) -> traffic through HAProxy")
            print(f"{what}: {percentiles(lags)}")
            print("  in order (ms):", " ".join(f"{lag * 1000:.0f}" for lag in lags))
        lb_log = (work / "marathon-lb.log").read_text(errors="replace")
        print(f"haproxy restarts after exiting on its own: "
              f"{lb_log.count('haproxy exited; starting it again')}")
        exits = [line for line in lb_log.splitlines() if "exited with code" in line]
        print(f"haproxy workers that exited: {len(exits)}, of which not with code 0: "
              f"{sum('exited with code 0 ' not in line for line in exits)}")
        print(f"passes applied without a reload: "
              f"{lb_log.count('haproxy servers updated without a reload')}, reloads: "
              f"{lb_log.count('haproxy reloaded')}")
        print("show proc:\n" + show_proc(work / "lb" / "haproxy.sock"))
        client.close()
    finally:
        if lb is not None and lb.poll() is None:
            lb.terminate()
            lb.wait(15)
        cluster.close()


def show_proc(socket_path: Path) -> str:
    """The HAProxy master's `show proc` (its workers, their reloads and failures)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(socket_path))
        sock.sendall(b"show proc;quit\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace").strip()


def one_sample(client: httpx.Client, watch: EventWatch, app_id: str, service_port: int,
               checked: bool) -> float | None:
    """Scale `app_id` to one instance; the seconds from its start (see the module docstring)
    until a request through `service_port` reaches it (None when its task failed, e.g. its
    port was still held by the previous one, and Marathon replaced it); then scale it back."""
    scale(client, app_id, 1)
    task = wait_for(lambda: next(iter(tasks_of(client, app_id)), None), "a task", 30.0)
    task_id, direct, reached = task["id"], None, None
    deadline = time.perf_counter() + 30
    while time.perf_counter() < deadline:
        now = time.perf_counter()
        if direct is None and task["ports"] and get(task["ports"][0], 0.2):
            direct = now
        if get(service_port, 0.5) == task_id:
            reached = time.perf_counter()
            break
        time.sleep(0.0005)
    start = None
    if reached is not None and checked:
        start = wait_for(lambda: watch.healthy.get(task_id), "the healthy event", 5)
    elif reached is not None:
        running = wait_for(lambda: watch.running.get(task_id), "the running event", 5)
        start = max(running, direct or running)
    scale(client, app_id, 0)
    wait_for(lambda: not tasks_of(client, app_id) and get(service_port, 0.5) is None,
             "the instance gone", 30.0)
    return max(0.0, reached - start) if reached is not None and start is not None else None


def scale(client: httpx.Client, app_id: str, instances: int) -> None:
    """Scale `app_id`, waiting while a deployment of it still runs (409)."""
    def accepted() -> bool:
        response = client.put(f"/v2/apps{app_id}", json={"instances": instances})
        if response.status_code == 409:
            time.sleep(0.05)
            return False
        response.raise_for_status()
        return True

    wait_for(accepted, "the scale to be accepted", 30.0)


def answers(port: int) -> None:
    """Until a GET on `port` answers 200 `ok`."""
    while get(port, 0.5) != "ok":
        time.sleep(0.001)


def tasks_of(client: httpx.Client, app_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/v2/apps{app_id}", params={"embed": "app.tasks"}).json()["app"]
    return [t for t in answer["tasks"] if t["state"] == "TASK_RUNNING"]


def get_status(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
    try:
        connection.request("GET", "/_haproxy_health_check")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--apps", type=int, default=100)
    parser.add_argument("--instances", type=int, default=10)
    parser.add_argument("--reloads", type=int, default=20)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--part", choices=("reload", "traffic", "both"), default="both")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--runtime-server-updates", action=argparse.BooleanOptionalAction,
                        default=True, help="run marathon-lb with its server slots updated "
                        "through the runtime API (its default) or not (every change reloads)")
    args = parser.parse_args()
    configure_logging("WARNING")
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="haproxy-bench-"))
    print(f"work directory: {work}")
    try:
        if args.part in ("reload", "both"):
            (work / "reload").mkdir()
            asyncio.run(reload_bench(args, work / "reload"))
        if args.part in ("traffic", "both"):
            (work / "traffic").mkdir()
            traffic_bench(args, work / "traffic")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
