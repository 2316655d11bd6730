"""Market-data values as the provider holds them, independent of Binance's JSON shapes.

Prices, quantities and other decimals stay the exchange's decimal strings (``"0.01000000"``):
they are exact, and whoever needs arithmetic converts them with `Decimal` once. Enum values are
Binance's wire strings. Values Binance may add later (a new symbol status, a new filter) are
kept: scalar enums fall back to ``UNKNOWN``, filters to `UnknownFilter` with their raw fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import ClassVar, TypeAlias

__all__ = [
    "AggTrade",
    "AvgPrice",
    "BookTicker",
    "DepthSnapshot",
    "ExchangeInfo",
    "Filter",
    "FilterType",
    "Kline",
    "KlineInterval",
    "Level",
    "LotSizeFilter",
    "MaxNumFilter",
    "MaxPositionFilter",
    "MinNotionalFilter",
    "NotionalFilter",
    "OrderType",
    "PercentPriceBySideFilter",
    "PercentPriceFilter",
    "PriceFilter",
    "RateLimitInterval",
    "RateLimitRule",
    "RateLimitType",
    "SelfTradePreventionMode",
    "SymbolRules",
    "SymbolStatus",
    "Ticker24h",
    "TickerPrice",
    "Trade",
    "TrailingDeltaFilter",
    "UnknownFilter",
]


class SymbolStatus(StrEnum):
    TRADING = "TRADING"
    END_OF_DAY = "END_OF_DAY"
    HALT = "HALT"
    BREAK = "BREAK"
    CANCEL_ONLY = "CANCEL_ONLY"
    UNKNOWN = "UNKNOWN"
    """A status this build does not know; treat as not trading."""


class OrderType(StrEnum):
    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LOSS = "STOP_LOSS"
    STOP_LOSS_LIMIT = "STOP_LOSS_LIMIT"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_LIMIT = "TAKE_PROFIT_LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"


class SelfTradePreventionMode(StrEnum):
    NONE = "NONE"
    EXPIRE_MAKER = "EXPIRE_MAKER"
    EXPIRE_TAKER = "EXPIRE_TAKER"
    EXPIRE_BOTH = "EXPIRE_BOTH"
    DECREMENT = "DECREMENT"
    TRANSFER = "TRANSFER"


class RateLimitType(StrEnum):
    REQUEST_WEIGHT = "REQUEST_WEIGHT"
    ORDERS = "ORDERS"
    RAW_REQUESTS = "RAW_REQUESTS"
    CONNECTIONS = "CONNECTIONS"
    UNKNOWN = "UNKNOWN"


class RateLimitInterval(StrEnum):
    SECOND = "SECOND"
    MINUTE = "MINUTE"
    HOUR = "HOUR"
    DAY = "DAY"
    UNKNOWN = "UNKNOWN"


class KlineInterval(StrEnum):
    """Case-sensitive: ``1m`` is a minute, ``1M`` a month."""

    S1 = "1s"
    M1 = "1m"
    M3 = "3m"
    M5 = "5m"
    M15 = "15m"
    M30 = "30m"
    H1 = "1h"
    H2 = "2h"
    H4 = "4h"
    H6 = "6h"
    H8 = "8h"
    H12 = "12h"
    D1 = "1d"
    D3 = "3d"
    W1 = "1w"
    MONTH1 = "1M"


class FilterType(StrEnum):
    PRICE_FILTER = "PRICE_FILTER"
    PERCENT_PRICE = "PERCENT_PRICE"
    PERCENT_PRICE_BY_SIDE = "PERCENT_PRICE_BY_SIDE"
    LOT_SIZE = "LOT_SIZE"
    MARKET_LOT_SIZE = "MARKET_LOT_SIZE"
    MIN_NOTIONAL = "MIN_NOTIONAL"
    NOTIONAL = "NOTIONAL"
    ICEBERG_PARTS = "ICEBERG_PARTS"
    MAX_NUM_ORDERS = "MAX_NUM_ORDERS"
    MAX_NUM_ALGO_ORDERS = "MAX_NUM_ALGO_ORDERS"
    MAX_NUM_ICEBERG_ORDERS = "MAX_NUM_ICEBERG_ORDERS"
    MAX_NUM_ORDER_AMENDS = "MAX_NUM_ORDER_AMENDS"
    MAX_NUM_ORDER_LISTS = "MAX_NUM_ORDER_LISTS"
    MAX_POSITION = "MAX_POSITION"
    TRAILING_DELTA = "TRAILING_DELTA"
    EXCHANGE_MAX_NUM_ORDERS = "EXCHANGE_MAX_NUM_ORDERS"
    EXCHANGE_MAX_NUM_ALGO_ORDERS = "EXCHANGE_MAX_NUM_ALGO_ORDERS"
    EXCHANGE_MAX_NUM_ICEBERG_ORDERS = "EXCHANGE_MAX_NUM_ICEBERG_ORDERS"
    EXCHANGE_MAX_NUM_ORDER_LISTS = "EXCHANGE_MAX_NUM_ORDER_LISTS"


# ------------------------------------------------------------------------- filters


@dataclass(frozen=True, slots=True)
class PriceFilter:
    """Applies to ``price`` and ``stopPrice``; each rule is off when its value is zero."""

    filter_type: ClassVar[FilterType] = FilterType.PRICE_FILTER
    min_price: str
    max_price: str
    tick_size: str


@dataclass(frozen=True, slots=True)
class LotSizeFilter:
    """LOT_SIZE (``quantity``, ``icebergQty``) or MARKET_LOT_SIZE (MARKET orders' quantity)."""

    filter_type: FilterType
    min_qty: str
    max_qty: str
    step_size: str


@dataclass(frozen=True, slots=True)
class MinNotionalFilter:
    filter_type: ClassVar[FilterType] = FilterType.MIN_NOTIONAL
    min_notional: str
    apply_to_market: bool
    avg_price_mins: int


@dataclass(frozen=True, slots=True)
class NotionalFilter:
    filter_type: ClassVar[FilterType] = FilterType.NOTIONAL
    min_notional: str
    apply_min_to_market: bool
    max_notional: str
    apply_max_to_market: bool
    avg_price_mins: int


@dataclass(frozen=True, slots=True)
class PercentPriceFilter:
    filter_type: ClassVar[FilterType] = FilterType.PERCENT_PRICE
    multiplier_up: str
    multiplier_down: str
    avg_price_mins: int


@dataclass(frozen=True, slots=True)
class PercentPriceBySideFilter:
    filter_type: ClassVar[FilterType] = FilterType.PERCENT_PRICE_BY_SIDE
    bid_multiplier_up: str
    bid_multiplier_down: str
    ask_multiplier_up: str
    ask_multiplier_down: str
    avg_price_mins: int


@dataclass(frozen=True, slots=True)
class MaxNumFilter:
    """A count limit: ICEBERG_PARTS ``limit``, or any MAX_NUM_* / EXCHANGE_MAX_NUM_* maximum."""

    filter_type: FilterType
    limit: int


@dataclass(frozen=True, slots=True)
class MaxPositionFilter:
    filter_type: ClassVar[FilterType] = FilterType.MAX_POSITION
    max_position: str


@dataclass(frozen=True, slots=True)
class TrailingDeltaFilter:
    filter_type: ClassVar[FilterType] = FilterType.TRAILING_DELTA
    min_trailing_above_delta: int
    max_trailing_above_delta: int
    min_trailing_below_delta: int
    max_trailing_below_delta: int


@dataclass(frozen=True, slots=True)
class UnknownFilter:
    """A filter this build does not model (or one whose fields did not parse), kept as sent."""

    filter_type: str
    raw: Mapping[str, object] = field(compare=False)


Filter: TypeAlias = (
    PriceFilter
    | LotSizeFilter
    | MinNotionalFilter
    | NotionalFilter
    | PercentPriceFilter
    | PercentPriceBySideFilter
    | MaxNumFilter
    | MaxPositionFilter
    | TrailingDeltaFilter
    | UnknownFilter
)


# ------------------------------------------------------------------------- exchange info


@dataclass(frozen=True, slots=True)
class RateLimitRule:
    rate_limit_type: RateLimitType
    interval: RateLimitInterval
    interval_num: int
    limit: int


@dataclass(frozen=True, slots=True)
class SymbolRules:
    """One symbol of ``exchangeInfo``: what may be traded and the filters orders must pass."""

    symbol: str
    status: SymbolStatus
    base_asset: str
    base_asset_precision: int
    quote_asset: str
    quote_asset_precision: int
    base_commission_precision: int
    quote_commission_precision: int
    order_types: tuple[OrderType, ...]
    """Known order types only; a type this build cannot place is left out."""
    iceberg_allowed: bool
    oco_allowed: bool
    oto_allowed: bool
    quote_order_qty_market_allowed: bool
    allow_trailing_stop: bool
    cancel_replace_allowed: bool
    amend_allowed: bool
    peg_instructions_allowed: bool
    is_spot_trading_allowed: bool
    is_margin_trading_allowed: bool
    filters: tuple[Filter, ...]
    permission_sets: tuple[tuple[str, ...], ...]
    """Outer tuple AND, inner OR: ``(("SPOT", "MARGIN"), ("TRD_GRP_004",))``."""
    default_stp_mode: SelfTradePreventionMode | None
    allowed_stp_modes: tuple[SelfTradePreventionMode, ...]

    def filter(self, filter_type: FilterType) -> Filter | None:
        for item in self.filters:
            if item.filter_type == filter_type:
                return item
        return None

    @property
    def price_filter(self) -> PriceFilter | None:
        found = self.filter(FilterType.PRICE_FILTER)
        return found if isinstance(found, PriceFilter) else None

    @property
    def lot_size(self) -> LotSizeFilter | None:
        found = self.filter(FilterType.LOT_SIZE)
        return found if isinstance(found, LotSizeFilter) else None

    @property
    def market_lot_size(self) -> LotSizeFilter | None:
        found = self.filter(FilterType.MARKET_LOT_SIZE)
        return found if isinstance(found, LotSizeFilter) else None

    @property
    def min_notional(self) -> MinNotionalFilter | None:
        found = self.filter(FilterType.MIN_NOTIONAL)
        return found if isinstance(found, MinNotionalFilter) else None

    @property
    def notional(self) -> NotionalFilter | None:
        found = self.filter(FilterType.NOTIONAL)
        return found if isinstance(found, NotionalFilter) else None

    @property
    def percent_price(self) -> PercentPriceFilter | None:
        found = self.filter(FilterType.PERCENT_PRICE)
        return found if isinstance(found, PercentPriceFilter) else None

    @property
    def is_trading(self) -> bool:
        return self.status is SymbolStatus.TRADING


@dataclass(frozen=True, slots=True)
class ExchangeInfo:
    timezone: str
    server_time_ms: int
    rate_limits: tuple[RateLimitRule, ...]
    exchange_filters: tuple[Filter, ...]
    symbols: tuple[SymbolRules, ...]
    _by_name: Mapping[str, SymbolRules] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {rules.symbol: rules for rules in self.symbols})

    def symbol(self, name: str) -> SymbolRules | None:
        return self._by_name.get(name)


# ------------------------------------------------------------------------- market data

Level: TypeAlias = tuple[str, str]
"""``(price, qty)`` as the exchange's decimal strings."""


@dataclass(frozen=True, slots=True)
class DepthSnapshot:
    """``GET /api/v3/depth``: bids best (highest) first, asks best (lowest) first."""

    last_update_id: int
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]


@dataclass(frozen=True, slots=True)
class StreamGap:
    """In a trade, book ticker or ticker feed: events may be missing at this point, and why; for
    trade ids that skipped, the first and last missing id (0 when not known)."""

    reason: str
    first_missing_trade_id: int = 0
    last_missing_trade_id: int = 0


STREAM_INTERRUPTED = StreamGap(
    "the provider's stream from the exchange was interrupted; events until it resumes may be missing"
)


@dataclass(frozen=True, slots=True)
class Trade:
    id: int
    price: str
    qty: str
    quote_qty: str
    time_ms: int
    is_buyer_maker: bool
    is_best_match: bool


@dataclass(frozen=True, slots=True)
class AggTrade:
    """Fills of one taker order at one price."""

    agg_id: int
    price: str
    qty: str
    first_trade_id: int
    last_trade_id: int
    time_ms: int
    is_buyer_maker: bool
    is_best_match: bool


@dataclass(frozen=True, slots=True)
class Kline:
    open_time_ms: int
    open: str
    high: str
    low: str
    close: str
    volume: str
    close_time_ms: int
    quote_volume: str
    trades: int
    taker_buy_base_volume: str
    taker_buy_quote_volume: str


@dataclass(frozen=True, slots=True)
class AvgPrice:
    mins: int
    price: str
    close_time_ms: int | None
    """Time of the last trade in the window (absent on older servers)."""


@dataclass(frozen=True, slots=True)
class Ticker24h:
    """Rolling 24 h statistics (FULL form)."""

    symbol: str
    price_change: str
    price_change_percent: str
    weighted_avg_price: str
    prev_close_price: str
    last_price: str
    last_qty: str
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    open_price: str
    high_price: str
    low_price: str
    volume: str
    quote_volume: str
    open_time_ms: int
    close_time_ms: int
    first_id: int
    """-1 when there was no trade in the window."""
    last_id: int
    count: int
    event_time_ms: int = 0
    """Event time ``E`` when the ticker came from the stream (the REST answer has none: 0)."""


@dataclass(frozen=True, slots=True)
class TickerPrice:
    symbol: str
    price: str


@dataclass(frozen=True, slots=True)
class BookTicker:
    symbol: str
    bid_price: str
    bid_qty: str
    ask_price: str
    ask_qty: str
    update_id: int = 0
    """Order-book update id (the bookTicker stream's ``u``; the REST answer has none: 0)."""
