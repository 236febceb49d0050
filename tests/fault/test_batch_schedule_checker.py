"""A checker in the spirit of Jepsen's Chronos test: over a cron schedule, every due time gets
exactly one run, across kill -9 of the leading batch framework.

Real processes: a private ZooKeeper, a master, an agent and two `mesos-batch` instances electing
a leader there. Both run a warped wall clock (`--clock_warp ANCHOR:60`), so the job's
`* * * * *` schedule is due every real second. The leader is killed (and restarted) at random
moments, with a fixed, printed seed; then the schedule is disabled, the runs drain, and the
history is checked.

The evidence: every run's stored record (`scheduleId`, `dueAt`, written before the run may
launch), read from the framework's ZooKeeper store while it runs (finished runs are pruned there
after `FINISHED_RUNS_KEPT`, and the API's history keeps only the latest ten); the API's history
counts prove that no run escaped the observer, and its entries' `scheduleId`/`dueAt` must agree
with the store.
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from frameworks.batch.main import build_parser
from mesos_runtime.clock import FakeClock, WarpedWallClock
from tests.conftest import unique_zk_path
from tests.integration.cluster import Cluster, Process, wait_for
from tests.integration.conftest import FAST_MASTER_FLAGS
from tests.zookeeper import ZooKeeperEnsemble

SEED = int(os.environ.get("BATCH_CHECKER_SEED", "6061"))
FACTOR = 60.0
"""Warped seconds per real second: a `* * * * *` schedule is due every real second."""
KILLS = 3
OBSERVED_RUNS = 26
"""Scheduled runs (real seconds) observed at least, kills included."""
JOB_ID = "checker.tick"
SCHEDULE_ID = "every-minute"
SCHEDULE = {"id": SCHEDULE_ID, "cron": "* * * * *", "timezone": "UTC",
            "startingDeadlineSeconds": 3600, "concurrencyPolicy": "ALLOW", "enabled": True}
JOB = {"id": JOB_ID, "run": {"cmd": "true", "cpus": 0.1, "mem": 32}, "schedules": [SCHEDULE]}
IN_FLIGHT = timedelta(minutes=2)
"""Due times this close to the end of the window may still be undecided when the schedule is
disabled (the leader's tick lags), and disabling drops those: they are not checked."""
MINUTE = timedelta(minutes=1)


def test_warped_wall_clock_runs_factor_times_faster_from_its_anchor() -> None:
    real = FakeClock(start=1_000.0)
    warped = WarpedWallClock(anchor=1_000.0, factor=60.0, real=real)
    assert warped.now() == 1_000.0
    real.advance(1.5)
    assert warped.now() == 1_090.0
    assert WarpedWallClock(anchor=900.0, factor=60.0, real=real).now() == 900.0 + 101.5 * 60
    with pytest.raises(ValueError):
        WarpedWallClock(anchor=0.0, factor=0.0)


def test_clock_warp_flag_reads_anchor_and_factor() -> None:
    parser = build_parser()
    assert parser.parse_args(["--clock_warp", "1700000000:60"]).clock_warp == (1.7e9, 60.0)
    assert parser.parse_args([]).clock_warp is None
    for bad in ("1700000000", "1:0", "1:-2", "x:60", "1:2:3", "1:inf"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--clock_warp", bad])


class StoreObserver:
    """Polls the batch framework's run records in ZooKeeper from a thread and keeps the latest
    version of every record it has seen (pruned records included)."""

    def __init__(self, hosts: str, root: str) -> None:
        self.root = root
        self.records: dict[str, dict[str, Any]] = {}
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client = KazooClient(hosts=hosts, timeout=5.0)
        self._thread = threading.Thread(target=self._run, name="store-observer", daemon=True)

    def __enter__(self) -> StoreObserver:
        self._client.start(timeout=10.0)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self._client.stop()
        self._client.close()

    def snapshot(self) -> dict[str, dict[str, Any]]:
        assert not self.errors, f"the observer failed: {self.errors!r}"
        with self._lock:
            return dict(self.records)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self._poll()
            except Exception as error:  # reported to the test by snapshot()
                self.errors.append(error)
                return

    def _poll(self) -> None:
        try:
            names = self._client.get_children(self.root)
        except NoNodeError:
            return
        for name in names:
            with self._lock:
                known = self.records.get(name)
            if known is not None and known["status"] in ("SUCCESS", "FAILED"):
                continue  # terminal records do not change any more
            try:
                data, _ = self._client.get(f"{self.root}/{name}")
            except NoNodeError:
                continue
            with self._lock:
                self.records[name] = json.loads(data)


@dataclass
class Instance:
    """One `mesos-batch` instance and a client for its API."""

    process: Process
    client: httpx.Client
    port: int

    def info(self) -> dict[str, Any] | None:
        if not self.process.alive():
            return None
        try:
            answer: dict[str, Any] = self.client.get("/info").json()
        except (httpx.HTTPError, ValueError):
            return None
        return answer


@dataclass
class Setup:
    """The cluster, the warped clock every instance shares, and the two instances."""

    cluster: Cluster
    ensemble: ZooKeeperEnsemble
    zk_path: str
    """The framework's znode in the shared ZooKeeper."""
    clock: WarpedWallClock
    instances: list[Instance]
    flags: tuple[str, ...]

    def leader(self) -> Instance:
        """The one elected instance (waiting until there is exactly one)."""
        def only_elected() -> Instance | None:
            found = [i for i in self.instances
                     if (info := i.info()) is not None and info["elected"] and info["frameworkId"]]
            return found[0] if len(found) == 1 else None

        return wait_for(only_elected, "exactly one elected batch framework")

    def restart(self, instance: Instance) -> None:
        """kill -9 the instance and start it again with the same flags, port and work dir."""
        instance.process.kill9()
        instance.process, _ = self.cluster.start_batch(*self.flags, name=instance.process.name,
                                                       port=instance.port)


@pytest.fixture
def setup(tmp_path: Path, shared_zookeeper: ZooKeeperEnsemble) -> Iterator[Setup]:
    ensemble, zk_path = shared_zookeeper, unique_zk_path("/batch")
    anchor = float(int(time.time()))
    cluster = Cluster(tmp_path, FAST_MASTER_FLAGS)
    flags = ("--zk", ensemble.url(zk_path), "--zk_session_timeout", "2secs",
             "--clock_warp", f"{anchor:.0f}:{FACTOR:g}", "--tick_interval", "0.2secs")
    instances: list[Instance] = []
    try:
        cluster.start_master()
        cluster.start_agent("cpus:4;mem:4096;disk:1000;ports:[31000-31099]")
        for name in ("batch-1", "batch-2"):
            process, url = cluster.start_batch(*flags, name=name)
            instances.append(Instance(process, httpx.Client(base_url=url, timeout=10),
                                      int(url.rsplit(":", 1)[1])))
        yield Setup(cluster, ensemble, zk_path, WarpedWallClock(anchor, FACTOR), instances,
                    flags)
    finally:
        for instance in instances:
            instance.client.close()
        cluster.close()


def warped_now(clock: WarpedWallClock) -> datetime:
    return datetime.fromtimestamp(clock.now(), UTC)


def scheduled(records: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records.values() if r["jobId"] == JOB_ID]


def due_times_between(after: datetime, until: datetime) -> list[datetime]:
    """Every whole minute in (after, until]: the due times of `* * * * *`."""
    first = after.replace(second=0, microsecond=0) + MINUTE
    return [first + MINUTE * k for k in range(max(0, (until - first) // MINUTE + 1))]


@dataclass(frozen=True)
class Window:
    """The observed stretch of the schedule, in warped time."""

    created_after: datetime
    """Before the job and its schedule were created: no due time is at or before this."""
    created_by: datetime
    """After they were created: every due time from here on is the schedule's."""
    checked_until: datetime
    """Every due time in (created_by, checked_until] must have its run."""
    ended_by: datetime
    """After the schedule was disabled: no due time is later than this."""


def schedule_violations(records: list[dict[str, Any]], window: Window) -> tuple[list[str], int]:
    """What breaks "every due time has exactly one run" in these run records, and how many due
    times had to have a run."""
    problems: list[str] = []
    due_of: dict[datetime, list[str]] = {}
    for record in records:
        due = datetime.fromisoformat(record["dueAt"]) if record.get("dueAt") else None
        if record.get("scheduleId") != SCHEDULE_ID or due is None:
            problems.append(f"run {record['id']} names no due time of the schedule")
            continue
        created = datetime.fromisoformat(record["createdAt"])
        if due.second or due.microsecond or not window.created_after < due <= window.ended_by:
            problems.append(f"run {record['id']} is for {due.isoformat()}, not a due time")
        if created < due:
            problems.append(f"run {record['id']} was created before its due time")
        due_of.setdefault(due, []).append(record["id"])
    problems += [f"{due.isoformat()} ran {len(ids)} times: {ids}"
                 for due, ids in sorted(due_of.items()) if len(ids) > 1]
    checked = due_times_between(window.created_by, window.checked_until)
    problems += [f"{due.isoformat()} never ran" for due in checked if due not in due_of]
    return problems, len(checked)


def test_the_checker_finds_missed_doubled_and_undue_runs() -> None:
    start = datetime(2024, 6, 1, 12, 0, 30, tzinfo=UTC)
    window = Window(start, start, start + 5 * MINUTE, start + 6 * MINUTE)

    def run(run_id: str, due: datetime, late: float = 5.0) -> dict[str, Any]:
        return {"id": run_id, "scheduleId": SCHEDULE_ID, "dueAt": due.isoformat(),
                "createdAt": (due + timedelta(seconds=late)).isoformat()}

    dues = due_times_between(start, window.checked_until)
    exact = [run(f"r{i}", due) for i, due in enumerate(dues)]
    assert schedule_violations(exact, window) == ([], 5)
    assert schedule_violations(exact[1:], window)[0] == ["2024-06-01T12:01:00+00:00 never ran"]
    doubled, _ = schedule_violations([*exact, run("again", dues[2], late=90.0)], window)
    assert doubled == ["2024-06-01T12:03:00+00:00 ran 2 times: ['r2', 'again']"]
    undue, _ = schedule_violations([*exact, run("odd", start + 2 * MINUTE),
                                    run("early", start - MINUTE / 2),
                                    run("eager", dues[0] + MINUTE * 5, late=-1.0)], window)
    assert undue == ["run odd is for 2024-06-01T12:02:30+00:00, not a due time",
                     "run early is for 2024-06-01T12:00:00+00:00, not a due time",
                     "run eager was created before its due time"]


def test_every_due_time_has_exactly_one_run_across_leader_kills(setup: Setup) -> None:
    print(f"batch schedule checker: seed={SEED} (set BATCH_CHECKER_SEED to replay)")
    rng = random.Random(SEED)
    setup.leader()
    with StoreObserver(setup.ensemble.hosts, f"{setup.zk_path}/state/runs") as observer:
        client = setup.leader().client
        created_after = warped_now(setup.clock)
        answer = client.post("/v1/jobs", json=JOB)
        assert answer.status_code == 201, answer.text
        created_by = warped_now(setup.clock)

        def runs_until(target: int) -> None:
            wait_for(lambda: len(scheduled(observer.snapshot())) >= target,
                     f"{target} scheduled runs")

        def more_runs(count: int) -> None:
            runs_until(len(scheduled(observer.snapshot())) + count)

        more_runs(3)
        killed: list[str] = []
        for _ in range(KILLS):
            more_runs(rng.randint(2, 6))
            time.sleep(rng.uniform(0.0, 1.0))  # a random moment within the warped minute
            leader = setup.leader()
            killed.append(leader.process.name)
            setup.restart(leader)
            assert setup.leader() is not leader, "the standby did not take over"
        more_runs(3)
        runs_until(OBSERVED_RUNS)

        window_end = warped_now(setup.clock)
        disabled = setup.leader().client.put(f"/v1/jobs/{JOB_ID}/schedules/{SCHEDULE_ID}",
                                             json={**SCHEDULE, "enabled": False})
        assert disabled.status_code == 200, disabled.text
        disabled_by = warped_now(setup.clock)

        def drained() -> dict[str, Any] | None:
            job: dict[str, Any] = setup.leader().client.get(
                f"/v1/jobs/{JOB_ID}", params={"embed": "history,activeRuns"}).json()
            return job if not job["activeRuns"] else None

        job = wait_for(drained, "the scheduled runs to finish")

        def terminal_records() -> list[dict[str, Any]] | None:
            found = scheduled(observer.snapshot())
            return found if all(r["status"] in ("SUCCESS", "FAILED") for r in found) else None

        records = wait_for(terminal_records, "every run record to be terminal")

    context = f"seed={SEED}, killed {killed}"
    history = job["history"]
    assert history["successCount"] + history["failureCount"] == len(records), (
        f"{context}: the history counts runs the store observer never saw")
    assert history["failureCount"] == 0, f"{context}: {history['failedFinishedRuns']}"
    by_id = {r["id"]: r for r in records}
    for run in history["successfulFinishedRuns"]:
        assert run["id"] in by_id, f"{context}: {run['id']} is in the history only"
        # the API says which due time each run was for, as the store does
        stored = by_id[run["id"]]
        assert run["scheduleId"] == stored["scheduleId"], f"{context}: {run}"
        assert datetime.strptime(run["dueAt"], "%Y-%m-%dT%H:%M:%S.%f%z") == \
            datetime.fromisoformat(stored["dueAt"]), f"{context}: {run} vs {stored}"

    window = Window(created_after, created_by, window_end - IN_FLIGHT, disabled_by)
    problems, checked = schedule_violations(records, window)
    assert not problems, f"{context}: " + "; ".join(problems)
    assert checked >= OBSERVED_RUNS - 5, f"{context}: only {checked} due times were checked"
    print(f"{context}: {checked} due times checked, {len(records)} runs, "
          f"history {history['successCount']} succeeded")
