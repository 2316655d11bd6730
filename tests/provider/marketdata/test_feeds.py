"""Bounded fan-out: every subscriber gets every event, a slow one is told it lagged."""

from __future__ import annotations

import asyncio

import pytest

from provider.marketdata.feeds import LAGGED, Closed, Feed


async def test_every_subscriber_gets_every_event_in_order() -> None:
    feed: Feed[int] = Feed(capacity=10)
    a, b = feed.subscribe(), feed.subscribe()
    for i in range(5):
        feed.publish(i)
    assert [await a.get() for _ in range(5)] == [0, 1, 2, 3, 4]
    assert b.poll() == [0, 1, 2, 3, 4]
    assert b.poll() == []


async def test_overflow_clears_the_queue_and_reports_lag_once() -> None:
    feed: Feed[int] = Feed(capacity=3)
    slow, fast = feed.subscribe(), feed.subscribe(capacity=100)
    for i in range(5):
        feed.publish(i)
    assert await slow.get() is LAGGED
    assert slow.dropped == 4  # three queued plus the one that overflowed
    assert await slow.get() == 4  # the lag is reported once, then events flow again
    feed.publish(5)
    assert await slow.get() == 5
    assert fast.poll() == [0, 1, 2, 3, 4, 5]
    assert feed.lag_events == 1


async def test_get_waits_for_the_next_event() -> None:
    feed: Feed[str] = Feed()
    sub = feed.subscribe()
    waiter = asyncio.create_task(sub.get())
    await asyncio.sleep(0)
    assert not waiter.done()
    feed.publish("x")
    assert await asyncio.wait_for(waiter, 1) == "x"


async def test_last_subscriber_leaving_calls_on_empty_and_close_ends_streams() -> None:
    emptied: list[bool] = []
    feed: Feed[int] = Feed(on_empty=lambda: emptied.append(True))
    a, b = feed.subscribe(), feed.subscribe()
    a.close()
    assert emptied == []
    b.close()
    assert emptied == [True]
    c = feed.subscribe()
    feed.publish(1)
    feed.close()
    assert await c.get() == 1  # queued events are still delivered
    with pytest.raises(Closed):
        await c.get()


async def test_shared_ready_event_wakes_a_consumer_of_several_feeds() -> None:
    ready = asyncio.Event()
    f1: Feed[int] = Feed()
    f2: Feed[int] = Feed()
    s1, s2 = f1.subscribe(ready=ready), f2.subscribe(ready=ready)
    ready.clear()
    f2.publish(7)
    await asyncio.wait_for(ready.wait(), 1)
    assert s1.poll() == [] and s2.poll() == [7]
