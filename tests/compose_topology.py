"""docker-compose.yml read as data, for tests that cannot run Docker.

    compose file --load_compose(environment)--> compose doc, `${VAR:-default}` interpolated
    compose doc --merge_compose(override)--> the document `docker compose -f doc -f override`
                                             runs (docker-compose.tls.yml over docker-compose.yml)
    compose doc --schema_problems------> what the Compose schema rejects
                --command_problems-----> programs that are not ours, flags they do not accept,
                                         published ports nothing listens on
                --local_services-------> the same services as local processes: the same
                                         programs and flags, with service hostnames, container
                                         ports and volumes rewritten to the loopback address,
                                         free ports and directories

Flags are checked with the programs' own argparse parsers (abbreviations refused), so a flag
that a program does not have, or a value it would refuse, fails the check.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import re
import shlex
import sysconfig
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from frameworks.batch.main import build_parser as batch_parser
from marathon.main import build_parser as marathon_parser
from marathon_lb.main import build_parser as marathon_lb_parser
from mesos_agent.config import build_parser as agent_parser
from mesos_dns.main import build_parser as dns_parser
from mesos_master.main import build_parser as master_parser
from mesos_runtime.flags import parse_port
from mesos_values.addresses import HostPort, parse_zk_url

__all__ = [
    "BIND_FLAGS",
    "COMPOSE_FILE",
    "LOOPBACK",
    "PARSERS",
    "TLS_COMPOSE_FILE",
    "LocalService",
    "RejectedArguments",
    "command_problems",
    "interpolate",
    "load_compose",
    "local_services",
    "merge_compose",
    "parse_program_args",
    "schema_problems",
    "service_argv",
]

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"
TLS_COMPOSE_FILE = COMPOSE_FILE.with_name("docker-compose.tls.yml")
"""The TLS variant: an override file for `docker compose -f docker-compose.yml -f ...`."""
LOOPBACK = "127.0.0.1"
BIND_FLAGS = frozenset({"--ip", "--http_address", "--listener"})
"""Flags whose value is a host to listen on (and to advertise): a service hostname there
becomes the loopback address. `HOST:PORT` and `zk://` values are rewritten under any flag."""

PARSERS: Mapping[str, Callable[[], argparse.ArgumentParser]] = {
    "mesos-master": master_parser,
    "mesos-agent": agent_parser,
    "marathon": marathon_parser,
    "mesos-batch": batch_parser,
    "mesos-dns": dns_parser,
    "marathon-lb": marathon_lb_parser,
}
"""The programs a compose service may run, with the builders of their flag parsers."""


class RejectedArguments(ValueError):
    """A program's parser refused a command line; the message is the parser's."""


def load_compose(
    path: Path = COMPOSE_FILE, environment: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The compose file as a plain document (YAML anchors and merge keys resolved), its
    variables interpolated from `environment`: by default none are set, so every
    `${VAR:-default}` reads as what users get who set nothing."""
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path} is not a YAML mapping"
    interpolated: dict[str, Any] = interpolate(document, environment or {})
    return interpolated


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|(?P<bare>[A-Za-z_]\w*)"
    r"|\{(?P<name>[A-Za-z_]\w*)(?:(?P<operator>:?[-?])(?P<argument>[^}]*))?\})"
)


def interpolate(value: Any, environment: Mapping[str, str]) -> Any:
    """`value` with Compose's variables in its strings replaced as Compose replaces them:
    `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset),
    `${VAR:?message}` and `${VAR?message}` (ValueError) and `$$` (a literal `$`). Mapping
    keys are kept as they are."""
    if isinstance(value, str):
        return _VARIABLE.sub(lambda match: _substitute(match, environment), value)
    if isinstance(value, Mapping):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    return value


def _substitute(match: re.Match[str], environment: Mapping[str, str]) -> str:
    if match["escaped"]:
        return "$"
    name = match["bare"] or match["name"]
    operator, argument = match["operator"] or "", match["argument"] or ""
    value = environment.get(name)
    missing = value is None or (operator.startswith(":") and value == "")
    if missing and operator.endswith("-"):
        return argument
    if missing and operator.endswith("?"):
        raise ValueError(f"{name}: {argument or 'required variable is not set'}")
    return value or ""


def merge_compose(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` laid over `base` as Compose merges files given with several `-f`: mappings
    (services, healthcheck, environment, ...) merge key by key, `volumes` of a service merge
    by their container path, `ports` add up, and every other value (a `command` included) is
    replaced whole."""
    merged = dict(base)
    for key, value in override.items():
        old = merged.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            merged[key] = merge_compose(old, value)
        elif key == "volumes" and isinstance(old, list) and isinstance(value, list):
            by_target = {_volume(entry)[1]: entry for entry in old}
            by_target.update({_volume(entry)[1]: entry for entry in value})
            merged[key] = list(by_target.values())
        elif key == "ports" and isinstance(old, list) and isinstance(value, list):
            merged[key] = old + [entry for entry in value if entry not in old]
        else:
            merged[key] = value
    return merged


def schema_problems(document: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """What the Compose JSON schema rejects in `document`, one line per error. The schema is
    read as JSON Schema 2019-09, what Debian's copy declares (with an `$schema` address that
    jsonschema does not recognise); later copies declare draft-07, which reads the same here."""
    validator = jsonschema.Draft201909Validator(schema)
    return sorted(
        f"{'/'.join(str(part) for part in error.absolute_path) or '(top)'}: {error.message}"
        for error in validator.iter_errors(document)
    )


def service_argv(service: Mapping[str, Any]) -> list[str]:
    """entrypoint + command of a service, a string split the way Compose splits it."""
    argv: list[str] = []
    for key in ("entrypoint", "command"):
        value = service.get(key)
        if isinstance(value, str):
            argv += shlex.split(value)
        elif value is not None:
            argv += [str(item) for item in value]
    return argv


def parse_program_args(program: str, args: Iterable[str]) -> argparse.Namespace:
    """`args` parsed by `program`'s own parser, with abbreviated flags refused; raises
    RejectedArguments with the parser's message."""
    parser = PARSERS[program]()
    parser.allow_abbrev = False
    message = io.StringIO()
    try:
        with contextlib.redirect_stderr(message), contextlib.redirect_stdout(message):
            return parser.parse_args(list(args))
    except SystemExit:
        raise RejectedArguments(message.getvalue().strip() or "rejected") from None


def command_problems(
    document: Mapping[str, Any], console_scripts: Collection[str]
) -> list[str]:
    """Services built from this project whose program is not one of `console_scripts` with a
    known parser, whose flags that program refuses, or that publish a container port none of
    their port flags listens on. Services from other images (ZooKeeper) are not checked."""
    problems: list[str] = []
    for name, service in document.get("services", {}).items():
        if "build" not in service:
            continue
        argv = service_argv(service)
        if not argv:
            problems.append(f"{name}: no command (one of {', '.join(sorted(PARSERS))})")
            continue
        program, *args = argv
        if program not in console_scripts or program not in PARSERS:
            problems.append(f"{name}: {program!r} is not one of {', '.join(sorted(PARSERS))}")
            continue
        try:
            options = parse_program_args(program, args)
        except RejectedArguments as exc:
            problems.append(f"{name}: {exc}")
            continue
        listening = {getattr(options, dest) for dest in _port_dests(program)}
        for published in _published_ports(service):
            if published not in listening:
                problems.append(f"{name}: publishes container port {published}, "
                                f"but {program} listens on {sorted(listening)}")
    return problems


@dataclass(frozen=True)
class LocalService:
    """A compose service as a local process."""

    name: str
    program: str
    argv: list[str]  # the program's path, then its rewritten flags
    options: argparse.Namespace  # the rewritten flags as the program parses them
    ports: Mapping[int, int]  # container port -> local port
    binds: Mapping[str, Path]  # host path of a bind mount (as in the file) -> local path


def local_services(
    document: Mapping[str, Any],
    *,
    external: Mapping[HostPort, HostPort],
    work_dir: Path,
    free_port: Callable[[], int],
    scripts_dir: Path | None = None,
) -> list[LocalService]:
    """The services built from this project as local processes: the same programs and flags,
    with the addresses of `external` services (those from other images, such as ZooKeeper's
    `zookeeper:2181`) replaced by where they run locally, service hostnames (in `BIND_FLAGS`,
    `HOST:PORT` and `zk://` values) by the loopback address, the ports services listen on by
    ports from `free_port`, and volumes by directories under `work_dir`. `--hostname` keeps its
    value: it is what offers and constraints see, not an address. ValueError when a service
    is neither built from this project nor named in `external`."""
    scripts = scripts_dir or Path(sysconfig.get_path("scripts"))
    services: Mapping[str, Mapping[str, Any]] = document.get("services", {})
    aliases = {alias: name for name, service in services.items()
               for alias in (name, str(service.get("hostname", name)))}
    # Services with `profiles` start only when asked for (`--profile`): not here.
    built = [(name, service) for name, service in services.items()
             if "build" in service and not service.get("profiles")]
    missing = sorted(set(services) - {name for name, _ in built}
                     - {name for name, service in services.items() if service.get("profiles")}
                     - {aliases.get(address.host) for address in external})
    if missing:
        raise ValueError(f"services {missing} are neither built here nor given in `external`")
    port_maps: dict[str, dict[int, int]] = {name: {} for name in services}

    def local_port(service: str, port: int) -> int:
        ports = port_maps[service]
        if port and port not in ports:
            ports[port] = free_port()
        return ports.get(port, port)

    def local_address(address: HostPort) -> HostPort:
        if address in external:
            return external[address]
        if address.host in aliases:
            return HostPort(LOOPBACK, local_port(aliases[address.host], address.port))
        return address

    for name, service in built:  # first every listening port, so that references resolve
        program, *args = service_argv(service)
        options = parse_program_args(program, args)
        for dest in _port_dests(program):
            local_port(name, getattr(options, dest))
    result = []
    for name, service in built:
        program, *args = service_argv(service)
        mounts = [(source, target, work_dir / name / (source or target).strip("./")
                   .replace("/", "_")) for source, target in _volumes(service)]
        volumes = {target: local for _, target, local in mounts}
        rewrite = _ValueRewriter(
            port_flags={f"--{dest}" for dest in _port_dests(program)},
            port=functools.partial(local_port, name),
            address=local_address,
            hosts=set(aliases),
            volumes=volumes,
        )
        local_args = rewrite.args(args)
        result.append(LocalService(
            name=name,
            program=program,
            argv=[str(scripts / program), *local_args],
            options=parse_program_args(program, local_args),
            ports=port_maps[name],
            binds={source: local for source, _, local in mounts
                   if source.startswith(("./", "../", "/"))},
        ))
    return result


@dataclass(frozen=True)
class _ValueRewriter:
    """Rewrites the values of `--flag=value` and `--flag value` arguments."""

    port_flags: set[str]
    port: Callable[[int], int]
    address: Callable[[HostPort], HostPort]
    hosts: set[str]
    volumes: Mapping[str, Path]

    def args(self, args: list[str]) -> list[str]:
        rewritten: list[str] = []
        flag = ""
        for arg in args:
            if arg.startswith("--"):
                flag, equals, value = arg.partition("=")
                rewritten.append(f"{flag}={self.value(flag, value)}" if equals else arg)
            else:
                rewritten.append(self.value(flag, arg))
        return rewritten

    def value(self, flag: str, value: str) -> str:
        if flag == "--hostname":
            return value
        if flag in self.port_flags:
            return str(self.port(parse_port(value)))
        if value.startswith("zk://"):
            return self._zk_url(value)
        if value.startswith(("http://", "https://")):
            return self._http_url(value)
        if flag in BIND_FLAGS and value in self.hosts:
            return LOOPBACK
        with contextlib.suppress(ValueError):
            host, _, port = value.rpartition(":")
            if host in self.hosts:
                return str(self.address(HostPort(host, int(port))))
        for target, directory in self.volumes.items():
            if value == target or value.startswith(target.rstrip("/") + "/"):
                return str(directory) + value[len(target.rstrip("/")):]
        return value

    def _http_url(self, value: str) -> str:
        """An http(s) URL of a service (`http://marathon1:8080/...`), pointed at where it
        runs locally."""
        scheme, _, rest = value.partition("://")
        netloc, slash, path = rest.partition("/")
        host, _, port = netloc.rpartition(":")
        if host in self.hosts and port.isdigit():
            netloc = str(self.address(HostPort(host, int(port))))
        return f"{scheme}://{netloc}{slash}{path}"

    def _zk_url(self, value: str) -> str:
        url = parse_zk_url(value)
        servers = ",".join(str(self.address(server)) for server in url.servers)
        credentials = f"{url.credentials[0]}:{url.credentials[1]}@" if url.credentials else ""
        return f"zk://{credentials}{servers}{url.path}"


def _port_dests(program: str) -> list[str]:
    """The flags of `program` that name a port it listens on (they parse with parse_port; an
    `--advertise_port` names a port others reach it through, not one it listens on)."""
    parser = PARSERS[program]()
    return [action.dest for action in parser._actions
            if action.type is parse_port and not action.dest.startswith("advertise")]


def _published_ports(service: Mapping[str, Any]) -> list[int]:
    """Container ports of a service's `ports:` (short `[HOST:]CONTAINER` or long syntax)."""
    ports = []
    for entry in service.get("ports", []):
        if isinstance(entry, Mapping):
            ports.append(int(entry["target"]))
        else:
            ports.append(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def _volumes(service: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(source, container path) of a service's volumes (short or long syntax)."""
    return [_volume(entry) for entry in service.get("volumes", [])]


def _volume(entry: Any) -> tuple[str, str]:
    """(source, container path) of one volume entry (short or long syntax)."""
    if isinstance(entry, Mapping):
        return str(entry.get("source", "")), str(entry["target"])
    source, _, rest = str(entry).partition(":")
    return (source, rest.split(":")[0]) if rest else ("", source)
