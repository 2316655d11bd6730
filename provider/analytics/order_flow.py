"""Order flow over a window: who is aggressing, how hard, and how liquidity is being added.

Inputs: the window's aggregate trades, its 1-second activity bars, and optionally the current
book's top levels. Every figure below is over trades with ``start <= time < end``.

* **Aggressor volume and counts.** ``buyer_is_maker`` False = the aggressor bought. ``buy_volume``
  / ``sell_volume`` are base-asset quantities, ``buy_count`` / ``sell_count`` aggregate trades.
* **Delta** ``= buy_volume - sell_volume``.
* **Ratio** ``= buy_volume / sell_volume``; ``+inf`` when only buys, ``1.0`` when there are no
  trades (neutral, flagged ``NO_TRADES``).
* **Direction** from the ratio ``r``: ``r > 2`` strong buy; ``1.2 < r <= 2`` moderate buy;
  ``0.8 <= r <= 1.2`` neutral; ``0.5 <= r < 0.8`` moderate sell; ``r < 0.5`` (sells more than
  twice buys) strong sell. The sell side mirrors the buy side at its outer edge (1/2) and uses the
  issue's 0.8 as its inner edge.
* **Series** (cumulative volume delta): buckets of ``bucket_seconds`` aligned to the requested
  start; bucket ``k`` is ``[start + k·b, start + (k+1)·b)``. Buckets run from the first to the last
  one touching the covered window or a trade, empty buckets included (zeros), so a gap shows as a
  flat CVD (and is listed in ``meta.gaps``). ``cumulative_delta`` starts from 0 at the first bucket.
  ``bucket_seconds = 0`` picks the smallest of ``AUTO_BUCKETS`` giving at most ``AUTO_MAX_BUCKETS``
  (120) buckets; an explicit choice may give at most ``MAX_BUCKETS`` (10,000).
* **Flow rates** (from the diff stream via the activity bars): ``bid_added_per_second = Σ
  bid_added / recorded seconds`` (the activity bars present, so gaps do not dilute the rate); the
  same for asks; ``net_flow_per_second = bid rate - ask rate``.
* **Book imbalance** ``= (B - A) / (B + A)`` where ``B`` and ``A`` are the summed quantities of the
  current book's best ``IMBALANCE_LEVELS`` (10) levels per side (0 when both are empty). Omitted
  (0.0) and flagged ``BOOK_OUT_OF_SYNC`` when no book is given or it is not in sync.
* **Coverage clock**: the activity bars. ``FEW_SAMPLES`` below ``MIN_TRADES`` (20) trades.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import numpy as np

from provider.analytics.window import (
    AnalyticsInputError,
    BookTop,
    DataQualityFlag,
    Meta,
    Window,
    activity_in,
    coverage,
    make_meta,
    storage_freshness,
    trades_in,
)
from provider.history.arrays import ActivityArrays, SnapshotArrays, TradeArrays

__all__ = [
    "AUTO_BUCKETS",
    "FlowBucket",
    "FlowDirection",
    "OrderFlow",
    "book_imbalance",
    "classify_ratio",
    "order_flow",
]

STRONG_RATIO = 2.0
MODERATE_RATIO = 1.2
NEUTRAL_LOW = 0.8
STRONG_SELL_RATIO = 0.5
IMBALANCE_LEVELS = 10
MIN_TRADES = 20
AUTO_BUCKETS = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400)
AUTO_MAX_BUCKETS = 120
MAX_BUCKETS = 10_000


class FlowDirection(enum.IntEnum):
    """Values equal the proto's ``FlowDirection`` numbers."""

    STRONG_BUY = 1
    MODERATE_BUY = 2
    NEUTRAL = 3
    MODERATE_SELL = 4
    STRONG_SELL = 5


@dataclass(frozen=True, slots=True)
class FlowBucket:
    start_ms: int
    buy_volume: float
    sell_volume: float
    delta: float
    cumulative_delta: float


@dataclass(frozen=True, slots=True)
class OrderFlow:
    """Proto ``GetOrderFlowResponse``, field for field."""

    meta: Meta
    buy_volume: float
    sell_volume: float
    buy_count: int
    sell_count: int
    delta: float
    buy_sell_ratio: float
    direction: FlowDirection
    series: tuple[FlowBucket, ...]
    bid_added_per_second: float
    ask_added_per_second: float
    net_flow_per_second: float
    book_imbalance: float
    bucket_seconds: int


def classify_ratio(ratio: float) -> FlowDirection:
    if ratio > STRONG_RATIO:
        return FlowDirection.STRONG_BUY
    if ratio > MODERATE_RATIO:
        return FlowDirection.MODERATE_BUY
    if ratio >= NEUTRAL_LOW:
        return FlowDirection.NEUTRAL
    if ratio >= STRONG_SELL_RATIO:
        return FlowDirection.MODERATE_SELL
    return FlowDirection.STRONG_SELL


def book_imbalance(book: BookTop, levels: int = IMBALANCE_LEVELS) -> float:
    bid = float(book.bid_qty[:levels].sum())
    ask = float(book.ask_qty[:levels].sum())
    total = bid + ask
    return (bid - ask) / total if total > 0 else 0.0


def _bucket_seconds(requested: Window, bucket_seconds: int) -> int:
    seconds = math.ceil(requested.duration_ms / 1000)
    if bucket_seconds < 0:
        raise AnalyticsInputError("bucket_seconds", "must be >= 0")
    if bucket_seconds == 0:
        return next((b for b in AUTO_BUCKETS if math.ceil(seconds / b) <= AUTO_MAX_BUCKETS), AUTO_BUCKETS[-1])
    if math.ceil(seconds / bucket_seconds) > MAX_BUCKETS:
        raise AnalyticsInputError("bucket_seconds", f"gives more than {MAX_BUCKETS} buckets over this window")
    return bucket_seconds


def order_flow(
    *,
    symbol: str,
    requested: Window,
    now_ms: int,
    trades: TradeArrays,
    activity: ActivityArrays,
    book: BookTop | None = None,
    bucket_seconds: int = 0,
) -> OrderFlow:
    bucket_s = _bucket_seconds(requested, bucket_seconds)
    tr = trades_in(trades, requested)
    bars = activity_in(activity, requested)
    cov = coverage(requested, [bars.time_ms], bars.resynced)

    sells = tr.buyer_is_maker
    qty = tr.qty
    sell_qty = np.where(sells, qty, 0.0)
    buy_qty = qty - sell_qty
    buy_volume, sell_volume = float(buy_qty.sum()), float(sell_qty.sum())
    sell_count = int(np.count_nonzero(sells))
    buy_count = len(tr) - sell_count
    # Only buys: an unbounded ratio (strong buy); no trades at all: neutral (and flagged).
    ratio = buy_volume / sell_volume if sell_volume > 0 else (math.inf if buy_volume > 0 else 1.0)

    # CVD series over the buckets touching the covered window or any trade.
    b_ms = bucket_s * 1000
    spans = []
    if cov.covered.duration_ms:
        spans += [cov.covered.start_ms, cov.covered.end_ms - 1]
    if len(tr):
        spans += [int(tr.time_ms[0]), int(tr.time_ms[-1])]
    series: tuple[FlowBucket, ...] = ()
    if spans:
        k0 = (min(spans) - requested.start_ms) // b_ms
        k1 = (max(spans) - requested.start_ms) // b_ms + 1
        idx = (tr.time_ms - requested.start_ms) // b_ms - k0
        n = int(k1 - k0)
        buys = np.bincount(idx, weights=buy_qty, minlength=n)
        sells_v = np.bincount(idx, weights=sell_qty, minlength=n)
        delta = buys - sells_v
        cvd = np.cumsum(delta)
        starts = requested.start_ms + (np.arange(n, dtype=np.int64) + k0) * b_ms
        series = tuple(
            FlowBucket(int(s), float(bv), float(sv), float(d), float(c))
            for s, bv, sv, d, c in zip(
                starts.tolist(), buys.tolist(), sells_v.tolist(), delta.tolist(), cvd.tolist(), strict=True
            )
        )

    recorded = len(bars)
    bid_rate = float(bars.bid_added.sum()) / recorded if recorded else 0.0
    ask_rate = float(bars.ask_added.sum()) / recorded if recorded else 0.0

    flags: list[DataQualityFlag] = []
    if len(tr) == 0:
        flags.append(DataQualityFlag.NO_TRADES)
    if len(tr) < MIN_TRADES:
        flags.append(DataQualityFlag.FEW_SAMPLES)
    if book is None or not book.in_sync:
        flags.append(DataQualityFlag.BOOK_OUT_OF_SYNC)
        imbalance = 0.0
    else:
        imbalance = book_imbalance(book)

    meta = make_meta(
        symbol=symbol,
        requested=requested,
        cov=cov,
        trade_count=len(tr),
        snapshot_count=0,
        book_update_count=int(bars.bid_updates.sum() + bars.ask_updates.sum()),
        thresholds={
            "strong_ratio": STRONG_RATIO,
            "moderate_ratio": MODERATE_RATIO,
            "neutral_low_ratio": NEUTRAL_LOW,
            "strong_sell_ratio": STRONG_SELL_RATIO,
            "bucket_seconds": bucket_s,
            "imbalance_levels": IMBALANCE_LEVELS,
            "min_trades": MIN_TRADES,
        },
        flags=flags,
        freshness=storage_freshness(
            SnapshotArrays.empty(), now_ms, book, int(bars.time_ms[-1]) + 1000 if len(bars) else 0
        ),
        now_ms=now_ms,
    )
    return OrderFlow(
        meta=meta,
        buy_volume=buy_volume,
        sell_volume=sell_volume,
        buy_count=buy_count,
        sell_count=sell_count,
        delta=buy_volume - sell_volume,
        buy_sell_ratio=ratio,
        direction=classify_ratio(ratio),
        series=series,
        bid_added_per_second=bid_rate,
        ask_added_per_second=ask_rate,
        net_flow_per_second=bid_rate - ask_rate,
        book_imbalance=imbalance,
        bucket_seconds=bucket_s,
    )
