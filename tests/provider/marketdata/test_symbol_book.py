"""The book shell obeys BookSync and publishes a protocol a subscriber can keep an exact copy with.

Driven with hand-written diffs and a fetch function the test controls (no network).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import pytest
from binance.provider.v1 import market_data_pb2 as md

from provider.errors import ExchangeUnavailable, RateLimited
from provider.marketdata.feeds import Subscription
from provider.marketdata.model import DepthSnapshot
from provider.marketdata.symbol_book import BookOutOfSync, BookSynced, DepthDiffEvent, SymbolBook
from provider.service.market_data import DiffMessages, depth_messages, merge_diffs


class Venue:
    """Snapshot answers queued by the test: a DepthSnapshot, or an exception to raise."""

    def __init__(self) -> None:
        self.answers: asyncio.Queue[DepthSnapshot | Exception] = asyncio.Queue()
        self.calls: list[tuple[str, int]] = []

    async def fetch(self, symbol: str, limit: int) -> DepthSnapshot:
        self.calls.append((symbol, limit))
        answer = await self.answers.get()
        if isinstance(answer, Exception):
            raise answer
        return answer


Levels = list[list[str]]


def diff(first: int, last: int, bids: Levels | None = None, asks: Levels | None = None) -> dict[str, Any]:
    event = {"e": "depthUpdate", "E": 1_000 + last, "s": "BTCUSDT", "U": first, "u": last}
    return {**event, "b": bids or [], "a": asks or []}


SNAP = DepthSnapshot(10, (("100.00", "1.0"), ("99.00", "2.0")), (("101.00", "1.5"), ("102.00", "3.0")))


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.001)


@pytest.fixture
async def venue_book() -> AsyncIterator[tuple[Venue, SymbolBook]]:
    venue = Venue()
    book = SymbolBook("BTCUSDT", venue.fetch, snapshot_limit=1000)
    yield venue, book
    await book.close()


async def test_bridge_then_contiguous_diffs_are_published(venue_book: tuple[Venue, SymbolBook]) -> None:
    venue, book = venue_book
    sub = book.feed.subscribe()
    book.on_diff(diff(8, 12, bids=[["100.00", "1.1"]]))  # buffered: it bridges lastUpdateId 10
    await until(lambda: venue.calls)
    assert venue.calls == [("BTCUSDT", 1000)]
    venue.answers.put_nowait(SNAP)
    await until(lambda: book.in_sync)
    synced = sub.poll()
    assert isinstance(synced, list) and len(synced) == 1 and isinstance(synced[0], BookSynced)
    assert synced[0].last_update_id == 12
    book.on_diff(diff(13, 15, asks=[["101.00", "0"]]))
    events = sub.poll()
    assert isinstance(events, list) and len(events) == 1
    event = events[0]
    assert isinstance(event, DepthDiffEvent)
    assert (event.first_update_id, event.last_update_id) == (13, 15)
    view = book.view(5)
    assert view.bids[0] == ("100.00", "1.1") and view.asks[0] == ("102.00", "3.0")
    assert view.in_sync and view.last_update_id == 15 and view.event_time_ms == 1015


async def test_gap_discards_the_book_at_once_and_resyncs(venue_book: tuple[Venue, SymbolBook]) -> None:
    venue, book = venue_book
    book.on_diff(diff(10, 11))
    venue.answers.put_nowait(SNAP)
    await until(lambda: book.in_sync)
    sub = book.feed.subscribe()
    book.on_diff(diff(13, 14))  # 12 is missing
    assert not book.in_sync
    events = sub.poll()
    assert isinstance(events, list) and isinstance(events[0], BookOutOfSync) and events[0].reason == "gap_detected"
    await until(lambda: len(venue.calls) == 2)
    venue.answers.put_nowait(DepthSnapshot(14, SNAP.bids, SNAP.asks))
    book.on_diff(diff(15, 16))
    await until(lambda: book.in_sync)
    assert book.view(1).last_update_id == 16


async def test_stream_down_means_out_of_sync_immediately(venue_book: tuple[Venue, SymbolBook]) -> None:
    venue, book = venue_book
    book.on_diff(diff(10, 11))
    venue.answers.put_nowait(SNAP)
    await until(lambda: book.in_sync)
    book.stream_down()
    assert not book.in_sync and book.stats.stream_resets == 1


async def test_failed_snapshot_waits_as_told_then_retries(venue_book: tuple[Venue, SymbolBook]) -> None:
    venue, book = venue_book
    book.on_diff(diff(10, 11))
    venue.answers.put_nowait(RateLimited("429", retry_after_ms=50))
    venue.answers.put_nowait(ExchangeUnavailable("down"))
    venue.answers.put_nowait(SNAP)
    started = asyncio.get_running_loop().time()
    await until(lambda: book.in_sync, timeout=3)
    assert asyncio.get_running_loop().time() - started >= 0.05 + 0.2  # Retry-After, then the backoff
    assert len(venue.calls) == 3 and book.stats.snapshot_failures == 2


async def test_unreadable_event_resynchronises(venue_book: tuple[Venue, SymbolBook]) -> None:
    venue, book = venue_book
    book.on_diff(diff(10, 11))
    venue.answers.put_nowait(SNAP)
    await until(lambda: book.in_sync)
    book.on_diff({"e": "depthUpdate", "U": 12})
    assert not book.in_sync and book.stats.malformed_events == 1


# ------------------------------------------------------------------ the StreamDepth protocol


async def collect(gen: AsyncGenerator[md.StreamDepthResponse, None], n: int) -> list[md.StreamDepthResponse]:
    out = []
    async for message in gen:
        out.append(message)
        if len(out) == n:
            break
    return out


def subscribe(book: SymbolBook) -> Subscription[Any]:
    return book.feed.subscribe()


class Collector:
    """Runs a subscriber's message generator from the start, as a gRPC stream would."""

    def __init__(self, gen: AsyncGenerator[md.StreamDepthResponse, None]) -> None:
        self.gen = gen
        self.items: list[md.StreamDepthResponse] = []
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async for message in self.gen:
            self.items.append(message)

    async def wait(self, n: int) -> list[md.StreamDepthResponse]:
        await until(lambda: len(self.items) >= n)
        return self.items

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_subscriber_gets_snapshot_diffs_void_and_resync(venue_book: tuple[Venue, SymbolBook]) -> None:
    venue, book = venue_book
    out = Collector(depth_messages("BTCUSDT", book, subscribe(book), 10, 0.0, DiffMessages()))
    book.on_diff(diff(10, 11, bids=[["99.50", "4"]]))
    venue.answers.put_nowait(SNAP)
    await until(lambda: book.in_sync)
    await out.wait(1)
    book.on_diff(diff(12, 13, bids=[["99.50", "0"]]))
    book.on_diff(diff(15, 15))  # gap: out of sync
    first = await out.wait(3)
    assert first[0].snapshot.reason == md.SNAPSHOT_REASON_INITIAL
    assert first[0].snapshot.freshness.last_update_id == 11 and first[0].snapshot.freshness.in_sync
    assert [lv.price for lv in first[0].snapshot.bids] == ["100.00", "99.50", "99.00"]
    assert (first[1].diff.first_update_id, first[1].diff.last_update_id) == (12, 13)
    assert first[2].snapshot.reason == md.SNAPSHOT_REASON_RESYNC and not first[2].snapshot.freshness.in_sync
    assert len(first[2].snapshot.bids) == 0
    venue.answers.put_nowait(DepthSnapshot(15, SNAP.bids, SNAP.asks))
    book.on_diff(diff(16, 16))
    again = await out.wait(4)
    assert again[3].snapshot.reason == md.SNAPSHOT_REASON_RESYNC and again[3].snapshot.freshness.in_sync
    assert again[3].snapshot.freshness.last_update_id == 16
    book.on_diff(diff(17, 17))
    assert (await out.wait(5))[4].diff.first_update_id == 17
    assert len(out.items) == 5
    await out.close()


async def test_queued_diffs_already_in_the_snapshot_are_skipped(venue_book: tuple[Venue, SymbolBook]) -> None:
    venue, book = venue_book
    sub = subscribe(book)  # subscribed before the sync, its consumer starts late
    book.on_diff(diff(10, 11))
    venue.answers.put_nowait(SNAP)
    await until(lambda: book.in_sync)
    for i in range(12, 16):  # queued behind BookSynced; the first snapshot is already at 15
        book.on_diff(diff(i, i))
    out = Collector(depth_messages("BTCUSDT", book, sub, 10, 0.0, DiffMessages()))
    messages = await out.wait(1)
    assert messages[0].snapshot.freshness.last_update_id == 15
    book.on_diff(diff(16, 16))
    messages = await out.wait(2)
    assert messages[1].diff.first_update_id == 16 and len(messages) == 2
    await out.close()


async def test_lagging_subscriber_gets_a_fresh_snapshot(venue_book: tuple[Venue, SymbolBook]) -> None:
    venue, book = venue_book
    book.on_diff(diff(10, 11))
    venue.answers.put_nowait(SNAP)
    await until(lambda: book.in_sync)
    sub = book.feed.subscribe(capacity=2)
    gen = depth_messages("BTCUSDT", book, sub, 10, 0.0, DiffMessages())
    initial = await collect(gen, 1)
    assert initial[0].snapshot.reason == md.SNAPSHOT_REASON_INITIAL
    for i in range(12, 20):
        book.on_diff(diff(i, i))
    lagged = await collect(gen, 1)
    assert lagged[0].snapshot.reason == md.SNAPSHOT_REASON_LAGGED
    assert lagged[0].snapshot.freshness.last_update_id == 19
    await gen.aclose()


def test_merged_diffs_keep_the_last_quantity_and_the_id_range() -> None:
    a = DepthDiffEvent(5, 6, 1, [["1", "2"], ["2", "1"]], [])
    b = DepthDiffEvent(7, 9, 2, [["1", "0"]], [["3", "4"]])
    merged = merge_diffs([a, b])
    assert (merged.first_update_id, merged.last_update_id, merged.event_time_ms) == (5, 9, 2)
    assert merged.bids == [["1", "0"], ["2", "1"]] and merged.asks == [["3", "4"]]


@pytest.mark.parametrize("batch_s", [0.0, 0.5], ids=["100ms", "batched"])
async def test_an_audit_that_moves_the_books_edges_refreshes_subscribers_copies(batch_s: float) -> None:
    """A book cut at its snapshot's depth regains depth when an audit adopts a fresh snapshot: a
    subscriber holding the old edges gets the book again, as it was at that point of the stream,
    and its diffs go on without a gap (a batching subscriber first sends what it held back)."""
    venue = Venue()
    book = SymbolBook("BTCUSDT", venue.fetch, snapshot_limit=2)  # 2 levels a side: each side cut
    try:
        sub = subscribe(book)
        book.on_diff(diff(10, 11))
        venue.answers.put_nowait(SNAP)
        await until(lambda: book.in_sync)
        gen = depth_messages("BTCUSDT", book, sub, 10, batch_s, DiffMessages())
        first = (await collect(gen, 1))[0].snapshot
        assert [lv.price for lv in first.bids] == ["100.00", "99.00"]
        assert (first.bid_floor, first.ask_ceiling) == ("99.00000000", "102.00000000")

        # While the subscriber is not reading: the bid side thins towards its edge, an audit moves
        # the edge down to 98, and the book goes on.
        book.on_diff(diff(12, 12, bids=[["99.00", "0"]]))
        assert book.request_audit()
        venue.answers.put_nowait(DepthSnapshot(12, (("100.00", "1.0"), ("98.00", "5.0")), SNAP.asks))
        await until(lambda: book.stats.refreshes == 1)
        book.on_diff(diff(13, 13, bids=[["100.00", "2.0"], ["97.00", "1.0"]]))  # 97: beyond the new edge

        messages = await collect(gen, 3)
        assert (messages[0].diff.first_update_id, messages[0].diff.last_update_id) == (12, 12)
        refresh = messages[1].snapshot
        assert refresh.reason == md.SNAPSHOT_REASON_REFRESH and refresh.freshness.in_sync
        assert refresh.freshness.last_update_id == 12  # where the audit moved the edge, not where the book is
        assert [(lv.price, lv.quantity) for lv in refresh.bids] == [("100.00", "1.0"), ("98.00", "5.0")]
        assert refresh.bid_floor == "98.00000000" and refresh.ask_ceiling == "102.00000000"
        assert messages[2].diff.first_update_id == 13  # continuity: straight on from the refresh
        assert book.sync.book.bids() == [("100.00", "2.0"), ("98.00", "5.0")]

        # An audit that leaves the edges where they are changes nothing for subscribers.
        assert book.request_audit()
        venue.answers.put_nowait(DepthSnapshot(13, (("100.00", "2.0"), ("98.00", "5.0")), SNAP.asks))
        await until(lambda: book.sync.counters.audits_ok == 2)
        book.on_diff(diff(14, 14))
        assert (await collect(gen, 1))[0].diff.first_update_id == 14 and book.stats.refreshes == 1
        await gen.aclose()
    finally:
        await book.close()


async def test_a_subscriber_that_reads_late_is_told_to_discard_its_copy_even_if_the_book_is_back(
    venue_book: tuple[Venue, SymbolBook],
) -> None:
    """The provider's book can lose sync and regain it before a busy subscriber reads the notice:
    the notice still says "not in sync" (it carries no levels), and the new snapshot follows."""
    venue, book = venue_book
    sub = subscribe(book)
    book.on_diff(diff(10, 11))
    venue.answers.put_nowait(SNAP)
    await until(lambda: book.in_sync)
    gen = depth_messages("BTCUSDT", book, sub, 10, 0.0, DiffMessages())
    assert (await collect(gen, 1))[0].snapshot.freshness.last_update_id == 11
    book.on_diff(diff(14, 14))  # a gap: out of sync, 14 buffered
    venue.answers.put_nowait(DepthSnapshot(14, SNAP.bids, SNAP.asks))
    book.on_diff(diff(15, 15))
    await until(lambda: book.in_sync)  # back in sync before the subscriber reads anything
    notice, again = await collect(gen, 2)
    assert notice.snapshot.reason == md.SNAPSHOT_REASON_RESYNC and len(notice.snapshot.bids) == 0
    assert not notice.snapshot.freshness.in_sync
    assert again.snapshot.reason == md.SNAPSHOT_REASON_RESYNC and again.snapshot.freshness.in_sync
    assert again.snapshot.freshness.last_update_id == 15 and len(again.snapshot.bids) == 2
    await gen.aclose()
