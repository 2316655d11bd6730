"""Fan-out of market events to any number of subscribers, each with a bounded queue.

One upstream event is published once; every subscriber gets the same object. A subscriber that
falls `capacity` events behind is not allowed to grow memory or slow the publisher: its queue is
cleared and it receives a :data:`LAGGED` marker next, so it can re-establish its state (a fresh
depth snapshot, the current tickers) or end the stream. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final, Generic, TypeVar

T = TypeVar("T")


class _Lagged:
    __slots__ = ()

    def __repr__(self) -> str:
        return "LAGGED"


LAGGED: Final = _Lagged()
"""Returned by :meth:`Subscription.get` after events were dropped for this subscriber."""


class Closed(Exception):
    """The feed ended (the symbol was released or the provider is stopping)."""


class Subscription(Generic[T]):
    __slots__ = ("_closed", "_feed", "_lagged", "_queue", "_ready", "capacity", "dropped")

    def __init__(self, feed: Feed[T], capacity: int, ready: asyncio.Event | None = None) -> None:
        self._feed = feed
        self._queue: deque[T] = deque()
        # Several subscriptions may share one event, so one consumer can wait on many feeds.
        self._ready = ready if ready is not None else asyncio.Event()
        self._lagged = False
        self._closed = False
        self.capacity = capacity
        self.dropped = 0

    def push(self, item: T) -> None:
        queue = self._queue
        if len(queue) >= self.capacity:
            self.dropped += len(queue) + 1
            queue.clear()
            self._lagged = True
            self._feed.lag_events += 1
        else:
            queue.append(item)
        self._ready.set()

    async def get(self) -> T | _Lagged:
        """The next event, :data:`LAGGED` after an overflow; raises :class:`Closed` when the feed ends."""
        while True:
            if self._lagged:
                self._lagged = False
                return LAGGED
            if self._queue:
                return self._queue.popleft()
            if self._closed:
                raise Closed
            self._ready.clear()
            await self._ready.wait()

    def poll(self) -> list[T] | _Lagged:
        """Without waiting: :data:`LAGGED` after an overflow, else every queued event (maybe none).

        Raises :class:`Closed` when the feed ended and nothing is left. For consumers that batch,
        or wait on a shared ready event for several subscriptions.
        """
        if self._lagged:
            self._lagged = False
            return LAGGED
        if self._queue:
            items = list(self._queue)
            self._queue.clear()
            return items
        if self._closed:
            raise Closed
        return []

    def end(self) -> None:
        self._closed = True
        self._ready.set()

    def close(self) -> None:
        """Unsubscribe (idempotent)."""
        self._feed.discard(self)
        self.end()


class Feed(Generic[T]):
    """One event source with its subscribers. `on_empty` runs when the last subscriber leaves."""

    def __init__(self, capacity: int = 1024, on_empty: Callable[[], None] | None = None) -> None:
        self._subscribers: set[Subscription[T]] = set()
        self._capacity = capacity
        self._on_empty = on_empty
        self.published = 0
        self.lag_events = 0

    def subscribe(self, capacity: int | None = None, ready: asyncio.Event | None = None) -> Subscription[T]:
        sub = Subscription(self, capacity or self._capacity, ready)
        self._subscribers.add(sub)
        return sub

    def discard(self, sub: Subscription[T]) -> None:
        if sub in self._subscribers:
            self._subscribers.discard(sub)
            if not self._subscribers and self._on_empty is not None:
                self._on_empty()

    def publish(self, item: T) -> None:
        self.published += 1
        for sub in self._subscribers:
            sub.push(item)

    def close(self) -> None:
        """End every subscription (they raise Closed once their queue is drained)."""
        for sub in self._subscribers:
            sub.end()
        self._subscribers.clear()

    def __len__(self) -> int:
        return len(self._subscribers)

    def __bool__(self) -> bool:
        return bool(self._subscribers)
