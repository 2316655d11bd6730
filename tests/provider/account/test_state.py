"""AccountState: events move the view forward, snapshots replace it, stale events are ignored."""

from __future__ import annotations

import dataclasses

from provider.account.model import (
    AccountPositionEvent,
    Balance,
    BalanceDeltaEvent,
    ExecutionReport,
    ExecutionType,
)
from provider.account.state import AccountState
from provider.trading.model import Order, OrderStatus, OrderType, SelfTradePreventionMode, Side, TimeInForce


def order(order_id: int, status: OrderStatus, update: int = 100) -> Order:
    return Order(
        symbol="BTCUSDT",
        order_id=order_id,
        client_order_id=f"c{order_id}",
        side=Side.BUY,
        type=OrderType.LIMIT,
        time_in_force=TimeInForce.GTC,
        status=status,
        price="100.00",
        stop_price="0",
        orig_qty="1.0",
        executed_qty="0.0",
        cumulative_quote_qty="0.0",
        orig_quote_order_qty="0",
        iceberg_qty="0",
        time_ms=update,
        update_time_ms=update,
        working_time_ms=update,
        is_working=True,
        stp_mode=SelfTradePreventionMode.NONE,
    )


def report(o: Order, x: ExecutionType, t: int) -> ExecutionReport:
    return ExecutionReport(o, x, "NONE", "0", "0", "0", "0", "", -1, False, t, t, "")


def test_snapshot_then_events() -> None:
    state = AccountState()
    assert not state.reconciled
    state.reconcile(
        [Balance("USDT", "100", "0"), Balance("BTC", "0", "0")],
        [order(1, OrderStatus.NEW)],
        update_time_ms=100,
        now_ms=5,
    )
    assert state.reconciled and state.as_of_ms == 5
    assert [b.asset for b in state.balances(non_zero_only=True)] == ["USDT"]
    assert state.apply(report(order(2, OrderStatus.NEW, 200), ExecutionType.NEW, 200), 6)
    assert [o.order_id for o in state.open_orders()] == [1, 2]
    assert state.apply(report(order(1, OrderStatus.FILLED, 210), ExecutionType.TRADE, 210), 7)
    assert [o.order_id for o in state.open_orders()] == [2]
    assert state.apply(AccountPositionEvent((Balance("BTC", "1", "0"),), 210, 210), 8)
    assert state.balance("BTC") == Balance("BTC", "1", "0")
    assert state.apply(BalanceDeltaEvent("BTC", "-0.25", 220, 220), 9)
    assert state.balance("BTC") == Balance("BTC", "0.75", "0")
    assert state.as_of_ms == 9


def test_stale_events_do_not_roll_back_a_snapshot() -> None:
    state = AccountState()
    filled = dataclasses.replace(order(1, OrderStatus.NEW, 300), executed_qty="0.5")
    state.reconcile([Balance("USDT", "50", "0")], [filled], update_time_ms=300, now_ms=1)
    assert not state.apply(report(order(1, OrderStatus.NEW, 250), ExecutionType.NEW, 250), 2)
    assert state.open_orders() == (filled,)
    assert not state.apply(AccountPositionEvent((Balance("USDT", "100", "0"),), 250, 250), 2)
    assert state.balance("USDT") == Balance("USDT", "50", "0")
    # A non-open order in a snapshot is not kept.
    state.reconcile([], [order(3, OrderStatus.CANCELED)], update_time_ms=400, now_ms=3)
    assert state.open_orders() == ()
