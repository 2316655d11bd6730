"""Account value types: balances, user data stream events and account REST answers.

Money is kept as the exchange's decimal strings; enums keep unknown wire values as ``UNKNOWN``
rather than failing, so a new exchange value never breaks the stream. An order, whether from an
``executionReport`` or a REST answer, is the trading model's `Order` (one type, one meaning).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum
from typing import TypeAlias

from provider.trading.model import Order

__all__ = [
    "AccountInfo",
    "AccountPositionEvent",
    "Balance",
    "BalanceDeltaEvent",
    "ExecutionReport",
    "ExecutionType",
    "MyTrade",
    "StreamState",
    "StreamStatus",
    "UserEvent",
]


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
class ExecutionReport:
    """One ``executionReport`` event: the order after the event plus what this event did."""

    order: Order
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
