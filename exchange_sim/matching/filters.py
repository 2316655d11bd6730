"""Symbol filters compiled to integers, and their checks (Binance's -1013 failures).

Units: a price or quote amount is an int of ``10**-quote_precision``; a quantity an int of
``10**-base_precision``; a notional (price * quantity) an int of
``10**-(quote_precision + base_precision)``, so every comparison is exact.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from .spec import SymbolSpec, exact_units
from .types import EngineError

__all__ = ["NotionalRule", "Rules"]

_UNLIMITED = 1 << 200


def _fail(name: str) -> EngineError:
    return EngineError(-1013, f"Filter failure: {name}")


@dataclass(frozen=True, slots=True)
class NotionalRule:
    name: str  # "NOTIONAL" or "MIN_NOTIONAL"
    min_notional: int  # 0 = disabled
    max_notional: int  # 0 = disabled
    apply_min_to_market: bool
    apply_max_to_market: bool
    avg_price_mins: int


class Rules:
    """A SymbolSpec compiled to integers (see module docstring for units)."""

    __slots__ = (
        "base_precision",
        "bscale",
        "has_market_lot",
        "m_max_qty",
        "m_min_qty",
        "m_step",
        "maker_den",
        "maker_num",
        "max_price",
        "max_qty",
        "min_price",
        "min_qty",
        "notional_rules",
        "quote_cap",
        "quote_precision",
        "quote_step",
        "step",
        "taker_den",
        "taker_num",
        "tick",
    )

    def __init__(self, spec: SymbolSpec) -> None:
        qp, bp = spec.quote_asset_precision, spec.base_asset_precision
        self.quote_precision = qp
        self.base_precision = bp
        self.bscale: int = 10**bp
        pf = spec.price_filter
        self.min_price = exact_units(pf.min_price, qp, "minPrice")
        self.max_price = exact_units(pf.max_price, qp, "maxPrice")
        self.tick = exact_units(pf.tick_size, qp, "tickSize")
        ls = spec.lot_size
        self.min_qty = exact_units(ls.min_qty, bp, "minQty")
        self.max_qty = exact_units(ls.max_qty, bp, "maxQty")
        self.step = exact_units(ls.step_size, bp, "stepSize")
        if self.step and self.min_qty % self.step:
            raise ValueError("LOT_SIZE minQty must be a multiple of stepSize")
        ms = spec.market_lot_size
        self.has_market_lot = ms is not None
        if ms is not None:
            self.m_min_qty = exact_units(ms.min_qty, bp, "MARKET_LOT_SIZE minQty")
            self.m_max_qty = exact_units(ms.max_qty, bp, "MARKET_LOT_SIZE maxQty")
            self.m_step = exact_units(ms.step_size, bp, "MARKET_LOT_SIZE stepSize")
            if self.m_step and self.m_min_qty % self.m_step:
                raise ValueError("MARKET_LOT_SIZE minQty must be a multiple of stepSize")
        else:
            self.m_min_qty = self.m_max_qty = self.m_step = 0
        # quoteOrderQty MARKET orders execute a quantity conforming to both lot filters.
        self.quote_step = math.lcm(self.step or 1, self.m_step or 1)
        cap = min(self.max_qty or _UNLIMITED, self.m_max_qty or _UNLIMITED)
        self.quote_cap = cap - cap % self.quote_step
        rules: list[NotionalRule] = []
        scale: int = 10**bp
        if spec.min_notional is not None:
            mn = spec.min_notional
            rules.append(
                NotionalRule(
                    "MIN_NOTIONAL",
                    exact_units(mn.min_notional, qp, "minNotional") * scale,
                    0,
                    mn.apply_to_market,
                    False,
                    mn.avg_price_mins,
                )
            )
        if spec.notional is not None:
            nf = spec.notional
            rules.append(
                NotionalRule(
                    "NOTIONAL",
                    exact_units(nf.min_notional, qp, "minNotional") * scale,
                    exact_units(nf.max_notional, qp, "maxNotional") * scale,
                    nf.apply_min_to_market,
                    nf.apply_max_to_market,
                    nf.avg_price_mins,
                )
            )
        self.notional_rules = tuple(rules)
        self.maker_num, self.maker_den = spec.maker_commission.as_integer_ratio()
        self.taker_num, self.taker_den = spec.taker_commission.as_integer_ratio()

    def check_price(self, price: int) -> None:
        """PRICE_FILTER on a price or stop price (units of 10**-quote_precision)."""
        if (
            (self.min_price and price < self.min_price)
            or (self.max_price and price > self.max_price)
            or (self.tick and price % self.tick)
        ):
            raise _fail("PRICE_FILTER")

    def check_lot(self, qty: int) -> None:
        if (
            (self.min_qty and qty < self.min_qty)
            or (self.max_qty and qty > self.max_qty)
            or (self.step and qty % self.step)
        ):
            raise _fail("LOT_SIZE")

    def check_market_lot(self, qty: int) -> None:
        if not self.has_market_lot:
            return
        if (
            (self.m_min_qty and qty < self.m_min_qty)
            or (self.m_max_qty and qty > self.m_max_qty)
            or (self.m_step and qty % self.m_step)
        ):
            raise _fail("MARKET_LOT_SIZE")

    def check_notional(
        self,
        *,
        market: bool,
        qty: int = 0,
        price: int | None = None,
        quote_qty: int | None = None,
        avg_price: Callable[[int], int | None] | None = None,
    ) -> None:
        """MIN_NOTIONAL and NOTIONAL.

        Limit-priced orders: ``price * qty`` against min and max. Market orders
        (``market=True``) only against the bounds whose ``apply*ToMarket`` is set, with the
        notional taken from ``quote_qty`` (quoteOrderQty orders), else ``price`` if given (stop
        price of STOP_LOSS/TAKE_PROFIT), else ``avg_price(avgPriceMins)``; no price, no check.
        """
        for rule in self.notional_rules:
            check_min = rule.min_notional and (rule.apply_min_to_market or not market)
            check_max = rule.max_notional and (rule.apply_max_to_market or not market)
            if not (check_min or check_max):
                continue
            if quote_qty is not None:
                notional = quote_qty * self.bscale
            else:
                p = price
                if p is None and avg_price is not None:
                    p = avg_price(rule.avg_price_mins)
                if p is None:
                    continue
                notional = p * qty
            if (check_min and notional < rule.min_notional) or (check_max and notional > rule.max_notional):
                raise _fail(rule.name)
