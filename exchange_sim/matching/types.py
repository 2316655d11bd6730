"""Enums (values are Binance's wire strings), the engine's one error type, and the frozen
values and events the engine returns.

Every ``Decimal`` the engine hands out carries the exponent of the precision Binance prints
(prices and quote amounts at the quote asset's precision, quantities at the base asset's),
so ``fmt(x)`` gives the wire string, e.g. ``"0.01000000"``. Use ``fmt`` rather than ``str``:
``str(Decimal("0E-8"))`` is ``"0E-8"``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Context, Decimal
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from .state import OrderSnapshot

__all__ = [
    "AccountPosition",
    "AccountTrade",
    "Balance",
    "BookChange",
    "BookTicker",
    "CancelAllResult",
    "CanceledOrder",
    "EngineError",
    "ExecutionReport",
    "ExecutionType",
    "ExpiryReason",
    "Fill",
    "OrderResult",
    "OrderStatus",
    "OrderType",
    "OrderView",
    "PreventedMatch",
    "RejectReason",
    "SelfTradePreventionMode",
    "Side",
    "TimeInForce",
    "Trade",
    "UserEvent",
    "fmt",
    "units_to_decimal",
]


class Side(enum.StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class OrderType(enum.StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LOSS = "STOP_LOSS"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"


class TimeInForce(enum.StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


class OrderStatus(enum.StrEnum):
    NEW = "NEW"
    PENDING_NEW = "PENDING_NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    PENDING_CANCEL = "PENDING_CANCEL"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"


class ExecutionType(enum.StrEnum):
    NEW = "NEW"
    CANCELED = "CANCELED"
    REPLACED = "REPLACED"
    REJECTED = "REJECTED"
    TRADE = "TRADE"
    EXPIRED = "EXPIRED"
    TRADE_PREVENTION = "TRADE_PREVENTION"


class SelfTradePreventionMode(enum.StrEnum):
    NONE = "NONE"
    EXPIRE_TAKER = "EXPIRE_TAKER"
    EXPIRE_MAKER = "EXPIRE_MAKER"
    EXPIRE_BOTH = "EXPIRE_BOTH"
    DECREMENT = "DECREMENT"
    TRANSFER = "TRANSFER"


class ExpiryReason(enum.StrEnum):
    NONE = "NONE"
    REJECTED = "REJECTED"
    EXCHANGE_CANCELED = "EXCHANGE_CANCELED"
    OCO_TRIGGER = "OCO_TRIGGER"
    OTO_PHASE_ONE_EXPIRED = "OTO_PHASE_ONE_EXPIRED"
    UNFILLED_IOC_QUANTITY_EXPIRED = "UNFILLED_IOC_QUANTITY_EXPIRED"
    UNFILLED_FOK_ORDER_EXPIRED = "UNFILLED_FOK_ORDER_EXPIRED"
    INSUFFICIENT_LIQUIDITY = "INSUFFICIENT_LIQUIDITY"
    EXECUTION_RULE_PRICE_RANGE_EXCEEDED = "EXECUTION_RULE_PRICE_RANGE_EXCEEDED"


class RejectReason(enum.StrEnum):
    NONE = "NONE"
    INSUFFICIENT_BALANCES = "INSUFFICIENT_BALANCES"
    STOP_PRICE_WOULD_TRIGGER_IMMEDIATELY = "STOP_PRICE_WOULD_TRIGGER_IMMEDIATELY"
    WOULD_MATCH_IMMEDIATELY = "WOULD_MATCH_IMMEDIATELY"
    OCO_BAD_PRICES = "OCO_BAD_PRICES"


class EngineError(Exception):
    """A rejection as Binance sends it: ``{"code": code, "msg": msg}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(code, msg)
        self.code = code
        self.msg = msg

    def __str__(self) -> str:
        return f"{self.code} {self.msg}"


_CTX = Context(prec=80)
_scaleb = _CTX.scaleb


def units_to_decimal(units: int, exp: int) -> Decimal:
    """``units * 10**-exp`` as an exact Decimal whose exponent is ``-exp``."""
    return _scaleb(Decimal(units), -exp)


def fmt(value: Decimal) -> str:
    """Binance's rendering of a decimal: fixed point, never exponent notation."""
    return format(value, "f")


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: Decimal
    locked: Decimal


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill of the order a call placed (``fills[]`` of a FULL response)."""

    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    trade_id: int


@dataclass(frozen=True, slots=True)
class Trade:
    """A public trade (``@trade`` stream, ``/api/v3/trades``). Trade ids are per symbol, from 1."""

    symbol: str
    trade_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    time: int
    is_buyer_maker: bool


@dataclass(frozen=True, slots=True)
class AccountTrade:
    """One side of a trade as ``GET /api/v3/myTrades`` shows it."""

    symbol: str
    id: int
    order_id: int
    order_list_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool
    is_best_match: bool


@dataclass(frozen=True, slots=True)
class BookChange:
    """One book mutation: the new aggregated quantity at ``price`` (0 = level removed).

    ``side`` BUY is the bid side, SELL the ask side. Update ids are per symbol and contiguous;
    consecutive mutations of one level inside one call are merged into one change.
    """

    update_id: int
    side: Side
    price: Decimal
    qty: Decimal


@dataclass(frozen=True, slots=True)
class BookTicker:
    update_id: int
    bid_price: Decimal | None
    bid_qty: Decimal | None
    ask_price: Decimal | None
    ask_qty: Decimal | None


@dataclass(frozen=True, slots=True)
class PreventedMatch:
    """A self-trade that STP prevented (``preventedMatches[]`` of the taker's response)."""

    prevented_match_id: int
    taker_order_id: int
    maker_order_id: int
    price: Decimal
    taker_prevented_quantity: Decimal | None
    maker_prevented_quantity: Decimal | None
    self_trade_prevention_mode: SelfTradePreventionMode
    transact_time: int


@dataclass(frozen=True, slots=True)
class OrderView:
    """An order as REST shows it (order object of §6.4, RESULT part of §6.3)."""

    symbol: str
    order_id: int
    order_list_id: int
    client_order_id: str
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal
    cummulative_quote_qty: Decimal
    orig_quote_order_qty: Decimal
    status: OrderStatus
    time_in_force: TimeInForce
    type: OrderType
    side: Side
    stop_price: Decimal
    iceberg_qty: Decimal
    time: int
    update_time: int
    is_working: bool
    working_time: int  # -1 while not working (untriggered stop)
    self_trade_prevention_mode: SelfTradePreventionMode
    prevented_match_id: int | None  # conditional: only after an STP event
    prevented_quantity: Decimal
    expiry_reason: ExpiryReason  # NONE unless EXPIRED / EXPIRED_IN_MATCH by an order-type rule
    account_id: str


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """One ``executionReport`` event; ``WIRE_KEYS`` maps each field to its JSON key."""

    WIRE_KEYS: ClassVar[dict[str, str]] = {
        "event_time": "E",
        "symbol": "s",
        "client_order_id": "c",
        "side": "S",
        "order_type": "o",
        "time_in_force": "f",
        "quantity": "q",
        "price": "p",
        "stop_price": "P",
        "iceberg_qty": "F",
        "order_list_id": "g",
        "orig_client_order_id": "C",
        "execution_type": "x",
        "order_status": "X",
        "reject_reason": "r",
        "order_id": "i",
        "last_executed_qty": "l",
        "cumulative_filled_qty": "z",
        "last_executed_price": "L",
        "commission": "n",
        "commission_asset": "N",
        "transaction_time": "T",
        "trade_id": "t",
        "execution_id": "I",
        "is_working": "w",
        "is_maker": "m",
        "creation_time": "O",
        "cumulative_quote_qty": "Z",
        "last_quote_qty": "Y",
        "quote_order_qty": "Q",
        "working_time": "W",
        "self_trade_prevention_mode": "V",
        "expiry_reason": "eR",
        "prevented_match_id": "v",
        "prevented_quantity": "A",
        "last_prevented_quantity": "B",
        "trade_group_id": "u",
        "counter_order_id": "U",
        "counter_symbol": "Cs",
        "prevented_execution_qty": "pl",
        "prevented_execution_price": "pL",
        "prevented_execution_quote_qty": "pY",
    }

    account_id: str
    event_time: int
    symbol: str
    client_order_id: str  # on CANCELED: the cancel request's id
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    price: Decimal
    stop_price: Decimal
    iceberg_qty: Decimal
    order_list_id: int
    orig_client_order_id: str  # on CANCELED: the order's own id, else ""
    execution_type: ExecutionType
    order_status: OrderStatus
    reject_reason: RejectReason
    order_id: int
    last_executed_qty: Decimal
    cumulative_filled_qty: Decimal
    last_executed_price: Decimal
    commission: Decimal
    commission_asset: str | None  # None (JSON null) when no fill
    transaction_time: int
    trade_id: int  # -1 when no trade
    execution_id: int
    is_working: bool
    is_maker: bool
    creation_time: int
    cumulative_quote_qty: Decimal
    last_quote_qty: Decimal
    quote_order_qty: Decimal
    working_time: int | None  # None: omit "W" (order not working yet)
    self_trade_prevention_mode: SelfTradePreventionMode
    expiry_reason: ExpiryReason
    # STP keys, present only on TRADE_PREVENTION events (None = omit).
    prevented_match_id: int | None = None
    prevented_quantity: Decimal | None = None
    last_prevented_quantity: Decimal | None = None
    trade_group_id: int | None = None
    counter_order_id: int | None = None
    counter_symbol: str | None = None
    prevented_execution_qty: Decimal | None = None
    prevented_execution_price: Decimal | None = None
    prevented_execution_quote_qty: Decimal | None = None


@dataclass(frozen=True, slots=True)
class AccountPosition:
    """One ``outboundAccountPosition``: absolute free/locked of the assets that changed."""

    account_id: str
    event_time: int
    update_time: int
    balances: tuple[Balance, ...]


UserEvent = ExecutionReport | AccountPosition


@dataclass(frozen=True, slots=True)
class OrderResult:
    """What a ``place_order`` or ``cancel_order`` call did, in order.

    ``order`` is built on access from a snapshot taken at the end of the call (cheap for
    the synthetic market, which mostly needs ``order_id``/``status``).
    ``events`` are for non-market-maker accounts only, possibly several accounts (route by
    ``account_id``): execution reports in the order they happened, then one
    ``AccountPosition`` per account whose balances changed.
    """

    symbol: str
    transact_time: int
    snapshot: OrderSnapshot
    fills: tuple[Fill, ...]
    prevented_matches: tuple[PreventedMatch, ...]
    events: tuple[UserEvent, ...]
    trades: tuple[Trade, ...]
    book_changes: tuple[BookChange, ...]
    cancel_client_order_id: str | None = None  # set by cancel_order: the cancel request's id

    @property
    def order(self) -> OrderView:
        return self.snapshot.view()

    @property
    def order_id(self) -> int:
        return self.snapshot.order_id

    @property
    def client_order_id(self) -> str:
        return self.snapshot.client_order_id

    @property
    def status(self) -> OrderStatus:
        return self.snapshot.status


@dataclass(frozen=True, slots=True)
class CanceledOrder:
    order: OrderView
    cancel_client_order_id: str


@dataclass(frozen=True, slots=True)
class CancelAllResult:
    symbol: str
    transact_time: int
    canceled: tuple[CanceledOrder, ...]
    events: tuple[UserEvent, ...]
    book_changes: tuple[BookChange, ...]
