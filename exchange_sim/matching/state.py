"""The engine's mutable internals: orders and accounts (integer units, see filters.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .types import (
    AccountTrade,
    ExpiryReason,
    OrderStatus,
    OrderType,
    OrderView,
    SelfTradePreventionMode,
    Side,
    TimeInForce,
    units_to_decimal,
)

if TYPE_CHECKING:
    from .filters import Rules

__all__ = ["Account", "AccountSymbol", "Order", "OrderSnapshot"]


class AccountSymbol:
    """One account's orders and trades on one symbol."""

    __slots__ = ("algo_open", "by_client_id", "history", "open", "open_client_ids", "trades")

    def __init__(self) -> None:
        self.open: dict[int, Order] = {}  # order id -> open order, in id order
        self.open_client_ids: dict[str, Order] = {}
        self.algo_open = 0  # open STOP_LOSS*/TAKE_PROFIT* orders
        # Not kept for market-maker accounts:
        self.history: list[Order] = []  # every order, in id order
        self.by_client_id: dict[str, Order] = {}  # latest order per client id
        self.trades: list[AccountTrade] = []


class Account:
    __slots__ = ("account_id", "free", "is_mm", "locked", "symbols")

    def __init__(self, account_id: str, is_mm: bool) -> None:
        self.account_id = account_id
        self.is_mm = is_mm
        self.free: dict[str, int] = {}
        self.locked: dict[str, int] = {}
        self.symbols: dict[str, AccountSymbol] = {}

    def on(self, symbol: str) -> AccountSymbol:
        acs = self.symbols.get(symbol)
        if acs is None:
            acs = self.symbols[symbol] = AccountSymbol()
        return acs


class Order:
    """A live or finished order. ``remaining = qty - filled - prevented``."""

    __slots__ = (
        "account",
        "acct_sym",
        "client_order_id",
        "expiry_reason",
        "filled",
        "hold_open",
        "is_buy",
        "is_market",
        "locked",
        "on_book",
        "order_id",
        "otype",
        "prevented",
        "prevented_match_id",
        "price",
        "qty",
        "quote_filled",
        "quote_qty",
        "remaining",
        "rules",
        "side",
        "status",
        "stop_price",
        "stp",
        "symbol",
        "tif",
        "time",
        "trigger_up",
        "update_time",
        "working_time",
    )

    def __init__(
        self,
        symbol: str,
        rules: Rules,
        account: Account,
        acct_sym: AccountSymbol,
        side: Side,
        otype: OrderType,
        tif: TimeInForce,
        price: int,
        stop_price: int,
        qty: int,
        quote_qty: int,
        stp: SelfTradePreventionMode,
        is_market: bool,
    ) -> None:
        self.symbol = symbol
        self.rules = rules
        self.account = account
        self.acct_sym = acct_sym
        self.side = side
        self.is_buy = side is Side.BUY
        self.otype = otype
        self.tif = tif
        self.price = price  # 0 for market-type orders
        self.stop_price = stop_price  # 0 when none
        self.qty = qty
        self.remaining = qty
        self.quote_qty = quote_qty  # quoteOrderQty, 0 when none
        self.stp = stp
        self.is_market = is_market  # executes as MARKET once working
        self.order_id = 0
        self.client_order_id = ""
        self.filled = 0
        self.prevented = 0
        self.quote_filled = 0
        self.status = OrderStatus.NEW
        self.time = 0
        self.update_time = 0
        self.working_time = -1
        self.expiry_reason = ExpiryReason.NONE
        self.locked = 0  # amount this order holds in the account's locked balance
        self.on_book = False
        self.prevented_match_id: int | None = None
        self.hold_open = False  # quoteOrderQty order that will expire for lack of liquidity
        self.trigger_up = False  # stop triggers when last price >= stop (else <=)


class OrderSnapshot:
    """An order's state at the end of one engine call; ``view()`` renders it."""

    __slots__ = (
        "expiry_reason",
        "filled",
        "order",
        "prevented",
        "prevented_match_id",
        "qty",
        "quote_filled",
        "status",
        "update_time",
        "working_time",
    )

    def __init__(self, order: Order) -> None:
        self.order = order
        self.qty = order.qty
        self.filled = order.filled
        self.quote_filled = order.quote_filled
        self.status = order.status
        self.update_time = order.update_time
        self.working_time = order.working_time
        self.prevented = order.prevented
        self.prevented_match_id = order.prevented_match_id
        self.expiry_reason = order.expiry_reason

    @property
    def order_id(self) -> int:
        return self.order.order_id

    @property
    def client_order_id(self) -> str:
        return self.order.client_order_id

    def view(self) -> OrderView:
        o = self.order
        qp = o.rules.quote_precision
        bp = o.rules.base_precision
        return OrderView(
            symbol=o.symbol,
            order_id=o.order_id,
            order_list_id=-1,
            client_order_id=o.client_order_id,
            price=units_to_decimal(o.price, qp),
            orig_qty=units_to_decimal(self.qty, bp),
            executed_qty=units_to_decimal(self.filled, bp),
            cummulative_quote_qty=units_to_decimal(self.quote_filled, qp),
            orig_quote_order_qty=units_to_decimal(o.quote_qty, qp),
            status=self.status,
            time_in_force=o.tif,
            type=o.otype,
            side=o.side,
            stop_price=units_to_decimal(o.stop_price, qp),
            iceberg_qty=units_to_decimal(0, bp),
            time=o.time,
            update_time=self.update_time,
            is_working=self.working_time != -1,
            working_time=self.working_time,
            self_trade_prevention_mode=o.stp,
            prevented_match_id=self.prevented_match_id,
            prevented_quantity=units_to_decimal(self.prevented, bp),
            expiry_reason=self.expiry_reason,
            account_id=o.account.account_id,
        )
