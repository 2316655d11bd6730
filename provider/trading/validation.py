"""Pre-trade checks of an order against its symbol's exchangeInfo rules (reference §6.1, §6.3).

Pure: no IO, no clock. All arithmetic is `Decimal`. A failure raises `InvalidArgument` (the order
is malformed for its type) or `FilterViolation` (a filter would reject it), whose message names
the value, the rule, and the nearest value that passes, e.g.
``price 45000.123 is not a multiple of tickSize 0.01; nearest valid: 45000.12``.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

from provider.errors import FilterViolation, InvalidArgument
from provider.marketdata.model import (
    FilterType,
    LotSizeFilter,
    MaxNumFilter,
    PercentPriceBySideFilter,
    PriceFilter,
    SymbolRules,
)
from provider.trading.model import OrderRequest, OrderType, Side, TimeInForce

__all__ = [
    "CLIENT_ORDER_ID_RE",
    "check_order",
    "fmt",
    "nearest_multiple",
    "parse_decimal",
]

# Binance's newClientOrderId pattern.
CLIENT_ORDER_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,36}")
_PLAIN_DECIMAL_RE: Final = re.compile(r"[0-9]+(\.[0-9]+)?")

_LIMIT_TYPES: Final = frozenset(
    {OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT}
)
_STOP_TYPES: Final = frozenset(
    {OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT}
)
_TIF_TYPES: Final = frozenset({OrderType.LIMIT, OrderType.STOP_LOSS_LIMIT, OrderType.TAKE_PROFIT_LIMIT})
# Types that execute at market (now, or when triggered): market notional rules apply.
_MARKET_TYPES: Final = frozenset({OrderType.MARKET, OrderType.STOP_LOSS, OrderType.TAKE_PROFIT})
_ZERO: Final = Decimal(0)


def fmt(value: Decimal) -> str:
    """A decimal as Binance writes it: no exponent, no trailing zeros."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def parse_decimal(field: str, text: str) -> Decimal:
    """A caller's positive decimal string (``"45000.12"``); INVALID_ARGUMENT naming `field` otherwise."""
    if not _PLAIN_DECIMAL_RE.fullmatch(text):
        raise InvalidArgument(field, f'{field} must be a plain decimal string such as "0.001", got {text!r}')
    try:
        value = Decimal(text)
    except InvalidOperation:  # unreachable after the pattern, kept for safety of the type
        raise InvalidArgument(field, f"{field} is not a decimal: {text!r}") from None
    if value <= 0:
        raise InvalidArgument(field, f"{field} must be greater than 0, got {text!r}")
    return value


def nearest_multiple(value: Decimal, step: Decimal, low: Decimal, high: Decimal) -> Decimal:
    """The multiple of `step` closest to `value` within [`low`, `high`] (bounds of 0 are open)."""
    nearest = (value / step).to_integral_value(ROUND_HALF_UP) * step
    if low > 0:
        nearest = max(nearest, (low / step).to_integral_value(ROUND_CEILING) * step)
    if high > 0:
        nearest = min(nearest, (high / step).to_integral_value(ROUND_FLOOR) * step)
    return nearest


def _violation(field: str, filter_type: FilterType, message: str, nearest: Decimal | None) -> FilterViolation:
    nearest_text = None if nearest is None else fmt(nearest)
    suffix = "" if nearest_text is None else f"; nearest valid: {nearest_text}"
    return FilterViolation(field, f"{message}{suffix} ({filter_type.value})", filter_type.value, nearest_text)


def _check_price(field: str, value: Decimal, f: PriceFilter) -> None:
    low, high, tick = Decimal(f.min_price), Decimal(f.max_price), Decimal(f.tick_size)
    near = nearest_multiple(value, tick, low, high) if tick > 0 else None
    if low > 0 and value < low:
        raise _violation(field, f.filter_type, f"{field} {fmt(value)} is below minPrice {fmt(low)}", near or low)
    if high > 0 and value > high:
        raise _violation(field, f.filter_type, f"{field} {fmt(value)} is above maxPrice {fmt(high)}", near or high)
    if tick > 0 and value % tick != 0:
        raise _violation(field, f.filter_type, f"{field} {fmt(value)} is not a multiple of tickSize {fmt(tick)}", near)


def _check_lot(field: str, value: Decimal, f: LotSizeFilter) -> None:
    low, high, step = Decimal(f.min_qty), Decimal(f.max_qty), Decimal(f.step_size)
    near = nearest_multiple(value, step, low, high) if step > 0 else None
    name = f.filter_type
    if low > 0 and value < low:
        raise _violation(field, name, f"{field} {fmt(value)} is below minQty {fmt(low)}", near or low)
    if high > 0 and value > high:
        raise _violation(field, name, f"{field} {fmt(value)} is above maxQty {fmt(high)}", near or high)
    if step > 0 and value % step != 0:
        raise _violation(field, name, f"{field} {fmt(value)} is not a multiple of stepSize {fmt(step)}", near)


def _min_qty_for(notional: Decimal, price: Decimal, lot: LotSizeFilter | None) -> Decimal:
    """The smallest quantity at `price` whose notional reaches `notional` (rounded up to the step)."""
    qty = notional / price
    step = Decimal(lot.step_size) if lot is not None else _ZERO
    return (qty / step).to_integral_value(ROUND_CEILING) * step if step > 0 else qty


def _max_qty_for(notional: Decimal, price: Decimal, lot: LotSizeFilter | None) -> Decimal:
    qty = notional / price
    step = Decimal(lot.step_size) if lot is not None else _ZERO
    return (qty / step).to_integral_value(ROUND_FLOOR) * step if step > 0 else qty


def _check_notional(
    request: OrderRequest, rules: SymbolRules, notional: Decimal, price: Decimal | None, is_market: bool
) -> None:
    lot = rules.lot_size
    field = "quote_order_quantity" if request.quote_order_qty is not None else "quantity"
    ruled = rules.notional
    if ruled is not None:
        low, high = Decimal(ruled.min_notional), Decimal(ruled.max_notional)
        if (not is_market or ruled.apply_min_to_market) and low > 0 and notional < low:
            near = _min_qty_for(low, price, lot) if price and field == "quantity" else low
            raise _violation(
                field,
                FilterType.NOTIONAL,
                f"notional {fmt(notional)} (price x quantity) is below minNotional {fmt(low)}",
                near,
            )
        if (not is_market or ruled.apply_max_to_market) and high > 0 and notional > high:
            near = _max_qty_for(high, price, lot) if price and field == "quantity" else high
            raise _violation(
                field,
                FilterType.NOTIONAL,
                f"notional {fmt(notional)} (price x quantity) is above maxNotional {fmt(high)}",
                near,
            )
    legacy = rules.min_notional
    if legacy is not None and (not is_market or legacy.apply_to_market):
        low = Decimal(legacy.min_notional)
        if low > 0 and notional < low:
            near = _min_qty_for(low, price, lot) if price and field == "quantity" else low
            raise _violation(
                field,
                FilterType.MIN_NOTIONAL,
                f"notional {fmt(notional)} (price x quantity) is below minNotional {fmt(low)}",
                near,
            )


def _check_percent_price(rules: SymbolRules, side: Side, price: Decimal, reference: Decimal) -> None:
    by_side = rules.filter(FilterType.PERCENT_PRICE_BY_SIDE)
    plain = rules.percent_price
    if isinstance(by_side, PercentPriceBySideFilter):
        up, down = (
            (by_side.bid_multiplier_up, by_side.bid_multiplier_down)
            if side is Side.BUY
            else (by_side.ask_multiplier_up, by_side.ask_multiplier_down)
        )
        kind = FilterType.PERCENT_PRICE_BY_SIDE
    elif plain is not None:
        up, down, kind = plain.multiplier_up, plain.multiplier_down, FilterType.PERCENT_PRICE
    else:
        return
    high, low = reference * Decimal(up), reference * Decimal(down)
    if price > high:
        raise _violation(
            "price", kind, f"price {fmt(price)} is above {up} x average price {fmt(reference)} = {fmt(high)}", None
        )
    if price < low:
        raise _violation(
            "price", kind, f"price {fmt(price)} is below {down} x average price {fmt(reference)} = {fmt(low)}", None
        )


def _require(present: bool, field: str, otype: OrderType) -> None:
    if not present:
        raise InvalidArgument(field, f"{field} is required for {otype.value} orders")


def _forbid(present: bool, field: str, otype: OrderType) -> None:
    if present:
        raise InvalidArgument(field, f"{field} must be empty for {otype.value} orders")


def _check_shape(request: OrderRequest, rules: SymbolRules) -> None:
    """Which fields each order type needs and refuses (reference §6.3), and what the symbol allows."""
    otype = request.type
    if not rules.is_trading:
        raise InvalidArgument("symbol", f"{rules.symbol} is not trading (status {rules.status.value})")
    if rules.order_types and otype not in rules.order_types:
        allowed = ", ".join(t.value for t in rules.order_types)
        raise InvalidArgument("type", f"{otype.value} orders are not allowed on {rules.symbol} (allowed: {allowed})")
    has_tif = request.time_in_force is not None
    (_require if otype in _TIF_TYPES else _forbid)(has_tif, "time_in_force", otype)
    (_require if otype in _LIMIT_TYPES else _forbid)(request.price is not None, "price", otype)
    (_require if otype in _STOP_TYPES else _forbid)(request.stop_price is not None, "stop_price", otype)
    if otype is OrderType.MARKET:
        if (request.quantity is None) == (request.quote_order_qty is None):
            raise InvalidArgument("quantity", "MARKET orders need exactly one of quantity and quote_order_quantity")
        if request.quote_order_qty is not None and not rules.quote_order_qty_market_allowed:
            raise InvalidArgument(
                "quote_order_quantity", f"{rules.symbol} does not allow MARKET orders by quote order quantity"
            )
    else:
        _require(request.quantity is not None, "quantity", otype)
        _forbid(request.quote_order_qty is not None, "quote_order_quantity", otype)
    if request.iceberg_qty is not None:
        if otype not in _LIMIT_TYPES:
            raise InvalidArgument("iceberg_quantity", f"iceberg_quantity must be empty for {otype.value} orders")
        if not rules.iceberg_allowed:
            raise InvalidArgument("iceberg_quantity", f"{rules.symbol} does not allow iceberg orders")
        if has_tif and request.time_in_force is not TimeInForce.GTC:
            raise InvalidArgument("time_in_force", "iceberg orders need time_in_force GTC")
    if request.stp_mode is not None and rules.allowed_stp_modes and request.stp_mode not in rules.allowed_stp_modes:
        allowed = ", ".join(m.value for m in rules.allowed_stp_modes)
        raise InvalidArgument(
            "self_trade_prevention_mode",
            f"{request.stp_mode.value} is not allowed on {rules.symbol} (allowed: {allowed})",
        )
    if request.client_order_id is not None and not CLIENT_ORDER_ID_RE.fullmatch(request.client_order_id):
        raise InvalidArgument(
            "client_order_id", "client_order_id must be 1 to 36 characters of letters, digits, '-' or '_'"
        )


def check_order(request: OrderRequest, rules: SymbolRules, *, reference_price: Decimal | None) -> Decimal | None:
    """Check `request` against `rules`; returns its notional in the quote asset when computable.

    `reference_price` is the symbol's average price (``GET /api/v3/avgPrice``) used for MARKET
    notional and PERCENT_PRICE checks; None skips the checks that need it.
    """
    _check_shape(request, rules)
    quantity = None if request.quantity is None else parse_decimal("quantity", request.quantity)
    quote_qty = (
        None if request.quote_order_qty is None else parse_decimal("quote_order_quantity", request.quote_order_qty)
    )
    price = None if request.price is None else parse_decimal("price", request.price)
    stop = None if request.stop_price is None else parse_decimal("stop_price", request.stop_price)
    iceberg = None if request.iceberg_qty is None else parse_decimal("iceberg_quantity", request.iceberg_qty)

    price_filter = rules.price_filter
    if price_filter is not None:
        if price is not None:
            _check_price("price", price, price_filter)
        if stop is not None:
            _check_price("stop_price", stop, price_filter)
    is_market = request.type in _MARKET_TYPES
    lot = rules.lot_size
    if quantity is not None:
        if lot is not None:
            _check_lot("quantity", quantity, lot)
        market_lot = rules.market_lot_size
        if is_market and market_lot is not None:
            _check_lot("quantity", quantity, market_lot)
    if iceberg is not None and quantity is not None:
        if lot is not None:
            _check_lot("iceberg_quantity", iceberg, lot)
        if iceberg >= quantity:
            raise InvalidArgument("iceberg_quantity", "iceberg_quantity must be less than quantity")
        parts = rules.filter(FilterType.ICEBERG_PARTS)
        if isinstance(parts, MaxNumFilter):
            needed = (quantity / iceberg).to_integral_value(ROUND_CEILING)
            if needed > parts.limit:
                smallest = _ZERO if lot is None else Decimal(lot.step_size)
                near = quantity / parts.limit
                if smallest > 0:
                    near = (near / smallest).to_integral_value(ROUND_CEILING) * smallest
                raise _violation(
                    "iceberg_quantity",
                    FilterType.ICEBERG_PARTS,
                    f"quantity / iceberg_quantity needs {needed} parts, above the limit of {parts.limit}",
                    near,
                )

    # The price the notional is computed at: the limit price, else the trigger, else the average.
    unit_price = price if price is not None else stop if stop is not None else reference_price
    if price is not None and reference_price is not None:
        _check_percent_price(rules, request.side, price, reference_price)
    if quote_qty is not None:
        notional: Decimal | None = quote_qty
    elif quantity is not None and unit_price is not None:
        notional = quantity * unit_price
    else:
        notional = None
    if notional is not None:
        _check_notional(request, rules, notional, unit_price, is_market)
    return notional
