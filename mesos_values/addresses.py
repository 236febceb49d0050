"""Master addresses as every component takes them: `HOST:PORT` or `zk://[user:pass@]h1:p,h2:p/path`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HostPort:
    """A host and a TCP port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class ZooKeeperUrl:
    """A parsed `zk://` URL."""

    servers: tuple[HostPort, ...]
    path: str
    credentials: tuple[str, str] | None = None

    @property
    def hosts(self) -> str:
        """The comma-separated server list kazoo expects."""
        return ",".join(str(s) for s in self.servers)


def parse_host_port(text: str, *, what: str = "address") -> HostPort:
    """Parse `HOST:PORT` (IPv6 hosts in brackets); raises ValueError with a clear message."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"invalid {what} {text!r}: expected [IPV6]:PORT")
        port_text = rest[1:]
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise ValueError(f"invalid {what} {text!r}: expected HOST:PORT")
    if not host:
        raise ValueError(f"invalid {what} {text!r}: the host is empty")
    if not (port_text.isascii() and port_text.isdigit()) or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid {what} {text!r}: the port must be a number in 1..65535")
    return HostPort(host, int(port_text))


def parse_zk_url(text: str) -> ZooKeeperUrl:
    """Parse `zk://[user:pass@]host:port[,host:port...]/path`."""
    if not text.startswith("zk://"):
        raise ValueError(f"invalid ZooKeeper URL {text!r}: expected zk://host:port/path")
    rest = text[len("zk://") :]
    credentials = None
    if "@" in rest:
        auth, rest = rest.rsplit("@", 1)
        user, sep, password = auth.partition(":")
        if not sep or not user:
            raise ValueError(f"invalid ZooKeeper URL {text!r}: credentials must be user:password")
        credentials = (user, password)
    servers_text, slash, path = rest.partition("/")
    if not slash or not path.strip("/"):
        raise ValueError(f"invalid ZooKeeper URL {text!r}: a path is required, e.g. /mesos")
    servers = tuple(
        parse_host_port(s, what="ZooKeeper server") for s in servers_text.split(",") if s
    )
    if not servers:
        raise ValueError(f"invalid ZooKeeper URL {text!r}: no servers")
    return ZooKeeperUrl(servers, "/" + path.strip("/"), credentials)


WILDCARD_ADDRESSES = frozenset({"", "0.0.0.0", "::", "[::]"})
"""Listen addresses that mean every interface."""


def advertised_host(hostname: str | None, listen_address: str, machine_hostname: str) -> str:
    """The host a service advertises (in links, `webui_url`, leader records): `hostname` when
    given (`--hostname`), else the address it listens on, unless that is a wildcard; only then
    `machine_hostname` (on Debian's default /etc/hosts it resolves to 127.0.1.1, where a
    service listening on 127.0.0.1 does not answer)."""
    if hostname:
        return hostname
    return machine_hostname if listen_address in WILDCARD_ADDRESSES else listen_address
