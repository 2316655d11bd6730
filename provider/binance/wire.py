"""Binance Spot REST on the wire: paths, request weights, parameters, and JSON → value types.

The one place the provider knows Binance's REST shapes (reference §2, §4, §6). Pure code: the
REST shell (`provider.binance.rest`) sends what this module describes and hands the decoded
JSON back here. Parsers check every field they read and raise `WireFormatError` on a shape
that is not the documented one; unknown extra fields are ignored, unknown enum values kept
(see `provider.marketdata.model`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from enum import Enum, StrEnum
from types import MappingProxyType
from typing import Any, Final, TypeVar

from provider.account.model import AccountInfo, Balance, MyTrade
from provider.binance.signing import ParamValue
from provider.marketdata.model import (
    AggTrade,
    AvgPrice,
    BookTicker,
    DepthSnapshot,
    ExchangeInfo,
    Filter,
    FilterType,
    Kline,
    Level,
    LotSizeFilter,
    MaxNumFilter,
    MaxPositionFilter,
    MinNotionalFilter,
    NotionalFilter,
    OrderType,
    PercentPriceBySideFilter,
    PercentPriceFilter,
    PriceFilter,
    RateLimitInterval,
    RateLimitRule,
    RateLimitType,
    SelfTradePreventionMode,
    SymbolRules,
    SymbolStatus,
    Ticker24h,
    TickerPrice,
    Trade,
    TrailingDeltaFilter,
    UnknownFilter,
)
from provider.trading import model as tm

__all__ = [
    "DEFAULT_RECV_WINDOW_MS",
    "ApiPath",
    "Method",
    "Weight",
    "WireFormatError",
    "agg_trades_params",
    "book_ticker_weight",
    "depth_weight",
    "klines_params",
    "parse_agg_trades",
    "parse_avg_price",
    "parse_book_tickers",
    "parse_depth",
    "parse_error",
    "parse_exchange_info",
    "parse_filter",
    "parse_klines",
    "parse_server_time",
    "parse_ticker_24h",
    "parse_ticker_prices",
    "parse_trades",
    "raw_rate_limits",
    "symbols_params",
    "ticker_24h_weight",
    "ticker_price_weight",
]

DEFAULT_RECV_WINDOW_MS: Final = 5000
"""Binance's default; the reference advises keeping it at or below 5000 ms."""


class Method(StrEnum):
    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"

    @property
    def params_in_body(self) -> bool:
        """POST/PUT send their parameters as a form body; GET/DELETE in the query string."""
        return self in (Method.POST, Method.PUT)


class ApiPath(StrEnum):
    PING = "/api/v3/ping"
    TIME = "/api/v3/time"
    EXCHANGE_INFO = "/api/v3/exchangeInfo"
    DEPTH = "/api/v3/depth"
    TRADES = "/api/v3/trades"
    HISTORICAL_TRADES = "/api/v3/historicalTrades"
    AGG_TRADES = "/api/v3/aggTrades"
    KLINES = "/api/v3/klines"
    UI_KLINES = "/api/v3/uiKlines"
    AVG_PRICE = "/api/v3/avgPrice"
    TICKER_24H = "/api/v3/ticker/24hr"
    TICKER_PRICE = "/api/v3/ticker/price"
    BOOK_TICKER = "/api/v3/ticker/bookTicker"
    ORDER = "/api/v3/order"
    ORDER_TEST = "/api/v3/order/test"
    CANCEL_REPLACE = "/api/v3/order/cancelReplace"
    OPEN_ORDERS = "/api/v3/openOrders"
    ALL_ORDERS = "/api/v3/allOrders"
    ACCOUNT = "/api/v3/account"
    MY_TRADES = "/api/v3/myTrades"
    RATE_LIMIT_ORDER = "/api/v3/rateLimit/order"


class Weight:
    """Documented fixed request weights (reference §6). Variable ones are functions below."""

    PING: Final = 1
    TIME: Final = 1
    EXCHANGE_INFO: Final = 20
    TRADES: Final = 25
    HISTORICAL_TRADES: Final = 25
    AGG_TRADES: Final = 4
    KLINES: Final = 2
    AVG_PRICE: Final = 2
    ORDER: Final = 1
    """Placement/cancel; 0 when successful (the shell refunds it)."""
    ORDER_TEST: Final = 1
    ORDER_TEST_WITH_COMMISSION: Final = 20
    QUERY_ORDER: Final = 4
    OPEN_ORDERS_SYMBOL: Final = 6
    OPEN_ORDERS_ALL: Final = 80
    ALL_ORDERS: Final = 20
    ACCOUNT: Final = 20
    MY_TRADES: Final = 20
    MY_TRADES_BY_ORDER: Final = 5
    RATE_LIMIT_ORDER: Final = 40


def depth_weight(limit: int) -> int:
    """1–100 → 5, 101–500 → 25, 501–1000 → 50, above → 250."""
    if limit <= 100:
        return 5
    if limit <= 500:
        return 25
    if limit <= 1000:
        return 50
    return 250


def ticker_24h_weight(symbol_count: int | None) -> int:
    """``None`` = all symbols. One symbol is sent as ``symbol`` (2)."""
    if symbol_count is None:
        return 80
    if symbol_count <= 20:
        return 2
    if symbol_count <= 100:
        return 40
    return 80


def ticker_price_weight(symbol_count: int | None) -> int:
    """``symbol`` → 2; ``symbols`` or all → 4."""
    return 2 if symbol_count == 1 else 4


book_ticker_weight: Final = ticker_price_weight
"""``ticker/bookTicker`` is weighed like ``ticker/price``."""


# ------------------------------------------------------------------------- parameters

Param = tuple[str, ParamValue]


def symbols_params(symbols: Sequence[str] | None) -> list[Param]:
    """``symbol=X`` for one (the single-object form), ``symbols=[…]`` for several, nothing for all."""
    if symbols is None:
        return []
    if isinstance(symbols, str):
        raise TypeError("symbols must be a sequence of names, not one string")
    if not symbols:
        raise ValueError("symbols must not be empty (pass None for all symbols)")
    if len(symbols) == 1:
        return [("symbol", symbols[0])]
    return [("symbols", list(symbols))]


def _optional(*pairs: tuple[str, ParamValue | None]) -> list[Param]:
    return [(name, value) for name, value in pairs if value is not None]


def agg_trades_params(
    symbol: str, from_id: int | None, start_ms: int | None, end_ms: int | None, limit: int | None
) -> list[Param]:
    return [
        ("symbol", symbol),
        *_optional(("fromId", from_id), ("startTime", start_ms), ("endTime", end_ms), ("limit", limit)),
    ]


def historical_trades_params(symbol: str, from_id: int | None, limit: int | None) -> list[Param]:
    return [("symbol", symbol), *_optional(("fromId", from_id), ("limit", limit))]


def klines_params(
    symbol: str, interval: str, start_ms: int | None, end_ms: int | None, limit: int | None, time_zone: str | None
) -> list[Param]:
    return [
        ("symbol", symbol),
        ("interval", interval),
        *_optional(("startTime", start_ms), ("endTime", end_ms), ("timeZone", time_zone), ("limit", limit)),
    ]


# ------------------------------------------------------------------------- field readers


class WireFormatError(ValueError):
    """A response body that does not have the documented shape."""


_DECIMAL_RE: Final = re.compile(r"-?[0-9]+(\.[0-9]+)?")
E = TypeVar("E", bound=Enum)
T = TypeVar("T")


def _obj(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise WireFormatError(f"{what}: expected an object, got {type(value).__name__}")
    return value


def _list(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise WireFormatError(f"{what}: expected an array, got {type(value).__name__}")
    return value


def _get(obj: Mapping[str, Any], key: str) -> object:
    try:
        return obj[key]
    except KeyError:
        raise WireFormatError(f"missing field {key!r}") from None


def _int_value(value: object, what: str) -> int:
    # bool is an int subclass in Python, but never a valid integer field on the wire.
    if isinstance(value, bool) or not isinstance(value, int):
        raise WireFormatError(f"{what}: expected an integer, got {value!r}")
    return value


def _int(obj: Mapping[str, Any], key: str) -> int:
    return _int_value(_get(obj, key), key)


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = _get(obj, key)
    if not isinstance(value, str):
        raise WireFormatError(f"{key}: expected a string, got {value!r}")
    return value


def _decimal_value(value: object, what: str) -> str:
    if not isinstance(value, str) or not _DECIMAL_RE.fullmatch(value):
        raise WireFormatError(f"{what}: expected a decimal string, got {value!r}")
    return value


def _dec(obj: Mapping[str, Any], key: str) -> str:
    return _decimal_value(_get(obj, key), key)


def _bool(obj: Mapping[str, Any], key: str, default: bool | None = None) -> bool:
    if key not in obj and default is not None:
        return default
    value = _get(obj, key)
    if not isinstance(value, bool):
        raise WireFormatError(f"{key}: expected a boolean, got {value!r}")
    return value


def _enum(enum: type[E], value: object, fallback: E) -> E:
    try:
        return enum(value)
    except ValueError:
        return fallback


def _known(enum: type[E], values: object, what: str) -> tuple[E, ...]:
    """The values this build knows, in wire order; unknown ones are left out."""
    out = []
    for value in _list(values, what):
        try:
            out.append(enum(value))
        except ValueError:
            continue
    return tuple(out)


def _each(value: object, what: str, parse: Callable[[Any], T]) -> list[T]:
    items = _list(value, what)
    try:
        return [parse(item) for item in items]
    except WireFormatError as exc:
        raise WireFormatError(f"{what}: {exc}") from None


def _one_or_many(value: object, what: str, parse: Callable[[Any], T]) -> list[T]:
    """Ticker endpoints answer one object for ``symbol=`` and an array otherwise."""
    if isinstance(value, list):
        return _each(value, what, parse)
    try:
        return [parse(value)]
    except WireFormatError as exc:
        raise WireFormatError(f"{what}: {exc}") from None


# ------------------------------------------------------------------------- general


def parse_error(body: object) -> tuple[int, str] | None:
    """``(code, msg)`` of a Binance error body, or None if it is not one."""
    if not isinstance(body, Mapping):
        return None
    code, msg = body.get("code"), body.get("msg")
    if isinstance(code, bool) or not isinstance(code, int) or not isinstance(msg, str):
        return None
    return code, msg


def parse_server_time(body: object) -> int:
    return _int(_obj(body, "time"), "serverTime")


def raw_rate_limits(body: object) -> list[Mapping[str, object]]:
    """The ``rateLimits`` entries of an exchangeInfo body, as the weight budget takes them."""
    entries = _obj(body, "exchangeInfo").get("rateLimits", [])
    return [entry for entry in _list(entries, "rateLimits") if isinstance(entry, Mapping)]


def _rate_limit(value: object) -> RateLimitRule:
    obj = _obj(value, "rate limit")
    return RateLimitRule(
        rate_limit_type=_enum(RateLimitType, obj.get("rateLimitType"), RateLimitType.UNKNOWN),
        interval=_enum(RateLimitInterval, obj.get("interval"), RateLimitInterval.UNKNOWN),
        interval_num=_int(obj, "intervalNum"),
        limit=_int(obj, "limit"),
    )


# ------------------------------------------------------------------------- filters

_LOT_SIZE_TYPES: Final = frozenset({FilterType.LOT_SIZE, FilterType.MARKET_LOT_SIZE})
# Count-limit filters: which field holds the number.
_MAX_NUM_FIELDS: Final = {
    FilterType.ICEBERG_PARTS: "limit",
    FilterType.MAX_NUM_ORDERS: "maxNumOrders",
    FilterType.MAX_NUM_ALGO_ORDERS: "maxNumAlgoOrders",
    FilterType.MAX_NUM_ICEBERG_ORDERS: "maxNumIcebergOrders",
    FilterType.MAX_NUM_ORDER_AMENDS: "maxNumOrderAmends",
    FilterType.MAX_NUM_ORDER_LISTS: "maxNumOrderLists",
    FilterType.EXCHANGE_MAX_NUM_ORDERS: "maxNumOrders",
    FilterType.EXCHANGE_MAX_NUM_ALGO_ORDERS: "maxNumAlgoOrders",
    FilterType.EXCHANGE_MAX_NUM_ICEBERG_ORDERS: "maxNumIcebergOrders",
    FilterType.EXCHANGE_MAX_NUM_ORDER_LISTS: "maxNumOrderLists",
}


def _typed_filter(kind: FilterType, obj: Mapping[str, Any]) -> Filter:
    if kind is FilterType.PRICE_FILTER:
        return PriceFilter(_dec(obj, "minPrice"), _dec(obj, "maxPrice"), _dec(obj, "tickSize"))
    if kind in _LOT_SIZE_TYPES:
        return LotSizeFilter(kind, _dec(obj, "minQty"), _dec(obj, "maxQty"), _dec(obj, "stepSize"))
    if kind is FilterType.MIN_NOTIONAL:
        return MinNotionalFilter(_dec(obj, "minNotional"), _bool(obj, "applyToMarket"), _int(obj, "avgPriceMins"))
    if kind is FilterType.NOTIONAL:
        return NotionalFilter(
            min_notional=_dec(obj, "minNotional"),
            apply_min_to_market=_bool(obj, "applyMinToMarket"),
            max_notional=_dec(obj, "maxNotional"),
            apply_max_to_market=_bool(obj, "applyMaxToMarket"),
            avg_price_mins=_int(obj, "avgPriceMins"),
        )
    if kind is FilterType.PERCENT_PRICE:
        return PercentPriceFilter(_dec(obj, "multiplierUp"), _dec(obj, "multiplierDown"), _int(obj, "avgPriceMins"))
    if kind is FilterType.PERCENT_PRICE_BY_SIDE:
        return PercentPriceBySideFilter(
            bid_multiplier_up=_dec(obj, "bidMultiplierUp"),
            bid_multiplier_down=_dec(obj, "bidMultiplierDown"),
            ask_multiplier_up=_dec(obj, "askMultiplierUp"),
            ask_multiplier_down=_dec(obj, "askMultiplierDown"),
            avg_price_mins=_int(obj, "avgPriceMins"),
        )
    if kind is FilterType.MAX_POSITION:
        return MaxPositionFilter(_dec(obj, "maxPosition"))
    if kind is FilterType.TRAILING_DELTA:
        return TrailingDeltaFilter(
            min_trailing_above_delta=_int(obj, "minTrailingAboveDelta"),
            max_trailing_above_delta=_int(obj, "maxTrailingAboveDelta"),
            min_trailing_below_delta=_int(obj, "minTrailingBelowDelta"),
            max_trailing_below_delta=_int(obj, "maxTrailingBelowDelta"),
        )
    return MaxNumFilter(kind, _int(obj, _MAX_NUM_FIELDS[kind]))


def parse_filter(value: object) -> Filter:
    """A symbol or exchange filter. Unknown types, and known ones whose fields do not parse,
    are kept raw rather than failing the whole exchangeInfo."""
    obj = _obj(value, "filter")
    raw_type = obj.get("filterType")
    if not isinstance(raw_type, str):
        raise WireFormatError(f"filter without a filterType: {obj!r}")
    try:
        return _typed_filter(FilterType(raw_type), obj)
    except (ValueError, KeyError):  # ValueError covers WireFormatError and an unknown filterType
        return UnknownFilter(raw_type, MappingProxyType(dict(obj)))


# ------------------------------------------------------------------------- exchange info


def _permission_sets(value: object) -> tuple[tuple[str, ...], ...]:
    sets = []
    for inner in _list(value, "permissionSets"):
        names = _list(inner, "permissionSets[]")
        if not all(isinstance(name, str) for name in names):
            raise WireFormatError("permissionSets: expected arrays of strings")
        sets.append(tuple(names))
    return tuple(sets)


def _symbol_rules(value: object) -> SymbolRules:
    obj = _obj(value, "symbol")
    default_stp = obj.get("defaultSelfTradePreventionMode")
    try:
        return SymbolRules(
            symbol=_str(obj, "symbol"),
            status=_enum(SymbolStatus, _str(obj, "status"), SymbolStatus.UNKNOWN),
            base_asset=_str(obj, "baseAsset"),
            base_asset_precision=_int(obj, "baseAssetPrecision"),
            quote_asset=_str(obj, "quoteAsset"),
            quote_asset_precision=_int(obj, "quoteAssetPrecision"),
            base_commission_precision=_int(obj, "baseCommissionPrecision"),
            quote_commission_precision=_int(obj, "quoteCommissionPrecision"),
            order_types=_known(OrderType, obj.get("orderTypes", []), "orderTypes"),
            iceberg_allowed=_bool(obj, "icebergAllowed", False),
            oco_allowed=_bool(obj, "ocoAllowed", False),
            oto_allowed=_bool(obj, "otoAllowed", False),
            quote_order_qty_market_allowed=_bool(obj, "quoteOrderQtyMarketAllowed", False),
            allow_trailing_stop=_bool(obj, "allowTrailingStop", False),
            cancel_replace_allowed=_bool(obj, "cancelReplaceAllowed", False),
            amend_allowed=_bool(obj, "amendAllowed", False),
            peg_instructions_allowed=_bool(obj, "pegInstructionsAllowed", False),
            is_spot_trading_allowed=_bool(obj, "isSpotTradingAllowed", False),
            is_margin_trading_allowed=_bool(obj, "isMarginTradingAllowed", False),
            filters=tuple(parse_filter(f) for f in _list(obj.get("filters", []), "filters")),
            permission_sets=_permission_sets(obj.get("permissionSets", [])),
            default_stp_mode=None
            if default_stp is None
            else _enum(SelfTradePreventionMode, default_stp, SelfTradePreventionMode.NONE),
            allowed_stp_modes=_known(
                SelfTradePreventionMode, obj.get("allowedSelfTradePreventionModes", []), "allowedStpModes"
            ),
        )
    except WireFormatError as exc:
        raise WireFormatError(f"symbol {obj.get('symbol')!r}: {exc}") from None


def parse_exchange_info(body: object) -> ExchangeInfo:
    obj = _obj(body, "exchangeInfo")
    return ExchangeInfo(
        timezone=_str(obj, "timezone"),
        server_time_ms=_int(obj, "serverTime"),
        rate_limits=tuple(_each(obj.get("rateLimits", []), "rateLimits", _rate_limit)),
        exchange_filters=tuple(_each(obj.get("exchangeFilters", []), "exchangeFilters", parse_filter)),
        symbols=tuple(_each(_get(obj, "symbols"), "symbols", _symbol_rules)),
    )


# ------------------------------------------------------------------------- market data


def _level(value: object) -> Level:
    pair = _list(value, "level")
    if len(pair) < 2:
        raise WireFormatError(f"level: expected [price, qty], got {pair!r}")
    return _decimal_value(pair[0], "price"), _decimal_value(pair[1], "qty")


def parse_depth(body: object) -> DepthSnapshot:
    obj = _obj(body, "depth")
    return DepthSnapshot(
        last_update_id=_int(obj, "lastUpdateId"),
        bids=tuple(_each(_get(obj, "bids"), "bids", _level)),
        asks=tuple(_each(_get(obj, "asks"), "asks", _level)),
    )


def _trade(value: object) -> Trade:
    obj = _obj(value, "trade")
    return Trade(
        id=_int(obj, "id"),
        price=_dec(obj, "price"),
        qty=_dec(obj, "qty"),
        quote_qty=_dec(obj, "quoteQty"),
        time_ms=_int(obj, "time"),
        is_buyer_maker=_bool(obj, "isBuyerMaker"),
        is_best_match=_bool(obj, "isBestMatch", True),
    )


def parse_trades(body: object) -> list[Trade]:
    return _each(body, "trades", _trade)


def _agg_trade(value: object) -> AggTrade:
    obj = _obj(value, "aggTrade")
    return AggTrade(
        agg_id=_int(obj, "a"),
        price=_dec(obj, "p"),
        qty=_dec(obj, "q"),
        first_trade_id=_int(obj, "f"),
        last_trade_id=_int(obj, "l"),
        time_ms=_int(obj, "T"),
        is_buyer_maker=_bool(obj, "m"),
        is_best_match=_bool(obj, "M", True),
    )


def parse_agg_trades(body: object) -> list[AggTrade]:
    return _each(body, "aggTrades", _agg_trade)


def _kline(value: object) -> Kline:
    row = _list(value, "kline")
    if len(row) < 11:
        raise WireFormatError(f"kline: expected 12 elements, got {len(row)}")
    return Kline(
        open_time_ms=_int_value(row[0], "openTime"),
        open=_decimal_value(row[1], "open"),
        high=_decimal_value(row[2], "high"),
        low=_decimal_value(row[3], "low"),
        close=_decimal_value(row[4], "close"),
        volume=_decimal_value(row[5], "volume"),
        close_time_ms=_int_value(row[6], "closeTime"),
        quote_volume=_decimal_value(row[7], "quoteAssetVolume"),
        trades=_int_value(row[8], "numberOfTrades"),
        taker_buy_base_volume=_decimal_value(row[9], "takerBuyBaseVolume"),
        taker_buy_quote_volume=_decimal_value(row[10], "takerBuyQuoteVolume"),
    )


def parse_klines(body: object) -> list[Kline]:
    return _each(body, "klines", _kline)


def parse_avg_price(body: object) -> AvgPrice:
    obj = _obj(body, "avgPrice")
    close_time = obj.get("closeTime")
    return AvgPrice(
        mins=_int(obj, "mins"),
        price=_dec(obj, "price"),
        close_time_ms=None if close_time is None else _int_value(close_time, "closeTime"),
    )


def _ticker_24h(value: object) -> Ticker24h:
    obj = _obj(value, "ticker")
    return Ticker24h(
        symbol=_str(obj, "symbol"),
        price_change=_dec(obj, "priceChange"),
        price_change_percent=_dec(obj, "priceChangePercent"),
        weighted_avg_price=_dec(obj, "weightedAvgPrice"),
        prev_close_price=_dec(obj, "prevClosePrice"),
        last_price=_dec(obj, "lastPrice"),
        last_qty=_dec(obj, "lastQty"),
        bid_price=_dec(obj, "bidPrice"),
        bid_qty=_dec(obj, "bidQty"),
        ask_price=_dec(obj, "askPrice"),
        ask_qty=_dec(obj, "askQty"),
        open_price=_dec(obj, "openPrice"),
        high_price=_dec(obj, "highPrice"),
        low_price=_dec(obj, "lowPrice"),
        volume=_dec(obj, "volume"),
        quote_volume=_dec(obj, "quoteVolume"),
        open_time_ms=_int(obj, "openTime"),
        close_time_ms=_int(obj, "closeTime"),
        first_id=_int(obj, "firstId"),
        last_id=_int(obj, "lastId"),
        count=_int(obj, "count"),
    )


def parse_ticker_24h(body: object) -> list[Ticker24h]:
    return _one_or_many(body, "ticker/24hr", _ticker_24h)


def _ticker_price(value: object) -> TickerPrice:
    obj = _obj(value, "ticker/price")
    return TickerPrice(symbol=_str(obj, "symbol"), price=_dec(obj, "price"))


def parse_ticker_prices(body: object) -> list[TickerPrice]:
    return _one_or_many(body, "ticker/price", _ticker_price)


def _book_ticker(value: object) -> BookTicker:
    obj = _obj(value, "bookTicker")
    return BookTicker(
        symbol=_str(obj, "symbol"),
        bid_price=_dec(obj, "bidPrice"),
        bid_qty=_dec(obj, "bidQty"),
        ask_price=_dec(obj, "askPrice"),
        ask_qty=_dec(obj, "askQty"),
    )


def parse_book_tickers(body: object) -> list[BookTicker]:
    return _one_or_many(body, "ticker/bookTicker", _book_ticker)


# ------------------------------------------------------------------------- account (USER_DATA)


def my_trades_params(
    symbol: str, order_id: int | None, from_id: int | None, start_ms: int | None, end_ms: int | None, limit: int | None
) -> dict[str, ParamValue]:
    """``GET /api/v3/myTrades`` parameters; weight is `Weight.MY_TRADES_BY_ORDER` with an order id."""
    params: dict[str, ParamValue] = {"symbol": symbol}
    params.update(
        _optional(
            ("orderId", order_id), ("fromId", from_id), ("startTime", start_ms), ("endTime", end_ms), ("limit", limit)
        )
    )
    return params


def parse_account(body: object) -> AccountInfo:
    """``GET /api/v3/account`` → `AccountInfo`."""
    obj = _obj(body, "account")
    rates = _obj(_get(obj, "commissionRates"), "commissionRates")
    balances = _each(_get(obj, "balances"), "balances", _rest_balance)
    return AccountInfo(
        maker_commission=_dec(rates, "maker"),
        taker_commission=_dec(rates, "taker"),
        buyer_commission=_dec(rates, "buyer"),
        seller_commission=_dec(rates, "seller"),
        can_trade=_bool(obj, "canTrade"),
        can_withdraw=_bool(obj, "canWithdraw"),
        can_deposit=_bool(obj, "canDeposit"),
        account_type=_str(obj, "accountType"),
        balances=tuple(balances),
        update_time_ms=_int(obj, "updateTime"),
    )


def _rest_balance(value: object) -> Balance:
    obj = _obj(value, "balance")
    return Balance(_str(obj, "asset"), _dec(obj, "free"), _dec(obj, "locked"))


def _my_trade(value: object) -> MyTrade:
    obj = _obj(value, "trade")
    return MyTrade(
        symbol=_str(obj, "symbol"),
        id=_int(obj, "id"),
        order_id=_int(obj, "orderId"),
        price=_dec(obj, "price"),
        quantity=_dec(obj, "qty"),
        quote_quantity=_dec(obj, "quoteQty"),
        commission=_dec(obj, "commission"),
        commission_asset=_str(obj, "commissionAsset"),
        time_ms=_int(obj, "time"),
        is_buyer=_bool(obj, "isBuyer"),
        is_maker=_bool(obj, "isMaker"),
    )


def parse_my_trades(body: object) -> list[MyTrade]:
    """``GET /api/v3/myTrades`` → list of `MyTrade`."""
    return _each(body, "myTrades", _my_trade)


# ------------------------------------------------------------------------- trading (TRADE)


def _plain(text: str | None) -> str | None:
    """A decimal string the caller gave, as Binance expects it: no exponent, no trailing zeros."""
    if text is None:
        return None
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def new_order_params(request: tm.OrderRequest, client_order_id: str) -> dict[str, ParamValue]:
    """``POST /api/v3/order`` (and ``/order/test``) parameters for a validated request."""
    params: dict[str, ParamValue] = {
        "symbol": request.symbol,
        "side": request.side.value,
        "type": request.type.value,
        "newClientOrderId": client_order_id,
        "newOrderRespType": request.response_type.value,
    }
    params.update(
        _optional(
            ("timeInForce", None if request.time_in_force is None else request.time_in_force.value),
            ("quantity", _plain(request.quantity)),
            ("quoteOrderQty", _plain(request.quote_order_qty)),
            ("price", _plain(request.price)),
            ("stopPrice", _plain(request.stop_price)),
            ("icebergQty", _plain(request.iceberg_qty)),
            ("selfTradePreventionMode", None if request.stp_mode is None else request.stp_mode.value),
        )
    )
    return params


def order_ref_params(symbol: str, order_id: int | None, client_order_id: str | None) -> dict[str, ParamValue]:
    """``symbol`` plus ``orderId`` and/or ``origClientOrderId`` (query and cancel)."""
    params: dict[str, ParamValue] = {"symbol": symbol}
    params.update(_optional(("orderId", order_id), ("origClientOrderId", client_order_id)))
    return params


def all_orders_params(
    symbol: str, from_order_id: int | None, start_ms: int | None, end_ms: int | None, limit: int | None
) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {"symbol": symbol}
    params.update(_optional(("orderId", from_order_id), ("startTime", start_ms), ("endTime", end_ms), ("limit", limit)))
    return params


def _opt_str(obj: Mapping[str, Any], key: str) -> str | None:
    return None if obj.get(key) is None else _str(obj, key)


def _opt_decimal(obj: Mapping[str, Any], key: str) -> str | None:
    return None if obj.get(key) is None else _dec(obj, key)


def _opt_int(obj: Mapping[str, Any], key: str) -> int:
    return 0 if obj.get(key) is None else _int(obj, key)


def _member(enum: type[E], value: object) -> E | None:
    """None for a value this build does not know: the proto says UNSPECIFIED for it."""
    try:
        return enum(value)
    except ValueError:
        return None


def _opt_enum(enum: type[E], obj: Mapping[str, Any], key: str) -> E | None:
    value = obj.get(key)
    return None if value is None else _member(enum, value)


def parse_order(value: object) -> tm.Order:
    """Any REST order answer (§6.3/§6.4): placement (ACK/RESULT/FULL), cancel, query, or an
    element of ``openOrders``/``allOrders`` — the one reader of a REST order, for trading and
    the account view alike.

    A cancel answer's ``clientOrderId`` is the cancel request's own id; the order's is
    ``origClientOrderId``. Placement answers carry ``transactTime`` instead of ``time``.
    """
    obj = _obj(value, "order")
    try:
        client_id = _opt_str(obj, "origClientOrderId") or _str(obj, "clientOrderId")
        time_ms = _opt_int(obj, "time") or _opt_int(obj, "transactTime")
        status = obj.get("status")
        return tm.Order(
            symbol=_str(obj, "symbol"),
            order_id=_int(obj, "orderId"),
            client_order_id=client_id,
            side=_opt_enum(tm.Side, obj, "side"),
            type=_opt_enum(tm.OrderType, obj, "type"),
            time_in_force=_opt_enum(tm.TimeInForce, obj, "timeInForce"),
            status=None if status is None else _enum(tm.OrderStatus, status, tm.OrderStatus.UNKNOWN),
            price=_opt_decimal(obj, "price"),
            stop_price=_opt_decimal(obj, "stopPrice"),
            orig_qty=_opt_decimal(obj, "origQty"),
            executed_qty=_opt_decimal(obj, "executedQty"),
            cumulative_quote_qty=_opt_decimal(obj, "cummulativeQuoteQty"),
            orig_quote_order_qty=_opt_decimal(obj, "origQuoteOrderQty"),
            iceberg_qty=_opt_decimal(obj, "icebergQty"),
            time_ms=time_ms,
            update_time_ms=_opt_int(obj, "updateTime") or time_ms,
            working_time_ms=_opt_int(obj, "workingTime"),
            is_working=_bool(obj, "isWorking", False),
            stp_mode=_opt_enum(tm.SelfTradePreventionMode, obj, "selfTradePreventionMode"),
            expiry_reason=_opt_str(obj, "expiryReason") or "",
        )
    except WireFormatError as exc:
        raise WireFormatError(f"order: {exc}") from None


def _fill(value: object) -> tm.Fill:
    obj = _obj(value, "fill")
    return tm.Fill(
        price=_dec(obj, "price"),
        qty=_dec(obj, "qty"),
        commission=_dec(obj, "commission"),
        commission_asset=_str(obj, "commissionAsset"),
        trade_id=_int(obj, "tradeId"),
    )


def parse_placed_order(body: object) -> tm.PlacedOrder:
    """``POST /api/v3/order`` → the order and, for FULL answers, its fills."""
    order = parse_order(body)
    fills = _each(_obj(body, "order").get("fills", []), "fills", _fill)
    return tm.PlacedOrder(order, tuple(fills))


def parse_orders(body: object) -> list[tm.Order]:
    """``openOrders`` / ``allOrders`` / ``DELETE openOrders`` → orders (order-list entries skipped)."""
    items = _list(body, "orders")
    return [parse_order(item) for item in items if not (isinstance(item, Mapping) and "orderReports" in item)]


def parse_test_order(body: object) -> tm.TestedOrder:
    """``POST /api/v3/order/test``: ``{}``, or the standard commission with ``computeCommissionRates``."""
    obj = _obj(body, "order/test")
    rates = obj.get("standardCommissionForOrder")
    if rates is None:
        return tm.TestedOrder(notional=None)
    rates = _obj(rates, "standardCommissionForOrder")
    return tm.TestedOrder(notional=None, maker_commission=_dec(rates, "maker"), taker_commission=_dec(rates, "taker"))
