"""The simulated venue: the matching engine plus everything derived from it for market data.

Every engine call goes through here, so each book change and trade reaches the depth windows,
the trade tape, the candles and the stream hub exactly once, in order. Pure of IO apart from
`StreamHub.publish` (which never blocks); the clock is passed in.
"""

from __future__ import annotations

import sys
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

import orjson

from exchange_sim.hub import StreamHub
from exchange_sim.market.candles import CandleStore, fmt, interval_close, interval_open
from exchange_sim.market.depth_stream import DepthWindow, partial_depth
from exchange_sim.matching import BookChange, CancelAllResult, MatchingEngine, OrderResult, Side, SymbolSpec, Trade

TAPE_LENGTH = 10_000  # recent trades and aggregate trades kept per symbol for REST
KLINE_STREAM_INTERVALS = (
    "1s",
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
    "3d",
    "1w",
    "1M",
)


# Tape entries are plain tuples of ints, strs and bools, prices and quantities already formatted as
# the REST answers print them: CPython's GC stops tracking such tuples (NamedTuples and dataclasses it
# keeps tracking, which made full collections slow: 201 symbols hold 4 million entries), and they take
# about a quarter less memory than dataclasses of Decimals.
TradeEntry = tuple[int, str, str, str, int, bool]  # trade id, price, qty, quote qty, time, is buyer maker
AggTradeEntry = tuple[int, str, str, int, int, int, bool]  # agg id, price, qty, first id, last id, time, buyer maker
# The fields of an AggTradeEntry that requests select on (Final: mypy then knows their types).
AGG_ID: Final = 0
AGG_TIME: Final = 5


def agg_trade_fields(agg: AggTradeEntry) -> dict[str, object]:
    """An aggregate trade as `GET /api/v3/aggTrades` and the ``@aggTrade`` stream show it."""
    agg_id, price, qty, first_trade_id, last_trade_id, time, is_buyer_maker = agg
    return {
        "a": agg_id,
        "p": price,
        "q": qty,
        "f": first_trade_id,
        "l": last_trade_id,
        "T": time,
        "m": is_buyer_maker,
        "M": True,
    }


@dataclass
class SymbolFeed:
    """Market data state of one symbol derived from engine results."""

    symbol: str
    stream_prefix: str
    depth_100ms: DepthWindow = field(default_factory=DepthWindow)
    depth_1000ms: DepthWindow = field(default_factory=DepthWindow)
    trades: deque[TradeEntry] = field(default_factory=lambda: deque(maxlen=TAPE_LENGTH))
    agg_trades: deque[AggTradeEntry] = field(default_factory=lambda: deque(maxlen=TAPE_LENGTH))
    candles: CandleStore = field(default_factory=CandleStore)
    next_agg_id: int = 1
    last_book_ticker: tuple[object, ...] = ()
    kline_opens: dict[str, int] = field(default_factory=dict)  # interval -> open time last streamed


class Venue:
    def __init__(self, engine: MatchingEngine, hub: StreamHub) -> None:
        self.engine = engine
        self.hub = hub
        self.feeds: dict[str, SymbolFeed] = {}
        for spec in engine.symbols():
            self._add_feed(spec)

    def _add_feed(self, spec: SymbolSpec) -> None:
        self.feeds[spec.symbol] = SymbolFeed(spec.symbol, spec.symbol.lower())

    def add_symbol(self, spec: SymbolSpec) -> None:
        self.engine.add_symbol(spec)
        self._add_feed(spec)

    # ----------------------------------------------------------------- engine results

    def apply(self, result: OrderResult | CancelAllResult) -> None:
        """Route what an engine call did to the market-data side."""
        feed = self.feeds[result.symbol]
        if result.book_changes:
            self._book_changes(feed, result.book_changes)
        if isinstance(result, OrderResult) and result.trades:
            self._trades(feed, result.trades)

    def _book_changes(self, feed: SymbolFeed, changes: tuple[BookChange, ...]) -> None:
        prefix = feed.stream_prefix
        fast = self.hub.has_subscribers(prefix + "@depth@100ms")
        slow = self.hub.has_subscribers(prefix + "@depth")
        if fast or slow:
            for change in changes:
                is_bid = change.side is Side.BUY
                price, qty = fmt(change.price), fmt(change.qty)
                if fast:
                    feed.depth_100ms.add(change.update_id, is_bid, price, qty)
                if slow:
                    feed.depth_1000ms.add(change.update_id, is_bid, price, qty)
        # Windows of streams nobody listens to start afresh when someone subscribes.
        if not fast:
            feed.depth_100ms = DepthWindow()
        if not slow:
            feed.depth_1000ms = DepthWindow()
        stream = prefix + "@bookTicker"
        if self.hub.has_subscribers(stream):
            ticker = self.engine.book_ticker(feed.symbol)
            key = (ticker.bid_price, ticker.bid_qty, ticker.ask_price, ticker.ask_qty)
            if key != feed.last_book_ticker:
                feed.last_book_ticker = key
                self.hub.publish(
                    stream,
                    orjson.dumps(
                        {
                            "u": ticker.update_id,
                            "s": feed.symbol,
                            "b": _opt(ticker.bid_price),
                            "B": _opt(ticker.bid_qty),
                            "a": _opt(ticker.ask_price),
                            "A": _opt(ticker.ask_qty),
                        }
                    ),
                )

    def _trades(self, feed: SymbolFeed, trades: tuple[Trade, ...]) -> None:
        prefix = feed.stream_prefix
        publish_trades = self.hub.has_subscribers(prefix + "@trade")
        publish_aggs = self.hub.has_subscribers(prefix + "@aggTrade")
        # Prices repeat trade after trade (the engine shares one Decimal per price): share the string too.
        entries = [
            (t.trade_id, sys.intern(fmt(t.price)), fmt(t.qty), fmt(t.quote_qty), t.time, t.is_buyer_maker)
            for t in trades
        ]
        # One aggregate per run of fills of this taker order at one price.
        start = 0
        for end in range(1, len(trades) + 1):
            if end < len(trades) and trades[end].price == trades[start].price:
                continue
            agg = self._aggregate(feed, trades[start:end], entries[start])
            if publish_aggs:
                self.hub.publish(
                    prefix + "@aggTrade",
                    orjson.dumps({"e": "aggTrade", "E": agg[AGG_TIME], "s": feed.symbol, **agg_trade_fields(agg)}),
                )
            start = end
        feed.trades.extend(entries)
        for trade in trades:
            feed.candles.add_trade(trade.trade_id, trade.price, trade.qty, trade.time, trade.is_buyer_maker)
            if publish_trades:
                self.hub.publish(
                    prefix + "@trade",
                    orjson.dumps(
                        {
                            "e": "trade",
                            "E": trade.time,
                            "s": feed.symbol,
                            "t": trade.trade_id,
                            "p": fmt(trade.price),
                            "q": fmt(trade.qty),
                            "T": trade.time,
                            "m": trade.is_buyer_maker,
                            "M": True,
                        }
                    ),
                )

    def _aggregate(self, feed: SymbolFeed, run: tuple[Trade, ...], first: TradeEntry) -> AggTradeEntry:
        """`first`: the tape entry of the run's first trade, whose strings the aggregate shares."""
        trade_id, price, qty, _, time, is_buyer_maker = first
        if len(run) > 1:
            qty = fmt(sum((t.qty for t in run), Decimal(0)))
        agg = (feed.next_agg_id, price, qty, trade_id, run[-1].trade_id, time, is_buyer_maker)
        feed.next_agg_id += 1
        feed.agg_trades.append(agg)
        return agg

    # ----------------------------------------------------------------- timed streams

    def flush_100ms(self, now_ms: int) -> None:
        for feed in self.feeds.values():
            payload = feed.depth_100ms.take(feed.symbol, now_ms)
            if payload is not None:
                self.hub.publish(feed.stream_prefix + "@depth@100ms", payload)
            for levels in (5, 10, 20):
                stream = f"{feed.stream_prefix}@depth{levels}@100ms"
                if self.hub.has_subscribers(stream):
                    self.hub.publish(stream, self._partial(feed.symbol, levels))

    def flush_1000ms(self, now_ms: int) -> None:
        for feed in self.feeds.values():
            prefix = feed.stream_prefix
            payload = feed.depth_1000ms.take(feed.symbol, now_ms)
            if payload is not None:
                self.hub.publish(prefix + "@depth", payload)
            for levels in (5, 10, 20):
                stream = f"{prefix}@depth{levels}"
                if self.hub.has_subscribers(stream):
                    self.hub.publish(stream, self._partial(feed.symbol, levels))
            if self.hub.has_subscribers(prefix + "@ticker"):
                self.hub.publish(prefix + "@ticker", orjson.dumps(self.ticker_event(feed.symbol, now_ms)))
            if self.hub.has_subscribers(prefix + "@miniTicker"):
                self.hub.publish(prefix + "@miniTicker", orjson.dumps(self.mini_ticker_event(feed.symbol, now_ms)))
            for interval in KLINE_STREAM_INTERVALS:
                stream = f"{prefix}@kline_{interval}"
                if not self.hub.has_subscribers(stream):
                    feed.kline_opens.pop(interval, None)
                    continue
                opened = interval_open(interval, now_ms)
                previous = feed.kline_opens.get(interval)
                if previous is not None and previous != opened:
                    # As Binance does: one last update of the candle that just closed, with x=true.
                    closes = interval_close(interval, previous)
                    final = self.kline_event(feed.symbol, interval, closes, event_ms=now_ms, closed=True)
                    self.hub.publish(stream, orjson.dumps(final))
                feed.kline_opens[interval] = opened
                self.hub.publish(stream, orjson.dumps(self.kline_event(feed.symbol, interval, now_ms)))

    def _partial(self, symbol: str, levels: int) -> bytes:
        last_id, bids, asks = self.engine.depth(symbol, levels)
        return partial_depth(last_id, [(fmt(p), fmt(q)) for p, q in bids], [(fmt(p), fmt(q)) for p, q in asks])

    # ----------------------------------------------------------------- derived views (REST and streams)

    def ticker_24h(self, symbol: str, now_ms: int) -> dict[str, object]:
        """The FULL `GET /api/v3/ticker/24hr` object of a symbol."""
        feed = self.feeds[symbol]
        window = feed.candles.window(now_ms - 86_400_000, now_ms)
        ticker = self.engine.book_ticker(symbol)
        zero = Decimal(0)
        last = feed.candles.last_price or zero
        if window is None:
            open_, high, low, volume, quote, count, first, last_id = last, last, last, zero, zero, 0, -1, -1
        else:
            open_, high, low = window.open, window.high, window.low
            volume, quote, count = window.volume, window.quote_volume, window.trades
            first, last_id = window.first_trade_id, window.last_trade_id
        change = last - open_
        percent = (change / open_ * 100) if open_ else zero
        return {
            "symbol": symbol,
            "priceChange": fmt(change),
            "priceChangePercent": f"{percent:.3f}",
            "weightedAvgPrice": fmt(quote / volume if volume else zero),
            "prevClosePrice": fmt(open_),
            "lastPrice": fmt(last),
            "lastQty": fmt(feed.candles.last_qty),
            "bidPrice": _opt(ticker.bid_price),
            "bidQty": _opt(ticker.bid_qty),
            "askPrice": _opt(ticker.ask_price),
            "askQty": _opt(ticker.ask_qty),
            "openPrice": fmt(open_),
            "highPrice": fmt(high),
            "lowPrice": fmt(low),
            "volume": fmt(volume),
            "quoteVolume": fmt(quote),
            "openTime": now_ms - 86_400_000,
            "closeTime": now_ms,
            "firstId": first,
            "lastId": last_id,
            "count": count,
        }

    def ticker_event(self, symbol: str, now_ms: int) -> dict[str, object]:
        t = self.ticker_24h(symbol, now_ms)
        return {
            "e": "24hrTicker",
            "E": now_ms,
            "s": symbol,
            "p": t["priceChange"],
            "P": t["priceChangePercent"],
            "w": t["weightedAvgPrice"],
            "x": t["prevClosePrice"],
            "c": t["lastPrice"],
            "Q": t["lastQty"],
            "b": t["bidPrice"],
            "B": t["bidQty"],
            "a": t["askPrice"],
            "A": t["askQty"],
            "o": t["openPrice"],
            "h": t["highPrice"],
            "l": t["lowPrice"],
            "v": t["volume"],
            "q": t["quoteVolume"],
            "O": t["openTime"],
            "C": t["closeTime"],
            "F": t["firstId"],
            "L": t["lastId"],
            "n": t["count"],
        }

    def mini_ticker_event(self, symbol: str, now_ms: int) -> dict[str, object]:
        t = self.ticker_24h(symbol, now_ms)
        return {
            "e": "24hrMiniTicker",
            "E": now_ms,
            "s": symbol,
            "c": t["lastPrice"],
            "o": t["openPrice"],
            "h": t["highPrice"],
            "l": t["lowPrice"],
            "v": t["volume"],
            "q": t["quoteVolume"],
        }

    def kline_event(
        self, symbol: str, interval: str, now_ms: int, *, event_ms: int | None = None, closed: bool = False
    ) -> dict[str, object]:
        """The kline of the candle containing `now_ms`; `closed`: its final update (``x`` true)."""
        candle = self.feeds[symbol].candles.current_kline(interval, now_ms)
        opened = interval_open(interval, now_ms)
        last = self.feeds[symbol].candles.last_price or Decimal(0)
        zero = "0.00000000"
        k: dict[str, object] = {
            "t": opened,
            "T": interval_close(interval, opened),
            "s": symbol,
            "i": interval,
            "f": -1,
            "L": -1,
            "o": fmt(last),
            "c": fmt(last),
            "h": fmt(last),
            "l": fmt(last),
            "v": zero,
            "n": 0,
            "x": False,
            "q": zero,
            "V": zero,
            "Q": zero,
            "B": "0",
        }
        if candle is not None:
            k.update(
                {
                    "f": candle.first_trade_id,
                    "L": candle.last_trade_id,
                    "o": fmt(candle.open),
                    "c": fmt(candle.close),
                    "h": fmt(candle.high),
                    "l": fmt(candle.low),
                    "v": fmt(candle.volume),
                    "n": candle.trades,
                    "q": fmt(candle.quote_volume),
                    "V": fmt(candle.taker_buy_volume),
                    "Q": fmt(candle.taker_buy_quote_volume),
                }
            )
        k["x"] = closed
        return {"e": "kline", "E": now_ms if event_ms is None else event_ms, "s": symbol, "k": k}


def _opt(value: Decimal | None) -> str:
    return fmt(value) if value is not None else "0.00000000"
