"""The record table kept from the master's events: Mesos-DNS' names, and each event changing
only what it touches."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesos_dns.records import Record, RecordTable

AGENT = "M1-S1"
EVENT_TYPES = ["SUBSCRIBED", "TASK_ADDED", "TASK_UPDATED", "AGENT_ADDED", "AGENT_REMOVED",
               "FRAMEWORK_ADDED", "FRAMEWORK_UPDATED", "FRAMEWORK_REMOVED", "HEARTBEAT"]
FIELDS = ["task", "agent", "framework", "framework_info", "agent_info", "id", "value", "name",
          "state", "status", "task_id", "agent_id", "framework_id", "resources", "ranges",
          "range", "begin", "end", "pid", "get_tasks", "tasks", "get_agents", "agents",
          "recovered_agents", "get_frameworks", "frameworks", "address", "http_port", "port",
          "get_state"]


def agent(agent_id: str = AGENT, ip: str = "10.0.0.5", port: int = 5051) -> dict[str, Any]:
    return {"agent_info": {"id": {"value": agent_id}, "hostname": "h1"},
            "pid": f"slave(1)@{ip}:{port}"}


def framework(framework_id: str = "F1", name: str = "marathon") -> dict[str, Any]:
    return {"framework_info": {"id": {"value": framework_id}, "name": name}}


def task(task_id: str = "shop_web.1", name: str = "web.shop", state: str = "TASK_RUNNING",
         ports: tuple[tuple[int, int], ...] = ((31000, 31001),), agent_id: str = AGENT,
         framework_id: str = "F1") -> dict[str, Any]:
    return {
        "task_id": {"value": task_id}, "name": name, "framework_id": {"value": framework_id},
        "agent_id": {"value": agent_id}, "state": state,
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 0.1}},
            {"name": "ports", "type": "RANGES", "ranges": {"range": [
                {"begin": str(begin), "end": str(end)} for begin, end in ports]}},
        ],
    }


def state(tasks: list[dict[str, Any]], agents: list[dict[str, Any]] | None = None,
          frameworks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {
        "get_tasks": {"tasks": tasks},
        "get_agents": {"agents": [agent()] if agents is None else agents},
        "get_frameworks": {"frameworks": [framework()] if frameworks is None else frameworks},
    }


def updated(task_id: str, state: str, framework_id: str = "F1") -> dict[str, Any]:
    return {"type": "TASK_UPDATED", "task_updated": {
        "framework_id": {"value": framework_id},
        "status": {"task_id": {"value": task_id}, "state": state},
        "state": state}}


def table_with(*tasks: dict[str, Any]) -> RecordTable:
    table = RecordTable("mesos")
    table.replace(state(list(tasks)))
    return table


def test_a_running_marathon_task_gets_mesos_dns_names() -> None:
    table = table_with(task())
    canonical = "web-shop-i74gz-s1"  # <task>-<hash of the task id>-<agent id tail>
    for name in ("web-shop.marathon.mesos", f"{canonical}.marathon.mesos",
                 "web-shop.marathon.slave.mesos", f"{canonical}.marathon.slave.mesos"):
        assert table.a(name) == ["10.0.0.5"], name
    target = f"{canonical}.marathon.slave.mesos"
    for service in ("_web-shop._tcp.marathon.mesos", "_web-shop._udp.marathon.mesos",
                    "_web-shop._tcp.marathon.slave.mesos", "_web-shop._udp.marathon.slave.mesos"):
        assert table.srv(service) == [(target, 31000), (target, 31001)], service
    assert table.a("slave.mesos") == ["10.0.0.5"]
    assert table.srv("_slave._tcp.mesos") == [("slave.mesos", 5051)]


def test_names_are_case_insensitive_and_take_a_trailing_dot() -> None:
    table = table_with(task())
    assert table.a("Web-Shop.Marathon.MESOS.") == ["10.0.0.5"]


def test_several_instances_share_the_service_names() -> None:
    table = table_with(task("shop_web.1", agent_id=AGENT),
                       task("shop_web.2", agent_id="M1-S2", ports=((31005, 31005),)))
    table.apply({"type": "AGENT_ADDED", "agent_added": {"agent": agent("M1-S2", "10.0.0.6")}})
    assert table.a("web-shop.marathon.mesos") == ["10.0.0.5", "10.0.0.6"]
    assert [port for _, port in table.srv("_web-shop._tcp.marathon.mesos")] == [
        31000, 31001, 31005]


def test_only_running_tasks_resolve_and_killing_leaves_at_once() -> None:
    table = table_with(task(state="TASK_STAGING"))
    assert table.a("web-shop.marathon.mesos") == []
    table.apply(updated("shop_web.1", "TASK_RUNNING"))
    assert table.a("web-shop.marathon.mesos") == ["10.0.0.5"]
    table.apply(updated("shop_web.1", "TASK_KILLING"))
    assert table.a("web-shop.marathon.mesos") == []
    assert table.srv("_web-shop._tcp.marathon.mesos") == []
    assert not table.has_name("web-shop.marathon.mesos")  # NXDOMAIN again


def test_task_added_then_running_then_ended() -> None:
    table = table_with()
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task(state="TASK_STAGING")}})
    table.apply(updated("shop_web.1", "TASK_RUNNING"))
    assert table.running_tasks() == 1
    table.apply(updated("shop_web.1", "TASK_FINISHED"))
    assert table.running_tasks() == 0
    assert table.a("web-shop.marathon.mesos") == []


def test_updates_of_unknown_tasks_are_ignored() -> None:
    table = table_with()
    before = table.records()
    table.apply(updated("nobody", "TASK_RUNNING"))
    assert table.records() == before
    assert table.running_tasks() == 0


def test_an_agent_removed_takes_its_tasks_and_its_slave_records() -> None:
    table = table_with(task())
    table.apply({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": AGENT}}})
    assert table.a("web-shop.marathon.mesos") == []
    assert table.a("slave.mesos") == []
    # it comes back (re-registered): its running tasks resolve again
    table.apply({"type": "AGENT_ADDED", "agent_added": {"agent": agent()}})
    assert table.a("web-shop.marathon.mesos") == ["10.0.0.5"]


def test_a_removed_framework_takes_its_tasks() -> None:
    table = table_with(task())
    table.apply({"type": "FRAMEWORK_REMOVED",
                 "framework_removed": {"framework_info": {"id": {"value": "F1"}}}})
    assert table.a("web-shop.marathon.mesos") == []
    assert table.running_tasks() == 0


def test_a_task_of_a_framework_not_yet_known_resolves_once_it_is() -> None:
    table = RecordTable("mesos")
    table.replace(state([task()], frameworks=[]))
    assert table.a("web-shop.marathon.mesos") == []
    table.apply({"type": "FRAMEWORK_ADDED", "framework_added": {"framework": framework()}})
    assert table.a("web-shop.marathon.mesos") == ["10.0.0.5"]


def test_subscribed_replaces_the_whole_set() -> None:
    table = table_with(task())
    table.set_masters("127.0.0.1:5050", ["127.0.0.1:5050"])
    table.apply({"type": "SUBSCRIBED", "subscribed": {"get_state": state(
        [task("other.1", name="other")])}})
    assert table.a("web-shop.marathon.mesos") == []
    assert table.a("other.marathon.mesos") == ["10.0.0.5"]
    assert table.a("leader.mesos") == ["127.0.0.1"]  # the masters are not the stream's


def test_masters_leader_and_their_services() -> None:
    table = RecordTable("mesos")
    table.set_masters("10.0.0.2:5050", ["10.0.0.1:5050", "10.0.0.2:5050", "10.0.0.3:5050"])
    assert table.a("leader.mesos") == ["10.0.0.2"]
    assert table.a("master.mesos") == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert [table.a(f"master{i}.mesos") for i in range(3)] == [
        ["10.0.0.1"], ["10.0.0.2"], ["10.0.0.3"]]
    assert table.srv("_leader._tcp.mesos") == [("leader.mesos", 5050)]
    assert table.srv("_leader._udp.mesos") == [("leader.mesos", 5050)]
    table.set_masters("10.0.0.3:5050", ["10.0.0.1:5050", "10.0.0.3:5050"])
    assert table.a("leader.mesos") == ["10.0.0.3"]
    assert table.a("master2.mesos") == []


def test_a_leader_outside_the_list_gets_the_next_master_number() -> None:
    table = RecordTable("mesos")
    table.set_masters("10.0.0.9:5050")
    assert table.a("master0.mesos") == ["10.0.0.9"]


def test_names_with_records_below_them_exist() -> None:
    table = table_with(task())
    assert table.has_name("marathon.mesos")  # an empty non-terminal: NOERROR, no answers
    assert table.has_name("mesos")
    assert not table.has_name("nothing.marathon.mesos")
    assert table.in_domain("x.mesos") and not table.in_domain("example.com")
    assert not table.in_domain("notmesos")


def test_the_listener_is_the_name_server() -> None:
    table = RecordTable("cluster.local", name_server="ns1", listener="10.0.0.53")
    assert table.name_server == "ns1.cluster.local"
    assert table.records() == [Record("ns1.cluster.local", "A", "10.0.0.53")]
    assert RecordTable("mesos", listener="0.0.0.0").records() == []


def test_an_event_changes_only_the_records_it_touches() -> None:
    table = table_with(*(task(f"app{i}.1", name=f"app{i}") for i in range(100)))
    before = set(table.records())
    table.apply(updated("app7.1", "TASK_KILLING"))
    gone = before - set(table.records())
    assert gone and all("app7" in record.name or "app7" in record.target for record in gone)
    assert set(table.records()) < before


def new_leader_state(tasks: list[dict[str, Any]]) -> dict[str, Any]:
    """A new leader's state: the agent known from the registry, not re-registered yet."""
    recovered = state(tasks, agents=[])
    recovered["get_agents"]["recovered_agents"] = [
        {"id": {"value": AGENT}, "hostname": "h1", "address": "10.0.0.5", "http_port": 5051}]
    return recovered


def test_tasks_of_agents_not_yet_re_registered_keep_resolving_across_a_failover() -> None:
    table = table_with(task("api.1", name="api"), task("gone.1", name="gone"))
    table.replace(new_leader_state([]))
    assert table.a("api.marathon.mesos") == ["10.0.0.5"]
    # the agent re-registers: the tasks it still runs come first, then the agent
    table.apply({"type": "TASK_ADDED", "task_added": {"task": task("api.1", name="api")}})
    assert table.a("gone.marathon.mesos") == ["10.0.0.5"]  # not re-registered yet
    table.apply({"type": "AGENT_ADDED", "agent_added": {"agent": agent()}})
    assert table.a("api.marathon.mesos") == ["10.0.0.5"]
    assert table.a("gone.marathon.mesos") == []  # the agent no longer runs it
    assert table.running_tasks() == 1


def test_carried_tasks_go_with_an_agent_that_never_comes_back() -> None:
    table = table_with(task("api.1", name="api"))
    table.replace(new_leader_state([]))
    table.apply({"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": AGENT}}})
    assert table.a("api.marathon.mesos") == []
    assert table.running_tasks() == 0


def test_a_fresh_state_without_recovered_agents_carries_nothing() -> None:
    table = table_with(task("api.1", name="api"))
    table.replace(state([]))
    assert table.a("api.marathon.mesos") == []


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=4), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(EVENT_TYPES), JSON, JSON)
def test_no_event_shape_makes_the_table_fail(kind: str, body: Any, state_body: Any) -> None:
    table = table_with(task())
    table.apply({"type": kind, kind.lower(): body})
    table.apply({"type": "SUBSCRIBED", "subscribed": {"get_state": state_body}})
    table.a("web-shop.marathon.mesos")
