"""Symbols the simulator lists by default, with Binance-like filters, and a generic fallback."""

from __future__ import annotations

from decimal import Decimal as D

from exchange_sim.market.synthetic import SyntheticProfile
from exchange_sim.matching import LotSizeFilter, NotionalFilter, PriceFilter, SymbolSpec

QUOTES = ("USDT", "USDC", "BTC", "ETH", "BNB", "EUR")


def _spec(symbol: str, base: str, quote: str, tick: str, step: str, min_notional: str) -> SymbolSpec:
    return SymbolSpec(
        symbol=symbol,
        base_asset=base,
        quote_asset=quote,
        price_filter=PriceFilter(D(tick), D("1000000"), D(tick)),
        lot_size=LotSizeFilter(D(step), D("9000"), D(step)),
        market_lot_size=LotSizeFilter(D(0), D("100"), D(0)),
        notional=NotionalFilter(D(min_notional), True, D("9000000"), False, 5),
    )


KNOWN: dict[str, tuple[SymbolSpec, SyntheticProfile]] = {
    "BTCUSDT": (
        _spec("BTCUSDT", "BTC", "USDT", "0.01", "0.00001", "5"),
        SyntheticProfile(D("60000"), base_size=D("0.05")),
    ),
    "ETHUSDT": (
        _spec("ETHUSDT", "ETH", "USDT", "0.01", "0.0001", "5"),
        SyntheticProfile(D("3000"), base_size=D("0.5")),
    ),
    "BNBUSDT": (_spec("BNBUSDT", "BNB", "USDT", "0.01", "0.001", "5"), SyntheticProfile(D("600"), base_size=D("2"))),
}


def symbol_setup(symbol: str) -> tuple[SymbolSpec, SyntheticProfile]:
    """A known symbol's setup, or a generic one for `<BASE><QUOTE>` with a known quote asset."""
    if symbol in KNOWN:
        return KNOWN[symbol]
    for quote in QUOTES:
        if symbol.endswith(quote) and len(symbol) > len(quote):
            spec = _spec(symbol, symbol[: -len(quote)], quote, "0.0001", "0.01", "5")
            return spec, SyntheticProfile(D("10"), base_size=D("20"))
    raise ValueError(f"cannot derive base/quote assets of {symbol!r}: it must end in one of {', '.join(QUOTES)}")
