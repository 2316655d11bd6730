"""The provider's view of the account: balances and open orders, kept from user data events.

Pure. Events move it forward; a REST snapshot (after every (re)subscribe) replaces it, so a
fill made while the stream was down is never missed. Events older than what the view already
holds (by the exchange's update times) are ignored: after a reconciliation, a late event must
not roll the view back.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from provider.account.model import AccountPositionEvent, Balance, BalanceDeltaEvent, ExecutionReport
from provider.trading.model import Order

__all__ = ["AccountState", "OrderKey"]

OrderKey = tuple[str, int]  # (symbol, order id): order ids are unique per symbol only


def _plain(value: Decimal) -> str:
    return format(value, "f")


class AccountState:
    def __init__(self) -> None:
        self._balances: dict[str, Balance] = {}
        self._balance_times: dict[str, int] = {}
        self._orders: dict[OrderKey, Order] = {}
        self._order_times: dict[OrderKey, int] = {}
        self._as_of_ms = 0
        self._reconciled = False

    @property
    def reconciled(self) -> bool:
        """True once a REST snapshot has been applied (the view is complete)."""
        return self._reconciled

    @property
    def as_of_ms(self) -> int:
        """When the view was last known current (local clock of the last snapshot or event)."""
        return self._as_of_ms

    # ---------------------------------------------------------------- reads

    def balances(self, *, non_zero_only: bool = False) -> tuple[Balance, ...]:
        items = sorted(self._balances.values(), key=lambda b: b.asset)
        return tuple(b for b in items if not (non_zero_only and b.is_zero))

    def balance(self, asset: str) -> Balance | None:
        return self._balances.get(asset)

    def open_orders(self, symbol: str | None = None) -> tuple[Order, ...]:
        orders = sorted(self._orders.values(), key=lambda o: (o.symbol, o.order_id))
        return tuple(o for o in orders if symbol is None or o.symbol == symbol)

    # ---------------------------------------------------------------- writes

    def reconcile(
        self, balances: Iterable[Balance], open_orders: Iterable[Order], *, update_time_ms: int, now_ms: int
    ) -> None:
        """Replace the view with a REST snapshot (``account`` + ``openOrders``)."""
        self._balances = {b.asset: b for b in balances}
        self._balance_times = dict.fromkeys(self._balances, update_time_ms)
        self._orders = {(o.symbol, o.order_id): o for o in open_orders if o.is_open}
        self._order_times = {key: o.update_time_ms for key, o in self._orders.items()}
        self._as_of_ms = now_ms
        self._reconciled = True

    def apply(self, event: ExecutionReport | AccountPositionEvent | BalanceDeltaEvent, now_ms: int) -> bool:
        """Apply one event; False when it was older than the view and ignored."""
        self._as_of_ms = max(self._as_of_ms, now_ms)
        if isinstance(event, ExecutionReport):
            return self._apply_order(event)
        if isinstance(event, AccountPositionEvent):
            return self._apply_position(event)
        return self._apply_delta(event)

    def _apply_order(self, report: ExecutionReport) -> bool:
        order = report.order
        key = (order.symbol, order.order_id)
        known = self._order_times.get(key)
        if known is not None and report.transaction_time_ms < known:
            return False
        if order.is_open:
            self._orders[key] = order
            self._order_times[key] = report.transaction_time_ms
        else:
            self._orders.pop(key, None)
            self._order_times.pop(key, None)
        return True

    def _apply_position(self, event: AccountPositionEvent) -> bool:
        applied = False
        for balance in event.balances:
            if event.last_update_time_ms < self._balance_times.get(balance.asset, 0):
                continue
            self._balances[balance.asset] = balance
            self._balance_times[balance.asset] = event.last_update_time_ms
            applied = True
        return applied

    def _apply_delta(self, event: BalanceDeltaEvent) -> bool:
        if event.clear_time_ms < self._balance_times.get(event.asset, 0):
            return False
        old = self._balances.get(event.asset, Balance(event.asset, "0", "0"))
        free = Decimal(old.free) + Decimal(event.delta)
        self._balances[event.asset] = Balance(event.asset, _plain(free), old.locked)
        self._balance_times[event.asset] = event.clear_time_ms
        return True
