"""FreezingCollector: survivors of full collections are frozen; a sweep reclaims the cycles
that died frozen."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from mesos_common.gc_policy import FreezingCollector


class Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


@pytest.fixture
def collector() -> Iterator[FreezingCollector]:
    collector = FreezingCollector()
    collector.install()
    try:
        yield collector
    finally:
        collector.uninstall()


def test_a_full_collection_freezes_its_survivors(collector: FreezingCollector) -> None:
    gc.collect()
    assert gc.get_freeze_count() > 0
    collector.uninstall()
    assert gc.get_freeze_count() == 0 and not collector.installed


def test_a_cycle_that_dies_frozen_waits_for_the_sweep(collector: FreezingCollector) -> None:
    node = Node()
    alive = weakref.ref(node)
    gc.collect()  # node survives and is frozen
    del node
    gc.collect()
    assert alive() is not None  # frozen: full collections no longer look at it
    assert collector.sweep() >= 1
    assert alive() is None
    assert gc.get_freeze_count() > 0  # the survivors of the sweep are frozen again


def test_without_the_policy_the_cycle_is_collected_at_once() -> None:
    node = Node()
    alive = weakref.ref(node)
    gc.collect()
    del node
    gc.collect()
    assert alive() is None
