"""Mesos-DNS' naming rules (records/labels and records/generator of mesos-dns)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesos_dns.names import agent_id_tail, domain_fragment, label, task_id_hash


@pytest.mark.parametrize(("name", "expected"), [
    ("web.shop", "web-shop"),  # Marathon's task name of the app /shop/web
    ("Nginx", "nginx"),
    ("my_app", "my-app"),
    ("--lead-and-trail--", "lead-and-trail"),
    ("sp ace!é", "space"),  # characters outside [a-z0-9._-] are dropped
    ("...", ""),
    ("a" * 70, "a" * 63),
    # cut at 63, trailing dashes trimmed and refilled from what follows, as Mesos-DNS does
    ("a" * 62 + "-" + "bcd", "a" * 62 + "b"),
], ids=["marathon-app", "upper", "underscore", "dashes", "dropped", "empty", "long", "refill"])
def test_labels_are_made_as_mesos_dns_makes_them(name: str, expected: str) -> None:
    assert label(name) == expected


@given(st.text(max_size=100))
def test_every_label_is_a_valid_rfc1123_label(name: str) -> None:
    made = label(name)
    assert len(made) <= 63
    assert made == "" or re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", made)


def test_framework_names_keep_their_dots_as_label_separators() -> None:
    assert domain_fragment("marathon") == "marathon"
    assert domain_fragment("My.Frame_work..x") == "my.frame-work.x"


def test_canonical_parts_match_mesos_dns_documented_example() -> None:
    # Mesos-DNS' http.md enumerates task "nginx.48dccce7-..." on agent "...-S1" as
    # nginx-jhy6r-s1.marathon.mesos.
    assert task_id_hash("nginx.48dccce7-90bc-11e6-ae70-70b3d5800001") == "jhy6r"
    assert agent_id_tail("20161010-101010-1234-5050-S1") == "s1"
