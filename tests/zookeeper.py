"""Private ZooKeeper servers for tests: Debian's ZooKeeper 3.8 run with `java` on free loopback
ports, each with its own temporary data directory. `scripts/test.sh` installs the package."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from kazoo.client import KazooClient

from tests.integration.cluster import free_port, port_answers, wait_for

ZOOKEEPER_JAR = Path("/usr/share/java/zookeeper.jar")
TICK_MS = 200  # sessions may be as short as 2 ticks: fast expiry in tests


@dataclass
class ZooKeeperNode:
    """One ZooKeeper server process."""

    server_id: int
    client_port: int
    peer_port: int
    election_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    def write_config(self, peers: list[ZooKeeperNode]) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            f"tickTime={TICK_MS}", "initLimit=20", "syncLimit=10",
            f"dataDir={self.data_dir}", f"clientPort={self.client_port}",
            "clientPortAddress=127.0.0.1", "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,stat", "maxSessionTimeout=60000",
        ]
        if len(peers) > 1:
            (self.data_dir / "myid").write_text(f"{self.server_id}\n")
            lines += [
                f"server.{p.server_id}=127.0.0.1:{p.peer_port}:{p.election_port}" for p in peers
            ]
        config = self.data_dir / "zoo.cfg"
        config.write_text("\n".join(lines) + "\n")
        (self.data_dir / "log4j.properties").write_text(
            "log4j.rootLogger=WARN, CONSOLE\n"
            "log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.CONSOLE.layout.ConversionPattern=%d %p %c{1} %m%n\n"
        )
        return config

    def start(self) -> None:
        config = self.data_dir / "zoo.cfg"
        log = (self.data_dir / "server.log").open("ab")
        self.process = subprocess.Popen(
            ["java", "-Xmx256m", f"-Dlog4j.configuration=file:{self.data_dir}/log4j.properties",
             "-Dzookeeper.jmx.log4j.disable=true", "-cp", str(ZOOKEEPER_JAR),
             "org.apache.zookeeper.server.quorum.QuorumPeerMain", str(config)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()

    def wait_listening(self, timeout: float = 60.0) -> None:
        wait_for(lambda: port_answers(self.client_port) or not self.alive(),
                 f"ZooKeeper {self.server_id} to listen", timeout)
        assert self.alive(), (self.data_dir / "server.log").read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class ZooKeeperEnsemble:
    """One or more ZooKeeper servers forming one service."""

    nodes: list[ZooKeeperNode] = field(default_factory=list)

    @property
    def hosts(self) -> str:
        """The connection string kazoo and `zk://` URLs take."""
        return ",".join(node.address for node in self.nodes)

    def url(self, path: str) -> str:
        return f"zk://{self.hosts}{path}"

    def start(self) -> None:
        for node in self.nodes:
            node.write_config(self.nodes)
            node.start()
        for node in self.nodes:
            node.wait_listening()
        self.wait_serving()

    def wait_serving(self, timeout: float = 60.0) -> None:
        """Wait until a client can write (a quorum has formed)."""
        deadline = time.monotonic() + timeout
        while True:
            client = KazooClient(hosts=self.hosts, timeout=2.0)
            try:
                client.start(timeout=5.0)
                client.ensure_path("/")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
            finally:
                with contextlib.suppress(Exception):
                    client.stop()
                    client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


@contextlib.contextmanager
def zookeeper(work_dir: Path, size: int = 1) -> Iterator[ZooKeeperEnsemble]:
    """Start `size` ZooKeeper servers (1 = standalone) and stop them afterwards."""
    ensemble = ZooKeeperEnsemble([
        ZooKeeperNode(index, free_port(), free_port(), free_port(), work_dir / f"zk{index}")
        for index in range(1, size + 1)
    ])
    if not ZOOKEEPER_JAR.exists() or shutil.which("java") is None:
        raise RuntimeError(f"{ZOOKEEPER_JAR} or java is missing: run scripts/test.sh to install")
    try:
        ensemble.start()
        yield ensemble
    finally:
        ensemble.stop()
