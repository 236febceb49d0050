"""`mesos-agent` / `python -m mesos_agent`: parse flags, set up logging, run the agent.

SIGTERM and SIGINT stop the agent without killing its tasks (they keep running in their own
sessions and are recovered when the agent restarts with the same `--work_dir`). A corrupt
checkpoint with `--strict` (the default) makes it exit 1 with one line naming the file and the
operator's options.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Sequence

import structlog

from mesos_agent.agent import Agent
from mesos_agent.checkpoint import CorruptCheckpoint
from mesos_agent.config import AgentConfig, fatal, parse_config
from mesos_agent.http import AgentHttp
from mesos_agent.paths import AgentPaths
from mesos_coordination.detector import create_detector
from mesos_http.http_auth import HttpAuthentication
from mesos_http.http_server import serve_while
from mesos_runtime.gc_tuning import tune_gc
from mesos_runtime.logging import configure_logging
from mesos_security.authentication import Authenticator
from mesos_values.addresses import HostPort

log = structlog.get_logger("mesos_agent.main")


async def serve(config: AgentConfig) -> None:
    """Run an agent and its HTTP endpoints until SIGTERM/SIGINT or cancellation."""
    detector = create_detector(config.master)
    agent = Agent(config, detector)
    http = AgentHttp(agent, config.flags, acls=config.acls)

    async def run(port: int) -> None:
        http.port = port
        agent.set_http_port(port)
        log.info("agent HTTP endpoints listening",
                 url=f"{config.tls.http_scheme}://{HostPort(config.ip, port)}")
        await agent.run()

    app = HttpAuthentication(
        http.app(), Authenticator(config.http_credentials),
        readonly=config.authenticate_http_readonly, readwrite=config.authenticate_http_readwrite,
        realm="mesos-agent", open_paths={"/health", "/slave(1)/health"})
    runner = asyncio.ensure_future(serve_while(app, config.ip, config.http_port, run,
                                               tls=config.tls))
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runner.cancel)
    try:
        await runner
    except asyncio.CancelledError:
        log.info("agent stopped")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await detector.close()


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point."""
    config, log_level = parse_config(argv)
    try:
        config.work_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        fatal(f"--work_dir {config.work_dir}: {exc.strerror or exc}")
    configure_logging(log_level)
    tune_gc()
    log.info(
        "starting agent",
        master=config.master,
        ip=config.ip,
        port=config.port,
        hostname=config.hostname,
        resources=str(config.resources),
        work_dir=str(config.work_dir),
        isolation=",".join(config.isolation.isolation),
    )
    if not config.isolation.switch_user:
        log.warning("--switch_user=false: every task and executor runs as the agent's user",
                    user=os.getuid())
    try:
        asyncio.run(serve(config))
    except CorruptCheckpoint as exc:
        fatal(
            f"cannot recover: {exc}. Fix or remove {AgentPaths(config.work_dir).meta_dir} (the "
            "agent then registers as a new agent and kills the tasks it ran), or restart with "
            "--strict=false to recover what is readable and set the rest aside"
        )
    except OSError as exc:
        fatal(str(exc))
    except ValueError as exc:
        fatal(str(exc))
