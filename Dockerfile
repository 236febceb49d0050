# One image for every component of the cluster: mesos-master, mesos-agent, marathon, mesos-batch,
# mesos-local and the mesos CLI are all console scripts of the one package, and each container
# picks its program with its command (see docker-compose.yml; ZooKeeper runs from the official
# zookeeper image). Tasks run as processes inside the agent containers, so the image is also
# what every task sees: add the tools your tasks need here.
#
# BASE_IMAGE: any Debian-based image with Python 3.11 and pip; the official one by default.
# Hosts that cannot pull it build a local base from Debian packages (docs/docker-compose.md).
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# haproxy: for marathon-lb.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/*

COPY . /tmp/pymesos-cluster
RUN pip install /tmp/pymesos-cluster && rm -rf /tmp/pymesos-cluster

WORKDIR /var/lib/mesos

# master gRPC and HTTP, agent gRPC and HTTP, Marathon, batch framework
EXPOSE 5050 5080 5051 5052 8080 9000

CMD ["mesos-master", "--help"]
