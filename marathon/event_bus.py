"""Delivery of Marathon's events (`marathon.events`) to `/v2/events` listeners.

    core ──publish(event)──▶ EventBus ──▶ one bounded queue per subscriber ──▶ SSE stream
                                          (filtered by `event_type`; a subscriber that falls
                                           `max_backlog` events behind is disconnected, as
                                           Marathon drops slow consumers)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection

from marathon.events import Event

__all__ = ["DEFAULT_MAX_BACKLOG", "EventBus", "EventSubscription"]

DEFAULT_MAX_BACKLOG = 1024


class EventSubscription:
    """One `/v2/events` listener: the events it wants, queued until it reads them."""

    def __init__(self, event_types: Collection[str], max_backlog: int) -> None:
        self.event_types = frozenset(event_types)
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._max_backlog = max_backlog
        self.dropped = False

    def wants(self, item: Event) -> bool:
        return not self.event_types or item["eventType"] in self.event_types

    def offer(self, item: Event) -> bool:
        """Queue `item`; False (and the subscription ends after what it has queued) when
        `max_backlog` events are already waiting."""
        if self.dropped:
            return False
        if self._queue.qsize() >= self._max_backlog:
            self.close()
            return False
        self._queue.put_nowait(item)
        return True

    def close(self) -> None:
        """End the subscription once the listener has read what is queued."""
        if not self.dropped:
            self.dropped = True
            self._queue.put_nowait(None)

    async def __aiter__(self) -> AsyncIterator[Event]:
        while (item := await self._queue.get()) is not None:
            yield item


class EventBus:
    """Delivers published events to every matching subscription (all in one event loop)."""

    def __init__(self, *, max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self._subscriptions: set[EventSubscription] = set()
        self._max_backlog = max_backlog
        self.listeners: list[Callable[[Event], None]] = []

    @property
    def subscribers(self) -> int:
        return len(self._subscriptions)

    def subscribe(self, event_types: Collection[str] = ()) -> EventSubscription:
        """A new subscription to events of `event_types` (all events when empty)."""
        subscription = EventSubscription(event_types, self._max_backlog)
        self._subscriptions.add(subscription)
        return subscription

    def unsubscribe(self, subscription: EventSubscription) -> None:
        self._subscriptions.discard(subscription)
        subscription.close()

    def publish(self, item: Event) -> None:
        """Deliver `item`; subscribers too far behind are disconnected."""
        for listener in self.listeners:
            listener(item)
        for subscription in list(self._subscriptions):
            if subscription.wants(item) and not subscription.offer(item):
                self._subscriptions.discard(subscription)
