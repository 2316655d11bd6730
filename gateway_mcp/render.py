"""Compact text for a model's context: rounding of statistics, small tables, and provider errors as
advice a model can act on.

Exchange values (prices, quantities) are never rounded: they stay the decimal strings the exchange
sent. Only statistics the gateway derives (ratios, basis points, averages) are rounded.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

import grpc

from provider_client.errors import ProviderCallError

RATIO_PLACES = 4  # imbalance and shares: 0.0001 is finer than any decision a model makes on them
FACTOR_PLACES = 2  # "x times the median"
BPS_DIGITS = 3  # basis points to 3 significant digits: a 0.0017 bps spread must not print as 0
STAT_PRICE_EXTRA_PLACES = 2  # derived prices (microprice, VWAP): two digits below the prices they come from


def round_stat(value: float, places: int) -> float:
    """A statistic rounded for display; non-finite values (which JSON cannot carry) become 0.0."""
    if not math.isfinite(value):
        return 0.0
    rounded = round(value, places)
    return 0.0 if rounded == 0 else rounded  # no "-0.0"


def round_significant(value: float, digits: int) -> float:
    """A statistic rounded to `digits` significant digits (for figures that span orders of magnitude)."""
    if not math.isfinite(value) or value == 0:
        return 0.0
    return round_stat(value, digits - 1 - math.floor(math.log10(abs(value))))


def decimal_text(value: Decimal) -> str:
    """Plain notation without trailing zeros: Decimal("1.2300") -> "1.23", never "1.23E+3"."""
    if value == 0:
        return "0"
    text = format(value.normalize(), "f")
    return text


def places_of(text: str) -> int:
    """Significant decimal places of an exchange value: "0.01000000" -> 2 (Binance pads to 8)."""
    _, _, fraction = decimal_text(Decimal(text)).partition(".")
    return len(fraction)


def derived_price(value: Decimal, like: Sequence[str]) -> str:
    """A derived price (microprice, VWAP) rounded to a couple of digits below the finest of the
    exchange prices `like` it was computed from, as a plain decimal string."""
    places = max((places_of(text) for text in like), default=0)
    return decimal_text(value.quantize(Decimal(1).scaleb(-(places + STAT_PRICE_EXTRA_PLACES))))


def utc_minute(ms: int) -> str:
    """Epoch milliseconds as `2024-05-01 13:05` (UTC), short enough for a table column."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def utc_second(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%H:%M:%S")


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns separated by two spaces, each as wide as its widest cell; no trailing spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        for index, cell in enumerate(row):
            widths[index] = max(widths[index], len(cell))
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip() for line in (headers, *rows)]
    return "\n".join(lines)


def freshness_line(source: str, *, age_ms: int | None, last_update_id: int | None, in_sync: bool | None) -> str:
    parts = [f"source {source}"]
    if last_update_id:
        parts.append(f"update id {last_update_id}")
    if age_ms is not None:
        parts.append(f"age {age_ms} ms")
    if in_sync is not None:
        parts.append("in sync" if in_sync else "NOT IN SYNC")
    return ", ".join(parts)


# --- provider errors -> tool error text -----------------------------------------------------------

SYMBOL_FORMAT_HINT = (
    "Check the symbol format: base asset then quote asset, no separator, e.g. BTCUSDT or ETHBTC "
    "(not BTC/USDT or BTC-USDT)."
)


def unknown_symbol_text(symbol: str | None, exchange: str = "") -> str:
    name = f"{symbol!r}" if symbol else "the symbol"
    return f"Unknown symbol {name}: the exchange does not list it{exchange}. {SYMBOL_FORMAT_HINT}"


def _retry_hint(error: ProviderCallError, default: str) -> str:
    if error.retry_after_ms:
        return f"retry after {math.ceil(error.retry_after_ms / 1000)} s"
    return default


def explain_provider_error(error: ProviderCallError, *, symbol: str | None = None) -> str:
    """What a failed provider call means for the caller and what to do next, in one or two sentences.
    Binance's own code and message are kept when the exchange produced the error."""
    exchange = f" (Binance {error.binance_code}: {error.binance_msg})" if error.binance_code is not None else ""
    reason = error.reason
    if reason == "ERROR_REASON_UNKNOWN_SYMBOL":
        return unknown_symbol_text(symbol, exchange)
    if reason == "ERROR_REASON_BOOK_OUT_OF_SYNC":
        return (
            f"The order book{f' for {symbol}' if symbol else ''} is resynchronising with the exchange; "
            f"{_retry_hint(error, 'retry shortly (in a second or two)')}. Nothing is wrong with the request."
        )
    if reason in ("ERROR_REASON_RATE_LIMITED", "ERROR_REASON_IP_BANNED"):
        return f"The exchange rate limit was reached{exchange}; {_retry_hint(error, 'retry in a minute')}."
    if error.status_code == grpc.StatusCode.INVALID_ARGUMENT:
        if error.field_violations:
            problems = "; ".join(f"parameter {v.field!r}: {v.description}" for v in error.field_violations)
            return f"Invalid request: {problems}{exchange}."
        return f"Invalid request: {error.message}{exchange}."
    if error.status_code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return (
            f"The market-data provider or the exchange is unavailable right now ({error.message}){exchange}; "
            f"{_retry_hint(error, 'retry shortly')}, or call service_status to see what is down."
        )
    retry = " It may succeed if retried." if error.retryable else ""
    return f"The request failed: {error.message or error.status_code.name}{exchange}.{retry}"


# --- windows and account/trading errors -----------------------------------------------------------

VOLUME_DIGITS = 6  # analytics volumes are doubles: 6 significant digits keep every decision-relevant figure


def window_text(start_ms: int, end_ms: int) -> str:
    """A time window as `2024-05-01 13:05:00 to 13:10:00 UTC (300 s)`; the date repeats only when it changes."""
    start = datetime.fromtimestamp(start_ms / 1000, tz=UTC)
    end = datetime.fromtimestamp(end_ms / 1000, tz=UTC)
    end_format = "%H:%M:%S" if start.date() == end.date() else "%Y-%m-%d %H:%M:%S"
    seconds = max(0, end_ms - start_ms) / 1000
    return f"{start:%Y-%m-%d %H:%M:%S} to {end.strftime(end_format)} UTC ({seconds:g} s)"


def check_order_hint(client_order_id: str | None) -> str:
    """How to learn an order's outcome instead of placing it again."""
    if client_order_id:
        return (
            f"Do NOT place it again: call get_order with client_order_id={client_order_id!r} (and the same symbol) "
            "to learn whether it exists."
        )
    return "Do NOT place it again: call get_open_orders or get_order to learn whether it exists."


def explain_private_error(
    error: ProviderCallError, *, symbol: str | None = None, client_order_id: str | None = None
) -> str:
    """Account and trading failures as advice: what was (not) done and what to do next. Anything
    not specific to orders and balances falls through to `explain_provider_error`."""
    exchange = f" (Binance {error.binance_code}: {error.binance_msg})" if error.binance_code is not None else ""
    reason = error.reason
    if reason == "ERROR_REASON_FILTER_VIOLATION":
        problems = "; ".join(f"parameter {v.field!r}: {v.description}" for v in error.field_violations)
        return (
            f"Order not sent (it broke a symbol rule; nothing reached the exchange): {problems or error.message}. "
            "Resubmit with the nearest valid value, or call get_symbol_rules for the tick size, step size and "
            "minimum notional."
        )
    if reason == "ERROR_REASON_EXECUTION_UNKNOWN":
        hint = check_order_hint(client_order_id)
        return f"The exchange did not confirm the outcome{exchange}; the order may exist. {hint}"
    if reason == "ERROR_REASON_TRADING_DISABLED":
        return (
            f"Trading is refused by the provider: {error.message}. Orders cannot be placed until an operator "
            "enables trading or releases the kill switch; do not retry."
        )
    if reason == "ERROR_REASON_NOTIONAL_LIMIT":
        return f"Order not sent: {error.message}. Reduce the quantity (or price x quantity) below the cap."
    if reason == "ERROR_REASON_INSUFFICIENT_BALANCE":
        return f"Order refused for lack of funds{exchange}: {error.message}. Call get_balances and reduce the size."
    if reason == "ERROR_REASON_NO_CREDENTIALS":
        return (
            "The provider has no exchange API credentials configured, so account and trading calls cannot work; "
            "an operator must set them. Do not retry."
        )
    if error.status_code == grpc.StatusCode.NOT_FOUND:
        return (
            f"No such order{f' on {symbol}' if symbol else ''}{exchange}. Check the symbol and the order id or "
            "client order id (get_open_orders lists the open ones)."
        )
    if error.status_code in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE) and client_order_id:
        # Between gateway, provider and exchange, a lost answer does not mean a lost order.
        return (
            f"The order's outcome is not known: {error.message or error.status_code.name}{exchange}; it may exist. "
            f"{check_order_hint(client_order_id)} Call service_status if that fails too."
        )
    return explain_provider_error(error, symbol=symbol)
