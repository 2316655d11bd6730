"""The MarketData gRPC service: local state where the provider keeps it, REST otherwise."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar

import grpc
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc

from provider.binance.rest import RestClient
from provider.book import cut_edge
from provider.errors import BookNotInSync, InvalidArgument, StreamEnded
from provider.marketdata.feeds import LAGGED, Closed, Subscription
from provider.marketdata.hub import MarketDataHub, TrackedSymbol
from provider.marketdata.model import StreamGap
from provider.marketdata.symbol_book import (
    BookOutOfSync,
    BookRefreshed,
    BookSynced,
    BookView,
    DepthDiffEvent,
    SymbolBook,
)
from provider.service import convert
from provider.service.errors import Context, translate_stream, translate_unary

MAX_BOOK_LEVELS = 5000
DEFAULT_BOOK_LEVELS = 100
DEFAULT_STREAM_LEVELS = 1000
MAX_LIMIT_1000 = 1000
MAX_STREAM_SYMBOLS = 100
TRADE_BATCH_MAX = 500
R = TypeVar("R")


def _limit(value: int, *, default: int, maximum: int, name: str = "limit") -> int:
    if value < 0 or value > maximum:
        raise InvalidArgument(name, f"{name} must be 1 to {maximum} (0 for the default {default}); got {value}")
    return value or default


def _optional(value: int) -> int | None:
    return value or None


class DiffMessages:
    """Converts each depth diff to protobuf once, however many subscribers send it."""

    def __init__(self, size: int = 256) -> None:
        self._cache: dict[int, tuple[DepthDiffEvent, md.StreamDepthResponse]] = {}
        self._size = size

    def get(self, symbol: str, event: DepthDiffEvent) -> md.StreamDepthResponse:
        hit = self._cache.get(id(event))
        if hit is not None and hit[0] is event:
            return hit[1]
        message = md.StreamDepthResponse(
            symbol=symbol,
            diff=md.DepthDiff(
                first_update_id=event.first_update_id,
                last_update_id=event.last_update_id,
                event_time_ms=event.event_time_ms,
                bids=convert.wire_levels(event.bids),
                asks=convert.wire_levels(event.asks),
            ),
        )
        if len(self._cache) >= self._size:
            self._cache.clear()
        self._cache[id(event)] = (event, message)  # holding the event keeps its id unique
        return message


def merge_diffs(diffs: Sequence[DepthDiffEvent]) -> DepthDiffEvent:
    """Several consecutive diffs as one (1000 ms subscribers): the last quantity of each level wins."""
    bids: dict[str, str] = {}
    asks: dict[str, str] = {}
    for diff in diffs:
        for price, qty in diff.bids:
            bids[price] = qty
        for price, qty in diff.asks:
            asks[price] = qty
    return DepthDiffEvent(
        diffs[0].first_update_id,
        diffs[-1].last_update_id,
        diffs[-1].event_time_ms,
        [[p, q] for p, q in bids.items()],
        [[p, q] for p, q in asks.items()],
    )


class MarketDataServicer(md_grpc.MarketDataServicer):
    def __init__(self, hub: MarketDataHub, rest: RestClient) -> None:
        self._hub = hub
        self._rest = rest
        self._diffs: dict[str, DiffMessages] = {}

    # ------------------------------------------------------------------ helpers
    def _symbols(self, symbols: Sequence[str], *, required: bool = False) -> list[str]:
        if required and not symbols:
            raise InvalidArgument("symbols", 'at least one symbol is required, e.g. ["BTCUSDT"]')
        if len(symbols) > MAX_STREAM_SYMBOLS:
            raise InvalidArgument("symbols", f"at most {MAX_STREAM_SYMBOLS} symbols per call; got {len(symbols)}")
        out: list[str] = []
        for symbol in symbols:
            canonical = self._hub.validate(symbol)
            if canonical not in out:
                out.append(canonical)
        return out

    async def _synced_book(self, tracked: TrackedSymbol, context: Context) -> bool:
        wait = self._hub.config.sync_wait_s
        remaining = context.time_remaining()
        if remaining is not None:
            wait = min(wait, max(0.0, remaining - 0.05))
        return await tracked.book.wait_synced(wait)

    # ------------------------------------------------------------------ unary
    @translate_unary
    async def GetTickerPrice(self, request: md.GetTickerPriceRequest, context: Context) -> md.GetTickerPriceResponse:
        symbols = self._symbols(request.symbols)
        local = [self._hub.use(s).ticker for s in symbols]
        if symbols and all(t is not None for t in local):
            prices = [md.TickerPrice(symbol=t.symbol, price=t.last_price) for t in local if t is not None]
            return md.GetTickerPriceResponse(prices=prices, source=c.DATA_SOURCE_LOCAL_STREAM)
        fetched = await self._rest.ticker_price(symbols or None)
        return md.GetTickerPriceResponse(
            prices=[md.TickerPrice(symbol=t.symbol, price=t.price) for t in fetched], source=c.DATA_SOURCE_EXCHANGE_REST
        )

    @translate_unary
    async def GetTicker24h(self, request: md.GetTicker24hRequest, context: Context) -> md.GetTicker24hResponse:
        symbols = self._symbols(request.symbols)
        local = [self._hub.use(s).ticker for s in symbols]
        if symbols and all(t is not None for t in local):
            tickers = [convert.ticker_24h(t) for t in local if t is not None]
            return md.GetTicker24hResponse(tickers=tickers, source=c.DATA_SOURCE_LOCAL_STREAM)
        fetched = await self._rest.ticker_24h(symbols or None)
        return md.GetTicker24hResponse(
            tickers=[convert.ticker_24h(t) for t in fetched], source=c.DATA_SOURCE_EXCHANGE_REST
        )

    @translate_unary
    async def GetBookTicker(self, request: md.GetBookTickerRequest, context: Context) -> md.GetBookTickerResponse:
        symbols = self._symbols(request.symbols)
        books = [self._hub.use(s).book for s in symbols]
        if symbols and all(b.in_sync for b in books):
            tickers = [convert.book_ticker_from_view(b.view(1)) for b in books]
            return md.GetBookTickerResponse(tickers=tickers, source=c.DATA_SOURCE_LOCAL_BOOK)
        fetched = await self._rest.book_ticker(symbols or None)
        return md.GetBookTickerResponse(
            tickers=[convert.book_ticker(t) for t in fetched], source=c.DATA_SOURCE_EXCHANGE_REST
        )

    @translate_unary
    async def GetAveragePrice(self, request: md.GetAveragePriceRequest, context: Context) -> md.GetAveragePriceResponse:
        symbol = self._hub.validate(request.symbol)
        avg = await self._rest.avg_price(symbol)
        return md.GetAveragePriceResponse(
            symbol=symbol, minutes=avg.mins, price=avg.price, close_time_ms=avg.close_time_ms or 0
        )

    @translate_unary
    async def GetKlines(self, request: md.GetKlinesRequest, context: Context) -> md.GetKlinesResponse:
        symbol = self._hub.validate(request.symbol)
        interval = convert.kline_interval(request.interval)
        limit = _limit(request.limit, default=500, maximum=MAX_LIMIT_1000)
        if request.start_time_ms and request.end_time_ms and request.start_time_ms > request.end_time_ms:
            raise InvalidArgument("start_time_ms", "start_time_ms is after end_time_ms")
        klines = await self._rest.klines(
            symbol,
            str(interval),
            start_ms=_optional(request.start_time_ms),
            end_ms=_optional(request.end_time_ms),
            limit=limit,
            time_zone=request.time_zone or None,
        )
        return md.GetKlinesResponse(symbol=symbol, interval=request.interval, klines=[convert.kline(k) for k in klines])

    @translate_unary
    async def GetRecentTrades(self, request: md.GetRecentTradesRequest, context: Context) -> md.GetRecentTradesResponse:
        symbol = self._hub.validate(request.symbol)
        limit = _limit(request.limit, default=500, maximum=MAX_LIMIT_1000)
        if request.from_id < 0:
            raise InvalidArgument("from_id", "from_id must be >= 0")
        if request.from_id:
            trades = await self._rest.historical_trades(symbol, request.from_id, limit)
        else:
            trades = await self._rest.recent_trades(symbol, limit)
        return md.GetRecentTradesResponse(trades=[convert.trade(symbol, t) for t in trades])

    @translate_unary
    async def GetAggregateTrades(
        self, request: md.GetAggregateTradesRequest, context: Context
    ) -> md.GetAggregateTradesResponse:
        symbol = self._hub.validate(request.symbol)
        limit = _limit(request.limit, default=500, maximum=MAX_LIMIT_1000)
        if request.from_id < 0:
            raise InvalidArgument("from_id", "from_id must be >= 0")
        if request.start_time_ms and request.end_time_ms and request.start_time_ms > request.end_time_ms:
            raise InvalidArgument("start_time_ms", "start_time_ms is after end_time_ms")
        trades = await self._rest.agg_trades(
            symbol,
            from_id=_optional(request.from_id),
            start_ms=_optional(request.start_time_ms),
            end_ms=_optional(request.end_time_ms),
            limit=limit,
        )
        return md.GetAggregateTradesResponse(symbol=symbol, trades=[convert.agg_trade(t) for t in trades])

    @translate_unary
    async def GetExchangeInfo(self, request: md.GetExchangeInfoRequest, context: Context) -> md.GetExchangeInfoResponse:
        symbols = self._symbols(request.symbols) if request.symbols else []
        info = await self._rest.exchange_info(symbols or None)
        return md.GetExchangeInfoResponse(
            server_time_ms=info.server_time_ms,
            rate_limits=[convert.rate_limit(r) for r in info.rate_limits],
            symbols=[convert.symbol_info(r) for r in info.symbols],
        )

    @translate_unary
    async def GetOrderBook(self, request: md.GetOrderBookRequest, context: Context) -> md.GetOrderBookResponse:
        symbol = self._hub.validate(request.symbol)
        limit = _limit(request.limit, default=DEFAULT_BOOK_LEVELS, maximum=MAX_BOOK_LEVELS)
        tracked = self._hub.use(symbol)
        if not await self._synced_book(tracked, context) and not request.allow_stale:
            raise BookNotInSync(
                symbol,
                f"the {symbol} book is resynchronising ({tracked.book.sync.state.value}); retry shortly "
                "or set allow_stale to read it flagged as not in sync",
            )
        view = tracked.book.view(limit)
        return md.GetOrderBookResponse(
            symbol=symbol,
            bids=convert.levels(view.bids),
            asks=convert.levels(view.asks),
            freshness=convert.freshness(view),
        )

    # ------------------------------------------------------------------ streams
    @translate_stream
    async def StreamDepth(
        self, request: md.StreamDepthRequest, context: Context
    ) -> AsyncIterator[md.StreamDepthResponse]:
        symbol = self._hub.validate(request.symbol)
        limit = _limit(request.limit, default=DEFAULT_STREAM_LEVELS, maximum=MAX_BOOK_LEVELS)
        if request.speed not in (md.DEPTH_SPEED_UNSPECIFIED, md.DEPTH_SPEED_100MS, md.DEPTH_SPEED_1000MS):
            raise InvalidArgument("speed", f"unknown speed {request.speed}")
        batch_s = 1.0 if request.speed == md.DEPTH_SPEED_1000MS else 0.0
        tracked, sub = self._hub.subscribe_depth(symbol)
        diffs = self._diffs.setdefault(symbol, DiffMessages())
        try:
            async for message in depth_messages(symbol, tracked.book, sub, limit, batch_s, diffs):
                yield message
        finally:
            sub.close()

    @translate_stream
    def StreamTrades(self, request: md.StreamTradesRequest, context: Context) -> AsyncIterator[md.StreamTradesResponse]:
        async def take(symbol: str, sub: Subscription[Any]) -> list[Any]:
            items = _poll(sub)
            if items is LAGGED:
                await context.abort(
                    grpc.StatusCode.ABORTED, f"{symbol}: this subscriber fell behind, trades were dropped; resubscribe"
                )
            assert isinstance(items, list)
            return items

        symbols = self._symbols(request.symbols, required=True)
        return _feed_stream(symbols, self._hub.subscribe_trades, take, _trade_responses)

    @translate_stream
    def StreamBookTicker(
        self, request: md.StreamBookTickerRequest, context: Context
    ) -> AsyncIterator[md.StreamBookTickerResponse]:
        async def take(symbol: str, sub: Subscription[Any]) -> list[Any]:
            return _state_items(sub, lambda: self._current(symbol).book_ticker)

        symbols = self._symbols(request.symbols, required=True)
        return _feed_stream(symbols, self._hub.subscribe_book_tickers, take, _book_ticker_responses)

    @translate_stream
    def StreamTicker(self, request: md.StreamTickerRequest, context: Context) -> AsyncIterator[md.StreamTickerResponse]:
        async def take(symbol: str, sub: Subscription[Any]) -> list[Any]:
            return _state_items(sub, lambda: self._current(symbol).ticker)

        symbols = self._symbols(request.symbols, required=True)
        # A ticker is state: of each run of a symbol's tickers, the newest suffices.
        return _feed_stream(symbols, self._hub.subscribe_tickers, take, _ticker_responses, newest_only=True)

    def _current(self, symbol: str) -> TrackedSymbol:
        tracked = self._hub.tracked(symbol)
        assert tracked is not None, "subscribed symbols stay tracked"
        return tracked


async def _feed_stream(
    symbols: Sequence[str],
    subscribe: Callable[[str, asyncio.Event], Subscription[Any]],
    take: Callable[[str, Subscription[Any]], Awaitable[list[Any]]],
    respond: Callable[[list[tuple[str, Any]] | md.StreamGap], Iterable[R]],
    *,
    newest_only: bool = False,
) -> AsyncIterator[R]:
    """A trade, book ticker or ticker stream: what each symbol's feed has (`take`) is sent on in
    its order (`in_order`), and when none has anything the stream waits for more."""
    ready = asyncio.Event()
    subs = {s: subscribe(s, ready) for s in symbols}
    try:
        while True:
            ready.clear()
            parts = in_order([(s, await take(s, sub)) for s, sub in subs.items()], newest_only=newest_only)
            for part in parts:
                for response in respond(part):
                    yield response
            if not parts:
                await ready.wait()
    finally:
        for sub in subs.values():
            sub.close()


def _state_items(sub: Subscription[Any], current: Callable[[], object]) -> list[Any]:
    """A ticker or book ticker feed's new items; for a subscriber that fell behind, the current
    value instead (state, not history: it replaces what was dropped)."""
    items = _poll(sub)
    if items is LAGGED:
        value = current()
        return [value] if value is not None else []
    assert isinstance(items, list)
    return items


def _trade_responses(part: list[tuple[str, Any]] | md.StreamGap) -> list[md.StreamTradesResponse]:
    if isinstance(part, md.StreamGap):
        return [md.StreamTradesResponse(gaps=[part])]
    trades = [convert.trade(symbol, t) for symbol, t in part]
    return [
        md.StreamTradesResponse(trades=trades[start : start + TRADE_BATCH_MAX])
        for start in range(0, len(trades), TRADE_BATCH_MAX)
    ]


def _book_ticker_responses(part: list[tuple[str, Any]] | md.StreamGap) -> list[md.StreamBookTickerResponse]:
    if isinstance(part, md.StreamGap):
        return [md.StreamBookTickerResponse(gaps=[part])]
    return [md.StreamBookTickerResponse(tickers=[convert.book_ticker(t) for _, t in part])]


def _ticker_responses(part: list[tuple[str, Any]] | md.StreamGap) -> list[md.StreamTickerResponse]:
    if isinstance(part, md.StreamGap):
        return [md.StreamTickerResponse(gaps=[part])]
    return [md.StreamTickerResponse(tickers=[convert.ticker_24h(t) for _, t in part])]


def in_order(
    polled: Sequence[tuple[str, list[Any]]], *, newest_only: bool = False
) -> list[list[tuple[str, Any]] | md.StreamGap]:
    """Polled feed items, (symbol, items) per symbol, as what a stream sends in order: runs of
    (symbol, event) pairs and, between them, a symbol's gaps; never a gap inside a run. With
    `newest_only` each symbol's run of events is cut to its newest (tickers are state)."""
    parts: list[list[tuple[str, Any]] | md.StreamGap] = []
    run: list[tuple[str, Any]] = []
    for symbol, items in polled:
        events: list[Any] = []
        for item in items:
            if not isinstance(item, StreamGap):
                events.append(item)
                continue
            run.extend((symbol, e) for e in (events[-1:] if newest_only else events))
            events = []
            if run:
                parts.append(run)
                run = []
            parts.append(
                md.StreamGap(
                    symbol=symbol,
                    reason=item.reason,
                    first_missing_trade_id=item.first_missing_trade_id,
                    last_missing_trade_id=item.last_missing_trade_id,
                )
            )
        run.extend((symbol, e) for e in (events[-1:] if newest_only else events))
    if run:
        parts.append(run)
    return parts


def _poll(sub: Subscription[Any]) -> list[Any] | object:
    try:
        return sub.poll()
    except Closed:
        raise StreamEnded("the provider ended this stream (stopping, or symbol released); resubscribe") from None


async def depth_messages(
    symbol: str,
    book: SymbolBook,
    sub: Subscription[Any],
    limit: int,
    batch_s: float,
    diffs: DiffMessages,
) -> AsyncGenerator[md.StreamDepthResponse, None]:
    """The StreamDepth protocol for one subscriber (see market_data.proto and SymbolBook).

    A snapshot is taken from the live book when the subscriber joins (if in sync), after each
    BookSynced or BookRefreshed event and after a lag; queued diffs the snapshot already contains
    are skipped, so the diffs that follow continue exactly from the snapshot's id. Each snapshot
    names its edges: where it was cut at `limit` levels, or where the provider's book itself ends.
    """
    sent_initial = False
    book_id = 0  # last update id the subscriber's copy reflects; 0: it holds no valid copy
    pending: list[DepthDiffEvent] = []
    flush_at = 0.0

    def snapshot(reason: md.SnapshotReason.ValueType, whole: BookView | None = None) -> md.StreamDepthResponse:
        """The live book, or `whole` (the book as a refresh event captured it), cut at `limit`."""
        nonlocal book_id, sent_initial
        view = book.view(limit) if whole is None else whole
        bids, asks = view.bids[:limit], view.asks[:limit]
        book_id = view.last_update_id
        sent_initial = True
        return md.StreamDepthResponse(
            symbol=symbol,
            snapshot=md.DepthSnapshot(
                reason=reason,
                bids=convert.levels(bids),
                asks=convert.levels(asks),
                freshness=convert.freshness(view),
                bid_floor=cut_edge(bids, limit, view.bid_floor) or "",
                ask_ceiling=cut_edge(asks, limit, view.ask_ceiling) or "",
            ),
        )

    def void() -> md.StreamDepthResponse:
        """Tells the subscriber its copy is no longer valid: an empty snapshot, in_sync false.

        Always false: by the time a slow subscriber reads the BookOutOfSync behind this, the book
        may be back in sync, and an empty book must never be served as in sync (the snapshot
        that follows, on BookSynced, brings it back)."""
        freshness = convert.freshness(book.view(0))
        freshness.in_sync = False
        return md.StreamDepthResponse(
            symbol=symbol,
            snapshot=md.DepthSnapshot(reason=md.SNAPSHOT_REASON_RESYNC, freshness=freshness),
        )

    try:
        if book.in_sync:
            yield snapshot(md.SNAPSHOT_REASON_INITIAL)
        while True:
            if pending and batch_s:
                timeout = max(0.0, flush_at - time.monotonic())
                try:
                    event = await asyncio.wait_for(sub.get(), timeout)
                except TimeoutError:
                    yield diffs.get(symbol, merge_diffs(pending))
                    pending = []
                    continue
            else:
                event = await sub.get()
            if event is LAGGED:
                pending = []
                if book.in_sync:
                    yield snapshot(md.SNAPSHOT_REASON_LAGGED)
                elif book_id:
                    book_id = 0
                    yield void()
                continue
            if isinstance(event, DepthDiffEvent):
                if book_id == 0 or event.last_update_id <= book_id:
                    continue  # no valid copy yet, or already contained in the snapshot sent
                book_id = event.last_update_id
                if not batch_s:
                    yield diffs.get(symbol, event)
                    continue
                if not pending:
                    flush_at = time.monotonic() + batch_s
                pending.append(event)
            elif isinstance(event, BookSynced):
                # Only a subscriber without a valid copy needs it: a snapshot sent since the matching
                # BookOutOfSync already reflects this synchronisation or a later one.
                if book.in_sync and book_id == 0:
                    pending = []
                    yield snapshot(md.SNAPSHOT_REASON_RESYNC if sent_initial else md.SNAPSHOT_REASON_INITIAL)
            elif isinstance(event, BookRefreshed):
                # The book's edges moved while it stayed in sync: a copy holding the old ones gets
                # the book again, as it was at this point of the stream (the diffs after follow on).
                if book_id and event.view.last_update_id == book_id:
                    if pending:  # a 1000 ms subscriber: the diffs it has not sent yet are in the book
                        yield diffs.get(symbol, merge_diffs(pending))
                        pending = []
                    yield snapshot(md.SNAPSHOT_REASON_REFRESH, event.view)
            elif isinstance(event, BookOutOfSync):
                pending = []
                if book_id:
                    book_id = 0
                    yield void()
    except Closed:
        raise StreamEnded("the provider ended this stream (stopping, or the symbol was released)") from None
