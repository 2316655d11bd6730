"""Domain values ↔ protobuf messages for the Trading service. The only place both meet.

The order enum tables and `order_to_pb` are the only ones: the Account service's order updates
use them too. The tables are keyed by the domain `StrEnum`s, whose members equal their wire
strings, so they also map the exchange's text (``SIDES["BUY"]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, TypeVar

from binance.provider.v1 import common_pb2 as c
from binance.provider.v1 import trading_pb2 as t

from provider.errors import InvalidArgument
from provider.trading import model as tm

__all__ = [
    "ORDER_STATUSES",
    "ORDER_TYPES",
    "SIDES",
    "STP_MODES",
    "TIME_IN_FORCE",
    "fill_to_pb",
    "kill_switch_to_pb",
    "order_request",
    "order_to_pb",
    "placed_to_pb",
    "status_to_pb",
    "tested_to_pb",
]

SIDES: Final = {tm.Side.BUY: c.SIDE_BUY, tm.Side.SELL: c.SIDE_SELL}
ORDER_TYPES: Final = {
    tm.OrderType.LIMIT: c.ORDER_TYPE_LIMIT,
    tm.OrderType.MARKET: c.ORDER_TYPE_MARKET,
    tm.OrderType.LIMIT_MAKER: c.ORDER_TYPE_LIMIT_MAKER,
    tm.OrderType.STOP_LOSS: c.ORDER_TYPE_STOP_LOSS,
    tm.OrderType.STOP_LOSS_LIMIT: c.ORDER_TYPE_STOP_LOSS_LIMIT,
    tm.OrderType.TAKE_PROFIT: c.ORDER_TYPE_TAKE_PROFIT,
    tm.OrderType.TAKE_PROFIT_LIMIT: c.ORDER_TYPE_TAKE_PROFIT_LIMIT,
}
TIME_IN_FORCE: Final = {
    tm.TimeInForce.GTC: c.TIME_IN_FORCE_GTC,
    tm.TimeInForce.IOC: c.TIME_IN_FORCE_IOC,
    tm.TimeInForce.FOK: c.TIME_IN_FORCE_FOK,
}
ORDER_STATUSES: Final = {
    tm.OrderStatus.NEW: c.ORDER_STATUS_NEW,
    tm.OrderStatus.PARTIALLY_FILLED: c.ORDER_STATUS_PARTIALLY_FILLED,
    tm.OrderStatus.FILLED: c.ORDER_STATUS_FILLED,
    tm.OrderStatus.CANCELED: c.ORDER_STATUS_CANCELED,
    tm.OrderStatus.REJECTED: c.ORDER_STATUS_REJECTED,
    tm.OrderStatus.EXPIRED: c.ORDER_STATUS_EXPIRED,
    tm.OrderStatus.EXPIRED_IN_MATCH: c.ORDER_STATUS_EXPIRED_IN_MATCH,
    tm.OrderStatus.PENDING_NEW: c.ORDER_STATUS_PENDING_NEW,
    tm.OrderStatus.PENDING_CANCEL: c.ORDER_STATUS_PENDING_CANCEL,
    tm.OrderStatus.UNKNOWN: c.ORDER_STATUS_UNKNOWN,
}
STP_MODES: Final = {
    tm.SelfTradePreventionMode.NONE: c.SELF_TRADE_PREVENTION_MODE_NONE,
    tm.SelfTradePreventionMode.EXPIRE_TAKER: c.SELF_TRADE_PREVENTION_MODE_EXPIRE_TAKER,
    tm.SelfTradePreventionMode.EXPIRE_MAKER: c.SELF_TRADE_PREVENTION_MODE_EXPIRE_MAKER,
    tm.SelfTradePreventionMode.EXPIRE_BOTH: c.SELF_TRADE_PREVENTION_MODE_EXPIRE_BOTH,
    tm.SelfTradePreventionMode.DECREMENT: c.SELF_TRADE_PREVENTION_MODE_DECREMENT,
    tm.SelfTradePreventionMode.TRANSFER: c.SELF_TRADE_PREVENTION_MODE_TRANSFER,
}
_RESPONSE_TYPES: Final[dict[int, tm.OrderResponseType]] = {
    t.ORDER_RESPONSE_TYPE_UNSPECIFIED: tm.OrderResponseType.FULL,
    t.ORDER_RESPONSE_TYPE_ACK: tm.OrderResponseType.ACK,
    t.ORDER_RESPONSE_TYPE_RESULT: tm.OrderResponseType.RESULT,
    t.ORDER_RESPONSE_TYPE_FULL: tm.OrderResponseType.FULL,
}

K = TypeVar("K")


def _reverse(table: Mapping[K, int]) -> dict[int, K]:
    return {v: k for k, v in table.items()}


_SIDE_IN: Final = _reverse(SIDES)
_TYPE_IN: Final = _reverse(ORDER_TYPES)
_TIF_IN: Final = _reverse(TIME_IN_FORCE)
_STP_IN: Final = _reverse(STP_MODES)


def _required(table: dict[int, K], value: int, field: str, enum_name: str) -> K:
    try:
        return table[value]
    except KeyError:
        raise InvalidArgument(field, f"{field} is required: set a {enum_name} value") from None


def _text(value: str) -> str | None:
    value = value.strip()
    return value or None


def order_request(spec: t.OrderSpec, response_type: int = t.ORDER_RESPONSE_TYPE_UNSPECIFIED) -> tm.OrderRequest:
    """An OrderSpec as a domain request; INVALID_ARGUMENT names a missing enum field."""
    if response_type not in _RESPONSE_TYPES:
        raise InvalidArgument("response_type", f"unknown response_type {response_type}")
    return tm.OrderRequest(
        symbol=spec.symbol,
        side=_required(_SIDE_IN, spec.side, "side", "SIDE_BUY/SIDE_SELL"),
        type=_required(_TYPE_IN, spec.type, "type", "ORDER_TYPE_*"),
        time_in_force=_TIF_IN.get(spec.time_in_force),
        quantity=_text(spec.quantity),
        quote_order_qty=_text(spec.quote_order_quantity),
        price=_text(spec.price),
        stop_price=_text(spec.stop_price),
        iceberg_qty=_text(spec.iceberg_quantity),
        client_order_id=_text(spec.client_order_id),
        stp_mode=_STP_IN.get(spec.self_trade_prevention_mode),
        response_type=_RESPONSE_TYPES[response_type],
    )


def order_to_pb(order: tm.Order) -> t.Order:
    """An order (a REST answer or an ``executionReport``'s) as the proto Order."""
    return t.Order(
        symbol=order.symbol,
        order_id=order.order_id,
        client_order_id=order.client_order_id,
        side=SIDES.get(order.side, c.SIDE_UNSPECIFIED) if order.side else c.SIDE_UNSPECIFIED,
        type=ORDER_TYPES.get(order.type, c.ORDER_TYPE_UNSPECIFIED) if order.type else c.ORDER_TYPE_UNSPECIFIED,
        time_in_force=TIME_IN_FORCE[order.time_in_force] if order.time_in_force else c.TIME_IN_FORCE_UNSPECIFIED,
        status=ORDER_STATUSES[order.status] if order.status else c.ORDER_STATUS_UNSPECIFIED,
        price=order.price or "",
        stop_price=order.stop_price or "",
        original_quantity=order.orig_qty or "",
        executed_quantity=order.executed_qty or "",
        cumulative_quote_quantity=order.cumulative_quote_qty or "",
        original_quote_order_quantity=order.orig_quote_order_qty or "",
        iceberg_quantity=order.iceberg_qty or "",
        time_ms=order.time_ms,
        update_time_ms=order.update_time_ms,
        working_time_ms=order.working_time_ms,
        is_working=order.is_working,
        self_trade_prevention_mode=STP_MODES[order.stp_mode]
        if order.stp_mode
        else c.SELF_TRADE_PREVENTION_MODE_UNSPECIFIED,
        expiry_reason=order.expiry_reason,
    )


def fill_to_pb(fill: tm.Fill) -> t.Fill:
    return t.Fill(
        price=fill.price,
        quantity=fill.qty,
        commission=fill.commission,
        commission_asset=fill.commission_asset,
        trade_id=fill.trade_id,
    )


def placed_to_pb(placed: tm.PlacedOrder) -> t.PlaceOrderResponse:
    return t.PlaceOrderResponse(
        order=order_to_pb(placed.order),
        fills=[fill_to_pb(f) for f in placed.fills],
        reconciled=placed.reconciled,
    )


def tested_to_pb(tested: tm.TestedOrder) -> t.TestOrderResponse:
    response = t.TestOrderResponse(valid=True, notional=tested.notional or "")
    if tested.maker_commission is not None and tested.taker_commission is not None:
        response.standard_commission.CopyFrom(
            t.CommissionRates(maker=tested.maker_commission, taker=tested.taker_commission)
        )
    return response


def status_to_pb(status: tm.TradingStatus) -> t.GetTradingStatusResponse:
    return t.GetTradingStatusResponse(
        trading_enabled=status.trading_enabled,
        kill_switch_engaged=status.kill_switch_engaged,
        kill_switch_reason=status.kill_switch_reason,
        credentials_configured=status.credentials_configured,
        max_order_notional=status.max_order_notional or "",
        max_symbol_notional=status.max_symbol_notional or "",
    )


def kill_switch_to_pb(result: tm.KillSwitchResult) -> t.SetKillSwitchResponse:
    return t.SetKillSwitchResponse(
        kill_switch_engaged=result.engaged,
        cancelled_orders=[order_to_pb(o) for o in result.cancelled],
        failures=list(result.failures),
    )
