#!/bin/sh
# A local base image for the Dockerfile, from Debian packages, for hosts that cannot pull
# python:3.11-slim: Debian bookworm (minbase) with Python 3.11, pip and `python`, imported
# into podman as TAG (default localhost/pymesos-base:bookworm). pip may install into the system
# Python, as in the official image, and the certificate authorities this host added
# (/usr/local/share/ca-certificates) are trusted inside, so pip reaches PyPI through the same
# TLS-intercepting proxies the host does. Needs root, mmdebstrap and podman.
#   usage: scripts/podman/build-base.sh [TAG] [MIRROR]
set -eu
tag=${1:-localhost/pymesos-base:bookworm}
mirror=${2:-http://deb.debian.org/debian}
here=$(cd "$(dirname "$0")" && pwd)
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"

set -- --variant=minbase \
    --include=python3,python3-pip,python-is-python3,ca-certificates \
    --customize-hook='rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'
if [ -n "$(ls /usr/local/share/ca-certificates 2>/dev/null)" ]; then
    set -- "$@" \
        --customize-hook='copy-in /usr/local/share/ca-certificates /usr/local/share' \
        --customize-hook='chroot "$1" update-ca-certificates'
fi
mmdebstrap "$@" bookworm - "$mirror" | podman import --change 'CMD ["python3"]' - "$tag"
