"""1-second activity bars of one symbol, accumulated from applied depth diffs and aggregate trades. Pure.

For each level an applied diff changes, the change against the quantity the book held at that
price before the diff counts as **added** when positive. A decrease is split at bar close: the
part matched by aggregate trades at the same price on that side in the same second is
**traded** (aggressor sells hit bids, aggressor buys lift asks), the rest **removed** (cancelled
without a trade). Events are filed by the time the caller gives (the recorder's receipt clock), so
diffs and trades of one second meet in one bar whatever order they arrive in. An event for a
second already closed goes to the next bar closed (never lost, never rewrites a stored bar).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from dataclasses import dataclass, field

from provider.book import decimal_to_units
from provider.history.codec import ActivityRecord

__all__ = ["ActivityAccumulator", "BookSide"]


class BookSide(enum.Enum):
    BID = "bid"
    ASK = "ask"


@dataclass
class _Bar:
    bid_added: float = 0.0
    ask_added: float = 0.0
    bid_updates: int = 0
    ask_updates: int = 0
    trade_count: int = 0
    buy_volume: float = 0.0
    sell_volume: float = 0.0
    resynced: bool = False
    # Decreases and traded quantity per (side, price units): matched at close.
    decreases: dict[tuple[BookSide, int], float] = field(default_factory=lambda: defaultdict(float))
    traded: dict[tuple[BookSide, int], float] = field(default_factory=lambda: defaultdict(float))


class ActivityAccumulator:
    """Open bars of one symbol keyed by second start; :meth:`close` turns one into a record."""

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        self._bars: dict[int, _Bar] = {}
        self._closed_until = 0  # every second before this was closed

    def _bar(self, time_ms: int) -> _Bar:
        second = max(time_ms - time_ms % 1000, self._closed_until)
        bar = self._bars.get(second)
        if bar is None:
            bar = self._bars[second] = _Bar()
        return bar

    def on_level(self, time_ms: int, side: BookSide, price: str, prev_qty: float, new_qty: float) -> None:
        """One level of an applied diff: ``prev_qty`` held before it (0 if none), ``new_qty`` after."""
        bar = self._bar(time_ms)
        change = new_qty - prev_qty
        if side is BookSide.BID:
            bar.bid_updates += 1
            if change > 0:
                bar.bid_added += change
        else:
            bar.ask_updates += 1
            if change > 0:
                bar.ask_added += change
        if change < 0:
            bar.decreases[(side, decimal_to_units(price))] -= change

    def on_trade(self, time_ms: int, price: str, qty: float, buyer_is_maker: bool) -> None:
        """One aggregate trade; ``buyer_is_maker`` True means the aggressor sold (hit a bid)."""
        bar = self._bar(time_ms)
        bar.trade_count += 1
        if buyer_is_maker:
            bar.sell_volume += qty
            bar.traded[(BookSide.BID, decimal_to_units(price))] += qty
        else:
            bar.buy_volume += qty
            bar.traded[(BookSide.ASK, decimal_to_units(price))] += qty

    def on_resync(self, time_ms: int) -> None:
        """The book was discarded or rebuilt in this second."""
        self._bar(time_ms).resynced = True

    def close(self, second_ms: int) -> ActivityRecord:
        """The bar of ``[second_ms, second_ms + 1000)`` (all zero when nothing happened), folding in
        any bars of earlier seconds still open; later seconds stay open."""
        if second_ms % 1000:
            raise ValueError(f"not a second boundary: {second_ms}")
        bar = _Bar()
        for start in sorted(s for s in self._bars if s <= second_ms):
            _fold(bar, self._bars.pop(start))
        self._closed_until = max(self._closed_until, second_ms + 1000)
        traded = {BookSide.BID: 0.0, BookSide.ASK: 0.0}
        removed = {BookSide.BID: 0.0, BookSide.ASK: 0.0}
        for key, decrease in bar.decreases.items():
            matched = min(decrease, bar.traded.get(key, 0.0))
            traded[key[0]] += matched
            removed[key[0]] += decrease - matched
        return ActivityRecord(
            symbol=self.symbol,
            time_ms=second_ms,
            bid_added=bar.bid_added,
            bid_removed=removed[BookSide.BID],
            bid_traded=traded[BookSide.BID],
            bid_updates=bar.bid_updates,
            ask_added=bar.ask_added,
            ask_removed=removed[BookSide.ASK],
            ask_traded=traded[BookSide.ASK],
            ask_updates=bar.ask_updates,
            trade_count=bar.trade_count,
            buy_volume=bar.buy_volume,
            sell_volume=bar.sell_volume,
            resynced=bar.resynced,
        )


def _fold(into: _Bar, bar: _Bar) -> None:
    into.bid_added += bar.bid_added
    into.ask_added += bar.ask_added
    into.bid_updates += bar.bid_updates
    into.ask_updates += bar.ask_updates
    into.trade_count += bar.trade_count
    into.buy_volume += bar.buy_volume
    into.sell_volume += bar.sell_volume
    into.resynced = into.resynced or bar.resynced
    for key, value in bar.decreases.items():
        into.decreases[key] += value
    for key, value in bar.traded.items():
        into.traded[key] += value
