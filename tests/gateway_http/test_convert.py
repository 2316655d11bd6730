"""Protobuf -> the gateway's JSON: Binance's keys and shapes, decimals as the strings the provider sent,
and every REST payload valid against the schema its route publishes."""

from __future__ import annotations

import jsonschema  # type: ignore[import-untyped]  # no stubs installed
import orjson
import pytest
from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import market_data_pb2 as md

from gateway_http import convert
from gateway_http.convert import SnapshotReason

TICKER = md.Ticker24h(
    symbol="BNBBTC",
    price_change="-94.99999800",
    price_change_percent="-95.960",
    weighted_avg_price="0.29628482",
    prev_close_price="0.10002000",
    last_price="4.00000200",
    last_quantity="200.00000000",
    bid_price="4.00000000",
    bid_quantity="100.00000000",
    ask_price="4.00000200",
    ask_quantity="100.00000000",
    open_price="99.00000000",
    high_price="100.00000000",
    low_price="0.10000000",
    volume="8913.30000000",
    quote_volume="15.30000000",
    open_time_ms=1499783499040,
    close_time_ms=1499869899040,
    first_trade_id=28385,
    last_trade_id=28460,
    trade_count=76,
)


def test_ticker_24h_has_binances_full_keys_with_decimal_strings() -> None:
    body = convert.ticker_24h(TICKER)
    # Binance's documented FULL ticker, key for key and value for value.
    assert body == {
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
    jsonschema.validate(body, convert.TICKER_24H_SCHEMA)
    jsonschema.validate([body], convert.one_or_many(convert.TICKER_24H_SCHEMA))


def test_small_rest_payloads() -> None:
    price = convert.ticker_price(md.TickerPrice(symbol="LTCBTC", price="4.00000200"))
    assert price == {"symbol": "LTCBTC", "price": "4.00000200"}
    jsonschema.validate(price, convert.TICKER_PRICE_SCHEMA)
    book = convert.book_ticker(
        md.BookTicker(
            symbol="LTCBTC",
            bid_price="4.00000000",
            bid_quantity="431.00000000",
            ask_price="4.00000200",
            ask_quantity="9.00000000",
            update_id=7,
        )
    )
    assert book == {
        "symbol": "LTCBTC",
        "bidPrice": "4.00000000",
        "bidQty": "431.00000000",
        "askPrice": "4.00000200",
        "askQty": "9.00000000",
    }
    jsonschema.validate(book, convert.BOOK_TICKER_SCHEMA)
    avg = convert.avg_price(
        md.GetAveragePriceResponse(symbol="BTCUSDT", minutes=5, price="9.35751834", close_time_ms=1694061154503)
    )
    assert avg == {"mins": 5, "price": "9.35751834", "closeTime": 1694061154503}
    jsonschema.validate(avg, convert.AVG_PRICE_SCHEMA)


def test_kline_is_binances_twelve_element_array() -> None:
    row = convert.kline(
        md.Kline(
            open_time_ms=1499040000000,
            open="0.01634790",
            high="0.80000000",
            low="0.01575800",
            close="0.01577100",
            volume="148976.11427815",
            close_time_ms=1499644799999,
            quote_volume="2434.19055334",
            trade_count=308,
            taker_buy_base_volume="1756.87402397",
            taker_buy_quote_volume="28.46694368",
        )
    )
    assert row == [
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
    jsonschema.validate([row], convert.KLINES_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([row[:11]], convert.KLINES_SCHEMA)


def test_trades_and_aggregate_trades() -> None:
    trade = md.Trade(
        symbol="BTCUSDT",
        id=28457,
        price="4.00000100",
        quantity="12.00000000",
        quote_quantity="48.000012",
        time_ms=1499865549590,
        is_buyer_maker=True,
    )
    assert convert.trade(trade) == {
        "id": 28457,
        "price": "4.00000100",
        "qty": "12.00000000",
        "quoteQty": "48.000012",
        "time": 1499865549590,
        "isBuyerMaker": True,
    }
    jsonschema.validate([convert.trade(trade)], convert.TRADES_SCHEMA)
    agg = md.AggregateTrade(
        id=26129,
        price="0.01633102",
        quantity="4.70443515",
        first_trade_id=27781,
        last_trade_id=27781,
        time_ms=1498793709153,
        is_buyer_maker=True,
    )
    body = convert.agg_trade(agg)
    assert body == {
        "a": 26129,
        "p": "0.01633102",
        "q": "4.70443515",
        "f": 27781,
        "l": 27781,
        "T": 1498793709153,
        "m": True,
    }
    jsonschema.validate([body], convert.AGG_TRADES_SCHEMA)


def test_order_book_carries_binances_keys_and_freshness() -> None:
    book = md.GetOrderBookResponse(
        symbol="BTCUSDT",
        bids=[c.PriceLevel(price="4.00000000", quantity="431.00000000")],
        asks=[c.PriceLevel(price="4.00000200", quantity="12.00000000")],
        freshness=c.Freshness(
            last_update_id=1027024,
            event_time_ms=1700000000000,
            age_ms=12,
            in_sync=True,
            source=c.DATA_SOURCE_LOCAL_BOOK,
        ),
    )
    body = convert.order_book(book)
    assert body == {
        "lastUpdateId": 1027024,
        "bids": [["4.00000000", "431.00000000"]],
        "asks": [["4.00000200", "12.00000000"]],
        "eventTime": 1700000000000,
        "ageMs": 12,
        "inSync": True,
        "source": "LOCAL_BOOK",
    }
    jsonschema.validate(body, convert.DEPTH_SCHEMA)
    with pytest.raises(jsonschema.ValidationError):  # a float price would break the contract
        jsonschema.validate({**body, "bids": [[4.0, "431"]]}, convert.DEPTH_SCHEMA)


def _symbol(filters: list[md.SymbolFilter], **overrides: object) -> md.SymbolInfo:
    fields: dict[str, object] = {
        "symbol": "ETHBTC",
        "status": md.SYMBOL_STATUS_TRADING,
        "status_text": "TRADING",
        "base_asset": "ETH",
        "base_asset_precision": 8,
        "quote_asset": "BTC",
        "quote_asset_precision": 8,
        "order_types": [c.ORDER_TYPE_LIMIT, c.ORDER_TYPE_LIMIT_MAKER, c.ORDER_TYPE_MARKET],
        "iceberg_allowed": True,
        "quote_order_qty_market_allowed": True,
        "is_spot_trading_allowed": True,
        "filters": filters,
        "default_self_trade_prevention_mode": c.SELF_TRADE_PREVENTION_MODE_EXPIRE_MAKER,
        "allowed_self_trade_prevention_modes": [
            c.SELF_TRADE_PREVENTION_MODE_NONE,
            c.SELF_TRADE_PREVENTION_MODE_EXPIRE_MAKER,
        ],
    }
    fields.update(overrides)
    return md.SymbolInfo(**fields)  # type: ignore[arg-type]  # keyword construction of a protobuf message


def test_exchange_info_symbols_and_filters_in_binances_shape() -> None:
    filters = [
        md.SymbolFilter(
            price=md.PriceFilter(min_price="0.00000100", max_price="100000.00000000", tick_size="0.00000100")
        ),
        md.SymbolFilter(lot_size=md.LotSizeFilter(min_quantity="0.001", max_quantity="100000", step_size="0.001")),
        md.SymbolFilter(market_lot_size=md.LotSizeFilter(min_quantity="0", max_quantity="500", step_size="0")),
        md.SymbolFilter(
            notional=md.NotionalFilter(
                min_notional="10.00000000",
                apply_min_to_market=False,
                max_notional="10000.00000000",
                apply_max_to_market=False,
                avg_price_minutes=5,
            )
        ),
        md.SymbolFilter(
            notional=md.NotionalFilter(min_notional="0.001", apply_min_to_market=True, avg_price_minutes=5)
        ),
        md.SymbolFilter(
            percent_price=md.PercentPriceFilter(multiplier_up="1.3000", multiplier_down="0.7000", avg_price_minutes=5)
        ),
        md.SymbolFilter(max_num_orders=200),
        md.SymbolFilter(max_num_algo_orders=5),
        md.SymbolFilter(iceberg_parts=100),
        md.SymbolFilter(
            other_json=orjson.dumps({"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10}).decode()
        ),
    ]
    answer = md.GetExchangeInfoResponse(
        server_time_ms=1565246363776,
        rate_limits=[md.RateLimit(rate_limit_type="REQUEST_WEIGHT", interval="MINUTE", interval_num=1, limit=6000)],
        symbols=[_symbol(filters)],
    )
    body = convert.exchange_info(answer)
    jsonschema.validate(body, convert.EXCHANGE_INFO_SCHEMA)
    assert body["serverTime"] == 1565246363776
    assert body["rateLimits"] == [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
    ]
    symbols = body["symbols"]
    assert isinstance(symbols, list)
    info = symbols[0]
    assert info["status"] == "TRADING"
    assert info["orderTypes"] == ["LIMIT", "LIMIT_MAKER", "MARKET"]
    assert info["quotePrecision"] == info["quoteAssetPrecision"] == 8
    assert info["defaultSelfTradePreventionMode"] == "EXPIRE_MAKER"
    assert info["allowedSelfTradePreventionModes"] == ["NONE", "EXPIRE_MAKER"]
    assert info["filters"] == [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.00000100",
            "maxPrice": "100000.00000000",
            "tickSize": "0.00000100",
        },
        {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "100000", "stepSize": "0.001"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0", "maxQty": "500", "stepSize": "0"},
        {
            "filterType": "NOTIONAL",
            "minNotional": "10.00000000",
            "applyMinToMarket": False,
            "maxNotional": "10000.00000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
        {"filterType": "MIN_NOTIONAL", "minNotional": "0.001", "applyToMarket": True, "avgPriceMins": 5},
        {"filterType": "PERCENT_PRICE", "multiplierUp": "1.3000", "multiplierDown": "0.7000", "avgPriceMins": 5},
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
        {"filterType": "ICEBERG_PARTS", "limit": 100},
        {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10},
    ]


def test_unmodelled_status_keeps_the_exchanges_word_and_unset_stp_default_is_omitted() -> None:
    info = convert.symbol_info(
        _symbol(
            [],
            status=md.SYMBOL_STATUS_OTHER,
            status_text="PRE_TRADING",
            default_self_trade_prevention_mode=c.SELF_TRADE_PREVENTION_MODE_UNSPECIFIED,
        )
    )
    assert info["status"] == "PRE_TRADING"
    assert "defaultSelfTradePreventionMode" not in info
    jsonschema.validate(info, convert.SYMBOL_INFO_SCHEMA)


def test_a_filter_without_a_type_is_refused() -> None:
    with pytest.raises(ValueError, match="empty symbol filter"):
        convert.symbol_filter(md.SymbolFilter())
    with pytest.raises(ValueError, match="without a filterType"):
        convert.symbol_filter(md.SymbolFilter(other_json='{"limit": 3}'))


def test_websocket_payloads_are_binances_events_with_a_type() -> None:
    ticker = convert.ws_ticker(md.Ticker24h(symbol="BNBBTC", last_price="0.0025", event_time_ms=1672515782136))
    assert ticker["type"] == "ticker" and ticker["e"] == "24hrTicker" and ticker["E"] == 1672515782136
    assert ticker["s"] == "BNBBTC" and ticker["c"] == "0.0025"
    book = convert.ws_book_ticker(
        md.BookTicker(
            symbol="BNBUSDT",
            bid_price="25.35190000",
            bid_quantity="31.21000000",
            ask_price="25.36520000",
            ask_quantity="40.66000000",
            update_id=400900217,
        )
    )
    assert book == {
        "type": "bookTicker",
        "u": 400900217,
        "s": "BNBUSDT",
        "b": "25.35190000",
        "B": "31.21000000",
        "a": "25.36520000",
        "A": "40.66000000",
    }
    trade = convert.ws_trade(
        md.Trade(symbol="BNBBTC", id=12345, price="0.001", quantity="100", time_ms=1672515782136, is_buyer_maker=True)
    )
    assert trade == {
        "type": "trade",
        "e": "trade",
        "E": 1672515782136,
        "s": "BNBBTC",
        "t": 12345,
        "p": "0.001",
        "q": "100",
        "T": 1672515782136,
        "m": True,
    }


def test_websocket_depth_payloads() -> None:
    diff = md.DepthDiff(
        first_update_id=157,
        last_update_id=160,
        event_time_ms=1672515782136,
        bids=[c.PriceLevel(price="0.0024", quantity="10")],
        asks=[c.PriceLevel(price="0.0026", quantity="0")],
    )
    assert convert.ws_depth_diff("BNBBTC", diff) == {
        "type": "diff",
        "e": "depthUpdate",
        "E": 1672515782136,
        "s": "BNBBTC",
        "U": 157,
        "u": 160,
        "b": [["0.0024", "10"]],
        "a": [["0.0026", "0"]],
    }
    snapshot = convert.ws_depth_snapshot("BNBBTC", SnapshotReason.LAGGED, 160, 5, [("0.0024", "10")], [], "0.0024")
    assert snapshot == {
        "type": "snapshot",
        "reason": "lagged",
        "s": "BNBBTC",
        "lastUpdateId": 160,
        "E": 5,
        "bids": [["0.0024", "10"]],
        "asks": [],
        "bidFloor": "0.0024",  # bids below are unknown to this snapshot
        "askCeiling": None,  # the ask side is complete
        "inSync": True,
    }
    assert convert.ws_resync("BNBBTC", "gap") == {"type": "resync", "s": "BNBBTC", "reason": "gap"}
    assert convert.ws_lagged("BNBBTC") == {"type": "lagged", "s": "BNBBTC"}
    text = convert.encode(snapshot)
    assert isinstance(text, str) and orjson.loads(text) == snapshot
    assert convert.SNAPSHOT_REASONS[md.SNAPSHOT_REASON_LAGGED] is SnapshotReason.LAGGED
    assert convert.SNAPSHOT_REASONS[md.SNAPSHOT_REASON_REFRESH] is SnapshotReason.RESYNC
