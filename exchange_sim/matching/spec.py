"""Symbol configuration: filters as Binance publishes them, and their exchangeInfo rendering."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Context, Decimal

from .types import OrderType, SelfTradePreventionMode, fmt

__all__ = [
    "ALL_ORDER_TYPES",
    "ALL_STP_MODES",
    "LotSizeFilter",
    "MinNotionalFilter",
    "NotionalFilter",
    "PriceFilter",
    "SymbolSpec",
    "exact_units",
]

ALL_ORDER_TYPES: tuple[OrderType, ...] = (
    OrderType.LIMIT,
    OrderType.LIMIT_MAKER,
    OrderType.MARKET,
    OrderType.STOP_LOSS,
    OrderType.STOP_LOSS_LIMIT,
    OrderType.TAKE_PROFIT,
    OrderType.TAKE_PROFIT_LIMIT,
)
ALL_STP_MODES: tuple[SelfTradePreventionMode, ...] = tuple(SelfTradePreventionMode)


_scaleb = Context(prec=80).scaleb


def exact_units(value: Decimal, exp: int, what: str) -> int:
    """``value * 10**exp`` as an int; ValueError if it is negative or not a whole number."""
    if not value.is_finite() or value < 0:
        raise ValueError(f"{what}: {value} must be a finite non-negative decimal")
    scaled = _scaleb(value, exp)
    units = int(scaled)
    if units != scaled:
        raise ValueError(f"{what}: {value} has more than {exp} decimals")
    return units


@dataclass(frozen=True, slots=True)
class PriceFilter:
    """Applies to ``price`` and ``stopPrice``; each rule is disabled when its value is 0."""

    min_price: Decimal
    max_price: Decimal
    tick_size: Decimal


@dataclass(frozen=True, slots=True)
class LotSizeFilter:
    """LOT_SIZE (every order's quantity) and MARKET_LOT_SIZE (MARKET orders' quantity)."""

    min_qty: Decimal
    max_qty: Decimal
    step_size: Decimal


@dataclass(frozen=True, slots=True)
class NotionalFilter:
    min_notional: Decimal
    apply_min_to_market: bool
    max_notional: Decimal
    apply_max_to_market: bool
    avg_price_mins: int


@dataclass(frozen=True, slots=True)
class MinNotionalFilter:
    """Legacy MIN_NOTIONAL (modern symbols carry NOTIONAL)."""

    min_notional: Decimal
    apply_to_market: bool
    avg_price_mins: int


def _places(value: Decimal, places: int) -> str:
    return fmt(value.quantize(Decimal(1).scaleb(-places)))


@dataclass(frozen=True, slots=True)
class SymbolSpec:
    """One tradable symbol.

    Prices, stop prices, quote amounts and notional limits use the quote asset's precision;
    quantities the base asset's. ``minQty`` must be a multiple of ``stepSize`` (Binance's
    normal configuration). Commission rates are fractions (``Decimal("0.001")`` = 0.1 %).
    """

    symbol: str
    base_asset: str
    quote_asset: str
    price_filter: PriceFilter
    lot_size: LotSizeFilter
    base_asset_precision: int = 8
    quote_asset_precision: int = 8
    market_lot_size: LotSizeFilter | None = None
    notional: NotionalFilter | None = None
    min_notional: MinNotionalFilter | None = None
    max_num_orders: int | None = 200
    max_num_algo_orders: int | None = 5
    order_types: tuple[OrderType, ...] = ALL_ORDER_TYPES
    quote_order_qty_market_allowed: bool = True
    default_stp_mode: SelfTradePreventionMode = SelfTradePreventionMode.NONE
    allowed_stp_modes: tuple[SelfTradePreventionMode, ...] = ALL_STP_MODES
    maker_commission: Decimal = Decimal("0.001")
    taker_commission: Decimal = Decimal("0.001")

    def __post_init__(self) -> None:
        from .filters import Rules  # local: filters imports this module

        if not self.symbol or self.base_asset == self.quote_asset:
            raise ValueError(f"bad symbol/assets: {self.symbol} {self.base_asset}/{self.quote_asset}")
        for name in ("base_asset_precision", "quote_asset_precision"):
            value = getattr(self, name)
            if not 0 <= value <= 18:
                raise ValueError(f"{name} must be within 0..18, got {value}")
        if self.default_stp_mode not in self.allowed_stp_modes:
            raise ValueError("default_stp_mode must be one of allowed_stp_modes")
        for rate in (self.maker_commission, self.taker_commission):
            if not (rate.is_finite() and 0 <= rate < 1):
                raise ValueError(f"commission rate must be within [0, 1), got {rate}")
        for limit in (self.max_num_orders, self.max_num_algo_orders):
            if limit is not None and limit < 1:
                raise ValueError("max_num_orders / max_num_algo_orders must be >= 1 or None")
        Rules(self)  # validates every filter value against the precisions

    def exchange_info_filters(self) -> list[dict[str, str | int | bool]]:
        """The ``filters`` array of this symbol exactly as ``GET /api/v3/exchangeInfo`` shows it."""
        qp, bp = self.quote_asset_precision, self.base_asset_precision
        pf, ls = self.price_filter, self.lot_size
        out: list[dict[str, str | int | bool]] = [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _places(pf.min_price, qp),
                "maxPrice": _places(pf.max_price, qp),
                "tickSize": _places(pf.tick_size, qp),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _places(ls.min_qty, bp),
                "maxQty": _places(ls.max_qty, bp),
                "stepSize": _places(ls.step_size, bp),
            },
        ]
        if self.market_lot_size is not None:
            ms = self.market_lot_size
            out.append(
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "minQty": _places(ms.min_qty, bp),
                    "maxQty": _places(ms.max_qty, bp),
                    "stepSize": _places(ms.step_size, bp),
                }
            )
        if self.min_notional is not None:
            mn = self.min_notional
            out.append(
                {
                    "filterType": "MIN_NOTIONAL",
                    "minNotional": _places(mn.min_notional, qp),
                    "applyToMarket": mn.apply_to_market,
                    "avgPriceMins": mn.avg_price_mins,
                }
            )
        if self.notional is not None:
            nf = self.notional
            out.append(
                {
                    "filterType": "NOTIONAL",
                    "minNotional": _places(nf.min_notional, qp),
                    "applyMinToMarket": nf.apply_min_to_market,
                    "maxNotional": _places(nf.max_notional, qp),
                    "applyMaxToMarket": nf.apply_max_to_market,
                    "avgPriceMins": nf.avg_price_mins,
                }
            )
        if self.max_num_orders is not None:
            out.append({"filterType": "MAX_NUM_ORDERS", "maxNumOrders": self.max_num_orders})
        if self.max_num_algo_orders is not None:
            out.append({"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": self.max_num_algo_orders})
        return out
