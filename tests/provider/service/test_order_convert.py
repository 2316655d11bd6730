"""Orders → proto Order: the executionReport path (Account service) and the REST path (Trading
service) answer the same proto for the same order, and unknown exchange values become
``*_UNSPECIFIED`` rather than errors."""

from __future__ import annotations

from typing import Any

from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t

from provider.account.model import ExecutionReport
from provider.binance import wire
from provider.binance import ws_api_wire as ws_wire
from provider.service import account_convert, trading_convert

# One partly filled iceberg order, once as an executionReport (§9) and once as a REST order (§6.4).
REPORT: dict[str, Any] = {
    "e": "executionReport", "E": 1700000000300, "s": "BTCUSDT", "c": "web_1", "S": "SELL",
    "o": "LIMIT_MAKER", "f": "GTC", "q": "2.00000000", "p": "30000.10", "P": "0.00", "F": "0.50000000",
    "g": -1, "C": "", "x": "TRADE", "X": "PARTIALLY_FILLED", "r": "NONE", "i": 42, "l": "0.25000000",
    "z": "0.75000000", "L": "30000.10", "n": "0.01", "N": "USDT", "T": 1700000000200, "t": 77,
    "I": 9, "w": True, "m": True, "M": True, "O": 1700000000100, "Z": "22500.07500000", "Y": "7500.02500000",
    "Q": "0.00000000", "W": 1700000000100, "V": "EXPIRE_TAKER",
}  # fmt: skip
REST_ORDER: dict[str, Any] = {
    "symbol": "BTCUSDT", "orderId": 42, "orderListId": -1, "clientOrderId": "web_1", "price": "30000.10",
    "origQty": "2.00000000", "executedQty": "0.75000000", "cummulativeQuoteQty": "22500.07500000",
    "status": "PARTIALLY_FILLED", "timeInForce": "GTC", "type": "LIMIT_MAKER", "side": "SELL",
    "stopPrice": "0.00", "icebergQty": "0.50000000", "time": 1700000000100, "updateTime": 1700000000200,
    "isWorking": True, "workingTime": 1700000000100, "origQuoteOrderQty": "0.00000000",
    "selfTradePreventionMode": "EXPIRE_TAKER",
}  # fmt: skip
EXPECTED = t.Order(
    symbol="BTCUSDT",
    order_id=42,
    client_order_id="web_1",
    side=c.SIDE_SELL,
    type=c.ORDER_TYPE_LIMIT_MAKER,
    time_in_force=c.TIME_IN_FORCE_GTC,
    status=c.ORDER_STATUS_PARTIALLY_FILLED,
    price="30000.10",
    stop_price="0.00",
    original_quantity="2.00000000",
    executed_quantity="0.75000000",
    cumulative_quote_quantity="22500.07500000",
    original_quote_order_quantity="0.00000000",
    iceberg_quantity="0.50000000",
    time_ms=1700000000100,
    update_time_ms=1700000000200,
    working_time_ms=1700000000100,
    is_working=True,
    self_trade_prevention_mode=c.SELF_TRADE_PREVENTION_MODE_EXPIRE_TAKER,
)


def _update(event: dict[str, Any]) -> Any:
    report = ws_wire.parse_event(event)
    assert isinstance(report, ExecutionReport)
    return account_convert.order_update_pb(report)


def test_execution_report_and_rest_order_give_the_same_proto() -> None:
    update = _update(REPORT)
    assert update.order == EXPECTED
    assert (update.execution_type, update.last_executed_quantity, update.trade_id) == (
        c.EXECUTION_TYPE_TRADE,
        "0.25000000",
        77,
    )
    assert (update.commission, update.commission_asset, update.is_maker) == ("0.01", "USDT", True)
    assert trading_convert.order_to_pb(wire.parse_order(REST_ORDER)) == EXPECTED


def test_unknown_exchange_values_map_to_unspecified() -> None:
    odd = {"S": "SHORT", "o": "TRAILING", "f": "GTD", "X": "HALTED", "V": "EXPIRE_ALL", "eR": "NEW_REASON"}
    order = _update({**REPORT, **odd}).order
    assert (order.side, order.type, order.time_in_force) == (
        c.SIDE_UNSPECIFIED,
        c.ORDER_TYPE_UNSPECIFIED,
        c.TIME_IN_FORCE_UNSPECIFIED,
    )
    assert order.status == c.ORDER_STATUS_UNKNOWN
    assert order.self_trade_prevention_mode == c.SELF_TRADE_PREVENTION_MODE_UNSPECIFIED
    assert order.expiry_reason == "NEW_REASON" and order.price == "30000.10"
    rest = {**REST_ORDER, "side": "SHORT", "type": "TRAILING", "timeInForce": "GTD", "status": "HALTED"}
    as_pb = trading_convert.order_to_pb(wire.parse_order({**rest, "selfTradePreventionMode": "EXPIRE_ALL"}))
    assert (as_pb.side, as_pb.type, as_pb.time_in_force, as_pb.status, as_pb.self_trade_prevention_mode) == (
        order.side,
        order.type,
        order.time_in_force,
        order.status,
        order.self_trade_prevention_mode,
    )


def test_execution_report_without_optional_quantities_reads_zero() -> None:
    bare = {k: v for k, v in REPORT.items() if k not in ("P", "F", "Q", "W", "V")}
    order = _update(bare).order
    assert (order.stop_price, order.iceberg_quantity, order.original_quote_order_quantity) == ("0", "0", "0")
    assert order.working_time_ms == 0
    assert order.self_trade_prevention_mode == c.SELF_TRADE_PREVENTION_MODE_UNSPECIFIED
