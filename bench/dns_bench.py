"""mesos-dns benchmark: DNS queries per second and latency against a record set of many running
tasks, and the time from TASK_RUNNING to resolvable.

    python bench/dns_bench.py [--tasks 1000] [--queries 20000] [--window 32]
        [--waves 10] [--wave_size 10] [--hollow_agents 10] [--log_level WARNING] [--keep]

A real `mesos-master`, `--hollow_agents` simulated agents (bench/hollow_agents.py: the real
agent protocol and task book, tasks played by timers) and a real `mesos-dns` process (its
`--master` is the master's HTTP address) run on 127.0.0.1. An SDK framework "bench" (in this
process) launches `--tasks` tasks named `app<i>`, one host port each, and waits until they
run and `mesos-dns` knows them all. Then:

queries     `--queries` UDP A queries for random `app<i>.bench.mesos` names from one client
            socket (this process; raw datagrams packed with dnslib), one at a time (latency:
            p50 / p99 of each query's round trip, and the queries per second that gives),
            then with `--window` queries in flight (throughput);
resolvable  `--waves` waves of `--wave_size` new tasks: while a wave launches, this process
            asks for each new task's name in a loop (all names of the wave in turn, ~1 ms per
            round) and notes when it first answers. Measured from the TASK_RUNNING status's
            timestamp (set by the agent when the task ran) and from when this process read the
            master's TASK_UPDATED (TASK_RUNNING) event on its own SUBSCRIBE stream (just after
            the master recorded it); p50 / p99 / max over every task.

Every process started here is killed on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from dnslib import DNSRecord

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._cluster import finish_work_dir, free_port, machine, wait_for
from frameworks import OfferBudget, Scheduler, SchedulerDriver, command_task
from mesos_runtime.logging import configure_logging
from protos import mesos_pb2


class WaveScheduler(Scheduler):
    """Launches the task ids put in `pending` on the next offers (one port each), and notes
    each task's TASK_RUNNING status timestamp."""

    def __init__(self) -> None:
        self.pending: list[str] = []
        self.running: dict[str, float] = {}  # task id -> the TASK_RUNNING status's timestamp
        self.problems: list[str] = []
        self.lock = threading.Lock()

    def resource_offers(self, driver: SchedulerDriver, offers: list[mesos_pb2.Offer]) -> None:
        for offer in offers:
            with self.lock:
                take, self.pending = self.pending, []
            budget = OfferBudget(offer)
            tasks = []
            while take and budget.fits(cpus=0.01, mem=1):
                task_id = take.pop()
                tasks.append(command_task(task_id, budget, "serve", cpus=0.01, mem=1, ports=1,
                                          name=task_id))
            with self.lock:
                self.pending.extend(take)
            if tasks:
                driver.launch_tasks(offer.id, tasks, filters=0)
            else:
                driver.decline_offer(offer.id, filters=0.05)

    def status_update(self, driver: SchedulerDriver, status: mesos_pb2.TaskStatus) -> None:
        if status.state == mesos_pb2.TASK_RUNNING:
            with self.lock:
                self.running.setdefault(status.task_id.value, status.timestamp)
        elif status.state != mesos_pb2.TASK_STARTING:
            state = mesos_pb2.TaskState.Name(status.state)
            self.problems.append(f"{status.task_id.value}: {state}")

    def launch(self, driver: SchedulerDriver, task_ids: list[str]) -> None:
        with self.lock:
            self.pending.extend(task_ids)
        driver.revive_offers()


class MasterEvents:
    """This process's own SUBSCRIBE stream: when each task's TASK_RUNNING event was read."""

    def __init__(self, master_url: str) -> None:
        self.running_seen: dict[str, float] = {}
        self._client = httpx.Client(timeout=httpx.Timeout(10, read=None))
        self._url = master_url
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(httpx.HTTPError), self._client.stream(
                "POST", f"{self._url}/api/v1", json={"type": "SUBSCRIBE"}) as response:
            buffer = b""
            for chunk in response.iter_bytes():
                buffer += chunk
                while b"\n" in buffer:
                    header, rest = buffer.split(b"\n", 1)
                    if len(rest) < int(header):
                        break
                    event, buffer = json.loads(rest[:int(header)]), rest[int(header):]
                    update = event.get("task_updated", {})
                    if update.get("state") == "TASK_RUNNING":
                        task_id = update["status"]["task_id"]["value"]
                        self.running_seen.setdefault(task_id, time.time())

    def close(self) -> None:
        self._client.close()


def query(name: str, ident: int) -> bytes:
    record = DNSRecord.question(name, "A")
    record.header.id = ident
    return bytes(record.pack())


def answers(reply: bytes) -> bool:
    return bool(DNSRecord.parse(reply).rr)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure_queries(port: int, names: list[str], count: int, window: int) -> dict[str, float]:
    """One at a time (latencies), then `window` in flight (throughput)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(2.0)
    packets = [query(random.choice(names), index % 65536) for index in range(count)]
    latencies = []
    failures = 0
    start = time.perf_counter()
    for packet in packets:
        sent = time.perf_counter()
        sock.send(packet)
        try:
            reply = sock.recv(4096)
        except TimeoutError:
            failures += 1
            continue
        latencies.append(time.perf_counter() - sent)
        if reply[:2] != packet[:2] or not answers(reply):
            failures += 1
    sequential = time.perf_counter() - start
    start = time.perf_counter()
    received = 0
    in_flight = 0
    for packet in packets:
        sock.send(packet)
        in_flight += 1
        if in_flight >= window:
            with contextlib.suppress(TimeoutError):
                sock.recv(4096)
                received += 1
            in_flight -= 1
    for _ in range(in_flight):
        with contextlib.suppress(TimeoutError):
            sock.recv(4096)
            received += 1
    pipelined = time.perf_counter() - start
    sock.close()
    return {
        "sequential_qps": count / sequential,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000,
        "failures": failures,
        "pipelined_qps": received / pipelined,
        "pipelined_lost": count - received,
    }


def resolve_wave(port: int, names: dict[str, str], timeout: float) -> dict[str, float]:
    """Ask for every name (task id -> name) in turn until each answers; when each did."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", port))
    sock.settimeout(1.0)
    resolved: dict[str, float] = {}
    deadline = time.monotonic() + timeout
    ident = 0
    while len(resolved) < len(names):
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(resolved)}/{len(names)} names resolved")
        for task_id, name in names.items():
            if task_id in resolved:
                continue
            ident = (ident + 1) % 65536
            sock.send(query(name, ident))
            with contextlib.suppress(TimeoutError):
                reply = sock.recv(4096)
                if reply[:2] == ident.to_bytes(2, "big") and answers(reply):
                    resolved[task_id] = time.time()
        time.sleep(0.0005)
    sock.close()
    return resolved


@contextlib.contextmanager
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    previous = signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        yield started
    finally:
        for process in reversed(started):
            if process.poll() is None:
                process.terminate()
        for process in started:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        signal.signal(signal.SIGTERM, previous)


def start(started: list[subprocess.Popen[bytes]], work_dir: Path, name: str,
          argv: list[str]) -> subprocess.Popen[bytes]:
    with (work_dir / f"{name}.log").open("ab") as log:
        process = subprocess.Popen([sys.executable, *argv], stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    started.append(process)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--queries", type=int, default=20000)
    parser.add_argument("--window", type=int, default=32)
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--wave_size", type=int, default=10)
    parser.add_argument("--hollow_agents", type=int, default=10)
    parser.add_argument("--log_level", default="WARNING")
    parser.add_argument("--keep", action="store_true", help="keep the work dir and its logs")
    args = parser.parse_args()
    configure_logging(args.log_level)

    work_dir = Path(tempfile.mkdtemp(prefix="dns-bench-"))
    root = Path(__file__).resolve().parents[1]
    os.environ["PYTHONPATH"] = f"{root}:{os.environ.get('PYTHONPATH', '')}"
    print(f"machine: {machine()}")
    with processes() as started:
        grpc_port, http_port, dns_port, dns_http = (free_port() for _ in range(4))
        start(started, work_dir, "master", [
            "-m", "mesos_master", "--ip", "127.0.0.1", "--port", str(grpc_port),
            "--http_port", str(http_port), "--work_dir", str(work_dir / "master"),
            "--log_level", args.log_level])
        master_url = f"http://127.0.0.1:{http_port}"
        wait_for(lambda: _answers(f"{master_url}/health"), "the master", 30)
        start(started, work_dir, "agents", [
            str(root / "bench" / "hollow_agents.py"), "--master", f"127.0.0.1:{grpc_port}",
            "--agents", str(args.hollow_agents), "--log-level", args.log_level,
            "--resources", "cpus:1000;mem:100000;disk:1000;ports:[31000-32999]"])
        start(started, work_dir, "mesos-dns", [
            "-m", "mesos_dns", "--master", f"127.0.0.1:{http_port}", "--port", str(dns_port),
            "--http_port", str(dns_http), "--listener", "127.0.0.1",
            "--log_level", args.log_level])
        wait_for(lambda: _answers(f"http://127.0.0.1:{dns_http}/v1/version"), "mesos-dns", 30)

        scheduler = WaveScheduler()
        driver = SchedulerDriver(scheduler, mesos_pb2.FrameworkInfo(name="bench", user=""),
                                 f"127.0.0.1:{grpc_port}")
        driver.start()
        events = MasterEvents(master_url)
        try:
            ids = [f"app{index}" for index in range(args.tasks)]
            scheduler.launch(driver, ids)
            wait_for(lambda: len(scheduler.running) >= args.tasks or scheduler.problems,
                     f"{args.tasks} tasks running", 600)
            if scheduler.problems:
                raise RuntimeError("; ".join(scheduler.problems[:5]))
            names = [f"{task_id}.bench.mesos" for task_id in ids]
            resolve_wave(dns_port, {task_id: f"{task_id}.bench.mesos" for task_id in ids}, 120)
            print(f"\n{args.tasks} running tasks ({args.hollow_agents} hollow agents); "
                  f"{args.queries} UDP A queries for random task names, one client:")
            figures = measure_queries(dns_port, names, args.queries, args.window)
            print(f"  one at a time: {figures['sequential_qps']:.0f} queries/s, "
                  f"latency p50 {figures['p50_ms']:.3f} ms, p99 {figures['p99_ms']:.3f} ms, "
                  f"max {figures['max_ms']:.3f} ms, {figures['failures']} failures")
            print(f"  {args.window} in flight: {figures['pipelined_qps']:.0f} queries/s "
                  f"({figures['pipelined_lost']} unanswered)")

            from_status: list[float] = []
            from_master: list[float] = []
            for wave in range(args.waves):
                wave_ids = [f"new{wave}-{index}" for index in range(args.wave_size)]
                wave_names = {task_id: f"{task_id}.bench.mesos" for task_id in wave_ids}
                scheduler.launch(driver, wave_ids)
                resolved = resolve_wave(dns_port, wave_names, 120)
                wait_for(lambda ids=wave_ids: all(t in scheduler.running and
                                                  t in events.running_seen for t in ids),
                         "the wave's statuses and events", 60)
                for task_id in wave_ids:
                    from_status.append(resolved[task_id] - scheduler.running[task_id])
                    from_master.append(resolved[task_id] - events.running_seen[task_id])
            print(f"\ntime to resolvable, {len(from_status)} tasks in {args.waves} waves of "
                  f"{args.wave_size}:")
            for what, values in (("from the TASK_RUNNING status timestamp", from_status),
                                 ("from the master's TASK_RUNNING event", from_master)):
                print(f"  {what}: p50 {statistics.median(values) * 1000:.1f} ms, "
                      f"p99 {percentile(values, 0.99) * 1000:.1f} ms, "
                      f"max {max(values) * 1000:.1f} ms")
        finally:
            events.close()
            driver.stop()
            driver.join()
    finish_work_dir(work_dir, args.keep)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
