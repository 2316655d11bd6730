"""Market-data and order-book tools (scope `read`): pure conversions and statistics, then the thin
tool functions that call the provider's MarketData service.

Every result carries structured content (validated against the tool's output schema) and a short
text rendering of the same data. Exchange values stay decimal strings exactly as the exchange sent
them; statistics the gateway derives are rounded (see render.py). Provider failures become tool
errors (isError) whose text says what to do next.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Sequence
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, TypeVar

import grpc
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import market_data_pb2_grpc as md_grpc
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field

from gateway_mcp.render import (
    BPS_DIGITS,
    FACTOR_PLACES,
    RATIO_PLACES,
    decimal_text,
    derived_price,
    explain_provider_error,
    freshness_line,
    round_significant,
    round_stat,
    table,
    unknown_symbol_text,
    utc_minute,
    utc_second,
)
from provider_client.errors import decode_rpc_error
from provider_client.intervals import KLINE_INTERVALS

CALL_TIMEOUT_S = 10.0
SYMBOL_PATTERN = r"^[A-Za-z0-9._-]{1,20}$"
MAX_SYMBOLS = 20
MAX_ROWS = 200  # klines and trades per call: enough to reason on, small enough for a context window
MAX_BOOK_LEVELS = 100
DEFAULT_BOOK_LEVELS = 20
MAX_WALLS = 10

T = TypeVar("T")

Symbol = Annotated[
    str,
    Field(
        pattern=SYMBOL_PATTERN,
        description="Binance spot symbol: base asset then quote asset, no separator, e.g. BTCUSDT (case-insensitive)",
    ),
]


# --- output models --------------------------------------------------------------------------------


class Freshness(BaseModel):
    """How fresh the answer is and where it came from."""

    source: str = Field(
        description="LOCAL_BOOK (provider's synchronised order book), LOCAL_STREAM (kept from exchange "
        "streams) or EXCHANGE_REST (fetched from the exchange for this call)"
    )
    fetched_at_ms: int = Field(description="gateway clock when this answer was produced (epoch ms)")
    event_time_ms: int | None = Field(default=None, description="exchange time of the latest data reflected")
    age_ms: int | None = Field(default=None, description="how old that data was when answered, in ms")
    last_update_id: int | None = Field(default=None, description="exchange order-book update id reflected")
    in_sync: bool | None = Field(default=None, description="false while the provider's book is resynchronising")


class TickerStats(BaseModel):
    symbol: str
    last_price: str
    price_change: str = Field(description="last price minus the price 24 h ago")
    price_change_percent: str
    open_price: str
    high_price: str
    low_price: str
    weighted_avg_price: str
    volume: str = Field(description="24 h volume in the base asset")
    quote_volume: str = Field(description="24 h volume in the quote asset")
    bid_price: str
    ask_price: str
    trade_count: int
    open_time_ms: int
    close_time_ms: int


class MarketSummary(BaseModel):
    tickers: list[TickerStats]
    freshness: Freshness


class KlineInterval(StrEnum):
    """The tool's schema lists these; each is a key of provider_client.intervals.KLINE_INTERVALS."""

    S1 = "1s"
    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H6 = "6h"
    H8 = "8h"
    H12 = "12h"
    D1 = "1d"
    D3 = "3d"
    W1 = "1w"
    MONTH1 = "1M"


class Candle(BaseModel):
    open_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str = Field(description="base-asset volume")
    quote_volume: str
    trade_count: int
    taker_buy_volume: str = Field(description="base-asset volume bought by takers")


class CandleSummary(BaseModel):
    change_percent: float = Field(description="last close vs first open, percent (rounded)")
    high: str
    low: str
    volume: str = Field(description="total base-asset volume of the candles")


class Klines(BaseModel):
    symbol: str
    interval: KlineInterval
    candles: list[Candle] = Field(description="oldest first; the last one may still be open")
    summary: CandleSummary | None = Field(description="null when there are no candles")
    freshness: Freshness


class PublicTrade(BaseModel):
    id: int
    price: str
    quantity: str
    time_ms: int
    taker_side: str = Field(description="BUY when the aggressor bought, SELL when it sold")


class TradeSummary(BaseModel):
    count: int
    buy_volume: str = Field(description="base-asset volume of trades whose aggressor bought")
    sell_volume: str
    buy_share: float = Field(description="buy volume / total volume, 0..1 (rounded)")
    vwap: str = Field(description="volume-weighted average price of these trades (rounded)")
    first_time_ms: int
    last_time_ms: int


class RecentTrades(BaseModel):
    symbol: str
    trades: list[PublicTrade] = Field(description="newest last")
    summary: TradeSummary | None = Field(description="null when there are no trades")
    freshness: Freshness


class SymbolRules(BaseModel):
    symbol: str
    status: str = Field(description="TRADING, HALT, BREAK, END_OF_DAY, CANCEL_ONLY or the exchange's own word")
    base_asset: str
    quote_asset: str
    base_asset_precision: int
    quote_asset_precision: int
    tick_size: str | None = Field(description="prices must be multiples of this (PRICE_FILTER); null: no rule")
    min_price: str | None
    max_price: str | None
    step_size: str | None = Field(description="quantities must be multiples of this (LOT_SIZE); null: no rule")
    min_quantity: str | None
    max_quantity: str | None
    market_max_quantity: str | None = Field(description="largest MARKET order quantity (MARKET_LOT_SIZE)")
    min_notional: str | None = Field(description="smallest price x quantity accepted (NOTIONAL or MIN_NOTIONAL)")
    max_notional: str | None
    min_notional_applies_to_market: bool | None
    order_types: list[str]
    spot_trading_allowed: bool
    iceberg_allowed: bool
    freshness: Freshness


class PriceLevel(BaseModel):
    price: str
    quantity: str


class OrderBook(BaseModel):
    symbol: str
    bids: list[PriceLevel] = Field(description="best (highest) first")
    asks: list[PriceLevel] = Field(description="best (lowest) first")
    freshness: Freshness


class Wall(BaseModel):
    price: str
    quantity: str
    size_vs_median: float = Field(description="quantity / median quantity of this side's levels in the window")
    distance_bps: float = Field(description="distance from the mid price in basis points")


class BookSummary(BaseModel):
    symbol: str
    best_bid: PriceLevel | None
    best_ask: PriceLevel | None
    spread: str | None = Field(description="best ask minus best bid (exact)")
    spread_bps: float | None = Field(description="spread / mid x 10 000 (3 significant digits)")
    mid: str | None = Field(description="(best bid + best ask) / 2 (exact)")
    microprice: str | None = Field(
        description="size-weighted mid: (bid x ask_qty + ask x bid_qty) / (bid_qty + ask_qty), leaning toward "
        "the side more likely to be hit next (rounded)"
    )
    imbalance_top: float | None = Field(
        description="(bid_qty - ask_qty) / (bid_qty + ask_qty) at the best level, -1..1; positive: more bid size"
    )
    depth_levels: int = Field(description="levels per side the depth figures and walls cover")
    bid_depth: str = Field(description="total bid quantity over those levels (exact)")
    ask_depth: str
    imbalance_depth: float | None = Field(description="(bid_depth - ask_depth) / (bid_depth + ask_depth), -1..1")
    bid_walls: list[Wall] = Field(description="largest bid levels in the window, biggest first")
    ask_walls: list[Wall]
    freshness: Freshness


# --- pure conversions and statistics --------------------------------------------------------------


def source_name(source: c.DataSource.ValueType) -> str:
    return c.DataSource.Name(source).removeprefix("DATA_SOURCE_")


def book_freshness(pb: c.Freshness, now_ms: int) -> Freshness:
    return Freshness(
        source=source_name(pb.source),
        fetched_at_ms=now_ms,
        event_time_ms=pb.event_time_ms or None,
        age_ms=pb.age_ms,
        last_update_id=pb.last_update_id or None,
        in_sync=pb.in_sync,
    )


def ticker_stats(t: md.Ticker24h) -> TickerStats:
    return TickerStats(
        symbol=t.symbol,
        last_price=t.last_price,
        price_change=t.price_change,
        price_change_percent=t.price_change_percent,
        open_price=t.open_price,
        high_price=t.high_price,
        low_price=t.low_price,
        weighted_avg_price=t.weighted_avg_price,
        volume=t.volume,
        quote_volume=t.quote_volume,
        bid_price=t.bid_price,
        ask_price=t.ask_price,
        trade_count=t.trade_count,
        open_time_ms=t.open_time_ms,
        close_time_ms=t.close_time_ms,
    )


def market_summary(response: md.GetTicker24hResponse, now_ms: int) -> MarketSummary:
    # Stream tickers carry the event time; REST ones end their window at the moment they were computed.
    times = [t.event_time_ms or t.close_time_ms for t in response.tickers]
    event_ms = max(times) if times else None
    return MarketSummary(
        tickers=[ticker_stats(t) for t in response.tickers],
        freshness=Freshness(
            source=source_name(response.source),
            fetched_at_ms=now_ms,
            event_time_ms=event_ms,
            age_ms=max(0, now_ms - event_ms) if event_ms else None,
        ),
    )


def candle_summary(candles: Sequence[Candle]) -> CandleSummary | None:
    if not candles:
        return None
    first_open = Decimal(candles[0].open)
    change = (Decimal(candles[-1].close) - first_open) / first_open * 100 if first_open else Decimal(0)
    return CandleSummary(
        change_percent=round_stat(float(change), 2),
        high=max((c.high for c in candles), key=Decimal),
        low=min((c.low for c in candles), key=Decimal),
        volume=decimal_text(sum((Decimal(c.volume) for c in candles), Decimal(0))),
    )


def klines_result(symbol: str, interval: KlineInterval, response: md.GetKlinesResponse, now_ms: int) -> Klines:
    candles = [
        Candle(
            open_time_ms=k.open_time_ms,
            open=k.open,
            high=k.high,
            low=k.low,
            close=k.close,
            volume=k.volume,
            quote_volume=k.quote_volume,
            trade_count=k.trade_count,
            taker_buy_volume=k.taker_buy_base_volume,
        )
        for k in response.klines
    ]
    last_event = min(response.klines[-1].close_time_ms, now_ms) if response.klines else None
    return Klines(
        symbol=response.symbol or symbol,
        interval=interval,
        candles=candles,
        summary=candle_summary(candles),
        # The provider fetches klines from the exchange for each call; its response has no source field.
        freshness=Freshness(source="EXCHANGE_REST", fetched_at_ms=now_ms, event_time_ms=last_event),
    )


def trade_summary(trades: Sequence[PublicTrade]) -> TradeSummary | None:
    if not trades:
        return None
    buy = sum((Decimal(t.quantity) for t in trades if t.taker_side == "BUY"), Decimal(0))
    sell = sum((Decimal(t.quantity) for t in trades if t.taker_side == "SELL"), Decimal(0))
    total = buy + sell
    notional = sum((Decimal(t.price) * Decimal(t.quantity) for t in trades), Decimal(0))
    vwap = notional / total if total else Decimal(trades[-1].price)
    return TradeSummary(
        count=len(trades),
        buy_volume=decimal_text(buy),
        sell_volume=decimal_text(sell),
        buy_share=round_stat(float(buy / total), RATIO_PLACES) if total else 0.0,
        vwap=derived_price(vwap, [t.price for t in trades]),
        first_time_ms=min(t.time_ms for t in trades),
        last_time_ms=max(t.time_ms for t in trades),
    )


def recent_trades_result(symbol: str, response: md.GetRecentTradesResponse, now_ms: int) -> RecentTrades:
    trades = [
        PublicTrade(
            id=t.id,
            price=t.price,
            quantity=t.quantity,
            time_ms=t.time_ms,
            taker_side="SELL" if t.is_buyer_maker else "BUY",
        )
        for t in response.trades
    ]
    summary = trade_summary(trades)
    last = summary.last_time_ms if summary else None
    return RecentTrades(
        symbol=symbol,
        trades=trades,
        summary=summary,
        # Recent trades come from the exchange's REST API on each call (no source field in the response).
        freshness=Freshness(
            source="EXCHANGE_REST",
            fetched_at_ms=now_ms,
            event_time_ms=last,
            age_ms=max(0, now_ms - last) if last else None,
        ),
    )


def symbol_rules(info: md.SymbolInfo, server_time_ms: int, now_ms: int) -> SymbolRules:
    status = md.SymbolStatus.Name(info.status).removeprefix("SYMBOL_STATUS_")
    price: md.PriceFilter | None = None
    lot: md.LotSizeFilter | None = None
    market_lot: md.LotSizeFilter | None = None
    notional: md.NotionalFilter | None = None
    for f in info.filters:
        kind = f.WhichOneof("filter")
        if kind == "price":
            price = f.price
        elif kind == "lot_size":
            lot = f.lot_size
        elif kind == "market_lot_size":
            market_lot = f.market_lot_size
        elif kind == "notional":
            notional = f.notional

    def rule(value: str | None) -> str | None:
        # The exchange writes "0" for a disabled rule.
        return None if value is None or value == "" or Decimal(value) == 0 else value

    return SymbolRules(
        symbol=info.symbol,
        status=info.status_text if info.status in (md.SYMBOL_STATUS_OTHER, md.SYMBOL_STATUS_UNSPECIFIED) else status,
        base_asset=info.base_asset,
        quote_asset=info.quote_asset,
        base_asset_precision=info.base_asset_precision,
        quote_asset_precision=info.quote_asset_precision,
        tick_size=rule(price.tick_size if price else None),
        min_price=rule(price.min_price if price else None),
        max_price=rule(price.max_price if price else None),
        step_size=rule(lot.step_size if lot else None),
        min_quantity=rule(lot.min_quantity if lot else None),
        max_quantity=rule(lot.max_quantity if lot else None),
        market_max_quantity=rule(market_lot.max_quantity if market_lot else None),
        min_notional=rule(notional.min_notional if notional else None),
        max_notional=rule(notional.max_notional if notional else None),
        min_notional_applies_to_market=notional.apply_min_to_market if notional else None,
        order_types=[c.OrderType.Name(t).removeprefix("ORDER_TYPE_") for t in info.order_types],
        spot_trading_allowed=info.is_spot_trading_allowed,
        iceberg_allowed=info.iceberg_allowed,
        freshness=Freshness(
            source="EXCHANGE_REST",
            fetched_at_ms=now_ms,
            event_time_ms=server_time_ms or None,
        ),
    )


def levels(pb: Sequence[c.PriceLevel]) -> list[PriceLevel]:
    return [PriceLevel(price=level.price, quantity=level.quantity) for level in pb]


def _ratio(numerator: Decimal, denominator: Decimal, places: int) -> float | None:
    return round_stat(float(numerator / denominator), places) if denominator else None


def _bps(difference: Decimal, reference: Decimal) -> float | None:
    return round_significant(float(difference * 10_000 / reference), BPS_DIGITS) if reference else None


def walls(side: Sequence[PriceLevel], mid: Decimal | None, count: int) -> list[Wall]:
    """The `count` largest levels of one side (ties: nearer the best price first), each with its
    size relative to the side's median level size and its distance from the mid."""
    if not side or count <= 0:
        return []
    quantities = [Decimal(level.quantity) for level in side]
    median = statistics.median(quantities)
    ranked = sorted(range(len(side)), key=lambda i: (-quantities[i], i))[:count]
    out = []
    for i in ranked:
        price = Decimal(side[i].price)
        distance = _bps(abs(price - mid), mid) if mid else None
        out.append(
            Wall(
                price=side[i].price,
                quantity=side[i].quantity,
                size_vs_median=_ratio(quantities[i], median, FACTOR_PLACES) or 0.0,
                distance_bps=distance or 0.0,
            )
        )
    return out


def summarize_book(
    symbol: str, bids: Sequence[PriceLevel], asks: Sequence[PriceLevel], wall_count: int, freshness: Freshness
) -> BookSummary:
    """L1 figures from the best levels, depth figures and walls from every level given (best first)."""
    bid_depth = sum((Decimal(level.quantity) for level in bids), Decimal(0))
    ask_depth = sum((Decimal(level.quantity) for level in asks), Decimal(0))
    best_bid = bids[0] if bids else None
    best_ask = asks[0] if asks else None
    spread = spread_bps = mid = microprice = imbalance_top = None
    mid_value: Decimal | None = None
    if best_bid is not None and best_ask is not None:
        bid, ask = Decimal(best_bid.price), Decimal(best_ask.price)
        bid_qty, ask_qty = Decimal(best_bid.quantity), Decimal(best_ask.quantity)
        mid_value = (bid + ask) / 2
        spread = decimal_text(ask - bid)
        mid = decimal_text(mid_value)
        spread_bps = _bps(ask - bid, mid_value)
        if bid_qty + ask_qty:
            microprice = derived_price(
                (bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty), [best_bid.price, best_ask.price]
            )
        imbalance_top = _ratio(bid_qty - ask_qty, bid_qty + ask_qty, RATIO_PLACES)
    return BookSummary(
        symbol=symbol,
        best_bid=best_bid,
        best_ask=best_ask,
        spread=spread,
        spread_bps=spread_bps,
        mid=mid,
        microprice=microprice,
        imbalance_top=imbalance_top,
        depth_levels=max(len(bids), len(asks)),
        bid_depth=decimal_text(bid_depth),
        ask_depth=decimal_text(ask_depth),
        imbalance_depth=_ratio(bid_depth - ask_depth, bid_depth + ask_depth, RATIO_PLACES),
        bid_walls=walls(bids, mid_value, wall_count),
        ask_walls=walls(asks, mid_value, wall_count),
        freshness=freshness,
    )


# --- text renderings ------------------------------------------------------------------------------


def _fresh(f: Freshness) -> str:
    return freshness_line(f.source, age_ms=f.age_ms, last_update_id=f.last_update_id, in_sync=f.in_sync)


def render_market_summary(result: MarketSummary) -> str:
    rows = [
        [
            t.symbol,
            t.last_price,
            f"{t.price_change_percent}%",
            t.high_price,
            t.low_price,
            t.volume,
            t.quote_volume,
            t.bid_price,
            t.ask_price,
        ]
        for t in result.tickers
    ]
    headers = ["symbol", "last", "24h", "high", "low", "volume", "quote vol", "bid", "ask"]
    return f"{table(headers, rows)}\n({_fresh(result.freshness)})"


def render_klines(result: Klines) -> str:
    head = f"{result.symbol} {result.interval.value} candles, {len(result.candles)} (UTC open time)"
    if result.summary is not None:
        s = result.summary
        head += f": change {s.change_percent:+}%, high {s.high}, low {s.low}, volume {s.volume}"
    rows = [[utc_minute(k.open_time_ms), k.open, k.high, k.low, k.close, k.volume] for k in result.candles]
    body = table(["open time", "open", "high", "low", "close", "volume"], rows) if rows else "no candles"
    return f"{head}\n{body}\n({_fresh(result.freshness)})"


def render_trades(result: RecentTrades) -> str:
    head = f"{result.symbol} recent trades: {len(result.trades)}"
    if result.summary is not None:
        s = result.summary
        head += f", VWAP {s.vwap}, taker buy {s.buy_volume} / sell {s.sell_volume} (buy share {s.buy_share})"
    rows = [[utc_second(t.time_ms), t.taker_side, t.price, t.quantity] for t in result.trades]
    body = table(["time UTC", "taker", "price", "qty"], rows) if rows else "no trades"
    return f"{head}\n{body}\n({_fresh(result.freshness)})"


def render_rules(r: SymbolRules) -> str:
    def show(value: str | None) -> str:
        return value if value is not None else "none"

    return (
        f"{r.symbol} ({r.base_asset}/{r.quote_asset}) status {r.status}, spot trading "
        f"{'allowed' if r.spot_trading_allowed else 'NOT allowed'}\n"
        f"price: tick {show(r.tick_size)}, min {show(r.min_price)}, max {show(r.max_price)}\n"
        f"quantity: step {show(r.step_size)}, min {show(r.min_quantity)}, max {show(r.max_quantity)}, "
        f"market max {show(r.market_max_quantity)}\n"
        f"notional: min {show(r.min_notional)}, max {show(r.max_notional)}\n"
        f"order types: {', '.join(r.order_types) or 'none'}\n({_fresh(r.freshness)})"
    )


def render_book(result: OrderBook) -> str:
    rows = []
    for i in range(max(len(result.bids), len(result.asks))):
        bid = result.bids[i] if i < len(result.bids) else None
        ask = result.asks[i] if i < len(result.asks) else None
        rows.append(
            [
                bid.quantity if bid else "",
                bid.price if bid else "",
                ask.price if ask else "",
                ask.quantity if ask else "",
            ]
        )
    body = table(["bid qty", "bid", "ask", "ask qty"], rows) if rows else "empty book"
    return f"{result.symbol} order book, {len(rows)} levels\n{body}\n({_fresh(result.freshness)})"


def render_book_summary(s: BookSummary) -> str:
    if s.best_bid is None or s.best_ask is None:
        top = f"{s.symbol}: one side of the book is empty"
    else:
        top = (
            f"{s.symbol} bid {s.best_bid.price} x {s.best_bid.quantity} | ask {s.best_ask.price} x "
            f"{s.best_ask.quantity}\nspread {s.spread} ({s.spread_bps} bps), mid {s.mid}, microprice "
            f"{s.microprice}, top imbalance {s.imbalance_top}"
        )
    depth = (
        f"top {s.depth_levels} levels: bid depth {s.bid_depth}, ask depth {s.ask_depth}, imbalance {s.imbalance_depth}"
    )

    def wall_text(side: str, items: Sequence[Wall]) -> str:
        shown = ", ".join(f"{w.quantity} @ {w.price} ({w.size_vs_median}x median, {w.distance_bps} bps)" for w in items)
        return f"{side} walls: {shown or 'none'}"

    return "\n".join(
        [top, depth, wall_text("bid", s.bid_walls), wall_text("ask", s.ask_walls), f"({_fresh(s.freshness)})"]
    )


def tool_result(model: BaseModel, text: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)],
        structured_content=model.model_dump(mode="json"),
    )


# --- the tools ------------------------------------------------------------------------------------

READ_ONLY = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)


def _now_ms() -> int:
    return int(time.time() * 1000)


async def _call(call: Awaitable[T], symbol: str | None) -> T:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        raise ToolError(explain_provider_error(decode_rpc_error(exc), symbol=symbol)) from None


def register_market_tools(server: MCPServer, channel: grpc.aio.Channel) -> list[str]:
    """Add the market-data and order-book tools; returns their names (all need scope `read`)."""
    stub = md_grpc.MarketDataStub(channel)

    @server.tool(
        name="get_market_summary",
        title="Price and 24h statistics",
        description=(
            "Last price and rolling 24-hour statistics (change, high, low, volume, best bid/ask, trade count) "
            "for one or more Binance spot symbols. Use it for 'what is the price of X' and quick market overviews."
        ),
        annotations=READ_ONLY,
    )
    async def get_market_summary(
        symbols: Annotated[
            list[Symbol], Field(min_length=1, max_length=MAX_SYMBOLS, description='symbols, e.g. ["BTCUSDT"]')
        ],
    ) -> Annotated[CallToolResult, MarketSummary]:
        wanted = list(dict.fromkeys(s.upper() for s in symbols))
        response = await _call(
            stub.GetTicker24h(md.GetTicker24hRequest(symbols=wanted), timeout=CALL_TIMEOUT_S),
            wanted[0] if len(wanted) == 1 else None,
        )
        result = market_summary(response, _now_ms())
        return tool_result(result, render_market_summary(result))

    @server.tool(
        name="get_klines",
        title="Candlesticks",
        description=(
            "OHLCV candlesticks of a symbol for an interval, oldest first, with a summary (change, range, volume). "
            "Without start/end times returns the most recent candles; the last one may still be open."
        ),
        annotations=READ_ONLY,
    )
    async def get_klines(
        symbol: Symbol,
        interval: Annotated[KlineInterval, Field(description="candle length")] = KlineInterval.H1,
        limit: Annotated[int, Field(ge=1, le=MAX_ROWS, description="number of candles")] = 48,
        start_time_ms: Annotated[int | None, Field(ge=0, description="first candle open time, epoch ms")] = None,
        end_time_ms: Annotated[int | None, Field(ge=0, description="last candle open time, epoch ms")] = None,
    ) -> Annotated[CallToolResult, Klines]:
        name = symbol.upper()
        if start_time_ms is not None and end_time_ms is not None and start_time_ms > end_time_ms:
            raise ToolError("Invalid parameter 'start_time_ms': it is after 'end_time_ms'.")
        request = md.GetKlinesRequest(
            symbol=name,
            interval=KLINE_INTERVALS[interval.value],
            limit=limit,
            start_time_ms=start_time_ms or 0,
            end_time_ms=end_time_ms or 0,
        )
        response = await _call(stub.GetKlines(request, timeout=CALL_TIMEOUT_S), name)
        result = klines_result(name, interval, response, _now_ms())
        return tool_result(result, render_klines(result))

    @server.tool(
        name="get_recent_trades",
        title="Recent public trades",
        description=(
            "The latest public trades of a symbol (price, quantity, aggressor side), with VWAP and the buy/sell "
            "split of taker volume."
        ),
        annotations=READ_ONLY,
    )
    async def get_recent_trades(
        symbol: Symbol,
        limit: Annotated[int, Field(ge=1, le=MAX_ROWS, description="number of trades")] = 50,
    ) -> Annotated[CallToolResult, RecentTrades]:
        name = symbol.upper()
        response = await _call(
            stub.GetRecentTrades(md.GetRecentTradesRequest(symbol=name, limit=limit), timeout=CALL_TIMEOUT_S), name
        )
        result = recent_trades_result(name, response, _now_ms())
        return tool_result(result, render_trades(result))

    @server.tool(
        name="get_symbol_rules",
        title="Trading rules of a symbol",
        description=(
            "Exchange rules of a symbol: status, base/quote assets, tick size, step size, min/max quantity, "
            "min notional, allowed order types. Check these before proposing an order price or quantity."
        ),
        annotations=READ_ONLY,
    )
    async def get_symbol_rules(symbol: Symbol) -> Annotated[CallToolResult, SymbolRules]:
        name = symbol.upper()
        response = await _call(
            stub.GetExchangeInfo(md.GetExchangeInfoRequest(symbols=[name]), timeout=CALL_TIMEOUT_S), name
        )
        found = [s for s in response.symbols if s.symbol == name]
        if not found:
            raise ToolError(unknown_symbol_text(name))
        result = symbol_rules(found[0], response.server_time_ms, _now_ms())
        return tool_result(result, render_rules(result))

    @server.tool(
        name="get_order_book_summary",
        title="Order book summary (L1 and walls)",
        description=(
            "Best bid/ask with spread, mid, microprice and top-of-book imbalance, plus depth totals, depth "
            "imbalance and the largest resting orders ('walls') within the top levels, each sized against the "
            "median level. Served from the provider's synchronised local book."
        ),
        annotations=READ_ONLY,
    )
    async def get_order_book_summary(
        symbol: Symbol,
        depth: Annotated[
            int, Field(ge=1, le=MAX_BOOK_LEVELS, description="levels per side for depth figures and walls")
        ] = DEFAULT_BOOK_LEVELS,
        walls_per_side: Annotated[int, Field(ge=0, le=MAX_WALLS, description="largest levels to list per side")] = 3,
    ) -> Annotated[CallToolResult, BookSummary]:
        name = symbol.upper()
        response = await _call(
            stub.GetOrderBook(md.GetOrderBookRequest(symbol=name, limit=depth), timeout=CALL_TIMEOUT_S), name
        )
        freshness = book_freshness(response.freshness, _now_ms())
        result = summarize_book(
            response.symbol or name, levels(response.bids), levels(response.asks), walls_per_side, freshness
        )
        return tool_result(result, render_book_summary(result))

    @server.tool(
        name="get_order_book",
        title="Order book levels (L2)",
        description=(
            "Price levels of a symbol's order book, best first on each side, from the provider's synchronised "
            "local book. Ask for few levels: get_order_book_summary is usually enough."
        ),
        annotations=READ_ONLY,
    )
    async def get_order_book(
        symbol: Symbol,
        limit: Annotated[int, Field(ge=1, le=MAX_BOOK_LEVELS, description="levels per side")] = DEFAULT_BOOK_LEVELS,
    ) -> Annotated[CallToolResult, OrderBook]:
        name = symbol.upper()
        response = await _call(
            stub.GetOrderBook(md.GetOrderBookRequest(symbol=name, limit=limit), timeout=CALL_TIMEOUT_S), name
        )
        result = OrderBook(
            symbol=response.symbol or name,
            bids=levels(response.bids),
            asks=levels(response.asks),
            freshness=book_freshness(response.freshness, _now_ms()),
        )
        return tool_result(result, render_book(result))

    return [
        "get_market_summary",
        "get_klines",
        "get_recent_trades",
        "get_symbol_rules",
        "get_order_book_summary",
        "get_order_book",
    ]
