"""Resource allocation: the DRF allocator and its sorters (pure, synchronous, no I/O)."""

from __future__ import annotations

from mesos_master.allocator.allocator import DEFAULT_MIN_ALLOCATABLE, Allocator, OfferCallback
from mesos_master.allocator.sorter import DRFSorter, RandomSorter, Sorter

__all__ = [
    "DEFAULT_MIN_ALLOCATABLE",
    "Allocator",
    "DRFSorter",
    "OfferCallback",
    "RandomSorter",
    "Sorter",
]
