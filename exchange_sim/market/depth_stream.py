"""Depth diff windows: book changes collected per update-speed window into Binance depthUpdate
events whose [U, u] ranges are contiguous (U == previous u + 1), with absolute quantities.

Pure: the caller says when a window closes.
"""

from __future__ import annotations

import orjson


class DepthWindow:
    """Collects the changed levels of one symbol between two flushes."""

    __slots__ = ("asks", "bids", "first_id", "last_id")

    def __init__(self) -> None:
        self.first_id = 0
        self.last_id = 0
        self.bids: dict[str, str] = {}
        self.asks: dict[str, str] = {}

    def add(self, update_id: int, is_bid: bool, price: str, qty: str) -> None:
        if self.first_id == 0:
            self.first_id = update_id
        self.last_id = update_id
        (self.bids if is_bid else self.asks)[price] = qty

    def take(self, symbol: str, event_time_ms: int) -> bytes | None:
        """The depthUpdate event for the window (None if nothing changed); starts a new window."""
        if self.first_id == 0:
            return None
        payload = orjson.dumps(
            {
                "e": "depthUpdate",
                "E": event_time_ms,
                "s": symbol,
                "U": self.first_id,
                "u": self.last_id,
                "b": sorted(self.bids.items(), key=_price_key, reverse=True),
                "a": sorted(self.asks.items(), key=_price_key),
            }
        )
        self.first_id = 0
        self.bids = {}
        self.asks = {}
        return payload


def _price_key(level: tuple[str, str]) -> float:
    # Ordering only (presentation); the values sent are the exact strings.
    return float(level[0])


def partial_depth(last_update_id: int, bids: list[tuple[str, str]], asks: list[tuple[str, str]]) -> bytes:
    """The `<symbol>@depth<N>` payload: no e/E/s fields, as Binance sends it."""
    return orjson.dumps({"lastUpdateId": last_update_id, "bids": bids, "asks": asks})
