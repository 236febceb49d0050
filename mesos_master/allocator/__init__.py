"""Resource allocation: the hierarchical DRF allocator and its sorters (pure, no I/O)."""

from __future__ import annotations

from mesos_master.allocator.allocator import (
    DEFAULT_MIN_ALLOCATABLE,
    Allocator,
    Grant,
    OfferCallback,
    SorterFactory,
)
from mesos_master.allocator.sorter import SORTERS, ClusterTotal, DRFSorter, RandomSorter, Sorter

__all__ = [
    "DEFAULT_MIN_ALLOCATABLE",
    "SORTERS",
    "Allocator",
    "ClusterTotal",
    "DRFSorter",
    "Grant",
    "OfferCallback",
    "RandomSorter",
    "Sorter",
    "SorterFactory",
]
