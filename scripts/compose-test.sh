#!/bin/sh
# Runs docker-compose.yml for real with podman (docs/docker-compose.md): builds the local Debian
# base and ZooKeeper images when they are missing, then tests/compose_real (builds the cluster
# image, brings the topology up, deploys through the standby Marathon, kills the leading master,
# tears everything down). Needs root and Debian's podman, podman-compose, runc, catatonit and
# mmdebstrap. Extra arguments go to pytest.
#   BASE_IMAGE       the Dockerfile's base   (default localhost/pymesos-base:bookworm, built here)
#   ZOOKEEPER_IMAGE  ZooKeeper's image       (default localhost/pymesos-zookeeper:3.8, built here)
#   CONTAINERS_CONF  podman's settings       (default scripts/podman/containers.conf)
set -eu
cd "$(dirname "$0")/.."
export CONTAINERS_CONF="${CONTAINERS_CONF:-$PWD/scripts/podman/containers.conf}"
export BASE_IMAGE="${BASE_IMAGE:-localhost/pymesos-base:bookworm}"
export ZOOKEEPER_IMAGE="${ZOOKEEPER_IMAGE:-localhost/pymesos-zookeeper:3.8}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"

if ! podman image exists "$BASE_IMAGE"; then
    scripts/podman/build-base.sh "$BASE_IMAGE"
fi
if ! podman image exists "$ZOOKEEPER_IMAGE"; then
    podman build --build-arg "BASE_IMAGE=$BASE_IMAGE" --tag "$ZOOKEEPER_IMAGE" \
        --file scripts/podman/zookeeper.Dockerfile scripts/podman
fi
COMPOSE_REAL=1 exec python -m pytest -p no:cacheprovider -v -s tests/compose_real "$@"
