"""Which symbols the provider follows, and the state it keeps for each from the exchange streams.

The hub is the :class:`~provider.binance.streams.StreamHandler` of the market-stream pool: it
routes every event to the symbol it belongs to (depth to the book shell, trades and tickers to
their feeds), and tells books to discard themselves the moment their stream goes down.

Tracking rules:

* ``PROVIDER_SYMBOLS`` are pinned: tracked from start, never released.
* Any request or stream for another valid symbol starts tracking it (depth stream + book).
* Trade, bookTicker and ticker streams are subscribed only while someone listens to them.
* A symbol that is not pinned, has no listener and was not used for ``idle_release_s`` is
  released: its streams unsubscribed, its book dropped.
* Books are audited against fresh snapshots every ``audit_interval_s``, one at a time and only
  while the REST weight budget has ample room (market data never starves orders of weight).

Trade, book ticker and ticker feeds are never silently incomplete: when their stream goes down
their listeners get a `StreamGap` at once, and a trade whose id skips the ids after the last one
received is preceded by a `StreamGap` naming the missing ids (Binance numbers a symbol's trades
consecutively).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from provider.binance import stream_wire
from provider.binance.rest import RestClient
from provider.binance.streams import StreamHandler, StreamPool, StreamPoolStats
from provider.binance.wire import depth_weight
from provider.errors import ExchangeUnavailable, InvalidArgument, ProviderError
from provider.marketdata.feeds import Feed, Subscription
from provider.marketdata.model import (
    STREAM_INTERRUPTED,
    AggTrade,
    BookTicker,
    ExchangeInfo,
    StreamGap,
    SymbolRules,
    Ticker24h,
    Trade,
)
from provider.marketdata.symbol_book import SymbolBook

log = logging.getLogger(__name__)

EXCHANGE_INFO_REFRESH_S = 3600.0
MAINTENANCE_TICK_S = 1.0


class Channel(StrEnum):
    """Stream name suffixes (``<symbol>@<channel>``)."""

    DEPTH = "depth@100ms"
    TRADE = "trade"
    BOOK_TICKER = "bookTicker"
    TICKER = "ticker"
    AGG_TRADE = "aggTrade"  # subscribed for every tracked symbol while recording


@dataclass(frozen=True)
class MarketConfig:
    pinned: tuple[str, ...] = ()
    snapshot_limit: int = 1000
    idle_release_s: float = 600.0
    audit_interval_s: float = 300.0
    sync_wait_s: float = 5.0
    """How long a request for a symbol that is not tracked yet waits for its book."""
    feed_capacity: int = 4096


@dataclass
class TrackedSymbol:
    symbol: str
    book: SymbolBook
    pinned: bool
    last_used: float
    next_audit: float
    trades: Feed[Trade | StreamGap] = field(default_factory=Feed)
    book_tickers: Feed[BookTicker | StreamGap] = field(default_factory=Feed)
    tickers: Feed[Ticker24h | StreamGap] = field(default_factory=Feed)
    ticker: Ticker24h | None = None
    book_ticker: BookTicker | None = None
    last_trade_id: int | None = None  # of the trade stream since it was (re)opened

    def has_listeners(self) -> bool:
        return bool(self.book.feed or self.trades or self.book_tickers or self.tickers)


@dataclass(frozen=True)
class HubStats:
    tracked: int
    in_sync: int
    messages: int
    unroutable: int
    malformed: int
    audits_started: int
    released: int


class SymbolRecorder(Protocol):
    """Records tracked symbols (provider.recording.recorder.Recorder)."""

    def on_tracked(self, tracked: TrackedSymbol) -> None: ...
    def on_released(self, symbol: str) -> None: ...
    def on_agg_trade(self, symbol: str, trade: AggTrade) -> None: ...


def stream_name(symbol: str, channel: Channel) -> str:
    return f"{symbol.lower()}@{channel.value}"


class MarketDataHub(StreamHandler):
    def __init__(
        self,
        rest: RestClient,
        make_pool: Callable[[StreamHandler], StreamPool],
        config: MarketConfig,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rest = rest
        self._make_pool = make_pool
        self._pool: StreamPool | None = None
        self.config = config
        self._now = monotonic
        self._symbols: dict[str, TrackedSymbol] = {}
        self._routes: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._info: ExchangeInfo | None = None
        self._rules: dict[str, SymbolRules] = {}
        self._info_loaded = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._messages = 0
        self._unroutable = 0
        self._malformed = 0
        self._audits = 0
        self._released = 0
        self._recorder: SymbolRecorder | None = None

    def attach_recorder(self, recorder: SymbolRecorder) -> None:
        """Record every tracked symbol from now on (its book observed, its aggTrade stream open)."""
        self._recorder = recorder
        for tracked in self._symbols.values():
            self._record(tracked)

    def _record(self, tracked: TrackedSymbol) -> None:
        if self._recorder is None:
            return
        self._recorder.on_tracked(tracked)
        self._open(tracked, Channel.AGG_TRADE)

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        self._pool = self._make_pool(self)
        await self._pool.start()
        for symbol in self.config.pinned:
            self._track(symbol, pinned=True)
        self._tasks = [
            asyncio.create_task(self._keep_exchange_info(), name="exchange-info"),
            asyncio.create_task(self._maintain(), name="market-maintenance"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        for tracked in list(self._symbols.values()):
            await self._drop(tracked)
        if self._pool is not None:
            await self._pool.close()

    # ------------------------------------------------------------------ StreamHandler
    def on_message(self, stream: str, data: dict[str, Any]) -> None:
        self._messages += 1
        route = self._routes.get(stream)
        if route is None:
            self._unroutable += 1  # a late event of a stream just unsubscribed
            return
        try:
            route(data)
        except (KeyError, TypeError, ValueError) as exc:
            self._malformed += 1
            log.warning("%s: unreadable event skipped (%s: %s)", stream, type(exc).__name__, exc)

    def on_streams_down(self, streams: frozenset[str]) -> None:
        for stream in streams:
            symbol, _, channel = stream.partition("@")
            tracked = self._symbols.get(symbol.upper())
            if tracked is None:
                continue
            if channel == Channel.DEPTH:
                tracked.book.stream_down()
            elif channel == Channel.TRADE:
                tracked.trades.publish(STREAM_INTERRUPTED)  # the ids skipped meanwhile follow as a gap of their own
            elif channel == Channel.TICKER:
                tracked.ticker = None  # no longer current
                tracked.tickers.publish(STREAM_INTERRUPTED)
            elif channel == Channel.BOOK_TICKER:
                tracked.book_ticker = None
                tracked.book_tickers.publish(STREAM_INTERRUPTED)

    def on_streams_up(self, streams: frozenset[str]) -> None:
        log.debug("streams live: %d", len(streams))

    # ------------------------------------------------------------------ symbols
    @property
    def exchange_info(self) -> ExchangeInfo | None:
        return self._info

    def rules(self, symbol: str) -> SymbolRules:
        """The exchange's rules for `symbol`; INVALID_ARGUMENT naming it if the exchange has no such symbol."""
        if self._info is None:
            raise ExchangeUnavailable("exchange information is not loaded yet (venue unreachable?)")
        rules = self._rules.get(symbol)
        if rules is None:
            raise InvalidArgument("symbol", f"unknown symbol {symbol!r}: the exchange does not list it")
        return rules

    def validate(self, symbol: str) -> str:
        """Normalise and check a symbol parameter; returns the canonical (upper-case) symbol."""
        if not symbol:
            raise InvalidArgument("symbol", "symbol is required, e.g. BTCUSDT")
        canonical = symbol.strip().upper()
        if not canonical.isalnum():
            raise InvalidArgument("symbol", f"invalid symbol {symbol!r}: letters and digits only, e.g. BTCUSDT")
        self.rules(canonical)
        return canonical

    async def wait_ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._info_loaded.wait(), timeout)
        return self._info is not None

    def tracked(self, symbol: str) -> TrackedSymbol | None:
        return self._symbols.get(symbol)

    def tracked_symbols(self) -> list[TrackedSymbol]:
        return list(self._symbols.values())

    def use(self, symbol: str) -> TrackedSymbol:
        """Track `symbol` (already validated) if not yet, and mark it used now."""
        tracked = self._symbols.get(symbol) or self._track(symbol, pinned=False)
        tracked.last_used = self._now()
        return tracked

    def _track(self, symbol: str, *, pinned: bool) -> TrackedSymbol:
        existing = self._symbols.get(symbol)
        if existing is not None:
            existing.pinned = existing.pinned or pinned
            return existing
        book = SymbolBook(
            symbol, self._rest.depth, snapshot_limit=self.config.snapshot_limit, feed_capacity=self.config.feed_capacity
        )
        now = self._now()
        tracked = TrackedSymbol(symbol, book, pinned, now, now + self.config.audit_interval_s)
        cap = self.config.feed_capacity
        tracked.trades = Feed(cap, on_empty=lambda: self._channel_idle(symbol, Channel.TRADE))
        tracked.book_tickers = Feed(cap, on_empty=lambda: self._channel_idle(symbol, Channel.BOOK_TICKER))
        tracked.tickers = Feed(cap, on_empty=lambda: self._channel_idle(symbol, Channel.TICKER))
        self._symbols[symbol] = tracked
        self._open(tracked, Channel.DEPTH)
        self._record(tracked)
        log.info("tracking %s%s", symbol, " (pinned)" if pinned else "")
        return tracked

    def _open(self, tracked: TrackedSymbol, channel: Channel) -> None:
        name = stream_name(tracked.symbol, channel)
        if name in self._routes:
            return
        self._routes[name] = self._route_for(tracked, channel)
        assert self._pool is not None, "hub not started"
        self._pool.subscribe([name])

    def _close_channel(self, tracked: TrackedSymbol, channel: Channel) -> None:
        name = stream_name(tracked.symbol, channel)
        if self._routes.pop(name, None) is not None and self._pool is not None:
            self._pool.unsubscribe([name])
        if channel is Channel.TRADE:
            tracked.last_trade_id = None  # a reopened stream starts wherever the exchange is

    def _route_for(self, tracked: TrackedSymbol, channel: Channel) -> Callable[[dict[str, Any]], None]:
        if channel is Channel.DEPTH:
            return tracked.book.on_diff
        if channel is Channel.TRADE:

            def on_trade(data: dict[str, Any]) -> None:
                trade = stream_wire.trade(data)
                last = tracked.last_trade_id
                if last is not None and trade.id > last + 1:
                    first, final = last + 1, trade.id - 1
                    missing = f"id {first}" if first == final else f"ids {first} to {final}"
                    tracked.trades.publish(StreamGap(f"trade {missing} did not arrive from the exchange", first, final))
                tracked.last_trade_id = trade.id if last is None else max(last, trade.id)
                tracked.trades.publish(trade)

            return on_trade
        if channel is Channel.AGG_TRADE:
            recorder = self._recorder

            def on_agg_trade(data: dict[str, Any]) -> None:
                if recorder is not None:
                    recorder.on_agg_trade(tracked.symbol, stream_wire.agg_trade(data))

            return on_agg_trade
        if channel is Channel.BOOK_TICKER:

            def on_book_ticker(data: dict[str, Any]) -> None:
                tracked.book_ticker = stream_wire.book_ticker(data)
                tracked.book_tickers.publish(tracked.book_ticker)

            return on_book_ticker

        def on_ticker(data: dict[str, Any]) -> None:
            tracked.ticker = stream_wire.ticker_24h(data)
            tracked.tickers.publish(tracked.ticker)

        return on_ticker

    def _channel_idle(self, symbol: str, channel: Channel) -> None:
        tracked = self._symbols.get(symbol)
        if tracked is None:
            return
        tracked.last_used = self._now()
        self._close_channel(tracked, channel)
        if channel is Channel.TICKER:
            tracked.ticker = None
        elif channel is Channel.BOOK_TICKER:
            tracked.book_ticker = None

    # ------------------------------------------------------------------ subscriptions
    def subscribe_depth(self, symbol: str) -> tuple[TrackedSymbol, Subscription[Any]]:
        tracked = self.use(symbol)
        return tracked, tracked.book.feed.subscribe()

    def subscribe_trades(self, symbol: str, ready: asyncio.Event | None = None) -> Subscription[Trade | StreamGap]:
        tracked = self.use(symbol)
        sub = tracked.trades.subscribe(ready=ready)
        self._open(tracked, Channel.TRADE)
        return sub

    def subscribe_book_tickers(
        self, symbol: str, ready: asyncio.Event | None = None
    ) -> Subscription[BookTicker | StreamGap]:
        tracked = self.use(symbol)
        sub = tracked.book_tickers.subscribe(ready=ready)
        self._open(tracked, Channel.BOOK_TICKER)
        return sub

    def subscribe_tickers(self, symbol: str, ready: asyncio.Event | None = None) -> Subscription[Ticker24h | StreamGap]:
        tracked = self.use(symbol)
        sub = tracked.tickers.subscribe(ready=ready)
        self._open(tracked, Channel.TICKER)
        return sub

    # ------------------------------------------------------------------ background work
    async def _keep_exchange_info(self) -> None:
        delay = 1.0
        while True:
            try:
                info = await self._rest.exchange_info()
            except ProviderError as exc:
                log.warning("exchange info: %s; retrying in %.0f s", exc.message, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
                continue
            self._info = info
            self._rules = {rules.symbol: rules for rules in info.symbols}
            self._info_loaded.set()
            delay = 1.0
            log.info("exchange info: %d symbols", len(self._rules))
            await asyncio.sleep(EXCHANGE_INFO_REFRESH_S)

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(MAINTENANCE_TICK_S)
            self.maintain_once()

    def maintain_once(self) -> None:
        """Release idle symbols; start at most one due audit if the weight budget has room."""
        now = self._now()
        for tracked in list(self._symbols.values()):
            idle_for = now - tracked.last_used
            if not tracked.pinned and not tracked.has_listeners() and idle_for >= self.config.idle_release_s:
                self._released += 1
                log.info("releasing %s (idle %.0f s)", tracked.symbol, idle_for)
                task = asyncio.create_task(self._drop(tracked), name=f"release-{tracked.symbol}")
                self._tasks.append(task)
                task.add_done_callback(self._forget)
        due = [t for t in self._symbols.values() if t.next_audit <= now and t.book.in_sync]
        if not due:
            return
        weight = depth_weight(self.config.snapshot_limit)
        # Ample room: keep at least three more such requests' worth for everything else.
        if not self._rest.budget.peek(weight * 4, int(time.time() * 1000)).allowed:
            return
        tracked = min(due, key=lambda t: t.next_audit)
        tracked.next_audit = now + self.config.audit_interval_s
        if tracked.book.request_audit():
            self._audits += 1

    def _forget(self, task: asyncio.Task[None]) -> None:
        with contextlib.suppress(ValueError):
            self._tasks.remove(task)

    async def _drop(self, tracked: TrackedSymbol) -> None:
        if self._symbols.get(tracked.symbol) is not tracked:
            return
        del self._symbols[tracked.symbol]
        for channel in Channel:
            self._close_channel(tracked, channel)
        tracked.trades.close()
        tracked.book_tickers.close()
        tracked.tickers.close()
        if self._recorder is not None:
            self._recorder.on_released(tracked.symbol)
        await tracked.book.close()

    def stats(self) -> HubStats:
        return HubStats(
            tracked=len(self._symbols),
            in_sync=sum(1 for t in self._symbols.values() if t.book.in_sync),
            messages=self._messages,
            unroutable=self._unroutable,
            malformed=self._malformed,
            audits_started=self._audits,
            released=self._released,
        )

    def pool_stats(self) -> StreamPoolStats | None:
        return None if self._pool is None else self._pool.stats()
