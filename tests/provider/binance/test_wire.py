"""Binance REST shapes → provider values, and the documented weights (reference §4, §6).

Payloads are the reference's examples (§6.1, §6.2), with extra fields and values a newer
server may send mixed in where tolerance matters.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from provider.binance import wire
from provider.binance.wire import WireFormatError
from provider.errors import is_bad_request
from provider.marketdata.model import (
    AggTrade,
    AvgPrice,
    BookTicker,
    DepthSnapshot,
    FilterType,
    Kline,
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
    SymbolStatus,
    Ticker24h,
    TickerPrice,
    Trade,
    TrailingDeltaFilter,
    UnknownFilter,
)
from provider.trading import model as tm

FILTERS: list[dict[str, Any]] = [
    {"filterType": "PRICE_FILTER", "minPrice": "0.00000100", "maxPrice": "100000.00000000", "tickSize": "0.00000100"},
    {"filterType": "LOT_SIZE", "minQty": "0.00100000", "maxQty": "100000.00000000", "stepSize": "0.00100000"},
    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "9000.00000000", "stepSize": "0.00000000"},
    {"filterType": "MIN_NOTIONAL", "minNotional": "0.00100000", "applyToMarket": True, "avgPriceMins": 5},
    {
        "filterType": "NOTIONAL",
        "minNotional": "10.00000000",
        "applyMinToMarket": False,
        "maxNotional": "10000.00000000",
        "applyMaxToMarket": False,
        "avgPriceMins": 5,
    },
    {"filterType": "PERCENT_PRICE", "multiplierUp": "1.3000", "multiplierDown": "0.7000", "avgPriceMins": 5},
    {
        "filterType": "PERCENT_PRICE_BY_SIDE",
        "bidMultiplierUp": "1.2",
        "bidMultiplierDown": "0.2",
        "askMultiplierUp": "5",
        "askMultiplierDown": "0.8",
        "avgPriceMins": 1,
    },
    {"filterType": "ICEBERG_PARTS", "limit": 100},
    {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 25},
    {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
    {"filterType": "MAX_POSITION", "maxPosition": "10.00000000"},
    {
        "filterType": "TRAILING_DELTA",
        "minTrailingAboveDelta": 10,
        "maxTrailingAboveDelta": 2000,
        "minTrailingBelowDelta": 10,
        "maxTrailingBelowDelta": 2000,
    },
    {"filterType": "MAX_NUM_ORDER_AMENDS", "maxNumOrderAmends": 10},
    {"filterType": "SOME_FUTURE_FILTER", "foo": "1.0", "bar": 3},
]

EXCHANGE_INFO: dict[str, Any] = {
    "timezone": "UTC",
    "serverTime": 1565246363776,
    "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 50},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 160000},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 300000},
    ],
    "exchangeFilters": [{"filterType": "EXCHANGE_MAX_NUM_ORDERS", "maxNumOrders": 1000}],
    "symbols": [
        {
            "symbol": "ETHBTC",
            "status": "TRADING",
            "baseAsset": "ETH",
            "baseAssetPrecision": 8,
            "quoteAsset": "BTC",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": [
                "LIMIT",
                "LIMIT_MAKER",
                "MARKET",
                "STOP_LOSS",
                "STOP_LOSS_LIMIT",
                "TAKE_PROFIT",
                "TAKE_PROFIT_LIMIT",
                "PEGGED_SOMETHING_NEW",
            ],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "otoAllowed": True,
            "opoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": False,
            "cancelReplaceAllowed": False,
            "amendAllowed": False,
            "pegInstructionsAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": FILTERS,
            "permissions": [],
            "permissionSets": [["SPOT", "MARGIN"], ["TRD_GRP_004"]],
            "defaultSelfTradePreventionMode": "NONE",
            "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_TAKER", "TRANSFER", "NOT_YET_INVENTED"],
            "someNewField": {"x": 1},
        },
        {
            "symbol": "ＢＴＣUSDT",  # Unicode symbols exist since Dec 2025
            "status": "SOME_NEW_STATUS",
            "baseAsset": "ＢＴＣ",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT"],
            "filters": [],
            "permissionSets": [["SPOT"]],
        },
    ],
    "sors": [{"baseAsset": "BTC", "symbols": ["BTCUSDT", "BTCUSDC"]}],
}


def roundtrip(value: object) -> Any:
    """As the shell sees it: bytes from the wire decoded by orjson."""
    return orjson.loads(orjson.dumps(value))


# --------------------------------------------------------------------------- exchangeInfo


def test_exchange_info_symbols_and_rate_limits() -> None:
    info = wire.parse_exchange_info(roundtrip(EXCHANGE_INFO))
    assert (info.timezone, info.server_time_ms) == ("UTC", 1565246363776)
    assert info.rate_limits[0] == RateLimitRule(RateLimitType.REQUEST_WEIGHT, RateLimitInterval.MINUTE, 1, 6000)
    assert [r.rate_limit_type for r in info.rate_limits].count(RateLimitType.ORDERS) == 2
    assert info.exchange_filters == (MaxNumFilter(FilterType.EXCHANGE_MAX_NUM_ORDERS, 1000),)

    eth = info.symbol("ETHBTC")
    assert eth is not None and eth.is_trading
    assert (eth.base_asset, eth.quote_asset, eth.base_asset_precision, eth.quote_asset_precision) == (
        "ETH",
        "BTC",
        8,
        8,
    )
    # The unknown type is left out, the rest kept in wire order.
    assert eth.order_types == tuple(OrderType(t) for t in EXCHANGE_INFO["symbols"][0]["orderTypes"][:-1])
    assert set(eth.order_types) == set(OrderType)
    assert eth.iceberg_allowed and eth.quote_order_qty_market_allowed and not eth.cancel_replace_allowed
    assert eth.permission_sets == (("SPOT", "MARGIN"), ("TRD_GRP_004",))
    assert eth.default_stp_mode is SelfTradePreventionMode.NONE
    assert eth.allowed_stp_modes == (
        SelfTradePreventionMode.NONE,
        SelfTradePreventionMode.EXPIRE_TAKER,
        SelfTradePreventionMode.TRANSFER,
    )

    unicode_symbol = info.symbol("ＢＴＣUSDT")
    assert unicode_symbol is not None
    assert unicode_symbol.status is SymbolStatus.UNKNOWN and not unicode_symbol.is_trading
    assert unicode_symbol.filters == () and unicode_symbol.default_stp_mode is None
    assert not unicode_symbol.iceberg_allowed  # absent booleans read as "not allowed"
    assert info.symbol("NOPE") is None


def test_exchange_info_filters_are_typed_and_unknown_ones_kept_raw() -> None:
    eth = wire.parse_exchange_info(roundtrip(EXCHANGE_INFO)).symbol("ETHBTC")
    assert eth is not None
    assert eth.price_filter == PriceFilter("0.00000100", "100000.00000000", "0.00000100")
    assert eth.lot_size == LotSizeFilter(FilterType.LOT_SIZE, "0.00100000", "100000.00000000", "0.00100000")
    assert eth.market_lot_size == LotSizeFilter(FilterType.MARKET_LOT_SIZE, "0.00000000", "9000.00000000", "0.00000000")
    assert eth.min_notional == MinNotionalFilter("0.00100000", True, 5)
    assert eth.notional == NotionalFilter("10.00000000", False, "10000.00000000", False, 5)
    assert eth.percent_price == PercentPriceFilter("1.3000", "0.7000", 5)
    assert eth.filter(FilterType.PERCENT_PRICE_BY_SIDE) == PercentPriceBySideFilter("1.2", "0.2", "5", "0.8", 1)
    assert eth.filter(FilterType.ICEBERG_PARTS) == MaxNumFilter(FilterType.ICEBERG_PARTS, 100)
    assert eth.filter(FilterType.MAX_NUM_ORDERS) == MaxNumFilter(FilterType.MAX_NUM_ORDERS, 25)
    assert eth.filter(FilterType.MAX_NUM_ALGO_ORDERS) == MaxNumFilter(FilterType.MAX_NUM_ALGO_ORDERS, 5)
    assert eth.filter(FilterType.MAX_NUM_ORDER_AMENDS) == MaxNumFilter(FilterType.MAX_NUM_ORDER_AMENDS, 10)
    assert eth.filter(FilterType.MAX_POSITION) == MaxPositionFilter("10.00000000")
    assert eth.filter(FilterType.TRAILING_DELTA) == TrailingDeltaFilter(10, 2000, 10, 2000)
    unknown = eth.filters[-1]
    assert isinstance(unknown, UnknownFilter)
    assert unknown.filter_type == "SOME_FUTURE_FILTER" and unknown.raw["bar"] == 3
    assert len(eth.filters) == len(FILTERS)


def test_a_known_filter_with_unexpected_fields_is_kept_raw_not_fatal() -> None:
    odd = {"filterType": "PRICE_FILTER", "minPrice": 0.01, "maxPrice": "1", "tickSize": "0.01"}
    parsed = wire.parse_filter(roundtrip(odd))
    assert isinstance(parsed, UnknownFilter) and parsed.filter_type == "PRICE_FILTER"
    assert parsed.raw["minPrice"] == 0.01
    with pytest.raises(WireFormatError):
        wire.parse_filter({"minPrice": "1"})


def test_exchange_info_rejects_a_broken_symbol() -> None:
    broken = roundtrip(EXCHANGE_INFO)
    del broken["symbols"][0]["baseAsset"]
    with pytest.raises(WireFormatError, match=r"ETHBTC.*baseAsset"):
        wire.parse_exchange_info(broken)
    with pytest.raises(WireFormatError):
        wire.parse_exchange_info([])


def test_raw_rate_limits_feed_the_budget_unchanged() -> None:
    assert wire.raw_rate_limits(roundtrip(EXCHANGE_INFO)) == EXCHANGE_INFO["rateLimits"]
    assert wire.raw_rate_limits({"symbols": []}) == []


# --------------------------------------------------------------------------- market data


def test_depth() -> None:
    body = {"lastUpdateId": 1027024, "bids": [["4.00000000", "431.00000000"]], "asks": [["4.00000200", "12.00000000"]]}
    assert wire.parse_depth(roundtrip(body)) == DepthSnapshot(
        1027024, (("4.00000000", "431.00000000"),), (("4.00000200", "12.00000000"),)
    )
    assert wire.parse_depth({"lastUpdateId": 5, "bids": [], "asks": []}) == DepthSnapshot(5, (), ())


@pytest.mark.parametrize(
    "body",
    [
        {"lastUpdateId": 1, "bids": [[4.0, "1"]], "asks": []},  # a binary float price
        {"lastUpdateId": 1, "bids": [["4.0"]], "asks": []},  # half a level
        {"lastUpdateId": 1, "bids": [["1e-5", "1"]], "asks": []},  # exponent notation
        {"lastUpdateId": "1", "bids": [], "asks": []},
        {"lastUpdateId": True, "bids": [], "asks": []},
        {"bids": [], "asks": []},
        [],
    ],
)
def test_depth_malformed(body: object) -> None:
    with pytest.raises(WireFormatError):
        wire.parse_depth(body)


def test_trades() -> None:
    body = [
        {
            "id": 28457,
            "price": "4.00000100",
            "qty": "12.00000000",
            "quoteQty": "48.000012",
            "time": 1499865549590,
            "isBuyerMaker": True,
            "isBestMatch": True,
        }
    ]
    assert wire.parse_trades(roundtrip(body)) == [
        Trade(28457, "4.00000100", "12.00000000", "48.000012", 1499865549590, True, True)
    ]
    with pytest.raises(WireFormatError, match="trades"):
        wire.parse_trades([{**body[0], "isBuyerMaker": "yes"}])


def test_agg_trades() -> None:
    body = [
        {
            "a": 26129,
            "p": "0.01633102",
            "q": "4.70443515",
            "f": 27781,
            "l": 27781,
            "T": 1498793709153,
            "m": True,
            "M": True,
        }
    ]
    assert wire.parse_agg_trades(roundtrip(body)) == [
        AggTrade(26129, "0.01633102", "4.70443515", 27781, 27781, 1498793709153, True, True)
    ]


def test_klines() -> None:
    row = [
        1499040000000,
        "0.01634790",
        "0.80000000",
        "0.01575800",
        "0.01577100",
        "148976.11427815",
        1499644799999,
        "2434.19055334",
        308,
        "1756.87402397",
        "28.46694368",
        "0",
    ]
    (kline,) = wire.parse_klines(roundtrip([row]))
    assert kline == Kline(
        open_time_ms=1499040000000,
        open="0.01634790",
        high="0.80000000",
        low="0.01575800",
        close="0.01577100",
        volume="148976.11427815",
        close_time_ms=1499644799999,
        quote_volume="2434.19055334",
        trades=308,
        taker_buy_base_volume="1756.87402397",
        taker_buy_quote_volume="28.46694368",
    )
    with pytest.raises(WireFormatError):
        wire.parse_klines([row[:5]])


def test_avg_price() -> None:
    body = {"mins": 5, "price": "9.35751834", "closeTime": 1694061154503}
    assert wire.parse_avg_price(roundtrip(body)) == AvgPrice(5, "9.35751834", 1694061154503)
    assert wire.parse_avg_price({"mins": 5, "price": "9.3"}) == AvgPrice(5, "9.3", None)


TICKER_24H = {
    "symbol": "BNBBTC",
    "priceChange": "-94.99999800",
    "priceChangePercent": "-95.960",
    "weightedAvgPrice": "0.29628482",
    "prevClosePrice": "0.10002000",
    "lastPrice": "4.00000200",
    "lastQty": "200.00000000",
    "bidPrice": "4.00000000",
    "bidQty": "100.00000000",
    "askPrice": "4.00000200",
    "askQty": "100.00000000",
    "openPrice": "99.00000000",
    "highPrice": "100.00000000",
    "lowPrice": "0.10000000",
    "volume": "8913.30000000",
    "quoteVolume": "15.30000000",
    "openTime": 1499783499040,
    "closeTime": 1499869899040,
    "firstId": 28385,
    "lastId": 28460,
    "count": 76,
}


def test_ticker_24h_single_object_or_array() -> None:
    expected = Ticker24h(
        symbol="BNBBTC",
        price_change="-94.99999800",
        price_change_percent="-95.960",
        weighted_avg_price="0.29628482",
        prev_close_price="0.10002000",
        last_price="4.00000200",
        last_qty="200.00000000",
        bid_price="4.00000000",
        bid_qty="100.00000000",
        ask_price="4.00000200",
        ask_qty="100.00000000",
        open_price="99.00000000",
        high_price="100.00000000",
        low_price="0.10000000",
        volume="8913.30000000",
        quote_volume="15.30000000",
        open_time_ms=1499783499040,
        close_time_ms=1499869899040,
        first_id=28385,
        last_id=28460,
        count=76,
    )
    assert wire.parse_ticker_24h(roundtrip(TICKER_24H)) == [expected]
    assert wire.parse_ticker_24h(roundtrip([TICKER_24H, TICKER_24H])) == [expected, expected]
    with pytest.raises(WireFormatError, match="ticker/24hr"):
        wire.parse_ticker_24h([{k: v for k, v in TICKER_24H.items() if k != "askQty"}])


def test_ticker_price_and_book_ticker() -> None:
    assert wire.parse_ticker_prices({"symbol": "LTCBTC", "price": "4.00000200"}) == [
        TickerPrice("LTCBTC", "4.00000200")
    ]
    assert wire.parse_ticker_prices([{"symbol": "A", "price": "1"}, {"symbol": "B", "price": "2"}]) == [
        TickerPrice("A", "1"),
        TickerPrice("B", "2"),
    ]
    book = {
        "symbol": "LTCBTC",
        "bidPrice": "4.00000000",
        "bidQty": "431.00000000",
        "askPrice": "4.00000200",
        "askQty": "9.00000000",
    }
    assert wire.parse_book_tickers(roundtrip(book)) == [
        BookTicker("LTCBTC", "4.00000000", "431.00000000", "4.00000200", "9.00000000")
    ]
    with pytest.raises(WireFormatError):
        wire.parse_book_tickers("nope")


def test_server_time_and_error_bodies() -> None:
    assert wire.parse_server_time({"serverTime": 1499827319559}) == 1499827319559
    with pytest.raises(WireFormatError):
        wire.parse_server_time({"serverTime": "1499827319559"})
    assert wire.parse_error({"code": -1121, "msg": "Invalid symbol."}) == (-1121, "Invalid symbol.")
    assert wire.parse_error({"code": -2021, "msg": "Order cancel-replace partially failed.", "data": {}}) == (
        -2021,
        "Order cancel-replace partially failed.",
    )
    not_errors: list[object] = [{}, [], None, "<html>", {"code": "x", "msg": "y"}, {"code": True, "msg": "m"}]
    for not_an_error in not_errors:
        assert wire.parse_error(not_an_error) is None


def test_bad_request_codes() -> None:
    assert is_bad_request(-1100) and is_bad_request(-1121) and is_bad_request(-1130)
    assert not is_bad_request(-1099) and not is_bad_request(-1131) and not is_bad_request(-2010)


# --------------------------------------------------------------------------- weights and params


@pytest.mark.parametrize(
    ("limit", "weight"), [(1, 5), (100, 5), (101, 25), (500, 25), (501, 50), (1000, 50), (1001, 250), (5000, 250)]
)
def test_depth_weight(limit: int, weight: int) -> None:
    assert wire.depth_weight(limit) == weight


@pytest.mark.parametrize(("count", "weight"), [(1, 2), (20, 2), (21, 40), (100, 40), (101, 80), (None, 80)])
def test_ticker_24h_weight(count: int | None, weight: int) -> None:
    assert wire.ticker_24h_weight(count) == weight


def test_price_and_book_ticker_weights() -> None:
    for weigh in (wire.ticker_price_weight, wire.book_ticker_weight):
        assert (weigh(1), weigh(2), weigh(500), weigh(None)) == (2, 4, 4, 4)


def test_symbols_params() -> None:
    assert wire.symbols_params(None) == []
    assert wire.symbols_params(["BTCUSDT"]) == [("symbol", "BTCUSDT")]
    assert wire.symbols_params(("BTCUSDT", "ETHUSDT")) == [("symbols", ["BTCUSDT", "ETHUSDT"])]
    with pytest.raises(ValueError, match="empty"):
        wire.symbols_params([])
    with pytest.raises(TypeError):
        wire.symbols_params("BTCUSDT")


def test_optional_params_are_left_out() -> None:
    assert wire.agg_trades_params("BTCUSDT", None, None, None, None) == [("symbol", "BTCUSDT")]
    assert wire.agg_trades_params("BTCUSDT", 7, None, None, 10) == [("symbol", "BTCUSDT"), ("fromId", 7), ("limit", 10)]
    assert wire.historical_trades_params("BTCUSDT", None, None) == [("symbol", "BTCUSDT")]
    assert wire.historical_trades_params("BTCUSDT", 7, 2) == [("symbol", "BTCUSDT"), ("fromId", 7), ("limit", 2)]
    assert wire.klines_params("BTCUSDT", "1m", 1, 2, 3, "+08:00") == [
        ("symbol", "BTCUSDT"),
        ("interval", "1m"),
        ("startTime", 1),
        ("endTime", 2),
        ("timeZone", "+08:00"),
        ("limit", 3),
    ]


# ------------------------------------------------------------------------- orders (§6.3, §6.4)

QUERIED_ORDER: dict[str, Any] = {
    "symbol": "LTCBTC", "orderId": 1, "orderListId": -1, "clientOrderId": "myOrder1", "price": "0.1",
    "origQty": "1.0", "executedQty": "0.0", "cummulativeQuoteQty": "0.0", "status": "NEW", "timeInForce": "GTC",
    "type": "LIMIT", "side": "BUY", "stopPrice": "0.0", "icebergQty": "0.0", "time": 1499827319559,
    "updateTime": 1499827319560, "isWorking": True, "workingTime": 1499827319559, "origQuoteOrderQty": "0.000000",
    "selfTradePreventionMode": "NONE", "preventedMatchId": 0,
}  # fmt: skip


def test_a_queried_order_is_read_field_by_field() -> None:
    order = wire.parse_order(QUERIED_ORDER)
    assert order == tm.Order(
        symbol="LTCBTC",
        order_id=1,
        client_order_id="myOrder1",
        side=tm.Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=tm.TimeInForce.GTC,
        status=tm.OrderStatus.NEW,
        price="0.1",
        stop_price="0.0",
        orig_qty="1.0",
        executed_qty="0.0",
        cumulative_quote_qty="0.0",
        orig_quote_order_qty="0.000000",
        iceberg_qty="0.0",
        time_ms=1499827319559,
        update_time_ms=1499827319560,
        working_time_ms=1499827319559,
        is_working=True,
        stp_mode=SelfTradePreventionMode.NONE,
    )
    assert order.is_open


def test_cancel_and_ack_answers() -> None:
    cancel = wire.parse_order(
        {
            "symbol": "LTCBTC", "origClientOrderId": "myOrder1", "orderId": 4, "orderListId": -1,
            "clientOrderId": "cancelMyOrder1", "transactTime": 1684804350068, "price": "2.00000000",
            "origQty": "1.00000000", "executedQty": "0.00000000", "cummulativeQuoteQty": "0.00000000",
            "status": "CANCELED", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY",
            "selfTradePreventionMode": "NONE", "expiryReason": "USER_CANCEL",
        }
    )  # fmt: skip
    assert cancel.client_order_id == "myOrder1"  # the order's id, not the cancel request's
    assert (cancel.time_ms, cancel.update_time_ms) == (1684804350068, 1684804350068)
    assert cancel.status is tm.OrderStatus.CANCELED and not cancel.is_open
    assert (cancel.stop_price, cancel.iceberg_qty, cancel.expiry_reason) == (None, None, "USER_CANCEL")
    ack = wire.parse_order(
        {"symbol": "BTCUSDT", "orderId": 28, "orderListId": -1, "clientOrderId": "6gCr", "transactTime": 1507725176595}
    )
    assert ack == tm.Order("BTCUSDT", 28, "6gCr", time_ms=1507725176595, update_time_ms=1507725176595)
    assert ack.status is None and not ack.is_open


def test_unknown_order_enums_are_kept_as_none_or_unknown() -> None:
    odd = {"side": "SHORT", "type": "TRAILING", "timeInForce": "GTD", "status": "HALTED"}
    order = wire.parse_order({**QUERIED_ORDER, **odd, "selfTradePreventionMode": "EXPIRE_ALL"})
    assert (order.side, order.type, order.time_in_force, order.stp_mode) == (None, None, None, None)
    assert order.status is tm.OrderStatus.UNKNOWN


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"price": 0.1}, "order: price"),
        ({"orderId": "1"}, "order: orderId"),
        ({"clientOrderId": None}, "order: missing field 'clientOrderId'"),
        ({"isWorking": "true"}, "order: isWorking"),
    ],
)
def test_malformed_orders_are_refused(change: dict[str, Any], message: str) -> None:
    with pytest.raises(WireFormatError, match=message):
        wire.parse_order({k: v for k, v in {**QUERIED_ORDER, **change}.items() if v is not None})


def test_order_lists_and_fills() -> None:
    order_list = {"orderListId": 3, "contingencyType": "OCO", "orderReports": [QUERIED_ORDER]}
    orders = wire.parse_orders([QUERIED_ORDER, order_list, {**QUERIED_ORDER, "orderId": 2}])
    assert [o.order_id for o in orders] == [1, 2]
    with pytest.raises(WireFormatError):
        wire.parse_orders({"orders": []})
    fill = {"price": "0.1", "qty": "1.0", "commission": "0.001", "commissionAsset": "BNB", "tradeId": 9}
    placed = wire.parse_placed_order({**QUERIED_ORDER, "status": "FILLED", "fills": [fill]})
    assert placed.order.status is tm.OrderStatus.FILLED
    assert placed.fills == (tm.Fill("0.1", "1.0", "0.001", "BNB", 9),)
