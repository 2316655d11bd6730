"""Account value types: balances, orders as the user data stream reports them, and stream events.

Money is kept as the exchange's decimal strings; enums keep unknown wire values as ``UNKNOWN``
rather than failing, so a new exchange value never breaks the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TypeAlias

__all__ = [
    "AccountInfo",
    "AccountPositionEvent",
    "Balance",
    "BalanceDeltaEvent",
    "ExecutionReport",
    "ExecutionType",
    "MyTrade",
    "OpenOrder",
    "OrderStatus",
    "StreamState",
    "StreamStatus",
    "UserEvent",
]


class OrderStatus(StrEnum):
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"
    EXPIRED_IN_MATCH = "EXPIRED_IN_MATCH"
    PENDING_NEW = "PENDING_NEW"
    PENDING_CANCEL = "PENDING_CANCEL"
    UNKNOWN = "UNKNOWN"

    @property
    def is_open(self) -> bool:
        """Still on the book (or about to be): the states `openOrders` lists."""
        return self in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_NEW)


class ExecutionType(StrEnum):
    NEW = "NEW"
    CANCELED = "CANCELED"
    REPLACED = "REPLACED"
    REJECTED = "REJECTED"
    TRADE = "TRADE"
    EXPIRED = "EXPIRED"
    TRADE_PREVENTION = "TRADE_PREVENTION"
    UNKNOWN = "UNKNOWN"


class StreamState(Enum):
    CONNECTED = 1
    DISCONNECTED = 2
    RECONCILED = 3
    LAGGED = 4


@dataclass(frozen=True, slots=True)
class Balance:
    asset: str
    free: str
    locked: str

    @property
    def is_zero(self) -> bool:
        return _is_zero(self.free) and _is_zero(self.locked)


def _is_zero(text: str) -> bool:
    return text.strip("-").replace(".", "").strip("0") == ""


@dataclass(frozen=True, slots=True)
class OpenOrder:
    """An order's state; from an ``executionReport`` or a REST order object (same meaning).

    Enum-valued fields keep the exchange's text (``side``, ``type``, ``time_in_force``,
    ``self_trade_prevention_mode``); the converters map them to proto enums.
    """

    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str
    status: OrderStatus
    price: str
    stop_price: str
    original_quantity: str
    executed_quantity: str
    cumulative_quote_quantity: str
    original_quote_order_quantity: str
    iceberg_quantity: str
    time_ms: int
    update_time_ms: int
    working_time_ms: int
    is_working: bool
    self_trade_prevention_mode: str
    expiry_reason: str = ""


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """One ``executionReport`` event: the order after the event plus what this event did."""

    order: OpenOrder
    execution_type: ExecutionType
    reject_reason: str
    last_executed_quantity: str
    last_executed_price: str
    last_quote_quantity: str
    commission: str
    commission_asset: str
    trade_id: int
    is_maker: bool
    event_time_ms: int
    transaction_time_ms: int
    original_client_order_id: str


@dataclass(frozen=True, slots=True)
class AccountPositionEvent:
    """``outboundAccountPosition``: absolute balances of the assets that may have changed."""

    balances: tuple[Balance, ...]
    last_update_time_ms: int
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class BalanceDeltaEvent:
    """``balanceUpdate``: a deposit, withdrawal or transfer (free balance moves by ``delta``)."""

    asset: str
    delta: str
    clear_time_ms: int
    event_time_ms: int


@dataclass(frozen=True, slots=True)
class StreamStatus:
    state: StreamState
    detail: str
    time_ms: int


UserEvent: TypeAlias = ExecutionReport | AccountPositionEvent | BalanceDeltaEvent | StreamStatus


@dataclass(frozen=True, slots=True)
class AccountInfo:
    """``GET /api/v3/account``."""

    maker_commission: str
    taker_commission: str
    buyer_commission: str
    seller_commission: str
    can_trade: bool
    can_withdraw: bool
    can_deposit: bool
    account_type: str
    balances: tuple[Balance, ...]
    update_time_ms: int


@dataclass(frozen=True, slots=True)
class MyTrade:
    """One element of ``GET /api/v3/myTrades``."""

    symbol: str
    id: int
    order_id: int
    price: str
    quantity: str
    quote_quantity: str
    commission: str
    commission_asset: str
    time_ms: int
    is_buyer: bool
    is_maker: bool
