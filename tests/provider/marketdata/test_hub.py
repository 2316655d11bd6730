"""The hub's tracking rules, with a stand-in stream pool and REST (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from provider.binance import stream_wire
from provider.binance.budget import WeightBudget
from provider.errors import InvalidArgument
from provider.marketdata.hub import MarketConfig, MarketDataHub
from provider.marketdata.model import (
    STREAM_INTERRUPTED,
    DepthSnapshot,
    ExchangeInfo,
    StreamGap,
    SymbolRules,
    SymbolStatus,
    Trade,
)


class Pool:
    def __init__(self) -> None:
        self.streams: set[str] = set()
        self.log: list[tuple[str, str]] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def subscribe(self, streams: Iterable[str]) -> None:
        for s in streams:
            self.streams.add(s)
            self.log.append(("+", s))

    def unsubscribe(self, streams: Iterable[str]) -> None:
        for s in streams:
            self.streams.discard(s)
            self.log.append(("-", s))

    def stats(self) -> None:
        return None


def rules(symbol: str) -> SymbolRules:
    return SymbolRules(
        symbol, SymbolStatus.TRADING, symbol[:-4], 8, "USDT", 8, 8, 8, (), False, False, False, False,
        False, False, False, False, True, False, (), (), None, (),
    )  # fmt: skip


class Rest:
    def __init__(self) -> None:
        self.budget = WeightBudget()
        self.snapshots: list[str] = []

    async def exchange_info(self, symbols: object = None) -> ExchangeInfo:
        return ExchangeInfo("UTC", 0, (), (), tuple(rules(s) for s in ("BTCUSDT", "ETHUSDT", "BNBUSDT")))

    async def depth(self, symbol: str, limit: int) -> DepthSnapshot:
        self.snapshots.append(symbol)
        return DepthSnapshot(10, (("100", "1"),), (("101", "1"),))


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def hub() -> AsyncIterator[tuple[MarketDataHub, Pool, Clock]]:
    pool, clock = Pool(), Clock()
    config = MarketConfig(pinned=("BTCUSDT",), idle_release_s=60, audit_interval_s=30)
    hub = MarketDataHub(Rest(), lambda handler: pool, config, monotonic=clock)  # type: ignore[arg-type,return-value]
    await hub.start()
    assert await hub.wait_ready(5)
    yield hub, pool, clock
    await hub.close()


async def test_pinned_symbols_are_tracked_and_unknown_ones_refused(hub: tuple[MarketDataHub, Pool, Clock]) -> None:
    h, pool, _ = hub
    assert pool.streams == {"btcusdt@depth@100ms"}
    assert h.validate(" ethusdt ") == "ETHUSDT"
    for bad, why in (("", "required"), ("BTC-USDT", "letters and digits"), ("NOPEUSDT", "unknown symbol")):
        with pytest.raises(InvalidArgument) as caught:
            h.validate(bad)
        assert caught.value.field == "symbol" and why in caught.value.message


async def test_on_demand_symbols_are_released_when_idle_but_not_while_listened_to(
    hub: tuple[MarketDataHub, Pool, Clock],
) -> None:
    h, pool, clock = hub
    h.use("ETHUSDT")
    sub = h.subscribe_trades("ETHUSDT")
    assert {"ethusdt@depth@100ms", "ethusdt@trade"} <= pool.streams
    clock.now += 3600
    h.maintain_once()
    assert h.tracked("ETHUSDT") is not None  # someone listens
    sub.close()  # the last trade listener leaves: its stream goes at once
    assert "ethusdt@trade" not in pool.streams
    clock.now += 59
    h.maintain_once()
    assert h.tracked("ETHUSDT") is not None  # not idle long enough yet
    clock.now += 2
    h.maintain_once()
    for _ in range(3):
        await asyncio.sleep(0)  # the release runs as a task
    assert h.tracked("ETHUSDT") is None and "ethusdt@depth@100ms" not in pool.streams
    clock.now += 10_000
    h.maintain_once()
    assert h.tracked("BTCUSDT") is not None  # pinned: never released


async def test_a_stream_going_down_takes_the_book_out_of_sync_at_once(hub: tuple[MarketDataHub, Pool, Clock]) -> None:
    h, _, _ = hub
    diff: dict[str, Any] = {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 10, "u": 11, "b": [], "a": []}
    h.on_message("btcusdt@depth@100ms", diff)
    tracked = h.tracked("BTCUSDT")
    assert tracked is not None
    assert await tracked.book.wait_synced(5)
    h.on_streams_down(frozenset({"btcusdt@depth@100ms"}))
    assert not tracked.book.in_sync
    h.on_message("nothere@trade", {})  # a late event of a stream no longer routed: counted, ignored
    h.on_message("btcusdt@depth@100ms", {"e": "depthUpdate"})  # unreadable: resync, counted
    stats = h.stats()
    assert stats.unroutable == 1


def trade_event(trade_id: int) -> dict[str, Any]:
    return {"e": "trade", "E": 1, "s": "BTCUSDT", "t": trade_id, "p": "100", "q": "1", "T": 1, "m": False, "M": True}


async def test_trade_listeners_are_told_of_skipped_ids_and_of_a_stream_going_down(
    hub: tuple[MarketDataHub, Pool, Clock],
) -> None:
    h, pool, _ = hub
    sub = h.subscribe_trades("BTCUSDT")
    for trade_id in (7, 8, 11, 12, 14):  # 9-10 and 13 never arrive
        h.on_message("btcusdt@trade", trade_event(trade_id))
    h.on_streams_down(frozenset({"btcusdt@trade"}))
    h.on_message("btcusdt@trade", trade_event(15))  # back: nothing skipped meanwhile
    items = sub.poll()
    assert isinstance(items, list)
    shown = [item.id if isinstance(item, Trade) else item.reason for item in items]
    assert shown == [
        7,
        8,
        "trade ids 9 to 10 did not arrive from the exchange",
        11,
        12,
        "trade id 13 did not arrive from the exchange",
        14,
        STREAM_INTERRUPTED.reason,
        15,
    ]
    gaps = [item for item in items if isinstance(item, StreamGap)]
    assert [(g.first_missing_trade_id, g.last_missing_trade_id) for g in gaps] == [(9, 10), (13, 13), (0, 0)]
    sub.close()  # the last listener leaves: the stream is closed, and a new one starts afresh
    assert "btcusdt@trade" not in pool.streams
    again = h.subscribe_trades("BTCUSDT")
    h.on_message("btcusdt@trade", trade_event(40))
    assert again.poll() == [stream_wire.trade(trade_event(40))]


async def test_ticker_and_book_ticker_listeners_are_told_when_their_stream_goes_down(
    hub: tuple[MarketDataHub, Pool, Clock],
) -> None:
    h, _, _ = hub
    tickers, book_tickers, trades = (
        h.subscribe_tickers("BTCUSDT"),
        h.subscribe_book_tickers("BTCUSDT"),
        h.subscribe_trades("BTCUSDT"),
    )
    h.on_streams_down(frozenset({"btcusdt@ticker", "btcusdt@bookTicker"}))
    assert tickers.poll() == [STREAM_INTERRUPTED]
    assert book_tickers.poll() == [STREAM_INTERRUPTED]
    assert trades.poll() == []  # its stream is still up
