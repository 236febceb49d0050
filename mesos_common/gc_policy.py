"""Garbage collection for services that hold a large, long-lived state.

CPython's full (generation 2) collection walks every object the collector tracks. A master
holding 10,000 agents spent 0.1 to 0.8 s per full collection, and had a dozen of them while
the agents registered (CPython starts one whenever the objects that survived since the last
one grow by a quarter): the whole process stood still meanwhile (ADR 0008).

`FreezingCollector` moves the survivors of each full collection to the permanent generation
(`gc.freeze()`), so later collections walk only what was created since. Reference counting
still frees frozen objects as usual; only reference cycles that become garbage after being
frozen wait for the next sweep, which unfreezes everything and runs one full collection
(every `sweep_interval` seconds, 10 minutes by default).
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

DEFAULT_SWEEP_INTERVAL = 600.0


class FreezingCollector:
    """Freezes the survivors of every full collection; see the module docstring."""

    def __init__(self, sweep_interval: float = DEFAULT_SWEEP_INTERVAL) -> None:
        self.sweep_interval = sweep_interval
        self._sweeping = False
        self.installed = False

    def install(self) -> None:
        """Start freezing the survivors of full collections (idempotent)."""
        if not self.installed:
            gc.callbacks.append(self._collected)
            self.installed = True

    def uninstall(self) -> None:
        """Stop freezing and give frozen objects back to the collector."""
        if self.installed:
            gc.callbacks.remove(self._collected)
            self.installed = False
            gc.unfreeze()

    def sweep(self) -> int:
        """Collect everything once, frozen objects included; returns what was collected."""
        self._sweeping = True
        try:
            gc.unfreeze()
            collected = gc.collect()
        finally:
            self._sweeping = False
        gc.freeze()
        return collected

    async def run(self) -> None:
        """Install, then sweep every `sweep_interval` seconds until cancelled (uninstalls)."""
        self.install()
        try:
            while True:
                await asyncio.sleep(self.sweep_interval)
                self.sweep()
        finally:
            self.uninstall()

    def _collected(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "stop" and info["generation"] == 2 and not self._sweeping:
            gc.freeze()
