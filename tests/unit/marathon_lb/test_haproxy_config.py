"""HAProxy's configuration text (`marathon_lb.haproxy_config`)."""

from __future__ import annotations

import re

from marathon_lb.haproxy_config import (
    Layout,
    assign_slots,
    render_config,
    render_vhost_map,
    server_commands,
    slot_count,
)
from marathon_lb.services import Backend, HealthCheck, Service

LAYOUT = Layout(config_path="/etc/haproxy/haproxy.cfg", lua_path="/lb/endpoints.lua",
                vhost_map_path="/etc/haproxy/haproxy.vhostmap", stats_port=9090,
                http_port=8080, https_port=8443)
BACKENDS = (Backend("host1", "10.0.0.1", 31001, "a"), Backend("host2", "10.0.0.2", 31002, "b"))


def section(text: str, head: str) -> list[str]:
    """The lines of the section that starts with `head` (up to the next section)."""
    lines = text.splitlines()
    start = lines.index(head)
    end = next((i for i in range(start + 1, len(lines))
                if lines[i] and not lines[i].startswith(" ")), len(lines))
    return [line.strip() for line in lines[start + 1:end] if line.strip()]


def test_defaults_retry_elsewhere_and_the_stats_port_answers_marathon_lbs_endpoints() -> None:
    text = render_config([], LAYOUT)
    defaults = section(text, "defaults")
    assert "retries 3" in defaults and "option redispatch" in defaults
    stats = section(text, "listen stats")
    assert "bind *:9090" in stats and "stats uri /haproxy?stats" in stats
    assert "monitor-uri /_haproxy_health_check" in stats
    assert any("/_haproxy_getconfig" in line and "lua.marathon_lb_getconfig" in line
               for line in stats)
    assert any("/_haproxy_getvhostmap" in line for line in stats)
    glob = section(text, "global")
    assert "lua-load /lb/endpoints.lua" in glob
    assert "setenv MARATHON_LB_CONFIG /etc/haproxy/haproxy.cfg" in glob
    assert section(text, "frontend marathon_http_in")[0] == "bind *:8080"


def test_a_tcp_service_has_a_frontend_and_a_backend_of_its_instances() -> None:
    service = Service("/shop/db", 0, 10005, backends=BACKENDS)
    text = render_config([service], LAYOUT)
    assert section(text, "frontend shop_db_10005") == [
        "bind *:10005", "mode tcp", "use_backend shop_db_10005"]
    assert section(text, "backend shop_db_10005") == [
        "balance roundrobin", "mode tcp",
        "server s1 10.0.0.1:31001", "server s2 10.0.0.2:31002",
        "server s3 127.0.0.1:1 disabled", "server s4 127.0.0.1:1 disabled"]


def test_an_http_service_with_a_marathon_http_check_is_checked_by_haproxy_too() -> None:
    check = HealthCheck("HTTP", "/health", interval_seconds=2, timeout_seconds=0.5,
                        max_consecutive_failures=3)
    service = Service("/web", 0, 10001, mode="http", balance="leastconn",
                      bind_address="127.0.0.1", bind_options="accept-proxy",
                      health_check=check, backends=BACKENDS[:1])
    text = render_config([service], LAYOUT)
    assert section(text, "frontend web_10001")[:2] == ["bind 127.0.0.1:10001 accept-proxy",
                                                       "mode http"]
    backend = section(text, "backend web_10001")
    assert backend[:3] == ["balance leastconn", "mode http", "option forwardfor"]
    # A request a dying instance closed unanswered is tried again elsewhere, if it is safe.
    assert "retry-on conn-failure empty-response" in backend
    assert ("http-request disable-l7-retry unless METH_GET || METH_HEAD || METH_OPTIONS"
            in backend)
    assert "option httpchk GET /health" in backend and "timeout check 500ms" in backend
    assert backend[-4:] == ["server s1 10.0.0.1:31001 check inter 2000ms fall 4",
                            *[f"server s{i} 127.0.0.1:1 check inter 2000ms fall 4 disabled"
                              for i in (2, 3, 4)]]


def test_an_empty_backend_keeps_its_frontend_and_only_disabled_slots() -> None:
    text = render_config([Service("/web", 0, 10001)], LAYOUT)
    assert section(text, "frontend web_10001")[0] == "bind *:10001"
    servers = [line for line in section(text, "backend web_10001") if line.startswith("server")]
    assert len(servers) == 4 and all(line.endswith(" disabled") for line in servers)


def test_vhosts_route_on_the_host_header_paths_first() -> None:
    web = Service("/web", 0, 10001, mode="http", vhosts=("web.example.com", "www.example.com"))
    api = Service("/api", 0, 10002, mode="http", vhosts=("web.example.com",), path="/api",
                  weight=1)
    tcp = Service("/db", 0, 10003, vhosts=("db.example.com",), mode="tcp")
    text = render_config([web, api, tcp], LAYOUT)
    frontend = section(text, "frontend marathon_http_in")
    rules = [line for line in frontend if line.startswith(("acl", "use_backend"))]
    assert rules == [
        "acl host_api_10002 req.hdr(host),lower,field(1,:) -m str -i web.example.com",
        "acl path_api_10002 path_beg /api",
        "use_backend api_10002 if host_api_10002 path_api_10002",
        "acl host_web_10001 req.hdr(host),lower,field(1,:) -m str -i web.example.com "
        "www.example.com",
        "use_backend web_10001 if host_web_10001",
    ]
    assert render_vhost_map([web, api, tcp]) == (
        "web.example.com /api api_10002\nweb.example.com web_10001\nwww.example.com web_10001\n")
    assert "marathon_https_in" not in text  # no certificates: no HTTPS frontend


def test_certificates_add_an_https_frontend_routing_on_sni() -> None:
    layout = Layout(**{**{f: getattr(LAYOUT, f) for f in Layout.__slots__},
                       "ssl_certs": ("/a.pem", "/b.pem")})
    web = Service("/web", 0, 10001, mode="http", vhosts=("web.example.com",))
    frontend = section(render_config([web], layout), "frontend marathon_https_in")
    assert frontend[0] == "bind *:8443 ssl crt /a.pem crt /b.pem"
    assert "acl host_web_10001 ssl_fc_sni -i web.example.com" in frontend


def test_dont_bind_http_https_leaves_the_shared_frontends_out() -> None:
    layout = Layout(**{**{f: getattr(LAYOUT, f) for f in Layout.__slots__},
                       "bind_http_https": False, "ssl_certs": ("/a.pem",)})
    text = render_config([Service("/web", 0, 10001, mode="http", vhosts=("a",))], layout)
    assert "marathon_http_in" not in text and "marathon_https_in" not in text


def test_sticky_services_set_a_cookie_per_server() -> None:
    backend = section(render_config([Service("/web", 0, 10001, mode="http", sticky=True,
                                             backends=BACKENDS[:1])], LAYOUT),
                      "backend web_10001")
    assert "cookie mesos_sticky insert indirect nocache" in backend
    assert backend[-4] == "server s1 10.0.0.1:31001 cookie s1"


def test_the_same_services_render_the_same_text() -> None:
    services = [Service("/web", 0, 10001, backends=BACKENDS)]
    assert render_config(services, LAYOUT) == render_config(list(services), LAYOUT)
    assert not re.search(r"\{|\}\w", render_config(services, LAYOUT).replace("{ path", ""))


def test_slots_are_the_next_power_of_two_above_the_instances_at_least_four() -> None:
    assert [slot_count(n) for n in (0, 1, 3, 4, 7, 8, 10)] == [4, 4, 4, 8, 8, 16, 16]


def test_instances_keep_their_slots_and_new_ones_take_the_free_ones() -> None:
    web = Service("/web", 0, 10001, backends=BACKENDS)
    first = assign_slots({}, [web])
    assert first == {"web_10001": (*BACKENDS, None, None)}
    new = Backend("host3", "10.0.0.3", 31003, "c")
    second = assign_slots(first, [Service("/web", 0, 10001, backends=(BACKENDS[1], new))])
    assert second == {"web_10001": (new, BACKENDS[1], None, None)}
    # The same instances, the same slots: the same text.
    assert assign_slots(second, [Service("/web", 0, 10001, backends=(new, BACKENDS[1]))]
                        ) == second


def test_an_app_without_instances_has_slots_and_its_first_one_takes_no_reload() -> None:
    empty = [Service("/web", 0, 10001)]
    slots = assign_slots({}, empty)
    assert slots == {"web_10001": (None,) * 4}
    one = [Service("/web", 0, 10001, backends=BACKENDS[:1])]
    assert server_commands(empty, slots, one, assign_slots(slots, one)) == [
        "set server web_10001/s1 addr 10.0.0.1 port 31001", "set server web_10001/s1 state ready"]


def test_more_instances_than_slots_grow_the_backend_keeping_the_slots_in_use() -> None:
    many = tuple(Backend(f"h{i}", f"10.0.1.{i}", 31000 + i, str(i)) for i in range(5))
    first = assign_slots({}, [Service("/web", 0, 10001, backends=many[:3])])
    assert len(first["web_10001"]) == 4
    grown = assign_slots(first, [Service("/web", 0, 10001, backends=many)])
    assert grown["web_10001"][:3] == first["web_10001"][:3] and len(grown["web_10001"]) == 8
    # Fewer instances later keep the eight slots: no reload to shrink them.
    assert len(assign_slots(grown, [Service("/web", 0, 10001)])["web_10001"]) == 8


def test_a_change_of_servers_within_the_slots_is_made_with_set_server() -> None:
    check = HealthCheck("HTTP", "/health", 1, 1, 0)
    before = [Service("/web", 0, 10001, mode="http", health_check=check, backends=BACKENDS),
              Service("/db", 0, 10002, backends=BACKENDS[:1])]
    new = Backend("host3", "10.0.0.3", 31003, "c")
    after = [Service("/web", 0, 10001, mode="http", health_check=check,
                     backends=(BACKENDS[1], new)),
             Service("/db", 0, 10002)]
    slots = assign_slots({}, before)
    assert server_commands(before, slots, after, assign_slots(slots, after)) == [
        "set server web_10001/s1 state maint",
        "set server web_10001/s1 addr 10.0.0.3 port 31003",
        "set server web_10001/s1 state ready", "set server web_10001/s1 health up",
        "set server db_10002/s1 state maint", "set server db_10002/s1 addr 127.0.0.1 port 1",
    ]
    assert server_commands(before, slots, before, slots) == []


def test_the_file_after_set_server_is_the_file_a_reload_would_load() -> None:
    before = [Service("/web", 0, 10001, backends=BACKENDS)]
    after = [Service("/web", 0, 10001, backends=BACKENDS[1:])]
    slots = assign_slots(assign_slots({}, before), after)
    assert section(render_config(after, LAYOUT, slots), "backend web_10001")[2:] == [
        "server s1 127.0.0.1:1 disabled", "server s2 10.0.0.2:31002",
        "server s3 127.0.0.1:1 disabled", "server s4 127.0.0.1:1 disabled"]


def test_anything_but_servers_changing_or_outgrown_slots_take_a_reload() -> None:
    web = Service("/web", 0, 10001, backends=BACKENDS)
    slots = assign_slots({}, [web])

    def commands(after: list[Service]) -> list[str] | None:
        return server_commands([web], slots, after, assign_slots(slots, after))

    assert commands([Service("/web", 0, 10001, balance="leastconn")]) is None
    assert commands([web, Service("/db", 0, 10002)]) is None
    assert commands([]) is None
    many = tuple(Backend(f"h{i}", f"10.0.1.{i}", 31000 + i, str(i)) for i in range(5))
    assert commands([Service("/web", 0, 10001, backends=many)]) is None
    assert commands([Service("/web", 0, 10001, backends=many[:4])]) is not None
