"""The hub's tracking rules, with a stand-in stream pool and REST (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from provider.binance.budget import WeightBudget
from provider.errors import InvalidArgument
from provider.marketdata.hub import MarketConfig, MarketDataHub
from provider.marketdata.model import DepthSnapshot, ExchangeInfo, SymbolRules, SymbolStatus


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
