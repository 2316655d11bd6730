"""The provider's MarketData service over real gRPC, against the simulator as venue.

Books are checked against the simulator's own book (its REST depth at the same update id), not
only against the provider's view of itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal

import aiohttp
import grpc
import pytest
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from launcher.system import System

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
async def stub(system: System) -> AsyncIterator[md_grpc.MarketDataAsyncStub]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{system.ports.provider}") as channel:
        yield md_grpc.MarketDataStub(channel)


@pytest.fixture
async def sim(system: System) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(f"http://127.0.0.1:{system.ports.sim}") as session:
        yield session


class ClientBook:
    """What a gRPC client keeps: snapshot, then diffs with verified continuity."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, str] = {}
        self.asks: dict[Decimal, str] = {}
        self.last_id = 0
        self.valid = False

    def on(self, message: md.StreamDepthResponse) -> None:
        if message.HasField("snapshot"):
            snap = message.snapshot
            self.bids = {Decimal(lv.price): lv.quantity for lv in snap.bids}
            self.asks = {Decimal(lv.price): lv.quantity for lv in snap.asks}
            self.last_id = snap.freshness.last_update_id
            self.valid = snap.freshness.in_sync
            return
        diff = message.diff
        assert self.valid, "a diff arrived while the client's copy is void"
        assert diff.first_update_id == self.last_id + 1, f"continuity: {diff.first_update_id} after {self.last_id}"
        for side, levels in ((self.bids, diff.bids), (self.asks, diff.asks)):
            for lv in levels:
                if Decimal(lv.quantity) == 0:
                    side.pop(Decimal(lv.price), None)
                else:
                    side[Decimal(lv.price)] = lv.quantity
        self.last_id = diff.last_update_id

    def top(self, n: int) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        bids = sorted(self.bids.items(), reverse=True)[:n]
        asks = sorted(self.asks.items())[:n]
        return [(p, Decimal(q)) for p, q in bids], [(p, Decimal(q)) for p, q in asks]


def _top(levels: list[list[str]], n: int) -> list[tuple[Decimal, Decimal]]:
    return [(Decimal(p), Decimal(q)) for p, q in levels[:n]]


async def test_stream_depth_matches_the_simulators_true_book(
    stub: md_grpc.MarketDataAsyncStub, sim: aiohttp.ClientSession
) -> None:
    book = ClientBook()
    history: dict[int, tuple[object, object]] = {}
    stream = stub.StreamDepth(md.StreamDepthRequest(symbol="BTCUSDT", limit=1000))
    compared = 0
    snapshots_seen = 0
    progress = asyncio.Event()

    async def consume() -> None:
        nonlocal snapshots_seen
        async for message in stream:
            snapshots_seen += message.HasField("snapshot")
            book.on(message)
            progress.set()
            if book.valid:
                history[book.last_id] = book.top(20)

    consumer = asyncio.create_task(consume())
    try:
        deadline = time.monotonic() + 40
        while compared < 10 and time.monotonic() < deadline:
            async with sim.get("/api/v3/depth", params={"symbol": "BTCUSDT", "limit": "100"}) as response:
                truth = await response.json()
            target = truth["lastUpdateId"]
            # The provider's stream reaches that id within a few 100 ms windows.
            waited = time.monotonic() + 5
            while target not in history and book.last_id < target and time.monotonic() < waited:
                progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(progress.wait(), max(0.0, waited - time.monotonic()))
            if target in history:
                bids, asks = history[target]
                assert bids == _top(truth["bids"], 20), f"bids differ at update id {target}"
                assert asks == _top(truth["asks"], 20), f"asks differ at update id {target}"
                compared += 1
            await asyncio.sleep(0.15)
        assert compared >= 10, f"only {compared} comparisons at shared update ids"
        assert snapshots_seen >= 1
    finally:
        stream.cancel()
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def test_order_book_answer_carries_freshness_and_matches_the_venue(
    stub: md_grpc.MarketDataAsyncStub, sim: aiohttp.ClientSession
) -> None:
    answer = await stub.GetOrderBook(md.GetOrderBookRequest(symbol="ETHUSDT", limit=10), timeout=10)
    assert answer.symbol == "ETHUSDT"
    assert len(answer.bids) == 10 and len(answer.asks) == 10
    assert answer.freshness.in_sync and answer.freshness.last_update_id > 0
    assert answer.freshness.event_time_ms > 0 and 0 <= answer.freshness.age_ms < 10_000
    best_bid, best_ask = Decimal(answer.bids[0].price), Decimal(answer.asks[0].price)
    assert best_bid < best_ask
    prices = [Decimal(lv.price) for lv in answer.bids]
    assert prices == sorted(prices, reverse=True)


async def test_symbol_not_tracked_yet_is_tracked_on_demand(stub: md_grpc.MarketDataAsyncStub) -> None:
    answer = await stub.GetOrderBook(md.GetOrderBookRequest(symbol="bnbusdt", limit=5), timeout=15)
    assert answer.symbol == "BNBUSDT" and answer.freshness.in_sync and len(answer.bids) == 5
    ticker = await stub.GetBookTicker(md.GetBookTickerRequest(symbols=["BNBUSDT"]), timeout=10)
    assert ticker.tickers[0].symbol == "BNBUSDT"


async def test_bad_parameters_are_invalid_argument_naming_the_field(stub: md_grpc.MarketDataAsyncStub) -> None:
    cases: list[tuple[Awaitable[object], str]] = [
        (stub.GetOrderBook(md.GetOrderBookRequest(symbol="NOPEUSDT")), "symbol"),
        (stub.GetOrderBook(md.GetOrderBookRequest(symbol="BTCUSDT", limit=6000)), "limit"),
        (stub.GetKlines(md.GetKlinesRequest(symbol="BTCUSDT")), "interval"),
        (stub.GetRecentTrades(md.GetRecentTradesRequest(symbol="")), "symbol"),
        (stub.GetRecentTrades(md.GetRecentTradesRequest(symbol="BTCUSDT", from_id=-1)), "from_id"),
    ]
    for call, field in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        error = caught.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        status = rpc_status.from_call(error)  # type: ignore[arg-type]  # an AioRpcError is a Call
        assert status is not None
        fields: list[str] = []
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                fields.extend(v.field for v in bad.field_violations)
        assert fields == [field], (fields, error.details())


async def test_rest_backed_calls(stub: md_grpc.MarketDataAsyncStub) -> None:
    klines = await stub.GetKlines(
        md.GetKlinesRequest(symbol="BTCUSDT", interval=md.KLINE_INTERVAL_MINUTE_1, limit=3), timeout=10
    )
    assert 1 <= len(klines.klines) <= 3 and Decimal(klines.klines[-1].close) > 0
    info = await stub.GetExchangeInfo(md.GetExchangeInfoRequest(symbols=["BTCUSDT"]), timeout=10)
    assert [s.symbol for s in info.symbols] == ["BTCUSDT"]
    tick = [f.price.tick_size for f in info.symbols[0].filters if f.HasField("price")]
    assert tick and Decimal(tick[0]) > 0
    avg = await stub.GetAveragePrice(md.GetAveragePriceRequest(symbol="BTCUSDT"), timeout=10)
    assert Decimal(avg.price) > 0
    prices = await stub.GetTickerPrice(md.GetTickerPriceRequest(symbols=["BTCUSDT", "ETHUSDT"]), timeout=10)
    assert {p.symbol for p in prices.prices} == {"BTCUSDT", "ETHUSDT"}
    day = await stub.GetTicker24h(md.GetTicker24hRequest(symbols=["ETHUSDT"]), timeout=10)
    assert day.tickers[0].symbol == "ETHUSDT"
    trades = await stub.GetAggregateTrades(md.GetAggregateTradesRequest(symbol="BTCUSDT", limit=5), timeout=10)
    assert len(trades.trades) <= 5
    deadline = time.monotonic() + 15  # the synthetic market trades every tick
    recent = await stub.GetRecentTrades(md.GetRecentTradesRequest(symbol="BTCUSDT", limit=5), timeout=10)
    while len(recent.trades) < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        recent = await stub.GetRecentTrades(md.GetRecentTradesRequest(symbol="BTCUSDT", limit=5), timeout=10)
    assert len(recent.trades) >= 3
    # From an id on: the same trades, oldest first.
    again = await stub.GetRecentTrades(
        md.GetRecentTradesRequest(symbol="BTCUSDT", from_id=recent.trades[1].id, limit=2), timeout=10
    )
    assert list(again.trades) == list(recent.trades[1:3])


async def test_live_streams_share_upstream_and_deliver(stub: md_grpc.MarketDataAsyncStub) -> None:
    async def first(call: object, want: int) -> list[object]:
        got: list[object] = []
        async for message in call:  # type: ignore[attr-defined]
            got.append(message)
            if len(got) >= want:
                break
        call.cancel()  # type: ignore[attr-defined]
        return got

    trade_calls = [stub.StreamTrades(md.StreamTradesRequest(symbols=["BTCUSDT"])) for _ in range(3)]
    book_ticker = stub.StreamBookTicker(md.StreamBookTickerRequest(symbols=["BTCUSDT", "ETHUSDT"]))
    ticker = stub.StreamTicker(md.StreamTickerRequest(symbols=["ETHUSDT"]))
    results = await asyncio.wait_for(
        asyncio.gather(*(first(c, 2) for c in trade_calls), first(book_ticker, 5), first(ticker, 1)), 30
    )
    for batch in results[:3]:
        trades = [t for message in batch for t in message.trades]  # type: ignore[attr-defined]
        assert trades and all(t.symbol == "BTCUSDT" and Decimal(t.price) > 0 for t in trades)
        ids = [t.id for t in trades]
        assert ids == sorted(ids)
    tickers = [t for message in results[3] for t in message.tickers]  # type: ignore[attr-defined]
    assert {t.symbol for t in tickers} <= {"BTCUSDT", "ETHUSDT"} and all(t.update_id > 0 for t in tickers)
    assert results[4][0].tickers[0].symbol == "ETHUSDT"  # type: ignore[attr-defined]
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.StreamTrades(md.StreamTradesRequest()):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
