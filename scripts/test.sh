#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs what it needs (Debian's ZooKeeper, the
# package with its dev extras), then lint, types and tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ ! -x /usr/share/zookeeper/bin/zkServer.sh ]; then
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq zookeeper >/dev/null
fi
if ! command -v docker-compose >/dev/null; then
  # Only for validating docker-compose.yml (it ships the Compose schema); not the engine.
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends \
    docker-compose >/dev/null
fi
if ! command -v tini >/dev/null; then
  # namespaces/pid runs each container under tini (the isolation tests use it).
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq tini >/dev/null
fi
if ! command -v cc >/dev/null \
    || ! echo 'int main(void) { return 0; }' | cc -static -x c -o /dev/null - 2>/dev/null; then
  # The agent builds mesos-launch, its container launcher, with the C compiler (ADR 0014).
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq gcc libc6-dev >/dev/null
fi
if ! command -v haproxy >/dev/null || ! command -v dig >/dev/null; then
  # marathon-lb runs Debian's haproxy; the service discovery tests query mesos-dns with dig.
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq haproxy dnsutils >/dev/null
fi
if ! command -v docker-registry >/dev/null || ! command -v skopeo >/dev/null \
    || ! command -v umoci >/dev/null || ! command -v runc >/dev/null || [ ! -x /bin/busybox ]; then
  # Container images (issue 19): a real registry, skopeo to push test images built on
  # busybox, umoci to check them, runc to run them.
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq docker-registry skopeo umoci \
    runc busybox-static >/dev/null
fi
if [ ! -x /usr/bin/chromium ]; then
  # The web UI tests drive Debian's chromium through Playwright (no browser download).
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check -e ".[dev]"

python3 -m ruff check .
python3 -m mypy
# The slowest tests are listed at the end: the suite must stay under 15 minutes on 2 cores.
python3 -m pytest -q --durations=25 "$@"
