"""Protobuf -> the gateway's JSON: the one place where provider messages become client payloads.

Field names are Binance's wherever Binance has the same thing (so existing parsers work);
prices and quantities stay the decimal strings the provider sent, never floats. Each
converter has its JSON Schema next to it, which the routes publish in /openapi.json.

WebSocket payloads carry a `type` ("ticker", "bookTicker", "trade", "snapshot", "diff",
"resync", "lagged", "gap") in addition to Binance's stream keys.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from enum import StrEnum

import orjson
from binance.provider.v1 import account_pb2 as a
from binance.provider.v1 import analytics_pb2 as an
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md
from binance.provider.v1 import trading_pb2 as t

from gateway_http.openapi import DECIMAL_PATTERN, JsonSchema

Json = dict[str, object]

# --- enums on the wire --------------------------------------------------------------------------


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
    md.SNAPSHOT_REASON_REFRESH: SnapshotReason.RESYNC,  # only when it cannot continue the stream
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
    # Both entries are decimals, so plain `items` says it (tools handle it better than prefixItems).
    "items": {"type": "array", "items": DECIMAL, "minItems": 2, "maxItems": 2},
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

KLINE_INTEGER_FIELDS = 3  # openTime, closeTime, numberOfTrades; the other nine are decimal strings
KLINE_SCHEMA: JsonSchema = {
    "type": "array",
    "description": (
        "[openTime, open, high, low, close, volume, closeTime, quoteAssetVolume, numberOfTrades, "
        'takerBuyBaseVolume, takerBuyQuoteVolume, "0"] as Binance sends it: integers at 0, 6 and 8, '
        "decimal strings elsewhere"
    ),
    # Not a prefixItems tuple: schemathesis (4.32) rewrites a response's prefixItems to draft-4
    # `items: [...]` and then rejects it as invalid 3.1. Each element is an integer or a decimal,
    # and `contains` pins the integers to exactly three, so a number in a string's place still fails.
    "items": {"anyOf": [INTEGER, DECIMAL]},
    "contains": INTEGER,
    "minContains": KLINE_INTEGER_FIELDS,
    "maxContains": KLINE_INTEGER_FIELDS,
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
    bid_floor: str | None = None,
    ask_ceiling: str | None = None,
) -> Json:
    """`bidFloor`/`askCeiling`: bids below and asks above are unknown to this snapshot (null: that
    side is complete); diffs still carry changes there, as Binance's do."""
    return {
        "type": "snapshot",
        "reason": reason.value,
        "s": symbol,
        "lastUpdateId": last_update_id,
        "E": event_time_ms,
        "bids": [[p, q] for p, q in bids],
        "asks": [[p, q] for p, q in asks],
        "bidFloor": bid_floor,
        "askCeiling": ask_ceiling,
        "inSync": True,  # the gateway only sends snapshots of a book in sync; otherwise {"type":"resync"}
    }


def ws_depth_diff(
    symbol: str, diff: md.DepthDiff, bids: list[list[str]] | None = None, asks: list[list[str]] | None = None
) -> Json:
    """Binance's `<symbol>@depth` event: U first, u last update id; absolute quantities, "0" removes.

    `bids`/`asks`: the diff's levels when the caller already converted them."""
    return {
        "type": "diff",
        "e": "depthUpdate",
        "E": diff.event_time_ms,
        "s": symbol,
        "U": diff.first_update_id,
        "u": diff.last_update_id,
        "b": levels(diff.bids) if bids is None else bids,
        "a": levels(diff.asks) if asks is None else asks,
    }


def ws_resync(symbol: str, reason: str) -> Json:
    """The client's copy of the book is void; a snapshot follows once the book is back in sync."""
    return {"type": "resync", "s": symbol, "reason": reason}


def ws_lagged(symbol: str) -> Json:
    """This client fell behind and diffs were dropped; a snapshot follows at once."""
    return {"type": "lagged", "s": symbol}


def ws_gap(symbol: str, reason: str, first_id: int = 0, last_id: int = 0) -> Json:
    """Ticker/trade clients: events may be missing here (`reason` says why: a stream interrupted on
    the way from the exchange, or trade ids skipped). Skipped trade ids come as `firstId`/`lastId`,
    to fetch with GET /api/v1/trades?fromId=firstId&limit=lastId-firstId+1."""
    frame: Json = {"type": "gap", "s": symbol, "reason": reason}
    if first_id:
        frame |= {"firstId": first_id, "lastId": last_id}
    return frame


# --- trading and account ------------------------------------------------------------------------
# Binance's REST shapes (reference §6.3, §6.4): `cummulativeQuoteQty` keeps Binance's spelling;
# unset decimals are "0" as Binance prints them; provider-only facts are extra keys.


def side(value: c.Side.ValueType) -> str:
    return _enum_text(c.Side.Name(value), "SIDE_")


def order_status(value: c.OrderStatus.ValueType) -> str:
    return _enum_text(c.OrderStatus.Name(value), "ORDER_STATUS_")


def time_in_force(value: c.TimeInForce.ValueType) -> str:
    """ "" for orders without one (MARKET, LIMIT_MAKER, untriggered stops)."""
    return "" if value == c.TIME_IN_FORCE_UNSPECIFIED else _enum_text(c.TimeInForce.Name(value), "TIME_IN_FORCE_")


def execution_type(value: c.ExecutionType.ValueType) -> str:
    return _enum_text(c.ExecutionType.Name(value), "EXECUTION_TYPE_")


class OrderResponseType(StrEnum):
    """Binance's newOrderRespType: how much of the placed order the answer carries."""

    ACK = "ACK"
    RESULT = "RESULT"
    FULL = "FULL"


def default_response_type(type_name: str) -> OrderResponseType:
    """Binance's default: FULL for MARKET and LIMIT, ACK for every other type."""
    return OrderResponseType.FULL if type_name in ("MARKET", "LIMIT") else OrderResponseType.ACK


def _dec(text: str) -> str:
    return text or "0"


def _transact_time(o: t.Order) -> int:
    return o.update_time_ms or o.time_ms


ORDER_STATUSES = tuple(_enum_text(name, "ORDER_STATUS_") for name in c.OrderStatus.keys()[1:])
_ORDER_STATE_PROPERTIES: dict[str, JsonSchema] = {
    "price": DECIMAL,
    "origQty": DECIMAL,
    "executedQty": DECIMAL,
    "origQuoteOrderQty": DECIMAL,
    "cummulativeQuoteQty": DECIMAL,
    "status": {
        "type": "string",
        "enum": list(ORDER_STATUSES),
        "description": "UNKNOWN: the exchange has not told the outcome yet; query by clientOrderId",
    },
    "timeInForce": {"type": "string", "description": 'GTC, IOC, FOK or "" when the type has none'},
    "type": {"type": "string"},
    "side": {"type": "string", "enum": ["BUY", "SELL"]},
    "selfTradePreventionMode": {"type": "string"},
}
_EXPIRY: dict[str, JsonSchema] = {"expiryReason": {"type": "string", "description": "only on expired orders"}}

ORDER_SCHEMA = _object(
    {
        "symbol": {"type": "string"},
        "orderId": {"type": "integer", "description": "0 while the status is UNKNOWN"},
        "orderListId": INTEGER,
        "clientOrderId": {"type": "string"},
        **_ORDER_STATE_PROPERTIES,
        "stopPrice": DECIMAL,
        "icebergQty": DECIMAL,
        "time": INTEGER,
        "updateTime": INTEGER,
        "isWorking": {"type": "boolean"},
        "workingTime": INTEGER,
        **_EXPIRY,
    },
    optional=("expiryReason",),
)
ORDERS_SCHEMA: JsonSchema = {"type": "array", "items": ORDER_SCHEMA}

FILL_SCHEMA = _object(
    {"price": DECIMAL, "qty": DECIMAL, "commission": DECIMAL, "commissionAsset": {"type": "string"}, "tradeId": INTEGER}
)
_ACK_PROPERTIES: dict[str, JsonSchema] = {
    "symbol": {"type": "string"},
    "orderId": {"type": "integer", "description": "0 while the status is UNKNOWN"},
    "orderListId": INTEGER,
    "clientOrderId": {"type": "string"},
    "transactTime": INTEGER,
    "reconciled": {
        "type": "boolean",
        "description": "the exchange's first answer was ambiguous and the outcome was learnt by querying",
    },
}
PLACED_ORDER_SCHEMA: JsonSchema = {
    **_object(
        {
            **_ACK_PROPERTIES,
            **_ORDER_STATE_PROPERTIES,
            "workingTime": INTEGER,
            **_EXPIRY,
            "fills": {"type": "array", "items": FILL_SCHEMA},
        },
        optional=(*_ORDER_STATE_PROPERTIES, "workingTime", "expiryReason", "fills"),
    ),
    "description": "newOrderRespType ACK: the ids and transactTime; RESULT: plus the order's state; FULL: plus "
    "fills. An UNKNOWN outcome always carries the state (status UNKNOWN).",
}

CANCELED_ORDER_SCHEMA = _object(
    {
        "symbol": {"type": "string"},
        "origClientOrderId": {"type": "string", "description": "the order's own client id"},
        "orderId": INTEGER,
        "orderListId": INTEGER,
        "clientOrderId": {"type": "string", "description": "the cancel request's id"},
        "transactTime": INTEGER,
        **_ORDER_STATE_PROPERTIES,
        **_EXPIRY,
    },
    optional=("expiryReason",),
)
CANCELED_ORDERS_SCHEMA: JsonSchema = {"type": "array", "items": CANCELED_ORDER_SCHEMA}

TEST_ORDER_SCHEMA: JsonSchema = {
    "type": "object",
    "properties": {
        "standardCommissionForOrder": _object({"maker": DECIMAL, "taker": DECIMAL}),
        "notional": {**DECIMAL, "description": "price x quantity the checks used, when it could be computed"},
    },
    "description": "{} like Binance's when valid; standardCommissionForOrder with computeCommissionRates=true",
}


def _order_state(o: t.Order) -> Json:
    state: Json = {
        "price": _dec(o.price),
        "origQty": _dec(o.original_quantity),
        "executedQty": _dec(o.executed_quantity),
        "origQuoteOrderQty": _dec(o.original_quote_order_quantity),
        "cummulativeQuoteQty": _dec(o.cumulative_quote_quantity),
        "status": order_status(o.status),
        "timeInForce": time_in_force(o.time_in_force),
        "type": order_type(o.type),
        "side": side(o.side),
        "selfTradePreventionMode": stp_mode(o.self_trade_prevention_mode),
    }
    return state


def _with_expiry(body: Json, o: t.Order) -> Json:
    if o.expiry_reason:
        body["expiryReason"] = o.expiry_reason
    return body


def order(o: t.Order) -> Json:
    """Binance's order object of GET order, openOrders and allOrders."""
    body: Json = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,  # the provider places no order lists
        "clientOrderId": o.client_order_id,
        **_order_state(o),
        "stopPrice": _dec(o.stop_price),
        "icebergQty": _dec(o.iceberg_quantity),
        "time": o.time_ms,
        "updateTime": o.update_time_ms,
        "isWorking": o.is_working,
        "workingTime": o.working_time_ms if o.is_working else -1,
    }
    return _with_expiry(body, o)


def placed_order(placed: t.PlaceOrderResponse, response_type: OrderResponseType) -> Json:
    """Binance's POST order answer in the requested detail; an UNKNOWN outcome always shows its status."""
    o = placed.order
    body: Json = {
        "symbol": o.symbol,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": o.client_order_id,
        "transactTime": _transact_time(o),
        "reconciled": placed.reconciled,
    }
    if response_type is OrderResponseType.ACK and o.status != c.ORDER_STATUS_UNKNOWN:
        return body
    body.update(_order_state(o))
    body["workingTime"] = o.working_time_ms if o.is_working else -1
    _with_expiry(body, o)
    if response_type is OrderResponseType.FULL:
        body["fills"] = [
            {
                "price": f.price,
                "qty": f.quantity,
                "commission": f.commission,
                "commissionAsset": f.commission_asset,
                "tradeId": f.trade_id,
            }
            for f in placed.fills
        ]
    return body


def canceled_order(o: t.Order, cancel_client_order_id: str) -> Json:
    """Binance's DELETE order answer: clientOrderId is the cancel's own id, origClientOrderId the order's."""
    body: Json = {
        "symbol": o.symbol,
        "origClientOrderId": o.client_order_id,
        "orderId": o.order_id,
        "orderListId": -1,
        "clientOrderId": cancel_client_order_id,
        "transactTime": _transact_time(o),
        **_order_state(o),
    }
    return _with_expiry(body, o)


def tested_order(tested: t.TestOrderResponse) -> Json:
    body: Json = {}
    if tested.HasField("standard_commission"):
        rates = tested.standard_commission
        body["standardCommissionForOrder"] = {"maker": rates.maker, "taker": rates.taker}
    if tested.notional:
        body["notional"] = tested.notional
    return body


BALANCE_SCHEMA = _object({"asset": {"type": "string"}, "free": DECIMAL, "locked": DECIMAL})
_AS_OF: dict[str, JsonSchema] = {
    "asOf": {"type": "integer", "description": "when this answer was current (ms since the epoch)"},
    "source": {"type": "string", "description": "LOCAL_STREAM (user data stream) or EXCHANGE_REST"},
}
ACCOUNT_SCHEMA = _object(
    {
        "commissionRates": _object({"maker": DECIMAL, "taker": DECIMAL}),
        "canTrade": {"type": "boolean"},
        "canWithdraw": {"type": "boolean"},
        "canDeposit": {"type": "boolean"},
        "accountType": {"type": "string"},
        "updateTime": INTEGER,
        "balances": {"type": "array", "items": BALANCE_SCHEMA},
        **_AS_OF,
    }
)
BALANCES_SCHEMA = _object({"balances": {"type": "array", "items": BALANCE_SCHEMA}, **_AS_OF})
MY_TRADE_SCHEMA = _object(
    {
        "symbol": {"type": "string"},
        "id": INTEGER,
        "orderId": INTEGER,
        "orderListId": INTEGER,
        "price": DECIMAL,
        "qty": DECIMAL,
        "quoteQty": DECIMAL,
        "commission": DECIMAL,
        "commissionAsset": {"type": "string"},
        "time": INTEGER,
        "isBuyer": {"type": "boolean"},
        "isMaker": {"type": "boolean"},
    }
)
MY_TRADES_SCHEMA: JsonSchema = {"type": "array", "items": MY_TRADE_SCHEMA}


def balance(b: a.Balance) -> Json:
    return {"asset": b.asset, "free": b.free, "locked": b.locked}


def is_zero_balance(b: a.Balance) -> bool:
    return Decimal(_dec(b.free)) == 0 and Decimal(_dec(b.locked)) == 0


def account(r: a.GetAccountResponse, *, omit_zero_balances: bool) -> Json:
    return {
        "commissionRates": {"maker": r.commission_rates.maker, "taker": r.commission_rates.taker},
        "canTrade": r.can_trade,
        "canWithdraw": r.can_withdraw,
        "canDeposit": r.can_deposit,
        "accountType": r.account_type,
        "updateTime": r.update_time_ms,
        "balances": [balance(b) for b in r.balances if not (omit_zero_balances and is_zero_balance(b))],
        "asOf": r.as_of_ms,
        "source": data_source(r.source),
    }


def balances(r: a.GetBalancesResponse) -> Json:
    return {"balances": [balance(b) for b in r.balances], "asOf": r.as_of_ms, "source": data_source(r.source)}


def my_trade(m: a.MyTrade) -> Json:
    return {
        "symbol": m.symbol,
        "id": m.id,
        "orderId": m.order_id,
        "orderListId": -1,
        "price": m.price,
        "qty": m.quantity,
        "quoteQty": m.quote_quantity,
        "commission": m.commission,
        "commissionAsset": m.commission_asset,
        "time": m.time_ms,
        "isBuyer": m.is_buyer,
        "isMaker": m.is_maker,
    }


# --- the user data stream (/ws/user) ------------------------------------------------------------


class UserStreamState(StrEnum):
    """`state` of {"type":"status"} frames: whether the client may have missed events."""

    CONNECTED = "connected"  # events flow
    DISCONNECTED = "disconnected"  # events may be missing until "reconciled"
    RECONCILED = "reconciled"  # back, and the provider re-read open orders and balances
    LAGGED = "lagged"  # events were dropped (the provider's or this client's queue overflowed)


USER_STREAM_STATES: Mapping[a.UserStreamState.ValueType, UserStreamState] = {
    a.USER_STREAM_STATE_UNSPECIFIED: UserStreamState.DISCONNECTED,
    a.USER_STREAM_STATE_CONNECTED: UserStreamState.CONNECTED,
    a.USER_STREAM_STATE_DISCONNECTED: UserStreamState.DISCONNECTED,
    a.USER_STREAM_STATE_RECONCILED: UserStreamState.RECONCILED,
    a.USER_STREAM_STATE_LAGGED: UserStreamState.LAGGED,
}


def ws_execution_report(u: a.OrderUpdate) -> Json:
    """Binance's `executionReport` (reference §9.2); c is the cancel's id on cancels, C the order's own."""
    o = u.order
    return {
        "type": "executionReport",
        "e": "executionReport",
        "E": u.event_time_ms,
        "s": o.symbol,
        "c": o.client_order_id,
        "S": side(o.side),
        "o": order_type(o.type),
        "f": time_in_force(o.time_in_force),
        "q": _dec(o.original_quantity),
        "p": _dec(o.price),
        "P": _dec(o.stop_price),
        "F": _dec(o.iceberg_quantity),
        "g": -1,
        "C": u.original_client_order_id,
        "x": execution_type(u.execution_type),
        "X": order_status(o.status),
        "r": u.reject_reason or "NONE",
        "i": o.order_id,
        "l": _dec(u.last_executed_quantity),
        "z": _dec(o.executed_quantity),
        "L": _dec(u.last_executed_price),
        "n": _dec(u.commission),
        "N": u.commission_asset or None,
        "T": u.transaction_time_ms,
        "t": u.trade_id,
        "w": o.is_working,
        "m": u.is_maker,
        "O": o.time_ms,
        "Z": _dec(o.cumulative_quote_quantity),
        "Y": _dec(u.last_quote_quantity),
        "Q": _dec(o.original_quote_order_quantity),
        "W": o.working_time_ms,
        "V": stp_mode(o.self_trade_prevention_mode),
    }


def ws_account_position(p: a.AccountPosition) -> Json:
    """Binance's `outboundAccountPosition`: absolute balances of the assets that may have changed."""
    return {
        "type": "outboundAccountPosition",
        "e": "outboundAccountPosition",
        "E": p.event_time_ms,
        "u": p.last_update_time_ms,
        "B": [{"a": b.asset, "f": b.free, "l": b.locked} for b in p.balances],
    }


def ws_balance_update(d: a.BalanceDelta) -> Json:
    """Binance's `balanceUpdate` (deposits, withdrawals, transfers): d is the signed delta."""
    return {
        "type": "balanceUpdate",
        "e": "balanceUpdate",
        "E": d.event_time_ms,
        "a": d.asset,
        "d": d.delta,
        "T": d.clear_time_ms,
    }


def ws_user_status(state: UserStreamState, detail: str, time_ms: int) -> Json:
    return {"type": "status", "state": state.value, "detail": detail, "E": time_ms}


def ws_user_event(event: a.StreamUserDataResponse) -> Json | None:
    """One provider user-data event as its frame; None for an empty event."""
    kind = event.WhichOneof("event")
    if kind == "order_update":
        return ws_execution_report(event.order_update)
    if kind == "account_position":
        return ws_account_position(event.account_position)
    if kind == "balance_delta":
        return ws_balance_update(event.balance_delta)
    if kind == "status":
        s = event.status
        return ws_user_status(USER_STREAM_STATES[s.state], s.detail, s.time_ms)
    return None


# --- analytics ----------------------------------------------------------------------------------
# No Binance equivalent: camelCase of the provider's field names, enums without their prefix,
# statistics as JSON numbers (null when undefined, e.g. a ratio over zero), prices as decimals.

NUMBER: JsonSchema = {"type": ["number", "null"], "description": "null when undefined (e.g. a ratio over zero)"}
TIME_WINDOW_SCHEMA = _object({"startMs": INTEGER, "endMs": INTEGER})
_WINDOWS: JsonSchema = {"type": "array", "items": TIME_WINDOW_SCHEMA}
DATA_QUALITY_FLAGS = tuple(_enum_text(name, "DATA_QUALITY_FLAG_") for name in an.DataQualityFlag.keys()[1:])
SEVERITIES = tuple(_enum_text(name, "SEVERITY_") for name in an.Severity.keys()[1:])
FRESHNESS_SCHEMA = _object(
    {
        "lastUpdateId": INTEGER,
        "eventTime": INTEGER,
        "ageMs": INTEGER,
        "inSync": {"type": "boolean"},
        "source": {"type": "string"},
    }
)
META_SCHEMA = _object(
    {
        "symbol": {"type": "string"},
        "requested": TIME_WINDOW_SCHEMA,
        "covered": {**TIME_WINDOW_SCHEMA, "description": "the part of the window data really existed for"},
        "tradeCount": INTEGER,
        "snapshotCount": INTEGER,
        "bookUpdateCount": INTEGER,
        "thresholds": {"type": "object", "additionalProperties": NUMBER, "description": "name -> value used"},
        "flags": {"type": "array", "items": {"type": "string", "enum": list(DATA_QUALITY_FLAGS)}},
        "gaps": {**_WINDOWS, "description": "recording gaps inside the covered window"},
        "freshness": FRESHNESS_SCHEMA,
        "computedAtMs": INTEGER,
    }
)
PRICE_RANGE_SCHEMA = _object(
    {
        "priceLow": DECIMAL,
        "priceHigh": DECIMAL,
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "volumeRatio": NUMBER,
    }
)
_PRICE_RANGES: JsonSchema = {"type": "array", "items": PRICE_RANGE_SCHEMA}
_SIDE: JsonSchema = {"type": "string", "enum": ["BUY", "SELL"]}
_STRINGS_OF_DECIMALS: JsonSchema = {"type": "array", "items": DECIMAL}

ORDER_FLOW_SCHEMA = _object(
    {
        "meta": META_SCHEMA,
        "buyVolume": NUMBER,
        "sellVolume": NUMBER,
        "buyCount": INTEGER,
        "sellCount": INTEGER,
        "delta": NUMBER,
        "buySellRatio": NUMBER,
        "direction": {
            "type": "string",
            "enum": [_enum_text(n, "FLOW_DIRECTION_") for n in an.FlowDirection.keys()[1:]],
        },
        "series": {
            "type": "array",
            "items": _object(
                {
                    "startMs": INTEGER,
                    "buyVolume": NUMBER,
                    "sellVolume": NUMBER,
                    "delta": NUMBER,
                    "cumulativeDelta": NUMBER,
                }
            ),
        },
        "bidAddedPerSecond": NUMBER,
        "askAddedPerSecond": NUMBER,
        "netFlowPerSecond": NUMBER,
        "bookImbalance": NUMBER,
    }
)
VOLUME_PROFILE_SCHEMA = _object(
    {
        "meta": META_SCHEMA,
        "binSize": DECIMAL,
        "bins": {
            "type": "array",
            "items": _object(
                {
                    "priceLow": DECIMAL,
                    "priceHigh": DECIMAL,
                    "buyVolume": NUMBER,
                    "sellVolume": NUMBER,
                    "totalVolume": NUMBER,
                }
            ),
        },
        "pointOfControl": {"type": "string", "description": "decimal price; empty without trades"},
        "valueAreaHigh": {"type": "string"},
        "valueAreaLow": {"type": "string"},
        "valueAreaFraction": NUMBER,
        "highVolumeNodes": _STRINGS_OF_DECIMALS,
        "lowVolumeNodes": _STRINGS_OF_DECIMALS,
        "vacuums": _PRICE_RANGES,
    }
)
ANOMALIES_SCHEMA = _object(
    {
        "meta": META_SCHEMA,
        "anomalies": {
            "type": "array",
            "items": _object(
                {
                    "type": {
                        "type": "string",
                        "enum": [_enum_text(n, "ANOMALY_TYPE_") for n in an.AnomalyType.keys()[1:]],
                    },
                    "severity": {"type": "string", "enum": list(SEVERITIES)},
                    "confidence": NUMBER,
                    "detectedAtMs": INTEGER,
                    "window": TIME_WINDOW_SCHEMA,
                    "price": {"type": "string", "description": "decimal price of the level concerned, or empty"},
                    "evidence": {
                        "type": "array",
                        "items": _object({"name": {"type": "string"}, "value": NUMBER, "detail": {"type": "string"}}),
                    },
                    "recommendedAction": {"type": "string"},
                }
            ),
        },
    }
)
HEALTH_SCHEMA = _object(
    {
        "meta": META_SCHEMA,
        "score": {**NUMBER, "description": "0..100"},
        "components": {
            "type": "array",
            "items": _object(
                {
                    "name": {"type": "string"},
                    "weight": NUMBER,
                    "value": NUMBER,
                    "score": NUMBER,
                    "formula": {"type": "string"},
                }
            ),
        },
    }
)
LIQUIDITY_SCHEMA = _object(
    {
        "meta": META_SCHEMA,
        "walls": {
            "type": "array",
            "items": _object(
                {
                    "side": _SIDE,
                    "price": DECIMAL,
                    "quantity": DECIMAL,
                    "sizeVsMedian": NUMBER,
                    "persistedSeconds": INTEGER,
                }
            ),
        },
        "absorptions": {
            "type": "array",
            "items": _object(
                {
                    "aggressorSide": _SIDE,
                    "price": DECIMAL,
                    "tradedVolume": NUMBER,
                    "timeMs": INTEGER,
                    "heldSeconds": INTEGER,
                }
            ),
        },
        "vacuums": _PRICE_RANGES,
        "stopSuggestions": {
            "type": "array",
            "items": _object({"positionSide": _SIDE, "stopPrice": DECIMAL, "rationale": {"type": "string"}}),
        },
    }
)
SNAPSHOTS_SCHEMA = _object(
    {
        "symbol": {"type": "string"},
        "snapshots": {
            "type": "array",
            "items": _object({"time": INTEGER, "lastUpdateId": INTEGER, "bids": LEVELS, "asks": LEVELS}),
        },
        "gaps": {**_WINDOWS, "description": "recording gaps inside the range"},
    }
)


def number(value: float) -> float | None:
    return value if math.isfinite(value) else None


def time_window(w: c.TimeWindow) -> Json:
    return {"startMs": w.start_ms, "endMs": w.end_ms}


def freshness(f: c.Freshness) -> Json:
    return {
        "lastUpdateId": f.last_update_id,
        "eventTime": f.event_time_ms,
        "ageMs": f.age_ms,
        "inSync": f.in_sync,
        "source": data_source(f.source),
    }


def analysis_meta(m: an.AnalysisMeta) -> Json:
    return {
        "symbol": m.symbol,
        "requested": time_window(m.requested),
        "covered": time_window(m.covered),
        "tradeCount": m.trade_count,
        "snapshotCount": m.snapshot_count,
        "bookUpdateCount": m.book_update_count,
        "thresholds": {th.name: number(th.value) for th in m.thresholds},
        "flags": [_enum_text(an.DataQualityFlag.Name(f), "DATA_QUALITY_FLAG_") for f in m.flags],
        "gaps": [time_window(g) for g in m.gaps],
        "freshness": freshness(m.freshness),
        "computedAtMs": m.computed_at_ms,
    }


def severity(value: an.Severity.ValueType) -> str:
    return _enum_text(an.Severity.Name(value), "SEVERITY_")


def price_range(r: an.PriceRange) -> Json:
    return {
        "priceLow": r.price_low,
        "priceHigh": r.price_high,
        "severity": severity(r.severity),
        "volumeRatio": number(r.volume_ratio),
    }


def order_flow(r: an.GetOrderFlowResponse) -> Json:
    return {
        "meta": analysis_meta(r.meta),
        "buyVolume": number(r.buy_volume),
        "sellVolume": number(r.sell_volume),
        "buyCount": r.buy_count,
        "sellCount": r.sell_count,
        "delta": number(r.delta),
        "buySellRatio": number(r.buy_sell_ratio),
        "direction": _enum_text(an.FlowDirection.Name(r.direction), "FLOW_DIRECTION_"),
        "series": [
            {
                "startMs": b.start_ms,
                "buyVolume": number(b.buy_volume),
                "sellVolume": number(b.sell_volume),
                "delta": number(b.delta),
                "cumulativeDelta": number(b.cumulative_delta),
            }
            for b in r.series
        ],
        "bidAddedPerSecond": number(r.bid_added_per_second),
        "askAddedPerSecond": number(r.ask_added_per_second),
        "netFlowPerSecond": number(r.net_flow_per_second),
        "bookImbalance": number(r.book_imbalance),
    }


def volume_profile(r: an.GetVolumeProfileResponse) -> Json:
    return {
        "meta": analysis_meta(r.meta),
        "binSize": r.bin_size,
        "bins": [
            {
                "priceLow": b.price_low,
                "priceHigh": b.price_high,
                "buyVolume": number(b.buy_volume),
                "sellVolume": number(b.sell_volume),
                "totalVolume": number(b.total_volume),
            }
            for b in r.bins
        ],
        "pointOfControl": r.point_of_control,
        "valueAreaHigh": r.value_area_high,
        "valueAreaLow": r.value_area_low,
        "valueAreaFraction": number(r.value_area_fraction),
        "highVolumeNodes": list(r.high_volume_nodes),
        "lowVolumeNodes": list(r.low_volume_nodes),
        "vacuums": [price_range(v) for v in r.vacuums],
    }


def anomalies(r: an.GetAnomaliesResponse) -> Json:
    return {
        "meta": analysis_meta(r.meta),
        "anomalies": [
            {
                "type": _enum_text(an.AnomalyType.Name(x.type), "ANOMALY_TYPE_"),
                "severity": severity(x.severity),
                "confidence": number(x.confidence),
                "detectedAtMs": x.detected_at_ms,
                "window": time_window(x.window),
                "price": x.price,
                "evidence": [{"name": e.name, "value": number(e.value), "detail": e.detail} for e in x.evidence],
                "recommendedAction": x.recommended_action,
            }
            for x in r.anomalies
        ],
    }


def health(r: an.GetMicrostructureHealthResponse) -> Json:
    return {
        "meta": analysis_meta(r.meta),
        "score": number(r.score),
        "components": [
            {
                "name": h.name,
                "weight": number(h.weight),
                "value": number(h.value),
                "score": number(h.score),
                "formula": h.formula,
            }
            for h in r.components
        ],
    }


def liquidity_map(r: an.GetLiquidityMapResponse) -> Json:
    return {
        "meta": analysis_meta(r.meta),
        "walls": [
            {
                "side": side(w.side),
                "price": w.price,
                "quantity": w.quantity,
                "sizeVsMedian": number(w.size_vs_median),
                "persistedSeconds": w.persisted_seconds,
            }
            for w in r.walls
        ],
        "absorptions": [
            {
                "aggressorSide": side(x.aggressor_side),
                "price": x.price,
                "tradedVolume": number(x.traded_volume),
                "timeMs": x.time_ms,
                "heldSeconds": x.held_seconds,
            }
            for x in r.absorptions
        ],
        "vacuums": [price_range(v) for v in r.vacuums],
        "stopSuggestions": [
            {"positionSide": side(s.position_side), "stopPrice": s.stop_price, "rationale": s.rationale}
            for s in r.stop_suggestions
        ],
    }


def snapshots(symbol: str, batches: Iterable[an.GetSnapshotsResponse]) -> Json:
    """Every batch of GetSnapshots in one answer: snapshots in time order and the gaps between them."""
    snaps: list[Json] = []
    gaps: list[Json] = []
    for batch in batches:
        snaps.extend(
            {"time": s.time_ms, "lastUpdateId": s.last_update_id, "bids": levels(s.bids), "asks": levels(s.asks)}
            for s in batch.snapshots
        )
        gaps.extend(time_window(g) for g in batch.gaps)
    return {"symbol": symbol, "snapshots": snaps, "gaps": gaps}
