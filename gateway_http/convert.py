"""Protobuf -> the gateway's JSON: the one place where provider messages become client payloads.

Field names are Binance's wherever Binance has the same thing (so existing parsers work);
prices and quantities stay the decimal strings the provider sent, never floats. Each
converter has its JSON Schema next to it, which the routes publish in /openapi.json.

WebSocket payloads carry a `type` ("ticker", "bookTicker", "trade", "snapshot", "diff",
"resync", "lagged", "gap") in addition to Binance's stream keys.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum

import orjson
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md

from gateway_http.openapi import DECIMAL_PATTERN, JsonSchema

Json = dict[str, object]

# --- enums on the wire --------------------------------------------------------------------------

# Binance's interval strings (case-sensitive: 1m is a minute, 1M a month).
KLINE_INTERVALS: Mapping[str, md.KlineInterval.ValueType] = {
    "1s": md.KLINE_INTERVAL_SECOND_1,
    "1m": md.KLINE_INTERVAL_MINUTE_1,
    "3m": md.KLINE_INTERVAL_MINUTE_3,
    "5m": md.KLINE_INTERVAL_MINUTE_5,
    "15m": md.KLINE_INTERVAL_MINUTE_15,
    "30m": md.KLINE_INTERVAL_MINUTE_30,
    "1h": md.KLINE_INTERVAL_HOUR_1,
    "2h": md.KLINE_INTERVAL_HOUR_2,
    "4h": md.KLINE_INTERVAL_HOUR_4,
    "6h": md.KLINE_INTERVAL_HOUR_6,
    "8h": md.KLINE_INTERVAL_HOUR_8,
    "12h": md.KLINE_INTERVAL_HOUR_12,
    "1d": md.KLINE_INTERVAL_DAY_1,
    "3d": md.KLINE_INTERVAL_DAY_3,
    "1w": md.KLINE_INTERVAL_WEEK_1,
    "1M": md.KLINE_INTERVAL_MONTH_1,
}


class SnapshotReason(StrEnum):
    """Why a WebSocket depth client receives a snapshot."""

    INITIAL = "initial"  # its first one
    RESYNC = "resync"  # continuity was re-established upstream (after a {"type":"resync"})
    LAGGED = "lagged"  # it (or the gateway's upstream) fell behind and skipped diffs


SNAPSHOT_REASONS: Mapping[md.SnapshotReason.ValueType, SnapshotReason] = {
    md.SNAPSHOT_REASON_UNSPECIFIED: SnapshotReason.RESYNC,
    md.SNAPSHOT_REASON_INITIAL: SnapshotReason.INITIAL,
    md.SNAPSHOT_REASON_RESYNC: SnapshotReason.RESYNC,
    md.SNAPSHOT_REASON_LAGGED: SnapshotReason.LAGGED,
}


def _enum_text(name: str, prefix: str) -> str:
    return name.removeprefix(prefix)


def data_source(value: c.DataSource.ValueType) -> str:
    """DATA_SOURCE_LOCAL_BOOK -> "LOCAL_BOOK"."""
    return _enum_text(c.DataSource.Name(value), "DATA_SOURCE_")


def symbol_status(info: md.SymbolInfo) -> str:
    if info.status in (md.SYMBOL_STATUS_UNSPECIFIED, md.SYMBOL_STATUS_OTHER):
        return info.status_text  # the exchange's own word for a status the provider does not model
    return _enum_text(md.SymbolStatus.Name(info.status), "SYMBOL_STATUS_")


def order_type(value: c.OrderType.ValueType) -> str:
    return _enum_text(c.OrderType.Name(value), "ORDER_TYPE_")


def stp_mode(value: c.SelfTradePreventionMode.ValueType) -> str:
    return _enum_text(c.SelfTradePreventionMode.Name(value), "SELF_TRADE_PREVENTION_MODE_")


# --- schemas ------------------------------------------------------------------------------------

DECIMAL: JsonSchema = {"type": "string", "pattern": DECIMAL_PATTERN, "description": "decimal string"}
INTEGER: JsonSchema = {"type": "integer"}
LEVELS: JsonSchema = {
    "type": "array",
    "description": "[price, quantity] pairs, best first",
    "items": {"type": "array", "prefixItems": [DECIMAL, DECIMAL], "minItems": 2, "maxItems": 2},
}


def _object(properties: Mapping[str, JsonSchema], optional: Sequence[str] = ()) -> JsonSchema:
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional],
        "properties": dict(properties),
    }


def one_or_many(item: JsonSchema) -> JsonSchema:
    """Binance's convention: `symbol` answers one object, `symbols` or no symbol an array."""
    return {"oneOf": [item, {"type": "array", "items": item}]}


TICKER_PRICE_SCHEMA = _object({"symbol": {"type": "string"}, "price": DECIMAL})

TICKER_24H_SCHEMA = _object(
    {
        "symbol": {"type": "string"},
        **{
            name: DECIMAL
            for name in (
                "priceChange",
                "priceChangePercent",
                "weightedAvgPrice",
                "prevClosePrice",
                "lastPrice",
                "lastQty",
                "bidPrice",
                "bidQty",
                "askPrice",
                "askQty",
                "openPrice",
                "highPrice",
                "lowPrice",
                "volume",
                "quoteVolume",
            )
        },
        **{name: INTEGER for name in ("openTime", "closeTime", "firstId", "lastId", "count")},
    }
)

BOOK_TICKER_SCHEMA = _object(
    {"symbol": {"type": "string"}, "bidPrice": DECIMAL, "bidQty": DECIMAL, "askPrice": DECIMAL, "askQty": DECIMAL}
)

AVG_PRICE_SCHEMA = _object({"mins": INTEGER, "price": DECIMAL, "closeTime": INTEGER})

KLINE_SCHEMA: JsonSchema = {
    "type": "array",
    "description": (
        "[openTime, open, high, low, close, volume, closeTime, quoteAssetVolume, numberOfTrades, "
        'takerBuyBaseVolume, takerBuyQuoteVolume, "0"] as Binance sends it'
    ),
    "prefixItems": [
        *(INTEGER, DECIMAL, DECIMAL, DECIMAL, DECIMAL, DECIMAL),
        *(INTEGER, DECIMAL, INTEGER, DECIMAL, DECIMAL, {"const": "0"}),
    ],
    "minItems": 12,
    "maxItems": 12,
}
KLINES_SCHEMA: JsonSchema = {"type": "array", "items": KLINE_SCHEMA}

TRADE_SCHEMA = _object(
    {
        "id": INTEGER,
        "price": DECIMAL,
        "qty": DECIMAL,
        "quoteQty": DECIMAL,
        "time": INTEGER,
        "isBuyerMaker": {"type": "boolean"},
    }
)
TRADES_SCHEMA: JsonSchema = {"type": "array", "items": TRADE_SCHEMA}

AGG_TRADE_SCHEMA: JsonSchema = {
    **_object(
        {"a": INTEGER, "p": DECIMAL, "q": DECIMAL, "f": INTEGER, "l": INTEGER, "T": INTEGER, "m": {"type": "boolean"}}
    ),
    "description": "a: aggregate id, p: price, q: quantity, f/l: first/last trade id, T: time, m: buyer was maker",
}
AGG_TRADES_SCHEMA: JsonSchema = {"type": "array", "items": AGG_TRADE_SCHEMA}

DEPTH_SCHEMA: JsonSchema = _object(
    {
        "lastUpdateId": INTEGER,
        "bids": LEVELS,
        "asks": LEVELS,
        "eventTime": {"type": "integer", "description": "exchange event time of the latest update applied"},
        "ageMs": {"type": "integer", "description": "how long ago the provider received that update"},
        "inSync": {"type": "boolean", "description": "false only with allowStale=true while resynchronising"},
        "source": {"type": "string", "description": "LOCAL_BOOK, EXCHANGE_REST, ..."},
    }
)

FILTER_SCHEMA: JsonSchema = {
    "type": "object",
    "required": ["filterType"],
    "properties": {"filterType": {"type": "string"}},
    "description": "Binance's filter objects (PRICE_FILTER, LOT_SIZE, NOTIONAL, ...), same keys",
}
RATE_LIMIT_SCHEMA = _object(
    {"rateLimitType": {"type": "string"}, "interval": {"type": "string"}, "intervalNum": INTEGER, "limit": INTEGER}
)
STRINGS: JsonSchema = {"type": "array", "items": {"type": "string"}}
SYMBOL_INFO_SCHEMA = _object(
    {
        "symbol": {"type": "string"},
        "status": {"type": "string"},
        "baseAsset": {"type": "string"},
        "baseAssetPrecision": INTEGER,
        "quoteAsset": {"type": "string"},
        "quotePrecision": INTEGER,
        "quoteAssetPrecision": INTEGER,
        "orderTypes": STRINGS,
        "icebergAllowed": {"type": "boolean"},
        "quoteOrderQtyMarketAllowed": {"type": "boolean"},
        "isSpotTradingAllowed": {"type": "boolean"},
        "filters": {"type": "array", "items": FILTER_SCHEMA},
        "defaultSelfTradePreventionMode": {"type": "string"},
        "allowedSelfTradePreventionModes": STRINGS,
    },
    optional=("defaultSelfTradePreventionMode",),
)
EXCHANGE_INFO_SCHEMA = _object(
    {
        "serverTime": INTEGER,
        "rateLimits": {"type": "array", "items": RATE_LIMIT_SCHEMA},
        "symbols": {"type": "array", "items": SYMBOL_INFO_SCHEMA},
    }
)


# --- REST payloads ------------------------------------------------------------------------------


def levels(items: Iterable[c.PriceLevel]) -> list[list[str]]:
    return [[level.price, level.quantity] for level in items]


def ticker_price(t: md.TickerPrice) -> Json:
    return {"symbol": t.symbol, "price": t.price}


def ticker_24h(t: md.Ticker24h) -> Json:
    return {
        "symbol": t.symbol,
        "priceChange": t.price_change,
        "priceChangePercent": t.price_change_percent,
        "weightedAvgPrice": t.weighted_avg_price,
        "prevClosePrice": t.prev_close_price,
        "lastPrice": t.last_price,
        "lastQty": t.last_quantity,
        "bidPrice": t.bid_price,
        "bidQty": t.bid_quantity,
        "askPrice": t.ask_price,
        "askQty": t.ask_quantity,
        "openPrice": t.open_price,
        "highPrice": t.high_price,
        "lowPrice": t.low_price,
        "volume": t.volume,
        "quoteVolume": t.quote_volume,
        "openTime": t.open_time_ms,
        "closeTime": t.close_time_ms,
        "firstId": t.first_trade_id,
        "lastId": t.last_trade_id,
        "count": t.trade_count,
    }


def book_ticker(t: md.BookTicker) -> Json:
    return {
        "symbol": t.symbol,
        "bidPrice": t.bid_price,
        "bidQty": t.bid_quantity,
        "askPrice": t.ask_price,
        "askQty": t.ask_quantity,
    }


def avg_price(a: md.GetAveragePriceResponse) -> Json:
    return {"mins": a.minutes, "price": a.price, "closeTime": a.close_time_ms}


def kline(k: md.Kline) -> list[object]:
    return [
        k.open_time_ms,
        k.open,
        k.high,
        k.low,
        k.close,
        k.volume,
        k.close_time_ms,
        k.quote_volume,
        k.trade_count,
        k.taker_buy_base_volume,
        k.taker_buy_quote_volume,
        "0",  # Binance's unused twelfth field, kept so positional parsers work
    ]


def trade(t: md.Trade) -> Json:
    return {
        "id": t.id,
        "price": t.price,
        "qty": t.quantity,
        "quoteQty": t.quote_quantity,
        "time": t.time_ms,
        "isBuyerMaker": t.is_buyer_maker,
    }


def agg_trade(t: md.AggregateTrade) -> Json:
    return {
        "a": t.id,
        "p": t.price,
        "q": t.quantity,
        "f": t.first_trade_id,
        "l": t.last_trade_id,
        "T": t.time_ms,
        "m": t.is_buyer_maker,
    }


def order_book(book: md.GetOrderBookResponse) -> Json:
    f = book.freshness
    return {
        "lastUpdateId": f.last_update_id,
        "bids": levels(book.bids),
        "asks": levels(book.asks),
        "eventTime": f.event_time_ms,
        "ageMs": f.age_ms,
        "inSync": f.in_sync,
        "source": data_source(f.source),
    }


def symbol_filter(f: md.SymbolFilter) -> Json:
    kind = f.WhichOneof("filter")
    if kind == "price":
        p = f.price
        return {"filterType": "PRICE_FILTER", "minPrice": p.min_price, "maxPrice": p.max_price, "tickSize": p.tick_size}
    if kind in ("lot_size", "market_lot_size"):
        lot = f.lot_size if kind == "lot_size" else f.market_lot_size
        return {
            "filterType": "LOT_SIZE" if kind == "lot_size" else "MARKET_LOT_SIZE",
            "minQty": lot.min_quantity,
            "maxQty": lot.max_quantity,
            "stepSize": lot.step_size,
        }
    if kind == "notional":
        n = f.notional
        if not n.max_notional:  # the proto's convention for the older MIN_NOTIONAL filter
            return {
                "filterType": "MIN_NOTIONAL",
                "minNotional": n.min_notional,
                "applyToMarket": n.apply_min_to_market,
                "avgPriceMins": n.avg_price_minutes,
            }
        return {
            "filterType": "NOTIONAL",
            "minNotional": n.min_notional,
            "applyMinToMarket": n.apply_min_to_market,
            "maxNotional": n.max_notional,
            "applyMaxToMarket": n.apply_max_to_market,
            "avgPriceMins": n.avg_price_minutes,
        }
    if kind == "percent_price":
        pp = f.percent_price
        return {
            "filterType": "PERCENT_PRICE",
            "multiplierUp": pp.multiplier_up,
            "multiplierDown": pp.multiplier_down,
            "avgPriceMins": pp.avg_price_minutes,
        }
    if kind == "max_num_orders":
        return {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": f.max_num_orders}
    if kind == "max_num_algo_orders":
        return {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": f.max_num_algo_orders}
    if kind == "iceberg_parts":
        return {"filterType": "ICEBERG_PARTS", "limit": f.iceberg_parts}
    if kind == "other_json":
        raw = orjson.loads(f.other_json)
        if isinstance(raw, dict) and isinstance(raw.get("filterType"), str):
            return raw
        raise ValueError(f"filter without a filterType from the provider: {f.other_json!r}")
    raise ValueError(f"empty symbol filter from the provider: {f!r}")


def symbol_info(s: md.SymbolInfo) -> Json:
    info: Json = {
        "symbol": s.symbol,
        "status": symbol_status(s),
        "baseAsset": s.base_asset,
        "baseAssetPrecision": s.base_asset_precision,
        "quoteAsset": s.quote_asset,
        "quotePrecision": s.quote_asset_precision,  # Binance's legacy duplicate, still read by old clients
        "quoteAssetPrecision": s.quote_asset_precision,
        "orderTypes": [order_type(t) for t in s.order_types],
        "icebergAllowed": s.iceberg_allowed,
        "quoteOrderQtyMarketAllowed": s.quote_order_qty_market_allowed,
        "isSpotTradingAllowed": s.is_spot_trading_allowed,
        "filters": [symbol_filter(f) for f in s.filters],
        "allowedSelfTradePreventionModes": [stp_mode(m) for m in s.allowed_self_trade_prevention_modes],
    }
    if s.default_self_trade_prevention_mode != c.SELF_TRADE_PREVENTION_MODE_UNSPECIFIED:
        info["defaultSelfTradePreventionMode"] = stp_mode(s.default_self_trade_prevention_mode)
    return info


def rate_limit(r: md.RateLimit) -> Json:
    return {"rateLimitType": r.rate_limit_type, "interval": r.interval, "intervalNum": r.interval_num, "limit": r.limit}


def exchange_info(e: md.GetExchangeInfoResponse) -> Json:
    return {
        "serverTime": e.server_time_ms,
        "rateLimits": [rate_limit(r) for r in e.rate_limits],
        "symbols": [symbol_info(s) for s in e.symbols],
    }


# --- WebSocket payloads -------------------------------------------------------------------------


def encode(payload: Mapping[str, object]) -> str:
    """JSON text of one frame (done once per upstream event, whatever the number of clients)."""
    return orjson.dumps(payload).decode()


def ws_ticker(t: md.Ticker24h) -> Json:
    """Binance's `<symbol>@ticker` event."""
    return {
        "type": "ticker",
        "e": "24hrTicker",
        "E": t.event_time_ms or t.close_time_ms,  # REST-sourced tickers have no event time: their close time
        "s": t.symbol,
        "p": t.price_change,
        "P": t.price_change_percent,
        "w": t.weighted_avg_price,
        "x": t.prev_close_price,
        "c": t.last_price,
        "Q": t.last_quantity,
        "b": t.bid_price,
        "B": t.bid_quantity,
        "a": t.ask_price,
        "A": t.ask_quantity,
        "o": t.open_price,
        "h": t.high_price,
        "l": t.low_price,
        "v": t.volume,
        "q": t.quote_volume,
        "O": t.open_time_ms,
        "C": t.close_time_ms,
        "F": t.first_trade_id,
        "L": t.last_trade_id,
        "n": t.trade_count,
    }


def ws_book_ticker(t: md.BookTicker) -> Json:
    """Binance's `<symbol>@bookTicker` event (no e/E, as Binance)."""
    return {
        "type": "bookTicker",
        "u": t.update_id,
        "s": t.symbol,
        "b": t.bid_price,
        "B": t.bid_quantity,
        "a": t.ask_price,
        "A": t.ask_quantity,
    }


def ws_trade(t: md.Trade) -> Json:
    """Binance's `<symbol>@trade` event; `E` is the trade time (the provider keeps no separate one)."""
    return {
        "type": "trade",
        "e": "trade",
        "E": t.time_ms,
        "s": t.symbol,
        "t": t.id,
        "p": t.price,
        "q": t.quantity,
        "T": t.time_ms,
        "m": t.is_buyer_maker,
    }


def ws_depth_snapshot(
    symbol: str,
    reason: SnapshotReason,
    last_update_id: int,
    event_time_ms: int,
    bids: Sequence[Sequence[str]],
    asks: Sequence[Sequence[str]],
) -> Json:
    return {
        "type": "snapshot",
        "reason": reason.value,
        "s": symbol,
        "lastUpdateId": last_update_id,
        "E": event_time_ms,
        "bids": [[p, q] for p, q in bids],
        "asks": [[p, q] for p, q in asks],
        "inSync": True,  # the gateway only sends snapshots of a book in sync; otherwise {"type":"resync"}
    }


def ws_depth_diff(symbol: str, diff: md.DepthDiff) -> Json:
    """Binance's `<symbol>@depth` event: U first, u last update id; absolute quantities, "0" removes."""
    return {
        "type": "diff",
        "e": "depthUpdate",
        "E": diff.event_time_ms,
        "s": symbol,
        "U": diff.first_update_id,
        "u": diff.last_update_id,
        "b": levels(diff.bids),
        "a": levels(diff.asks),
    }


def ws_resync(symbol: str, reason: str) -> Json:
    """The client's copy of the book is void; a snapshot follows once the book is back in sync."""
    return {"type": "resync", "s": symbol, "reason": reason}


def ws_lagged(symbol: str) -> Json:
    """This client fell behind and diffs were dropped; a snapshot follows at once."""
    return {"type": "lagged", "s": symbol}


def ws_gap(symbol: str, reason: str) -> Json:
    """Ticker/trade clients: the upstream was re-established; events in between may be missing."""
    return {"type": "gap", "s": symbol, "reason": reason}
