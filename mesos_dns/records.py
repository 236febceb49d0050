"""The record table: Mesos-DNS' records of the cluster, kept from the master's event stream.

    SUBSCRIBED.get_state ──▶ RecordTable.replace   (the whole set is rebuilt)
    TASK_*, AGENT_*, FRAMEWORK_* ──▶ RecordTable.apply   (only what the event touches changes)
    the masters (leader, all) ──▶ RecordTable.set_masters
    DNS and HTTP shells ──▶ a(name), srv(name), has_name(name)

Names, as Mesos-DNS makes them (`<task>` is the task's name as a label, `<fw>` the framework's
name as labels, `<id>` = `<task>-<task id hash>-<agent id tail>`):

    <task>.<fw>.<domain>, <id>.<fw>.<domain>              A: the agent's IP, per running task
    <task>.<fw>.slave.<domain>, <id>.<fw>.slave.<domain>  A: the same
    _<task>._tcp|_udp.<fw>[.slave].<domain>               SRV: <id>.<fw>.slave.<domain>:<port>
    slave.<domain>                                        A: every agent
    _slave._tcp.<domain>                                  SRV: slave.<domain>:<agent port>
    leader.<domain>, master.<domain>, masterN.<domain>    A: the leader; all masters; each
    _leader._tcp|_udp.<domain>                            SRV: leader.<domain>:<port>
    <ns>                                                  A: the listener (the SOA's name server)

Only TASK_RUNNING tasks on known agents have records: a task leaves DNS on its first other
state (TASK_KILLING included). Across a master failover the tasks of agents that have not
re-registered with the new leader yet keep their records (see `replace`). Each task, agent
and the masters contribute their records under a key, so an event costs only the records it
touches. Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from mesos_dns.names import agent_id_tail, domain_fragment, label, task_id_hash

__all__ = ["Agent", "Record", "RecordTable", "Task", "normalize"]

RecordType = Literal["A", "SRV"]

MAX_PORTS_PER_RANGE = 1024
"""SRV records made from one range of a task's ports at most (a task holding a whole agent's
range would otherwise make tens of thousands)."""


@dataclass(frozen=True, slots=True)
class Record:
    """One resource record: an A record's IP, or an SRV record's target and port."""

    name: str  # lower case, without the trailing dot
    type: RecordType
    target: str
    port: int = 0


@dataclass(frozen=True, slots=True)
class Task:
    task_id: str
    name: str
    framework_id: str
    agent_id: str
    state: str
    ports: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Agent:
    agent_id: str
    ip: str  # empty when the agent's address is not an IP
    port: int


def normalize(name: str) -> str:
    """A name as the table keys it: lower case, without the trailing dot."""
    return name.lower().rstrip(".")


class RecordTable:
    """Records of the cluster's running tasks, agents and masters under one domain."""

    def __init__(self, domain: str = "mesos", *, name_server: str = "ns1",
                 listener: str = "") -> None:
        """`name_server` is the SOA's primary name server label (`ns1` gives ns1.<domain>);
        `listener` its A record's IP, when it is one."""
        self.domain = normalize(domain)
        self.name_server = f"{label(name_server) or 'ns1'}.{self.domain}"
        self._listener_ip = listener if _is_ip(listener) and listener != "0.0.0.0" else ""
        self._frameworks: dict[str, str] = {}  # id -> name
        self._agents: dict[str, Agent] = {}
        self._tasks: dict[tuple[str, str], Task] = {}  # (framework id, task id)
        self._provisional: set[tuple[str, str]] = set()  # carried over a failover: see replace
        self._contributions: dict[Hashable, tuple[Record, ...]] = {}
        self._index: dict[tuple[str, RecordType], Counter[tuple[str, int]]] = {}
        self._names: Counter[str] = Counter()  # every name with records, and its parents
        self.generation = 0  # bumped on each change
        self._set("listener", self._listener_records())

    # Lookups.

    def a(self, name: str) -> list[str]:
        """The IPs of `name`'s A records."""
        found = self._index.get((normalize(name), "A"))
        return sorted(target for target, _ in found) if found else []

    def srv(self, name: str) -> list[tuple[str, int]]:
        """The (target, port) of `name`'s SRV records."""
        found = self._index.get((normalize(name), "SRV"))
        return sorted(found) if found else []

    def has_name(self, name: str) -> bool:
        """Whether `name` exists: it, or a name below it, has records (else NXDOMAIN)."""
        name = normalize(name)
        return name == self.domain or self._names[name] > 0

    def in_domain(self, name: str) -> bool:
        name = normalize(name)
        return name == self.domain or name.endswith("." + self.domain)

    def records(self) -> list[Record]:
        """Every record (for enumeration and tests)."""
        return sorted({r for records in self._contributions.values() for r in records},
                      key=lambda r: (r.name, r.type, r.target, r.port))

    def running_tasks(self) -> int:
        return sum(1 for task in self._tasks.values() if task.state == "TASK_RUNNING")

    # Changes.

    def set_masters(self, leader: str | None, masters: Sequence[str] = ()) -> None:
        """The leading master's and every master's `ip:port` (the leader may be among them)."""
        self._set("masters", self._master_records(leader, masters))

    def replace(self, get_state: Mapping[str, Any]) -> None:
        """Rebuild the cluster's records from a v1 `GetState` (a SUBSCRIBED event's).

        A new leader knows the agents of the registry (`recovered_agents`) before they
        re-register, but not their tasks: the tasks last known on those agents stay, until
        the agent re-registers (AGENT_ADDED, after the TASK_ADDED of the tasks it still
        runs) or is removed."""
        new_tasks = [_task(task) for task in _list(get_state, "get_tasks", "tasks")]
        recovered = _list(get_state, "get_agents", "recovered_agents")
        recovered_ids = {_text(info, "id", "value") for info in recovered}
        reported = {(task.framework_id, task.task_id) for task in new_tasks}
        carried = [task for key, task in self._tasks.items()
                   if task.agent_id in recovered_ids and key not in reported]
        for key in [key for key in self._contributions if key not in ("masters", "listener")]:
            self._set(key, ())
        self._frameworks.clear()
        self._agents.clear()
        self._tasks.clear()
        self._provisional.clear()
        for entry in _list(get_state, "get_frameworks", "frameworks"):
            self._add_framework(_mapping(entry, "framework_info"))
        for entry in _list(get_state, "get_agents", "agents"):
            self._add_agent(entry)
        for info in recovered:
            self._add_agent({"agent_info": _mapping(info)})
        for task in new_tasks:
            self._put_task(task)
        for task in carried:
            self._put_task(task)
            self._provisional.add((task.framework_id, task.task_id))

    def apply(self, event: Mapping[str, Any]) -> None:
        """Apply one v1 master event; events of other types are ignored."""
        kind = _text(event, "type")
        if kind == "SUBSCRIBED":
            self.replace(_mapping(event, "subscribed", "get_state"))
        elif kind == "TASK_ADDED":
            task = _task(_mapping(event, "task_added", "task"))
            self._provisional.discard((task.framework_id, task.task_id))
            self._put_task(task)
        elif kind == "TASK_UPDATED":
            update = _mapping(event, "task_updated")
            key = (_text(update, "framework_id", "value"),
                   _text(update, "status", "task_id", "value"))
            known = self._tasks.get(key)
            self._provisional.discard(key)
            if known is not None:
                state = (_text(update, "state") or _text(update, "status", "state")
                         or known.state)
                self._put_task(Task(known.task_id, known.name, known.framework_id,
                                    known.agent_id, state, known.ports))
        elif kind == "AGENT_ADDED":
            entry = _mapping(event, "agent_added", "agent")
            self._drop_provisional(_text(entry, "agent_info", "id", "value"))
            self._add_agent(entry)
        elif kind == "AGENT_REMOVED":
            agent_id = _text(event, "agent_removed", "agent_id", "value")
            self._drop_provisional(agent_id)
            if self._agents.pop(agent_id, None) is not None:
                self._set(("agent", agent_id), ())
                self._refresh_tasks(lambda task: task.agent_id == agent_id)
        elif kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
            section = "framework_added" if kind == "FRAMEWORK_ADDED" else "framework_updated"
            self._add_framework(_mapping(event, section, "framework", "framework_info"))
        elif kind == "FRAMEWORK_REMOVED":
            framework_id = _text(event, "framework_removed", "framework_info", "id", "value")
            self._frameworks.pop(framework_id, None)
            for key in [key for key in self._tasks if key[0] == framework_id]:
                del self._tasks[key]
                self._set(("task", *key), ())

    # Internals.

    def _drop_provisional(self, agent_id: str) -> None:
        """Forget the tasks carried over from before a failover on `agent_id`: the agent
        re-registered (reporting what it runs) or is gone."""
        for key in [key for key in self._provisional if self._tasks[key].agent_id == agent_id]:
            self._provisional.discard(key)
            del self._tasks[key]
            self._set(("task", *key), ())

    def _add_framework(self, info: Mapping[str, Any]) -> None:
        framework_id = _text(info, "id", "value")
        if not framework_id:
            return
        name = _text(info, "name")
        if self._frameworks.get(framework_id) != name:
            self._frameworks[framework_id] = name
            self._refresh_tasks(lambda task: task.framework_id == framework_id)

    def _add_agent(self, entry: Mapping[str, Any]) -> None:
        info = _mapping(entry, "agent_info")
        agent_id = _text(info, "id", "value")
        if not agent_id:
            return
        ip, port = _pid_address(_text(entry, "pid"))
        if not ip:
            ip = _text(info, "address") or _text(info, "hostname")
            port = _number(info, "http_port") or _number(info, "port")
        agent = Agent(agent_id, ip if _is_ip(ip) else "", port)
        if self._agents.get(agent_id) == agent:
            return
        self._agents[agent_id] = agent
        slave = f"slave.{self.domain}"
        records: list[Record] = []
        if agent.ip:
            records.append(Record(slave, "A", agent.ip))
            if agent.port:
                records.append(Record(f"_slave._tcp.{self.domain}", "SRV", slave, agent.port))
        self._set(("agent", agent_id), records)
        self._refresh_tasks(lambda task: task.agent_id == agent_id)

    def _put_task(self, task: Task) -> None:
        if not task.task_id or not task.framework_id:
            return
        key = (task.framework_id, task.task_id)
        self._tasks[key] = task
        self._set(("task", *key), self._task_records(task))

    def _refresh_tasks(self, which: Any) -> None:
        for key, task in self._tasks.items():
            if which(task):
                self._set(("task", *key), self._task_records(task))

    def _task_records(self, task: Task) -> list[Record]:
        agent = self._agents.get(task.agent_id)
        framework = self._frameworks.get(task.framework_id)
        if task.state != "TASK_RUNNING" or agent is None or not agent.ip or framework is None:
            return []
        name = label(task.name)
        fname = domain_fragment(framework)
        if not name or not fname:
            return []
        canonical = f"{name}-{task_id_hash(task.task_id)}-{agent_id_tail(task.agent_id)}"
        tail = f"{fname}.{self.domain}"
        slave_tail = f"{fname}.slave.{self.domain}"
        target = f"{canonical}.{slave_tail}"
        records = [Record(host, "A", agent.ip) for host in (
            f"{name}.{tail}", f"{canonical}.{tail}", f"{name}.{slave_tail}", target)]
        for port in task.ports:
            for protocol in ("_tcp", "_udp"):
                for where in (slave_tail, tail):
                    records.append(Record(f"_{name}.{protocol}.{where}", "SRV", target, port))
        return records

    def _master_records(self, leader: str | None, masters: Sequence[str]) -> list[Record]:
        records: list[Record] = []
        domain = self.domain
        leader_ip, leader_port = _split_address(leader or "")
        if _is_ip(leader_ip):
            records.append(Record(f"leader.{domain}", "A", leader_ip))
            records.append(Record(f"master.{domain}", "A", leader_ip))
            for protocol in ("_tcp", "_udp"):
                records.append(Record(f"_leader.{protocol}.{domain}", "SRV",
                                      f"leader.{domain}", leader_port))
        index = 0
        leader_listed = False
        for master in dict.fromkeys(masters):
            ip, _ = _split_address(master)
            if not _is_ip(ip):
                continue
            records.append(Record(f"master.{domain}", "A", ip))
            records.append(Record(f"master{index}.{domain}", "A", ip))
            index += 1
            leader_listed = leader_listed or master == leader
        if _is_ip(leader_ip) and not leader_listed:
            records.append(Record(f"master{index}.{domain}", "A", leader_ip))
        return records

    def _listener_records(self) -> list[Record]:
        return [Record(self.name_server, "A", self._listener_ip)] if self._listener_ip else []

    def _set(self, key: Hashable, records: Iterable[Record]) -> None:
        new = tuple(dict.fromkeys(records))
        old = self._contributions.pop(key, ())
        if old == new:
            if new:
                self._contributions[key] = new
            return
        for record in old:
            counter = self._index[(record.name, record.type)]
            counter[(record.target, record.port)] -= 1
            if counter[(record.target, record.port)] <= 0:
                del counter[(record.target, record.port)]
            if not counter:
                del self._index[(record.name, record.type)]
            for name in _self_and_parents(record.name, self.domain):
                self._names[name] -= 1
                if self._names[name] <= 0:
                    del self._names[name]
        for record in new:
            self._index.setdefault((record.name, record.type), Counter())[
                (record.target, record.port)] += 1
            for name in _self_and_parents(record.name, self.domain):
                self._names[name] += 1
        if new:
            self._contributions[key] = new
        self.generation += 1


def _self_and_parents(name: str, domain: str) -> Iterable[str]:
    """`name` and every name between it and `domain` (empty non-terminals exist in DNS)."""
    while name.endswith("." + domain):
        yield name
        name = name.split(".", 1)[1]


def _task(model: Mapping[str, Any]) -> Task:
    ports: list[int] = []
    for resource in _list(model, "resources"):
        if _text(resource, "name") != "ports":
            continue
        for span in _list(resource, "ranges", "range"):
            begin, end = _number(span, "begin"), _number(span, "end")
            if not 0 < begin <= end <= 65535:
                continue
            ports.extend(range(begin, min(end, begin + MAX_PORTS_PER_RANGE - 1) + 1))
    return Task(
        task_id=_text(model, "task_id", "value"),
        name=_text(model, "name"),
        framework_id=_text(model, "framework_id", "value"),
        agent_id=_text(model, "agent_id", "value"),
        state=_text(model, "state"),
        ports=tuple(sorted(set(ports))),
    )


def _at(model: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        if not isinstance(model, Mapping):
            return None
        model = model.get(step)
    return model


def _mapping(model: Any, *path: str) -> Mapping[str, Any]:
    """The object at `path` in a JSON model ({} when absent or not an object)."""
    found = _at(model, path)
    return found if isinstance(found, Mapping) else {}


def _list(model: Any, *path: str) -> list[Any]:
    found = _at(model, path)
    return found if isinstance(found, list) else []


def _text(model: Any, *path: str) -> str:
    found = _at(model, path)
    return found if isinstance(found, str) else ""


def _number(model: Any, *path: str) -> int:
    """An integer, or a decimal string of one (64-bit integers are strings in JSON)."""
    found = _at(model, path)
    if isinstance(found, bool):
        return 0
    if isinstance(found, int):
        return found
    if isinstance(found, str) and found.isdigit() and len(found) < 20:
        return int(found)
    return 0


def _pid_address(pid: str) -> tuple[str, int]:
    """`slave(1)@10.0.0.1:5051` -> ("10.0.0.1", 5051)."""
    return _split_address(pid.rpartition("@")[2]) if "@" in pid else ("", 0)


def _split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host:
        return address, 0
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        return address, 0


def _is_ip(text: str) -> bool:
    try:
        return isinstance(ipaddress.ip_address(text), ipaddress.IPv4Address)
    except ValueError:
        return False
