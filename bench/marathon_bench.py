"""Marathon's figures (issue 5): deploying one app of many instances, and GET /v2/apps latency
with many apps.

    python bench/marathon_bench.py --instances 1000 --apps 1000
    python bench/marathon_bench.py --instances 1000 --hollow_agents 20   # no forking

(a) POST /v2/apps of one app with `--instances` instances of `sleep 600` (no ports), until
    every instance is TASK_RUNNING and the deployment is over, as Marathon reports it.
    Real agents fork a process per instance; hollow agents (`bench/hollow_agents.py`) only
    report the states, which measures Marathon and the master without the agents' fork limit.
    The POST waits until the machine is quiet (a previous run's tasks torn down). The CPU
    seconds each component used meanwhile are printed too (on a shared machine they vary
    less than the wall clock), counted exactly per thread (schedstat, `CpuLedger`): the
    agents' spawn servers and the instances' own processes apart, and the whole machine's.
    `--profile DIR` records py-spy profiles. The work dir is made in the temp dir (`TMPDIR`);
    its file system is printed: on an ext4 without a journal, files made within a minute or so of
    mass deletions (a previous run's cleanup) cost the instances' start far more.
(b) POST `--apps` apps of 0 instances, then GET /v2/apps repeatedly: latency percentiles.
Every process started is stopped on exit (also on Ctrl-C).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

import httpx
from _cluster import (
    BenchCluster,
    CpuLedger,
    Profilers,
    file_system,
    finish_work_dir,
    free_port,
    machine,
    wait_for,
    wait_for_quiet_machine,
)
from scale_bench import HollowFleet


def start_marathon(cluster: BenchCluster, work_dir: Path) -> tuple[str, int]:
    port = free_port()
    process = cluster.start_process("marathon", [
        "-m", "marathon", "--master", cluster.master_address, "--http_port", str(port),
        "--work_dir", str(work_dir / "marathon"),
    ])
    url = f"http://127.0.0.1:{port}"

    def registered() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"marathon exited:\n{cluster.log('marathon')[-3000:]}")
        try:
            return bool(httpx.get(f"{url}/v2/info", timeout=2).json().get("frameworkId"))
        except httpx.HTTPError:
            return False

    wait_for(registered, "marathon to register", 60.0)
    return url, process.pid


def _call(connection: http.client.HTTPConnection, method: str, path: str,
          body: object = None) -> Any:
    """One request on a kept-alive connection; the JSON answer (HTTPError-like RuntimeError
    on a status >= 400)."""
    payload = None if body is None else json.dumps(body).encode()
    headers = {} if payload is None else {"Content-Type": "application/json"}
    connection.request(method, path, body=payload, headers=headers)
    answer = connection.getresponse()
    data = answer.read()
    if answer.status >= 400:
        raise RuntimeError(f"{method} {path}: {answer.status} {data[:500]!r}")
    return json.loads(data)


def deploy(url: str, instances: int, timeout: float) -> dict[str, float]:
    app = {"id": "/bench/big", "cmd": "sleep 600", "cpus": 0.01, "mem": 1,
           "instances": instances, "portDefinitions": []}
    address = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port,
                                            timeout=60)
    try:
        start = time.perf_counter()
        _call(connection, "POST", "/v2/apps", app)
        posted = time.perf_counter() - start
        first_running: float | None = None
        while True:
            # The app list filtered by id has the counts and deployments without the 1,000
            # tasks (GET /v2/apps/bench/big renders them all: every 20 ms that took ~40 % of
            # Marathon's loop during the deployment it measures). The standard library's
            # client on one kept-alive connection: httpx cost this process ~2 ms of CPU per
            # poll, 0.2 CPU-s per deployment taken from the machine being measured.
            [body] = _call(connection, "GET", "/v2/apps?id=/bench/big")["apps"]
            now = time.perf_counter() - start
            if body["tasksRunning"] and first_running is None:
                first_running = now
            if body["tasksRunning"] == instances and not body["deployments"]:
                return {"post": posted, "first running": first_running or now,
                        "all running": now}
            if now > timeout:
                raise RuntimeError(f"only {body['tasksRunning']} of {instances} running "
                                   f"after {timeout} s")
            time.sleep(0.02)
    finally:
        connection.close()


def list_latency(client: httpx.Client, apps: int, samples: int) -> dict[str, float]:
    start = time.perf_counter()
    for index in range(apps):
        client.post("/v2/apps", json={"id": f"/many/app-{index:05d}", "cmd": "sleep 600",
                                      "cpus": 0.01, "mem": 1, "instances": 0}
                    ).raise_for_status()
    created = time.perf_counter() - start
    timings = []
    for _ in range(samples):
        began = time.perf_counter()
        answer = client.get("/v2/apps")
        answer.raise_for_status()
        timings.append(time.perf_counter() - began)
        assert len(answer.json()["apps"]) >= apps
    timings.sort()
    return {
        "create per app (ms)": 1000 * created / max(1, apps),
        "GET p50 (ms)": 1000 * statistics.median(timings),
        "GET p99 (ms)": 1000 * timings[min(len(timings) - 1, int(len(timings) * 0.99))],
        "GET max (ms)": 1000 * timings[-1],
        "body (KiB)": len(client.get("/v2/apps").content) / 1024,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--apps", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--agents", type=int, default=2, help="real agents")
    parser.add_argument("--hollow_agents", type=int, default=0,
                        help="use this many hollow agents instead of real ones")
    parser.add_argument("--isolation", default=None,
                        help="the real agents' --isolation (default: theirs, cgroups where root)")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--log_level", default="INFO")
    parser.add_argument("--profile", type=Path, default=None,
                        help="record py-spy profiles (collapsed stacks) of Marathon, the master "
                        "and the agents during the deployment here")
    parser.add_argument("--keep", action="store_true",
                        help="keep the work dir (the components' logs) and say where it is")
    args = parser.parse_args(argv)

    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    work_dir = Path(tempfile.mkdtemp(prefix="marathon-bench-"))
    work_dir_file_system = file_system(work_dir)
    cluster = BenchCluster(work_dir, args.log_level, isolation=args.isolation)
    fleet = HollowFleet(work_dir)
    resources = "cpus:1000;mem:1000000;disk:100000"
    try:
        cluster.start_master()
        if args.hollow_agents:
            fleet.start(cluster.master_address, args.hollow_agents, 1, resources)
        else:
            for _ in range(args.agents):
                cluster.start_agent(resources)
        url, marathon_pid = start_marathon(cluster, work_dir)
        profilers = Profilers(args.profile)
        profilers.attach("marathon", marathon_pid)
        if cluster.master is not None:
            profilers.attach("master", cluster.master.pid)
        agent_pids = [agent.pid for agent in [*cluster.agents, *fleet.processes]]
        for index, pid in enumerate(agent_pids):
            profilers.attach(f"agent-{index}", pid)
        if args.profile is not None:
            time.sleep(1.0)  # the recorders attach before the POST
        components = {"marathon": [marathon_pid], "agents": agent_pids}
        if cluster.master is not None:
            components["master"] = [cluster.master.pid]
        # A run right after another would also measure that one's thousand tasks being torn
        # down (and the cluster's own start): the POST waits for a quiet machine.
        quiet = wait_for_quiet_machine()
        ledger = CpuLedger(components)
        ledger.start()
        try:
            deployed = deploy(url, args.instances, args.timeout)
            cpu = ledger.stop()
        finally:
            profilers.stop()
        with httpx.Client(base_url=url, timeout=60) as client:
            listed = list_latency(client, args.apps, args.samples) if args.apps else {}
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    finally:
        fleet.close()
        cluster.close()
        finish_work_dir(work_dir, args.keep)
    agents = (f"{args.hollow_agents} hollow agents" if args.hollow_agents
              else f"{args.agents} real agents")
    print(f"command: python bench/marathon_bench.py {' '.join(sys.argv[1:])}")
    print(f"machine: {machine()}; work dir on {work_dir_file_system}")
    print(f"load average at the start: {load}; the CPUs were {quiet:.0%} busy in the second "
          "before the POST")
    print(f"(a) one app of {args.instances} instances on {agents}, seconds from POST:")
    for name, value in deployed.items():
        print(f"    {name:<16} {value:8.3f}")
    print("    CPU seconds used meanwhile (every thread's schedstat): " + ", ".join(
        f"{name} {seconds:.2f}" for name, seconds in cpu.items()))
    if listed:
        print(f"(b) {args.apps} apps:")
        for name, value in listed.items():
            print(f"    {name:<22} {value:8.2f}")


if __name__ == "__main__":
    main()
