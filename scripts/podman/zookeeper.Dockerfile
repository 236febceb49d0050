# ZooKeeper 3.8 from Debian's package, for hosts that cannot pull the official `zookeeper:3.8`
# image: it behaves as that image does in docker-compose.yml (client port 2181, data in /data and
# /datalog, `zkServer.sh status` as the health check, logs on stdout). Build it from any
# Debian bookworm base, e.g. the local one scripts/compose-test.sh makes:
#   podman build --build-arg BASE_IMAGE=localhost/pymesos-base:bookworm \
#     -t localhost/pymesos-zookeeper:3.8 -f scripts/podman/zookeeper.Dockerfile scripts/podman
# and select it with ZOOKEEPER_IMAGE=localhost/pymesos-zookeeper:3.8.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends zookeeper \
    && rm -rf /var/lib/apt/lists/* \
    && printf '%s\n' tickTime=2000 initLimit=5 syncLimit=2 dataDir=/data dataLogDir=/datalog \
        clientPort=2181 autopurge.snapRetainCount=3 autopurge.purgeInterval=24 \
        4lw.commands.whitelist=srvr,ruok admin.enableServer=false \
        > /etc/zookeeper/conf/zoo.cfg \
    && sed -i 's/^ZOO_LOG4J_PROP=.*/ZOO_LOG4J_PROP=INFO,CONSOLE/' \
        /usr/share/zookeeper/bin/zkEnv.sh \
    && printf '#!/bin/sh\nexec /usr/share/zookeeper/bin/zkServer.sh "$@"\n' \
        > /usr/local/bin/zkServer.sh \
    && chmod 755 /usr/local/bin/zkServer.sh \
    && mkdir -p /data /datalog

VOLUME ["/data", "/datalog"]
EXPOSE 2181
CMD ["zkServer.sh", "start-foreground"]
