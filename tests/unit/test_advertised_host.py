"""What services advertise as their host: an address they listen on (issue: Debian's hostname
resolves to 127.0.1.1, where a service listening on 127.0.0.1 does not answer)."""

from __future__ import annotations

from mesos_values.addresses import advertised_host


def test_a_given_hostname_wins_then_the_listen_address_then_the_machines_name() -> None:
    assert advertised_host("web.example", "127.0.0.1", "box") == "web.example"
    assert advertised_host(None, "127.0.0.1", "box") == "127.0.0.1"
    assert advertised_host(None, "10.1.2.3", "box") == "10.1.2.3"
    for wildcard in ("0.0.0.0", "::", ""):
        assert advertised_host(None, wildcard, "box") == "box"
