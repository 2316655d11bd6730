from __future__ import annotations

from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from provider.errors import FilterViolation, InvalidArgument
from provider.trading.model import OrderRequest, OrderType, Side, TimeInForce
from provider.trading.validation import check_order, fmt, nearest_multiple
from tests.provider.trading.rules import btcusdt

RULES = btcusdt()


def limit(price: str = "45000.12", quantity: str = "0.001", **kw: Any) -> OrderRequest:
    base = OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, TimeInForce.GTC, quantity=quantity, price=price)
    return replace(base, **kw)


def violation(request: OrderRequest, reference: Decimal | None = None) -> FilterViolation:
    with pytest.raises(FilterViolation) as info:
        check_order(request, RULES, reference_price=reference)
    return info.value


def test_valid_limit_returns_notional() -> None:
    assert check_order(limit(), RULES, reference_price=None) == Decimal("45.00012")


def test_tick_size_message_names_nearest_valid_price() -> None:
    error = violation(limit(price="45000.123"))
    assert error.field == "price" and error.filter_type == "PRICE_FILTER"
    assert error.nearest_valid == "45000.12"
    assert "price 45000.123 is not a multiple of tickSize 0.01; nearest valid: 45000.12" in error.message


def test_step_size_and_min_qty() -> None:
    error = violation(limit(quantity="0.0010004"))
    assert (error.field, error.filter_type, error.nearest_valid) == ("quantity", "LOT_SIZE", "0.001")
    error = violation(limit(quantity="0.000001"))
    assert "below minQty 0.00001" in error.message and error.nearest_valid == "0.00001"


def test_stop_price_is_checked_against_price_filter() -> None:
    request = OrderRequest("BTCUSDT", Side.SELL, OrderType.STOP_LOSS, quantity="0.001", stop_price="40000.005")
    error = violation(request)
    assert error.field == "stop_price" and error.nearest_valid == "40000.01"


def test_min_notional_suggests_smallest_quantity() -> None:
    error = violation(limit(price="45000", quantity="0.0001"))
    assert error.filter_type == "NOTIONAL" and error.field == "quantity"
    assert error.nearest_valid == "0.00012"  # 5 / 45000 rounded up to the step
    assert "below minNotional 5" in error.message


def test_market_by_quantity_uses_reference_price() -> None:
    market = OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, quantity="0.0001")
    assert violation(market, Decimal("40000")).filter_type == "NOTIONAL"
    assert check_order(market, RULES, reference_price=Decimal("60000")) == Decimal("6.0000")


def test_market_by_quote_amount() -> None:
    market = OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, quote_order_qty="100")
    assert check_order(market, RULES, reference_price=None) == Decimal(100)
    assert violation(OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, quote_order_qty="1")).field == (
        "quote_order_quantity"
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT, quantity="1", price="1"), "time_in_force"),
        (OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, TimeInForce.GTC, quantity="1"), "time_in_force"),
        (OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET), "quantity"),
        (OrderRequest("BTCUSDT", Side.BUY, OrderType.MARKET, quantity="1", quote_order_qty="1"), "quantity"),
        (OrderRequest("BTCUSDT", Side.BUY, OrderType.LIMIT_MAKER, quantity="1"), "price"),
        (OrderRequest("BTCUSDT", Side.BUY, OrderType.STOP_LOSS_LIMIT, TimeInForce.GTC, "1", price="1"), "stop_price"),
        (OrderRequest("BTCUSDT", Side.BUY, OrderType.TAKE_PROFIT, quantity="1", stop_price="1", price="1"), "price"),
        (limit(quantity="-1"), "quantity"),
        (limit(price="1e5"), "price"),
        (limit(client_order_id="bad id!"), "client_order_id"),
        (limit(iceberg_qty="0.0001", time_in_force=TimeInForce.IOC), "time_in_force"),
    ],
)
def test_shape_errors_name_the_field(request_: OrderRequest, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        check_order(request_, RULES, reference_price=None)
    assert not isinstance(info.value, FilterViolation)
    assert info.value.field == field


def test_iceberg_parts_limit() -> None:
    error = violation(limit(quantity="0.01", iceberg_qty="0.0005"))
    assert error.filter_type == "ICEBERG_PARTS" and error.nearest_valid == "0.001"


def test_symbol_not_trading_and_type_not_allowed() -> None:
    with pytest.raises(InvalidArgument, match="not trading"):
        check_order(limit(), btcusdt(status="HALT"), reference_price=None)
    with pytest.raises(InvalidArgument, match="not allowed"):
        check_order(limit(), btcusdt(orderTypes=["MARKET"]), reference_price=None)


def test_nearest_multiple_clamps_to_bounds() -> None:
    assert nearest_multiple(Decimal("0.004"), Decimal("0.01"), Decimal("0.01"), Decimal(0)) == Decimal("0.01")
    assert nearest_multiple(Decimal("99.996"), Decimal("0.01"), Decimal(0), Decimal("99.99")) == Decimal("99.99")
    assert fmt(Decimal("45000.1200")) == "45000.12" and fmt(Decimal("1E+2")) == "100"
