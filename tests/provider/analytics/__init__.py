"""Tests of the pure analytics, plus tiny builders for hand-checkable input arrays."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays

T0 = 1_700_000_000_000
Levels = Sequence[Sequence[float]] | NDArray[np.float64]


def make_trades(rows: Sequence[tuple[int, float, float, bool]]) -> TradeArrays:
    """``(time_ms, price, qty, sold)`` rows; ``sold`` True = the aggressor sold (buyer is maker)."""
    if not rows:
        return TradeArrays.empty()
    t, p, q, s = zip(*rows, strict=True)
    return TradeArrays(
        np.array(t, np.int64),
        np.array(p, np.float64),
        np.array(q, np.float64),
        np.array(s, np.bool_),
        np.arange(len(rows), dtype=np.int64),
    )


def make_bars(times: Sequence[int], **columns: Sequence[float] | Sequence[int] | Sequence[bool]) -> ActivityArrays:
    """Activity bars at ``times``; columns not given are zeros."""
    n = len(times)
    ints = {"bid_updates", "ask_updates", "trade_count"}

    def col(name: str) -> NDArray[Any]:
        dtype = np.bool_ if name == "resynced" else np.int64 if name in ints else np.float64
        return np.array(columns[name], dtype) if name in columns else np.zeros(n, dtype)

    return ActivityArrays(
        time_ms=np.array(times, np.int64),
        bid_added=col("bid_added"),
        bid_removed=col("bid_removed"),
        bid_traded=col("bid_traded"),
        bid_updates=col("bid_updates"),
        ask_added=col("ask_added"),
        ask_removed=col("ask_removed"),
        ask_traded=col("ask_traded"),
        ask_updates=col("ask_updates"),
        trade_count=col("trade_count"),
        buy_volume=col("buy_volume"),
        sell_volume=col("sell_volume"),
        resynced=col("resynced"),
    )


def make_snaps(
    times: Sequence[int],
    bid_px: Levels,
    bid_qty: Levels,
    ask_px: Levels,
    ask_qty: Levels,
) -> SnapshotArrays:
    """Snapshots from per-row level lists (best first; use ``nan`` / 0 for missing levels)."""
    return SnapshotArrays(
        time_ms=np.array(times, np.int64),
        last_update_id=np.arange(1, len(times) + 1, dtype=np.int64),
        bid_px=np.array(bid_px, np.float64),
        bid_qty=np.array(bid_qty, np.float64),
        ask_px=np.array(ask_px, np.float64),
        ask_qty=np.array(ask_qty, np.float64),
    )


def seconds(n: int, start: int = T0) -> list[int]:
    return [start + 1000 * i for i in range(n)]
