"""Market-stream event shapes (reference: WebSocket Streams) → the provider's value types.

The depth stream is not parsed here: its levels go to the book as received (see SymbolBook).
A payload that lacks a documented field raises :class:`KeyError`/:class:`ValueError`; the
caller counts it and moves on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provider.marketdata.model import AggTrade, BookTicker, Ticker24h, Trade


def trade(data: Mapping[str, Any]) -> Trade:
    """``<symbol>@trade``: {"e":"trade","E","s","t","p","q","T","m","M"}."""
    price, qty = str(data["p"]), str(data["q"])
    return Trade(
        id=int(data["t"]),
        price=price,
        qty=qty,
        quote_qty="",  # not in the stream; the gRPC layer leaves it empty rather than invent it
        time_ms=int(data["T"]),
        is_buyer_maker=bool(data["m"]),
        is_best_match=bool(data.get("M", True)),
    )


def book_ticker(data: Mapping[str, Any]) -> BookTicker:
    """``<symbol>@bookTicker``: {"u","s","b","B","a","A"}."""
    return BookTicker(
        symbol=str(data["s"]),
        bid_price=str(data["b"]),
        bid_qty=str(data["B"]),
        ask_price=str(data["a"]),
        ask_qty=str(data["A"]),
        update_id=int(data["u"]),
    )


def ticker_24h(data: Mapping[str, Any]) -> Ticker24h:
    """``<symbol>@ticker`` (24hrTicker)."""
    return Ticker24h(
        symbol=str(data["s"]),
        price_change=str(data["p"]),
        price_change_percent=str(data["P"]),
        weighted_avg_price=str(data["w"]),
        prev_close_price=str(data["x"]),
        last_price=str(data["c"]),
        last_qty=str(data["Q"]),
        bid_price=str(data["b"]),
        bid_qty=str(data["B"]),
        ask_price=str(data["a"]),
        ask_qty=str(data["A"]),
        open_price=str(data["o"]),
        high_price=str(data["h"]),
        low_price=str(data["l"]),
        volume=str(data["v"]),
        quote_volume=str(data["q"]),
        open_time_ms=int(data["O"]),
        close_time_ms=int(data["C"]),
        first_id=int(data["F"]),
        last_id=int(data["L"]),
        count=int(data["n"]),
        event_time_ms=int(data["E"]),
    )


def agg_trade(data: Mapping[str, Any]) -> AggTrade:
    """``<symbol>@aggTrade``: {"e":"aggTrade","E","s","a","p","q","f","l","T","m","M"}."""
    return AggTrade(
        agg_id=int(data["a"]),
        price=str(data["p"]),
        qty=str(data["q"]),
        first_trade_id=int(data["f"]),
        last_trade_id=int(data["l"]),
        time_ms=int(data["T"]),
        is_buyer_maker=bool(data["m"]),
        is_best_match=bool(data.get("M", True)),
    )
