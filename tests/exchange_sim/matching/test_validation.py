"""Symbol spec rendering/validation, and every parameter, precision and filter rejection
with Binance's exact code and message (and nothing changed after a rejection)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from exchange_sim.matching import (
    EngineError,
    LotSizeFilter,
    MatchingEngine,
    MinNotionalFilter,
    NotionalFilter,
    OrderType,
    PriceFilter,
    SelfTradePreventionMode,
    SymbolSpec,
)

from . import SYMBOL, D, limit, make_engine, make_spec, market


def test_exchange_info_filters_render_like_binance() -> None:
    spec = make_spec(market_lot_size=LotSizeFilter(D("0"), D("500"), D("0")))
    assert spec.exchange_info_filters() == [
        {
            "filterType": "PRICE_FILTER",
            "minPrice": "0.01000000",
            "maxPrice": "100000.00000000",
            "tickSize": "0.01000000",
        },
        {"filterType": "LOT_SIZE", "minQty": "0.00100000", "maxQty": "1000.00000000", "stepSize": "0.00100000"},
        {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "500.00000000", "stepSize": "0.00000000"},
        {
            "filterType": "NOTIONAL",
            "minNotional": "1.00000000",
            "applyMinToMarket": False,
            "maxNotional": "1000000.00000000",
            "applyMaxToMarket": False,
            "avgPriceMins": 5,
        },
        {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
    ]


def test_exchange_info_filters_use_each_assets_precision() -> None:
    spec = make_spec(
        quote_asset_precision=2,
        base_asset_precision=4,
        price_filter=PriceFilter(D("0.01"), D("0"), D("0.01")),
        lot_size=LotSizeFilter(D("0.01"), D("90"), D("0.01")),
        notional=None,
        min_notional=MinNotionalFilter(D("10"), True, 1),
        max_num_orders=None,
        max_num_algo_orders=None,
    )
    assert spec.exchange_info_filters() == [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "0.00", "tickSize": "0.01"},
        {"filterType": "LOT_SIZE", "minQty": "0.0100", "maxQty": "90.0000", "stepSize": "0.0100"},
        {"filterType": "MIN_NOTIONAL", "minNotional": "10.00", "applyToMarket": True, "avgPriceMins": 1},
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"price_filter": PriceFilter(D("0.01"), D("100"), D("0.000000001"))}, id="tick-finer-than-quote"),
        pytest.param({"lot_size": LotSizeFilter(D("0.0015"), D("10"), D("0.001"))}, id="minqty-not-step-multiple"),
        pytest.param({"lot_size": LotSizeFilter(D("-1"), D("10"), D("0.001"))}, id="negative"),
        pytest.param({"default_stp_mode": SelfTradePreventionMode.EXPIRE_MAKER, "allowed_stp_modes": ()}, id="stp"),
        pytest.param({"taker_commission": D("1")}, id="commission>=1"),
        pytest.param({"base_asset": "USDT"}, id="same-assets"),
        pytest.param({"max_num_orders": 0}, id="max-num-orders-0"),
    ],
)
def test_symbol_spec_rejects_bad_configuration(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"."):
        make_spec(**overrides)


def test_engine_rejects_conflicting_asset_precision() -> None:
    engine = MatchingEngine([make_spec()])
    with pytest.raises(ValueError, match="precision"):
        engine.add_symbol(make_spec(symbol="ETHUSDT", base_asset="ETH", quote_asset_precision=6))


LIMIT_OK: dict[str, Any] = {
    "side": "BUY",
    "order_type": "LIMIT",
    "price": "100",
    "quantity": "1",
    "time_in_force": "GTC",
}


def _args(**changes: Any) -> dict[str, Any]:
    args = dict(LIMIT_OK)
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = value
    return args


# (id, order arguments, code, message)
REJECTIONS: list[tuple[str, dict[str, Any], int, str]] = [
    # --- parameters
    (
        "limit-no-tif",
        _args(time_in_force=None),
        -1102,
        "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.",
    ),
    (
        "limit-no-price",
        _args(price=None),
        -1102,
        "Mandatory parameter 'price' was not sent, was empty/null, or malformed.",
    ),
    (
        "limit-no-qty",
        _args(quantity=None),
        -1102,
        "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
    ),
    (
        "limit-empty-qty",
        _args(quantity=""),
        -1102,
        "Mandatory parameter 'quantity' was not sent, was empty/null, or malformed.",
    ),
    ("limit-stop-price", _args(stop_price="90"), -1106, "Parameter 'stopPrice' sent when not required."),
    ("limit-quote-qty", _args(quote_order_qty="10"), -1106, "Parameter 'quoteOrderQty' sent when not required."),
    (
        "market-neither",
        {"side": "BUY", "order_type": "MARKET"},
        -1102,
        "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!",
    ),
    (
        "market-both",
        {"side": "BUY", "order_type": "MARKET", "quantity": "1", "quote_order_qty": "10"},
        -1106,
        "Parameter 'quoteOrderQty' sent when not required.",
    ),
    (
        "market-price",
        {"side": "BUY", "order_type": "MARKET", "quantity": "1", "price": "100"},
        -1106,
        "Parameter 'price' sent when not required.",
    ),
    (
        "market-tif",
        {"side": "BUY", "order_type": "MARKET", "quantity": "1", "time_in_force": "GTC"},
        -1114,
        "TimeInForce parameter sent when not required.",
    ),
    ("limit-maker-tif", _args(order_type="LIMIT_MAKER"), -1114, "TimeInForce parameter sent when not required."),
    (
        "stop-loss-no-stop",
        {"side": "SELL", "order_type": "STOP_LOSS", "quantity": "1"},
        -1102,
        "Mandatory parameter 'stopPrice' was not sent, was empty/null, or malformed.",
    ),
    (
        "stop-loss-price",
        {"side": "SELL", "order_type": "STOP_LOSS", "quantity": "1", "stop_price": "90", "price": "90"},
        -1106,
        "Parameter 'price' sent when not required.",
    ),
    (
        "stop-limit-no-tif",
        {"side": "SELL", "order_type": "STOP_LOSS_LIMIT", "quantity": "1", "stop_price": "90", "price": "90"},
        -1102,
        "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed.",
    ),
    ("bad-tif", _args(time_in_force="GTX"), -1115, "Invalid timeInForce."),
    ("bad-type", _args(order_type="LIMIT_TAKER"), -1116, "Invalid orderType."),
    ("bad-side", _args(side="HOLD"), -1117, "Invalid side."),
    ("empty-client-id", _args(new_client_order_id=""), -1118, "New client order ID was empty."),
    (
        "bad-client-id",
        _args(new_client_order_id="no spaces!"),
        -1100,
        "Illegal characters found in parameter 'newClientOrderId'; legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
    ),
    (
        "bad-stp",
        _args(self_trade_prevention_mode="EXPIRE_ALL"),
        -1130,
        "Data sent for parameter 'selfTradePreventionMode' is not valid.",
    ),
    # --- number syntax and precision
    (
        "qty-letters",
        _args(quantity="1a"),
        -1100,
        "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
    ),
    (
        "qty-negative",
        _args(quantity="-1"),
        -1100,
        "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
    ),
    (
        "qty-exponent",
        _args(quantity="1e2"),
        -1100,
        "Illegal characters found in parameter 'quantity'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
    ),
    (
        "decimal-nan",
        _args(price=Decimal("NaN")),
        -1100,
        "Illegal characters found in parameter 'price'; legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'.",
    ),
    ("price-precision", _args(price="100.000000001"), -1111, "Parameter 'price' has too much precision."),
    ("qty-precision", _args(quantity="0.000000001"), -1111, "Parameter 'quantity' has too much precision."),
    (
        "qty-precision-decimal",
        _args(quantity=Decimal("1.000000001")),
        -1111,
        "Parameter 'quantity' has too much precision.",
    ),
    (
        "stop-precision",
        {"side": "SELL", "order_type": "STOP_LOSS", "quantity": "1", "stop_price": "90.123456789"},
        -1111,
        "Parameter 'stopPrice' has too much precision.",
    ),
    (
        "quote-precision",
        {"side": "BUY", "order_type": "MARKET", "quote_order_qty": "10.000000001"},
        -1111,
        "Parameter 'quoteOrderQty' has too much precision.",
    ),
    # --- filters
    ("price-off-tick", _args(price="100.005"), -1013, "Filter failure: PRICE_FILTER"),
    ("price-below-min", _args(price="0"), -1013, "Filter failure: PRICE_FILTER"),
    ("price-above-max", _args(price="100000.01", quantity="0.001"), -1013, "Filter failure: PRICE_FILTER"),
    (
        "stop-off-tick",
        {
            "side": "SELL",
            "order_type": "STOP_LOSS_LIMIT",
            "quantity": "1",
            "stop_price": "90.001",
            "price": "90",
            "time_in_force": "GTC",
        },
        -1013,
        "Filter failure: PRICE_FILTER",
    ),
    ("qty-below-min", _args(quantity="0.0005"), -1013, "Filter failure: LOT_SIZE"),
    ("qty-zero", _args(quantity="0"), -1013, "Filter failure: LOT_SIZE"),
    ("qty-above-max", _args(quantity="1000.001", price="1"), -1013, "Filter failure: LOT_SIZE"),
    ("qty-off-step", _args(quantity="1.0005"), -1013, "Filter failure: LOT_SIZE"),
    (
        "market-qty-off-step",
        {"side": "SELL", "order_type": "MARKET", "quantity": "1.0005"},
        -1013,
        "Filter failure: LOT_SIZE",
    ),
    ("notional-below-min", _args(price="0.5", quantity="1"), -1013, "Filter failure: NOTIONAL"),
    ("notional-above-max", _args(price="10000", quantity="100.001"), -1013, "Filter failure: NOTIONAL"),
    (
        "stop-limit-notional",
        {
            "side": "SELL",
            "order_type": "STOP_LOSS_LIMIT",
            "quantity": "0.001",
            "stop_price": "90",
            "price": "90",
            "time_in_force": "GTC",
        },
        -1013,
        "Filter failure: NOTIONAL",
    ),
    # --- engine
    (
        "not-enough-usdt",
        _args(price="100", quantity="100.001"),
        -2010,
        "Account has insufficient balance for requested action.",
    ),
    (
        "not-enough-btc",
        _args(side="SELL", price="100", quantity="10.001"),
        -2010,
        "Account has insufficient balance for requested action.",
    ),
    (
        "stop-buy-not-enough",
        {
            "side": "BUY",
            "order_type": "STOP_LOSS_LIMIT",
            "quantity": "2",
            "stop_price": "6000",
            "price": "6000",
            "time_in_force": "GTC",
        },
        -2010,
        "Account has insufficient balance for requested action.",
    ),
    (
        "quote-market-empty-book",
        {"side": "SELL", "order_type": "MARKET", "quote_order_qty": "10"},
        -2010,
        "Order book liquidity is less than symbol minimum quantity.",
    ),
]


@pytest.mark.parametrize(("args", "code", "msg"), [pytest.param(a, c, m, id=i) for i, a, c, m in REJECTIONS])
def test_rejections_carry_binance_code_and_message_and_change_nothing(
    args: dict[str, Any], code: int, msg: str
) -> None:
    engine = make_engine()
    limit(engine, "bob", "SELL", "101", "1", now=1)  # something on the book to compare against
    before = (engine.balances("alice"), engine.balances("bob"), engine.depth(SYMBOL), engine.open_orders("alice"))
    with pytest.raises(EngineError) as info:
        engine.place_order("alice", SYMBOL, now_ms=2, **args)
    assert (info.value.code, info.value.msg) == (code, msg)
    after = (engine.balances("alice"), engine.balances("bob"), engine.depth(SYMBOL), engine.open_orders("alice"))
    assert after == before
    assert engine.all_orders("alice", SYMBOL) == []


def test_unknown_symbol_and_account() -> None:
    engine = make_engine()
    with pytest.raises(EngineError) as info:
        engine.place_order("alice", "ETHUSDT", now_ms=1, **LIMIT_OK)
    assert (info.value.code, info.value.msg) == (-1121, "Invalid symbol.")
    with pytest.raises(EngineError) as info:
        engine.place_order("carol", SYMBOL, now_ms=1, **LIMIT_OK)
    assert info.value.code == -2015


@pytest.mark.parametrize(
    ("order_type", "extra", "msg"),
    [
        ("MARKET", {"quantity": "1"}, "Market orders are not supported for this symbol."),
        ("STOP_LOSS", {"quantity": "1", "stop_price": "90"}, "Stop loss orders are not supported for this symbol."),
        (
            "STOP_LOSS_LIMIT",
            {"quantity": "1", "stop_price": "90", "price": "90", "time_in_force": "GTC"},
            "Stop loss limit orders are not supported for this symbol.",
        ),
        (
            "TAKE_PROFIT",
            {"quantity": "1", "stop_price": "110"},
            "Take profit orders are not supported for this symbol.",
        ),
        (
            "TAKE_PROFIT_LIMIT",
            {"quantity": "1", "stop_price": "110", "price": "110", "time_in_force": "GTC"},
            "Take profit limit orders are not supported for this symbol.",
        ),
        ("LIMIT_MAKER", {"quantity": "1", "price": "90"}, "Unsupported order combination"),
    ],
)
def test_order_types_not_enabled_on_the_symbol(order_type: str, extra: dict[str, Any], msg: str) -> None:
    engine = make_engine(make_spec(order_types=(OrderType.LIMIT,)))
    with pytest.raises(EngineError) as info:
        engine.place_order("alice", SYMBOL, "SELL", order_type, now_ms=1, **extra)
    assert (info.value.code, info.value.msg) == (-2010, msg)


def test_quote_order_qty_not_enabled() -> None:
    engine = make_engine(make_spec(quote_order_qty_market_allowed=False))
    with pytest.raises(EngineError) as info:
        market(engine, "alice", "BUY", quote="10")
    assert (info.value.code, info.value.msg) == (
        -2010,
        "Quote order qty market orders are not support for this symbol.",
    )


def test_stp_mode_not_allowed_on_symbol() -> None:
    spec = make_spec(allowed_stp_modes=(SelfTradePreventionMode.NONE, SelfTradePreventionMode.EXPIRE_TAKER))
    engine = make_engine(spec)
    with pytest.raises(EngineError) as info:
        limit(engine, "alice", "BUY", "100", "1", self_trade_prevention_mode="EXPIRE_MAKER")
    assert (info.value.code, info.value.msg) == (
        -1013,
        "This symbol does not allow the specified self-trade prevention mode.",
    )
    assert limit(engine, "alice", "BUY", "100", "1", self_trade_prevention_mode="EXPIRE_TAKER").order.status == "NEW"


def test_market_lot_size_applies_to_market_orders_only() -> None:
    engine = make_engine(make_spec(market_lot_size=LotSizeFilter(D("0.01"), D("5"), D("0.01"))))
    limit(engine, "bob", "SELL", "100", "8")
    for qty in ("0.005", "6", "1.015"):
        with pytest.raises(EngineError) as info:
            market(engine, "alice", "BUY", qty)
        assert (info.value.code, info.value.msg) == (-1013, "Filter failure: MARKET_LOT_SIZE")
    assert limit(engine, "alice", "BUY", "100", "6").order.executed_qty == D("6")


def test_legacy_min_notional() -> None:
    engine = make_engine(make_spec(notional=None, min_notional=MinNotionalFilter(D("10"), False, 5)))
    with pytest.raises(EngineError) as info:
        limit(engine, "alice", "BUY", "1", "5")
    assert (info.value.code, info.value.msg) == (-1013, "Filter failure: MIN_NOTIONAL")
    assert limit(engine, "alice", "BUY", "1", "10").order.status == "NEW"


def test_notional_for_market_orders_uses_average_price_when_applied() -> None:
    spec = make_spec(notional=NotionalFilter(D("5"), True, D("0"), False, 5))
    engine = make_engine(spec)
    # No trade yet: no average price, so a MARKET order is not checked against NOTIONAL.
    limit(engine, "bob", "SELL", "100", "1", now=60_000)
    market(engine, "alice", "BUY", "0.01", now=60_000)  # 0.01 * no-price: allowed, trades at 100
    assert engine.avg_price(SYMBOL, now_ms=60_000) == D("100")
    with pytest.raises(EngineError) as info:
        market(engine, "alice", "BUY", "0.049", now=61_000)  # 0.049 * 100 = 4.9 < 5
    assert (info.value.code, info.value.msg) == (-1013, "Filter failure: NOTIONAL")
    with pytest.raises(EngineError) as info:
        market(engine, "alice", "BUY", quote="4.99", now=61_000)
    assert (info.value.code, info.value.msg) == (-1013, "Filter failure: NOTIONAL")
    assert market(engine, "alice", "BUY", "0.05", now=61_000).order.executed_qty == D("0.05")


def test_max_num_orders_and_max_num_algo_orders() -> None:
    engine = make_engine(make_spec(max_num_orders=2, max_num_algo_orders=1))
    limit(engine, "alice", "BUY", "90", "1")
    engine.place_order("alice", SYMBOL, "SELL", "STOP_LOSS", quantity="1", stop_price="80", now_ms=1)
    with pytest.raises(EngineError) as info:
        limit(engine, "alice", "BUY", "91", "1")
    assert (info.value.code, info.value.msg) == (-1013, "Filter failure: MAX_NUM_ORDERS")
    engine.cancel_order("alice", SYMBOL, order_id=1, now_ms=2)
    with pytest.raises(EngineError) as info:
        engine.place_order("alice", SYMBOL, "SELL", "STOP_LOSS", quantity="1", stop_price="79", now_ms=3)
    assert (info.value.code, info.value.msg) == (-1013, "Filter failure: MAX_NUM_ALGO_ORDERS")
    # The market-maker account is exempt.
    for i in range(5):
        engine.place_order("mm", SYMBOL, "BUY", "LIMIT", quantity="1", price=str(50 + i), time_in_force="GTC", now_ms=4)


def test_decimal_and_int_inputs_are_accepted() -> None:
    engine = make_engine()
    result = engine.place_order(
        "alice", SYMBOL, "BUY", "LIMIT", quantity=Decimal("1.5000"), price=100, time_in_force="GTC", now_ms=1
    )
    assert (result.order.price, result.order.orig_qty) == (D("100"), D("1.5"))
    assert str(result.order.orig_qty) == "1.50000000"


def test_spec_and_symbols_accessors() -> None:
    engine = make_engine()
    assert engine.spec(SYMBOL).symbol == SYMBOL
    assert [s.symbol for s in engine.symbols()] == [SYMBOL]
    assert isinstance(engine.spec(SYMBOL), SymbolSpec)
    with pytest.raises(EngineError):
        engine.spec("NOPE")
