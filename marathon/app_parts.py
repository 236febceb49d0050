"""The parts of a Marathon app definition: port definitions, fetch URIs, health and readiness
checks, upgrade and unreachable strategies, secret references. Each is an immutable value that
reads itself from the app JSON (`read`, recording play-json violations) and writes itself back
(`to_json`) in Marathon's shape, defaults filled in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from mesos_http.json_input import JsonReader

__all__ = [
    "EnvSecretRef",
    "FetchUri",
    "HealthCheck",
    "PortDefinition",
    "ReadinessCheck",
    "UnreachableStrategy",
    "UpgradeStrategy",
    "json_number",
]

PORT_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
"""A valid port name (port definitions, readiness checks' `portName`)."""
_HEALTH_PROTOCOLS = ("HTTP", "HTTPS", "TCP", "COMMAND", "MESOS_HTTP", "MESOS_HTTPS", "MESOS_TCP")


def json_number(value: float) -> int | float:
    """A number as Marathon writes it: a float without a fraction as an integer."""
    return int(value) if float(value).is_integer() else value


@dataclass(frozen=True)
class PortDefinition:
    """A host port the app needs; 0 asks for any port from the offer."""

    port: int = 0
    protocol: str = "tcp"
    name: str | None = None
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def read(cls, r: JsonReader, value: Any, path: str) -> PortDefinition | None:
        """Read one from JSON at `path`; None (with the violations recorded) when bad."""
        raw = r.object(value, path)
        if raw is None:
            return None
        port = r.field(raw, "port", path, lambda v, p: r.integer(v, p, minimum=0, maximum=65535))
        protocol = r.field(raw, "protocol", path,
                           lambda v, p: r.choice(v, p, ("tcp", "udp", "udp,tcp")))
        name = r.field(raw, "name", path, lambda v, p: r.string(v, p, pattern=PORT_NAME))
        labels = r.field(raw, "labels", path, r.string_map)
        return cls(0 if port is None else port, protocol or "tcp", name, labels or {})

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"port": self.port, "protocol": self.protocol}
        if self.name is not None:
            body["name"] = self.name
        body["labels"] = dict(self.labels)
        return body


@dataclass(frozen=True)
class FetchUri:
    """An artifact the fetcher downloads into the sandbox before the task starts."""

    uri: str
    executable: bool = False
    extract: bool = True
    cache: bool = False
    dest_path: str | None = None

    @classmethod
    def read(cls, r: JsonReader, value: Any, path: str) -> FetchUri | None:
        """Read one from JSON at `path`; None (with the violations recorded) when bad."""
        raw = r.object(value, path)
        if raw is None:
            return None
        uri = r.field(raw, "uri", path, lambda v, p: r.string(v, p, min_length=1))
        if uri is None:
            if "uri" not in raw:
                r.fail(f"{path}/uri", "error.path.missing")
            return None
        return cls(
            uri,
            executable=bool(r.field(raw, "executable", path, r.boolean)),
            extract=r.field(raw, "extract", path, r.boolean) is not False,
            cache=bool(r.field(raw, "cache", path, r.boolean)),
            dest_path=r.field(raw, "destPath", path, r.string))

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"uri": self.uri, "extract": self.extract,
                                "executable": self.executable, "cache": self.cache}
        if self.dest_path is not None:
            body["destPath"] = self.dest_path
        return body


@dataclass(frozen=True)
class HealthCheck:
    """A Marathon-level (HTTP, HTTPS, TCP) or agent-level (COMMAND, MESOS_*) health check."""

    protocol: str = "HTTP"
    path: str | None = None
    port_index: int | None = None
    port: int | None = None
    command: str | None = None
    grace_period_seconds: int = 300
    interval_seconds: int = 60
    timeout_seconds: int = 20
    max_consecutive_failures: int = 3
    delay_seconds: int = 15
    ignore_http1xx: bool = False
    ip_protocol: str = "IPv4"

    @property
    def runs_on_agent(self) -> bool:
        """Whether the agent runs this check (COMMAND, in the task's container), rather than
        Marathon (`marathon.health`)."""
        return self.protocol == "COMMAND"

    @classmethod
    def read(cls, r: JsonReader, value: Any, path: str) -> HealthCheck | None:
        """Read one from JSON at `path`; None (with the violations recorded) when bad."""
        raw = r.object(value, path)
        if raw is None:
            return None

        def seconds(key: str, default: int) -> int:
            found = r.field(raw, key, path, lambda v, p: r.integer(v, p, minimum=0))
            return default if found is None else found

        command = r.field(raw, "command", path, r.object)
        command_value = None if command is None else r.field(command, "value", f"{path}/command",
                                                             r.string)
        protocol = r.field(raw, "protocol", path, lambda v, p: r.choice(v, p, _HEALTH_PROTOCOLS))
        return cls(
            protocol=protocol or ("COMMAND" if command_value is not None else "HTTP"),
            path=r.field(raw, "path", path, r.string),
            port_index=r.field(raw, "portIndex", path,
                               lambda v, p: r.integer(v, p, minimum=0, maximum=65535)),
            port=r.field(raw, "port", path, lambda v, p: r.integer(v, p, minimum=0, maximum=65535)),
            command=command_value,
            grace_period_seconds=seconds("gracePeriodSeconds", 300),
            interval_seconds=seconds("intervalSeconds", 60),
            timeout_seconds=seconds("timeoutSeconds", 20),
            max_consecutive_failures=seconds("maxConsecutiveFailures", 3),
            delay_seconds=seconds("delaySeconds", 15),
            ignore_http1xx=bool(r.field(raw, "ignoreHttp1xx", path, r.boolean)),
            ip_protocol=r.field(raw, "ipProtocol", path,
                                lambda v, p: r.choice(v, p, ("IPv4", "IPv6"))) or "IPv4")

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "gracePeriodSeconds": self.grace_period_seconds,
            "intervalSeconds": self.interval_seconds,
            "maxConsecutiveFailures": self.max_consecutive_failures,
            "timeoutSeconds": self.timeout_seconds,
            "delaySeconds": self.delay_seconds,
            "protocol": self.protocol,
        }
        if self.command is not None:
            body["command"] = {"value": self.command}
        if self.path is not None:
            body["path"] = self.path
        if self.port_index is not None:
            body["portIndex"] = self.port_index
        if self.port is not None:
            body["port"] = self.port
        if self.protocol in ("HTTP", "HTTPS", "MESOS_HTTP", "MESOS_HTTPS"):
            body["ignoreHttp1xx"] = self.ignore_http1xx
        if self.protocol != "COMMAND":
            body["ipProtocol"] = self.ip_protocol
        return body


@dataclass(frozen=True)
class ReadinessCheck:
    """An HTTP check a deployment waits on before it counts an instance as ready."""

    name: str = "readinessCheck"
    protocol: str = "HTTP"
    path: str = "/"
    port_name: str = "http"
    interval_seconds: int = 30
    timeout_seconds: int = 10
    http_status_codes_for_ready: tuple[int, ...] = (200,)
    preserve_last_response: bool = False

    @classmethod
    def read(cls, r: JsonReader, value: Any, path: str) -> ReadinessCheck | None:
        """Read one from JSON at `path`; None (with the violations recorded) when bad."""
        raw = r.object(value, path)
        if raw is None:
            return None
        defaults = cls()
        codes = r.field(raw, "httpStatusCodesForReady", path, lambda v, p: r.items(
            v, p, lambda c, cp: r.integer(c, cp, minimum=100, maximum=999)))
        interval = r.field(raw, "intervalSeconds", path, lambda v, p: r.integer(v, p, minimum=0))
        timeout = r.field(raw, "timeoutSeconds", path, lambda v, p: r.integer(v, p, minimum=0))
        return cls(
            name=r.field(raw, "name", path, r.string) or defaults.name,
            protocol=r.field(raw, "protocol", path, lambda v, p: r.choice(v, p, ("HTTP", "HTTPS")))
            or defaults.protocol,
            path=r.field(raw, "path", path, r.string) or defaults.path,
            port_name=r.field(raw, "portName", path, lambda v, p: r.string(v, p, pattern=PORT_NAME))
            or defaults.port_name,
            interval_seconds=defaults.interval_seconds if interval is None else interval,
            timeout_seconds=defaults.timeout_seconds if timeout is None else timeout,
            http_status_codes_for_ready=(tuple(codes) if codes
                                         else defaults.http_status_codes_for_ready),
            preserve_last_response=bool(r.field(raw, "preserveLastResponse", path, r.boolean)))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": self.protocol, "path": self.path,
                "portName": self.port_name, "intervalSeconds": self.interval_seconds,
                "timeoutSeconds": self.timeout_seconds,
                "httpStatusCodesForReady": list(self.http_status_codes_for_ready),
                "preserveLastResponse": self.preserve_last_response}


@dataclass(frozen=True)
class UpgradeStrategy:
    """Fractions of `instances` kept healthy / launched extra during a rolling upgrade."""

    minimum_health_capacity: float = 1.0
    maximum_over_capacity: float = 1.0

    @classmethod
    def read(cls, r: JsonReader, value: Any, path: str) -> UpgradeStrategy | None:
        """Read one from JSON at `path`; None (with the violations recorded) when bad."""
        raw = r.object(value, path)
        if raw is None:
            return None

        def fraction(key: str) -> float:
            found = r.field(raw, key, path, lambda v, p: r.number(v, p, minimum=0.0, maximum=1.0))
            return 1.0 if found is None else found

        return cls(fraction("minimumHealthCapacity"), fraction("maximumOverCapacity"))

    def to_json(self) -> dict[str, Any]:
        return {"minimumHealthCapacity": json_number(self.minimum_health_capacity),
                "maximumOverCapacity": json_number(self.maximum_over_capacity)}


@dataclass(frozen=True)
class UnreachableStrategy:
    """When unreachable instances are replaced and expunged; `enabled=False` is `"disabled"`.

    The defaults (0 and 0: replace and expunge at once) are Marathon 1.9's, as in its app
    schema; older Marathon releases used 300 and 600 seconds.
    """

    enabled: bool = True
    inactive_after_seconds: int = 0
    expunge_after_seconds: int = 0

    @classmethod
    def read(cls, r: JsonReader, value: Any, path: str) -> UnreachableStrategy | None:
        """Read one from JSON at `path`; None (with the violations recorded) when bad."""
        if isinstance(value, str):
            if value.lower() == "disabled":
                return cls(enabled=False)
            r.fail(path, "error.unknown.enum.literal")
            return None
        raw = r.object(value, path)
        if raw is None:
            return None
        def seconds(key: str) -> int:
            return r.field(raw, key, path, lambda v, p: r.integer(v, p, minimum=0)) or 0

        return cls(True, seconds("inactiveAfterSeconds"), seconds("expungeAfterSeconds"))

    def to_json(self) -> dict[str, Any] | str:
        if not self.enabled:
            return "disabled"
        return {"inactiveAfterSeconds": self.inactive_after_seconds,
                "expungeAfterSeconds": self.expunge_after_seconds}


@dataclass(frozen=True)
class EnvSecretRef:
    """An environment variable whose value comes from the app's secret `secret`."""

    secret: str
