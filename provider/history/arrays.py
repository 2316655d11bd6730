"""The array shapes exchanged between storage and analytics (the contract between the two).

Storage reads LMDB history into these; analytics computes over them with numpy and never sees
LMDB. Every array of one instance has the same first dimension (one entry per trade, snapshot or
second), in time order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = ["ActivityArrays", "SnapshotArrays", "TradeArrays"]


@dataclass(frozen=True, slots=True)
class TradeArrays:  # aggregate trades, time-ordered
    time_ms: NDArray[np.int64]
    price: NDArray[np.float64]
    qty: NDArray[np.float64]
    buyer_is_maker: NDArray[np.bool_]  # True: the aggressor SOLD
    agg_id: NDArray[np.int64]

    @classmethod
    def empty(cls, levels: int = 0) -> TradeArrays:
        return cls(
            time_ms=np.empty(0, np.int64),
            price=np.empty(0, np.float64),
            qty=np.empty(0, np.float64),
            buyer_is_maker=np.empty(0, np.bool_),
            agg_id=np.empty(0, np.int64),
        )

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])


@dataclass(frozen=True, slots=True)
class SnapshotArrays:  # 1-second top-N book snapshots, time-ordered; missing levels are NaN (price) / 0 (qty)
    time_ms: NDArray[np.int64]  # shape (m,)
    last_update_id: NDArray[np.int64]  # (m,)
    bid_px: NDArray[np.float64]  # (m, N) best first
    bid_qty: NDArray[np.float64]
    ask_px: NDArray[np.float64]
    ask_qty: NDArray[np.float64]

    @classmethod
    def empty(cls, levels: int = 0) -> SnapshotArrays:
        return cls(
            time_ms=np.empty(0, np.int64),
            last_update_id=np.empty(0, np.int64),
            bid_px=np.empty((0, levels), np.float64),
            bid_qty=np.empty((0, levels), np.float64),
            ask_px=np.empty((0, levels), np.float64),
            ask_qty=np.empty((0, levels), np.float64),
        )

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])


@dataclass(frozen=True, slots=True)
class ActivityArrays:  # 1-second activity bars computed from the diff and trade streams
    time_ms: NDArray[np.int64]  # bar start, a multiple of 1000
    bid_added: NDArray[np.float64]  # quantity added to bids (sum of positive level changes)
    bid_removed: NDArray[np.float64]  # quantity removed from bids WITHOUT a trade (cancels)
    bid_traded: NDArray[np.float64]  # quantity removed from bids by trades (sells hitting bids)
    bid_updates: NDArray[np.int64]  # level updates on the bid side
    ask_added: NDArray[np.float64]
    ask_removed: NDArray[np.float64]
    ask_traded: NDArray[np.float64]
    ask_updates: NDArray[np.int64]
    trade_count: NDArray[np.int64]
    buy_volume: NDArray[np.float64]  # aggressor-buy base volume
    sell_volume: NDArray[np.float64]
    resynced: NDArray[np.bool_]  # the book was resynchronised during this second

    @classmethod
    def empty(cls, levels: int = 0) -> ActivityArrays:
        f, i = np.empty(0, np.float64), np.empty(0, np.int64)
        return cls(
            time_ms=i.copy(),
            bid_added=f.copy(),
            bid_removed=f.copy(),
            bid_traded=f.copy(),
            bid_updates=i.copy(),
            ask_added=f.copy(),
            ask_removed=f.copy(),
            ask_traded=f.copy(),
            ask_updates=i.copy(),
            trade_count=i.copy(),
            buy_volume=f.copy(),
            sell_volume=f.copy(),
            resynced=np.empty(0, np.bool_),
        )

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])
