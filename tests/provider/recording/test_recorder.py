"""The recorder against a real store, driven by a fake clock, a real SymbolBook and a fake REST."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from provider.binance.budget import WeightBudget
from provider.binance.rest import RestClient
from provider.history.store import HistoryStore
from provider.history.writer import HistoryWriter
from provider.marketdata.hub import TrackedSymbol
from provider.marketdata.model import AggTrade
from provider.marketdata.symbol_book import SymbolBook
from provider.recording.recorder import Recorder

T0 = 1_700_000_000_000  # a second boundary


@dataclass(frozen=True)
class Snap:
    last_update_id: int
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


class Clock:
    def __init__(self) -> None:
        self.ms = T0

    def __call__(self) -> int:
        return self.ms


def agg(agg_id: int, price: str, qty: str, time_ms: int, maker: bool) -> AggTrade:
    return AggTrade(agg_id, price, qty, agg_id * 10, agg_id * 10, time_ms, maker, True)


class FakeRest:
    def __init__(self, tape: list[AggTrade]) -> None:
        self.tape = tape
        self.calls: list[dict[str, Any]] = []
        self.budget = WeightBudget()

    async def agg_trades(
        self,
        symbol: str,
        *,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int | None = None,
    ) -> list[AggTrade]:
        self.calls.append({"from_id": from_id, "start_ms": start_ms, "end_ms": end_ms})
        rows = [
            t
            for t in self.tape
            if (from_id is None or t.agg_id >= from_id)
            and (start_ms is None or t.time_ms >= start_ms)
            and (end_ms is None or t.time_ms <= end_ms)
        ]
        return rows[: limit or 500]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[HistoryStore]:
    s = HistoryStore(tmp_path / "history", levels=5, map_size=64 << 20)
    yield s
    s.close()


@pytest.fixture
async def writer(store: HistoryStore) -> AsyncIterator[HistoryWriter]:
    w = HistoryWriter(store, flush_interval_s=0.05, retention_interval_s=None)
    await w.start()
    yield w
    await w.close()


async def synced_book(clock: Clock) -> SymbolBook:
    fetches: list[int] = []

    async def fetch(symbol: str, limit: int) -> Snap:
        fetches.append(limit)
        if len(fetches) > 1:  # later fetches never answer: the book stays out of sync until closed
            await asyncio.Event().wait()
        return Snap(100, [("99.00", "5.0"), ("98.00", "1.0")], [("101.00", "4.0"), ("102.00", "2.0")])

    book = SymbolBook("BTCUSDT", fetch, snapshot_limit=1000, wall_ms=clock)
    book.on_diff({"U": 95, "u": 100, "b": [], "a": [], "E": T0})
    book.on_diff({"U": 101, "u": 101, "b": [], "a": [], "E": T0})
    assert await book.wait_synced(2.0)
    return book


def tracked(book: SymbolBook) -> TrackedSymbol:
    return TrackedSymbol("BTCUSDT", book, True, 0.0, 0.0)


async def test_a_second_is_recorded_as_snapshot_bar_and_trades(store: HistoryStore, writer: HistoryWriter) -> None:
    clock = Clock()
    book = await synced_book(clock)
    rec = Recorder(store, writer, cast(RestClient, FakeRest([])), levels=5, wall_ms=clock)
    rec.on_tracked(tracked(book))
    clock.ms = T0 + 300
    rec.on_agg_trade("BTCUSDT", agg(7, "99.00", "1.5", T0 + 290, True))  # a sell hits the 99 bid
    book.on_diff({"U": 102, "u": 102, "b": [["99.00", "3.0"], ["97.00", "2.5"]], "a": [["101.00", "0"]], "E": T0})
    rec.tick(T0 + 1000)
    await writer.flush()

    snaps = store.snapshot_records("BTCUSDT", T0, T0 + 2000)
    assert [(s.time_ms, s.last_update_id) for s in snaps] == [(T0 + 1000, 102)]
    assert [b for b, _ in snaps[0].bids] == ["99.00000000", "98.00000000", "97.00000000"]
    assert [a for a, _ in snaps[0].asks] == ["102.00000000"]
    bars = store.activity("BTCUSDT", T0, T0 + 2000)
    assert bars.time_ms.tolist() == [T0]
    assert (bars.bid_added[0], bars.bid_traded[0], bars.bid_removed[0]) == (2.5, 1.5, 0.5)
    assert (bars.ask_removed[0], bars.ask_traded[0], bars.ask_updates[0], bars.bid_updates[0]) == (4.0, 0.0, 1, 2)
    assert (bars.trade_count[0], bars.sell_volume[0], bool(bars.resynced[0])) == (1, 1.5, False)
    assert store.trades("BTCUSDT", T0, T0 + 2000).agg_id.tolist() == [7]


async def test_out_of_sync_book_leaves_a_gap_and_flags_the_resync(store: HistoryStore, writer: HistoryWriter) -> None:
    clock = Clock()
    book = await synced_book(clock)
    rec = Recorder(store, writer, cast(RestClient, FakeRest([])), levels=5, wall_ms=clock)
    rec.on_tracked(tracked(book))
    rec.tick(T0 + 1000)
    clock.ms = T0 + 1500
    book.on_diff({"U": 200, "u": 201, "b": [], "a": [], "E": T0})  # a gap: book discarded
    assert not book.in_sync
    rec.tick(T0 + 2000)
    clock.ms = T0 + 2500
    rec.tick(T0 + 3000)
    await writer.flush()
    await book.close()
    assert store.snapshots("BTCUSDT", T0, T0 + 4000).time_ms.tolist() == [T0 + 1000]
    bars = store.activity("BTCUSDT", T0, T0 + 4000)
    assert bars.time_ms.tolist() == [T0, T0 + 1000]  # the resync second, then nothing while out of sync
    assert bars.resynced.tolist() == [False, True]
    assert store.gaps("BTCUSDT", T0 + 1000, T0 + 4000) == [(T0 + 2000, T0 + 4000)]


async def test_backfill_resumes_after_the_last_stored_trade_and_stops_at_the_live_stream(
    store: HistoryStore, writer: HistoryWriter
) -> None:
    clock = Clock()
    tape = [agg(i, "100.00", "0.1", T0 - 10_000 + i, i % 2 == 0) for i in range(1, 2501)]
    rest = FakeRest(tape)
    book = await synced_book(clock)
    rec = Recorder(store, writer, cast(RestClient, rest), levels=5, backfill_ms=60_000, wall_ms=clock)
    rec.on_tracked(tracked(book))
    rec.on_agg_trade("BTCUSDT", tape[2399])  # live from id 2400 on

    assert await rec.backfill("BTCUSDT") == 2399  # nothing stored: by time, then by id
    assert rest.calls[0]["start_ms"] == T0 - 60_000 and rest.calls[0]["from_id"] is None
    assert [c["from_id"] for c in rest.calls[1:]] == [1001, 2001]
    await writer.flush()
    assert store.last_trade_id("BTCUSDT") == 2399

    rest.calls.clear()
    assert await rec.backfill("BTCUSDT") == 0  # again: resumes from the store, nothing new before live
    assert rest.calls == [{"from_id": 2400, "start_ms": None, "end_ms": None}]
    rec.tick(T0 + 1000)
    await writer.flush()
    ids = store.trades("BTCUSDT", 0, T0 + 10_000).agg_id.tolist()
    assert ids == list(range(1, 2401))  # one row per agg id, the live one included


async def test_started_recorder_ticks_on_second_boundaries(store: HistoryStore, writer: HistoryWriter) -> None:
    book = await synced_book(Clock())
    rec = Recorder(store, writer, cast(RestClient, FakeRest([])), levels=5)
    rec.on_tracked(tracked(book))
    await rec.start()
    try:
        async with asyncio.timeout(5):
            while True:
                if rec.stats().snapshots >= 2:
                    break
                await asyncio.sleep(0.05)
    finally:
        await rec.close()
    assert book.observer is None
    await writer.flush()
    times = store.snapshots("BTCUSDT", 0, 2**62).time_ms.tolist()
    assert len(times) >= 2 and all(t % 1000 == 0 for t in times)
    assert times[1] - times[0] == 1000


async def test_a_hole_in_the_live_tape_is_backfilled_exactly(store: HistoryStore, writer: HistoryWriter) -> None:
    """Aggregate ids are consecutive: a jump (the stream reconnected) is fetched from REST, only it."""
    clock = Clock()
    tape = [agg(i, "100.00", "0.1", T0 - 1_000 + i, False) for i in range(95, 110)]
    rest = FakeRest(tape)
    rec = Recorder(store, writer, cast(RestClient, rest), levels=5, wall_ms=clock)
    rec.on_tracked(tracked(await synced_book(clock)))
    for i in (100, 101, 105):  # 102..104 were missed
        rec.on_agg_trade("BTCUSDT", tape[i - 95])
    assert rec.stats().tape_holes == 1
    assert await rec.backfill("BTCUSDT", 102, 105) == 3
    assert rest.calls == [{"from_id": 102, "start_ms": None, "end_ms": None}]
    rec.tick(T0 + 1000)
    await writer.flush()
    assert store.trades("BTCUSDT", 0, T0 + 10_000).agg_id.tolist() == [100, 101, 102, 103, 104, 105]
