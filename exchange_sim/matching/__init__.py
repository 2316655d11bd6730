"""Pure matching engine of the exchange simulator (no IO, no asyncio, no clock, no randomness).

Entry point: ``MatchingEngine``; symbols are configured with ``SymbolSpec``; every mutating
call takes ``now_ms`` and returns an ``OrderResult`` / ``CancelAllResult``; rejections raise
``EngineError(code, msg)`` with Binance's code and message.
"""

from .engine import DecimalInput, MatchingEngine
from .spec import (
    ALL_ORDER_TYPES,
    ALL_STP_MODES,
    LotSizeFilter,
    MinNotionalFilter,
    NotionalFilter,
    PriceFilter,
    SymbolSpec,
)
from .state import OrderSnapshot
from .types import (
    AccountPosition,
    AccountTrade,
    Balance,
    BookChange,
    BookTicker,
    CancelAllResult,
    CanceledOrder,
    EngineError,
    ExecutionReport,
    ExecutionType,
    ExpiryReason,
    Fill,
    OrderResult,
    OrderStatus,
    OrderType,
    OrderView,
    PreventedMatch,
    RejectReason,
    SelfTradePreventionMode,
    Side,
    TimeInForce,
    Trade,
    UserEvent,
    fmt,
    units_to_decimal,
)

__all__ = [
    "ALL_ORDER_TYPES",
    "ALL_STP_MODES",
    "AccountPosition",
    "AccountTrade",
    "Balance",
    "BookChange",
    "BookTicker",
    "CancelAllResult",
    "CanceledOrder",
    "DecimalInput",
    "EngineError",
    "ExecutionReport",
    "ExecutionType",
    "ExpiryReason",
    "Fill",
    "LotSizeFilter",
    "MatchingEngine",
    "MinNotionalFilter",
    "NotionalFilter",
    "OrderResult",
    "OrderSnapshot",
    "OrderStatus",
    "OrderType",
    "OrderView",
    "PreventedMatch",
    "PriceFilter",
    "RejectReason",
    "SelfTradePreventionMode",
    "Side",
    "SymbolSpec",
    "TimeInForce",
    "Trade",
    "UserEvent",
    "fmt",
    "units_to_decimal",
]
