"""Order value types: what the caller asks for and what the exchange says about an order.

Prices and quantities are decimal strings exactly as Binance writes them (never floats); an
empty or ``None`` field means "not set". Enum values are the wire strings. `OrderType` and
`SelfTradePreventionMode` are the market-data model's (exchangeInfo lists the same values).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from provider.marketdata.model import OrderType, SelfTradePreventionMode

__all__ = [
    "Fill",
    "KillSwitchResult",
    "Order",
    "OrderRequest",
    "OrderResponseType",
    "OrderStatus",
    "OrderType",
    "OrdersPage",
    "PlacedOrder",
    "SelfTradePreventionMode",
    "Side",
    "TestedOrder",
    "TimeInForce",
    "TradingStatus",
]


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class TimeInForce(StrEnum):
    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"


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
    """Not a Binance status: the provider could not learn the outcome yet (reference §4.6)."""


class OrderResponseType(StrEnum):
    ACK = "ACK"
    RESULT = "RESULT"
    FULL = "FULL"


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """A new order as the caller specified it (validated by `provider.trading.validation`)."""

    symbol: str
    side: Side
    type: OrderType
    time_in_force: TimeInForce | None = None
    quantity: str | None = None
    quote_order_qty: str | None = None
    price: str | None = None
    stop_price: str | None = None
    iceberg_qty: str | None = None
    client_order_id: str | None = None
    stp_mode: SelfTradePreventionMode | None = None
    response_type: OrderResponseType = OrderResponseType.FULL


@dataclass(frozen=True, slots=True)
class Fill:
    price: str
    qty: str
    commission: str
    commission_asset: str
    trade_id: int


@dataclass(frozen=True, slots=True)
class Order:
    """An order as the exchange reports it: REST answers (placement, cancel, query, open
    orders) and ``executionReport`` events alike; the account view keeps these too.

    ``status`` is None for an ACK placement answer, which does not say; ``order_id`` is 0 while
    the status is UNKNOWN. Optional numbers are None when the answer did not carry them.
    """

    symbol: str
    order_id: int
    client_order_id: str
    side: Side | None = None
    type: OrderType | None = None
    time_in_force: TimeInForce | None = None
    status: OrderStatus | None = None
    price: str | None = None
    stop_price: str | None = None
    orig_qty: str | None = None
    executed_qty: str | None = None
    cumulative_quote_qty: str | None = None
    orig_quote_order_qty: str | None = None
    iceberg_qty: str | None = None
    time_ms: int = 0
    update_time_ms: int = 0
    working_time_ms: int = 0
    is_working: bool = False
    stp_mode: SelfTradePreventionMode | None = None
    expiry_reason: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in (OrderStatus.NEW, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_NEW)


@dataclass(frozen=True, slots=True)
class PlacedOrder:
    order: Order
    fills: tuple[Fill, ...] = ()
    reconciled: bool = False
    """True when the first answer was ambiguous and the outcome was learnt by querying."""


@dataclass(frozen=True, slots=True)
class TestedOrder:
    notional: str | None
    maker_commission: str | None = None
    taker_commission: str | None = None


@dataclass(frozen=True, slots=True)
class OrdersPage:
    orders: tuple[Order, ...]
    next_from_order_id: int
    """Pass as ``from_order_id`` for the next page; 0 when there is none."""


@dataclass(frozen=True, slots=True)
class TradingStatus:
    trading_enabled: bool
    kill_switch_engaged: bool
    kill_switch_reason: str
    credentials_configured: bool
    max_order_notional: str | None
    max_symbol_notional: str | None


@dataclass(frozen=True, slots=True)
class KillSwitchResult:
    engaged: bool
    cancelled: tuple[Order, ...]
    failures: tuple[str, ...]
